//! The trainable network as one burn module, with the steps burn's `Learner` runs.

use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::GradientsParams;
use burn::optim::ModuleOptimizer;
use burn::optim::lr_scheduler::module_lr_scheduler::ModuleLearningRate;
use burn::tensor::{Device, Tensor};
use burn::train::{ClassificationOutput, InferenceStep, TrainOutput, TrainStep};
use credit_data::ImageBatch;
use credit_model::{DeterministicNet, Noise, SpikeSlabNet};

use credit_model::{ModelConfig, ModelKind};

/// Either network of a run.
#[derive(Module, Debug)]
pub enum Classifier {
    /// The spike-and-slab mean-field network.
    SpikeSlab(SpikeSlabNet),
    /// The deterministic baseline.
    Deterministic(DeterministicNet),
}

impl Classifier {
    /// Freshly initialised network of the configured kind (seed the device first).
    pub fn init(config: &ModelConfig, device: &Device) -> Self {
        match config.kind {
            ModelKind::SpikeSlab => Self::SpikeSlab(config.init_spike_slab(device)),
            ModelKind::Deterministic => Self::Deterministic(config.init_deterministic(device)),
        }
    }

    /// Logits; `noise` only matters for the spike-and-slab network.
    ///
    /// # Shapes
    /// - input: `[batch, features]`
    /// - output: `[batch, classes]`
    pub fn forward(&self, input: Tensor<2>, noise: Noise) -> Tensor<2> {
        match self {
            Self::SpikeSlab(net) => net.forward(input, noise),
            Self::Deterministic(net) => net.forward(input),
        }
    }

    /// The spike-and-slab network, if this is one.
    pub fn spike_slab(&self) -> Option<&SpikeSlabNet> {
        match self {
            Self::SpikeSlab(net) => Some(net),
            Self::Deterministic(_) => None,
        }
    }

    /// Parameters projected back onto their support after an optimizer step.
    pub fn project(self) -> Self {
        match self {
            Self::SpikeSlab(net) => Self::SpikeSlab(net.project()),
            deterministic => deterministic,
        }
    }

    /// Mean-field logits (noise sampled), loss and targets of one batch.
    fn classify(&self, batch: ImageBatch) -> ClassificationOutput {
        let logits = self.forward(batch.images, Noise::Sampled);
        let loss = CrossEntropyLossConfig::new()
            .init(&logits.device())
            .forward(logits.clone(), batch.targets.clone());
        ClassificationOutput::new(loss, logits, batch.targets)
    }
}

impl TrainStep for Classifier {
    type Input = ImageBatch;
    type Output = ClassificationOutput;

    fn step(&self, batch: ImageBatch) -> TrainOutput<ClassificationOutput> {
        let output = self.classify(batch);
        TrainOutput::new(self, output.loss.backward(), output)
    }

    /// The AdamW step followed by the projection of `pi` into `[0, 1]` and `xi` to `>= 0`.
    fn optimize(
        self,
        optim: &mut ModuleOptimizer,
        lr: ModuleLearningRate,
        grads: GradientsParams,
    ) -> Self {
        optim.step(lr, self, grads).project()
    }
}

impl InferenceStep for Classifier {
    type Input = ImageBatch;
    type Output = ClassificationOutput;

    fn step(&self, batch: ImageBatch) -> ClassificationOutput {
        self.classify(batch)
    }
}
