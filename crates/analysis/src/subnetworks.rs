//! Concrete sub-networks drawn from a trained spike-and-slab network, and their ensemble.

use burn::tensor::activation::softmax;
use burn::tensor::{Device, Tensor};
use credit_data::ImageSet;
use credit_model::{Classifier, DeterministicNet, SampledNetwork, Seed, SpikeSlabNet};
use credit_train::accuracy_pct;
use serde::{Deserialize, Serialize};

use crate::uncertainty::calibration;

/// Test accuracies of `K` sampled sub-networks and of their ensemble, in percent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubnetworkReport {
    /// Accuracy of each sampled sub-network.
    pub accuracies_pct: Vec<f64>,
    /// Fraction of exactly-zero weights in each sampled sub-network.
    pub zero_fractions: Vec<f64>,
    /// Mean of `accuracies_pct`.
    pub mean_pct: f64,
    /// Sample standard deviation of `accuracies_pct` (0 for one sample).
    pub sd_pct: f64,
    /// Smallest accuracy.
    pub min_pct: f64,
    /// Largest accuracy.
    pub max_pct: f64,
    /// Accuracy of the ensemble that averages the `K` networks' softmax outputs.
    pub ensemble_pct: f64,
    /// Accuracy of the ensemble of the first `k` networks, `k = 1..=K` (empty in analyses
    /// written before it was recorded).
    #[serde(default)]
    pub ensemble_by_size_pct: Vec<f64>,
    /// Mean negative log-likelihood (nats) of the ensemble of the first `k` networks, as
    /// [`crate::uncertainty::calibration`] computes it.
    #[serde(default)]
    pub ensemble_nll_by_size: Vec<f64>,
}

/// Fraction of exactly-zero weights over all layers of a network.
pub fn zero_fraction(net: &DeterministicNet) -> f64 {
    zero_fraction_of(net.layers.iter().map(|l| l.weight.val()))
}

/// Fraction of exactly-zero weights over all of `weights`.
fn zero_fraction_of(weights: impl Iterator<Item = Tensor<2>>) -> f64 {
    let (zeros, total) = weights.fold((0usize, 0usize), |(z, t), w| {
        let n = w.dims().iter().product::<usize>();
        let z_layer: i64 = w.equal_elem(0.0).int().sum().into_scalar();
        (z + z_layer as usize, t + n)
    });
    zeros as f64 / total as f64
}

/// Draws `samples` sub-networks from `net` (network `k` from `seed.child(k)`) and evaluates
/// each, and their softmax-averaged ensemble, on `test`.
///
/// # Panics
/// If `samples` is 0.
pub fn evaluate_subnetworks(
    net: &SpikeSlabNet,
    test: &ImageSet,
    device: &Device,
    samples: usize,
    seed: Seed,
) -> SubnetworkReport {
    evaluate_subnetworks_with(net, test, device, samples, seed, &mut |_, _| {})
}

/// [`evaluate_subnetworks`], calling `on_member(k, mean)` after sub-network `k` with the
/// ensemble's probabilities so far (`[images, classes]` row-major, the mean softmax of members
/// `0..=k`: member 0's own at `k = 0`, the whole ensemble's at the last).
///
/// # Panics
/// If `samples` is 0.
pub fn evaluate_subnetworks_with(
    net: &SpikeSlabNet,
    test: &ImageSet,
    device: &Device,
    samples: usize,
    seed: Seed,
    on_member: &mut dyn FnMut(usize, &[f32]),
) -> SubnetworkReport {
    let draw = |seed| SampledNetwork::FeedForward(net.sample_network(seed));
    evaluate_members(&draw, test, device, samples, seed, on_member)
}

/// [`evaluate_subnetworks_with`] for any spike-and-slab run (the sub-networks of a
/// recurrent one keep their weights at every step); `None` for a deterministic run.
///
/// # Panics
/// If `samples` is 0.
pub fn evaluate_model_subnetworks_with(
    model: &Classifier,
    test: &ImageSet,
    device: &Device,
    samples: usize,
    seed: Seed,
    on_member: &mut dyn FnMut(usize, &[f32]),
) -> Option<SubnetworkReport> {
    if matches!(model, Classifier::Deterministic(_)) {
        return None;
    }
    let draw = |seed| model.sample_network(seed).expect("a spike-and-slab model");
    Some(evaluate_members(
        &draw, test, device, samples, seed, on_member,
    ))
}

fn evaluate_members(
    draw: &dyn Fn(Seed) -> SampledNetwork,
    test: &ImageSet,
    device: &Device,
    samples: usize,
    seed: Seed,
    on_member: &mut dyn FnMut(usize, &[f32]),
) -> SubnetworkReport {
    assert!(samples > 0, "at least one sub-network");
    let batch = test.all(device);
    let mut accuracies = Vec::with_capacity(samples);
    let mut zero_fractions = Vec::with_capacity(samples);
    let mut probabilities: Option<Tensor<2>> = None;
    let (mut by_size, mut nll_by_size) = (Vec::new(), Vec::new());
    for k in 0..samples {
        let sub = draw(seed.child(k as u64));
        zero_fractions.push(zero_fraction_of(sub.weights().into_iter()));
        let logits = sub.forward(batch.images.clone());
        accuracies.push(accuracy_pct(logits.clone(), batch.targets.clone()));
        let p = softmax(logits, 1);
        let sum = match probabilities {
            Some(sum) => sum + p,
            None => p,
        };
        let mean: Vec<f32> = sum
            .clone()
            .div_scalar((k + 1) as f64)
            .into_data()
            .convert::<f32>()
            .try_to_vec::<f32>()
            .expect("float probabilities");
        let c = calibration(&mean, test.labels(), 1);
        by_size.push(c.accuracy_pct);
        nll_by_size.push(c.nll);
        probabilities = Some(sum);
        on_member(k, &mean);
    }
    let ensemble_pct = accuracy_pct(probabilities.expect("samples > 0"), batch.targets);
    let (mean, sd) = mean_sd(&accuracies);
    SubnetworkReport {
        mean_pct: mean,
        sd_pct: sd,
        min_pct: accuracies.iter().copied().fold(f64::INFINITY, f64::min),
        max_pct: accuracies.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        accuracies_pct: accuracies,
        zero_fractions,
        ensemble_pct,
        ensemble_by_size_pct: by_size,
        ensemble_nll_by_size: nll_by_size,
    }
}

/// Mean and sample standard deviation (0 for fewer than two values).
pub fn mean_sd(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    if values.len() < 2 {
        return (mean, 0.0);
    }
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, var.sqrt())
}
