//! `credit reproduce`: the paper's MNIST experiments under both of the authors' protocols
//! (`configs/mnist.toml`, 2020; `configs/mnist-2022.toml`, 2022), each over seeds with its
//! deterministic baseline and over training-set sizes, compared with what the authors' code
//! gives, in one report.
//!
//! The authors' numbers ([`AUTHORS`]) were measured with their code (Chan-Li/SAS-model),
//! unmodified maths, 100 epochs: `Training for MNIST/DNN-SAS-MNIST.py` at c74f63a (2020,
//! seeds 0-5; seeds 3-5 with the gradient lines computed as matrix products, equal to theirs
//! within 2.5e-15) and at HEAD with `utils/optimizers.py` (2022, seeds 0-2).
//!
//! Files: `mod.rs` (the protocols, the authors' numbers and the plan), `comparison.rs`
//! (credit against the authors, in pooled seed standard deviations), `report.rs` (the
//! report and its figures).

mod comparison;
mod report;

pub use comparison::{ComparisonRow, ProtocolComparison, Summary};
pub use report::{ReproduceReport, write_report};

use std::path::PathBuf;

use anyhow::Result;
use credit_train::ModelKind;

use crate::analyze::AnalysisConfig;

use super::plan::{PlanKind, SweepPlan, SweepRun, resolved};
/// One of the authors' protocols: its presets and what their code gives.
#[derive(Debug, Clone, Copy)]
pub struct Protocol {
    /// `2020` or `2022`.
    pub name: &'static str,
    /// The spike-and-slab preset, in the configs folder.
    pub spike_slab: &'static str,
    /// The deterministic baseline's preset.
    pub deterministic: &'static str,
    /// The authors' numbers, per seed.
    pub authors: AuthorsNumbers,
}

/// What the authors' code gives for one protocol, per seed (0, 1, ...); percentages. Every
/// field holds one value per seed.
#[derive(Debug, Clone, Copy)]
pub struct AuthorsNumbers {
    /// Test accuracy of the mean-field network (noise on).
    pub mean_field: &'static [f64],
    /// Test accuracy of the mean network `(1 - pi) m`, noise off.
    pub mean_network: &'static [f64],
    /// Mean test accuracy of 20 sampled sub-networks.
    pub subnetworks: &'static [f64],
    /// Test accuracy of their 20-ensemble.
    pub ensemble: &'static [f64],
    /// Very important connections (`pi = 0`, `xi = 0` exactly), `[seed][layer]`.
    pub very_important: &'static [[f64; 3]],
    /// Unimportant connections (`pi = 1` exactly), `[seed][layer]`.
    pub unimportant: &'static [[f64; 3]],
}

/// The two protocols, with the authors' numbers.
pub const AUTHORS: [Protocol; 2] = [
    Protocol {
        name: "2020",
        spike_slab: "mnist.toml",
        deterministic: "mnist-deterministic.toml",
        authors: AuthorsNumbers {
            mean_field: &[96.29, 96.17, 96.33, 96.18, 96.29, 96.42],
            mean_network: &[96.47, 96.27, 96.52, 96.34, 96.48, 96.64],
            subnetworks: &[96.30, 96.18, 96.34, 96.19, 96.26, 96.39],
            ensemble: &[96.53, 96.34, 96.44, 96.34, 96.45, 96.60],
            very_important: &[
                [4.19, 3.76, 9.50],
                [2.63, 1.41, 7.40],
                [4.10, 2.52, 3.70],
                [3.83, 3.79, 10.3],
                [4.57, 2.88, 7.10],
                [3.67, 3.08, 8.70],
            ],
            unimportant: &[
                [1.68, 1.22, 1.80],
                [1.40, 1.47, 1.50],
                [1.52, 1.34, 1.30],
                [1.53, 1.14, 1.40],
                [1.84, 1.23, 1.60],
                [1.86, 1.35, 1.70],
            ],
        },
    },
    Protocol {
        name: "2022",
        spike_slab: "mnist-2022.toml",
        deterministic: "mnist-2022-deterministic.toml",
        authors: AuthorsNumbers {
            mean_field: &[95.21, 95.37, 95.10],
            mean_network: &[95.99, 95.72, 95.77],
            subnetworks: &[95.29, 95.15, 95.24],
            ensemble: &[95.91, 95.72, 95.73],
            very_important: &[[5.86, 7.39, 20.6], [10.1, 11.2, 19.6], [6.45, 7.91, 16.1]],
            unimportant: &[[14.6, 14.2, 7.30], [11.3, 11.0, 9.00], [11.8, 9.38, 5.10]],
        },
    },
];

/// The epochs of the authors' runs whose numbers [`AUTHORS`] gives: credit's runs are
/// compared with them only at the same budget.
pub const AUTHORS_EPOCHS: usize = 100;

/// The training-set size of the protocols' own runs.
pub const PROTOCOL_TRAIN_SIZE: usize = 10_000;

/// What `credit reproduce` runs.
#[derive(Debug, Clone, PartialEq)]
pub struct ReproduceOptions {
    /// The folder of the presets (`configs`).
    pub configs: PathBuf,
    /// Seeds per protocol and setting (0, 1, ...).
    pub seeds: usize,
    /// Training-set sizes of the size sweep, besides the protocols' 10,000 (0: all images).
    pub sizes: Vec<usize>,
    /// Overrides for every run (e.g. `train.epochs=2` for a quick look).
    pub overrides: Vec<String>,
    /// Analysis settings of every spike-and-slab run.
    pub analysis: AnalysisConfig,
}

/// The plan of `credit reproduce`: for each protocol, `seeds` spike-and-slab runs and as many
/// baselines (group `2020`, `2022`), and the same at each training-set size of
/// `options.sizes` (group `sizes-2020`, `sizes-2022`).
///
/// # Errors
/// If a preset cannot be read or a run's configuration is not valid.
pub fn plan(options: &ReproduceOptions) -> Result<SweepPlan> {
    anyhow::ensure!(options.seeds >= 1, "--seeds must be at least 1");
    for set in &options.overrides {
        let key = credit_train::split_override(set)?.0;
        anyhow::ensure!(
            !["seed", "model.kind", "data.train_size"].contains(&key),
            "--set {set:?}: credit reproduce sets {key} itself (--seeds, the presets, --sizes)"
        );
    }
    let mut runs = Vec::new();
    for protocol in AUTHORS {
        let sizes = std::iter::once(None).chain(
            options
                .sizes
                .iter()
                .filter(|&&n| n != PROTOCOL_TRAIN_SIZE)
                .map(|&n| Some(n)),
        );
        for size in sizes {
            for seed in 0..options.seeds as u64 {
                for kind in [ModelKind::SpikeSlab, ModelKind::Deterministic] {
                    let preset = match kind {
                        ModelKind::SpikeSlab => protocol.spike_slab,
                        ModelKind::Deterministic => protocol.deterministic,
                        ModelKind::SpikeSlabRnn => unreachable!("not in the loop"),
                    };
                    let mut overrides = options.overrides.clone();
                    let (group, folder, setting, x) = match size {
                        None => (
                            protocol.name.to_string(),
                            protocol.name.to_string(),
                            format!("protocol {}", protocol.name),
                            PROTOCOL_TRAIN_SIZE as f64,
                        ),
                        Some(n) => {
                            overrides.push(format!("data.train_size={n}"));
                            (
                                format!("sizes-{}", protocol.name),
                                format!("sizes-{}/train_size={n}", protocol.name),
                                format!("data.train_size={n}"),
                                if n == 0 { 60_000.0 } else { n as f64 },
                            )
                        }
                    };
                    overrides.push(format!("seed={seed}"));
                    let config = resolved(&options.configs.join(preset), &overrides)?;
                    runs.push(SweepRun {
                        index: runs.len(),
                        name: format!("{folder}/seed{seed}/{}", kind.name()),
                        group,
                        setting,
                        x,
                        seed,
                        kind,
                        overrides,
                        config,
                    });
                }
            }
        }
    }
    let plan = SweepPlan {
        format: 1,
        kind: PlanKind::Reproduce,
        x_label: "data.train_size".into(),
        analysis: super::plan::resolved_analysis(options.analysis.clone()),
        runs,
    };
    plan.validate()?;
    plan.check_resources()?;
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::comparison::row;

    #[test]
    fn rows_compare_in_pooled_seed_sds() {
        let r = row(
            "x".into(),
            vec![1.0, 2.0, 3.0],
            Some(vec![2.0, 3.0, 4.0]),
            None,
        );
        assert_eq!(r.credit.unwrap().mean, 2.0);
        assert_eq!(r.authors.unwrap().mean, 3.0);
        // Both sds are 1: the pooled sd is 1.
        assert_eq!(r.difference_in_pooled_sd, Some(-1.0));
        assert_eq!(r.not_compared, None);
        let none = row("y".into(), vec![], Some(vec![1.0, 1.0]), None);
        assert!(none.credit.is_none() && none.difference_in_pooled_sd.is_none());
        // One seed has no sd; another budget is not the authors' experiment.
        let one = row("z".into(), vec![96.0], Some(vec![96.0, 97.0, 98.0]), None);
        assert_eq!(one.difference_in_pooled_sd, None);
        assert!(one.not_compared.unwrap().contains("n = 1 of credit"));
        let short = row(
            "w".into(),
            vec![80.0, 81.0],
            Some(vec![96.0, 97.0]),
            Some("credit's runs trained 1 epochs"),
        );
        assert_eq!(short.difference_in_pooled_sd, None);
        assert!(short.not_compared.unwrap().contains("1 epochs"));
    }
}
