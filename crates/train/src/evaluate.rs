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

/// Accuracy (percent) of `logits_of` over a whole set, in chunks of [`EVAL_BATCH`] images.
pub fn set_accuracy_pct(
    set: &ImageSet,
    device: &Device,
    mut logits_of: impl FnMut(Tensor<2>) -> Tensor<2>,
) -> f64 {
    let mut correct = 0.0;
    for start in (0..set.len()).step_by(EVAL_BATCH) {
        let end = (start + EVAL_BATCH).min(set.len());
        let batch = set.batch(start..end, device);
        correct += accuracy_pct(logits_of(batch.images), batch.targets) * (end - start) as f64;
    }
    correct / set.len() as f64
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
    let on = |set: &ImageSet, noise: Noise| {
        set_accuracy_pct(set, device, |images| model.forward(images, noise))
    };
    Accuracies {
        test_mean_field_pct: on(&data.test, Noise::Sampled),
        test_mean_network_pct: on(&data.test, Noise::Off),
        train_mean_network_pct: on(&data.train, Noise::Off),
    }
}
