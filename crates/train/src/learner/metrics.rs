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
    targets: Tensor<1, Int>,
}

impl Adaptor<BatchInput> for StepOutput {
    fn adapt(&self) -> BatchInput {
        BatchInput {
            loss: self.loss.clone(),
            right: self.right.clone(),
            targets: self.targets.clone(),
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
        Ok(SerializedEntry::new(
            format!("loss {loss:.4}, {right}/{images} right"),
            format!("{PREFIX} {loss:?} {right} {images}"),
        ))
    }

    fn compute(&mut self) -> Result<SerializedEntry, TensorReadError> {
        Ok(SerializedEntry::not_available(None))
    }

    fn clear(&mut self) {}
}

/// One batch's numbers, from its serialized entry.
fn parse(serialized: &str) -> Option<(f64, i64, usize)> {
    let mut fields = serialized.strip_prefix(PREFIX)?.split_whitespace();
    let loss = fields.next()?.parse().ok()?;
    let right = fields.next()?.parse().ok()?;
    let images = fields.next()?.parse().ok()?;
    Some((loss, right, images))
}

/// Sums [`BatchSums`] entries per epoch and split for the [`Ledger`].
pub(crate) struct LedgerLogger {
    ledger: Arc<Ledger>,
    sums: BTreeMap<(usize, bool), SplitSums>,
}

impl LedgerLogger {
    pub(crate) fn new(ledger: Arc<Ledger>) -> Self {
        Self {
            ledger,
            sums: BTreeMap::new(),
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
        for entry in &update.entries {
            let Some((loss, right, images)) = parse(&entry.serialized_entry.serialized) else {
                continue;
            };
            let sums = self
                .sums
                .entry((epoch, kind == SplitKind::Train))
                .or_default();
            sums.batches += 1;
            sums.loss_sum += loss * images as f64;
            sums.right += right;
            sums.images += images;
            if kind == SplitKind::Train && !loss.is_finite() {
                self.ledger.fail(format!(
                    "training diverged: the loss is not finite at epoch {epoch}, batch {}; last good checkpoint: {}",
                    sums.batches,
                    self.ledger.last_good()
                ));
            }
        }
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
        let sums = self
            .sums
            .remove(&(summary.epoch_number, kind == SplitKind::Train))
            .unwrap_or_default();
        self.ledger.split_done(summary.epoch_number, kind, sums);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_entry_reads_back_exactly() {
        let loss = 0.1f64 + 0.2;
        let serialized = format!("{PREFIX} {loss:?} 7 10");
        assert_eq!(parse(&serialized), Some((loss, 7, 10)));
        assert_eq!(parse("N/A"), None);
    }
}
