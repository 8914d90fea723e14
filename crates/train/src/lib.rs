//! Training for credit: run configuration (TOML with `--set` overrides), backend selection by
//! cargo feature, training on burn's `Learner` (a one-pass AdamW, then the projection of `pi` and `xi`
//! after every step), checkpoints and resume, the run directory that holds the result, and the
//! [`AwakeWorkers`] guard that keeps the CPU kernels' threads ready between operations.

mod backend;
mod bench;
mod checkpoint;
mod classifier;
mod config;
mod evaluate;
mod optimizer;
mod progress;
mod run;
mod training;
mod workers;

pub use backend::{BackendError, BackendKind};
pub use bench::{BenchReport, bench};
pub use classifier::Classifier;
pub use config::{
    DataConfig, ModelConfig, ModelKind, OptimizerConfig, RunConfig, TrainConfig, split_override,
};
pub use evaluate::{Accuracies, accuracy_pct, set_accuracy_pct, test_accuracies};
pub use optimizer::{FusedAdamW, learning_rate_schedule};
pub use progress::EpochMetrics;
pub use run::{RunDir, RunSummary, write_atomic};
pub use training::{TrainOptions, load_data, train};
pub use workers::AwakeWorkers;
