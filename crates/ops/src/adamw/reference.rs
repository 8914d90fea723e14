//! The AdamW update composed from generic backend operations, in burn's `AdamW` order: what
//! ndarray and wgpu run, and the reference of the `flex` kernel.

use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, TensorMetadata};
use burn::tensor::DType;

use super::{AdamWScalars, AdamWStep};

/// The update from generic operations, in burn's `AdamW` order, with the step's scalars at
/// the parameter's precision (float64 for a float64 parameter, float32 otherwise).
pub(super) fn composed_update<B: Backend>(
    tensor: FloatTensor<B>,
    grad: FloatTensor<B>,
    moment_1: FloatTensor<B>,
    moment_2: FloatTensor<B>,
    step: AdamWStep,
) -> (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>) {
    let s: AdamWScalars<f64> = if tensor.dtype() == DType::F64 {
        step.scalars::<f64>()
    } else {
        let s = step.scalars::<f32>();
        AdamWScalars {
            beta_1: s.beta_1.into(),
            beta_2: s.beta_2.into(),
            keep_1: s.keep_1.into(),
            keep_2: s.keep_2.into(),
            correction_1: s.correction_1.into(),
            correction_2: s.correction_2.into(),
            epsilon: s.epsilon.into(),
            decay: s.decay.into(),
            lr: s.lr.into(),
        }
    };
    let moment_1 = B::float_add(
        B::float_mul_scalar(moment_1, s.beta_1.into()),
        B::float_mul_scalar(grad.clone(), s.keep_1.into()),
    );
    let squared = B::float_mul(grad.clone(), grad);
    let moment_2 = B::float_add(
        B::float_mul_scalar(moment_2, s.beta_2.into()),
        B::float_mul_scalar(squared, s.keep_2.into()),
    );
    let corrected_1 = B::float_div_scalar(moment_1.clone(), s.correction_1.into());
    let corrected_2 = B::float_div_scalar(moment_2.clone(), s.correction_2.into());
    let denominator = B::float_add_scalar(B::float_sqrt(corrected_2), s.epsilon.into());
    let delta = B::float_div(corrected_1, denominator);
    let decayed = B::float_mul_scalar(tensor, s.decay.into());
    let tensor = B::float_sub(decayed, B::float_mul_scalar(delta, s.lr.into()));
    (tensor, moment_1, moment_2)
}
