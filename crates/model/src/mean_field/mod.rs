//! The spike-and-slab mean-field layer as one backend operation with a hand-written backward
//! pass.
//!
//! ```text
//! mean = (1 - pi) m                 variance = (1 - pi) (xi + pi m²)
//! G = input · meanᵀ                 Delta = input² · varianceᵀ
//! h = (G + sqrt(max(Delta, DELTA_FLOOR)) ⊙ eps) / sqrt(N)
//! ```
//!
//! Written with generic tensor operations, autodiff records about twenty nodes per layer and
//! keeps their intermediates. Here the forward pass saves only `dh/dDelta`, and the backward
//! pass applies the paper's generalised backpropagation directly (`N` the input width, `g` the
//! incoming gradient `dL/dh`):
//!
//! ```text
//! dL/dG  = g / sqrt(N)                        dL/dDelta = g ⊙ eps / (2 sqrt(Delta) sqrt(N))
//! dL/dmean = (dL/dG)ᵀ · input                 dL/dvariance = (dL/dDelta)ᵀ · input²
//! dL/dm  = (1 - pi) (dL/dmean + 2 pi m dL/dvariance)
//! dL/dxi = (1 - pi) dL/dvariance
//! dL/dpi = -m dL/dmean + ((1 - 2 pi) m² - xi) dL/dvariance
//! dL/dinput = dL/dG · mean + 2 input ⊙ (dL/dDelta · variance)
//! ```
//!
//! On the CPU backend `flex` the products skip zero inputs (see `cpu.rs`): MNIST pixels are
//! 81% zeros, hidden ReLU outputs about half. Other backends compose generic operations
//! (the trait's default bodies), so every backend computes the same function.

#[cfg(feature = "flex")]
mod cpu;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, TensorMetadata, backend_extension};
use burn::tensor::Tensor;

/// `Delta` is floored here before its square root, so that a unit whose inputs carry no
/// variance (all `pi` in {0, 1} and `xi = 0`, or an all-zero input row) keeps finite gradients;
/// where the floor holds, `Delta` gets no gradient. Far below any variance a trained layer
/// produces (about 1e-3 and up in the paper's runs).
pub const DELTA_FLOOR: f64 = 1e-12;

/// The layer's pre-activation `h` (see the module documentation), differentiable in `input`,
/// `m`, `xi` and `pi` (`eps` is a constant).
///
/// # Shapes
/// - input: `[batch, d_input]`
/// - m, xi, pi: `[d_output, d_input]`
/// - eps: `[batch, d_output]`
/// - output: `[batch, d_output]`
pub fn spike_slab_linear(
    input: Tensor<2>,
    m: Tensor<2>,
    xi: Tensor<2>,
    pi: Tensor<2>,
    eps: Tensor<2>,
) -> Tensor<2> {
    Tensor::from_dispatch(<Dispatch as MeanFieldBackend>::spike_slab_linear(
        input.into_dispatch(),
        m.into_dispatch(),
        xi.into_dispatch(),
        pi.into_dispatch(),
        eps.into_dispatch(),
    ))
}

/// `tensor` clamped to `[min, max]` (`max` may be infinite), by the backend's projection
/// operation (in place on `flex`). Not differentiable: for parameter values.
pub(crate) fn clamp_values(tensor: Tensor<2>, min: f64, max: f64) -> Tensor<2> {
    Tensor::from_dispatch(<Dispatch as MeanFieldBackend>::spike_slab_clamp(
        tensor.into_dispatch(),
        min,
        max,
    ))
}

/// The backend operations behind [`spike_slab_linear`]. Shapes as there; `grad_g` and
/// `grad_delta` are `[batch, d_output]`.
#[backend_extension(
    Flex: cfg(feature = "flex"),
    NdArray: cfg(feature = "ndarray"),
    Cube: cfg(feature = "wgpu"),
    Autodiff
)]
pub trait MeanFieldBackend: Backend {
    /// The pre-activation `h`.
    fn spike_slab_linear(
        input: FloatTensor<Self>,
        m: FloatTensor<Self>,
        xi: FloatTensor<Self>,
        pi: FloatTensor<Self>,
        eps: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        Self::spike_slab_forward(input, m, xi, pi, eps).0
    }

    /// `h` and `dh/dDelta` (0 where `Delta` is floored), the one intermediate the backward
    /// pass needs.
    fn spike_slab_forward(
        input: FloatTensor<Self>,
        m: FloatTensor<Self>,
        xi: FloatTensor<Self>,
        pi: FloatTensor<Self>,
        eps: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        composed_forward::<Self>(input, m, xi, pi, eps)
    }

    /// `(dL/dG, dL/dDelta) = (scale · grad, grad ⊙ slope)` from the incoming gradient
    /// `grad = dL/dh` and `slope = dh/dDelta`, with `scale = 1 / sqrt(N)`. A backend may set
    /// negligible entries to zero (`flex` does below 2^-100, see its implementation).
    fn spike_slab_output_grads(
        grad: FloatTensor<Self>,
        slope: FloatTensor<Self>,
        scale: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        composed_output_grads::<Self>(grad, slope, scale)
    }

    /// `(dL/dm, dL/dxi, dL/dpi)` from `dL/dG` and `dL/dDelta`.
    fn spike_slab_param_grads(
        input: FloatTensor<Self>,
        m: FloatTensor<Self>,
        xi: FloatTensor<Self>,
        pi: FloatTensor<Self>,
        grad_g: FloatTensor<Self>,
        grad_delta: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        composed_param_grads::<Self>(input, m, xi, pi, grad_g, grad_delta)
    }

    /// `tensor` clamped to `[min, max]` (`max` may be infinite): the projection of `xi` and
    /// `pi` onto their supports after an optimizer step.
    fn spike_slab_clamp(tensor: FloatTensor<Self>, min: f64, max: f64) -> FloatTensor<Self> {
        composed_clamp::<Self>(tensor, min, max)
    }

    /// `dL/dinput` from `dL/dG` and `dL/dDelta`.
    fn spike_slab_input_grad(
        input: FloatTensor<Self>,
        m: FloatTensor<Self>,
        xi: FloatTensor<Self>,
        pi: FloatTensor<Self>,
        grad_g: FloatTensor<Self>,
        grad_delta: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        composed_input_grad::<Self>(input, m, xi, pi, grad_g, grad_delta)
    }
}

#[cfg(feature = "ndarray")]
impl MeanFieldBackend for burn::backend::NdArray {}

#[cfg(feature = "wgpu")]
impl MeanFieldBackend for burn::backend::Cube {}

/// `1 / sqrt(N)` for an input of shape `[batch, N]`.
fn input_scale<B: Backend>(input: &FloatTensor<B>) -> f64 {
    (input.shape()[1] as f64).sqrt().recip()
}

/// `(mean, variance)` of every weight from generic backend operations.
fn composed_moments<B: Backend>(
    m: FloatTensor<B>,
    xi: FloatTensor<B>,
    pi: FloatTensor<B>,
) -> (FloatTensor<B>, FloatTensor<B>) {
    let keep = B::float_add_scalar(B::float_neg(pi.clone()), 1.0.into());
    let mean = B::float_mul(keep.clone(), m.clone());
    let slab_and_spike = B::float_add(xi, B::float_mul(pi, B::float_mul(m.clone(), m)));
    (mean, B::float_mul(keep, slab_and_spike))
}

/// [`MeanFieldBackend::spike_slab_forward`] from generic backend operations.
fn composed_forward<B: Backend>(
    input: FloatTensor<B>,
    m: FloatTensor<B>,
    xi: FloatTensor<B>,
    pi: FloatTensor<B>,
    eps: FloatTensor<B>,
) -> (FloatTensor<B>, FloatTensor<B>) {
    let scale = input_scale::<B>(&input);
    let (mean, variance) = composed_moments::<B>(m, xi, pi);
    let g = B::float_matmul(input.clone(), B::float_transpose(mean));
    let squared = B::float_mul(input.clone(), input);
    let delta = B::float_matmul(squared, B::float_transpose(variance));
    let std = B::float_sqrt(B::float_clamp_min(delta.clone(), DELTA_FLOOR.into()));
    let h = B::float_mul_scalar(
        B::float_add(g, B::float_mul(std.clone(), eps.clone())),
        scale.into(),
    );
    // 1 where Delta is above the floor, 0 where the floor holds.
    let above_floor = B::float_sign(B::float_clamp_min(
        B::float_sub_scalar(delta, DELTA_FLOOR.into()),
        0.0.into(),
    ));
    let slope = B::float_mul(
        B::float_div(B::float_mul_scalar(eps, (0.5 * scale).into()), std),
        above_floor,
    );
    (h, slope)
}

/// [`MeanFieldBackend::spike_slab_output_grads`] from generic backend operations.
fn composed_output_grads<B: Backend>(
    grad: FloatTensor<B>,
    slope: FloatTensor<B>,
    scale: f64,
) -> (FloatTensor<B>, FloatTensor<B>) {
    let grad_g = B::float_mul_scalar(grad.clone(), scale.into());
    (grad_g, B::float_mul(grad, slope))
}

/// [`MeanFieldBackend::spike_slab_param_grads`] from generic backend operations.
fn composed_param_grads<B: Backend>(
    input: FloatTensor<B>,
    m: FloatTensor<B>,
    xi: FloatTensor<B>,
    pi: FloatTensor<B>,
    grad_g: FloatTensor<B>,
    grad_delta: FloatTensor<B>,
) -> (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>) {
    let squared = B::float_mul(input.clone(), input.clone());
    let grad_mean = B::float_matmul(B::float_transpose(grad_g), input);
    let grad_variance = B::float_matmul(B::float_transpose(grad_delta), squared);
    let keep = B::float_add_scalar(B::float_neg(pi.clone()), 1.0.into());
    let m_squared = B::float_mul(m.clone(), m.clone());
    // dL/dm = (1 - pi) (dL/dmean + 2 pi m dL/dvariance)
    let two_pi_m = B::float_mul_scalar(B::float_mul(pi.clone(), m.clone()), 2.0.into());
    let grad_m = B::float_mul(
        keep.clone(),
        B::float_add(
            grad_mean.clone(),
            B::float_mul(two_pi_m, grad_variance.clone()),
        ),
    );
    // dL/dxi = (1 - pi) dL/dvariance
    let grad_xi = B::float_mul(keep, grad_variance.clone());
    // dL/dpi = -m dL/dmean + ((1 - 2 pi) m² - xi) dL/dvariance
    let one_minus_two_pi = B::float_add_scalar(B::float_mul_scalar(pi, (-2.0).into()), 1.0.into());
    let variance_slope = B::float_sub(B::float_mul(one_minus_two_pi, m_squared), xi);
    let grad_pi = B::float_sub(
        B::float_mul(variance_slope, grad_variance),
        B::float_mul(m, grad_mean),
    );
    (grad_m, grad_xi, grad_pi)
}

/// [`MeanFieldBackend::spike_slab_clamp`] from generic backend operations.
fn composed_clamp<B: Backend>(tensor: FloatTensor<B>, min: f64, max: f64) -> FloatTensor<B> {
    if max.is_finite() {
        B::float_clamp(tensor, min.into(), max.into())
    } else {
        B::float_clamp_min(tensor, min.into())
    }
}

/// [`MeanFieldBackend::spike_slab_input_grad`] from generic backend operations.
fn composed_input_grad<B: Backend>(
    input: FloatTensor<B>,
    m: FloatTensor<B>,
    xi: FloatTensor<B>,
    pi: FloatTensor<B>,
    grad_g: FloatTensor<B>,
    grad_delta: FloatTensor<B>,
) -> FloatTensor<B> {
    let (mean, variance) = composed_moments::<B>(m, xi, pi);
    let through_delta = B::float_matmul(grad_delta, variance);
    B::float_add(
        B::float_matmul(grad_g, mean),
        B::float_mul_scalar(B::float_mul(input, through_delta), 2.0.into()),
    )
}

/// What the backward pass of [`spike_slab_linear`] keeps from its forward pass.
#[derive(Debug, Clone)]
struct Saved<B: Backend> {
    input: FloatTensor<B>,
    m: FloatTensor<B>,
    xi: FloatTensor<B>,
    pi: FloatTensor<B>,
    /// `dh/dDelta`, `[batch, d_output]`.
    slope: FloatTensor<B>,
}

#[derive(Debug)]
struct SpikeSlabLinearBackward;

impl<B: MeanFieldBackend> Backward<B, 4> for SpikeSlabLinearBackward {
    type State = Saved<B>;

    fn backward(self, ops: Ops<Self::State, 4>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [input_node, m_node, xi_node, pi_node] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let Saved {
            input,
            m,
            xi,
            pi,
            slope,
        } = ops.state;
        let (grad_g, grad_delta) =
            B::spike_slab_output_grads(grad, slope, input_scale::<B>(&input));

        if let Some(node) = input_node {
            let grad_input = B::spike_slab_input_grad(
                input.clone(),
                m.clone(),
                xi.clone(),
                pi.clone(),
                grad_g.clone(),
                grad_delta.clone(),
            );
            grads.register::<B>(node.id, grad_input);
        }
        if m_node.is_some() || xi_node.is_some() || pi_node.is_some() {
            let param_grads = B::spike_slab_param_grads(input, m, xi, pi, grad_g, grad_delta);
            let (grad_m, grad_xi, grad_pi) = param_grads;
            for (node, grad) in [(m_node, grad_m), (xi_node, grad_xi), (pi_node, grad_pi)] {
                if let Some(node) = node {
                    grads.register::<B>(node.id, grad);
                }
            }
        }
    }
}

impl<B: MeanFieldBackend, C: CheckpointStrategy> MeanFieldBackend for Autodiff<B, C> {
    fn spike_slab_linear(
        input: FloatTensor<Self>,
        m: FloatTensor<Self>,
        xi: FloatTensor<Self>,
        pi: FloatTensor<Self>,
        eps: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let (input, input_node) = input.into_parts();
        let (m, m_node) = m.into_parts();
        let (xi, xi_node) = xi.into_parts();
        let (pi, pi_node) = pi.into_parts();
        let eps = eps.into_primitive();
        match SpikeSlabLinearBackward
            .prepare::<C>([input_node, m_node, xi_node, pi_node])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (h, slope) =
                    B::spike_slab_forward(input.clone(), m.clone(), xi.clone(), pi.clone(), eps);
                let saved = Saved {
                    input,
                    m,
                    xi,
                    pi,
                    slope,
                };
                prep.finish(saved, h)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::spike_slab_linear(input, m, xi, pi, eps)),
        }
    }
}
