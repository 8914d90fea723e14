//! `credit sweep`: train and analyse every run of a sweep in child processes, `--jobs` at a
//! time, skipping what is already complete, then write the comparison report.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Args;
use credit_analysis::Analysis;
use credit_analysis::AnalysisConfig;
use credit_analysis::sweep::{SweepRun, plan, summarise, swept_keys, write_sweep_report};
use credit_train::{BackendKind, ModelKind, RunConfig, RunDir};

use crate::BackendArg;

#[derive(Args)]
pub struct SweepArgs {
    /// Base TOML run configuration.
    #[arg(long)]
    config: PathBuf,
    /// Override or sweep a value: `key=v` sets it, `key=v1,v2,...` sweeps it (repeatable;
    /// several swept keys give their product).
    #[arg(long = "set", value_name = "KEY=VALUES")]
    sets: Vec<String>,
    /// Seeds per setting (0, 1, ...).
    #[arg(long, default_value_t = 1)]
    seeds: usize,
    /// Sweep folder. Default: runs/sweep-<config file stem>.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Runs trained (and analysed) at the same time.
    #[arg(long, default_value_t = 1)]
    jobs: usize,
    /// Skip the deterministic baseline runs.
    #[arg(long)]
    no_baseline: bool,
    /// Analysis settings (TOML) for every run.
    #[arg(long)]
    analysis_config: Option<PathBuf>,
    #[command(flatten)]
    backend: BackendArg,
}

/// One child process to run.
struct Task {
    label: String,
    args: Vec<String>,
    log: PathBuf,
}

/// Runs tasks `jobs` at a time; each child's output goes to its log file. Children share
/// the cores: each gets `cores / jobs` threads unless `RAYON_NUM_THREADS` is set.
fn run_tasks(tasks: Vec<Task>, jobs: usize, what: &str) -> Result<()> {
    let exe = std::env::current_exe().context("cannot find the credit executable")?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = std::env::var("RAYON_NUM_THREADS")
        .unwrap_or_else(|_| (cores / jobs.max(1)).max(1).to_string());
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    let total = tasks.len();
    std::thread::scope(|scope| {
        for _ in 0..jobs.max(1).min(total.max(1)) {
            scope.spawn(|| {
                while let Some(task) = tasks.get(next.fetch_add(1, Ordering::SeqCst)) {
                    let started = Instant::now();
                    let status = std::fs::File::create(&task.log).and_then(|log| {
                        let err = log.try_clone()?;
                        Command::new(&exe)
                            .args(&task.args)
                            .env("RAYON_NUM_THREADS", &threads)
                            .stdin(Stdio::null())
                            .stdout(log)
                            .stderr(err)
                            .status()
                    });
                    let n = done.fetch_add(1, Ordering::SeqCst) + 1;
                    let ok = matches!(&status, Ok(s) if s.success());
                    println!(
                        "[{n}/{total}] {what} {}: {} ({:.1} s)",
                        task.label,
                        if ok { "done" } else { "FAILED" },
                        started.elapsed().as_secs_f64()
                    );
                    if !ok {
                        failures
                            .lock()
                            .expect("no panics hold this lock")
                            .push(format!("{} (log: {})", task.label, task.log.display()));
                    }
                }
            });
        }
    });
    let failures = failures.into_inner().expect("no panics hold this lock");
    if !failures.is_empty() {
        bail!(
            "{} of {total} {what} runs failed:\n  {}",
            failures.len(),
            failures.join("\n  ")
        );
    }
    Ok(())
}

pub fn run_sweep(args: SweepArgs) -> Result<()> {
    let backend: BackendKind = args.backend.resolve()?;
    let runs = plan(&args.sets, args.seeds, !args.no_baseline)?;
    if let Some(path) = &args.analysis_config {
        AnalysisConfig::load(path)?;
    }
    for run in &runs {
        RunConfig::load(&args.config, &run.overrides)
            .with_context(|| format!("sweep run {}", run.name))?;
    }
    let out = args.out.clone().unwrap_or_else(|| {
        let stem = args
            .config
            .file_stem()
            .unwrap_or_default()
            .to_string_lossy();
        PathBuf::from("runs").join(format!("sweep-{stem}"))
    });
    let logs = out.join("logs");
    std::fs::create_dir_all(&logs).with_context(|| format!("cannot create {}", logs.display()))?;
    let log_path = |run: &SweepRun, step: &str| {
        logs.join(format!("{}.{step}.log", run.name.replace('/', "_")))
    };
    let dir = |run: &SweepRun| RunDir::new(out.join(&run.name));
    println!(
        "sweep of {} runs ({} seeds) into {}, {} at a time on {backend}",
        runs.len(),
        args.seeds,
        out.display(),
        args.jobs
    );

    let mut training = Vec::new();
    for run in &runs {
        let run_dir = dir(run);
        if run_dir.is_complete() {
            continue;
        }
        let path = run_dir.path().display().to_string();
        let mut child = vec![
            "train".to_string(),
            "--no-dashboard".into(),
            "--backend".into(),
            backend.name().into(),
        ];
        if run_dir.exists() {
            child.extend(["--out".into(), path, "--resume".into()]);
        } else {
            remove_incomplete(run_dir.path())?;
            child.extend([
                "--config".into(),
                args.config.display().to_string(),
                "--out".into(),
                path,
            ]);
            for o in &run.overrides {
                child.extend(["--set".into(), o.clone()]);
            }
        }
        training.push(Task {
            label: run.name.clone(),
            args: child,
            log: log_path(run, "train"),
        });
    }
    println!(
        "training {} runs ({} already complete)",
        training.len(),
        runs.len() - training.len()
    );
    run_tasks(training, args.jobs, "train")?;

    let spike_slab: Vec<&SweepRun> = runs
        .iter()
        .filter(|r| r.kind == ModelKind::SpikeSlab)
        .collect();
    let analysis_file = |run: &SweepRun| out.join(&run.name).join("analysis/analysis.json");
    let analyses: Vec<Task> = spike_slab
        .iter()
        .filter(|run| !analysis_file(run).is_file())
        .map(|run| {
            let mut child = vec![
                "analyze".to_string(),
                "--run".into(),
                dir(run).path().display().to_string(),
                "--backend".into(),
                backend.name().into(),
            ];
            if let Some(config) = &args.analysis_config {
                child.extend(["--config".into(), config.display().to_string()]);
            }
            Task {
                label: run.name.clone(),
                args: child,
                log: log_path(run, "analyze"),
            }
        })
        .collect();
    println!("analysing {} runs", analyses.len());
    run_tasks(analyses, args.jobs, "analyze")?;

    let analysed = spike_slab
        .iter()
        .map(|run| {
            let path = analysis_file(run);
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let analysis: Analysis = serde_json::from_str(&text)
                .with_context(|| format!("{}: invalid analysis", path.display()))?;
            Ok(((*run).clone(), analysis))
        })
        .collect::<Result<Vec<_>>>()?;
    let baselines = runs
        .iter()
        .filter(|r| r.kind == ModelKind::Deterministic)
        .map(|run| Ok((run.clone(), dir(run).summary()?)))
        .collect::<Result<Vec<_>>>()?;
    let summaries = summarise(&analysed, &baselines);
    let x_label = swept_keys(&args.sets)?
        .first()
        .cloned()
        .unwrap_or_else(|| "setting".to_string());
    let written = write_sweep_report(&summaries, &x_label, &out)?;
    for s in &summaries {
        println!(
            "  {}: mean-field {:.2}% (sd {:.2}), deterministic {}, entropy per layer {}",
            s.setting,
            s.mean_field_pct.mean,
            s.mean_field_pct.sd,
            s.deterministic_pct
                .map_or("-".into(), |d| format!("{:.2}%", d.mean)),
            s.entropy
                .iter()
                .map(|e| format!("{:.3}", e.mean))
                .collect::<Vec<_>>()
                .join(" ")
        );
    }
    crate::show::written(&written, &out);
    Ok(())
}

/// Removes a run folder that holds no run (no `config.toml`): a start that failed before it
/// wrote anything worth keeping.
fn remove_incomplete(path: &Path) -> Result<()> {
    if path.exists() {
        std::fs::remove_dir_all(path)
            .with_context(|| format!("cannot clear {}", path.display()))?;
    }
    Ok(())
}
