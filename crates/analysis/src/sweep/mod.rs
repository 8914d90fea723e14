//! Sweeps: many runs over settings and seeds (`credit sweep`), or the experiments of
//! `credit reproduce`, planned once into `plan.json` ([`SweepPlan`]), run one task per run
//! ([`run_task`], locally or as a job array, [`slurm`]) and reported together.
//!
//! ```text
//! SWEEP/
//!   plan.json            every run: index, folder, group, setting, seed, kind, exact config
//!   <run folders>/       one per run, as `credit train` leaves them, with analysis/
//!   logs/                the output of local tasks
//!   slurm/               the job array's script and its output per task
//!   report.html, sweep.json, sweep.csv, *.svg   the report of the complete runs
//! ```

mod plan;
pub mod reproduce;
pub mod slurm;
mod summary;
mod task;

use std::path::{Path, PathBuf};

use anyhow::Result;

pub use plan::{PLAN_FILE, PlanKind, SweepPlan, SweepRun, plan, swept_keys};
pub use summary::{SettingSummary, Stat, summarise, write_sweep_report};
pub use task::{
    ANALYSIS_FILE, FAILURE_FILE, RunState, TaskOutcome, complete_results, is_complete, run_task,
    status,
};

/// Writes the report of the complete runs of the plan in `dir` into `dir` (a sweep's
/// comparison, or `credit reproduce`'s), and returns the files written.
///
/// # Errors
/// If a complete run's files cannot be read, or the report cannot be written.
pub fn write_sweep_folder_report(dir: &Path, plan: &SweepPlan) -> Result<Vec<PathBuf>> {
    let (analyses, summaries) = complete_results(plan, dir)?;
    match plan.kind {
        PlanKind::Sweep => {
            let analysed: Vec<_> = analyses
                .into_iter()
                .map(|(i, a)| (plan.runs[i].clone(), a))
                .collect();
            let baselines: Vec<_> = summaries
                .into_iter()
                .map(|(i, s)| (plan.runs[i].clone(), s))
                .collect();
            let summaries = summarise(&analysed, &baselines);
            write_sweep_report(plan, &analysed, &summaries, dir)
        }
        PlanKind::Reproduce => reproduce::write_report(plan, dir, &analyses, &summaries),
    }
}
