//! `credit`: train spike-and-slab networks and see which connections they rely on.

mod sweep;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use credit_analysis::export::ExportFormat;
use credit_analysis::{Analysis, AnalysisConfig, evaluate_subnetworks};
use credit_train::{
    AwakeWorkers, BackendKind, RunConfig, RunDir, TrainOptions, load_data, test_accuracies,
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
    /// Reload a run and report its test accuracies.
    Eval(EvalArgs),
    /// Analyse a run: connection classes, distributions, sub-networks, perturbation,
    /// entropy; writes analysis.json, CSV tables, SVG figures and report.html.
    Analyze(AnalyzeArgs),
    /// Time training epochs, test-set forward passes and the analysis of a config.
    Bench(BenchArgs),
    /// Write a run's parameters as safetensors or npz, for numpy and PyTorch.
    Export(ExportArgs),
    /// Train and analyse a config over settings and seeds, with the deterministic baseline,
    /// and compare them in one report; complete runs are skipped, so a sweep resumes.
    Sweep(sweep::SweepArgs),
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

#[derive(Args)]
struct AnalyzeArgs {
    /// Run directory written by `credit train`.
    #[arg(long)]
    run: PathBuf,
    /// Output folder. Default: RUN/analysis.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Analysis settings (TOML): seed, samples, repetitions, fractions, tolerance, ...
    #[arg(long)]
    config: Option<PathBuf>,
    #[command(flatten)]
    backend: BackendArg,
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
    /// Run directory. Default: runs/<config file stem>.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Override a config value, e.g. --set train.epochs=5 (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
    /// Continue the run in --out from its latest checkpoint, with its saved config.
    #[arg(long, requires = "out")]
    resume: bool,
    /// Plain per-epoch lines even on a terminal, instead of burn's dashboard.
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
    /// Number of sub-networks to sample (0 skips them).
    #[arg(long, default_value_t = 20)]
    samples: usize,
    /// Seed of the noise and of the sampled sub-networks.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
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
    #[command(flatten)]
    backend: BackendArg,
}

/// Runs a command that computes with the model, keeping the pool's other threads polling
/// for work (see [`AwakeWorkers`]).
fn computing(command: impl FnOnce() -> Result<()>) -> Result<()> {
    let _awake = AwakeWorkers::start();
    command()
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Commands run on a thread of the pool, so that the kernels' parallel operations start
    // from inside it instead of being handed to it from outside and waited for.
    let pool = rayon::ThreadPoolBuilder::new()
        .build()
        .expect("a thread pool");
    let result = pool.install(|| match cli.command {
        Command::Train(args) => computing(|| run_train(args)),
        Command::Eval(args) => computing(|| run_eval(args)),
        Command::Analyze(args) => computing(|| run_analyze(args)),
        Command::Bench(args) => computing(|| run_bench(args)),
        Command::Export(args) => run_export(args),
        Command::Sweep(args) => sweep::run_sweep(args),
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run_train(args: TrainArgs) -> Result<()> {
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
        (RunConfig::load(&path, &args.overrides)?, RunDir::new(out))
    };
    let mut options = TrainOptions::new(backend);
    options.resume = args.resume;
    options.dashboard &= !args.no_dashboard;
    println!(
        "credit {}: training {:?} {:?} for {} epochs on {backend} into {}",
        env!("CARGO_PKG_VERSION"),
        config.model.kind,
        config.model.sizes,
        config.train.epochs,
        run.path().display()
    );
    let summary = credit_train::train(&config, &run, &options)?;
    println!(
        "done: {} epochs, {:.3} s/epoch; test accuracy {:.2}% mean-field, {:.2}% mean network ({})",
        summary.epochs,
        summary.seconds_per_epoch,
        summary.test_accuracy_mean_field_pct,
        summary.test_accuracy_mean_network_pct,
        run.path().display()
    );
    Ok(())
}

fn run_eval(args: EvalArgs) -> Result<()> {
    let backend = args.backend.resolve()?;
    let run = RunDir::new(&args.run);
    let config = run.config()?;
    let device = backend.device()?;
    device.seed(args.seed);
    credit_model::seed_noise(args.seed);
    let model = run.load_model(&config, &device, None)?;
    let data = load_data(&config)?;
    let accuracies = test_accuracies(&model, &data, &device);
    let subnetworks = match model.spike_slab() {
        Some(net) if args.samples > 0 => {
            Some(evaluate_subnetworks(net, &data.test, &device, args.samples))
        }
        _ => None,
    };
    if args.json {
        let report = serde_json::json!({
            "run": args.run,
            "backend": backend.name(),
            "device": format!("{device:?}"),
            "seed": args.seed,
            "test_images": data.test.len(),
            "test_accuracy_mean_field_pct": accuracies.test_mean_field_pct,
            "test_accuracy_mean_network_pct": accuracies.test_mean_network_pct,
            "subnetworks": subnetworks,
        });
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!(
        "{} on {backend}, {} test images",
        args.run.display(),
        data.test.len()
    );
    println!(
        "  mean-field (noise on)      {:6.2}%",
        accuracies.test_mean_field_pct
    );
    println!(
        "  mean network (noise off)   {:6.2}%",
        accuracies.test_mean_network_pct
    );
    if let Some(s) = subnetworks {
        let k = s.accuracies_pct.len();
        let zeros = s.zero_fractions.iter().sum::<f64>() / k as f64;
        println!(
            "  {k} sampled sub-networks    {:6.2}% mean, sd {:.2}, min {:.2}, max {:.2} ({:.1}% zero weights)",
            s.mean_pct,
            s.sd_pct,
            s.min_pct,
            s.max_pct,
            100.0 * zeros
        );
        println!("  {k}-ensemble (mean softmax) {:6.2}%", s.ensemble_pct);
    }
    Ok(())
}

fn run_bench(args: BenchArgs) -> Result<()> {
    let backend = args.backend.resolve()?;
    let config = RunConfig::load(&args.config, &args.overrides)?;
    anyhow::ensure!(args.epochs > 0, "--epochs must be positive");
    anyhow::ensure!(args.eval_repeats > 0, "--eval-repeats must be positive");
    let scratch = tempfile::tempdir()?;
    let run = RunDir::new(scratch.path().join("bench"));
    let mut report = credit_train::bench(&config, backend, args.epochs, args.eval_repeats, &run)?;
    if config.model.kind == credit_train::ModelKind::SpikeSlab {
        let started = std::time::Instant::now();
        let analysed = credit_analysis::analyze(&run, &AnalysisConfig::default(), backend)?;
        credit_analysis::write_report(&analysed, &scratch.path().join("analysis"))?;
        report.analyze_seconds = Some(started.elapsed().as_secs_f64());
    }
    println!(
        "{} on {} ({})",
        args.config.display(),
        report.backend,
        report.device
    );
    println!(
        "  training   {:.4} s/epoch median of {} ({:.0} images/s, {} images/epoch)",
        report.epoch_seconds_median,
        report.epoch_seconds.len(),
        report.train_images_per_second,
        report.train_images
    );
    println!(
        "  evaluation {:.4} s per mean-field pass over {} test images ({:.0} images/s)",
        report.eval_seconds_median, report.test_images, report.eval_images_per_second
    );
    if let Some(seconds) = report.analyze_seconds {
        println!("  analysis   {seconds:.2} s for `credit analyze` (K = 20, S = 10, all layers)");
    }
    if let Some(path) = args.json {
        credit_train::write_atomic(&path, serde_json::to_string_pretty(&report)?.as_bytes())?;
    }
    Ok(())
}

fn run_analyze(args: AnalyzeArgs) -> Result<()> {
    let backend = args.backend.resolve()?;
    let config = match &args.config {
        Some(path) => AnalysisConfig::load(path)?,
        None => AnalysisConfig::default(),
    };
    let run = RunDir::new(&args.run);
    let out = args.out.unwrap_or_else(|| args.run.join("analysis"));
    let analysed = credit_analysis::analyze(&run, &config, backend)?;
    let written = credit_analysis::write_report(&analysed, &out)?;
    print_analysis(&analysed.analysis);
    print_written(&written, &out);
    Ok(())
}

/// The closing line of commands that write a report folder.
pub(crate) fn print_written(written: &[PathBuf], out: &std::path::Path) {
    println!(
        "wrote {} files to {} (open {})",
        written.len(),
        out.display(),
        out.join("report.html").display()
    );
}

fn print_analysis(a: &Analysis) {
    use credit_analysis::classes::ConnectionClass;
    println!(
        "{}: {:?} {:?}, analysed on {} in {:.2} s",
        a.run, a.model_kind, a.sizes, a.backend, a.seconds
    );
    println!(
        "  accuracy: mean-field {:.2}%, mean network {:.2}%",
        a.accuracy.mean_field_pct, a.accuracy.mean_network_pct
    );
    if let Some(s) = &a.accuracy.subnetworks {
        println!(
            "  {} sampled sub-networks {:.2}% (sd {:.2}), ensemble {:.2}%",
            s.accuracies_pct.len(),
            s.mean_pct,
            s.sd_pct,
            s.ensemble_pct
        );
    }
    if let Some(p) = &a.accuracy.pruned {
        println!(
            "  pruned (1-pi) m network {:.2}% with {} of {} weights",
            p.accuracy_pct, p.nonzero, p.total
        );
    }
    for l in &a.layers {
        println!(
            "  layer {}: very important {:5.1}%  unimportant {:5.1}%  variable {:5.1}%  entropy {:.3} ± {:.3}",
            l.layer,
            100.0 * l.classes.fraction(ConnectionClass::VeryImportant),
            100.0 * l.classes.fraction(ConnectionClass::Unimportant),
            100.0 * l.classes.fraction(ConnectionClass::Variable),
            l.entropy_mean,
            l.entropy_sd
        );
    }
    for p in &a.perturbation {
        let fmt = |c: &credit_analysis::perturb::Curve| {
            c.error_mean_pct
                .iter()
                .map(|e| format!("{e:.1}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        println!("  layer {} error (%) at f = 0, 0.1, ..., 1:", p.layer);
        println!(
            "    very important removed    {}",
            fmt(&p.very_important_removed)
        );
        println!("    as many variable removed  {}", fmt(&p.variable_removed));
        println!(
            "    unimportant randomised    {}",
            fmt(&p.unimportant_randomised)
        );
    }
}

fn run_export(args: ExportArgs) -> Result<()> {
    let backend = args.backend.resolve()?;
    let report = credit_analysis::export::export_run(
        &RunDir::new(&args.run),
        args.format,
        args.pruned,
        args.out,
        backend,
    )?;
    if let Some((accuracy, nonzero, total)) = report.pruned {
        println!(
            "pruned network: {accuracy:.2}% test accuracy, {nonzero} of {total} weights non-zero"
        );
    }
    println!(
        "wrote {} tensors ({}) to {}",
        report.tensors.len(),
        report.tensors.join(", "),
        report.path.display()
    );
    Ok(())
}
