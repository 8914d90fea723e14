//! The run directory: what a training run leaves behind and how it is read back.
//!
//! ```text
//! runs/NAME/
//!   config.toml        the exact configuration (overrides applied)
//!   metrics.csv        loss, accuracy, learning rate and connection classes per epoch
//!   checkpoint/        the latest epochs' checkpoints (see `checkpoint`)
//!   model.bpk          the final parameters (burnpack record), once training finished
//!   summary.json       final accuracies, timing, backend, seed, version; written last
//!   .lock              held by the process working on the run
//! ```
//!
//! Every file is written to a temporary name and renamed, so an interrupted write never
//! leaves a truncated file in place of a good one.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use burn::module::Module;
use burn::tensor::{Bytes, Device};
use credit_model::Classifier;
use serde::{Deserialize, Serialize};

use crate::checkpoint::{Checkpoints, model_from_record};
use crate::config::RunConfig;
use crate::files::{is_temporary, read_json, write_atomic};
use crate::lock::RunLock;
use crate::metrics::{EpochMetrics, read_metrics, write_metrics};

/// The configuration, as trained.
pub const CONFIG_FILE: &str = "config.toml";
/// The final model record.
pub const MODEL_FILE: &str = "model.bpk";
/// Per-epoch metrics.
pub const METRICS_FILE: &str = "metrics.csv";
/// The run summary; its presence marks a finished run.
pub const SUMMARY_FILE: &str = "summary.json";
/// The checkpoint folder.
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
    /// Training images used (after `data.train_size`); 0 in runs written before it was
    /// recorded.
    #[serde(default)]
    pub train_images: usize,
    /// Test images used (after `data.test_size`); 0 in runs written before it was recorded.
    #[serde(default)]
    pub test_images: usize,
    /// Test accuracy with the pre-activation noise sampled (mean-field), percent.
    pub test_accuracy_mean_field_pct: f64,
    /// Test accuracy of the mean network (noise off), percent. Equals the mean-field value
    /// for a deterministic run.
    pub test_accuracy_mean_network_pct: f64,
    /// Final training-set accuracy of the mean network, percent.
    pub train_accuracy_mean_network_pct: f64,
    /// Mean wall-clock seconds of an epoch's training part (this session's epochs).
    pub seconds_per_epoch: f64,
    /// Wall-clock seconds of the last training session.
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

    /// The checkpoints.
    pub fn checkpoints(&self) -> Checkpoints {
        Checkpoints::new(self.path.join(CHECKPOINT_DIR))
    }

    /// Takes the lock of an existing run for `what` (`credit analyze`, `credit export`), or
    /// none if the run is on a read-only file system or not writable (a copy being read;
    /// said on stderr).
    ///
    /// # Errors
    /// If the folder holds no run, or another process holds the lock (naming it).
    pub fn lock_existing(&self, what: &str) -> Result<Option<RunLock>> {
        if !self.exists() {
            bail!("{} holds no run (no {CONFIG_FILE})", self.path.display());
        }
        match self.lock(what) {
            Ok(lock) => Ok(Some(lock)),
            Err(error)
                if error.chain().any(|cause| {
                    cause.downcast_ref::<std::io::Error>().is_some_and(|e| {
                        matches!(
                            e.kind(),
                            std::io::ErrorKind::PermissionDenied
                                | std::io::ErrorKind::ReadOnlyFilesystem
                        )
                    })
                }) =>
            {
                eprintln!(
                    "warning: {} is not writable; reading it without its lock",
                    self.path.display()
                );
                Ok(None)
            }
            Err(error) => Err(error),
        }
    }

    /// Takes the run's lock for `what` (e.g. `credit analyze`), creating the folder, and
    /// removes the temporary files that a killed process may have left.
    ///
    /// # Errors
    /// If another process holds the lock, naming it.
    pub fn lock(&self, what: &str) -> Result<RunLock> {
        let lock = RunLock::acquire(&self.path, what)?;
        let mut dirs = vec![self.path.clone(), self.path.join(CHECKPOINT_DIR)];
        if let Ok(entries) = std::fs::read_dir(&self.path) {
            dirs.extend(
                entries
                    .filter_map(|e| e.ok())
                    .map(|e| e.path())
                    .filter(|p| {
                        p.is_dir()
                            && p.file_name()
                                .is_some_and(|n| n.to_string_lossy().starts_with("analysis"))
                    }),
            );
        }
        for dir in dirs {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.filter_map(|e| e.ok()) {
                if is_temporary(&entry.file_name().to_string_lossy()) {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
        Ok(lock)
    }

    /// Whether the folder holds a run (its configuration).
    pub fn exists(&self) -> bool {
        self.file(CONFIG_FILE).is_file()
    }

    /// The config saved with the run.
    ///
    /// # Errors
    /// If there is none or it is not valid, naming the file.
    pub fn config(&self) -> Result<RunConfig> {
        self.config_with(&[])
    }

    /// The config saved with the run, with `key=value` overrides applied.
    ///
    /// # Errors
    /// See [`RunDir::config`].
    pub fn config_with(&self, overrides: &[String]) -> Result<RunConfig> {
        let path = self.file(CONFIG_FILE);
        if !path.is_file()
            && let (Some((state, _, _)), _) = self.checkpoints().latest_intact()
        {
            // A copy that lost config.toml: the checkpoint holds the configuration too.
            eprintln!(
                "warning: {} is missing; using the configuration of the checkpoint of epoch {}",
                path.display(),
                state.epoch
            );
            let text = state.config.to_toml();
            return RunConfig::parse(&text, overrides)
                .with_context(|| format!("{} holds no usable run", self.path.display()));
        }
        RunConfig::load(&path, overrides)
            .with_context(|| format!("{} holds no usable run", self.path.display()))
    }

    /// The run summary, present once training finished.
    ///
    /// # Errors
    /// If the file is missing or not a summary, naming it.
    pub fn summary(&self) -> Result<RunSummary> {
        read_json(&self.file(SUMMARY_FILE))
    }

    /// Whether training finished: the final model and the summary (written last) are there.
    pub fn is_complete(&self) -> bool {
        self.file(SUMMARY_FILE).is_file() && self.file(MODEL_FILE).is_file()
    }

    /// Loads the run's network onto `device`: the final model, or with `epoch`, that epoch's
    /// checkpoint (verified).
    ///
    /// # Errors
    /// If the file is missing, damaged or does not fit the configured network, naming it
    /// (and, for a run without a final model, how to get one).
    pub fn load_model(
        &self,
        config: &RunConfig,
        device: &Device,
        epoch: Option<usize>,
    ) -> Result<Classifier> {
        // The network is built before its record loads: its size must fit first.
        crate::memory::check_training_fits(
            &config.model.sizes,
            0,
            4,
            &format!(
                "model.sizes = {:?} of {}",
                config.model.sizes,
                self.file(CONFIG_FILE).display()
            ),
        )?;
        let (bytes, path) = match epoch {
            Some(epoch) => {
                let checkpoints = self.checkpoints();
                let kept = checkpoints.epochs();
                if !kept.contains(&epoch) {
                    bail!(
                        "{} holds no checkpoint of epoch {epoch} (kept: {}); keep more with train.checkpoint_every",
                        checkpoints.dir().display(),
                        list(&kept)
                    );
                }
                let (_, model, _) = checkpoints.verify(epoch)?;
                (model, checkpoints.dir().join(format!("model-{epoch}.bpk")))
            }
            None => {
                let path = self.file(MODEL_FILE);
                if let Some(problem) = self.final_model_problem() {
                    bail!("{problem}");
                }
                if !self.is_complete() {
                    bail!("{}", self.unfinished_message());
                }
                let bytes = std::fs::read(&path)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                (Bytes::from_bytes_vec(bytes), path)
            }
        };
        model_from_record(bytes, config, device, &path)
    }

    /// What is wrong with `model.bpk` where it is present in some form but is no model file
    /// (a directory, a symbolic link to nowhere or in a loop, an unreadable entry), or where
    /// it is missing from a run whose `summary.json` says it finished; `None` if it is a
    /// file, or absent from a run that has not finished. Names the path and what to do.
    pub fn final_model_problem(&self) -> Option<String> {
        let path = self.file(MODEL_FILE);
        let shown = path.display();
        let kept = self.checkpoints().epochs();
        let use_checkpoint = match kept.last() {
            Some(last) => format!(
                "; the checkpoints of epochs {} are kept: use one with --epoch {last}",
                list(&kept)
            ),
            None => String::new(),
        };
        match std::fs::symlink_metadata(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let summary = self.summary().ok()?;
                let finish = if kept.last() == Some(&summary.epochs) {
                    format!(
                        "; `credit train --out {} --resume` writes it again from the checkpoint of epoch {}",
                        self.path.display(),
                        summary.epochs
                    )
                } else {
                    use_checkpoint
                };
                Some(format!(
                    "{shown} is missing, although {} says training finished after epoch {}: restore it from a copy of the run{finish}",
                    self.file(SUMMARY_FILE).display(),
                    summary.epochs
                ))
            }
            Err(e) => Some(format!("cannot read {shown}: {e}{use_checkpoint}")),
            Ok(_) => match std::fs::metadata(&path) {
                Err(e) => Some(format!(
                    "cannot read {shown} (a symbolic link): {e}{use_checkpoint}"
                )),
                Ok(meta) if meta.is_dir() => Some(format!(
                    "{shown} is a directory, not a model record: move it away and restore the file{use_checkpoint}"
                )),
                Ok(meta) if !meta.is_file() => {
                    Some(format!("{shown} is not a regular file{use_checkpoint}"))
                }
                Ok(_) => None,
            },
        }
    }

    /// Why the run has no final model, and what to do.
    fn unfinished_message(&self) -> String {
        let path = self.path.display();
        if !self.exists() {
            return format!("{path} holds no run (no {CONFIG_FILE})");
        }
        if let Some(holder) = crate::RunLock::holder(&self.path) {
            return format!("{path} has no final model yet: it is in use by {holder}");
        }
        let done = self.checkpoints().epochs().last().copied();
        let epochs = self.config().map(|c| c.train.epochs).ok();
        match (done, epochs) {
            (Some(done), Some(epochs)) => format!(
                "{path} has no final model: training stopped after epoch {done} of {epochs}; finish it with `credit train --out {path} --resume`, or use a checkpoint with --epoch {done}"
            ),
            _ => format!(
                "{path} has no final model; finish it with `credit train --out {path} --resume`"
            ),
        }
    }

    /// Saves the final model.
    ///
    /// # Errors
    /// If the record cannot be encoded or written, naming the file.
    pub fn save_model(&self, model: &Classifier) -> Result<()> {
        let path = self.file(MODEL_FILE);
        let bytes = model
            .clone()
            .into_record()
            .into_bytes()
            .map_err(|e| anyhow::anyhow!("{}: cannot encode the model: {e}", path.display()))?;
        write_atomic(&path, &bytes)
    }

    /// Reads `metrics.csv`, or nothing if there is none yet.
    ///
    /// # Errors
    /// If the file is malformed, naming it and the line.
    pub fn metrics(&self) -> Result<Vec<EpochMetrics>> {
        read_metrics(&self.file(METRICS_FILE))
    }

    /// Writes `metrics.csv`.
    ///
    /// # Errors
    /// If it cannot be written, naming it.
    pub fn write_metrics(&self, rows: &[EpochMetrics]) -> Result<()> {
        write_metrics(&self.file(METRICS_FILE), rows)
    }
}

/// `1, 2, 5` or `none`.
fn list(epochs: &[usize]) -> String {
    if epochs.is_empty() {
        "none".into()
    } else {
        epochs
            .iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    }
}
