//! `credit bench`: training and evaluation throughput of a config on one backend.

use std::time::Instant;

use anyhow::Result;
use credit_model::{Noise, Seed, Stream};
use serde::{Deserialize, Serialize};

use crate::backend::BackendKind;
use crate::config::RunConfig;
use crate::display::Display;
use crate::evaluate::set_accuracy_pct;
use crate::run::RunDir;
use crate::runtime::compute;
use crate::training::{TrainOptions, load_data, train};
use credit_model::Classifier;

/// Timings of one benchmark; seconds are wall-clock, medians over the timed repetitions.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BenchReport {
    /// Backend name.
    pub backend: String,
    /// Device, as burn names it.
    pub device: String,
    /// Training images per epoch.
    pub train_images: usize,
    /// Seconds of each timed training epoch (the first epoch, a warm-up, is left out).
    pub epoch_seconds: Vec<f64>,
    /// Median of `epoch_seconds`.
    pub epoch_seconds_median: f64,
    /// Training images per second at the median.
    pub train_images_per_second: f64,
    /// Test images per evaluation pass.
    pub test_images: usize,
    /// Seconds of each mean-field forward pass over the test images.
    pub eval_seconds: Vec<f64>,
    /// Median of `eval_seconds`.
    pub eval_seconds_median: f64,
    /// Test images per second at the median.
    pub eval_images_per_second: f64,
    /// Seconds of a full `credit analyze` of the benchmark's run, when timed.
    pub analyze_seconds: Option<f64>,
}

/// Trains `config` for `1 + epochs` epochs into `run` (a fresh directory) through the full
/// training path (steps, test evaluation, class counts, checkpoints, metrics) and times the
/// last `epochs`; then times `eval_repeats` mean-field passes over the test images.
///
/// # Errors
/// If training or loading fails.
pub fn bench(
    config: &RunConfig,
    backend: BackendKind,
    epochs: usize,
    eval_repeats: usize,
    run: &RunDir,
) -> Result<BenchReport> {
    compute(|| bench_here(config, backend, epochs, eval_repeats, run))
}

fn bench_here(
    config: &RunConfig,
    backend: BackendKind,
    epochs: usize,
    eval_repeats: usize,
    run: &RunDir,
) -> Result<BenchReport> {
    let mut config = config.clone();
    config.train.epochs = epochs + 1;
    let mut options = TrainOptions::new(backend);
    options.display = Display::Quiet;
    train(&config, run, &options)?.finished()?;
    let epoch_seconds: Vec<f64> = run
        .metrics()?
        .iter()
        .skip(1)
        .map(|m| m.train_seconds)
        .collect();

    let data = load_data(&config)?;
    let device = backend.device()?;
    let model = run.load_model(&config, &device, None)?;
    let seed = Seed::new(config.seed).stream(Stream::Evaluation);
    let eval_once = |model: &Classifier| {
        let start = Instant::now();
        set_accuracy_pct(&data.test, &device, |x, chunk| {
            model.forward(x, Noise::Sampled(seed.child(chunk as u64)))
        });
        start.elapsed().as_secs_f64()
    };
    eval_once(&model);
    let eval_seconds: Vec<f64> = (0..eval_repeats).map(|_| eval_once(&model)).collect();

    let epoch_median = median(&epoch_seconds);
    let eval_median = median(&eval_seconds);
    Ok(BenchReport {
        backend: backend.name().to_string(),
        device: format!("{device:?}"),
        train_images: config.images_per_epoch(data.train.len()),
        epoch_seconds,
        epoch_seconds_median: epoch_median,
        train_images_per_second: config.images_per_epoch(data.train.len()) as f64 / epoch_median,
        test_images: data.test.len(),
        eval_seconds,
        eval_seconds_median: eval_median,
        eval_images_per_second: data.test.len() as f64 / eval_median,
        analyze_seconds: None,
    })
}

/// Median of a non-empty list (mean of the middle two for even lengths).
pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}
