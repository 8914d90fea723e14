//! Loss and accuracy of a network on whole image sets.

use burn::nn::loss::CrossEntropyLossConfig;
use burn::tensor::{Device, Int, Tensor};
use credit_data::{ImageSet, Splits};
use credit_model::{Classifier, Noise, Seed};

use crate::config::EVAL_ROWS;

/// Percentage of rows whose largest logit is at the target class.
///
/// # Shapes
/// - logits: `[batch, classes]`
/// - targets: `[batch]`
pub fn accuracy_pct(logits: Tensor<2>, targets: Tensor<1, Int>) -> f64 {
    let n = targets.dims()[0];
    100.0 * correct(logits, targets) as f64 / n as f64
}

/// How many rows have their largest logit at the target class.
fn correct(logits: Tensor<2>, targets: Tensor<1, Int>) -> i64 {
    let n = targets.dims()[0];
    let predicted = logits.argmax(1).reshape([n]);
    predicted.equal(targets).int().sum().into_scalar()
}

/// Accuracy (percent) of `logits_of` over a whole set, in chunks of [`EVAL_ROWS`] images;
/// `logits_of` gets each chunk and its index.
pub fn set_accuracy_pct(
    set: &ImageSet,
    device: &Device,
    logits_of: impl Fn(Tensor<2>, usize) -> Tensor<2>,
) -> f64 {
    set_accuracies_pct(set, device, [&logits_of])[0]
}

/// Accuracies (percent) of several classifiers over a whole set, each chunk of
/// [`EVAL_ROWS`] images built once for all of them.
pub fn set_accuracies_pct<const K: usize>(
    set: &ImageSet,
    device: &Device,
    logits_of: [&dyn Fn(Tensor<2>, usize) -> Tensor<2>; K],
) -> [f64; K] {
    let mut right = [0i64; K];
    for (chunk, start) in (0..set.len()).step_by(EVAL_ROWS).enumerate() {
        let end = (start + EVAL_ROWS).min(set.len());
        let batch = set.batch(start..end, device);
        for (sum, f) in right.iter_mut().zip(logits_of) {
            *sum += correct(f(batch.images.clone(), chunk), batch.targets.clone());
        }
    }
    right.map(|c| 100.0 * c as f64 / set.len().max(1) as f64)
}

/// Mean cross-entropy and accuracy (percent) of the mean-field network (noise from `seed`,
/// chunk `c` from its child `c`) over a whole set: the test columns of `metrics.csv`.
pub fn set_loss_and_accuracy(
    model: &Classifier,
    set: &ImageSet,
    seed: Seed,
    device: &Device,
) -> (f64, f64) {
    let loss = CrossEntropyLossConfig::new().init(device);
    let (mut loss_sum, mut right) = (0.0, 0i64);
    for (chunk, start) in (0..set.len()).step_by(EVAL_ROWS).enumerate() {
        let end = (start + EVAL_ROWS).min(set.len());
        let batch = set.batch(start..end, device);
        let logits = model.forward(batch.images, Noise::Sampled(seed.child(chunk as u64)));
        let mean: f64 = loss
            .forward(logits.clone(), batch.targets.clone())
            .into_scalar::<f64>();
        loss_sum += mean * (end - start) as f64;
        right += correct(logits, batch.targets);
    }
    let n = set.len().max(1) as f64;
    (loss_sum / n, 100.0 * right as f64 / n)
}

/// The accuracies a run summary reports, in percent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Accuracies {
    /// Test set, noise sampled (mean-field).
    pub test_mean_field_pct: f64,
    /// Test set, noise off (mean network).
    pub test_mean_network_pct: f64,
    /// Training set, noise off.
    pub train_mean_network_pct: f64,
}

/// Evaluates `model` (on a device without autodiff) on both splits; the mean-field noise of
/// chunk `c` comes from `seed.child(c)`.
pub fn test_accuracies(
    model: &Classifier,
    data: &Splits,
    seed: Seed,
    device: &Device,
) -> Accuracies {
    let noisy =
        |images, chunk: usize| model.forward(images, Noise::Sampled(seed.child(chunk as u64)));
    let mean = |images, _| model.forward(images, Noise::Off);
    let [test_mean_field_pct, test_mean_network_pct] =
        set_accuracies_pct(&data.test, device, [&noisy, &mean]);
    Accuracies {
        test_mean_field_pct,
        test_mean_network_pct,
        train_mean_network_pct: set_accuracy_pct(&data.train, device, mean),
    }
}
