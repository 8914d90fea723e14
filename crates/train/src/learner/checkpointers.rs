//! credit's three burn [`Checkpointer`]s. Each writes its record the way the run's files are
//! written (a temporary name, synced, renamed; `model-E.bpk`, `optim-E.bpk`; the scheduler's
//! step count goes into the state file) and reports to the [`Ledger`], which makes the epoch
//! a checkpoint once everything of it is durable. `delete` does nothing: the ledger prunes,
//! after the newer checkpoint exists. `restore` hands burn the records credit verified
//! (sizes and SHA-256) before training started; burn's own `load_checkpoint` panics on a
//! record it cannot read, so nothing unverified reaches it.

use std::sync::{Arc, Mutex};

use burn::lr_scheduler::LrSchedulerRecord;
use burn::module::Module;
use burn::optim::OptimizerRecord;
use burn::store::ModuleRecord;
use burn::train::checkpoint::{Checkpointer, CheckpointerError};
use credit_model::Classifier;

use super::ledger::Ledger;
use super::schedule::EpochLr;
use crate::metrics::LayerClasses;

/// The records burn restores a resumed session from: verified and decoded before launch.
pub(crate) struct Restored {
    /// The epoch they are of.
    pub(crate) epoch: usize,
    /// The network of the model record (training device): the learner starts from it, so
    /// that its parameter ids are the record's.
    pub(crate) network: Classifier,
    /// The model record (taken when restored).
    pub(crate) model: Option<ModuleRecord>,
    /// The optimizer record (taken when restored).
    pub(crate) optimizer: Option<OptimizerRecord>,
    /// The scheduler record (taken when restored).
    pub(crate) scheduler: Option<LrSchedulerRecord>,
}

/// What the three checkpointers share.
#[derive(Clone)]
pub(crate) struct Shared {
    pub(crate) ledger: Arc<Ledger>,
    pub(crate) restored: Arc<Mutex<Option<Restored>>>,
}

impl Shared {
    fn take<R>(
        &self,
        epoch: usize,
        part: impl FnOnce(&mut Restored) -> Option<R>,
    ) -> Result<R, CheckpointerError> {
        let mut restored = self.restored.lock().unwrap_or_else(|e| e.into_inner());
        restored
            .as_mut()
            .filter(|r| r.epoch == epoch)
            .and_then(part)
            .ok_or_else(|| {
                CheckpointerError::Unknown(format!(
                    "no verified checkpoint of epoch {epoch} to restore"
                ))
            })
    }

    fn failed(&self, error: anyhow::Error) -> CheckpointerError {
        let message = format!("{error:#}");
        self.ledger.fail(message.clone());
        CheckpointerError::Unknown(message)
    }

    /// Writes the record file `part-E.bpk` (see [`Checkpoints::write_record`]).
    ///
    /// [`Checkpoints::write_record`]: crate::checkpoint::Checkpoints::write_record
    fn write(
        &self,
        part: &str,
        epoch: usize,
        bytes: &[u8],
    ) -> Result<crate::checkpoint::RecordFile, CheckpointerError> {
        self.ledger
            .checkpoints()
            .write_record(part, epoch, bytes)
            .map_err(|e| self.failed(e))
    }

    /// Runs a save on burn's checkpointer thread, turning a panic into a failure of the
    /// run: burn's thread does not catch panics, and training would wait for an epoch that
    /// never completes.
    fn guarded(
        &self,
        epoch: usize,
        what: &str,
        save: impl FnOnce() -> Result<(), CheckpointerError>,
    ) -> Result<(), CheckpointerError> {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(save)) {
            Ok(result) => result,
            Err(payload) => Err(self.failed(anyhow::anyhow!(
                "saving the {what} of epoch {epoch} failed: {}",
                panic_message(payload.as_ref())
            ))),
        }
    }
}

/// The text of a panic's payload.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "an unknown panic".to_string())
}

/// Writes `model-E.bpk` and counts the epoch's connection classes from it.
pub(crate) struct ModelCheckpointer {
    pub(crate) shared: Shared,
    /// A network of the run's shape on the evaluation device, to read records into.
    pub(crate) template: Classifier,
}

impl Checkpointer<ModuleRecord> for ModelCheckpointer {
    fn save(&self, epoch: usize, record: ModuleRecord) -> Result<(), CheckpointerError> {
        self.shared.guarded(epoch, "model", || {
            let bytes = record.into_bytes().map_err(CheckpointerError::Record)?;
            let file = self.shared.write("model", epoch, &bytes)?;
            let record = ModuleRecord::from_bytes(bytes)
                .map_err(CheckpointerError::Record)?
                .cast_to_module_dtype();
            let model = self.template.clone().try_load_record(record).map_err(|e| {
                self.shared
                    .failed(anyhow::anyhow!("epoch {epoch}'s model: {e}"))
            })?;
            let classes = layer_classes(&model).map_err(|e| self.shared.failed(e))?;
            self.shared.ledger.model_saved(epoch, file, classes);
            Ok(())
        })
    }

    fn delete(&self, _epoch: usize) -> Result<(), CheckpointerError> {
        Ok(())
    }

    fn restore(&self, epoch: usize) -> Result<ModuleRecord, CheckpointerError> {
        self.shared.take(epoch, |r| r.model.take())
    }
}

/// Writes `optim-E.bpk`.
pub(crate) struct OptimizerCheckpointer {
    pub(crate) shared: Shared,
}

impl Checkpointer<OptimizerRecord> for OptimizerCheckpointer {
    fn save(&self, epoch: usize, record: OptimizerRecord) -> Result<(), CheckpointerError> {
        self.shared.guarded(epoch, "optimizer", || {
            let bytes = record.into_bytes().map_err(CheckpointerError::Record)?;
            let file = self.shared.write("optim", epoch, &bytes)?;
            self.shared.ledger.optimizer_saved(epoch, file);
            Ok(())
        })
    }

    fn delete(&self, _epoch: usize) -> Result<(), CheckpointerError> {
        Ok(())
    }

    fn restore(&self, epoch: usize) -> Result<OptimizerRecord, CheckpointerError> {
        self.shared.take(epoch, |r| r.optimizer.take())
    }
}

/// Keeps the scheduler's step count for the state file.
pub(crate) struct SchedulerCheckpointer {
    pub(crate) shared: Shared,
}

impl Checkpointer<LrSchedulerRecord> for SchedulerCheckpointer {
    fn save(&self, epoch: usize, record: LrSchedulerRecord) -> Result<(), CheckpointerError> {
        self.shared.guarded(epoch, "learning-rate schedule", || {
            let steps = EpochLr::steps_of_module(&record).ok_or_else(|| {
                self.shared.failed(anyhow::anyhow!(
                    "epoch {epoch}: the learning-rate scheduler's record holds no step count"
                ))
            })?;
            self.shared.ledger.scheduler_saved(epoch, steps);
            Ok(())
        })
    }

    fn delete(&self, _epoch: usize) -> Result<(), CheckpointerError> {
        Ok(())
    }

    fn restore(&self, epoch: usize) -> Result<LrSchedulerRecord, CheckpointerError> {
        self.shared.take(epoch, |r| r.scheduler.take())
    }
}

/// The connection classes of each layer of a spike-and-slab network (of the input,
/// recurrent and readout matrices of a recurrent one; none for the baseline).
///
/// # Errors
/// If a parameter cannot be read from its device.
pub(crate) fn layer_classes(model: &Classifier) -> anyhow::Result<Vec<LayerClasses>> {
    let host = |t: burn::tensor::Tensor<2>| -> anyhow::Result<Vec<f32>> {
        t.try_into_data()
            .map_err(|e| anyhow::anyhow!("cannot read a parameter: {e:?}"))?
            .convert::<f32>()
            .try_into_vec::<f32>()
            .map_err(|e| anyhow::anyhow!("cannot read a parameter: {e:?}"))
    };
    model
        .spike_slab_layers()
        .into_iter()
        .map(|layer| {
            Ok(LayerClasses::of(
                &host(layer.pi.val())?,
                &host(layer.xi.val())?,
            ))
        })
        .collect()
}
