//! The spike-and-slab mean-field layer.
//!
//! Every weight is a random variable: `w = 0` with probability `pi`, otherwise `w ~ N(m, xi)`.
//! With input activations `a` of width `N`, the pre-activation of a unit is a sum of many
//! independent terms and, by the central limit theorem, Gaussian:
//!
//! ```text
//! mu    = (1 - pi) m                          (mean of w)
//! var   = (1 - pi) xi + pi (1 - pi) m^2       (variance of w, = rho - mu^2)
//! G     = a · mu^T          Delta = a^2 · var^T
//! h     = (G + sqrt(Delta) eps) / sqrt(N),    eps ~ N(0, 1) per sample and unit
//! ```

use burn::module::{Module, Param};
use burn::tensor::{Device, Distribution, Tensor};

use credit_ops::mean_field::{DELTA_FLOOR, clamp_values, spike_slab_linear};

use crate::config::ModelConfig;
use crate::noise::standard_normal;

/// How the noise term `sqrt(Delta) eps` of the pre-activation is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Noise {
    /// Fresh `eps ~ N(0, 1)` per sample and unit: training and "mean-field" evaluation.
    Sampled,
    /// No noise: the "mean network" `h = G / sqrt(N)`.
    Off,
}

/// A fully connected layer whose weights are spike-and-slab random variables. No bias.
#[derive(Module, Debug)]
pub struct SpikeSlabLinear {
    /// Slab means, `[d_output, d_input]`.
    pub m: Param<Tensor<2>>,
    /// Slab variances (`>= 0`), `[d_output, d_input]`.
    pub xi: Param<Tensor<2>>,
    /// Spike probabilities (in `[0, 1]`), `[d_output, d_input]`.
    pub pi: Param<Tensor<2>>,
}

impl SpikeSlabLinear {
    /// A layer `[d_output, d_input]` with parameters drawn as `config` says (seed the device
    /// first for reproducibility): `m ~ N(0, m_init_std²)`, `xi ~ U(0, xi_init_max)`,
    /// `pi = pi_init`.
    pub fn init(d_input: usize, d_output: usize, config: &ModelConfig, device: &Device) -> Self {
        let shape = [d_output, d_input];
        let m = Tensor::random(shape, Distribution::Normal(0.0, config.m_init_std), device);
        let xi = Tensor::random(
            shape,
            Distribution::Uniform(0.0, config.xi_init_max),
            device,
        );
        let pi = Tensor::full(shape, config.pi_init, device);
        Self::from_tensors(m, xi, pi)
    }

    /// Builds a layer from parameter values, each `[d_output, d_input]`.
    pub fn from_tensors(m: Tensor<2>, xi: Tensor<2>, pi: Tensor<2>) -> Self {
        assert_eq!(m.dims(), xi.dims(), "m and xi must have the same shape");
        assert_eq!(m.dims(), pi.dims(), "m and pi must have the same shape");
        Self {
            m: Param::from_tensor(m),
            xi: Param::from_tensor(xi),
            pi: Param::from_tensor(pi),
        }
    }

    /// `[d_output, d_input]`.
    pub fn dims(&self) -> [usize; 2] {
        self.m.val().dims()
    }

    /// Mean `mu = (1 - pi) m` of every weight.
    ///
    /// # Shapes
    /// - output: `[d_output, d_input]`
    pub fn weight_mean(&self) -> Tensor<2> {
        self.pi.val().neg().add_scalar(1.0) * self.m.val()
    }

    /// Mean `mu = (1 - pi) m` and variance `(1 - pi) xi + pi (1 - pi) m^2` of every weight.
    ///
    /// # Shapes
    /// - output: two tensors `[d_output, d_input]`
    pub fn weight_moments(&self) -> (Tensor<2>, Tensor<2>) {
        let m = self.m.val();
        let pi = self.pi.val();
        let keep = pi.clone().neg().add_scalar(1.0);
        let mean = keep.clone() * m.clone();
        // (1-pi) xi + pi (1-pi) m^2, written without the cancellation of rho - mu^2.
        let variance = keep * (self.xi.val() + pi * m.square());
        (mean, variance)
    }

    /// Mean `G / sqrt(N)` and standard deviation `sqrt(Delta / N)` of the pre-activation.
    ///
    /// # Shapes
    /// - input: `[batch, d_input]`
    /// - output: two tensors `[batch, d_output]`
    pub fn preactivation_moments(&self, input: Tensor<2>) -> (Tensor<2>, Tensor<2>) {
        let scale = (input.dims()[1] as f64).sqrt().recip();
        let (mean, variance) = self.weight_moments();
        let g = input.clone().matmul(mean.transpose());
        let delta = input
            .square()
            .matmul(variance.transpose())
            .clamp_min(DELTA_FLOOR);
        (g.mul_scalar(scale), delta.sqrt().mul_scalar(scale))
    }

    /// Pre-activation `h = (G + sqrt(Delta) eps) / sqrt(N)` with the given noise treatment.
    ///
    /// # Shapes
    /// - input: `[batch, d_input]`
    /// - output: `[batch, d_output]`
    pub fn forward(&self, input: Tensor<2>, noise: Noise) -> Tensor<2> {
        match noise {
            Noise::Off => {
                let scale = (input.dims()[1] as f64).sqrt().recip();
                input
                    .matmul(self.weight_mean().transpose())
                    .mul_scalar(scale)
            }
            Noise::Sampled => {
                let eps = standard_normal([input.dims()[0], self.dims()[0]], &input.device());
                self.forward_with_eps(input, eps)
            }
        }
    }

    /// Pre-activation with a given standard-normal draw `eps` (gradient checks, cross-backend
    /// comparisons).
    ///
    /// # Shapes
    /// - input: `[batch, d_input]`
    /// - eps: `[batch, d_output]`
    /// - output: `[batch, d_output]`
    pub fn forward_with_eps(&self, input: Tensor<2>, eps: Tensor<2>) -> Tensor<2> {
        spike_slab_linear(input, self.m.val(), self.xi.val(), self.pi.val(), eps)
    }

    /// Projects the parameters back onto their support: `pi` into `[0, 1]`, `xi` to `>= 0`.
    ///
    /// Values are clamped on the inner (non-autodiff) tensors so that the result stays a leaf
    /// with the same [`ParamId`](burn::module::ParamId) and gradient requirement.
    pub fn project(self) -> Self {
        Self {
            m: self.m,
            xi: self.xi.map(|xi| clamp_leaf(xi, 0.0, f64::INFINITY)),
            pi: self.pi.map(|pi| clamp_leaf(pi, 0.0, 1.0)),
        }
    }

    /// Draws one concrete weight matrix: each weight is 0 with probability `pi`, otherwise
    /// `m + sqrt(xi) z` with `z ~ N(0, 1)`.
    ///
    /// # Shapes
    /// - output: `[d_output, d_input]`
    pub fn sample_weights(&self) -> Tensor<2> {
        let [d_output, d_input] = self.dims();
        self.sample_weight_stack(1).reshape([d_output, d_input])
    }

    /// Draws `count` independent weight matrices at once (see [`Self::sample_weights`]).
    ///
    /// # Shapes
    /// - output: `[count, d_output, d_input]`
    pub fn sample_weight_stack(&self, count: usize) -> Tensor<3> {
        let [d_output, d_input] = self.dims();
        let shape = [count, d_output, d_input];
        let m = self.m.val().inner().unsqueeze::<3>();
        let xi = self.xi.val().inner().unsqueeze::<3>();
        let pi = self.pi.val().inner().unsqueeze::<3>();
        let device = m.device();
        let kept = Tensor::random(shape, Distribution::Default, &device)
            .greater_equal(pi.expand(shape))
            .float();
        let z = Tensor::random(shape, Distribution::Normal(0.0, 1.0), &device);
        kept * (m + xi.sqrt() * z)
    }
}

/// Clamps a (possibly autodiff) leaf tensor's values, keeping it a leaf that requires grad if
/// it did before.
fn clamp_leaf(tensor: Tensor<2>, min: f64, max: f64) -> Tensor<2> {
    let require_grad = tensor.is_require_grad();
    let autodiff = tensor.is_autodiff();
    let inner = tensor.inner();
    let clamped = clamp_values(inner, min, max);
    let clamped = if autodiff {
        Tensor::from_inner(clamped)
    } else {
        clamped
    };
    if require_grad {
        clamped.require_grad()
    } else {
        clamped
    }
}
