//! Checkpoints: everything a run needs to continue after an epoch, verified when read.
//!
//! ```text
//! checkpoint/
//!   model-E.bpk    the parameters after epoch E (burnpack record)
//!   optim-E.bpk    AdamW's moments and step counts after epoch E (burnpack record)
//!   state-E.json   the epoch, the configuration trained with, the data's fingerprint, the
//!                  size and SHA-256 of both records and the metrics rows so far; written last
//! ```
//!
//! A checkpoint exists once its state file does, and is intact when both records match the
//! sizes and digests the state file gives. Nothing else needs saving: the learning rate is a
//! function of the epoch (the state file also keeps the step count of burn's scheduler), and
//! every random draw of epoch `E + 1` is a function of the run's seed and the epoch (see
//! `credit_model::Seed`), so a run resumed from a checkpoint goes on exactly as it would
//! have without the interruption.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};
use burn::module::Module;
use burn::optim::ModuleOptimizer;
use burn::store::ModuleRecord;
use burn::tensor::{Bytes, Device};
use credit_model::Classifier;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::RunConfig;
use crate::failpoint;
use crate::files::{read_json, write_atomic, write_json};
use crate::metrics::EpochMetrics;

/// The version of the checkpoint layout this build writes and reads.
const FORMAT: u32 = 1;

/// What `state-E.json` holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointState {
    /// The checkpoint layout's version.
    pub format: u32,
    /// The epoch after which it was taken (from 1).
    pub epoch: usize,
    /// The configuration the run was trained with up to this epoch.
    pub config: RunConfig,
    /// The fingerprint of the training and test images (see [`data_fingerprint`]).
    pub data: String,
    /// The model record.
    pub model: RecordFile,
    /// The optimizer record.
    pub optimizer: RecordFile,
    /// The rows of `metrics.csv` up to this epoch, restored on resume.
    pub metrics: Vec<EpochMetrics>,
    /// The backend that trained the last epoch (absent in the first checkpoints of this
    /// layout).
    #[serde(default)]
    pub backend: Option<String>,
    /// The steps burn's learning-rate scheduler had taken (absent in checkpoints written
    /// before training went through burn's `Learner`: then `epoch` times the steps per
    /// epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduler_steps: Option<u64>,
}

/// One record file of a checkpoint, as the state file describes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordFile {
    /// File name inside `checkpoint/`.
    pub file: String,
    /// Size in bytes.
    pub bytes: u64,
    /// SHA-256 of the content, hexadecimal.
    pub sha256: String,
}

/// A checkpoint that is present but cannot be used, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Damaged {
    /// Its epoch.
    pub epoch: usize,
    /// What is wrong, naming the file.
    pub reason: String,
}

/// The checkpoint folder of a run.
#[derive(Debug, Clone)]
pub struct Checkpoints {
    dir: PathBuf,
}

/// SHA-256 of `bytes`, hexadecimal.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A fingerprint of a data split: SHA-256 over the shape and every byte of the training and
/// test images and labels. Two folders with the same images give the same fingerprint.
pub fn data_fingerprint(splits: &credit_data::Splits) -> String {
    let mut hash = Sha256::new();
    for set in [&splits.train, &splits.test] {
        set.hash_into(|bytes| hash.update(bytes));
    }
    hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// What a checkpoint records about how its run was made, beside the records.
#[derive(Debug, Clone, Copy)]
pub struct Provenance<'a> {
    /// The run's configuration.
    pub config: &'a RunConfig,
    /// The fingerprint of the training and test data.
    pub data: &'a str,
    /// The backend that trained the epochs so far.
    pub backend: crate::BackendKind,
}

impl Checkpoints {
    /// The checkpoints in `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, part: &str, epoch: usize, extension: &str) -> PathBuf {
        self.dir.join(format!("{part}-{epoch}.{extension}"))
    }

    /// The state file of epoch `epoch`.
    pub fn state_path(&self, epoch: usize) -> PathBuf {
        self.path("state", epoch, "json")
    }

    /// Saves the checkpoint of `epoch`: both records (each to a temporary file, synced and
    /// renamed), then the state file that makes it exist.
    ///
    /// # Errors
    /// If a record cannot be encoded or a file written, naming the file.
    pub fn save(
        &self,
        epoch: usize,
        provenance: &Provenance,
        model: &Classifier,
        optimizer: &ModuleOptimizer,
        metrics: &[EpochMetrics],
    ) -> Result<()> {
        let model_bytes = model
            .clone()
            .into_record()
            .into_bytes()
            .map_err(|e| anyhow::anyhow!("cannot encode the model of epoch {epoch}: {e}"))?;
        let optimizer_bytes = optimizer
            .into_bytes()
            .map_err(|e| anyhow::anyhow!("cannot encode the optimizer of epoch {epoch}: {e}"))?;
        let model = self.write_record("model", epoch, &model_bytes)?;
        let optimizer = self.write_record("optim", epoch, &optimizer_bytes)?;
        failpoint::hit("checkpoint");
        self.write_state(epoch, provenance, [model, optimizer], None, metrics)
    }

    /// Writes the state file of `epoch` once its `[model, optimizer]` records are written:
    /// the checkpoint exists from then on.
    ///
    /// # Errors
    /// If the file cannot be written, naming it.
    pub(crate) fn write_state(
        &self,
        epoch: usize,
        provenance: &Provenance,
        [model, optimizer]: [RecordFile; 2],
        scheduler_steps: Option<u64>,
        metrics: &[EpochMetrics],
    ) -> Result<()> {
        let state = CheckpointState {
            format: FORMAT,
            epoch,
            config: provenance.config.clone(),
            data: provenance.data.to_string(),
            model,
            optimizer,
            metrics: metrics.to_vec(),
            backend: Some(provenance.backend.name().to_string()),
            scheduler_steps,
        };
        write_json(&self.state_path(epoch), &state)
    }

    /// Writes `model-E.bpk` or `optim-E.bpk` (`part` = `model`, `optim`) atomically and
    /// describes it for the state file.
    ///
    /// # Errors
    /// If it cannot be written, naming it.
    pub(crate) fn write_record(
        &self,
        part: &str,
        epoch: usize,
        bytes: &[u8],
    ) -> Result<RecordFile> {
        let path = self.path(part, epoch, "bpk");
        write_atomic(&path, bytes)?;
        Ok(RecordFile {
            file: format!("{part}-{epoch}.bpk"),
            bytes: bytes.len() as u64,
            sha256: sha256_hex(bytes),
        })
    }

    /// The epochs that have a state file, in increasing order.
    pub fn epochs(&self) -> Vec<usize> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut epochs: Vec<usize> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                name.strip_prefix("state-")?
                    .strip_suffix(".json")?
                    .parse()
                    .ok()
            })
            .collect();
        epochs.sort_unstable();
        epochs
    }

    /// Whether the folder holds checkpoints of an earlier version of credit, which wrote
    /// model, optimizer and scheduler records and no state files.
    pub fn has_legacy_records(&self) -> bool {
        self.epochs().is_empty()
            && std::fs::read_dir(&self.dir).is_ok_and(|entries| {
                entries.filter_map(|e| e.ok()).any(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    name.starts_with("scheduler-") && name.ends_with(".bpk")
                })
            })
    }

    /// The records without a state file: left by a process killed while it saved a
    /// checkpoint.
    fn orphan_records(&self) -> Vec<(usize, PathBuf)> {
        let epochs = self.epochs();
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        entries
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                ["model-", "optim-"].iter().find_map(|part| {
                    name.strip_prefix(part)
                        .and_then(|rest| rest.strip_suffix(".bpk"))
                        .and_then(|epoch| epoch.parse::<usize>().ok())
                        .filter(|epoch| !epochs.contains(epoch))
                        .map(|epoch| (epoch, e.path()))
                })
            })
            .collect()
    }

    /// The state of `epoch`, with both records read and checked against it.
    ///
    /// # Errors
    /// If the state file or a record is missing, unreadable, of another size or digest, or
    /// of another layout version, naming the file.
    pub fn verify(&self, epoch: usize) -> Result<(CheckpointState, Bytes, Bytes)> {
        let state_path = self.state_path(epoch);
        let state: CheckpointState = read_json(&state_path)?;
        ensure!(
            state.format == FORMAT && state.epoch == epoch,
            "{}: layout {} for epoch {}, expected layout {FORMAT} for epoch {epoch}",
            state_path.display(),
            state.format,
            state.epoch
        );
        let model = self.read_record(&state.model)?;
        let optimizer = self.read_record(&state.optimizer)?;
        Ok((state, model, optimizer))
    }

    fn read_record(&self, record: &RecordFile) -> Result<Bytes> {
        let path = self.dir.join(&record.file);
        let bytes =
            std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        if bytes.len() as u64 != record.bytes {
            bail!(
                "{}: {} bytes, the checkpoint's state file says {}",
                path.display(),
                bytes.len(),
                record.bytes
            );
        }
        if sha256_hex(&bytes) != record.sha256 {
            bail!(
                "{}: its content does not match its SHA-256 in the checkpoint's state file",
                path.display()
            );
        }
        Ok(Bytes::from_bytes_vec(bytes))
    }

    /// The newest intact checkpoint and every newer one that is damaged (newest first).
    pub fn latest_intact(&self) -> (Option<(CheckpointState, Bytes, Bytes)>, Vec<Damaged>) {
        let mut damaged = Vec::new();
        for epoch in self.epochs().into_iter().rev() {
            match self.verify(epoch) {
                Ok(found) => return (Some(found), damaged),
                Err(error) => damaged.push(Damaged {
                    epoch,
                    reason: format!("{error:#}"),
                }),
            }
        }
        (None, damaged)
    }

    /// Keeps the checkpoints of the epochs for which `keep` holds and removes the others
    /// (the state file first, so that a removal cut short leaves no checkpoint that looks
    /// complete), and the records a killed save left without a state file.
    ///
    /// # Errors
    /// If a file cannot be removed, naming it.
    pub fn prune(&self, keep: impl Fn(usize) -> bool) -> Result<()> {
        self.prune_up_to(keep, usize::MAX)
    }

    /// [`Checkpoints::prune`], leaving alone the records of epochs after `last` (a later
    /// epoch's records being written while this one's checkpoint completes).
    ///
    /// # Errors
    /// As [`Checkpoints::prune`].
    pub fn prune_up_to(&self, keep: impl Fn(usize) -> bool, last: usize) -> Result<()> {
        for (epoch, orphan) in self.orphan_records() {
            if epoch <= last {
                remove_if_present(&orphan)?;
            }
        }
        for epoch in self.epochs() {
            if keep(epoch) {
                continue;
            }
            remove_if_present(&self.state_path(epoch))?;
            failpoint::hit("prune");
            for part in ["model", "optim"] {
                remove_if_present(&self.path(part, epoch, "bpk"))?;
            }
        }
        Ok(())
    }
}

impl Checkpoints {
    /// The folder damaged checkpoints are moved into: `checkpoint/damaged/`.
    pub fn damaged_dir(&self) -> PathBuf {
        self.dir.join("damaged")
    }

    /// Moves the files of the checkpoint of `epoch` (state first) into
    /// [`Checkpoints::damaged_dir`], replacing an earlier damaged copy of that epoch: a damaged
    /// checkpoint is set aside for inspection or repair, never deleted.
    ///
    /// # Errors
    /// If a file cannot be moved, naming it.
    pub fn set_aside(&self, epoch: usize) -> Result<PathBuf> {
        let to = self.damaged_dir();
        std::fs::create_dir_all(&to).with_context(|| format!("cannot create {}", to.display()))?;
        let state = self.state_path(epoch);
        let records = ["model", "optim"].map(|part| self.path(part, epoch, "bpk"));
        for file in std::iter::once(&state).chain(&records) {
            if let Some(name) = file.file_name().filter(|_| file.exists()) {
                std::fs::rename(file, to.join(name)).with_context(|| {
                    format!("cannot move {} to {}", file.display(), to.display())
                })?;
            }
        }
        Ok(to)
    }
}

fn remove_if_present(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("cannot remove {}", path.display()))
        }
        _ => Ok(()),
    }
}

/// The network of a checkpoint's model record, built for `config` on `device`.
///
/// # Errors
/// If the record does not decode or does not fit the configured network; `source` names it.
pub fn model_from_record(
    bytes: Bytes,
    config: &RunConfig,
    device: &Device,
    source: &Path,
) -> Result<Classifier> {
    // Parameters take the device's float type: a run trained in f64 evaluates in f32.
    let record = ModuleRecord::from_bytes(bytes)
        .map_err(|e| anyhow::anyhow!("{}: not a model record ({e})", source.display()))?
        .cast_to_module_dtype();
    let seed = credit_model::Seed::new(config.seed).stream(credit_model::Stream::Init);
    config
        .model
        .init(seed, device)
        .try_load_record(record)
        .map_err(|e| {
            anyhow::anyhow!(
                "{}: does not fit the network {:?} of the run ({e})",
                source.display(),
                config.model.sizes
            )
        })
}
