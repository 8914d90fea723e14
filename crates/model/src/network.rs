//! Multi-layer networks: the spike-and-slab model and the deterministic baseline.
//!
//! Both map `[batch, sizes[0]]` inputs to `[batch, sizes.last()]` logits through bias-free
//! layers scaled by `1/sqrt(N)`, with ReLU between layers and none after the last.

use burn::module::{Module, Param};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor, TensorData};

use crate::config::ModelConfig;
use crate::seed::Seed;
use crate::spike_slab::{Noise, SpikeSlabLinear, gaussian_values};

/// Applies `layer` to each layer in turn with ReLU in between.
fn chain<L>(
    layers: &[L],
    input: Tensor<2>,
    mut layer: impl FnMut(usize, &L, Tensor<2>) -> Tensor<2>,
) -> Tensor<2> {
    let last = layers.len() - 1;
    layers.iter().enumerate().fold(input, |x, (i, l)| {
        let h = layer(i, l, x);
        if i == last { h } else { relu(h) }
    })
}

/// The spike-and-slab network.
#[derive(Module, Debug)]
pub struct SpikeSlabNet {
    /// Layers, input side first.
    pub layers: Vec<SpikeSlabLinear>,
}

impl SpikeSlabNet {
    /// A network of `config.sizes` with parameters drawn from `seed` (layer `l` from its
    /// child `l`).
    pub fn init(config: &ModelConfig, seed: Seed, device: &Device) -> Self {
        let layers = config
            .layer_dims()
            .enumerate()
            .map(|(l, (d_input, d_output))| {
                SpikeSlabLinear::init(d_input, d_output, config, seed.child(l as u64), device)
            })
            .collect();
        Self { layers }
    }

    /// Layer widths, input first.
    pub fn sizes(&self) -> Vec<usize> {
        layer_sizes(self.layers.iter().map(SpikeSlabLinear::dims))
    }

    /// Logits, with the pre-activation noise sampled (mean-field) or off (mean network).
    ///
    /// # Shapes
    /// - input: `[batch, sizes[0]]`
    /// - output: `[batch, sizes.last()]`
    pub fn forward(&self, input: Tensor<2>, noise: Noise) -> Tensor<2> {
        chain(&self.layers, input, |l, layer, x| {
            layer.forward(x, noise.for_layer(l))
        })
    }

    /// Logits with given standard-normal draws, one `[batch, d_output]` tensor per layer.
    ///
    /// # Shapes
    /// - input: `[batch, sizes[0]]`
    /// - eps\[l\]: `[batch, sizes[l + 1]]`
    /// - output: `[batch, sizes.last()]`
    ///
    /// # Panics
    /// If `eps` does not hold one tensor per layer.
    pub fn forward_with_eps(&self, input: Tensor<2>, eps: &[Tensor<2>]) -> Tensor<2> {
        assert_eq!(eps.len(), self.layers.len(), "one eps tensor per layer");
        chain(&self.layers, input, |i, layer, x| {
            layer.forward_with_eps(x, eps[i].clone())
        })
    }

    /// Every `pi` clamped into `[0, 1]` and every `xi` to `>= 0`.
    pub fn project(self) -> Self {
        Self {
            layers: self
                .layers
                .into_iter()
                .map(SpikeSlabLinear::project)
                .collect(),
        }
    }

    /// One concrete sub-network drawn from the learned weight distribution, from `seed`
    /// (layer `l` from its child `l`).
    pub fn sample_network(&self, seed: Seed) -> DeterministicNet {
        DeterministicNet {
            layers: self
                .layers
                .iter()
                .enumerate()
                .map(|(l, layer)| {
                    DeterministicLinear::new(layer.sample_weights(seed.child(l as u64)))
                })
                .collect(),
        }
    }

    /// The network of expected weights `(1 - pi) m`; its logits equal `forward(x, Noise::Off)`.
    pub fn mean_network(&self) -> DeterministicNet {
        DeterministicNet {
            layers: self
                .layers
                .iter()
                .map(|l| DeterministicLinear::new(l.weight_mean().inner()))
                .collect(),
        }
    }
}

/// A bias-free linear layer `h = a · w^T / sqrt(N)`.
#[derive(Module, Debug)]
pub struct DeterministicLinear {
    /// Weights, `[d_output, d_input]`.
    pub weight: Param<Tensor<2>>,
}

impl DeterministicLinear {
    /// Wraps a `[d_output, d_input]` weight matrix.
    pub fn new(weight: Tensor<2>) -> Self {
        Self {
            weight: Param::from_tensor(weight),
        }
    }

    /// # Shapes
    /// - input: `[batch, d_input]`
    /// - output: `[batch, d_output]`
    pub fn forward(&self, input: Tensor<2>) -> Tensor<2> {
        let scale = (input.dims()[1] as f64).sqrt().recip();
        input
            .matmul(self.weight.val().transpose())
            .mul_scalar(scale)
    }
}

/// An ordinary network with fixed weights: the "traditional BP" baseline, and the form of
/// every sub-network sampled from a [`SpikeSlabNet`].
#[derive(Module, Debug)]
pub struct DeterministicNet {
    /// Layers, input side first.
    pub layers: Vec<DeterministicLinear>,
}

impl DeterministicNet {
    /// A network of `config.sizes` whose weights are the initial spike-and-slab `m` of the
    /// same seed, `N(0, m_init_std²)` (layer `l` from `seed.child(l).child(0)`, as
    /// [`SpikeSlabLinear::init`] draws `m`): a baseline and a spike-and-slab run of one seed
    /// start from the same means.
    pub fn init(config: &ModelConfig, seed: Seed, device: &Device) -> Self {
        let layers = config
            .layer_dims()
            .enumerate()
            .map(|(l, (d_input, d_output))| {
                let values = gaussian_values(
                    d_input * d_output,
                    config.m_init_std,
                    seed.child(l as u64).child(0),
                );
                let weight = TensorData::new(values, [d_output, d_input]);
                DeterministicLinear::new(Tensor::from_data(weight, device))
            })
            .collect();
        Self { layers }
    }

    /// Layer widths, input first.
    pub fn sizes(&self) -> Vec<usize> {
        layer_sizes(self.layers.iter().map(|l| l.weight.val().dims()))
    }

    /// # Shapes
    /// - input: `[batch, sizes[0]]`
    /// - output: `[batch, sizes.last()]`
    pub fn forward(&self, input: Tensor<2>) -> Tensor<2> {
        chain(&self.layers, input, |_, layer, x| layer.forward(x))
    }
}

/// Widths `[in_0, out_0, out_1, ...]` from `[out, in]` weight shapes.
fn layer_sizes(dims: impl Iterator<Item = [usize; 2]>) -> Vec<usize> {
    let mut sizes = Vec::new();
    for [d_output, d_input] in dims {
        if sizes.is_empty() {
            sizes.push(d_input);
        }
        sizes.push(d_output);
    }
    sizes
}
