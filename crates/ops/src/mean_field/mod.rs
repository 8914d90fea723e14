//! The spike-and-slab mean-field layer as one backend operation with a hand-written backward
//! pass.
//!
//! ```text
//! mean = (1 - pi) m                 variance = (1 - pi) (xi + pi m²)
//! G = input · meanᵀ                 Delta = input² · varianceᵀ
//! h = (G + sqrt(Delta') ⊙ eps) / sqrt(N)         Delta' = Delta floored (see `DeltaFloor`)
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

//!
//! Files: `reference.rs` (the operations composed from generic backend operations: what
//! ndarray and wgpu run, and the reference of the `flex` kernels), `backward.rs` (the
//! autodiff node and its generalised backprop), `flex/` (the host kernels of `flex`).

mod backward;
#[cfg(feature = "flex")]
mod flex;
pub(crate) mod reference;

use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Dispatch, backend_extension};
use burn::tensor::Tensor;

pub use crate::equations::{DeltaFloor, FloorMode};
use reference::{
    composed_clamp, composed_forward, composed_input_grad, composed_output_grads,
    composed_param_grads,
};

/// The layer's pre-activation `h` (see the module documentation), differentiable in `input`,
/// `m`, `xi` and `pi` (`eps` and the floor of `Delta` are constants).
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
    floor: DeltaFloor,
) -> Tensor<2> {
    Tensor::from_dispatch(<Dispatch as MeanFieldBackend>::spike_slab_linear(
        input.into_dispatch(),
        m.into_dispatch(),
        xi.into_dispatch(),
        pi.into_dispatch(),
        eps.into_dispatch(),
        floor,
    ))
}

/// `tensor` clamped to `[min, max]` (`max` may be infinite), by the backend's projection
/// operation (in place on `flex`). Not differentiable: for parameter values.
pub fn clamp_values(tensor: Tensor<2>, min: f64, max: f64) -> Tensor<2> {
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
        floor: DeltaFloor,
    ) -> FloatTensor<Self> {
        Self::spike_slab_forward(input, m, xi, pi, eps, floor).0
    }

    /// `h` and `dh/dDelta` (0 where a clamping floor holds), the one intermediate the
    /// backward pass needs.
    fn spike_slab_forward(
        input: FloatTensor<Self>,
        m: FloatTensor<Self>,
        xi: FloatTensor<Self>,
        pi: FloatTensor<Self>,
        eps: FloatTensor<Self>,
        floor: DeltaFloor,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        composed_forward::<Self>(input, m, xi, pi, eps, floor)
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
