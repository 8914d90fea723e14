//! Where an epoch becomes a checkpoint. burn's `Learner` hands the epoch's model, optimizer
//! and scheduler records to three checkpointers on three threads, and its metrics to the
//! metric logger on a fourth, with no transaction between them; it deletes old epochs per
//! record. The [`Ledger`] collects every piece of epoch `E` (both record files, the
//! scheduler's step count, the connection classes, the training and test numbers, the
//! seconds) and, once all are there and epoch `E - 1` is done, commits it in the order the
//! run's files need: the state file (which makes the checkpoint exist), then the pruning of
//! old checkpoints, then `metrics.csv`, then the epoch's line on screen. So an epoch counts
//! as saved only once everything of it is durable, and nothing is deleted before that.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use burn::train::Interrupter;

use crate::backend::BackendKind;
use crate::checkpoint::{Provenance, RecordFile};
use crate::config::RunConfig;
use crate::display::Progress;
use crate::failpoint;
use crate::metrics::{EpochMetrics, LayerClasses};
use crate::optimizer::learning_rate;
use crate::run::RunDir;

/// Sums over the batches of one split of an epoch, in batch order.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct SplitSums {
    /// Sum of each batch's mean loss times its images.
    pub(crate) loss_sum: f64,
    /// Images whose largest logit is at their label.
    pub(crate) right: i64,
    /// Images.
    pub(crate) images: usize,
    /// Batches.
    pub(crate) batches: usize,
    /// Images the split's sampled network gets right (test split of spike-and-slab runs).
    pub(crate) right_sampled: Option<i64>,
}

impl SplitSums {
    /// Mean loss and accuracy (percent).
    fn means(&self) -> (f64, f64) {
        let n = self.images.max(1) as f64;
        (self.loss_sum / n, 100.0 * self.right as f64 / n)
    }
}

/// Which split a logger's sums are of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SplitKind {
    Train,
    Test,
}

/// What has arrived of one epoch.
#[derive(Debug, Default)]
struct Pending {
    model: Option<(RecordFile, Vec<LayerClasses>)>,
    optimizer: Option<RecordFile>,
    scheduler_steps: Option<u64>,
    train: Option<SplitSums>,
    test: Option<SplitSums>,
    started: Option<Instant>,
    seconds: Option<f64>,
}

impl Pending {
    fn records_complete(&self) -> bool {
        self.model.is_some() && self.optimizer.is_some() && self.scheduler_steps.is_some()
    }

    fn complete(&self) -> bool {
        self.records_complete()
            && self.train.is_some()
            && self.test.is_some()
            && self.seconds.is_some()
    }
}

#[derive(Debug)]
struct State {
    rows: Vec<EpochMetrics>,
    committed: usize,
    pending: BTreeMap<usize, Pending>,
    failure: Option<String>,
}

/// The epochs of one training session on their way to checkpoints (see the module
/// documentation).
pub(crate) struct Ledger {
    run: RunDir,
    config: RunConfig,
    fingerprint: String,
    backend: BackendKind,
    interrupter: Interrupter,
    progress: Arc<Mutex<Progress>>,
    state: Mutex<State>,
}

impl Ledger {
    /// The ledger of a session that starts after epoch `start`, whose `metrics.csv` rows so
    /// far are `rows`; a failure stops training through `interrupter`.
    pub(crate) fn new(
        run: &RunDir,
        config: &RunConfig,
        fingerprint: &str,
        backend: BackendKind,
        (start, rows): (usize, Vec<EpochMetrics>),
        interrupter: Interrupter,
        progress: Arc<Mutex<Progress>>,
    ) -> Self {
        Self {
            run: run.clone(),
            config: config.clone(),
            fingerprint: fingerprint.to_string(),
            backend,
            interrupter,
            progress,
            state: Mutex::new(State {
                rows,
                committed: start,
                pending: BTreeMap::new(),
                failure: None,
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The run's checkpoints.
    pub(crate) fn checkpoints(&self) -> crate::checkpoint::Checkpoints {
        self.run.checkpoints()
    }

    /// The run's checkpoint folder and its newest checkpoint, for error messages.
    pub(crate) fn last_good(&self) -> String {
        let checkpoints = self.run.checkpoints();
        let last = checkpoints
            .epochs()
            .last()
            .map_or("none".to_string(), |e| format!("epoch {e}"));
        format!("{last} in {}", checkpoints.dir().display())
    }

    /// Records why training must stop (the first reason wins) and stops it.
    pub(crate) fn fail(&self, message: String) {
        let mut state = self.state();
        if state.failure.is_none() {
            state.failure = Some(message.clone());
        }
        drop(state);
        self.interrupter.stop(Some(&message));
    }

    /// Whether training is being stopped (asked for, or failed).
    pub(crate) fn stopping(&self) -> bool {
        self.interrupter.should_stop()
    }

    /// Why training failed, if it did.
    pub(crate) fn failure(&self) -> Option<String> {
        self.state().failure.clone()
    }

    /// The last epoch committed, and `metrics.csv`'s rows up to it.
    pub(crate) fn committed(&self) -> (usize, Vec<EpochMetrics>) {
        let state = self.state();
        (state.committed, state.rows.clone())
    }

    /// Waits until epoch `epoch` is committed (or training failed or was asked to stop):
    /// the next epoch trains only once the previous one is a checkpoint, as in a loop that
    /// saves between epochs. Saving does not then compete with training for the cores, and
    /// an epoch's seconds are its training alone.
    pub(crate) fn wait_committed(&self, epoch: usize) {
        loop {
            {
                let state = self.state();
                if state.committed >= epoch || state.failure.is_some() {
                    return;
                }
            }
            if self.interrupter.should_stop() {
                return;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }

    /// Epoch `epoch`'s first batch is about to be drawn.
    pub(crate) fn training_started(&self, epoch: usize) {
        self.update(epoch, |p| p.started = Some(Instant::now()));
    }

    /// Epoch `epoch`'s last optimizer step is done.
    pub(crate) fn training_ended(&self, epoch: usize) {
        self.update(epoch, |p| {
            p.seconds = p.started.map(|s| s.elapsed().as_secs_f64());
        });
    }

    /// `model-E.bpk` is written; `classes` are the epoch's connection classes.
    pub(crate) fn model_saved(&self, epoch: usize, file: RecordFile, classes: Vec<LayerClasses>) {
        self.update(epoch, |p| p.model = Some((file, classes)));
    }

    /// `optim-E.bpk` is written.
    pub(crate) fn optimizer_saved(&self, epoch: usize, file: RecordFile) {
        self.update(epoch, |p| p.optimizer = Some(file));
    }

    /// The scheduler had taken `steps` steps after epoch `epoch`.
    pub(crate) fn scheduler_saved(&self, epoch: usize, steps: u64) {
        self.update(epoch, |p| p.scheduler_steps = Some(steps));
    }

    /// A split of epoch `epoch` is done, with these sums.
    pub(crate) fn split_done(&self, epoch: usize, split: SplitKind, sums: SplitSums) {
        self.update(epoch, |p| match split {
            SplitKind::Train => p.train = Some(sums),
            SplitKind::Test => p.test = Some(sums),
        });
    }

    fn update(&self, epoch: usize, change: impl FnOnce(&mut Pending)) {
        let mut state = self.state();
        if epoch <= state.committed {
            return;
        }
        change(state.pending.entry(epoch).or_default());
        // Epochs commit in order, each once everything of it has arrived.
        while state.failure.is_none() {
            let next = state.committed + 1;
            if !state.pending.get(&next).is_some_and(Pending::complete) {
                break;
            }
            let pending = state.pending.remove(&next).expect("present");
            if let Err(error) = self.commit(&mut state, next, pending) {
                let message = format!("{error:#}");
                state.failure.get_or_insert(message.clone());
                drop(state);
                self.interrupter.stop(Some(&message));
                return;
            }
        }
    }

    /// Writes epoch `epoch`'s checkpoint state, prunes, writes `metrics.csv`, shows the row.
    fn commit(&self, state: &mut State, epoch: usize, pending: Pending) -> Result<()> {
        let (Some((model, layers)), Some(optimizer), Some(steps), Some(train), Some(test)) = (
            pending.model,
            pending.optimizer,
            pending.scheduler_steps,
            pending.train,
            pending.test,
        ) else {
            bail!("epoch {epoch} is incomplete");
        };
        let (train_loss, train_accuracy_pct) = train.means();
        let (test_loss, test_accuracy_pct) = test.means();
        let finite = test_loss.is_finite()
            && layers.iter().all(|l| {
                [l.very_important, l.unimportant, l.mean_pi]
                    .iter()
                    .all(|v| v.is_finite())
            });
        if !finite {
            bail!(
                "training diverged: the test loss or the parameters are not finite after epoch {epoch} (after its last step); last good checkpoint: {}",
                self.last_good()
            );
        }
        let row = EpochMetrics {
            epoch,
            train_loss,
            train_accuracy_pct,
            test_loss,
            test_accuracy_pct,
            test_accuracy_sampled_pct: test
                .right_sampled
                .map(|r| 100.0 * r as f64 / test.images.max(1) as f64),
            train_seconds: pending.seconds.unwrap_or(0.0),
            learning_rate: learning_rate(&self.config.optimizer, epoch),
            layers,
        };
        let mut rows = state.rows.clone();
        rows.push(row.clone());
        let provenance = Provenance {
            config: &self.config,
            data: &self.fingerprint,
            backend: self.backend,
        };
        let checkpoints = self.run.checkpoints();
        failpoint::hit("checkpoint");
        checkpoints.write_state(epoch, &provenance, [model, optimizer], Some(steps), &rows)?;
        state.rows = rows;
        state.committed = epoch;
        let train = &self.config.train;
        let keep = |e: usize| {
            e.saturating_add(train.keep_checkpoints) > epoch
                || (train.checkpoint_every > 0 && e.is_multiple_of(train.checkpoint_every))
        };
        checkpoints.prune_up_to(keep, epoch)?;
        self.run.write_metrics(&state.rows)?;
        self.progress
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .epoch_done(&row);
        Ok(())
    }

    /// Waits until every epoch whose records were all saved is committed, or training
    /// failed: a safety net, since burn joins its checkpointer threads when its epochs end
    /// and its event-store thread when it hands back the renderer.
    ///
    /// # Errors
    /// If an epoch's metrics do not arrive within `timeout`.
    pub(crate) fn settle(&self, timeout: Duration) -> Result<()> {
        let started = Instant::now();
        loop {
            {
                let state = self.state();
                let waiting = state
                    .pending
                    .iter()
                    .find(|(_, p)| p.records_complete())
                    .map(|(e, _)| *e);
                match waiting {
                    None => return Ok(()),
                    Some(_) if state.failure.is_some() => return Ok(()),
                    Some(epoch) if started.elapsed() > timeout => bail!(
                        "the checkpoint of epoch {epoch} is written but its metrics never arrived"
                    ),
                    Some(_) => {}
                }
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}
