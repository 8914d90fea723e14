//! Recurrent runs (Zou, Li & Huang, PRE 107, 024307, 2023) in the commands that work on
//! trained runs. Their analysis is not written yet: these commands refuse them by name,
//! before any work. A recurrent run's `metrics.csv` already holds the classes of its
//! input, recurrent and readout matrices through training (`layer1..3`).

use anyhow::{Result, bail};
use credit_train::{ModelKind, RunConfig, RunDir};

/// Fails, naming the run and the command, if `config` is that of a recurrent run: the
/// commands that handle feed-forward networks only call it first.
///
/// # Errors
/// If `config.model.kind` is `spike-slab-rnn`.
pub fn not_recurrent(run: &RunDir, config: &RunConfig, command: &str) -> Result<()> {
    if config.model.kind == ModelKind::SpikeSlabRnn {
        bail!(
            "{} is a recurrent run (model.kind = \"spike-slab-rnn\"): {command} handles feed-forward networks only, not yet recurrent ones (their metrics.csv holds the accuracies and the classes of the input, recurrent and readout matrices after every epoch)",
            run.path().display()
        );
    }
    Ok(())
}
