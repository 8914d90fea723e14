//! `credit`: train spike-and-slab networks and see which connections they rely on.
//!
//! This file parses the command line and dispatches; the work is done by the library crates
//! (`credit-train`, `credit-analysis`), and `show.rs` prints their results.

/// `println!` that ignores a closed standard output (`credit train ... | head`): the work
/// goes on, and the run is not lost to a panic.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

mod show;
mod sweep;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use credit_analysis::AnalysisConfig;
use credit_analysis::export::{ExportFormat, export_run};
use credit_train::{
    BackendKind, Display, RunConfig, RunDir, StopSignal, TrainOptions, TrainOutcome,
};

#[derive(Parser)]
#[command(name = "credit", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a network described by a config file into a run directory.
    Train(TrainArgs),
    /// Reload a run and report its test accuracies, calibration (NLL, Brier, ECE) and, with
    /// --ood, how well it tells other images from its test images.
    Eval(EvalArgs),
    /// Predict classes with uncertainty (predictive entropy, mutual information, agreement of
    /// the sub-networks) for images in a .npy, .npz, IDX or PNG/JPEG files.
    Predict(PredictArgs),
    /// Analyse a run: connection classes, distributions, sub-networks, perturbation,
    /// entropy; writes analysis.json, CSV tables, SVG figures and report.html.
    Analyze(AnalyzeArgs),
    /// Time training epochs, test-set forward passes and the analysis of a config.
    Bench(BenchArgs),
    /// Write a run's parameters as safetensors or npz, for numpy and PyTorch.
    Export(ExportArgs),
    /// Train and analyse a config over settings and seeds, with the deterministic baseline,
    /// and compare them in one report; complete runs are skipped, so a sweep resumes. Also
    /// runs one task of a sweep (--task), reports where it stands (--status), writes its
    /// report (--report) or a SLURM job array (--slurm).
    Sweep(sweep::SweepArgs),
    /// Run the paper's MNIST experiments under both of the authors' protocols (3 seeds each,
    /// deterministic baselines, training-set sizes) and compare them with the authors' code
    /// in one report; resumes like a sweep.
    Reproduce(sweep::ReproduceArgs),
}

#[derive(Args)]
pub(crate) struct BackendArg {
    /// Backend to run on (flex, ndarray, wgpu; whichever this build contains). Default: the
    /// first compiled in, in that order.
    #[arg(long)]
    backend: Option<BackendKind>,
}

impl BackendArg {
    pub(crate) fn resolve(&self) -> Result<BackendKind> {
        match self.backend {
            Some(backend) => Ok(backend),
            None => BackendKind::default_available().context("this build contains no backend"),
        }
    }
}

#[derive(Args)]
struct TrainArgs {
    /// TOML run configuration, e.g. configs/mnist.toml.
    #[arg(long, required_unless_present = "resume")]
    config: Option<PathBuf>,
    /// Run directory. Default: runs/ and the config file's name without its extension
    /// (runs/mnist for configs/mnist.toml).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Override a config value, e.g. --set train.epochs=5 (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
    /// Continue the run in --out from its latest intact checkpoint, with its saved config
    /// (only train.epochs, train.keep_checkpoints, train.checkpoint_every, data.dir and
    /// data.path may change); a run whose last epoch is trained is finished.
    #[arg(long, requires = "out", conflicts_with = "config")]
    resume: bool,
    /// With --resume, for a finished run whose checkpoint of its last epoch is lost: continue
    /// from its final model (model.bpk) with a fresh optimizer state (AdamW's moments start
    /// from zero; the 2020 protocol restarts them every epoch anyway). Needs a higher
    /// train.epochs.
    #[arg(long, requires = "resume")]
    from_final_model: bool,
    /// Plain per-epoch lines even on a terminal, instead of the progress bar.
    #[arg(long)]
    no_dashboard: bool,
    #[command(flatten)]
    backend: BackendArg,
}

#[derive(Args)]
struct EvalArgs {
    /// Run directory written by `credit train`.
    #[arg(long)]
    run: PathBuf,
    /// Evaluate the checkpoint of this epoch instead of the final model.
    #[arg(long)]
    epoch: Option<usize>,
    /// Sub-networks to sample: their accuracies, and the ensemble of the calibration and
    /// OOD scores (0: no sub-network accuracies; calibration and OOD then use one).
    #[arg(long, default_value_t = 20)]
    samples: usize,
    /// Seed of the noise and of the sampled sub-networks. Default: the run's seed (the
    /// mean-field accuracy then equals summary.json's).
    #[arg(long)]
    seed: Option<u64>,
    /// Confidence bins of the expected calibration error.
    #[arg(long, default_value_t = 15)]
    bins: usize,
    /// Out-of-distribution images to tell from the test images: an IDX folder or .npz (their
    /// test images), a .npy, an IDX images file, or PNG/JPEG pictures.
    #[arg(long, value_name = "PATH")]
    ood: Option<PathBuf>,
    /// A baseline run on the same data (e.g. model.kind = "deterministic") to evaluate the
    /// same way and show beside: its calibration and OOD scores (max-softmax, entropy).
    #[arg(long, value_name = "RUN")]
    baseline: Option<PathBuf>,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    backend: BackendArg,
}

#[derive(Args)]
struct PredictArgs {
    /// Run directory written by `credit train`.
    #[arg(long)]
    run: PathBuf,
    /// Images: a .npy ([N, width] or [N, H, W]), an IDX images file, an IDX folder or .npz
    /// (their test images), or a PNG/JPEG picture or folder of them (converted to grey and
    /// resized to the model's square input, bilinear).
    #[arg(long)]
    input: PathBuf,
    /// Predict with the ensemble of sampled sub-networks, K mean-field passes, or the mean
    /// network.
    #[arg(long, default_value = "ensemble")]
    mode: credit_analysis::predict::Mode,
    /// Members of the ensemble (sub-networks or mean-field passes).
    #[arg(long, default_value_t = 20)]
    samples: usize,
    /// Seed of the sampled members. Default: the run's seed.
    #[arg(long)]
    seed: Option<u64>,
    /// Invert picture brightness (for dark digits on a light background; MNIST digits are
    /// light on dark).
    #[arg(long)]
    invert: bool,
    /// Use the checkpoint of this epoch instead of the final model.
    #[arg(long)]
    epoch: Option<usize>,
    /// Write the predictions to this file: .csv or .json. Default: a table on stdout.
    #[arg(long)]
    out: Option<PathBuf>,
    #[command(flatten)]
    backend: BackendArg,
}

#[derive(Args)]
struct AnalyzeArgs {
    /// Run directory written by `credit train`.
    #[arg(long)]
    run: PathBuf,
    /// Analyse the checkpoint of this epoch instead of the final model (keep checkpoints
    /// with train.checkpoint_every).
    #[arg(long)]
    epoch: Option<usize>,
    /// Output folder. Default: RUN/analysis, or RUN/analysis-epoch-E with --epoch.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Analysis settings (TOML): seed, samples, repetitions, fractions, tolerance, ...
    #[arg(long)]
    config: Option<PathBuf>,
    /// Out-of-distribution images to tell from the test images (see `credit eval --ood`).
    #[arg(long, value_name = "PATH")]
    ood: Option<PathBuf>,
    #[command(flatten)]
    backend: BackendArg,
}

#[derive(Args)]
struct BenchArgs {
    /// TOML run configuration to time.
    #[arg(long, default_value = "configs/mnist.toml")]
    config: PathBuf,
    /// Override a config value (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
    /// Training epochs to time, after one warm-up epoch.
    #[arg(long, default_value_t = 5)]
    epochs: usize,
    /// Forward passes over the test images to time, after one warm-up pass.
    #[arg(long, default_value_t = 10)]
    eval_repeats: usize,
    /// Also write the report as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Time training and evaluation only, not the analysis of the benchmark's run.
    #[arg(long)]
    no_analysis: bool,
    #[command(flatten)]
    backend: BackendArg,
}

#[derive(Args)]
struct ExportArgs {
    /// Run directory written by `credit train`.
    #[arg(long)]
    run: PathBuf,
    /// safetensors or npz.
    #[arg(long, default_value = "safetensors")]
    format: ExportFormat,
    /// Export the deterministic network of expected weights (1-pi) m with every unimportant
    /// connection (pi = 1) dropped, instead of m, xi, pi.
    #[arg(long)]
    pruned: bool,
    /// Output file. Default: RUN/export.EXT or RUN/pruned.EXT.
    #[arg(long)]
    out: Option<PathBuf>,
    #[command(flatten)]
    backend: BackendArg,
}

fn main() -> ExitCode {
    // Large buffers (the analysis's passes over the whole test set) reuse freed memory
    // instead of faulting fresh pages in.
    credit_ops::allocator::keep_freed_blocks();
    let result = match Cli::parse().command {
        Command::Train(args) => train(args),
        Command::Eval(args) => eval(args).map(|()| ExitCode::SUCCESS),
        Command::Predict(args) => predict(args).map(|()| ExitCode::SUCCESS),
        Command::Analyze(args) => analyze(args).map(|()| ExitCode::SUCCESS),
        Command::Bench(args) => bench(args).map(|()| ExitCode::SUCCESS),
        Command::Export(args) => export(args).map(|()| ExitCode::SUCCESS),
        Command::Sweep(args) => sweep::run_sweep(args),
        Command::Reproduce(args) => sweep::run_reproduce(args),
    };
    result.unwrap_or_else(|error| {
        eprintln!("error: {error:#}");
        ExitCode::FAILURE
    })
}

/// `credit train`: exit status 0 when finished, 128 + the signal's number when stopped.
fn train(args: TrainArgs) -> Result<ExitCode> {
    let backend = args.backend.resolve()?;
    let (config, run) = if args.resume {
        let run = RunDir::new(args.out.expect("clap requires --out with --resume"));
        (run.config_with(&args.overrides)?, run)
    } else {
        let path = args
            .config
            .expect("clap requires --config without --resume");
        let out = args.out.unwrap_or_else(|| {
            let stem = path.file_stem().unwrap_or_default();
            PathBuf::from("runs").join(stem)
        });
        // A new run's folder is no run's or sweep's own entry (`R/checkpoint/x`, `S/logs`);
        // an existing run folder is refused by training itself ("is not empty ... --resume").
        let occupied =
            RunDir::new(&out).exists() || out.join(credit_train::files::SWEEP_PLAN_FILE).is_file();
        if !occupied {
            credit_train::files::check_output_dir(&out, "--out")?;
        }
        (RunConfig::load(&path, &args.overrides)?, RunDir::new(out))
    };
    let mut options = TrainOptions::new(backend);
    options.resume = args.resume;
    options.from_final_model = args.from_final_model;
    if args.no_dashboard {
        options.display = Display::Lines;
    }
    options.stop = StopSignal::on_interrupt_and_terminate()
        .context("cannot install the SIGINT and SIGTERM handlers")?;
    out!(
        "credit {}: training {} {:?} for {} epochs on {backend} into {}",
        env!("CARGO_PKG_VERSION"),
        config.model.kind.name(),
        config.model.sizes,
        config.train.epochs,
        run.path().display()
    );
    match credit_train::train(&config, &run, &options)? {
        TrainOutcome::Finished(summary) => {
            let deterministic = config.model.kind == credit_model::ModelKind::Deterministic;
            show::summary(&summary, &run, deterministic);
            Ok(ExitCode::SUCCESS)
        }
        TrainOutcome::Stopped { epoch, epochs } => {
            out!(
                "stopped at epoch {epoch} of {epochs}; resume with `credit train --out {} --resume`",
                run.path().display()
            );
            Ok(ExitCode::from(options.stop.exit_code()))
        }
    }
}

fn eval(args: EvalArgs) -> Result<()> {
    let backend = args.backend.resolve()?;
    let run = RunDir::new(&args.run);
    let options = credit_analysis::EvalOptions {
        samples: args.samples,
        seed: args.seed,
        epoch: args.epoch,
        bins: args.bins,
        ood: args.ood,
        baseline: args.baseline,
    };
    // The --json output is the only thing on standard output: no progress lines there.
    let display = if args.json {
        credit_train::Display::Quiet
    } else {
        credit_train::Display::automatic()
    };
    let mut progress = credit_analysis::Progress::new(display, "eval");
    let report = credit_analysis::evaluate_run_with(&run, &options, backend, &mut progress)?;
    drop(progress);
    if args.json {
        out!("{}", credit_train::files::to_json(&report)?);
    } else {
        show::eval(&report);
    }
    Ok(())
}

fn analyze(args: AnalyzeArgs) -> Result<()> {
    let backend = args.backend.resolve()?;
    let mut config = match &args.config {
        Some(path) => AnalysisConfig::load(path)?,
        None => AnalysisConfig::default(),
    };
    if args.ood.is_some() {
        config.ood = args.ood.clone();
    }
    let run = RunDir::new(&args.run);
    let out = args.out.unwrap_or_else(|| match args.epoch {
        Some(epoch) => args.run.join(format!("analysis-epoch-{epoch}")),
        None => args.run.join("analysis"),
    });
    credit_train::files::check_output_dir(&out, "--out")?;
    let _lock = run.lock_existing("credit analyze")?;
    // Without a font for the PNG copies, say so before the work (the SVGs and data are
    // written either way).
    if config.png_dpi > 0
        && let Err(e) = credit_analysis::figures::Fonts::system()
    {
        eprintln!("warning: no PNG copies of the figures will be written: {e:#}");
    }
    let mut progress =
        credit_analysis::Progress::new(credit_train::Display::automatic(), "analysis");
    let analysed =
        credit_analysis::analyze_with(&run, &config, backend, args.epoch, &mut progress)?;
    let written = credit_analysis::write_report_with(&analysed, &out, &mut progress)?;
    drop(progress);
    show::analysis(&analysed.analysis);
    show::written(&written, &out);
    Ok(())
}

fn predict(args: PredictArgs) -> Result<()> {
    let backend = args.backend.resolve()?;
    if let Some(path) = &args.out {
        credit_train::files::check_output_file(path, "--out", &["csv", "json"], &[&args.input])?;
    }
    let options = credit_analysis::predict::PredictOptions {
        mode: args.mode,
        samples: args.samples,
        seed: args.seed,
        invert: args.invert,
        epoch: args.epoch,
    };
    let report = credit_analysis::predict::predict_run(
        &RunDir::new(&args.run),
        &args.input,
        &options,
        backend,
    )?;
    match &args.out {
        Some(path) => {
            credit_analysis::predict::write_predictions(&report, path)?;
            out!(
                "wrote {} predictions ({}) to {}",
                report.predictions.len(),
                show::members(&report),
                path.display()
            );
        }
        None => show::predictions(&report),
    }
    Ok(())
}

fn bench(args: BenchArgs) -> Result<()> {
    let backend = args.backend.resolve()?;
    if let Some(path) = &args.json {
        credit_train::files::check_output_file(path, "--json", &["json"], &[&args.config])?;
    }
    let config = RunConfig::load(&args.config, &args.overrides)?;
    anyhow::ensure!(args.epochs > 0, "--epochs must be positive");
    anyhow::ensure!(args.eval_repeats > 0, "--eval-repeats must be positive");
    let scratch = tempfile::tempdir()?;
    let run = RunDir::new(scratch.path().join("bench"));
    let mut report = credit_train::bench(&config, backend, args.epochs, args.eval_repeats, &run)?;
    if config.model.kind == credit_train::ModelKind::SpikeSlab && !args.no_analysis {
        let started = std::time::Instant::now();
        let analysed = credit_analysis::analyze(&run, &AnalysisConfig::default(), backend, None)?;
        credit_analysis::write_report(&analysed, &scratch.path().join("analysis"))?;
        report.analyze_seconds = Some(started.elapsed().as_secs_f64());
    }
    show::bench(&report, &args.config);
    if let Some(path) = args.json {
        credit_train::write_json(&path, &report)?;
    }
    Ok(())
}

fn export(args: ExportArgs) -> Result<()> {
    let backend = args.backend.resolve()?;
    let report = export_run(
        &RunDir::new(&args.run),
        args.format,
        args.pruned,
        args.out,
        backend,
    )?;
    show::export(&report);
    Ok(())
}
