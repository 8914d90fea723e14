//! Training for credit: run configuration (TOML with `--set` overrides) and its validation,
//! backend selection by cargo feature, the training loop (a one-pass AdamW, then the
//! projection of `pi` and `xi` after every step), checkpoints that are verified when read,
//! resume, stopping on request, the locked run directory that holds the result, and the
//! thread pool every computation runs in.

#![deny(missing_docs)]

mod backend;
mod bench;
pub mod checkpoint;
mod config;
mod display;
mod evaluate;
pub mod failpoint;
pub mod files;
mod learner;
mod lock;
pub mod memory;
mod metrics;
mod optimizer;
mod resume;
mod run;
mod runtime;
mod stop;
mod training;
mod workers;

pub use backend::{BackendError, BackendKind};
pub use bench::{BenchReport, bench, median};
pub use config::{
    ClipNorm, DataConfig, DecayedParameter, EVAL_ROWS, MAX_WIDTH, OptimizerConfig, Precision,
    RunConfig, TrainConfig, split_override,
};
pub use credit_model::{Classifier, ModelConfig, ModelKind};
pub use display::{Display, epoch_line};
pub use evaluate::{
    Accuracies, accuracy_pct, set_accuracies_pct, set_accuracy_pct, set_loss_and_accuracy,
    test_accuracies,
};
pub use files::{read_json, write_atomic, write_json};
pub use lock::{LOCK_FILE, RunLock};
pub use metrics::{EpochMetrics, LayerClasses};
pub use optimizer::{FusedAdamW, learning_rate, optimizer_for};
pub use resume::RESUMABLE_KEYS;
pub use run::{RunDir, RunSummary};
pub use runtime::{compute, threads};
pub use stop::{StopSignal, terminate};
pub use training::{TrainOptions, TrainOutcome, check_data_sizes, load_data, train};
pub use workers::AwakeWorkers;
