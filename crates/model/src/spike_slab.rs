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
use burn::tensor::{Device, Tensor, TensorData};
use credit_ops::mean_field::{DeltaFloor, FloorMode, clamp_values, spike_slab_linear};
use credit_ops::noise::{standard_normal, standard_normal_values, uniform_values};

use crate::config::ModelConfig;
use crate::seed::Seed;

/// How the noise term `sqrt(Delta) eps` of the pre-activation is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Noise {
    /// `eps ~ N(0, 1)` per sample and unit, drawn from this seed: training and "mean-field"
    /// evaluation. A network gives layer `l` the seed's child `l`.
    Sampled(Seed),
    /// No noise: the "mean network" `h = G / sqrt(N)`.
    Off,
}

impl Noise {
    /// The noise of layer `l` of a network: the seed's child `l`.
    pub fn for_layer(self, l: usize) -> Self {
        match self {
            Noise::Sampled(seed) => Noise::Sampled(seed.child(l as u64)),
            Noise::Off => Noise::Off,
        }
    }
}

/// `len` values `scale · z` with `z ~ N(0, 1)` from `seed`, as `f32` (host draws).
pub(crate) fn gaussian_values(len: usize, scale: f64, seed: Seed) -> Vec<f32> {
    let scale = scale as f32;
    standard_normal_values(len, seed.value())
        .into_iter()
        .map(|z| scale * z)
        .collect()
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
    /// How `Delta` is kept off zero before its square root: a setting of the run, not a
    /// parameter (not saved in records).
    #[module(skip)]
    pub floor: DeltaFloor,
}

impl SpikeSlabLinear {
    /// A layer `[d_output, d_input]` with parameters drawn from `seed` as `config` says:
    /// `m ~ N(0, m_init_std²)`, `xi ~ U(0, xi_init_max)`, `pi = pi_init`.
    pub fn init(
        d_input: usize,
        d_output: usize,
        config: &ModelConfig,
        seed: Seed,
        device: &Device,
    ) -> Self {
        let shape = [d_output, d_input];
        let len = d_output * d_input;
        let m = gaussian_values(len, config.m_init_std, seed.child(0));
        let xi_max = config.xi_init_max as f32;
        let xi: Vec<f32> = uniform_values(len, seed.child(1).value())
            .into_iter()
            .map(|u| xi_max * u)
            .collect();
        let tensor = |values: Vec<f32>| Tensor::from_data(TensorData::new(values, shape), device);
        let pi = Tensor::full(shape, config.pi_init, device);
        Self::from_tensors(tensor(m), tensor(xi), pi).with_floor(config.floor())
    }

    /// Builds a layer from parameter values, each `[d_output, d_input]`, with the 2020
    /// script's treatment of `Delta` ([`DeltaFloor::EXACT`]).
    ///
    /// # Panics
    /// If the three shapes differ.
    pub fn from_tensors(m: Tensor<2>, xi: Tensor<2>, pi: Tensor<2>) -> Self {
        assert_eq!(m.dims(), xi.dims(), "m and xi must have the same shape");
        assert_eq!(m.dims(), pi.dims(), "m and pi must have the same shape");
        Self {
            m: Param::from_tensor(m),
            xi: Param::from_tensor(xi),
            pi: Param::from_tensor(pi),
            floor: DeltaFloor::EXACT,
        }
    }

    /// The layer with another floor of `Delta`.
    pub fn with_floor(self, floor: DeltaFloor) -> Self {
        Self { floor, ..self }
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

    /// Mean `mu = (1 - pi) m` and variance `(1 - pi) xi + pi (1 - pi) m^2` of every weight
    /// (see [`weight_moments`]).
    ///
    /// # Shapes
    /// - output: two tensors `[d_output, d_input]`
    pub fn weight_moments(&self) -> (Tensor<2>, Tensor<2>) {
        weight_moments(self.m.val(), self.xi.val(), self.pi.val())
    }

    /// Mean `G / sqrt(N)` and standard deviation `sqrt(Delta' / N)` of the pre-activation
    /// (`Delta'` floored as the layer's [`DeltaFloor`] says).
    ///
    /// # Shapes
    /// - input: `[batch, d_input]`
    /// - output: two tensors `[batch, d_output]`
    pub fn preactivation_moments(&self, input: Tensor<2>) -> (Tensor<2>, Tensor<2>) {
        preactivation_moments(
            input,
            self.m.val(),
            self.xi.val(),
            self.pi.val(),
            self.floor,
        )
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
            Noise::Sampled(seed) => {
                let shape = [input.dims()[0], self.dims()[0]];
                let eps = standard_normal(shape, seed.value(), &input.device());
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
        spike_slab_linear(
            input,
            self.m.val(),
            self.xi.val(),
            self.pi.val(),
            eps,
            self.floor,
        )
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
            floor: self.floor,
        }
    }

    /// Draws one concrete weight matrix from `seed`: each weight is 0 with probability `pi`,
    /// otherwise `m + sqrt(xi) z` with `z ~ N(0, 1)`. Drawn on the host.
    ///
    /// # Shapes
    /// - output: `[d_output, d_input]`
    pub fn sample_weights(&self, seed: Seed) -> Tensor<2> {
        self.sample_weight_stack(1, seed).reshape(self.dims())
    }

    /// Draws `count` independent weight matrices from `seed` at once (see
    /// [`Self::sample_weights`], which is the first of them).
    ///
    /// # Shapes
    /// - output: `[count, d_output, d_input]`
    pub fn sample_weight_stack(&self, count: usize, seed: Seed) -> Tensor<3> {
        let [d_output, d_input] = self.dims();
        let host = |t: Tensor<2>| {
            t.inner()
                .into_data()
                .convert::<f32>()
                .try_into_vec::<f32>()
                .expect("float parameters")
        };
        let (m, xi, pi) = (host(self.m.val()), host(self.xi.val()), host(self.pi.val()));
        let len = m.len();
        let z = standard_normal_values(count * len, seed.child(0).value());
        let u = uniform_values(count * len, seed.child(1).value());
        let weights: Vec<f32> = (0..count * len)
            .map(|i| {
                let k = i % len;
                if u[i] >= pi[k] {
                    m[k] + xi[k].sqrt() * z[i]
                } else {
                    0.0
                }
            })
            .collect();
        let data = TensorData::new(weights, [count, d_output, d_input]);
        Tensor::from_data(data, &self.m.val().device())
    }
}

/// Mean `mu = (1 - pi) m` and variance `(1 - pi) (xi + pi m²)` of every weight, from burn
/// tensor operations: the reference form of `credit_ops::equations::weight_moments` (Li &
/// Huang 2020, eqs. 2-4; the variance `rho - mu²` written without its cancellation).
///
/// # Shapes
/// - m, xi, pi: `[d_output, d_input]`
/// - output: two tensors `[d_output, d_input]`
pub fn weight_moments(m: Tensor<2>, xi: Tensor<2>, pi: Tensor<2>) -> (Tensor<2>, Tensor<2>) {
    let keep = pi.clone().neg().add_scalar(1.0);
    let mean = keep.clone() * m.clone();
    let variance = keep * (xi + pi * m.square());
    (mean, variance)
}

/// Mean `G / sqrt(N)` and standard deviation `sqrt(Delta' / N)` of the pre-activation, with
/// `G = input · meanᵀ`, `Delta = input² · varianceᵀ` and `Delta'` floored as `floor` says:
/// the burn-tensor reference of the fused operation.
///
/// # Shapes
/// - input: `[batch, d_input]`
/// - m, xi, pi: `[d_output, d_input]`
/// - output: two tensors `[batch, d_output]`
pub fn preactivation_moments(
    input: Tensor<2>,
    m: Tensor<2>,
    xi: Tensor<2>,
    pi: Tensor<2>,
    floor: DeltaFloor,
) -> (Tensor<2>, Tensor<2>) {
    let scale = (input.dims()[1] as f64).sqrt().recip();
    let (mean, variance) = weight_moments(m, xi, pi);
    let g = input.clone().matmul(mean.transpose());
    let delta = input.square().matmul(variance.transpose());
    let delta = match floor.mode {
        FloorMode::Clamp => delta.clamp_min(floor.value),
        FloorMode::Add => delta.add_scalar(floor.value),
    };
    (g.mul_scalar(scale), delta.sqrt().mul_scalar(scale))
}

/// The pre-activation `h = (G + sqrt(Delta') eps) / sqrt(N)` from burn tensor operations
/// (differentiable by autodiff): the reference the fused `spike_slab_linear` and its
/// hand-written backward pass are tested against (`tests/mean_field.rs`).
/// Under autodiff, a clamping floor of 0 has an infinite slope where `Delta = 0`; tests give
/// it a tiny positive floor instead.
///
/// # Shapes
/// - input: `[batch, d_input]`
/// - m, xi, pi: `[d_output, d_input]`
/// - eps: `[batch, d_output]`
/// - output: `[batch, d_output]`
pub fn reference_preactivation(
    input: Tensor<2>,
    m: Tensor<2>,
    xi: Tensor<2>,
    pi: Tensor<2>,
    eps: Tensor<2>,
    floor: DeltaFloor,
) -> Tensor<2> {
    let (mean, std) = preactivation_moments(input, m, xi, pi, floor);
    mean + std * eps
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
