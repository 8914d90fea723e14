//! Per-epoch bookkeeping inside burn's Learner: a metric logger that keeps each epoch's loss
//! and accuracy, stops training when the loss stops being finite, and prints one line per
//! epoch when there is no terminal for burn's dashboard.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use burn::train::Interrupter;
use burn::train::logger::{EvaluationProgressLogger, MetricLogger, TrainingProgressLogger};
use burn::train::metric::store::{EpochSummary, MetricsUpdate, Split};
use burn::train::metric::{MetricDefinition, MetricId, NumericEntry};
use burn::train::renderer::{
    EvaluationName, MetricState, MetricsRenderer, MetricsRendererEvaluation,
    MetricsRendererTraining,
};
use serde::{Deserialize, Serialize};

use crate::run::RunDir;

/// One row of `metrics.csv`. Accuracies in percent; test values are mean-field (noise on).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    /// 1-based epoch.
    pub epoch: usize,
    /// Mean cross-entropy over the epoch's training batches.
    pub train_loss: f64,
    /// Training accuracy over the epoch (parameters change during it).
    pub train_accuracy_pct: f64,
    /// Cross-entropy on the test images after the epoch.
    pub test_loss: f64,
    /// Test accuracy after the epoch.
    pub test_accuracy_pct: f64,
    /// Wall-clock seconds of the epoch's training part.
    pub train_seconds: f64,
    /// The mean learning rate of the epoch's steps (0 in files written before it was
    /// recorded).
    #[serde(default)]
    pub learning_rate: f64,
}

/// Where the loss first stopped being finite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Divergence {
    /// 1-based epoch.
    pub epoch: usize,
    /// 1-based batch within the epoch.
    pub batch: usize,
}

/// What the logger has seen, shared with the code that launched training.
#[derive(Debug, Default)]
pub struct TrainingRecord {
    /// Completed epochs, by number: those of earlier sessions of a resumed run, then these.
    pub epochs: BTreeMap<usize, EpochMetrics>,
    /// Set when the training loss became NaN or infinite.
    pub divergence: Option<Divergence>,
    /// Set when `metrics.csv` could not be written after an epoch.
    pub write_error: Option<String>,
}

/// A [`MetricLogger`] that fills a [`TrainingRecord`] and rewrites the run's `metrics.csv`
/// after every epoch, so that an interrupted run keeps the metrics of its finished epochs.
pub struct EpochLogger {
    record: Arc<Mutex<TrainingRecord>>,
    run: RunDir,
    interrupter: Interrupter,
    total_epochs: usize,
    print_lines: bool,
    names: HashMap<MetricId, String>,
    current: EpochMetrics,
    batches: usize,
    epoch_started: Option<Instant>,
}

impl EpochLogger {
    /// `print_lines`: write one line per epoch to stdout (when burn's dashboard is not shown).
    pub fn new(
        record: Arc<Mutex<TrainingRecord>>,
        run: RunDir,
        interrupter: Interrupter,
        total_epochs: usize,
        print_lines: bool,
    ) -> Self {
        Self {
            record,
            run,
            interrupter,
            total_epochs,
            print_lines,
            names: HashMap::new(),
            current: EpochMetrics::default(),
            batches: 0,
            epoch_started: None,
        }
    }
}

/// The name of burn's `LearningRateMetric`.
const LEARNING_RATE: &str = "Learning Rate";

/// The value an entry contributes; the authoritative end-of-epoch value where there is one.
fn value(entry: &NumericEntry) -> f64 {
    match entry {
        NumericEntry::Value(v) | NumericEntry::Final(v) => *v,
        NumericEntry::Aggregated {
            aggregated_value, ..
        } => *aggregated_value,
    }
}

impl MetricLogger for EpochLogger {
    fn log(&mut self, update: MetricsUpdate, epoch: usize, split: &Split) {
        let train = matches!(split, Split::Train);
        if train {
            if self.current.epoch != epoch {
                self.current = EpochMetrics {
                    epoch,
                    ..EpochMetrics::default()
                };
                self.batches = 0;
                self.epoch_started = Some(Instant::now());
            }
            self.batches += 1;
        }
        for numeric in &update.entries_numeric {
            let Some(name) = self.names.get(&numeric.entry.metric_id) else {
                continue;
            };
            let batch_value = numeric.numeric_entry.as_ref().map(value);
            if train
                && name == "Loss"
                && batch_value.is_some_and(|v| !v.is_finite())
                && let Ok(mut record) = self.record.lock()
                && record.divergence.is_none()
            {
                let divergence = Divergence {
                    epoch,
                    batch: self.batches,
                };
                record.divergence = Some(divergence);
                self.interrupter.stop(Some(&format!(
                    "training loss is not finite at epoch {epoch}, batch {}",
                    divergence.batch
                )));
            }
            // The running entry is the mean over the epoch so far; a final entry replaces it.
            let Some(epoch_value) = numeric
                .running_entry
                .as_ref()
                .or(numeric.numeric_entry.as_ref())
                .map(value)
            else {
                continue;
            };
            let slot = match (name.as_str(), train) {
                ("Loss", true) => &mut self.current.train_loss,
                ("Accuracy", true) => &mut self.current.train_accuracy_pct,
                ("Loss", false) => &mut self.current.test_loss,
                ("Accuracy", false) => &mut self.current.test_accuracy_pct,
                (LEARNING_RATE, true) => &mut self.current.learning_rate,
                _ => continue,
            };
            *slot = epoch_value;
        }
    }

    fn read_numeric(
        &mut self,
        name: &str,
        _epoch: usize,
        _split: &Split,
    ) -> Result<Vec<NumericEntry>, String> {
        Err(format!("per-batch values of {name} are not kept"))
    }

    fn log_metric_definition(&mut self, definition: MetricDefinition) {
        self.names
            .insert(definition.metric_id, definition.name.to_string());
    }

    fn log_epoch_summary(&mut self, summary: EpochSummary) {
        match summary.split {
            Split::Train => {
                self.current.train_seconds = self
                    .epoch_started
                    .map_or(0.0, |start| start.elapsed().as_secs_f64());
            }
            Split::Valid => {
                let row = self.current.clone();
                if self.print_lines {
                    println!(
                        "epoch {:>3}/{}  lr {:.3e}  train loss {:.4} acc {:6.2}%  test loss {:.4} acc {:6.2}%  {:.2} s",
                        row.epoch,
                        self.total_epochs,
                        row.learning_rate,
                        row.train_loss,
                        row.train_accuracy_pct,
                        row.test_loss,
                        row.test_accuracy_pct,
                        row.train_seconds
                    );
                }
                if let Ok(mut record) = self.record.lock() {
                    record.epochs.insert(row.epoch, row);
                    let rows: Vec<EpochMetrics> = record.epochs.values().cloned().collect();
                    if let Err(error) = self.run.write_metrics(&rows) {
                        record.write_error.get_or_insert(format!("{error:#}"));
                        self.interrupter.stop(Some("cannot write metrics.csv"));
                    }
                }
            }
            Split::Test(_) => {}
        }
    }
}

/// A renderer that shows nothing: used instead of burn's dashboard when stdout is not a
/// terminal, where [`EpochLogger`] prints plain lines.
pub struct SilentRenderer;

impl MetricsRendererTraining for SilentRenderer {
    fn update_train(&mut self, _state: MetricState) {}
    fn update_valid(&mut self, _state: MetricState) {}
}

impl MetricsRendererEvaluation for SilentRenderer {
    fn update_test(&mut self, _name: EvaluationName, _state: MetricState) {}
}

impl TrainingProgressLogger for SilentRenderer {
    fn start(&mut self, _: usize, _: usize, _: Option<usize>, _: Option<&str>) {}
    fn update_epoch(&mut self, _epoch: usize) {}
    fn start_split(&mut self, _split: &str, _total_items: usize) {}
    fn update_split(&mut self, _items_processed: usize) {}
    fn end_split(&mut self) {}
    fn end(&mut self) {}
    fn log_event_training(&mut self, _event: String) {}
}

impl EvaluationProgressLogger for SilentRenderer {
    fn start_global_progress(&mut self, _total_tests: usize) {}
    fn start_test(&mut self, _name: &str, _total_items: usize) {}
    fn update_test_progress(&mut self, _items_processed: usize) {}
    fn end_test(&mut self) {}
    fn end_global_progress(&mut self) {}
    fn log_event_evaluation(&mut self, _event: String) {}
}

impl MetricsRenderer for SilentRenderer {
    fn manual_close(&mut self) {}
    fn register_metric(&mut self, _definition: MetricDefinition) {}
}
