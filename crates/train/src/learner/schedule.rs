//! The authors' learning-rate schedule as a burn [`LrScheduler`]: the rate of step `s` is
//! [`learning_rate`] of its epoch, `s / steps_per_epoch + 1` (the 2020 script halves it
//! every 20 epochs; the 2022 one keeps it constant). burn steps the scheduler once per
//! optimizer step and keeps its state, the number of steps taken, in the checkpoint.

use burn::lr_scheduler::{LrScheduler, LrSchedulerRecord};
use burn::optim::LearningRate;

use crate::config::OptimizerConfig;
use crate::optimizer::learning_rate;

/// The key of the step count in a [`LrSchedulerRecord`].
const STEPS: &str = "steps";

/// The parameter group of the one schedule in burn's `ModuleLrScheduler`.
const GROUP: &str = "0";

/// The learning rate as a function of the epoch, stepped per batch.
#[derive(Debug, Clone)]
pub(crate) struct EpochLr {
    config: OptimizerConfig,
    steps_per_epoch: usize,
    /// Steps taken.
    steps: u64,
}

impl EpochLr {
    /// The schedule of `config` for epochs of `steps_per_epoch` steps, after `epochs`
    /// epochs.
    pub(crate) fn after(config: &OptimizerConfig, steps_per_epoch: usize, epochs: usize) -> Self {
        Self {
            config: config.clone(),
            steps_per_epoch: steps_per_epoch.max(1),
            steps: (epochs * steps_per_epoch.max(1)) as u64,
        }
    }

    /// The steps taken after `epochs` epochs (for checkpoints written before schedules were
    /// recorded).
    pub(crate) fn steps_after(&self, epochs: usize) -> u64 {
        (epochs * self.steps_per_epoch) as u64
    }

    /// The record of a schedule that has taken `steps` steps.
    pub(crate) fn record_of(steps: u64) -> LrSchedulerRecord {
        LrSchedulerRecord::new().with_scalar(STEPS, steps)
    }

    /// The step count a record holds.
    pub(crate) fn steps_of(record: &LrSchedulerRecord) -> Option<u64> {
        record.scalar::<u64>(STEPS)
    }

    /// The record of burn's `ModuleLrScheduler` around one schedule (its group `0`, every
    /// parameter) that has taken `steps` steps: what the `Learner` saves and restores.
    pub(crate) fn module_record_of(steps: u64) -> LrSchedulerRecord {
        LrSchedulerRecord::new().with_record(GROUP, Self::record_of(steps))
    }

    /// The step count of a `ModuleLrScheduler`'s record (see [`EpochLr::module_record_of`]).
    pub(crate) fn steps_of_module(record: &LrSchedulerRecord) -> Option<u64> {
        Self::steps_of(&record.record(GROUP))
    }
}

impl LrScheduler for EpochLr {
    fn step(&mut self) -> LearningRate {
        self.steps += 1;
        let epoch = (self.steps - 1) / self.steps_per_epoch as u64 + 1;
        learning_rate(&self.config, epoch as usize)
    }

    fn to_record(&self) -> LrSchedulerRecord {
        Self::record_of(self.steps)
    }

    fn load_record(&mut self, record: LrSchedulerRecord) {
        if let Some(steps) = Self::steps_of(&record) {
            self.steps = steps;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_step_takes_the_rate_of_its_epoch_and_the_record_keeps_the_count() {
        let config = OptimizerConfig::default();
        let mut schedule = EpochLr::after(&config, 3, 0);
        let rates: Vec<f64> = (0..3 * 21).map(|_| schedule.step()).collect();
        assert!(rates[..3 * 20].iter().all(|&r| r == config.lr));
        assert_eq!(rates[3 * 20], config.lr * config.lr_step_factor);
        let mut resumed = EpochLr::after(&config, 3, 0);
        resumed.load_record(schedule.to_record());
        assert_eq!(resumed.step(), schedule.clone().step());
        assert_eq!(schedule.steps_after(2), 6);
        let module = EpochLr::module_record_of(7);
        assert_eq!(EpochLr::steps_of_module(&module), Some(7));
    }
}
