//! `credit sweep` and `credit reproduce`: plan the runs, run them (as child processes `--jobs`
//! at a time, or one by index for a job array, or as a SLURM job array), report on them.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Args;
use credit_analysis::AnalysisConfig;
use credit_analysis::sweep::reproduce::{self, ReproduceOptions};
use credit_analysis::sweep::slurm::{self, SlurmOptions};
use credit_analysis::sweep::{
    RunState, SweepPlan, TaskOutcome, run_task, status, write_sweep_folder_report,
};
use credit_train::{BackendKind, StopSignal};

use crate::BackendArg;

#[derive(Args)]
pub struct SweepArgs {
    /// Base TOML run configuration of a new sweep.
    #[arg(long, required_unless_present = "dir", conflicts_with = "dir")]
    config: Option<PathBuf>,
    /// Override or sweep a value: `key=v` sets it, `key=v1,v2,...` sweeps it (repeatable;
    /// several swept keys give their product).
    #[arg(long = "set", value_name = "KEY=VALUES", conflicts_with = "dir")]
    sets: Vec<String>,
    /// Seeds per setting (0, 1, ...).
    #[arg(long, default_value_t = 1, conflicts_with = "dir")]
    seeds: usize,
    /// Folder of a new sweep. Default: runs/sweep- and the config file's name without its
    /// extension (runs/sweep-mnist for configs/mnist.toml).
    #[arg(long, conflicts_with = "dir")]
    out: Option<PathBuf>,
    /// Skip the deterministic baseline runs.
    #[arg(long, conflicts_with = "dir")]
    no_baseline: bool,
    /// Analysis settings (TOML) for every run.
    #[arg(long, conflicts_with = "dir")]
    analysis_config: Option<PathBuf>,
    #[command(flatten)]
    common: SweepCommon,
}

#[derive(Args)]
pub struct ReproduceArgs {
    /// Folder of the reproduction.
    #[arg(long, default_value = "runs/reproduce", conflicts_with = "dir")]
    out: PathBuf,
    /// Folder of the presets (mnist.toml, mnist-2022.toml and their deterministic baselines).
    #[arg(long, default_value = "configs", conflicts_with = "dir")]
    configs: PathBuf,
    /// Seeds per protocol and training-set size.
    #[arg(long, default_value_t = 3, conflicts_with = "dir")]
    seeds: usize,
    /// Training-set sizes of the size sweep, besides the protocols' 10,000 (0: all 60,000);
    /// empty for none.
    #[arg(long, default_value = "20000,40000,0", value_parser = parse_sizes, conflicts_with = "dir")]
    sizes: Sizes,
    /// Epochs of every run (the same as --set train.epochs=N): 200 and --seeds 5 is what
    /// the 2020 script's own __main__ runs; the authors' numbers are of 100 epochs, so
    /// other budgets are shown beside them, not compared.
    #[arg(long, conflicts_with = "dir")]
    epochs: Option<usize>,
    /// Override a value in every run, e.g. --set train.epochs=5 for a quick look.
    #[arg(long = "set", value_name = "KEY=VALUE", conflicts_with = "dir")]
    overrides: Vec<String>,
    /// Analysis settings (TOML) for every run.
    #[arg(long, conflicts_with = "dir")]
    analysis_config: Option<PathBuf>,
    #[command(flatten)]
    common: SweepCommon,
}

/// What to do with a planned sweep.
#[derive(Args)]
pub struct SweepCommon {
    /// Folder of an existing sweep (its plan.json) to continue, run a task of, report on.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Only write the plan (plan.json) and print the number of runs.
    #[arg(long)]
    plan: bool,
    /// Train and analyse run I of the plan (one task of a job array), then exit.
    #[arg(long, value_name = "I")]
    task: Option<usize>,
    /// Print where each run stands: done, running, failed, stopped, pending (with SLURM's
    /// view of a submitted job array).
    #[arg(long)]
    status: bool,
    /// Write the report of the runs complete so far, then exit.
    #[arg(long)]
    report: bool,
    /// Write slurm.sbatch, a SLURM job array with one task per run.
    #[arg(long)]
    slurm: bool,
    /// With --slurm: submit it with sbatch and print the job id.
    #[arg(long, requires = "slurm")]
    submit: bool,
    /// With --slurm: the partition.
    #[arg(long, requires = "slurm")]
    partition: Option<String>,
    /// With --slurm: each task's time limit, HH:MM:SS.
    #[arg(long, requires = "slurm")]
    time: Option<String>,
    /// With --slurm: CPUs per task (the task's thread count).
    #[arg(long, requires = "slurm")]
    cpus: Option<usize>,
    /// With --slurm: GPUs per task (with --backend wgpu).
    #[arg(long, requires = "slurm")]
    gpus: Option<usize>,
    /// With --slurm: tasks running at once.
    #[arg(long, requires = "slurm")]
    max_parallel: Option<usize>,
    /// Runs trained (and analysed) at the same time, locally.
    #[arg(long, default_value_t = 1)]
    jobs: usize,
    #[command(flatten)]
    backend: BackendArg,
}

fn analysis_settings(path: &Option<PathBuf>) -> Result<AnalysisConfig> {
    match path {
        Some(path) => AnalysisConfig::load(path),
        None => Ok(AnalysisConfig::default()),
    }
}

/// `credit sweep`: plans, runs, reports on or submits a sweep.
///
/// # Errors
/// If the config, the plan or the analysis settings are invalid, a run fails, or SLURM
/// refuses the job array.
pub fn run_sweep(args: SweepArgs) -> Result<ExitCode> {
    let dir = match (&args.config, &args.common.dir) {
        (Some(config), _) => {
            let analysis = analysis_settings(&args.analysis_config)?;
            let plan =
                SweepPlan::sweep(config, &args.sets, args.seeds, !args.no_baseline, analysis)?;
            let out = args.out.clone().unwrap_or_else(|| {
                let stem = config.file_stem().unwrap_or_default().to_string_lossy();
                PathBuf::from("runs").join(format!("sweep-{stem}"))
            });
            refuse_run_folder(&out)?;
            plan.write_or_check(&out)?;
            out
        }
        (None, Some(dir)) => dir.clone(),
        (None, None) => unreachable!("clap requires --config or --dir"),
    };
    act(&dir, &args.common)
}

/// `credit reproduce`: the sweep of both of the authors' protocols.
///
/// # Errors
/// As [`run_sweep`].
pub fn run_reproduce(args: ReproduceArgs) -> Result<ExitCode> {
    let dir = match &args.common.dir {
        Some(dir) => dir.clone(),
        None => {
            if args.epochs.is_some()
                && let Some(set) = args
                    .overrides
                    .iter()
                    .find(|o| o.trim_start().starts_with("train.epochs"))
            {
                anyhow::bail!("--epochs and --set {set}: give the number of epochs once");
            }
            let options = ReproduceOptions {
                configs: args.configs.clone(),
                seeds: args.seeds,
                sizes: args.sizes.0.clone(),
                overrides: args
                    .epochs
                    .map(|e| format!("train.epochs={e}"))
                    .into_iter()
                    .chain(args.overrides.iter().cloned())
                    .collect(),
                analysis: analysis_settings(&args.analysis_config)?,
            };
            refuse_run_folder(&args.out)?;
            let plan = reproduce::plan(&options)?;
            plan.write_or_check(&args.out)?;
            args.out.clone()
        }
    };
    act(&dir, &args.common)
}

/// A sweep's `--out` must not be a run folder, nor lie among a run's own files.
fn refuse_run_folder(out: &Path) -> Result<()> {
    if credit_train::RunDir::new(out).exists() {
        bail!(
            "--out {} holds a run (its config.toml): a sweep needs a folder of its own",
            out.display()
        );
    }
    if out.join(credit_analysis::sweep::PLAN_FILE).is_file() {
        return Ok(());
    }
    credit_train::files::check_output_dir(out, "--out")
}

/// Does what the flags ask of the planned sweep in `dir`.
fn act(dir: &Path, common: &SweepCommon) -> Result<ExitCode> {
    let plan = SweepPlan::load(dir)?;
    let backend = common.backend.resolve()?;
    if common.plan {
        out!(
            "{} runs planned in {}",
            plan.runs.len(),
            dir.join(credit_analysis::sweep::PLAN_FILE).display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(index) = common.task {
        return task(dir, index, backend);
    }
    if common.status {
        print_status(dir, &plan);
        return Ok(ExitCode::SUCCESS);
    }
    if common.report {
        let written = write_sweep_folder_report(dir, &plan)?;
        crate::show::written(&written, dir);
        return Ok(ExitCode::SUCCESS);
    }
    if common.slurm {
        let options = SlurmOptions {
            partition: common.partition.clone(),
            time: common.time.clone(),
            cpus: common.cpus,
            gpus: common.gpus,
            max_parallel: common.max_parallel,
        };
        let exe = std::env::current_exe().context("cannot find the credit executable")?;
        let script = slurm::write_script(dir, &plan, &options, &exe, backend)?;
        out!("wrote {} ({} tasks)", script.display(), plan.runs.len());
        if common.submit {
            let job = slurm::submit(dir, &script)?;
            out!(
                "submitted job array {job}; follow it with `credit sweep --dir {} --status`",
                dir.display()
            );
        } else {
            out!("submit it with `sbatch {}`", script.display());
        }
        return Ok(ExitCode::SUCCESS);
    }
    // One local sweep per folder: two would start the same runs and share their logs.
    let _lock = credit_train::RunLock::acquire(dir, "credit sweep")?;
    let stop = StopSignal::on_interrupt_and_terminate()
        .context("cannot install the SIGINT and SIGTERM handlers")?;
    run_locally(dir, &plan, common.jobs, backend, &stop)?;
    if stop.requested().is_some() {
        out!(
            "stopped; continue with `credit sweep --dir {}` (complete runs are kept, stopped ones resume)",
            dir.display()
        );
        return Ok(ExitCode::from(stop.exit_code()));
    }
    let written = write_sweep_folder_report(dir, &plan)?;
    crate::show::sweep_report(dir, &plan)?;
    crate::show::written(&written, dir);
    Ok(ExitCode::SUCCESS)
}

/// `--task I`: exit status 0 when the run is complete, 128 + the signal's number when it was
/// stopped (SIGTERM before a time limit: the requeued task resumes it).
fn task(dir: &Path, index: usize, backend: BackendKind) -> Result<ExitCode> {
    let stop = StopSignal::on_interrupt_and_terminate()
        .context("cannot install the SIGINT and SIGTERM handlers")?;
    let started = Instant::now();
    match run_task(dir, index, backend, stop.clone())? {
        TaskOutcome::AlreadyComplete => {
            out!("run {index} is already complete");
            Ok(ExitCode::SUCCESS)
        }
        TaskOutcome::Completed => {
            out!(
                "run {index} complete in {:.1} s",
                started.elapsed().as_secs_f64()
            );
            Ok(ExitCode::SUCCESS)
        }
        TaskOutcome::Stopped(epoch) => {
            out!("run {index} stopped after epoch {epoch}; the next task resumes it");
            Ok(ExitCode::from(stop.exit_code()))
        }
    }
}

fn print_status(dir: &Path, plan: &SweepPlan) {
    let states = status(plan, dir);
    let job = slurm::submitted_job(dir);
    let queued = job
        .as_deref()
        .and_then(slurm::queued_tasks)
        .unwrap_or_default();
    let accounted = job
        .as_deref()
        .and_then(slurm::accounted_tasks)
        .unwrap_or_default();
    let slurm_state = |index: usize| {
        queued
            .iter()
            .chain(&accounted)
            .find(|(task, _)| *task == index)
            .map(|(_, state)| state.to_lowercase())
    };
    let mut counts = std::collections::BTreeMap::new();
    for (run, state) in plan.runs.iter().zip(&states) {
        let label = state.label();
        let kind = match state {
            RunState::Stopped(_) => "stopped",
            _ => label.as_str(),
        };
        *counts.entry(kind.to_string()).or_insert(0) += 1;
        let slurm = match (state, slurm_state(run.index)) {
            (RunState::Done, _) | (_, None) => String::new(),
            (_, Some(s)) => format!("  (slurm: {s})"),
        };
        out!("{:>4}  {:<22} {}{slurm}", run.index, label, run.name);
    }
    let summary: Vec<String> = counts.iter().map(|(k, n)| format!("{n} {k}")).collect();
    out!(
        "{} runs: {}{}",
        plan.runs.len(),
        summary.join(", "),
        job.map_or(String::new(), |j| format!("; SLURM job {j}"))
    );
}

/// Runs every incomplete task of the plan as a child process `credit sweep --dir D --task I`,
/// `jobs` at a time; each child's output goes to `D/logs/I.log`. Children share the cores:
/// each gets `cores / jobs` threads unless `RAYON_NUM_THREADS` is set. Once `stop` is
/// requested no task starts, and the running ones get SIGTERM (they stop cleanly).
fn run_locally(
    dir: &Path,
    plan: &SweepPlan,
    jobs: usize,
    backend: BackendKind,
    stop: &StopSignal,
) -> Result<()> {
    let exe = std::env::current_exe().context("cannot find the credit executable")?;
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs).with_context(|| format!("cannot create {}", logs.display()))?;
    let pending: Vec<usize> = (0..plan.runs.len())
        .filter(|&i| !credit_analysis::sweep::is_complete(plan, dir, i))
        .collect();
    out!(
        "sweep of {} runs in {}: {} to run ({} already complete), {} at a time on {backend}",
        plan.runs.len(),
        dir.display(),
        pending.len(),
        plan.runs.len() - pending.len(),
        jobs
    );
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = std::env::var("RAYON_NUM_THREADS")
        .unwrap_or_else(|_| (cores / jobs.max(1)).max(1).to_string());
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    let running: Mutex<Vec<u32>> = Mutex::new(Vec::new());
    let total = pending.len();
    std::thread::scope(|scope| {
        // Passes a stop on to the running tasks.
        scope.spawn(|| {
            // Each child gets one SIGTERM (a second one would end it at once).
            let mut signalled = Vec::new();
            while done.load(Ordering::SeqCst) < total {
                if stop.requested().is_some() {
                    for &pid in running.lock().expect("no panics hold this lock").iter() {
                        if !signalled.contains(&pid) {
                            credit_train::terminate(pid);
                            signalled.push(pid);
                        }
                    }
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
        });
        for _ in 0..jobs.max(1).min(total.max(1)) {
            scope.spawn(|| {
                while let Some(&index) = pending.get(next.fetch_add(1, Ordering::SeqCst)) {
                    if stop.requested().is_some() {
                        done.fetch_add(1, Ordering::SeqCst);
                        continue;
                    }
                    let started = Instant::now();
                    let log = logs.join(format!("{index}.log"));
                    let status = std::fs::File::create(&log).and_then(|out| {
                        let err = out.try_clone()?;
                        let mut child = Command::new(&exe)
                            .args(["sweep", "--dir"])
                            .arg(dir)
                            .args(["--task", &index.to_string(), "--backend", backend.name()])
                            .env("RAYON_NUM_THREADS", &threads)
                            .stdin(Stdio::null())
                            .stdout(out)
                            .stderr(err)
                            .spawn()?;
                        running
                            .lock()
                            .expect("no panics hold this lock")
                            .push(child.id());
                        let status = child.wait();
                        running
                            .lock()
                            .expect("no panics hold this lock")
                            .retain(|&pid| pid != child.id());
                        status
                    });
                    let n = done.fetch_add(1, Ordering::SeqCst) + 1;
                    let ok = matches!(&status, Ok(s) if s.success());
                    let name = &plan.runs[index].name;
                    let stopped = !ok && stop.requested().is_some();
                    out!(
                        "[{n}/{total}] {name}: {} ({:.1} s)",
                        if ok {
                            "done"
                        } else if stopped {
                            "stopped"
                        } else {
                            "FAILED"
                        },
                        started.elapsed().as_secs_f64()
                    );
                    if !ok && !stopped {
                        failures
                            .lock()
                            .expect("no panics hold this lock")
                            .push(format!("{name} (log: {})", log.display()));
                    }
                }
            });
        }
    });
    let failures = failures.into_inner().expect("no panics hold this lock");
    if !failures.is_empty() {
        bail!(
            "{} of {total} runs failed:\n  {}",
            failures.len(),
            failures.join("\n  ")
        );
    }
    Ok(())
}

/// The training-set sizes of `credit reproduce --sizes`: comma-separated, possibly none.
#[derive(Debug, Clone)]
struct Sizes(Vec<usize>);

/// `--sizes` as given: `20000,40000,0`, or an empty string for no size sweep.
fn parse_sizes(text: &str) -> Result<Sizes, String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse()
                .map_err(|_| format!("{s:?} is not a training-set size (a whole number)"))
        })
        .collect::<Result<Vec<usize>, String>>()
        .map(Sizes)
}
