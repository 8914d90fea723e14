//! Running a plan as a SLURM job array: one array task per run, each the command
//! `credit sweep --dir SWEEP --task $SLURM_ARRAY_TASK_ID`. Tasks are requeueable: a task
//! preempted or stopped with SIGTERM stops its run cleanly, and the requeued task resumes it
//! from its last checkpoint.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail, ensure};
use credit_train::BackendKind;
use credit_train::files::write_atomic;

use super::plan::SweepPlan;

/// The job script inside a sweep folder.
pub const SCRIPT_FILE: &str = "slurm.sbatch";

/// The folder of the tasks' output inside a sweep folder, and of the submitted job's id.
pub const SLURM_DIR: &str = "slurm";

/// What the job array asks of SLURM.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SlurmOptions {
    /// `--partition`.
    pub partition: Option<String>,
    /// `--time` (`HH:MM:SS`) of each task.
    pub time: Option<String>,
    /// `--cpus-per-task` (also the task's thread count).
    pub cpus: Option<usize>,
    /// `--gpus` per task (with a GPU backend).
    pub gpus: Option<usize>,
    /// Tasks running at once (`--array=0-N%M`).
    pub max_parallel: Option<usize>,
}

/// `name` is safe to put in a job script unquoted (no shell or SBATCH syntax in it).
fn plain(what: &str, value: &str) -> Result<()> {
    ensure!(
        !value.is_empty()
            && value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.:,".contains(c)),
        "--{what} {value:?} may only hold letters, digits and - _ . : ,"
    );
    Ok(())
}

/// Writes `SWEEP/slurm.sbatch`, the job array of the plan in `dir`, whose tasks run
/// `credit` (the executable `exe`) on `backend`, and returns its path.
///
/// # Errors
/// If an option is malformed, the plan has no runs, or the file cannot be written.
pub fn write_script(
    dir: &Path,
    plan: &SweepPlan,
    options: &SlurmOptions,
    exe: &Path,
    backend: BackendKind,
) -> Result<PathBuf> {
    ensure!(!plan.runs.is_empty(), "{} plans no runs", dir.display());
    if let Some(partition) = &options.partition {
        plain("partition", partition)?;
    }
    if let Some(time) = &options.time {
        plain("time", time)?;
    }
    let dir =
        std::path::absolute(dir).with_context(|| format!("cannot resolve {}", dir.display()))?;
    let exe = std::path::absolute(exe)?;
    let quoted = |path: &Path| format!("'{}'", path.display().to_string().replace('\'', "'\\''"));
    let output = dir.join(SLURM_DIR).join("task-%a.out");
    let mut script = String::from("#!/bin/bash\n");
    let name: String = dir
        .file_name()
        .map(|n| {
            n.to_string_lossy()
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || "-_.".contains(*c))
                .collect()
        })
        .unwrap_or_default();
    let _ = writeln!(script, "#SBATCH --job-name=credit-{name}");
    let last = plan.runs.len() - 1;
    let _ = match options.max_parallel {
        Some(m) => writeln!(script, "#SBATCH --array=0-{last}%{m}"),
        None => writeln!(script, "#SBATCH --array=0-{last}"),
    };
    let _ = writeln!(script, "#SBATCH --output={}", output.display());
    let _ = writeln!(script, "#SBATCH --open-mode=append");
    let _ = writeln!(script, "#SBATCH --requeue");
    // SIGTERM to the batch step (credit itself, through exec) a minute before the time limit:
    // the run stops cleanly after its last whole epoch, and a resubmitted or requeued task
    // resumes it.
    let _ = writeln!(script, "#SBATCH --signal=B:TERM@60");
    if let Some(partition) = &options.partition {
        let _ = writeln!(script, "#SBATCH --partition={partition}");
    }
    if let Some(time) = &options.time {
        let _ = writeln!(script, "#SBATCH --time={time}");
    }
    if let Some(cpus) = options.cpus {
        let _ = writeln!(script, "#SBATCH --cpus-per-task={cpus}");
    }
    if let Some(gpus) = options.gpus {
        let _ = writeln!(script, "#SBATCH --gpus={gpus}");
    }
    let _ = writeln!(
        script,
        "\n# One run of {}/plan.json per array task; a requeued task resumes its run.",
        dir.display()
    );
    let _ = writeln!(
        script,
        "export RAYON_NUM_THREADS=\"${{SLURM_CPUS_PER_TASK:-${{RAYON_NUM_THREADS:-1}}}}\""
    );
    let _ = writeln!(
        script,
        "echo \"task $SLURM_ARRAY_TASK_ID of job $SLURM_ARRAY_JOB_ID on $(hostname), restart ${{SLURM_RESTART_COUNT:-0}}\""
    );
    let _ = writeln!(
        script,
        "exec {} sweep --dir {} --task \"$SLURM_ARRAY_TASK_ID\" --backend {backend}",
        quoted(&exe),
        quoted(&dir)
    );
    std::fs::create_dir_all(dir.join(SLURM_DIR))
        .with_context(|| format!("cannot create {}", dir.join(SLURM_DIR).display()))?;
    let path = dir.join(SCRIPT_FILE);
    write_atomic(&path, script.as_bytes())?;
    Ok(path)
}

/// Submits the job script with `sbatch` and returns the job id (also kept in
/// `SWEEP/slurm/job-id` for `--status`).
///
/// # Errors
/// If `sbatch` cannot be run or refuses the job (its message is part of the error).
pub fn submit(dir: &Path, script: &Path) -> Result<String> {
    let output = Command::new("sbatch")
        .arg("--parsable")
        .arg(script)
        .output()
        .context("cannot run sbatch (is SLURM installed and on PATH?)")?;
    if !output.status.success() {
        bail!(
            "sbatch refused {}: {}",
            script.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let id = stdout
        .trim()
        .split(';')
        .next()
        .unwrap_or_default()
        .to_string();
    ensure!(
        !id.is_empty() && id.chars().all(|c| c.is_ascii_digit()),
        "sbatch printed no job id: {stdout:?}"
    );
    write_atomic(
        &dir.join(SLURM_DIR).join("job-id"),
        format!("{id}\n").as_bytes(),
    )?;
    Ok(id)
}

/// The id of the job last submitted for the sweep in `dir`, if any.
pub fn submitted_job(dir: &Path) -> Option<String> {
    std::fs::read_to_string(dir.join(SLURM_DIR).join("job-id"))
        .ok()
        .map(|id| id.trim().to_string())
        .filter(|id| !id.is_empty())
}

/// The states SLURM reports for the tasks of job `job` that it still knows (`squeue`),
/// as `(task index, state)`; `None` if `squeue` cannot be asked.
pub fn queued_tasks(job: &str) -> Option<Vec<(usize, String)>> {
    let output = Command::new("squeue")
        .args(["-h", "-r", "-j", job, "-o", "%K %T"])
        .output()
        .ok()?;
    if !output.status.success() {
        // squeue exits 1 once the job is no longer known; nothing is queued then.
        return Some(Vec::new());
    }
    Some(parse_queue(&String::from_utf8_lossy(&output.stdout)))
}

/// `squeue -r -o '%K %T'` lines: an array task id and a state (plain jobs print `N/A`).
fn parse_queue(text: &str) -> Vec<(usize, String)> {
    text.lines()
        .filter_map(|line| {
            let (task, state) = line.trim().split_once(' ')?;
            Some((task.parse().ok()?, state.trim().to_string()))
        })
        .collect()
}

/// The final states `sacct` reports for the tasks of job `job`, if accounting is enabled.
pub fn accounted_tasks(job: &str) -> Option<Vec<(usize, String)>> {
    let output = Command::new("sacct")
        .args(["-n", "-X", "-P", "-j", job, "-o", "JobID,State"])
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&output.stdout);
    Some(
        text.lines()
            .filter_map(|line| {
                let (id, state) = line.split_once('|')?;
                let task = id.split_once('_')?.1.parse().ok()?;
                Some((task, state.split_whitespace().next()?.to_string()))
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_lines_give_task_states() {
        let text = "2 PENDING\n0 RUNNING\nN/A RUNNING\n1 RUNNING\n";
        assert_eq!(
            parse_queue(text),
            [
                (2, "PENDING".to_string()),
                (0, "RUNNING".to_string()),
                (1, "RUNNING".to_string())
            ]
        );
    }

    #[test]
    fn unsafe_options_are_refused() {
        assert!(plain("partition", "gpu-long").is_ok());
        assert!(plain("time", "01:30:00").is_ok());
        assert!(plain("partition", "x\n#SBATCH --mem=1").is_err());
        assert!(plain("time", "$(rm -rf /)").is_err());
    }
}
