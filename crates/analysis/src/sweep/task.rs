//! One run of a plan as one task (`credit sweep --dir D --task I`): train it (resuming it if
//! it has started, finishing it if only its final files are missing), then analyse it. Each
//! task writes only its own run folder, which it locks, so any number of tasks may work on
//! one sweep at once; a task that finds every run complete writes the sweep's report.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use credit_train::files::{read_json, write_atomic};
use credit_train::{
    BackendKind, Display, ModelKind, RunDir, StopSignal, TrainOptions, TrainOutcome,
};
use serde::{Deserialize, Serialize};

use super::plan::SweepPlan;
use crate::analyze::{Analysis, analyze};
use crate::report::write_report;

/// The analysis of a run, inside its folder.
pub const ANALYSIS_FILE: &str = "analysis/analysis.json";

/// Written into a run's folder when its task fails, removed when it starts again.
pub const FAILURE_FILE: &str = "task-error.txt";

/// How a task ended.
#[derive(Debug, Clone, PartialEq)]
pub enum TaskOutcome {
    /// The run was already trained and analysed.
    AlreadyComplete,
    /// The run is trained and analysed now.
    Completed,
    /// Training was stopped (SIGTERM from a scheduler, say) after this epoch; run the task
    /// again to resume it.
    Stopped(usize),
}

/// Where a run of a plan stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunState {
    /// Trained (and analysed, for a spike-and-slab run).
    Done,
    /// A process is working on it now (it holds the run's lock).
    Running,
    /// Its last task failed; the message is in its `task-error.txt`.
    Failed,
    /// Started and stopped (or killed) after this many epochs; its next task resumes it.
    Stopped(usize),
    /// Not started.
    Pending,
}

impl RunState {
    /// `done`, `running`, `failed`, `stopped at epoch E`, `pending`.
    pub fn label(&self) -> String {
        match self {
            RunState::Done => "done".into(),
            RunState::Running => "running".into(),
            RunState::Failed => "failed".into(),
            RunState::Stopped(epoch) => format!("stopped at epoch {epoch}"),
            RunState::Pending => "pending".into(),
        }
    }
}

/// Whether run `index` of the plan is trained and, if it should be, analysed (the analysis
/// of its final epoch).
pub fn is_complete(plan: &SweepPlan, dir: &Path, index: usize) -> bool {
    let run = plan.run_dir(dir, index);
    if !run.is_complete() {
        return false;
    }
    if plan.runs[index].kind == ModelKind::Deterministic {
        return true;
    }
    let analysed: Option<Analysis> = read_json(&run.path().join(ANALYSIS_FILE)).ok();
    let trained = run.summary().ok().map(|s| s.epochs);
    analysed.is_some_and(|a| Some(a.epochs) == trained)
}

/// Trains and analyses run `index` of the plan in `dir` on `backend`; `stop` ends training
/// cleanly (the run resumes in the next task). The run folder is locked while the task works
/// on it; a failure is recorded in its `task-error.txt` (see [`status`]).
///
/// # Errors
/// If there is no such run, another process works on it, or training or the analysis fails.
pub fn run_task(
    dir: &Path,
    index: usize,
    backend: BackendKind,
    stop: StopSignal,
) -> Result<TaskOutcome> {
    let plan = SweepPlan::load(dir)?;
    let Some(planned) = plan.runs.get(index) else {
        bail!(
            "{} has runs 0 to {}, not {index}",
            dir.display(),
            plan.runs.len().saturating_sub(1)
        );
    };
    let run = plan.run_dir(dir, index);
    if is_complete(&plan, dir, index) {
        return Ok(TaskOutcome::AlreadyComplete);
    }
    let failure = run.file(FAILURE_FILE);
    let _ = std::fs::remove_file(&failure);
    let result = train_and_analyse(&plan, dir, index, backend, stop);
    if let Err(error) = &result
        && !format!("{error:#}").contains("is in use by")
    {
        let _ = write_atomic(&failure, format!("{error:#}\n").as_bytes());
    }
    let outcome = result.with_context(|| format!("sweep run {index} ({})", planned.name))?;
    if outcome == TaskOutcome::Completed && (0..plan.runs.len()).all(|i| is_complete(&plan, dir, i))
    {
        super::write_sweep_folder_report(dir, &plan)?;
    }
    Ok(outcome)
}

fn train_and_analyse(
    plan: &SweepPlan,
    dir: &Path,
    index: usize,
    backend: BackendKind,
    stop: StopSignal,
) -> Result<TaskOutcome> {
    let planned = &plan.runs[index];
    let run = plan.run_dir(dir, index);
    if !run.is_complete() {
        let mut options = TrainOptions::new(backend);
        // A run started before (its configuration or a checkpoint is there) resumes; a start
        // killed before it wrote anything worth keeping starts again (training cleans up).
        options.resume = run.exists() || !run.checkpoints().epochs().is_empty();
        options.display = Display::Lines;
        options.stop = stop;
        if let TrainOutcome::Stopped { epoch, .. } =
            credit_train::train(&planned.config, &run, &options)?
        {
            return Ok(TaskOutcome::Stopped(epoch));
        }
    }
    if planned.kind == ModelKind::SpikeSlab {
        let _lock = run.lock("credit sweep --task (analysis)")?;
        let analysed = analyze(&run, &plan.analysis, backend, None)?;
        write_report(&analysed, &run.path().join("analysis"))?;
    }
    Ok(TaskOutcome::Completed)
}

/// Where each run of the plan in `dir` stands, in index order.
pub fn status(plan: &SweepPlan, dir: &Path) -> Vec<RunState> {
    (0..plan.runs.len())
        .map(|index| {
            let run = plan.run_dir(dir, index);
            if is_complete(plan, dir, index) {
                RunState::Done
            } else if credit_train::RunLock::holder(run.path()).is_some() {
                RunState::Running
            } else if run.file(FAILURE_FILE).is_file() {
                RunState::Failed
            } else if run.exists() {
                RunState::Stopped(run.checkpoints().epochs().last().copied().unwrap_or(0))
            } else {
                RunState::Pending
            }
        })
        .collect()
}

/// The complete runs of a plan by index: the analyses of its spike-and-slab runs and the
/// summaries of its deterministic ones.
pub type CompleteRuns = (
    Vec<(usize, Analysis)>,
    Vec<(usize, credit_train::RunSummary)>,
);

/// The analyses of the plan's complete spike-and-slab runs and the summaries of its complete
/// deterministic ones.
///
/// # Errors
/// If a complete run's files cannot be read, naming them.
pub fn complete_results(plan: &SweepPlan, dir: &Path) -> Result<CompleteRuns> {
    let (mut analyses, mut summaries) = (Vec::new(), Vec::new());
    for (index, run) in plan.runs.iter().enumerate() {
        if !is_complete(plan, dir, index) {
            continue;
        }
        let path: PathBuf = dir.join(&run.name);
        match run.kind {
            ModelKind::SpikeSlab => analyses.push((index, read_json(&path.join(ANALYSIS_FILE))?)),
            ModelKind::Deterministic | ModelKind::SpikeSlabRnn => {
                summaries.push((index, RunDir::new(path).summary()?))
            }
        }
    }
    Ok((analyses, summaries))
}
