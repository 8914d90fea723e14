//! Training through burn's `Learner`: [`train_session`] launches burn's
//! `SupervisedTraining` with the run's network (`Classifier`'s `TrainStep` and
//! `InferenceStep`, in `credit-model`), its AdamW (`FusedAdamW`, a burn `Optimizer`) and
//! learning-rate schedule ([`EpochLr`], a burn `LrScheduler`), and credit's pieces at burn's
//! extension points:
//!
//! | burn's extension point | credit's piece | why |
//! | --- | --- | --- |
//! | `DataLoader` | [`SeededLoader`](loader) over an `ImageSet` `Dataset` and an `ImageBatcher` | every batch and its noise a function of (seed, epoch, batch): a resumed run is the uninterrupted one |
//! | `Checkpointer` ×3 | [`checkpointers`] | records written atomically and verified; an epoch is a checkpoint only once all of it is durable ([`Ledger`]) |
//! | `CheckpointingStrategy` | [`EveryEpoch`] | save every epoch; pruning waits for the newer checkpoint (the ledger) |
//! | `Metric` + `MetricLogger` | [`metrics`] | `metrics.csv`'s numbers, exact, in batch order; a non-finite loss stops training |
//! | `MetricsRenderer` | [`renderer`] | a progress bar or nothing per batch; burn's TUI resets the interrupter when it closes |
//! | `Interrupter` | SIGINT/SIGTERM through [`StopSignal`] | a stop discards the epoch in progress and never looks like completion |
//!
//! burn's default single-device strategy runs the epochs (its multi-device one with
//! `train.devices = 2`): nothing of credit's old loop is left beside it.

mod checkpointers;
mod ledger;
mod loader;
mod metrics;
mod renderer;
mod schedule;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use burn::optim::{ModuleOptimizer, OptimizerRecord};
use burn::store::ModuleRecord;
use burn::tensor::{Bytes, Device};
use burn::train::checkpoint::{CheckpointingAction, CheckpointingStrategy};
use burn::train::metric::store::EventStoreClient;
use burn::train::{ExecutionStrategy, Interrupter, Learner, MultiDeviceOptim, SupervisedTraining};
use credit_data::Splits;
use credit_model::{Classifier, Seed, Stream};

pub(crate) use checkpointers::Restored;
use checkpointers::{ModelCheckpointer, OptimizerCheckpointer, SchedulerCheckpointer, Shared};
use ledger::Ledger;
use loader::SeededLoader;
use metrics::{BatchSums, LedgerLogger};
use renderer::ProgressRenderer;
pub(crate) use schedule::EpochLr;

use crate::backend::BackendKind;
use crate::config::RunConfig;
use crate::display::{Display, Progress};
use crate::metrics::EpochMetrics;
use crate::optimizer::optimizer_for;
use crate::run::RunDir;
use crate::stop::StopSignal;

/// Saves every epoch and deletes nothing: the [`Ledger`] prunes once the newer checkpoint
/// exists.
pub(crate) struct EveryEpoch;

impl CheckpointingStrategy for EveryEpoch {
    fn checkpointing(
        &mut self,
        _epoch: usize,
        _collector: &EventStoreClient,
    ) -> Vec<CheckpointingAction> {
        vec![CheckpointingAction::Save]
    }
}

/// What a training session works with.
pub(crate) struct Session<'a> {
    pub(crate) config: &'a RunConfig,
    pub(crate) run: &'a RunDir,
    pub(crate) data: &'a Splits,
    pub(crate) fingerprint: &'a str,
    /// The evaluation device (training uses its autodiff form).
    pub(crate) device: Device,
    pub(crate) backend: BackendKind,
    pub(crate) display: Display,
    pub(crate) stop: StopSignal,
}

/// How a session ended.
// One value per session: the recurrent network's size does not matter.
#[allow(clippy::large_enum_variant)]
pub(crate) enum SessionEnd {
    /// Every epoch trained: the final network (evaluation device) and every row.
    Finished(Classifier, Vec<EpochMetrics>),
    /// Stopped: the last epoch checkpointed.
    Stopped(usize),
}

impl Session<'_> {
    /// Optimizer steps per epoch: one per batch, the last one partial unless dropped, at
    /// most `train.batches_per_epoch`. With
    /// several devices, one step per batch of the largest share (the last device's: burn
    /// splits the images evenly and gives the remainder to the last), the devices'
    /// gradients summed.
    pub(crate) fn steps_per_epoch(&self) -> usize {
        let (n, batch) = (self.data.train.len(), self.config.train.batch_size);
        let devices = self.config.train.devices.max(1);
        let largest = n - (n / devices) * (devices - 1);
        let steps = if self.config.train.drop_last {
            largest / batch
        } else {
            largest.div_ceil(batch)
        };
        // At most `batches_per_epoch` (which needs one device).
        steps.min(self.config.train.batches_per_epoch.unwrap_or(usize::MAX))
    }

    /// The run's initial network on `device`.
    pub(crate) fn initial(&self, device: &Device) -> Classifier {
        self.config
            .model
            .init(Seed::new(self.config.seed).stream(Stream::Init), device)
    }

    /// The optimizer of the run for `model`.
    pub(crate) fn optimizer(&self, model: &Classifier) -> ModuleOptimizer {
        optimizer_for(&self.config.optimizer, self.steps_per_epoch(), model)
    }

    /// The verified records of a checkpoint of `epoch` (model, optimizer, the scheduler's
    /// steps if recorded) decoded for burn to restore, after checking that they fit the
    /// run's network and optimizer (burn panics on records that do not). `source` names
    /// them in errors.
    pub(crate) fn restored(
        &self,
        epoch: usize,
        (model, optimizer, steps): (Bytes, Bytes, Option<u64>),
        source: &std::path::Path,
    ) -> Result<Restored> {
        // The learner's network is built from the record (not the seed): the optimizer's
        // parameter groups (which parameters decay) are keyed by the ids of its parameters.
        let fitted = crate::checkpoint::model_from_record(
            model.clone(),
            self.config,
            &self.device.clone().autodiff(),
            source,
        )?;
        self.optimizer(&fitted)
            .from_bytes(optimizer.clone())
            .map_err(|e| {
                anyhow::anyhow!(
                    "{}: not an optimizer record of epoch {epoch} ({e})",
                    source.display()
                )
            })?;
        let steps = steps.unwrap_or_else(|| {
            EpochLr::after(&self.config.optimizer, self.steps_per_epoch(), 0).steps_after(epoch)
        });
        let scheduler = EpochLr::module_record_of(steps);
        Ok(Restored {
            epoch,
            network: fitted,
            model: Some(
                ModuleRecord::from_bytes(model)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", source.display()))?
                    .cast_to_module_dtype(),
            ),
            optimizer: Some(
                OptimizerRecord::from_bytes(optimizer)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", source.display()))?,
            ),
            scheduler: Some(scheduler),
        })
    }
}

/// Passes a stop request (SIGINT, SIGTERM, [`StopSignal::request`]) on to burn's
/// [`Interrupter`] until dropped.
struct StopBridge {
    done: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl StopBridge {
    fn start(stop: StopSignal, interrupter: Interrupter) -> Self {
        let done = Arc::new(AtomicBool::new(false));
        let finished = done.clone();
        let thread = std::thread::spawn(move || {
            while !finished.load(Ordering::SeqCst) {
                if stop.requested().is_some() {
                    interrupter.stop(Some("stop requested (SIGINT or SIGTERM)"));
                    return;
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        });
        Self {
            done,
            thread: Some(thread),
        }
    }
}

impl Drop for StopBridge {
    fn drop(&mut self) {
        self.done.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Trains the epochs after `start` through burn's `Learner`, from the checkpoint
/// `restored` (of epoch `start`) or the seed's initial network; `rows` are `metrics.csv`'s
/// rows up to `start`.
///
/// # Errors
/// A loss or parameters that stop being finite (naming the epoch, and the batch), a
/// checkpoint that cannot be written, or an error of burn's training.
pub(crate) fn train_session(
    session: &Session,
    start: usize,
    restored: Option<Restored>,
    rows: Vec<EpochMetrics>,
) -> Result<SessionEnd> {
    let config = session.config;
    let train_device = session.device.clone().autodiff();
    let interrupter = Interrupter::new();
    let progress = Arc::new(Mutex::new(Progress::new(
        session.display,
        config.train.epochs,
    )));
    let ledger = Arc::new(Ledger::new(
        session.run,
        config,
        session.fingerprint,
        session.backend,
        (start, rows),
        interrupter.clone(),
        progress.clone(),
    ));
    let model = match &restored {
        Some(restored) => restored.network.clone(),
        None => session.initial(&train_device),
    };
    let optimizer = session.optimizer(&model);
    let schedule = EpochLr::after(&config.optimizer, session.steps_per_epoch(), 0);
    let shared = Shared {
        ledger: ledger.clone(),
        restored: Arc::new(Mutex::new(restored)),
    };
    let train_loader = SeededLoader::train(
        config,
        &session.data.train,
        start + 1,
        &train_device,
        ledger.clone(),
    );
    let test_loader = SeededLoader::test(config, &session.data.test, start + 1, &session.device);
    let mut training = SupervisedTraining::new(
        session.run.path(),
        Arc::new(train_loader),
        Arc::new(test_loader),
    )
    .num_epochs(config.train.epochs)
    .with_application_logger(None)
    .with_interrupter(interrupter.clone())
    .with_metric_logger(LedgerLogger::new(ledger.clone()))
    .metric_train(BatchSums::new())
    .metric_valid(BatchSums::new())
    .with_checkpointing_strategy(EveryEpoch)
    .with_custom_checkpointers(
        ModelCheckpointer {
            shared: shared.clone(),
            template: session.initial(&session.device),
        },
        OptimizerCheckpointer {
            shared: shared.clone(),
        },
        SchedulerCheckpointer { shared },
    )
    .renderer(Box::new(ProgressRenderer::new(progress.clone())));
    if start > 0 {
        training = training.checkpoint(start);
    }
    if config.train.devices > 1 {
        let devices = session
            .backend
            .devices_for(config.train.precision, config.train.devices)?;
        training = training.with_training_strategy(
            ExecutionStrategy::multi(devices, MultiDeviceOptim::OptimMainDevice).into(),
        );
    }
    let bridge = StopBridge::start(session.stop.clone(), interrupter.clone());
    let result = training.launch(Learner::new(model, optimizer, schedule));
    drop(bridge);
    ledger
        .settle(Duration::from_secs(60))
        .context("training ended with an incomplete checkpoint")?;
    progress.lock().unwrap_or_else(|e| e.into_inner()).finish();
    if let Some(failure) = ledger.failure() {
        bail!("{failure}");
    }
    if let Some(error) = result.error {
        bail!("training failed: {error}");
    }
    let (committed, rows) = ledger.committed();
    // A stop that came as training ended is a stop too: the final files are written by the
    // next `--resume`.
    if result.interrupted.is_some()
        || session.stop.requested().is_some()
        || committed < config.train.epochs
    {
        return Ok(SessionEnd::Stopped(committed));
    }
    Ok(SessionEnd::Finished(result.model, rows))
}
