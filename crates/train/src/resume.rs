//! Where a training session starts: a fresh run's empty folder, or the latest intact
//! checkpoint of a run to resume, and the settings a resume may change.

use anyhow::{Result, bail, ensure};

use crate::config::RunConfig;
use crate::lock::LOCK_FILE;
use crate::metrics::EpochMetrics;
use crate::run::{CONFIG_FILE, RunDir};

/// The keys `--resume` may change: they do not change what the epochs already trained
/// computed. `data.dir` (`data.path`) may move if the images there are the same.
pub const RESUMABLE_KEYS: [&str; 5] = [
    "train.epochs",
    "train.keep_checkpoints",
    "train.checkpoint_every",
    "data.dir",
    "data.path",
];

/// Where a training session starts.
pub(crate) struct Start {
    /// Epochs already trained (0 for a fresh run).
    pub(crate) epoch: usize,
    /// The model and optimizer records of that epoch's checkpoint.
    pub(crate) records: Option<(burn::tensor::Bytes, burn::tensor::Bytes)>,
    /// The rows of `metrics.csv` up to that epoch.
    pub(crate) rows: Vec<EpochMetrics>,
    /// The data fingerprint the checkpoint was trained on.
    pub(crate) data: Option<String>,
    /// The backend the checkpoint was trained on.
    pub(crate) backend: Option<String>,
}

/// Checks that a fresh run may use the folder: empty but for its lock and what a start
/// killed before its first checkpoint leaves (checkpoint records without a state file, which
/// are removed).
pub(crate) fn fresh_run(run: &RunDir) -> Result<()> {
    let checkpoints = run.checkpoints();
    if checkpoints.epochs().is_empty() && !checkpoints.has_legacy_records() {
        checkpoints.prune(|_| false)?;
        let _ = std::fs::remove_dir(checkpoints.dir());
    }
    let occupied = std::fs::read_dir(run.path()).is_ok_and(|entries| {
        entries
            .filter_map(|e| e.ok())
            .any(|e| e.file_name() != LOCK_FILE)
    });
    if occupied {
        bail!(
            "{} is not empty: choose another --out, or --resume to continue that run",
            run.path().display()
        );
    }
    Ok(())
}

/// Where `--resume` starts: the latest intact checkpoint, if `config` may continue it.
pub(crate) fn resume_point(config: &RunConfig, run: &RunDir) -> Result<Start> {
    let path = run.path().display();
    let checkpoints = run.checkpoints();
    if !run.exists() && checkpoints.epochs().is_empty() {
        bail!("--resume: {path} holds no run (no {CONFIG_FILE}, no checkpoint)");
    }
    let (latest, damaged) = checkpoints.latest_intact();
    for d in &damaged {
        eprintln!(
            "warning: the checkpoint of epoch {} is damaged and is not used: {}",
            d.epoch, d.reason
        );
    }
    // Once the resume is allowed, damaged checkpoints are moved aside, not deleted.
    let set_aside = || -> Result<()> {
        for d in &damaged {
            let to = checkpoints.set_aside(d.epoch)?;
            eprintln!(
                "warning: the damaged checkpoint of epoch {} is kept in {}",
                d.epoch,
                to.display()
            );
        }
        Ok(())
    };
    let Some((state, model, optimizer)) = latest else {
        if checkpoints.has_legacy_records() {
            bail!(
                "--resume: {} was written by an earlier version of credit (no state files) and cannot be resumed; start a new run",
                checkpoints.dir().display()
            );
        }
        // Nothing trained yet to keep: the run starts again from its seed, as it began.
        if run.exists() {
            check_resumable(config, &run.config()?, 0, run)?;
        }
        set_aside()?;
        fresh_run_leftovers(run)?;
        if !damaged.is_empty() {
            eprintln!("warning: no intact checkpoint; {path} starts again from epoch 0");
        }
        return Ok(Start {
            epoch: 0,
            records: None,
            rows: Vec::new(),
            data: None,
            backend: None,
        });
    };
    if !damaged.is_empty() {
        eprintln!("warning: resuming {path} from epoch {}", state.epoch);
    }
    check_resumable(config, &state.config, state.epoch, run)?;
    set_aside()?;
    if state.epoch == config.train.epochs && run.is_complete() {
        bail!(
            "{path} already holds epoch {} of train.epochs = {}; raise it with --set train.epochs=N to continue",
            state.epoch,
            config.train.epochs
        );
    }
    let rows = state
        .metrics
        .iter()
        .filter(|row| row.epoch <= state.epoch)
        .cloned()
        .collect();
    Ok(Start {
        epoch: state.epoch,
        records: Some((model, optimizer)),
        rows,
        data: Some(state.data),
        backend: state.backend,
    })
}

/// Removes what a run stopped before its first checkpoint left in `checkpoint/`: records
/// without a state file, and damaged checkpoints no longer of use.
fn fresh_run_leftovers(run: &RunDir) -> Result<()> {
    run.checkpoints().prune(|_| false)
}

/// Fails unless `config` differs from `trained` (what the run's `epoch` epochs were trained
/// with) only in [`RESUMABLE_KEYS`] and still covers those epochs.
fn check_resumable(
    config: &RunConfig,
    trained: &RunConfig,
    epoch: usize,
    run: &RunDir,
) -> Result<()> {
    let refused: Vec<String> = config
        .differences(trained)
        .into_iter()
        .filter(|(key, _, _)| !RESUMABLE_KEYS.contains(&key.as_str()))
        .map(|(key, was, now)| format!("{key} (trained with {was}, now {now})"))
        .collect();
    if !refused.is_empty() {
        bail!(
            "--resume cannot change {} of {}: the epochs trained so far used the old values. Only {} may change on resume; start a new run for other settings",
            refused.join(", "),
            run.path().display(),
            RESUMABLE_KEYS.join(", ")
        );
    }
    ensure!(
        config.train.epochs >= epoch,
        "--resume: {} already trained {epoch} epochs, more than train.epochs = {}",
        run.path().display(),
        config.train.epochs
    );
    Ok(())
}
