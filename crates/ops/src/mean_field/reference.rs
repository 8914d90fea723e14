//! The operation composed from generic backend operations: what every backend without host
//! kernels runs (ndarray, wgpu), and the reference the `flex` kernels are tested against.
//! Each function is the default body of the [`MeanFieldBackend`](super::MeanFieldBackend)
//! method of the same name.

use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, TensorMetadata};

use crate::equations::{DeltaFloor, FloorMode};

/// `1 / sqrt(N)` for an input of shape `[batch, N]`.
pub(crate) fn input_scale<B: Backend>(input: &FloatTensor<B>) -> f64 {
    (input.shape()[1] as f64).sqrt().recip()
}

/// `(mean, variance)` of every weight from generic backend operations.
pub(crate) fn composed_moments<B: Backend>(
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
pub(crate) fn composed_forward<B: Backend>(
    input: FloatTensor<B>,
    m: FloatTensor<B>,
    xi: FloatTensor<B>,
    pi: FloatTensor<B>,
    eps: FloatTensor<B>,
    floor: DeltaFloor,
) -> (FloatTensor<B>, FloatTensor<B>) {
    let scale = input_scale::<B>(&input);
    let (mean, variance) = composed_moments::<B>(m, xi, pi);
    let g = B::float_matmul(input.clone(), B::float_transpose(mean));
    let squared = B::float_mul(input.clone(), input);
    let delta = B::float_matmul(squared, B::float_transpose(variance));
    // The floored Delta, and the value that must exceed a threshold for a slope.
    let (floored, sloped, threshold) = match floor.mode {
        FloorMode::Clamp => (
            B::float_clamp_min(delta.clone(), floor.value.into()),
            delta,
            floor.value,
        ),
        FloorMode::Add => {
            let floored = B::float_add_scalar(delta, floor.value.into());
            (floored.clone(), floored, 0.0)
        }
    };
    let std = B::float_sqrt(floored);
    let h = B::float_mul_scalar(
        B::float_add(g, B::float_mul(std.clone(), eps.clone())),
        scale.into(),
    );
    // 1 where the slope applies, 0 elsewhere; there `std` may be 0, and the division by it is
    // kept finite (the smallest `std` of a positive float32 is 3.7e-23).
    let applies = B::float_sign(B::float_clamp_min(
        B::float_sub_scalar(sloped, threshold.into()),
        0.0.into(),
    ));
    let safe_std = B::float_clamp_min(std, 1e-30.into());
    let slope = B::float_mul(
        B::float_div(B::float_mul_scalar(eps, (0.5 * scale).into()), safe_std),
        applies,
    );
    (h, slope)
}

/// [`MeanFieldBackend::spike_slab_output_grads`] from generic backend operations.
pub(crate) fn composed_output_grads<B: Backend>(
    grad: FloatTensor<B>,
    slope: FloatTensor<B>,
    scale: f64,
) -> (FloatTensor<B>, FloatTensor<B>) {
    let grad_g = B::float_mul_scalar(grad.clone(), scale.into());
    (grad_g, B::float_mul(grad, slope))
}

/// [`MeanFieldBackend::spike_slab_param_grads`] from generic backend operations.
pub(crate) fn composed_param_grads<B: Backend>(
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
pub(crate) fn composed_clamp<B: Backend>(
    tensor: FloatTensor<B>,
    min: f64,
    max: f64,
) -> FloatTensor<B> {
    if max.is_finite() {
        B::float_clamp(tensor, min.into(), max.into())
    } else {
        B::float_clamp_min(tensor, min.into())
    }
}

/// [`MeanFieldBackend::spike_slab_input_grad`] from generic backend operations.
pub(crate) fn composed_input_grad<B: Backend>(
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
