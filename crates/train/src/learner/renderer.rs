//! What training shows, as a burn [`MetricsRenderer`]: the progress bar over an epoch's
//! training images on a terminal the process owns, nothing per batch otherwise; the epoch's
//! line comes from the ledger once the epoch is a checkpoint (see `display.rs`). burn's own
//! TUI renderer is not used: it resets the interrupter when it closes, so a stopped run
//! would look finished, and it takes over the terminal of background jobs.

use std::sync::{Arc, Mutex};

use burn::train::LearnerSummary;
use burn::train::logger::{EvaluationProgressLogger, TrainingProgressLogger};
use burn::train::metric::MetricDefinition;
use burn::train::renderer::{
    EvaluationName, MetricState, MetricsRenderer, MetricsRendererEvaluation,
    MetricsRendererTraining,
};

use crate::display::Progress;

/// credit's renderer: the shared [`Progress`] of the session.
pub(crate) struct ProgressRenderer {
    progress: Arc<Mutex<Progress>>,
    epoch: usize,
    training: bool,
}

impl ProgressRenderer {
    pub(crate) fn new(progress: Arc<Mutex<Progress>>) -> Self {
        Self {
            progress,
            epoch: 1,
            training: false,
        }
    }

    fn progress(&self) -> std::sync::MutexGuard<'_, Progress> {
        self.progress.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl MetricsRendererTraining for ProgressRenderer {
    fn update_train(&mut self, _state: MetricState) {}

    fn update_valid(&mut self, _state: MetricState) {}

    fn on_train_end(
        &mut self,
        _summary: Option<LearnerSummary>,
    ) -> Result<(), Box<dyn core::error::Error>> {
        Ok(())
    }
}

impl MetricsRendererEvaluation for ProgressRenderer {
    fn update_test(&mut self, _name: EvaluationName, _state: MetricState) {}

    fn on_test_end(
        &mut self,
        _summary: Option<LearnerSummary>,
    ) -> Result<(), Box<dyn core::error::Error>> {
        Ok(())
    }
}

impl TrainingProgressLogger for ProgressRenderer {
    fn start(
        &mut self,
        _total_epochs: usize,
        starting_epoch: usize,
        _total_items: Option<usize>,
        _label: Option<&str>,
    ) {
        self.epoch = starting_epoch;
    }

    fn update_epoch(&mut self, epoch: usize) {
        self.epoch = epoch + 1;
    }

    fn start_split(&mut self, split: &str, total_items: usize) {
        self.training = split == burn::train::metric::store::Split::Train.to_string();
        if self.training {
            let epoch = self.epoch;
            self.progress().start_epoch(epoch, total_items);
        }
    }

    fn update_split(&mut self, items_processed: usize) {
        if self.training {
            self.progress().images_done(items_processed);
        }
    }

    fn end_split(&mut self) {
        self.training = false;
    }

    fn end(&mut self) {
        self.progress().finish();
    }

    fn log_event_training(&mut self, _event: String) {}
}

impl EvaluationProgressLogger for ProgressRenderer {
    fn start_global_progress(&mut self, _total_tests: usize) {}

    fn start_test(&mut self, _name: &str, _total_items: usize) {}

    fn update_test_progress(&mut self, _items_processed: usize) {}

    fn end_test(&mut self) {}

    fn end_global_progress(&mut self) {}

    fn log_event_evaluation(&mut self, _event: String) {}
}

impl MetricsRenderer for ProgressRenderer {
    fn manual_close(&mut self) {}

    fn register_metric(&mut self, _definition: MetricDefinition) {}
}
