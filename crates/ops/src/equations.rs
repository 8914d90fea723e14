//! The layer's equations for one weight and one pre-activation, written once.
//!
//! Every other form of the layer (the burn-tensor reference in `credit-model`, the composed
//! backend operations, the portable and the AVX-512 loops of the `flex` kernels) computes
//! these quantities; the kernels' tests compare their loops with these functions.
//!
//! With `pi` the spike probability, `m` and `xi` the slab's mean and variance (Li & Huang,
//! PRL 125, 178301, 2020, eqs. 2-4):
//!
//! ```text
//! mean     = (1 - pi) m
//! variance = (1 - pi) (xi + pi m²)            (= rho - mean², without its cancellation)
//! ```

use num_traits::Float;

/// `Delta` is floored here before its square root, so that a unit whose inputs carry no
/// variance (all `pi` in {0, 1} and `xi = 0`, or an all-zero input row) keeps finite gradients;
/// where the floor holds, `Delta` gets no gradient. Far below any variance a trained layer
/// produces (about 1e-3 and up in the paper's runs).
pub const DELTA_FLOOR: f64 = 1e-12;

/// `(mean, variance)` of one weight from its `m`, `xi`, `pi`.
#[inline(always)]
pub fn weight_moments<T: Float>(m: T, xi: T, pi: T) -> (T, T) {
    let keep = T::one() - pi;
    (keep * m, keep * (xi + pi * m * m))
}

/// `[dL/dm, dL/dxi, dL/dpi]` of one weight from its `m`, `xi`, `pi`, `dL/dmean` and
/// `dL/dvariance` (the chain rule through [`weight_moments`]):
///
/// ```text
/// dL/dm  = (1 - pi) (dL/dmean + 2 pi m dL/dvariance)
/// dL/dxi = (1 - pi) dL/dvariance
/// dL/dpi = -m dL/dmean + ((1 - 2 pi) m² - xi) dL/dvariance
/// ```
#[inline(always)]
pub fn weight_grads<T: Float>(m: T, xi: T, pi: T, grad_mean: T, grad_variance: T) -> [T; 3] {
    let (one, two) = (T::one(), T::one() + T::one());
    let keep = one - pi;
    [
        keep * (grad_mean + two * pi * m * grad_variance),
        keep * grad_variance,
        ((one - two * pi) * m * m - xi) * grad_variance - m * grad_mean,
    ]
}

/// The pre-activation `h = (G + sqrt(max(Delta, floor)) eps) scale` of one unit and sample,
/// and its slope `dh/dDelta = eps scale / (2 sqrt(Delta))`, zero where the floor holds;
/// `scale = 1 / sqrt(N)`.
#[inline(always)]
pub fn noisy_preactivation<T: Float>(g: T, delta: T, eps: T, scale: T) -> (T, T) {
    let floor = T::from(DELTA_FLOOR).expect("a float type");
    let half_scale = T::from(0.5).expect("a float type") * scale;
    let above = delta > floor;
    let std = if above { delta } else { floor }.sqrt();
    let h = (g + std * eps) * scale;
    let slope = if above {
        eps * half_scale / std
    } else {
        T::zero()
    };
    (h, slope)
}
