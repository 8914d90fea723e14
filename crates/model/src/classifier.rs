//! Either network of a run as one burn module.

use burn::module::Module;
use burn::tensor::Tensor;

use crate::network::{DeterministicNet, SpikeSlabNet};
use crate::rnn::{DeterministicRnn, SpikeSlabRnn};
use crate::spike_slab::Noise;

/// The network a run trains: the spike-and-slab model, the deterministic baseline, or the
/// spike-and-slab recurrent network.
// One value per run, moved a few times per step: the recurrent variant's size does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum Classifier {
    /// The spike-and-slab mean-field network.
    SpikeSlab(SpikeSlabNet),
    /// The deterministic baseline.
    Deterministic(DeterministicNet),
    /// The spike-and-slab recurrent network.
    SpikeSlabRnn(SpikeSlabRnn),
}

/// One concrete network drawn from a spike-and-slab [`Classifier`].
#[derive(Debug)]
pub enum SampledNetwork {
    /// Drawn from a feed-forward network.
    FeedForward(DeterministicNet),
    /// Drawn from a recurrent network: the same weights at every step.
    Recurrent(Box<DeterministicRnn>),
}

impl SampledNetwork {
    /// Logits.
    ///
    /// # Shapes
    /// As [`Classifier::forward`].
    pub fn forward(&self, input: Tensor<2>) -> Tensor<2> {
        match self {
            Self::FeedForward(net) => net.forward(input),
            Self::Recurrent(net) => net.forward(input),
        }
    }

    /// Every weight matrix, `[d_output, d_input]` each.
    pub fn weights(&self) -> Vec<Tensor<2>> {
        match self {
            Self::FeedForward(net) => net.layers.iter().map(|l| l.weight.val()).collect(),
            Self::Recurrent(net) => [&net.input, &net.recurrent, &net.readout]
                .iter()
                .map(|l| l.weight.val())
                .collect(),
        }
    }
}

impl Classifier {
    /// Logits; `noise` only matters for the spike-and-slab network.
    ///
    /// # Shapes
    /// - input: `[batch, sizes[0]]` (recurrent: `[batch, T sizes[0]]`, `T` steps)
    /// - output: `[batch, sizes.last()]`
    pub fn forward(&self, input: Tensor<2>, noise: Noise) -> Tensor<2> {
        match self {
            Self::SpikeSlab(net) => net.forward(input, noise),
            Self::Deterministic(net) => net.forward(input),
            Self::SpikeSlabRnn(net) => net.forward(input, noise),
        }
    }

    /// The logits of one concrete network drawn from `seed`, or `None` for the baseline.
    ///
    /// # Shapes
    /// As [`Self::forward`].
    pub fn sampled_forward(&self, input: Tensor<2>, seed: crate::Seed) -> Option<Tensor<2>> {
        self.sample_network(seed).map(|net| net.forward(input))
    }

    /// One concrete network drawn from `seed` (every weight 0 with probability `pi`, else
    /// from `N(m, xi)`), or `None` for the baseline.
    pub fn sample_network(&self, seed: crate::Seed) -> Option<SampledNetwork> {
        match self {
            Self::SpikeSlab(net) => Some(SampledNetwork::FeedForward(net.sample_network(seed))),
            Self::Deterministic(_) => None,
            Self::SpikeSlabRnn(net) => Some(SampledNetwork::Recurrent(Box::new(
                net.sample_network(seed),
            ))),
        }
    }

    /// The spike-and-slab matrices: the layers of the feed-forward network, input side
    /// first, or the recurrent network's input, recurrent and readout matrices; none for
    /// the baseline.
    pub fn spike_slab_layers(&self) -> Vec<&crate::SpikeSlabLinear> {
        match self {
            Self::SpikeSlab(net) => net.layers.iter().collect(),
            Self::Deterministic(_) => Vec::new(),
            Self::SpikeSlabRnn(net) => net.matrices().to_vec(),
        }
    }

    /// The recurrent network, if this is one.
    pub fn spike_slab_rnn(&self) -> Option<&SpikeSlabRnn> {
        match self {
            Self::SpikeSlabRnn(net) => Some(net),
            _ => None,
        }
    }

    /// The spike-and-slab network, if this is one.
    pub fn spike_slab(&self) -> Option<&SpikeSlabNet> {
        match self {
            Self::SpikeSlab(net) => Some(net),
            _ => None,
        }
    }

    /// Layer widths, input first (recurrent: `[D, n_rec, classes]`).
    pub fn sizes(&self) -> Vec<usize> {
        match self {
            Self::SpikeSlab(net) => net.sizes(),
            Self::Deterministic(net) => net.sizes(),
            Self::SpikeSlabRnn(net) => net.sizes(),
        }
    }

    /// Parameters projected back onto their support after an optimizer step: every `pi`
    /// into `[0, 1]`, every `xi` to `>= 0` (nothing to do for the baseline).
    pub fn project(self) -> Self {
        match self {
            Self::SpikeSlab(net) => Self::SpikeSlab(net.project()),
            Self::SpikeSlabRnn(net) => Self::SpikeSlabRnn(net.project()),
            deterministic => deterministic,
        }
    }
}
