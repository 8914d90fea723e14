//! Either network of a run as one burn module.

use burn::module::Module;
use burn::tensor::Tensor;

use crate::network::{DeterministicNet, SpikeSlabNet};
use crate::spike_slab::Noise;

/// The network a run trains: the spike-and-slab model or the deterministic baseline.
#[derive(Module, Debug)]
pub enum Classifier {
    /// The spike-and-slab mean-field network.
    SpikeSlab(SpikeSlabNet),
    /// The deterministic baseline.
    Deterministic(DeterministicNet),
}

impl Classifier {
    /// Logits; `noise` only matters for the spike-and-slab network.
    ///
    /// # Shapes
    /// - input: `[batch, sizes[0]]`
    /// - output: `[batch, sizes.last()]`
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

    /// Layer widths, input first.
    pub fn sizes(&self) -> Vec<usize> {
        match self {
            Self::SpikeSlab(net) => net.sizes(),
            Self::Deterministic(net) => net.sizes(),
        }
    }

    /// Parameters projected back onto their support after an optimizer step: every `pi`
    /// into `[0, 1]`, every `xi` to `>= 0` (nothing to do for the baseline).
    pub fn project(self) -> Self {
        match self {
            Self::SpikeSlab(net) => Self::SpikeSlab(net.project()),
            deterministic => deterministic,
        }
    }
}
