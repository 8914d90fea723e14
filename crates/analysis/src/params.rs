//! Host copies of a spike-and-slab network's parameters, for analyses that look at every
//! connection.

use burn::tensor::{Device, Tensor, TensorData};
use credit_model::classes::{ConnectionClass, Tolerance, layer_classes};
use credit_model::{DeterministicNet, SpikeSlabLinear, SpikeSlabNet};
use credit_ops::equations::weight_moments;

/// One layer's `m`, `xi` and `pi`, row-major `[d_output, d_input]`.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerParams {
    /// Output width.
    pub d_output: usize,
    /// Input width.
    pub d_input: usize,
    /// Slab means.
    pub m: Vec<f32>,
    /// Slab variances.
    pub xi: Vec<f32>,
    /// Spike probabilities.
    pub pi: Vec<f32>,
}

/// A (possibly autodiff) tensor's values on the host, row-major.
pub(crate) fn host(tensor: Tensor<2>) -> Vec<f32> {
    tensor
        .inner()
        .into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .expect("float parameters")
}

impl LayerParams {
    /// Every layer of `net`, input side first.
    pub fn of(net: &SpikeSlabNet) -> Vec<Self> {
        Self::of_layers(&net.layers.iter().collect::<Vec<_>>())
    }

    /// The parameters of each of `layers` (a feed-forward network's layers, or a recurrent
    /// one's input, recurrent and readout matrices).
    pub fn of_layers(layers: &[&SpikeSlabLinear]) -> Vec<Self> {
        layers
            .iter()
            .map(|layer| {
                let [d_output, d_input] = layer.dims();
                Self {
                    d_output,
                    d_input,
                    m: host(layer.m.val()),
                    xi: host(layer.xi.val()),
                    pi: host(layer.pi.val()),
                }
            })
            .collect()
    }

    /// Number of connections.
    pub fn len(&self) -> usize {
        self.m.len()
    }

    /// The expected weights `(1 - pi) m`, row-major: the mean network, and the pruned
    /// network, since they are 0 where `pi = 1`.
    pub fn mean_weights(&self) -> Vec<f32> {
        (0..self.len())
            .map(|k| weight_moments(self.m[k], self.xi[k], self.pi[k]).0)
            .collect()
    }

    /// How many expected weights `(1 - pi) m` are not zero.
    pub fn nonzero_mean_weights(&self) -> usize {
        self.mean_weights().iter().filter(|&&w| w != 0.0).count()
    }

    /// The class of every connection, row-major.
    pub fn classes(&self, tolerance: Tolerance) -> Vec<ConnectionClass> {
        layer_classes(&self.pi, &self.xi, tolerance)
    }

    /// Whether the layer has no connection.
    pub fn is_empty(&self) -> bool {
        self.m.is_empty()
    }

    /// The layer as a burn module on `device`.
    pub fn to_layer(&self, device: &Device) -> SpikeSlabLinear {
        let shape = [self.d_output, self.d_input];
        let tensor = |v: &[f32]| Tensor::from_data(TensorData::new(v.to_vec(), shape), device);
        SpikeSlabLinear::from_tensors(tensor(&self.m), tensor(&self.xi), tensor(&self.pi))
    }
}

/// A network built from host parameters.
pub fn to_network(layers: &[LayerParams], device: &Device) -> SpikeSlabNet {
    SpikeSlabNet {
        layers: layers.iter().map(|l| l.to_layer(device)).collect(),
    }
}

/// Shape `[d_output, d_input]` and row-major values of each layer of a deterministic network.
pub fn deterministic_weights(net: &DeterministicNet) -> Vec<(Vec<usize>, Vec<f32>)> {
    net.layers
        .iter()
        .map(|l| {
            let w = l.weight.val();
            (w.dims().to_vec(), host(w))
        })
        .collect()
}
