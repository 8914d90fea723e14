//! The run directory: what a training run leaves behind and how it is read back.
//!
//! ```text
//! runs/NAME/
//!   config.toml        the exact configuration used (overrides applied)
//!   model.bpk          final parameters (burnpack record)
//!   metrics.csv        loss and accuracy per epoch
//!   summary.json       final accuracies, timing, backend, seed, version
//!   checkpoint/        model-E.bpk, optim-E.bpk, scheduler-E.bpk of the latest epochs
//! ```
//!
//! Every file is written to a temporary name and renamed, so an interrupted write never
//! leaves a truncated file in place of a good one.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use burn::module::Module;
use burn::store::ModuleRecord;
use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use crate::classifier::Classifier;
use crate::config::RunConfig;
use crate::progress::EpochMetrics;

/// File names inside a run directory.
pub const CONFIG_FILE: &str = "config.toml";
/// Final model record.
pub const MODEL_FILE: &str = "model.bpk";
/// Per-epoch metrics.
pub const METRICS_FILE: &str = "metrics.csv";
/// Run summary.
pub const SUMMARY_FILE: &str = "summary.json";
/// Checkpoint folder.
pub const CHECKPOINT_DIR: &str = "checkpoint";

/// What `summary.json` holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    /// Version of credit that trained the run.
    pub credit_version: String,
    /// Backend name (`flex`, `ndarray`, `wgpu`).
    pub backend: String,
    /// The device, as burn names it.
    pub device: String,
    /// The config's seed.
    pub seed: u64,
    /// Epochs completed.
    pub epochs: usize,
    /// Test accuracy with the pre-activation noise sampled (mean-field), percent.
    pub test_accuracy_mean_field_pct: f64,
    /// Test accuracy of the mean network (noise off), percent. Equals the mean-field value
    /// for a deterministic run.
    pub test_accuracy_mean_network_pct: f64,
    /// Final training-set accuracy of the mean network, percent.
    pub train_accuracy_mean_network_pct: f64,
    /// Mean wall-clock seconds of an epoch's training part.
    pub seconds_per_epoch: f64,
    /// Wall-clock seconds of the whole training call.
    pub total_seconds: f64,
}

/// A run directory.
#[derive(Debug, Clone)]
pub struct RunDir {
    path: PathBuf,
}

impl RunDir {
    /// A run directory at `path` (not created until written to).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `path/name`.
    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// The checkpoint folder.
    pub fn checkpoint_dir(&self) -> PathBuf {
        self.path.join(CHECKPOINT_DIR)
    }

    /// The config saved with the run.
    pub fn config(&self) -> Result<RunConfig> {
        self.config_with(&[])
    }

    /// The config saved with the run, with `key=value` overrides applied.
    pub fn config_with(&self, overrides: &[String]) -> Result<RunConfig> {
        RunConfig::load(&self.file(CONFIG_FILE), overrides)
            .with_context(|| format!("{} holds no usable run", self.path.display()))
    }

    /// The run summary, present once training finished.
    pub fn summary(&self) -> Result<RunSummary> {
        let path = self.file(SUMMARY_FILE);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("{}: invalid summary", path.display()))
    }

    /// Whether training finished (the summary is written last).
    pub fn is_complete(&self) -> bool {
        self.file(SUMMARY_FILE).is_file()
    }

    /// The highest epoch with a complete model, optimizer and scheduler checkpoint.
    pub fn latest_checkpoint(&self) -> Option<usize> {
        let entries = std::fs::read_dir(self.checkpoint_dir()).ok()?;
        entries
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                name.strip_prefix("model-")?
                    .strip_suffix(".bpk")?
                    .parse::<usize>()
                    .ok()
            })
            .filter(|epoch| {
                ["optim", "scheduler"].iter().all(|part| {
                    self.checkpoint_dir()
                        .join(format!("{part}-{epoch}.bpk"))
                        .is_file()
                })
            })
            .max()
    }

    /// Loads the run's network onto `device`: the final model, or with `epoch`, that
    /// epoch's checkpoint.
    pub fn load_model(
        &self,
        config: &RunConfig,
        device: &Device,
        epoch: Option<usize>,
    ) -> Result<Classifier> {
        let path = match epoch {
            Some(epoch) => self.checkpoint_dir().join(format!("model-{epoch}.bpk")),
            None => self.file(MODEL_FILE),
        };
        let record = ModuleRecord::load(&path).map_err(|e| {
            anyhow::anyhow!("{}: cannot load the model record: {e}", path.display())
        })?;
        Classifier::init(&config.model, device)
            .try_load_record(record)
            .map_err(|e| {
                anyhow::anyhow!(
                    "{}: does not fit the network of {} ({e})",
                    path.display(),
                    self.file(CONFIG_FILE).display()
                )
            })
    }

    /// Saves the final model.
    pub fn save_model(&self, model: Classifier) -> Result<()> {
        let path = self.file(MODEL_FILE);
        let tmp = temporary_path(&path);
        model
            .into_record()
            .save(&tmp)
            .map_err(|e| anyhow::anyhow!("{}: cannot save the model: {e}", tmp.display()))?;
        std::fs::rename(&tmp, &path).with_context(|| format!("cannot write {}", path.display()))
    }

    /// Reads `metrics.csv`, or nothing if there is none yet.
    pub fn metrics(&self) -> Result<Vec<EpochMetrics>> {
        let path = self.file(METRICS_FILE);
        if !path.exists() {
            return Ok(Vec::new());
        }
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        text.lines()
            .enumerate()
            .skip(1)
            .map(|(i, line)| {
                parse_metrics_row(line)
                    .with_context(|| format!("{}, line {}: bad metrics row", path.display(), i + 1))
            })
            .collect()
    }

    /// Writes `metrics.csv`.
    pub fn write_metrics(&self, rows: &[EpochMetrics]) -> Result<()> {
        let mut text = String::from(METRICS_HEADER);
        text.push('\n');
        for r in rows {
            text.push_str(&format!(
                "{},{},{},{},{},{},{}\n",
                r.epoch,
                r.train_loss,
                r.train_accuracy_pct,
                r.test_loss,
                r.test_accuracy_pct,
                r.train_seconds,
                r.learning_rate
            ));
        }
        write_atomic(&self.file(METRICS_FILE), text.as_bytes())
    }
}

const METRICS_HEADER: &str =
    "epoch,train_loss,train_accuracy_pct,test_loss,test_accuracy_pct,train_seconds,learning_rate";

/// A row of the current layout, or of the six-column layout before `learning_rate`.
fn parse_metrics_row(line: &str) -> Result<EpochMetrics> {
    let fields: Vec<&str> = line.split(',').collect();
    if !(6..=7).contains(&fields.len()) {
        bail!(
            "expected 7 fields (6 before learning_rate), found {}",
            fields.len()
        );
    }
    let number = |i: usize| -> Result<f64> {
        fields[i]
            .trim()
            .parse()
            .with_context(|| format!("field {} is not a number: {:?}", i + 1, fields[i]))
    };
    Ok(EpochMetrics {
        epoch: fields[0]
            .trim()
            .parse()
            .context("epoch is not an integer")?,
        train_loss: number(1)?,
        train_accuracy_pct: number(2)?,
        test_loss: number(3)?,
        test_accuracy_pct: number(4)?,
        train_seconds: number(5)?,
        learning_rate: if fields.len() == 7 { number(6)? } else { 0.0 },
    })
}

/// `dir/.name.tmp` beside `path`.
pub fn temporary_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp"))
}

/// Writes `bytes` to a temporary file beside `path`, syncs it and renames it over `path`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let tmp = temporary_path(path);
    let mut file =
        std::fs::File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
}
