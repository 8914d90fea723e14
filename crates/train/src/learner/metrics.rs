//! The numbers of `metrics.csv` through burn's metric system: [`BatchSums`] is a burn
//! [`Metric`] that reads each batch's mean loss, its right predictions and its size, exactly
//! (the loss's shortest round-trip form), and [`LedgerLogger`] is the [`MetricLogger`] that
//! sums them per split and epoch in batch order, as credit's own loop did, and hands each
//! epoch's sums to the [`Ledger`]. A loss that is not finite stops training at once, naming
//! the epoch and the batch.

use std::collections::BTreeMap;
use std::sync::Arc;

use burn::tensor::{Int, Tensor, TensorReadError};
use burn::train::logger::MetricLogger;
use burn::train::metric::store::{EpochSummary, MetricsUpdate, Split};
use burn::train::metric::{
    Adaptor, Metric, MetricDefinition, MetricMetadata, MetricName, NumericEntry, SerializedEntry,
};
use credit_model::StepOutput;

use super::ledger::{Ledger, SplitKind, SplitSums};

/// What a batch's entry starts with.
const PREFIX: &str = "credit-batch";

/// The outputs a [`BatchSums`] update reads: computed by the step, only read here.
pub(crate) struct BatchInput {
    loss: Tensor<1>,
    right: Tensor<1, Int>,
    right_sampled: Option<Tensor<1, Int>>,
    targets: Tensor<1, Int>,
    key: u64,
}

impl Adaptor<BatchInput> for StepOutput {
    fn adapt(&self) -> BatchInput {
        BatchInput {
            loss: self.loss.clone(),
            right: self.right.clone(),
            right_sampled: self.right_sampled.clone(),
            targets: self.targets.clone(),
            key: self.key,
        }
    }
}

/// Each batch's mean loss, right predictions and images, serialized exactly.
#[derive(Debug, Clone)]
pub(crate) struct BatchSums {
    name: MetricName,
}

impl BatchSums {
    pub(crate) fn new() -> Self {
        Self {
            name: Arc::new("batch sums".to_string()),
        }
    }
}

impl Metric for BatchSums {
    type Input = BatchInput;

    fn name(&self) -> MetricName {
        self.name.clone()
    }

    fn update(
        &mut self,
        item: &BatchInput,
        _metadata: &MetricMetadata,
    ) -> Result<SerializedEntry, TensorReadError> {
        let [images] = item.targets.dims();
        let loss: f64 = item.loss.clone().try_into_scalar::<f64>()?;
        let right: i64 = item.right.clone().try_into_scalar::<i64>()?;
        let sampled = match &item.right_sampled {
            Some(r) => r.clone().try_into_scalar::<i64>()?.to_string(),
            None => "-".to_string(),
        };
        Ok(SerializedEntry::new(
            format!("loss {loss:.4}, {right}/{images} right"),
            format!("{PREFIX} {} {loss:?} {right} {images} {sampled}", item.key),
        ))
    }

    fn compute(&mut self) -> Result<SerializedEntry, TensorReadError> {
        Ok(SerializedEntry::not_available(None))
    }

    fn clear(&mut self) {}
}

/// One batch's numbers, from its serialized entry.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Batch {
    key: u64,
    loss: f64,
    right: i64,
    images: usize,
    /// Right rows of the batch's sampled network, if it had one.
    right_sampled: Option<i64>,
}

fn parse(serialized: &str) -> Option<Batch> {
    let mut fields = serialized.strip_prefix(PREFIX)?.split_whitespace();
    Some(Batch {
        key: fields.next()?.parse().ok()?,
        loss: fields.next()?.parse().ok()?,
        right: fields.next()?.parse().ok()?,
        images: fields.next()?.parse().ok()?,
        right_sampled: match fields.next()? {
            "-" => None,
            n => Some(n.parse().ok()?),
        },
    })
}

/// Sums [`BatchSums`] entries per epoch and split for the [`Ledger`], in the order of the
/// batches' keys (the order one device trains them in; several devices may finish a step's
/// batches in any order).
pub(crate) struct LedgerLogger {
    ledger: Arc<Ledger>,
    batches: BTreeMap<(usize, bool), Vec<Batch>>,
}

impl LedgerLogger {
    pub(crate) fn new(ledger: Arc<Ledger>) -> Self {
        Self {
            ledger,
            batches: BTreeMap::new(),
        }
    }

    /// Runs `work` on burn's event-store thread, turning a panic into a failure of the run
    /// (burn's thread would die with it, and training wait for metrics that never come).
    fn guarded(&mut self, work: impl FnOnce(&mut Self)) {
        let ledger = self.ledger.clone();
        if let Err(payload) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(self)))
        {
            ledger.fail(format!(
                "recording the metrics failed: {}",
                super::checkpointers::panic_message(payload.as_ref())
            ));
        }
    }
}

fn kind(split: &Split) -> Option<SplitKind> {
    match split {
        Split::Train => Some(SplitKind::Train),
        Split::Valid => Some(SplitKind::Test),
        Split::Test(_) => None,
    }
}

impl MetricLogger for LedgerLogger {
    fn log(&mut self, update: MetricsUpdate, epoch: usize, split: &Split) {
        let Some(kind) = kind(split) else {
            return;
        };
        self.guarded(|logger| {
            for entry in &update.entries {
                let Some(batch) = parse(&entry.serialized_entry.serialized) else {
                    continue;
                };
                let batches = logger
                    .batches
                    .entry((epoch, kind == SplitKind::Train))
                    .or_default();
                batches.push(batch);
                if kind == SplitKind::Train && !batch.loss.is_finite() {
                    logger.ledger.fail(format!(
                        "training diverged: the loss is not finite at epoch {epoch}, batch {}; last good checkpoint: {}",
                        batches.len(),
                        logger.ledger.last_good()
                    ));
                }
            }
        });
    }

    fn read_numeric(
        &mut self,
        name: &str,
        _epoch: usize,
        _split: &Split,
    ) -> Result<Vec<NumericEntry>, String> {
        Err(format!("{name}: credit's metrics are in metrics.csv"))
    }

    fn log_metric_definition(&mut self, _definition: MetricDefinition) {}

    fn log_epoch_summary(&mut self, summary: EpochSummary) {
        let Some(kind) = kind(&summary.split) else {
            return;
        };
        self.guarded(|logger| {
            let mut batches = logger
                .batches
                .remove(&(summary.epoch_number, kind == SplitKind::Train))
                .unwrap_or_default();
            batches.sort_by_key(|b| b.key);
            let mut sums = SplitSums {
                right_sampled: batches.first().and_then(|b| b.right_sampled).map(|_| 0),
                ..SplitSums::default()
            };
            for b in batches {
                sums.batches += 1;
                sums.loss_sum += b.loss * b.images as f64;
                sums.right += b.right;
                sums.images += b.images;
                sums.right_sampled = sums.right_sampled.zip(b.right_sampled).map(|(s, r)| s + r);
            }
            logger.ledger.split_done(summary.epoch_number, kind, sums);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_entry_reads_back_exactly() {
        let loss = 0.1f64 + 0.2;
        let serialized = format!("{PREFIX} 3 {loss:?} 7 10 6");
        assert_eq!(
            parse(&serialized),
            Some(Batch {
                key: 3,
                loss,
                right: 7,
                images: 10,
                right_sampled: Some(6),
            })
        );
        let without = format!("{PREFIX} 3 {loss:?} 7 10 -");
        assert_eq!(parse(&without).unwrap().right_sampled, None);
        assert_eq!(parse("N/A"), None);
    }
}
