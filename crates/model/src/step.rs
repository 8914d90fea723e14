//! The network as burn's `Learner` trains and evaluates it: [`TrainStep`] (the mean-field
//! forward with the batch's noise, softmax cross-entropy, backprop, and after the optimizer
//! step the projection of `pi` into `[0, 1]` and `xi` to `>= 0`) and [`InferenceStep`] (the
//! mean-field forward of an evaluation batch, noise on), both on a [`NoisyBatch`].

use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{GradientsParams, ModuleOptimizer, MultiGradientsParams};
use burn::tensor::{Int, Tensor};
use burn::train::metric::{AccuracyInput, Adaptor, LossInput};
use burn::train::{InferenceStep, ItemLazy, TrainOutput, TrainStep};

use crate::classifier::Classifier;
use crate::seed::Seed;
use crate::spike_slab::Noise;

/// The learning rate of each module, as burn's `Learner` hands it to the optimizer.
type ModuleLearningRate = burn::lr_scheduler::module_lr_scheduler::ModuleLearningRate;

/// A batch of labelled images and the seed of its pre-activation noise: the seed is part of
/// the batch so that every step's draws are a function of the run's seed, the epoch and the
/// batch (see [`Seed`]), whichever device or worker runs it.
#[derive(Debug, Clone)]
pub struct NoisyBatch {
    /// Scaled pixels, `[batch, sizes[0]]`.
    pub images: Tensor<2>,
    /// Class labels, `[batch]`.
    pub targets: Tensor<1, Int>,
    /// The seed of the batch's noise `eps` (one draw per image, unit and layer).
    pub noise: Seed,
    /// The batch's key within its epoch (its number, for one device), which orders the
    /// batches' sums whatever order several devices finish them in.
    pub key: u64,
}

/// What a step gives burn's metrics: the loss, the logits, the labels, and how many rows
/// are right (counted where the step runs, on the device, so that a metric only reads it).
#[derive(Debug, Clone)]
pub struct StepOutput {
    /// Mean softmax cross-entropy of the batch, `[1]`.
    pub loss: Tensor<1>,
    /// Logits, `[batch, classes]`.
    pub logits: Tensor<2>,
    /// Class labels, `[batch]`.
    pub targets: Tensor<1, Int>,
    /// Rows whose largest logit is at their label, `[1]`.
    pub right: Tensor<1, Int>,
    /// The batch's key (see [`NoisyBatch::key`]).
    pub key: u64,
}

impl StepOutput {
    /// The same values off the autodiff graph.
    fn without_autodiff(self) -> Self {
        Self {
            loss: self.loss.without_autodiff(),
            logits: self.logits.without_autodiff(),
            targets: self.targets.without_autodiff(),
            right: self.right.without_autodiff(),
            key: self.key,
        }
    }
}

impl ItemLazy for StepOutput {
    fn sync(self) -> Result<Self, burn_std::ExecutionError> {
        self.loss.device().flush()?;
        Ok(self.without_autodiff())
    }
}

impl Adaptor<LossInput> for StepOutput {
    fn adapt(&self) -> LossInput {
        LossInput::new(self.loss.clone())
    }
}

impl Adaptor<AccuracyInput> for StepOutput {
    fn adapt(&self) -> AccuracyInput {
        AccuracyInput::new(self.logits.clone(), self.targets.clone())
    }
}

impl Classifier {
    /// The logits of `batch` with its noise, their mean softmax cross-entropy and the
    /// count of right rows.
    ///
    /// # Shapes
    /// - logits: `[batch, classes]`; loss: `[1]`
    fn step_output(&self, batch: NoisyBatch) -> StepOutput {
        let logits = self.forward(batch.images, Noise::Sampled(batch.noise));
        let loss = CrossEntropyLossConfig::new()
            .init(&logits.device())
            .forward(logits.clone(), batch.targets.clone());
        let [rows] = batch.targets.dims();
        let right = logits
            .clone()
            .argmax(1)
            .reshape([rows])
            .equal(batch.targets.clone())
            .int()
            .sum();
        StepOutput {
            loss,
            logits,
            targets: batch.targets,
            right,
            key: batch.key,
        }
    }
}

impl TrainStep for Classifier {
    type Input = NoisyBatch;
    type Output = StepOutput;

    /// The generalised backprop of the paper (Li & Huang 2020, Eqs. 5-8) is the autodiff of
    /// the mean-field forward: the layer's own backward (`credit-ops`) gives the gradients
    /// with respect to `m`, `xi` and `pi`.
    fn step(&self, batch: NoisyBatch) -> TrainOutput<StepOutput> {
        let output = self.step_output(batch);
        let grads = output.loss.backward();
        // The metrics get the values only: an autodiff tensor would keep the step's graph
        // (every layer's saved activations) alive until burn's metric thread reads it.
        TrainOutput::new(self, grads, output.without_autodiff())
    }

    /// The optimizer's step, then every `pi` clamped into `[0, 1]` and every `xi` to `>= 0`.
    fn optimize(
        self,
        optim: &mut ModuleOptimizer,
        lr: ModuleLearningRate,
        grads: GradientsParams,
    ) -> Self {
        optim.step(lr, self, grads).project()
    }

    /// As [`TrainStep::optimize`], with the gradients of several devices.
    fn optimize_multi(
        self,
        optim: &mut ModuleOptimizer,
        lr: ModuleLearningRate,
        grads: MultiGradientsParams,
    ) -> Self {
        optim.step_multi(lr, self, grads).project()
    }
}

impl InferenceStep for Classifier {
    type Input = NoisyBatch;
    type Output = StepOutput;

    /// The mean-field logits and loss of an evaluation batch, noise on (the test columns of
    /// a run's metrics).
    fn step(&self, batch: NoisyBatch) -> StepOutput {
        self.step_output(batch)
    }
}
