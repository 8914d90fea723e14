//! `credit analyze`: every number of the paper's story for one trained run.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use burn::tensor::Device;
use credit_model::{Seed, Stream};
use credit_train::{
    BackendKind, Classifier, EpochMetrics, ModelKind, RunConfig, RunDir, load_data, test_accuracies,
};
use serde::{Deserialize, Serialize};

use crate::classes::{ClassCounts, Tolerance, count_classes};
use crate::entropy::{entropy_closed_form, layer_entropies};
use crate::eval::{OodReport, ood_report};
use crate::params::{LayerParams, deterministic_weights};
use crate::perturb::{LayerPerturbation, Perturbed, perturb_with};
use crate::predict::{ModeCalibration, OodScore, calibrations_with};
use crate::progress::Progress;
use crate::sparsity::{DEFAULT_THRESHOLDS, SparsityCurve, sparsity_curve};
use crate::subnetworks::{SubnetworkReport, evaluate_model_subnetworks_with, mean_sd};

/// Settings of an analysis (TOML, every key optional).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AnalysisConfig {
    /// Seed of every random draw of the analysis. Default: the run's own seed, so that the
    /// mean-field accuracy equals the one `summary.json` and `credit eval` give.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Sub-networks sampled for the accuracy ensemble (K).
    pub samples: usize,
    /// Sampled networks averaged at each point of a perturbation curve (S).
    pub repetitions: usize,
    /// Perturbed fractions `f`.
    pub fractions: Vec<f64>,
    /// Thresholds `t` of the pruning curve: connections with `pi > t` removed (increasing,
    /// in `[0, 1]`).
    pub pi_thresholds: Vec<f64>,
    /// Sampled networks pruned at each threshold (the first ones of the sub-network
    /// ensemble).
    pub pruning_samples: usize,
    /// Tolerance of the connection classes (exact by default, as in the paper).
    pub tolerance: Tolerance,
    /// A looser tolerance, reported beside, to show how sharp the classes are.
    pub loose_tolerance: Tolerance,
    /// Monte Carlo draws per connection for the entropy.
    pub entropy_samples: usize,
    /// Histogram bins.
    pub bins: usize,
    /// Confidence bins of the expected calibration error (ECE) and the reliability diagrams.
    pub calibration_bins: usize,
    /// Out-of-distribution images to score against the test images (an IDX folder, `.npz`,
    /// `.npy`, IDX file, or pictures), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ood: Option<PathBuf>,
    /// Resolution of the PNG copy of every figure, dots per inch (the SVGs' pixels taken as
    /// 1/96 inch); 0 writes no PNGs. PNGs need a sans-serif system font (DejaVu Sans,
    /// Liberation Sans, Noto Sans, Arial or FreeSans).
    pub png_dpi: u32,
}

impl Default for AnalysisConfig {
    fn default() -> Self {
        Self {
            seed: None,
            samples: 20,
            repetitions: 10,
            fractions: (0..=10).map(|i| f64::from(i) / 10.0).collect(),
            pi_thresholds: DEFAULT_THRESHOLDS.to_vec(),
            pruning_samples: 5,
            tolerance: Tolerance::default(),
            loose_tolerance: Tolerance { pi: 1e-3, xi: 1e-6 },
            entropy_samples: 100,
            bins: 50,
            calibration_bins: 15,
            ood: None,
            png_dpi: 300,
        }
    }
}

pub use crate::limits::{
    MAX_BINS, MAX_ENTROPY_SAMPLES, MAX_FRACTIONS, MAX_PNG_DPI, MAX_SAMPLES, MIN_PNG_DPI,
};

impl AnalysisConfig {
    /// Reads a TOML file (unknown keys are errors) and validates it.
    ///
    /// # Errors
    /// If the file cannot be read, is not valid TOML, names an unknown key or holds a value
    /// out of range; the error names the file and the key.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let config: Self =
            toml::from_str(&text).with_context(|| format!("analysis config {}", path.display()))?;
        config
            .validate()
            .with_context(|| format!("analysis config {}", path.display()))?;
        Ok(config)
    }

    /// Checks every setting's range: `samples`, `repetitions` and `pruning_samples` from 1 to
    /// [`MAX_SAMPLES`],
    /// `entropy_samples` from 1 to [`MAX_ENTROPY_SAMPLES`], `bins` from 1 to [`MAX_BINS`],
    /// `fractions` and `pi_thresholds` non-empty, at most [`MAX_FRACTIONS`], increasing, in
    /// `[0, 1]`, tolerances in `[0, 0.5]`.
    ///
    /// # Errors
    /// The first setting out of range, by name.
    pub fn validate(&self) -> Result<()> {
        for (name, value, max) in [
            ("samples", self.samples, MAX_SAMPLES),
            ("repetitions", self.repetitions, MAX_SAMPLES),
            ("pruning_samples", self.pruning_samples, MAX_SAMPLES),
            ("entropy_samples", self.entropy_samples, MAX_ENTROPY_SAMPLES),
        ] {
            anyhow::ensure!(
                (1..=max).contains(&value),
                "{name} must be between 1 and {max}, got {value}"
            );
        }
        anyhow::ensure!(
            self.fractions.len() <= MAX_FRACTIONS,
            "fractions may list at most {MAX_FRACTIONS} fractions, got {}",
            self.fractions.len()
        );
        anyhow::ensure!(
            !self.pi_thresholds.is_empty() && self.pi_thresholds.len() <= MAX_FRACTIONS,
            "pi_thresholds must list 1 to {MAX_FRACTIONS} thresholds, got {}",
            self.pi_thresholds.len()
        );
        anyhow::ensure!(
            self.pi_thresholds.iter().all(|t| (0.0..=1.0).contains(t))
                && self.pi_thresholds.windows(2).all(|w| w[0] < w[1]),
            "pi_thresholds must be increasing, each listed once, in [0, 1], got {:?}",
            self.pi_thresholds
        );
        anyhow::ensure!(
            self.png_dpi == 0 || (MIN_PNG_DPI..=MAX_PNG_DPI).contains(&self.png_dpi),
            "png_dpi must be 0 (no PNGs) or between {MIN_PNG_DPI} and {MAX_PNG_DPI}, got {}",
            self.png_dpi
        );
        for (name, bins) in [
            ("bins", self.bins),
            ("calibration_bins", self.calibration_bins),
        ] {
            anyhow::ensure!(
                (1..=MAX_BINS).contains(&bins),
                "{name} must be between 1 and {MAX_BINS}, got {bins}"
            );
        }
        anyhow::ensure!(
            !self.fractions.is_empty(),
            "fractions must list at least one fraction"
        );
        anyhow::ensure!(
            self.fractions.iter().all(|f| (0.0..=1.0).contains(f)),
            "fractions must lie in [0, 1], got {:?}",
            self.fractions
        );
        // Each curve removes connections incrementally, fraction after fraction.
        if let Some(pair) = self.fractions.windows(2).find(|w| w[0] >= w[1]) {
            anyhow::bail!(
                "fractions must be increasing, each listed once, got {:?} ({} {} {})",
                self.fractions,
                pair[0],
                if pair[0] == pair[1] {
                    "twice:"
                } else {
                    "before"
                },
                pair[1]
            );
        }
        for (name, tolerance) in [
            ("tolerance", self.tolerance),
            ("loose_tolerance", self.loose_tolerance),
        ] {
            anyhow::ensure!(
                (0.0..=0.5).contains(&tolerance.pi) && (0.0..=0.5).contains(&tolerance.xi),
                "{name}.pi and {name}.xi must lie in [0, 0.5], got pi = {}, xi = {}",
                tolerance.pi,
                tolerance.xi
            );
        }
        Ok(())
    }
}

/// Per-layer findings of a spike-and-slab run. Layers are numbered from 1 at the input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerReport {
    /// Layer number.
    pub layer: usize,
    /// Input width.
    pub d_input: usize,
    /// Output width.
    pub d_output: usize,
    /// Classes at the configured tolerance.
    pub classes: ClassCounts,
    /// Classes at the loose tolerance.
    pub classes_loose: ClassCounts,
    /// Mean `pi`: the expected fraction of absent connections.
    pub mean_pi: f64,
    /// Mean `xi`.
    pub mean_xi: f64,
    /// Mean per-connection entropy (Monte Carlo slab term), nats.
    pub entropy_mean: f64,
    /// Standard deviation of the per-connection entropy.
    pub entropy_sd: f64,
    /// Mean entropy with the slab term in closed form (box neglected).
    pub entropy_closed_form_mean: f64,
}

/// The deterministic network of expected weights `(1 - pi) m`, unimportant connections dropped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrunedReport {
    /// Test accuracy, percent.
    pub accuracy_pct: f64,
    /// Non-zero weights.
    pub nonzero: usize,
    /// All weights.
    pub total: usize,
}

/// Accuracies on the test set, percent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccuracyReport {
    /// Noise sampled (mean-field); equals the mean network for a deterministic run.
    pub mean_field_pct: f64,
    /// Noise off.
    pub mean_network_pct: f64,
    /// Sampled sub-networks and their ensemble (spike-and-slab runs).
    pub subnetworks: Option<SubnetworkReport>,
    /// The pruned expected-weight network (spike-and-slab runs).
    pub pruned: Option<PrunedReport>,
}

/// Everything `analysis.json` holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Analysis {
    /// The run directory.
    pub run: String,
    /// Backend the analysis ran on.
    pub backend: String,
    /// Device, as burn names it.
    pub device: String,
    /// Which network the run trained.
    pub model_kind: ModelKind,
    /// Layer widths.
    pub sizes: Vec<usize>,
    /// Training images the run used.
    pub train_images: usize,
    /// Test images evaluated.
    pub test_images: usize,
    /// The epochs the analysed model was trained for.
    #[serde(default)]
    pub epochs: usize,
    /// The seed the run was trained with (absent in analyses written before it was
    /// recorded).
    #[serde(default)]
    pub run_seed: Option<u64>,
    /// The settings used, the seed resolved.
    pub config: AnalysisConfig,
    /// The run's configuration (`config.toml`; absent in analyses written before it was
    /// recorded).
    #[serde(default)]
    pub run_config: Option<RunConfig>,
    /// The credit version that wrote the analysis (empty in analyses written before it was
    /// recorded).
    #[serde(default)]
    pub credit_version: String,
    /// The git commit credit was built from, when built from a checkout ("" otherwise, and in
    /// analyses written before it was recorded).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub credit_commit: String,
    /// The figure files written with the analysis (`NAME.svg`, `.csv`, `.png`), so that an
    /// analysis written again removes only those it no longer writes (empty in analyses
    /// written before it was recorded).
    #[serde(default)]
    pub files: Vec<String>,
    /// When the analysis finished, seconds since 1970-01-01 UTC (0 if not recorded).
    #[serde(default)]
    pub finished_unix_seconds: u64,
    /// Test accuracies.
    pub accuracy: AccuracyReport,
    /// Per-layer classes and entropy (spike-and-slab runs).
    pub layers: Vec<LayerReport>,
    /// Per-layer perturbation curves (spike-and-slab runs).
    pub perturbation: Vec<LayerPerturbation>,
    /// Accuracy, compression and units cut off against a threshold on `pi`
    /// (spike-and-slab runs; absent in analyses written before it was recorded).
    #[serde(default)]
    pub sparsity: Option<SparsityCurve>,
    /// NLL, Brier score and ECE of each way of predicting.
    #[serde(default)]
    pub calibration: Vec<ModeCalibration>,
    /// Out-of-distribution detection against `config.ood`.
    #[serde(default)]
    pub ood: Option<OodReport>,
    /// What is particular to a recurrent run: its self-connections and the accuracy of
    /// truncated sequences (recurrent runs only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recurrent: Option<crate::recurrent::RecurrentReport>,
    /// Wall-clock seconds of the analysis, loading included.
    pub seconds: f64,
}

impl Analysis {
    /// The name of layer `layer` (from 1) in words: `layer 2`, or for a recurrent run the
    /// matrix (`input matrix`, `recurrent matrix`, `readout matrix`).
    pub fn layer_name(&self, layer: usize) -> String {
        layer_name(self.model_kind, layer)
    }
}

/// What an analysis needs beside its numbers to draw figures: the parameters.
pub struct AnalysedRun {
    /// The numbers.
    pub analysis: Analysis,
    /// Spike-and-slab parameters per layer (empty for a deterministic run).
    pub params: Vec<LayerParams>,
    /// Shape and weights per layer of a deterministic run (empty otherwise).
    pub deterministic_weights: Vec<(Vec<usize>, Vec<f32>)>,
    /// The run's `metrics.csv` up to the analysed epoch (its class fractions through
    /// training).
    pub metrics: Vec<EpochMetrics>,
    /// The out-of-distribution scores of every image, for the histograms.
    pub ood_scores: Vec<OodScore>,
    /// The Monte Carlo entropy of every connection, per layer, nats (empty for a
    /// deterministic run).
    pub entropies: Vec<Vec<f64>>,
}

/// The name of layer `layer` (from 1) of a network of `kind` in progress lines and
/// reports: `layer 2`, or for a recurrent network its matrix (`input matrix`, `recurrent
/// matrix`, `readout matrix`).
pub fn layer_name(kind: credit_train::ModelKind, layer: usize) -> String {
    match (kind, crate::recurrent::MATRICES.get(layer.wrapping_sub(1))) {
        (credit_train::ModelKind::SpikeSlabRnn, Some(name)) => format!("{name} matrix"),
        _ => format!("layer {layer}"),
    }
}

/// Seconds since 1970-01-01 UTC (0 if the clock is before it).
fn unix_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Analyses the run in `run` on `backend`: its final model, or with `epoch` that epoch's
/// checkpoint. Every random draw comes from `config.seed`, by default the run's seed (the
/// analysis then records it in its `config.seed`).
///
/// # Errors
/// If the settings are out of range, the run cannot be loaded (no final model, no such
/// checkpoint) or its data cannot be read.
pub fn analyze(
    run: &RunDir,
    config: &AnalysisConfig,
    backend: BackendKind,
    epoch: Option<usize>,
) -> Result<AnalysedRun> {
    analyze_with(run, config, backend, epoch, &mut Progress::quiet())
}

/// [`analyze`], showing its stages on `progress`.
///
/// # Errors
/// As [`analyze`].
pub fn analyze_with(
    run: &RunDir,
    config: &AnalysisConfig,
    backend: BackendKind,
    epoch: Option<usize>,
    progress: &mut Progress,
) -> Result<AnalysedRun> {
    credit_train::compute(|| analyze_here(run, config, backend, epoch, progress))
}

fn analyze_here(
    run: &RunDir,
    config: &AnalysisConfig,
    backend: BackendKind,
    epoch: Option<usize>,
    progress: &mut Progress,
) -> Result<AnalysedRun> {
    config.validate()?;
    let started = Instant::now();
    progress.stage("loading the run", 1);
    let run_config: RunConfig = run.config()?;
    if config.ood.is_some() {
        crate::recurrent::not_recurrent(run, &run_config, "out-of-distribution scoring (ood)")?;
    }
    let device: Device = backend.device()?;
    let analysis_seed = config.seed.unwrap_or(run_config.seed);
    let seed = Seed::new(analysis_seed);
    let model = run.load_model(&run_config, &device, epoch)?;
    let last = epoch.unwrap_or(usize::MAX);
    let metrics: Vec<EpochMetrics> = run
        .metrics()?
        .into_iter()
        .filter(|row| row.epoch <= last)
        .collect();
    let data = load_data(&run_config)?;
    progress.stage("test accuracies", 1);
    let accuracies = test_accuracies(
        &model,
        &data,
        seed.stream(Stream::Evaluation).child(0),
        &device,
    );

    let mut analysis = Analysis {
        run: run.path().display().to_string(),
        backend: backend.name().to_string(),
        device: format!("{device:?}"),
        model_kind: run_config.model.kind,
        sizes: run_config.model.sizes.clone(),
        train_images: data.train.len(),
        test_images: data.test.len(),
        epochs: epoch.unwrap_or_else(|| run.summary().map_or(0, |s| s.epochs)),
        run_seed: Some(run_config.seed),
        config: AnalysisConfig {
            seed: Some(analysis_seed),
            ..config.clone()
        },
        run_config: Some(run_config.clone()),
        credit_version: env!("CARGO_PKG_VERSION").to_string(),
        credit_commit: env!("CREDIT_GIT_COMMIT").to_string(),
        files: Vec::new(),
        finished_unix_seconds: 0,
        accuracy: AccuracyReport {
            mean_field_pct: accuracies.test_mean_field_pct,
            mean_network_pct: accuracies.test_mean_network_pct,
            subnetworks: None,
            pruned: None,
        },
        layers: Vec::new(),
        perturbation: Vec::new(),
        sparsity: None,
        calibration: Vec::new(),
        ood: None,
        recurrent: None,
        seconds: 0.0,
    };
    // The sampled sub-networks first: their probabilities serve the calibration too (the
    // same networks, drawn and run once).
    let mut first_and_ensemble: (Vec<f32>, Vec<f32>) = (Vec::new(), Vec::new());
    if !matches!(model, Classifier::Deterministic(_)) {
        progress.stage("sampled sub-networks", config.samples);
        analysis.accuracy.subnetworks = evaluate_model_subnetworks_with(
            &model,
            &data.test,
            &device,
            config.samples,
            seed.stream(Stream::Subnetworks),
            &mut |k, mean| {
                if k == 0 {
                    first_and_ensemble.0 = mean.to_vec();
                }
                if k + 1 == config.samples {
                    first_and_ensemble.1 = mean.to_vec();
                }
                progress.step();
            },
        );
    }
    progress.stage("calibration", 1);
    let members = (!first_and_ensemble.1.is_empty()).then_some((
        first_and_ensemble.0.as_slice(),
        first_and_ensemble.1.as_slice(),
    ));
    analysis.calibration = calibrations_with(
        &model,
        &data.test,
        config.samples,
        config.calibration_bins,
        seed,
        &device,
        members,
    );
    let mut ood_scores = Vec::new();
    if let Some(path) = &config.ood {
        progress.stage("out-of-distribution scores", 1);
        let report = ood_report(
            &model,
            &run_config,
            &data.test,
            path,
            config.samples,
            seed,
            &device,
        )?;
        ood_scores = report.scores.clone();
        analysis.ood = Some(report);
    }

    let net = match &model {
        Classifier::SpikeSlab(net) => Some(net),
        Classifier::SpikeSlabRnn(net) => {
            progress.stage("recurrent: self-connections and truncated sequences", 1);
            analysis.recurrent = Some(crate::recurrent::recurrent_report(
                net,
                &data.test,
                config.tolerance,
                seed.stream(Stream::Evaluation).child(0),
                seed.stream(Stream::Sampling),
                &device,
            ));
            None
        }
        Classifier::Deterministic(net) => {
            analysis.seconds = started.elapsed().as_secs_f64();
            analysis.finished_unix_seconds = unix_seconds();
            return Ok(AnalysedRun {
                analysis,
                params: Vec::new(),
                deterministic_weights: deterministic_weights(net),
                metrics,
                ood_scores,
                entropies: Vec::new(),
            });
        }
    };

    let params = LayerParams::of_layers(&model.spike_slab_layers());
    let nonzero = params.iter().map(LayerParams::nonzero_mean_weights).sum();
    let total = params.iter().map(LayerParams::len).sum();
    analysis.accuracy.pruned = Some(PrunedReport {
        accuracy_pct: accuracies.test_mean_network_pct,
        nonzero,
        total,
    });

    let mut layer_entropy_values = Vec::with_capacity(params.len());
    for (l, p) in params.iter().enumerate() {
        let name = layer_name(run_config.model.kind, l + 1);
        progress.stage(&format!("{name}: entropy"), 1);
        let classes = p.classes(config.tolerance);
        let entropies = layer_entropies(
            p,
            config.entropy_samples,
            seed.stream(Stream::Entropy).child(l as u64),
        );
        let (entropy_mean, entropy_sd) = mean_sd(&entropies);
        layer_entropy_values.push(entropies);
        let closed: f64 = (0..p.len())
            .map(|k| entropy_closed_form(f64::from(p.m[k]), f64::from(p.xi[k]), f64::from(p.pi[k])))
            .sum::<f64>()
            / p.len() as f64;
        let mean = |v: &[f32]| v.iter().map(|&x| f64::from(x)).sum::<f64>() / v.len() as f64;
        analysis.layers.push(LayerReport {
            layer: l + 1,
            d_input: p.d_input,
            d_output: p.d_output,
            classes: count_classes(&classes),
            classes_loose: count_classes(&p.classes(config.loose_tolerance)),
            mean_pi: mean(&p.pi),
            mean_xi: mean(&p.xi),
            entropy_mean,
            entropy_sd,
            entropy_closed_form_mean: closed,
        });
        progress.stage(&format!("{name}: perturbation"), config.repetitions);
        let perturbation_seed = seed.stream(Stream::Perturbation).child(l as u64);
        let network = match (&model, net) {
            (_, Some(net)) => Perturbed::FeedForward(net),
            (Classifier::SpikeSlabRnn(rnn), None) => Perturbed::Recurrent(rnn),
            _ => continue,
        };
        let curves = perturb_with(
            network,
            &classes,
            l,
            &data.test,
            &config.fractions,
            config.repetitions,
            perturbation_seed,
            &device,
            &mut || progress.step(),
        );
        analysis.perturbation.push(curves);
    }
    if let Some(net) = net {
        progress.stage("pruning curve", 1);
        analysis.sparsity = Some(sparsity_curve(
            net,
            &params,
            &data.test,
            &config.pi_thresholds,
            config.pruning_samples,
            seed.stream(Stream::Subnetworks),
        ));
    }
    analysis.seconds = started.elapsed().as_secs_f64();
    analysis.finished_unix_seconds = unix_seconds();
    Ok(AnalysedRun {
        analysis,
        params,
        deterministic_weights: Vec::new(),
        metrics,
        ood_scores,
        entropies: layer_entropy_values,
    })
}
