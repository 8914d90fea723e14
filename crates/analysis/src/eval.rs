//! `credit eval`: the test accuracies of a trained run, reloaded.

use anyhow::Result;
use credit_model::{Seed, Stream};
use credit_train::{BackendKind, RunDir, load_data, test_accuracies};
use serde::{Deserialize, Serialize};

use crate::subnetworks::{SubnetworkReport, evaluate_subnetworks};

/// What `credit eval` reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    /// The run directory.
    pub run: String,
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
}

/// Reloads the run in `run` (its final model, or with `epoch` a checkpoint) and evaluates it
/// on its test images: mean-field, mean network and `samples` sub-networks with their
/// ensemble, every draw from `seed`.
///
/// # Errors
/// If the run or its data cannot be loaded.
pub fn evaluate_run(
    run: &RunDir,
    samples: usize,
    seed: u64,
    backend: BackendKind,
    epoch: Option<usize>,
) -> Result<EvalReport> {
    credit_train::compute(|| {
        let config = run.config()?;
        let device = backend.device()?;
        let model = run.load_model(&config, &device, epoch)?;
        let data = load_data(&config)?;
        let root = Seed::new(seed);
        let accuracies = test_accuracies(&model, &data, root.stream(Stream::Evaluation), &device);
        let subnetworks = match model.spike_slab() {
            Some(net) if samples > 0 => Some(evaluate_subnetworks(
                net,
                &data.test,
                &device,
                samples,
                root.stream(Stream::Subnetworks),
            )),
            _ => None,
        };
        Ok(EvalReport {
            run: run.path().display().to_string(),
            backend: backend.name().to_string(),
            device: format!("{device:?}"),
            seed,
            test_images: data.test.len(),
            test_accuracy_mean_field_pct: accuracies.test_mean_field_pct,
            test_accuracy_mean_network_pct: accuracies.test_mean_network_pct,
            subnetworks,
        })
    })
}
