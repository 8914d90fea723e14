//! The network as burn's `Learner` trains and evaluates it: [`TrainStep`] (the mean-field
//! forward with the batch's noise, softmax cross-entropy, backprop, and after the optimizer
//! step the projection of `pi` into `[0, 1]` and `xi` to `>= 0`) and [`InferenceStep`] (the
//! mean-field forward of an evaluation batch, noise on, and a sampled network's
//! predictions), both on a [`NoisyBatch`].

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
    /// The seed of a sampled network (every weight drawn once: 0 with probability `pi`,
    /// else from `N(m, xi)`) that the inference step of a spike-and-slab network also
    /// classifies the batch with; the same seed for every batch of an epoch's test split, so
    /// that one network is evaluated, as the 2020 scripts' `sampling_evaluate` does after
    /// each epoch. `None` in training; a deterministic network ignores it.
    pub network: Option<Seed>,
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
    /// Rows the sampled network of [`NoisyBatch::network`] gets right, `[1]`; `None`
    /// without one.
    pub right_sampled: Option<Tensor<1, Int>>,
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
            right_sampled: self.right_sampled.map(|r| r.without_autodiff()),
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
    /// count of right rows (and of the rows the batch's sampled network gets right).
    ///
    /// # Shapes
    /// - logits: `[batch, classes]`; loss: `[1]`
    fn step_output(&self, batch: NoisyBatch) -> StepOutput {
        let right_sampled = batch
            .network
            .and_then(|seed| self.sampled_forward(batch.images.clone(), seed))
            .map(|logits| right_rows(logits, batch.targets.clone()));
        let logits = self.forward(batch.images, Noise::Sampled(batch.noise));
        let loss = CrossEntropyLossConfig::new()
            .init(&logits.device())
            .forward(logits.clone(), batch.targets.clone());
        let right = right_rows(logits.clone(), batch.targets.clone());
        StepOutput {
            loss,
            logits,
            targets: batch.targets,
            right,
            right_sampled,
            key: batch.key,
        }
    }
}

/// How many rows of `logits` (`[batch, classes]`) have their largest logit at their label
/// (`targets`, `[batch]`), `[1]`.
fn right_rows(logits: Tensor<2>, targets: Tensor<1, Int>) -> Tensor<1, Int> {
    let [rows] = targets.dims();
    logits.argmax(1).reshape([rows]).equal(targets).int().sum()
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

    /// The mean-field logits and loss of an evaluation batch, noise on, and the right rows of
    /// the batch's sampled network if it names one (the test columns of a run's metrics).
    fn step(&self, batch: NoisyBatch) -> StepOutput {
        self.step_output(batch)
    }
}
