//! The element types the kernels run on, with their inner loops: portable loops for any CPU
//! and `f64`, AVX-512 for `f32` where the CPU has it, and for `f32`'s gather and scatter
//! AVX2 with FMA where it has those but not AVX-512.

use std::ops::Range;

use burn::tensor::Element;
use num_traits::Float;

use super::layout::{Coefficients, Columns, Params, Shape};
use super::portable;
#[cfg(target_arch = "x86_64")]
use super::{avx2, avx512, blocks};
use crate::equations::DeltaFloor;

/// Element types the kernels run on (the others go through the composed operations), with
/// their inner loops. The defaults are portable; `f32` uses AVX-512 where the CPU has it.
/// Matrices are row-major slices.
pub(super) trait KernelFloat:
    Float + Element + bytemuck::Pod + Send + Sync + crate::host_product::ProductFloat
{
    /// `sp[r] = Σ_k s[r,k] · p[k]` and `sq[r] = Σ_k t[r,k] · q[k]`, for `s`, `t` the first and
    /// second coefficients `[rows, inner]`, over the `k` where either is nonzero; `p`, `q`
    /// `[inner, width]`, `sp`, `sq` `[rows, width]`.
    fn gather_rows(
        c: Coefficients<Self>,
        inner: usize,
        p: &[Self],
        q: &[Self],
        sp: &mut [Self],
        sq: &mut [Self],
    ) {
        let shape = Shape::gather(c, inner, p, q, sp, sq);
        portable::best::gather_rows(shape, c, p, q, sp, sq)
    }

    /// `p_out[k] += Σ_r s[r,k] · p_rows[r]` and `q_out[k] += Σ_r s[r,k]² · q_rows[r]` over the
    /// nonzero `s[r,k]`, for `s` the `[rows, block]` columns of a matrix, `p_rows`, `q_rows`
    /// `[rows, width]`, `p_out`, `q_out` `[block, width]`.
    fn scatter_rows(
        s: Columns<Self>,
        p_rows: &[Self],
        q_rows: &[Self],
        p_out: &mut [Self],
        q_out: &mut [Self],
    ) {
        let shape = Shape::scatter(s, p_rows, q_rows, p_out, q_out);
        portable::best::scatter_rows(shape, s, p_rows, q_rows, p_out, q_out)
    }

    /// `h = (G + sqrt(max(Delta, floor)) · eps) / sqrt(N)` and `slope = dh/dDelta`, zero where
    /// the floor holds, for one block of rows: `h` holds `G` and `slope` holds `Delta` on
    /// entry; `scale = 1 / sqrt(N)`.
    fn add_noise(h: &mut [Self], slope: &mut [Self], eps: &[Self], scale: Self, floor: DeltaFloor) {
        portable::best::add_noise(h, slope, eps, scale, floor)
    }

    /// Rows `inputs` (at most 16) of `meanᵀ` and `varianceᵀ` (`[n_in, n_out]`), which
    /// `mean_t` and `variance_t` hold.
    fn transposed_moments_rows(
        params: Params<Self>,
        inputs: Range<usize>,
        mean_t: &mut [Self],
        variance_t: &mut [Self],
    ) {
        Shape::transposed_rows(params, inputs.clone(), [&*mean_t, &*variance_t]);
        portable::best::transposed_moments_rows(params, inputs, mean_t, variance_t)
    }

    /// Rows `outputs` (at most 16) of `[dL/dm, dL/dxi, dL/dpi]` (`[n_out, n_in]`), which
    /// `grads` hold, from `(dL/dmean)ᵀ`, `(dL/dvariance)ᵀ` (`[n_in, n_out]`).
    fn chain_rule_rows(
        params: Params<Self>,
        grad_mean_t: &[Self],
        grad_variance_t: &[Self],
        outputs: Range<usize>,
        grads: [&mut [Self]; 3],
    ) {
        let grads_t = [grad_mean_t, grad_variance_t];
        Shape::chain_rule_rows(params, grads_t, outputs.clone(), &grads);
        portable::best::chain_rule_rows(params, grad_mean_t, grad_variance_t, outputs, grads)
    }
}

impl KernelFloat for f64 {}

impl KernelFloat for f32 {
    fn gather_rows(
        c: Coefficients<f32>,
        inner: usize,
        p: &[f32],
        q: &[f32],
        sp: &mut [f32],
        sq: &mut [f32],
    ) {
        let shape = Shape::gather(c, inner, p, q, sp, sq);
        #[cfg(target_arch = "x86_64")]
        if avx512::available() {
            // SAFETY: AVX-512F is available; `Shape::gather` checked the lengths.
            return unsafe { blocks::gather_rows::<avx512::Avx512>(shape, c, p, q, sp, sq) };
        }
        #[cfg(target_arch = "x86_64")]
        if avx2::available() {
            // SAFETY: AVX2 and FMA are available; `Shape::gather` checked the lengths.
            return unsafe { blocks::gather_rows::<avx2::Avx2>(shape, c, p, q, sp, sq) };
        }
        portable::best::gather_rows(shape, c, p, q, sp, sq)
    }

    fn scatter_rows(
        s: Columns<f32>,
        p_rows: &[f32],
        q_rows: &[f32],
        p_out: &mut [f32],
        q_out: &mut [f32],
    ) {
        let shape = Shape::scatter(s, p_rows, q_rows, p_out, q_out);
        #[cfg(target_arch = "x86_64")]
        if avx512::available() {
            // SAFETY: AVX-512F is available; `Shape::scatter` checked the lengths.
            return unsafe {
                blocks::scatter_rows::<avx512::Avx512>(shape, s, p_rows, q_rows, p_out, q_out)
            };
        }
        #[cfg(target_arch = "x86_64")]
        if avx2::available() {
            // SAFETY: AVX2 and FMA are available; `Shape::scatter` checked the lengths.
            return unsafe {
                blocks::scatter_rows::<avx2::Avx2>(shape, s, p_rows, q_rows, p_out, q_out)
            };
        }
        portable::best::scatter_rows(shape, s, p_rows, q_rows, p_out, q_out)
    }

    fn add_noise(h: &mut [f32], slope: &mut [f32], eps: &[f32], scale: f32, floor: DeltaFloor) {
        #[cfg(target_arch = "x86_64")]
        if avx512::available() {
            // SAFETY: AVX-512F is available.
            return unsafe { avx512::add_noise(h, slope, eps, scale, floor) };
        }
        portable::best::add_noise(h, slope, eps, scale, floor)
    }

    fn transposed_moments_rows(
        params: Params<f32>,
        inputs: Range<usize>,
        mean_t: &mut [f32],
        variance_t: &mut [f32],
    ) {
        Shape::transposed_rows(params, inputs.clone(), [&*mean_t, &*variance_t]);
        #[cfg(target_arch = "x86_64")]
        if avx512::available() {
            // SAFETY: AVX-512F is available; `Shape::transposed_rows` checked the lengths.
            return unsafe { avx512::transposed_moments_rows(params, inputs, mean_t, variance_t) };
        }
        portable::best::transposed_moments_rows(params, inputs, mean_t, variance_t)
    }

    fn chain_rule_rows(
        params: Params<f32>,
        grad_mean_t: &[f32],
        grad_variance_t: &[f32],
        outputs: Range<usize>,
        grads: [&mut [f32]; 3],
    ) {
        Shape::chain_rule_rows(
            params,
            [grad_mean_t, grad_variance_t],
            outputs.clone(),
            &grads,
        );
        #[cfg(target_arch = "x86_64")]
        if avx512::available() {
            // SAFETY: AVX-512F is available; `Shape::chain_rule_rows` checked the lengths.
            return unsafe {
                avx512::chain_rule_rows(params, grad_mean_t, grad_variance_t, outputs, grads)
            };
        }
        portable::best::chain_rule_rows(params, grad_mean_t, grad_variance_t, outputs, grads)
    }
}
