//! Runs of the smoke config for the training and resume tests.

use std::path::{Path, PathBuf};

use super::{device, values};
use credit_model::Classifier;
use credit_train::{Display, RunConfig, RunDir, TrainOptions};

pub fn manifest() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

pub fn smoke(overrides: &[&str]) -> RunConfig {
    let mut all = vec![format!(
        "data.dir={}",
        manifest().join("data/mnist").display()
    )];
    all.extend(overrides.iter().map(|s| s.to_string()));
    RunConfig::load(&manifest().join("configs/smoke.toml"), &all).unwrap()
}

/// Test accuracy the smoke config must exceed after its 3 epochs.
pub const SMOKE_FLOOR_PCT: f64 = 70.0;

pub fn options() -> TrainOptions {
    let mut options = TrainOptions::new(credit_train::BackendKind::default_available().unwrap());
    options.display = Display::Quiet;
    options
}

pub fn resuming() -> TrainOptions {
    let mut options = options();
    options.resume = true;
    options
}

pub fn run_dir(root: &tempfile::TempDir, name: &str) -> RunDir {
    RunDir::new(PathBuf::from(root.path()).join(name))
}

/// `metrics.csv` without its wall-clock column (`train_seconds`), which no two runs share.
pub fn metrics_without_seconds(run: &RunDir) -> Vec<String> {
    let text = std::fs::read_to_string(run.file("metrics.csv")).unwrap();
    let header: Vec<&str> = text.lines().next().unwrap().split(',').collect();
    let seconds = header
        .iter()
        .position(|&c| c == "train_seconds")
        .expect("metrics.csv has train_seconds");
    text.lines()
        .map(|line| {
            let mut fields: Vec<&str> = line.split(',').collect();
            fields.remove(seconds);
            fields.join(",")
        })
        .collect()
}

/// Every parameter of the run's final model, bit for bit.
pub fn final_parameters(run: &RunDir, config: &RunConfig) -> Vec<Vec<u32>> {
    let model = run.load_model(config, &device(), None).unwrap();
    let net = model.spike_slab().expect("a spike-and-slab run");
    net.layers
        .iter()
        .flat_map(|l| [l.m.val(), l.xi.val(), l.pi.val()])
        .map(|t| values(t).iter().map(|&v| (v as f32).to_bits()).collect())
        .collect()
}

/// Every `pi` in [0, 1] and `xi >= 0`; returns how many sit exactly on a bound that
/// initialisation does not produce (`pi = 1` or `xi = 0`).
pub fn assert_in_support(model: &Classifier) -> usize {
    let net = model.spike_slab().expect("a spike-and-slab model");
    let mut on_bounds = 0;
    for layer in &net.layers {
        let pi = values(layer.pi.val());
        let xi = values(layer.xi.val());
        assert!(pi.iter().all(|p| (0.0..=1.0).contains(p)), "pi left [0, 1]");
        assert!(xi.iter().all(|&x| x >= 0.0), "xi went negative");
        on_bounds += pi.iter().filter(|&&p| p == 1.0).count();
        on_bounds += xi.iter().filter(|&&x| x == 0.0).count();
    }
    on_bounds
}
