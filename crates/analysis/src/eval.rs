//! `credit eval`: the test accuracies of a trained run, reloaded.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use credit_model::{Classifier, Seed, Stream};
use credit_train::{BackendKind, RunDir, load_data, test_accuracies};
use serde::{Deserialize, Serialize};

use crate::predict::{ModeCalibration, OodScore, calibrations, ood_scores};
use crate::progress::Progress;
use crate::subnetworks::{SubnetworkReport, evaluate_model_subnetworks_with};

/// Out-of-distribution detection against one data set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OodReport {
    /// The out-of-distribution images (an IDX folder's or `.npz`'s test images, a `.npy`, ...).
    pub data: PathBuf,
    /// How many of them.
    pub images: usize,
    /// Each score's AUROC and AUPR.
    pub scores: Vec<OodScore>,
}

/// Loads `path`'s images for `model`'s input, in the units of the run's training images
/// (see `predict::fit_inputs`), and scores them against `test`.
pub(crate) fn ood_report(
    model: &credit_model::Classifier,
    config: &credit_train::RunConfig,
    test: &credit_data::ImageSet,
    path: &Path,
    samples: usize,
    seed: Seed,
    device: &burn::tensor::Device,
) -> Result<OodReport> {
    let inputs = credit_data::load_inputs(path, test.features(), false)
        .with_context(|| format!("out-of-distribution data {}", path.display()))?;
    let on_bytes = matches!(test.stored(), credit_data::Pixels::Bytes(_));
    let outside = crate::predict::fit_inputs(inputs, path, config, on_bytes)?;
    Ok(OodReport {
        data: path.to_path_buf(),
        images: outside.len(),
        scores: ood_scores(model, test, &outside, samples.max(1), seed, device),
    })
}

/// What `credit eval` reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    /// The run directory.
    pub run: String,
    /// `spike-slab` or `deterministic`.
    pub model: String,
    /// Backend name.
    pub backend: String,
    /// Device, as burn names it.
    pub device: String,
    /// Seed of the noise and of the sampled sub-networks.
    pub seed: u64,
    /// Test images evaluated.
    pub test_images: usize,
    /// Test accuracy with the noise sampled, percent.
    pub test_accuracy_mean_field_pct: f64,
    /// Test accuracy of the mean network, percent.
    pub test_accuracy_mean_network_pct: f64,
    /// Sampled sub-networks and their ensemble (spike-and-slab runs, `samples > 0`).
    pub subnetworks: Option<SubnetworkReport>,
    /// NLL, Brier score and ECE of each way of predicting.
    pub calibration: Vec<ModeCalibration>,
    /// Out-of-distribution detection, when asked for.
    pub ood: Option<OodReport>,
    /// The same evaluation of a baseline run (e.g. the deterministic network trained on the
    /// same data), when asked for.
    pub baseline: Option<Box<EvalReport>>,
}

/// What `credit eval` is asked.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalOptions {
    /// Sub-networks to sample (0: none, and one for the calibration and OOD ensemble).
    pub samples: usize,
    /// Seed of every draw (default: the run's seed).
    pub seed: Option<u64>,
    /// The checkpoint of this epoch instead of the final model.
    pub epoch: Option<usize>,
    /// Confidence bins of the expected calibration error.
    pub bins: usize,
    /// Out-of-distribution images to score against the test images.
    pub ood: Option<PathBuf>,
    /// A second run (the deterministic baseline) evaluated the same way, on the same test
    /// images.
    pub baseline: Option<PathBuf>,
}

impl Default for EvalOptions {
    fn default() -> Self {
        Self {
            samples: 20,
            seed: None,
            epoch: None,
            bins: 15,
            ood: None,
            baseline: None,
        }
    }
}

/// Reloads the run in `run` (its final model, or a checkpoint) and evaluates it on its test
/// images: mean-field, mean network and sampled sub-networks with their ensemble, the
/// calibration of each, and out-of-distribution detection; every draw from the seed. With
/// `options.baseline`, that run is evaluated the same way and reported beside.
///
/// # Errors
/// If a run, its data or the out-of-distribution data cannot be loaded, `bins` is out of
/// range, or the baseline's test images are not the run's.
pub fn evaluate_run(
    run: &RunDir,
    options: &EvalOptions,
    backend: BackendKind,
) -> Result<EvalReport> {
    evaluate_run_with(run, options, backend, &mut Progress::quiet())
}

/// [`evaluate_run`], showing its stages on `progress` (the sampled sub-networks one by one).
///
/// # Errors
/// As [`evaluate_run`].
pub fn evaluate_run_with(
    run: &RunDir,
    options: &EvalOptions,
    backend: BackendKind,
    progress: &mut Progress,
) -> Result<EvalReport> {
    anyhow::ensure!(
        (1..=crate::limits::MAX_BINS).contains(&options.bins),
        "--bins must be between 1 and {}",
        crate::limits::MAX_BINS
    );
    anyhow::ensure!(
        options.samples <= crate::limits::MAX_SAMPLES,
        "--samples must be at most {}",
        crate::limits::MAX_SAMPLES
    );
    credit_train::compute(|| {
        let mut report = evaluate_one(run, options, options.epoch, backend, None, progress)?;
        if let Some(path) = &options.baseline {
            let baseline = RunDir::new(path);
            let test = load_data(&run.config()?)?.test;
            let other = evaluate_one(&baseline, options, None, backend, Some(&test), progress)
                .with_context(|| format!("baseline {}", path.display()))?;
            report.baseline = Some(Box::new(other));
        }
        Ok(report)
    })
}

/// One run's evaluation; `expected_test`, when given, must be its test set.
fn evaluate_one(
    run: &RunDir,
    options: &EvalOptions,
    epoch: Option<usize>,
    backend: BackendKind,
    expected_test: Option<&credit_data::ImageSet>,
    progress: &mut Progress,
) -> Result<EvalReport> {
    progress.stage(&format!("loading {}", run.path().display()), 1);
    let config = run.config()?;
    if options.ood.is_some() {
        crate::recurrent::not_recurrent(run, &config, "out-of-distribution scoring (--ood)")?;
    }
    let (samples, seed) = (options.samples, options.seed.unwrap_or(config.seed));
    let device = backend.device()?;
    let model = run.load_model(&config, &device, epoch)?;
    let data = load_data(&config)?;
    if let Some(expected) = expected_test {
        anyhow::ensure!(
            expected.len() == data.test.len()
                && expected.features() == data.test.features()
                && expected.labels() == data.test.labels(),
            "its test images ({} of {} pixels) are not the evaluated run's ({} of {}): compare runs on the same data",
            data.test.len(),
            data.test.features(),
            expected.len(),
            expected.features()
        );
    }
    let root = Seed::new(seed);
    progress.stage("test accuracies", 1);
    let accuracies = test_accuracies(
        &model,
        &data,
        root.stream(Stream::Evaluation).child(0),
        &device,
    );
    let subnetworks = if samples > 0 && !matches!(model, Classifier::Deterministic(_)) {
        progress.stage("sampled sub-networks", samples);
        evaluate_model_subnetworks_with(
            &model,
            &data.test,
            &device,
            samples,
            root.stream(Stream::Subnetworks),
            &mut |_, _| progress.step(),
        )
    } else {
        None
    };
    let ensemble = samples.max(1);
    progress.stage("calibration", 1);
    let calibration = calibrations(&model, &data.test, ensemble, options.bins, root, &device);
    let ood = match &options.ood {
        Some(path) => {
            progress.stage("out-of-distribution scores", 1);
            Some(ood_report(
                &model, &config, &data.test, path, ensemble, root, &device,
            )?)
        }
        None => None,
    };
    progress.finish();
    Ok(EvalReport {
        run: run.path().display().to_string(),
        model: config.model.kind.name().to_string(),
        backend: backend.name().to_string(),
        device: format!("{device:?}"),
        seed,
        test_images: data.test.len(),
        test_accuracy_mean_field_pct: accuracies.test_mean_field_pct,
        test_accuracy_mean_network_pct: accuracies.test_mean_network_pct,
        subnetworks,
        calibration,
        ood,
        baseline: None,
    })
}
