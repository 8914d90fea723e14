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

/// How `Delta` is kept off zero before its square root. A unit whose inputs carry no variance
/// (all its `pi` in {0, 1} and `xi = 0`, or an all-zero input row) has `Delta = 0`; the two
/// protocols of the authors' code treat it differently, and both are available:
///
/// - [`FloorMode::Clamp`] with value `f`: `sqrt(max(Delta, f))`, and `Delta` gets a gradient
///   only where `Delta > f`. With `f = 0` this is the 2020 script (`sqrt(Delta)`, gradients
///   of `Delta` switched off where it is 0: `turn_2_zero(va)`).
/// - [`FloorMode::Add`] with value `f`: `sqrt(Delta + f)`, gradients everywhere: the 2022
///   script (`np.sqrt(np.dot(rho - mu**2, a**2) + 1e-20)`).
///
/// Either way the floor matters only where `Delta` is at most about `f` (float32 rounds
/// `Delta + 1e-20` to `Delta` for any `Delta` above 1e-13).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DeltaFloor {
    /// The floor `f` (`>= 0`).
    pub value: f64,
    /// How it applies.
    pub mode: FloorMode,
}

/// See [`DeltaFloor`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FloorMode {
    /// `sqrt(max(Delta, f))`; no gradient where the floor holds.
    Clamp,
    /// `sqrt(Delta + f)`.
    Add,
}

impl DeltaFloor {
    /// The 2020 script's treatment: `sqrt(Delta)`, no gradient where `Delta = 0`.
    pub const EXACT: DeltaFloor = DeltaFloor {
        value: 0.0,
        mode: FloorMode::Clamp,
    };
}

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

/// The pre-activation `h = (G + sqrt(Delta') eps) scale` of one unit and sample, with
/// `Delta'` the floored `Delta` (see [`DeltaFloor`]), and its slope `dh/dDelta = eps scale /
/// (2 sqrt(Delta'))` (zero where a clamping floor holds, or where `Delta'` is 0);
/// `scale = 1 / sqrt(N)`.
#[inline(always)]
pub fn noisy_preactivation<T: Float>(
    g: T,
    delta: T,
    eps: T,
    scale: T,
    floor: DeltaFloor,
) -> (T, T) {
    let value = T::from(floor.value).expect("a float type");
    let half_scale = T::from(0.5).expect("a float type") * scale;
    let (floored, slopes) = match floor.mode {
        FloorMode::Clamp => {
            let above = delta > value;
            (if above { delta } else { value }, above)
        }
        FloorMode::Add => {
            let floored = delta + value;
            (floored, floored > T::zero())
        }
    };
    let std = floored.sqrt();
    let h = (g + std * eps) * scale;
    let slope = if slopes {
        eps * half_scale / std
    } else {
        T::zero()
    };
    (h, slope)
}
