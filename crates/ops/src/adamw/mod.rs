//! AdamW's update of one parameter tensor as one backend operation.
//!
//! burn's `AdamW` takes about fifteen tensor operations per parameter tensor and step, each
//! reading and writing the whole tensor; [`adamw_update`] computes the same update, operation
//! by operation in the same order and precision, in one pass on the `flex` backend (other
//! backends compose the same generic operations, `reference.rs`). On `flex` it also sets
//! moments that fall below the smallest normal number to zero (see `flex.rs`).
//!
//! With `g` the gradient and `t` the step number (Loshchilov & Hutter, "Decoupled weight
//! decay regularization", ICLR 2019, algorithm 2, as burn writes it):
//!
//! ```text
//! m1 = beta_1 m1 + (1 - beta_1) g          m2 = beta_2 m2 + (1 - beta_2) g²
//! w  = (1 - lr weight_decay) w - lr (m1 / (1 - beta_1^t)) / (sqrt(m2 / (1 - beta_2^t)) + epsilon)
//! ```

#[cfg(feature = "flex")]
mod flex;
mod reference;

use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Dispatch, backend_extension};
use burn::tensor::Tensor;

use reference::composed_update;

/// The scalars of one AdamW step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamWStep {
    /// Learning rate.
    pub lr: f64,
    /// First-moment decay.
    pub beta_1: f32,
    /// Second-moment decay.
    pub beta_2: f32,
    /// Added to the root of the bias-corrected second moment.
    pub epsilon: f32,
    /// Decoupled weight decay: the parameter is first multiplied by `1 - lr weight_decay`.
    pub weight_decay: f32,
    /// The step number `t` of the bias corrections, from 1.
    pub time: usize,
}

impl AdamWStep {
    /// `1 - beta^t`, the bias corrections, as burn computes them.
    pub fn corrections(&self) -> (f32, f32) {
        let time = self.time as i32;
        (1.0 - self.beta_1.powi(time), 1.0 - self.beta_2.powi(time))
    }

    /// The factor `1 - lr weight_decay` of the decoupled decay.
    pub fn decay(&self) -> f64 {
        1.0 - self.lr * self.weight_decay as f64
    }
}

/// One AdamW step of a parameter tensor: returns the parameter and the two moments after it.
///
/// # Shapes
/// - every tensor, input and output: the parameter's shape
pub fn adamw_update<const D: usize>(
    tensor: Tensor<D>,
    grad: Tensor<D>,
    moment_1: Tensor<D>,
    moment_2: Tensor<D>,
    step: AdamWStep,
) -> (Tensor<D>, Tensor<D>, Tensor<D>) {
    let (tensor, moment_1, moment_2) = <Dispatch as AdamWBackend>::adamw_update(
        tensor.into_dispatch(),
        grad.into_dispatch(),
        moment_1.into_dispatch(),
        moment_2.into_dispatch(),
        step,
    );
    (
        Tensor::from_dispatch(tensor),
        Tensor::from_dispatch(moment_1),
        Tensor::from_dispatch(moment_2),
    )
}

/// The backend operation behind [`adamw_update`].
#[backend_extension(
    Flex: cfg(feature = "flex"),
    NdArray: cfg(feature = "ndarray"),
    Cube: cfg(feature = "wgpu")
)]
pub trait AdamWBackend: Backend {
    /// See [`adamw_update`].
    fn adamw_update(
        tensor: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        moment_1: FloatTensor<Self>,
        moment_2: FloatTensor<Self>,
        step: AdamWStep,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        composed_update::<Self>(tensor, grad, moment_1, moment_2, step)
    }
}

#[cfg(feature = "ndarray")]
impl AdamWBackend for burn::backend::NdArray {}

#[cfg(feature = "wgpu")]
impl AdamWBackend for burn::backend::Cube {}
