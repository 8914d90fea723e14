//! Where a training session starts: a fresh run's empty folder, or the latest intact
//! checkpoint of a run to resume, and the settings a resume may change.

use anyhow::{Context, Result, bail, ensure};

use crate::config::RunConfig;
use crate::lock::LOCK_FILE;
use crate::metrics::EpochMetrics;
use crate::run::{CONFIG_FILE, METRICS_FILE, MODEL_FILE, RunDir};

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
    /// The model record of that epoch (its checkpoint's, or the final model's).
    pub(crate) model: Option<burn::tensor::Bytes>,
    /// The optimizer record of that epoch's checkpoint (none: a fresh optimizer).
    pub(crate) optimizer: Option<burn::tensor::Bytes>,
    /// The steps of the learning-rate scheduler, where the checkpoint recorded them.
    pub(crate) scheduler_steps: Option<u64>,
    /// The rows of `metrics.csv` up to that epoch.
    pub(crate) rows: Vec<EpochMetrics>,
    /// The data fingerprint the checkpoint was trained on.
    pub(crate) data: Option<String>,
    /// The backend the checkpoint was trained on.
    pub(crate) backend: Option<String>,
}

impl Start {
    /// A fresh run: nothing trained.
    pub(crate) fn fresh() -> Self {
        Self {
            epoch: 0,
            model: None,
            optimizer: None,
            scheduler_steps: None,
            rows: Vec::new(),
            data: None,
            backend: None,
        }
    }
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

/// What a run folder holds of trained work outside its checkpoints: the final model's
/// epoch (from `summary.json`) and the last epoch of `metrics.csv`.
struct TrainedWork {
    final_epoch: Option<usize>,
    rows_epoch: Option<usize>,
}

impl TrainedWork {
    fn of(run: &RunDir) -> Self {
        let final_epoch = run
            .file(MODEL_FILE)
            .is_file()
            .then(|| run.summary().map_or(0, |s| s.epochs));
        let rows_epoch = run
            .metrics()
            .ok()
            .and_then(|rows| rows.last().map(|r| r.epoch));
        Self {
            final_epoch,
            rows_epoch,
        }
    }

    /// The last epoch trained, as these files show it.
    fn last(&self) -> Option<usize> {
        self.final_epoch.max(self.rows_epoch).filter(|&e| e > 0)
    }

    /// `its final model (epoch 3, model.bpk) and metrics.csv rows of epochs 1 to 3`.
    fn describe(&self, run: &RunDir) -> String {
        let mut parts = Vec::new();
        if let Some(epoch) = self.final_epoch {
            let epoch = if epoch > 0 {
                format!("epoch {epoch}, ")
            } else {
                String::new()
            };
            parts.push(format!(
                "its final model ({epoch}{})",
                run.file(MODEL_FILE).display()
            ));
        }
        if let Some(epoch) = self.rows_epoch {
            parts.push(format!(
                "{} rows up to epoch {epoch}",
                run.file(METRICS_FILE).display()
            ));
        }
        parts.join(" and ")
    }
}

/// How to go on from a final model without its checkpoint.
fn from_final_model_hint(run: &RunDir) -> String {
    format!(
        "to continue from the final model with a fresh optimizer state, run `credit train --out {} --resume --from-final-model --set train.epochs=N`; or train a new run into another --out",
        run.path().display()
    )
}

/// Where `--resume` starts: the latest intact checkpoint, if `config` may continue it; with
/// `from_final_model`, the run's final model with a fresh optimizer.
///
/// Trained epochs are never dropped unasked: without an intact checkpoint, a run that holds
/// a final model or rows in `metrics.csv` is refused (naming them, and how to go on); a
/// fallback to an older checkpoint that would replace a final model is refused likewise,
/// and one that trains again epochs whose checkpoints are damaged says which.
pub(crate) fn resume_point(
    config: &RunConfig,
    run: &RunDir,
    from_final_model: bool,
) -> Result<Start> {
    let path = run.path().display();
    let checkpoints = run.checkpoints();
    if !run.exists() && checkpoints.epochs().is_empty() {
        bail!("--resume: {path} holds no run (no {CONFIG_FILE}, no checkpoint)");
    }
    // `symlink_metadata`: a link to nowhere or in a loop is refused too.
    if let Some(problem) = run.final_model_problem()
        && std::fs::symlink_metadata(run.file(MODEL_FILE)).is_ok()
    {
        bail!("--resume: {problem}");
    }
    let (latest, damaged) = checkpoints.latest_intact();
    for d in &damaged {
        eprintln!(
            "warning: the checkpoint of epoch {} is damaged and is not used: {}",
            d.epoch, d.reason
        );
    }
    let work = TrainedWork::of(run);
    let latest_epoch = latest.as_ref().map_or(0, |(state, _, _)| state.epoch);
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
    if from_final_model {
        let start = final_model_start(config, run, latest_epoch)?;
        set_aside()?;
        return Ok(start);
    }
    if let Some(final_epoch) = work.final_epoch.filter(|&e| e > latest_epoch) {
        let intact = match latest_epoch {
            0 => "no intact checkpoint".to_string(),
            e => format!("its newest intact checkpoint is of epoch {e}"),
        };
        bail!(
            "--resume: {path} holds {} but {intact} ({}): resuming would train epochs {} to {final_epoch} again and replace the final model; {}",
            work.describe(run),
            checkpoints.dir().display(),
            latest_epoch + 1,
            from_final_model_hint(run)
        );
    }
    let Some((state, model, optimizer)) = latest else {
        if checkpoints.has_legacy_records() {
            bail!(
                "--resume: {} was written by an earlier version of credit (no state files) and cannot be resumed; start a new run",
                checkpoints.dir().display()
            );
        }
        if let Some(last) = work.last() {
            bail!(
                "--resume: {path} holds {} but no intact checkpoint ({} is missing, empty or damaged): resuming would train epochs 1 to {last} again from the initialisation. Restore the checkpoint folder from a copy of the run, or train a new run into another --out",
                work.describe(run),
                checkpoints.dir().display(),
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
        return Ok(Start::fresh());
    };
    check_resumable(config, &state.config, state.epoch, run)?;
    if let Some(last) = work.rows_epoch.filter(|&e| e > state.epoch) {
        eprintln!(
            "warning: resuming {path} from epoch {}: epochs {} to {last} (their checkpoints are damaged) are dropped and trained again",
            state.epoch,
            state.epoch + 1
        );
    } else if !damaged.is_empty() {
        eprintln!("warning: resuming {path} from epoch {}", state.epoch);
    }
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
        model: Some(model),
        optimizer: Some(optimizer),
        scheduler_steps: state.scheduler_steps,
        rows,
        data: Some(state.data),
        backend: state.backend,
    })
}

/// `--resume --from-final-model`: the final model of a finished run (epoch `E` of its
/// `summary.json`) with a fresh optimizer state, for a run whose checkpoint of `E` is lost.
/// Every random draw of epoch `E + 1` on is the same function of the seed as in the run
/// that kept its checkpoint; only AdamW's moments start from zero (under the 2020 protocol,
/// which restarts AdamW every epoch, nothing differs).
fn final_model_start(config: &RunConfig, run: &RunDir, latest_epoch: usize) -> Result<Start> {
    let path = run.path().display();
    let summary = run.summary().with_context(|| {
        format!(
            "--from-final-model: {path} holds no finished run (its final model and summary.json)"
        )
    })?;
    let model_file = run.file(MODEL_FILE);
    ensure!(
        model_file.is_file(),
        "--from-final-model: {} is missing",
        model_file.display()
    );
    ensure!(
        summary.epochs > latest_epoch,
        "--from-final-model: {path} has an intact checkpoint of epoch {latest_epoch}, as late as its final model (epoch {}): continue it with plain --resume, which keeps the optimizer state",
        summary.epochs
    );
    check_resumable(config, &run.config()?, summary.epochs, run)?;
    ensure!(
        config.train.epochs > summary.epochs,
        "--from-final-model: {path} already holds epoch {} of train.epochs = {}; raise it with --set train.epochs=N to continue",
        summary.epochs,
        config.train.epochs
    );
    let bytes = std::fs::read(&model_file)
        .with_context(|| format!("cannot read {}", model_file.display()))?;
    let rows = run
        .metrics()?
        .into_iter()
        .filter(|row| row.epoch <= summary.epochs)
        .collect::<Vec<_>>();
    ensure!(
        rows.len() == summary.epochs && rows.iter().enumerate().all(|(i, r)| r.epoch == i + 1),
        "--from-final-model: {} does not hold one row for each of the epochs 1 to {} the final model was trained for",
        run.file(METRICS_FILE).display(),
        summary.epochs
    );
    eprintln!(
        "warning: continuing {path} from its final model (epoch {}) with a fresh optimizer state (no checkpoint of that epoch)",
        summary.epochs
    );
    Ok(Start {
        epoch: summary.epochs,
        model: Some(burn::tensor::Bytes::from_bytes_vec(bytes)),
        optimizer: None,
        scheduler_steps: None,
        rows,
        data: None,
        backend: Some(summary.backend),
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
