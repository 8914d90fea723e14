//! Accuracy of a trained network on whole image sets.

use burn::tensor::{Device, Int, Tensor};
use credit_data::{ImageSet, Splits};
use credit_model::Noise;

use crate::classifier::Classifier;

/// Images per forward pass when evaluating a whole set.
const EVAL_BATCH: usize = 10_000;

/// Percentage of rows whose largest logit is at the target class.
///
/// # Shapes
/// - logits: `[batch, classes]`
/// - targets: `[batch]`
pub fn accuracy_pct(logits: Tensor<2>, targets: Tensor<1, Int>) -> f64 {
    let n = targets.dims()[0];
    let predicted = logits.argmax(1).reshape([n]);
    let correct: i64 = predicted.equal(targets).int().sum().into_scalar();
    100.0 * correct as f64 / n as f64
}

/// Accuracy (percent) of `logits_of` over a whole set, in chunks of `EVAL_BATCH` images.
pub fn set_accuracy_pct(
    set: &ImageSet,
    device: &Device,
    logits_of: impl Fn(Tensor<2>) -> Tensor<2>,
) -> f64 {
    set_accuracies_pct(set, device, [&logits_of])[0]
}

/// Accuracies (percent) of several classifiers over a whole set, each chunk of
/// [`EVAL_BATCH`] images built once for all of them.
pub fn set_accuracies_pct<const K: usize>(
    set: &ImageSet,
    device: &Device,
    logits_of: [&dyn Fn(Tensor<2>) -> Tensor<2>; K],
) -> [f64; K] {
    let mut correct = [0.0; K];
    for start in (0..set.len()).step_by(EVAL_BATCH) {
        let end = (start + EVAL_BATCH).min(set.len());
        let batch = set.batch(start..end, device);
        for (sum, f) in correct.iter_mut().zip(logits_of) {
            let accuracy = accuracy_pct(f(batch.images.clone()), batch.targets.clone());
            *sum += accuracy * (end - start) as f64;
        }
    }
    correct.map(|c| c / set.len() as f64)
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

/// Evaluates `model` (on a device without autodiff) on both splits.
pub fn test_accuracies(model: &Classifier, data: &Splits, device: &Device) -> Accuracies {
    let noisy = |images| model.forward(images, Noise::Sampled);
    let mean = |images| model.forward(images, Noise::Off);
    let [test_mean_field_pct, test_mean_network_pct] =
        set_accuracies_pct(&data.test, device, [&noisy, &mean]);
    Accuracies {
        test_mean_field_pct,
        test_mean_network_pct,
        train_mean_network_pct: set_accuracy_pct(&data.train, device, mean),
    }
}
