//! The AdamW update composed from generic backend operations, in burn's `AdamW` order: what
//! ndarray and wgpu run, and the reference of the `flex` kernel.

use burn::backend::Backend;
use burn::backend::tensor::FloatTensor;

use super::AdamWStep;

/// The update from generic operations, in burn's `AdamW` order.
pub(super) fn composed_update<B: Backend>(
    tensor: FloatTensor<B>,
    grad: FloatTensor<B>,
    moment_1: FloatTensor<B>,
    moment_2: FloatTensor<B>,
    step: AdamWStep,
) -> (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>) {
    let (correction_1, correction_2) = step.corrections();
    let moment_1 = B::float_add(
        B::float_mul_scalar(moment_1, step.beta_1.into()),
        B::float_mul_scalar(grad.clone(), (1.0 - step.beta_1).into()),
    );
    let squared = B::float_mul(grad.clone(), grad);
    let moment_2 = B::float_add(
        B::float_mul_scalar(moment_2, step.beta_2.into()),
        B::float_mul_scalar(squared, (1.0 - step.beta_2).into()),
    );
    let corrected_1 = B::float_div_scalar(moment_1.clone(), correction_1.into());
    let corrected_2 = B::float_div_scalar(moment_2.clone(), correction_2.into());
    let denominator = B::float_add_scalar(B::float_sqrt(corrected_2), step.epsilon.into());
    let delta = B::float_div(corrected_1, denominator);
    let decayed = B::float_mul_scalar(tensor, step.decay().into());
    let tensor = B::float_sub(decayed, B::float_mul_scalar(delta, step.lr.into()));
    (tensor, moment_1, moment_2)
}
