//! AdamW's update of one parameter tensor as one backend operation.
//!
//! burn's `AdamW` takes about fifteen tensor operations per parameter tensor and step, each
//! reading and writing the whole tensor; [`adamw_update`] computes the same update, operation
//! by operation in the same order, in one pass on the `flex` backend (other backends compose
//! the same generic operations, `reference.rs`). Its scalars are those of burn's `AdamW` for
//! a float32 parameter and exact float64 values for a float64 one
//! ([`AdamWStep::scalars`]; burn's hyperparameters are `f32` in both). On `flex` it also sets
//! moments that fall below the smallest normal number to zero (see `flex.rs`; not in the
//! measurement-only `unflushed` build).
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
use num_traits::Float;

use reference::composed_update;

/// The scalars of one AdamW step, as the run's config gives them.
///
/// An update uses them at the precision of the parameter ([`AdamWStep::scalars`]): a
/// float32 parameter gets what burn's `AdamW` computes (its hyperparameters are `f32`), a
/// float64 one the values in float64, as the authors' numpy does.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamWStep {
    /// Learning rate.
    pub lr: f64,
    /// First-moment decay.
    pub beta_1: f64,
    /// Second-moment decay.
    pub beta_2: f64,
    /// Added to the root of the bias-corrected second moment.
    pub epsilon: f64,
    /// Decoupled weight decay: the parameter is first multiplied by `1 - lr weight_decay`.
    pub weight_decay: f64,
    /// The step number `t` of the bias corrections, from 1.
    pub time: usize,
}

impl AdamWStep {
    /// The step's scalars at precision `T`. Each hyperparameter is first rounded to `T`, and
    /// `1 - beta`, the bias corrections `1 - beta^t` are computed in `T` (for `f32` exactly
    /// burn's `AdamW`); the decay factor `1 - lr weight_decay` is computed in `f64` from
    /// the rounded `weight_decay`, then rounded to `T`.
    pub fn scalars<T: Float>(&self) -> AdamWScalars<T> {
        let round = |value: f64| T::from(value).expect("a float scalar");
        let (beta_1, beta_2) = (round(self.beta_1), round(self.beta_2));
        let time = self.time.min(i32::MAX as usize) as i32;
        let weight_decay = round(self.weight_decay).to_f64().expect("a float");
        AdamWScalars {
            beta_1,
            beta_2,
            keep_1: T::one() - beta_1,
            keep_2: T::one() - beta_2,
            correction_1: T::one() - beta_1.powi(time),
            correction_2: T::one() - beta_2.powi(time),
            epsilon: round(self.epsilon),
            decay: round(1.0 - self.lr * weight_decay),
            lr: round(self.lr),
        }
    }
}

/// The scalars of an [`AdamWStep`] at the parameter's precision `T`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamWScalars<T> {
    /// `beta_1`.
    pub beta_1: T,
    /// `beta_2`.
    pub beta_2: T,
    /// `1 - beta_1`.
    pub keep_1: T,
    /// `1 - beta_2`.
    pub keep_2: T,
    /// `1 - beta_1^t`.
    pub correction_1: T,
    /// `1 - beta_2^t`.
    pub correction_2: T,
    /// `epsilon`.
    pub epsilon: T,
    /// `1 - lr weight_decay`.
    pub decay: T,
    /// `lr`.
    pub lr: T,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The float32 scalars as burn's `AdamW` (and every earlier version of credit) computes
    /// them: hyperparameters parsed as `f32`, `1 - beta` and `1 - beta^t` in `f32`, the decay
    /// factor in `f64` from the `f32` weight decay.
    fn burn_f32(lr: f64, [b1, b2, eps, wd]: [&str; 4], time: i32) -> AdamWScalars<f32> {
        let [b1, b2, eps, wd]: [f32; 4] = [b1, b2, eps, wd].map(|s| s.parse().unwrap());
        AdamWScalars {
            beta_1: b1,
            beta_2: b2,
            keep_1: 1.0 - b1,
            keep_2: 1.0 - b2,
            correction_1: 1.0 - b1.powi(time),
            correction_2: 1.0 - b2.powi(time),
            epsilon: eps,
            decay: (1.0 - lr * f64::from(wd)) as f32,
            lr: lr as f32,
        }
    }

    #[test]
    fn float32_scalars_are_burns_and_float64_ones_are_exact() {
        for (lr, hyper) in [
            (0.1, ["0.9", "0.999", "1e-8", "1e-4"]),
            (0.006, ["0.5", "0.95", "1e-6", "0"]),
            (0.05, ["0.8", "0.9999", "1e-7", "0.01"]),
        ] {
            let [b1, b2, eps, wd] = hyper.map(|s| s.parse::<f64>().unwrap());
            for time in [1, 2, 7, 20, 1000, 100_000] {
                let step = AdamWStep {
                    lr,
                    beta_1: b1,
                    beta_2: b2,
                    epsilon: eps,
                    weight_decay: wd,
                    time: time as usize,
                };
                assert_eq!(
                    step.scalars::<f32>(),
                    burn_f32(lr, hyper, time),
                    "{hyper:?} t {time}"
                );
                let exact = step.scalars::<f64>();
                assert_eq!(exact.correction_2, 1.0 - b2.powi(time));
                assert_eq!((exact.beta_1, exact.epsilon), (b1, eps));
                assert_eq!(exact.decay, 1.0 - lr * wd);
            }
        }
    }
}
