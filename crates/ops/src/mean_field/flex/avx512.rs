use std::arch::x86_64::*;
use std::ops::Range;

use super::blocks::{BlockKernels, Found};
use super::layout::{LANES, Nonzeros, Params};
use crate::equations::DeltaFloor;

pub(super) fn available() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
}

/// `KernelFloat::add_noise`, the portable loop compiled for AVX-512.
#[target_feature(enable = "avx512f")]
pub(super) fn add_noise(
    h: &mut [f32],
    slope: &mut [f32],
    eps: &[f32],
    scale: f32,
    floor: DeltaFloor,
) {
    super::portable::add_noise(h, slope, eps, scale, floor)
}

/// The transpose of the 16 × 16 tile whose rows are `r`: lane `j` of row `i` of the
/// result is lane `i` of `r[j]`. Pairs, then quads of lanes, then 128-bit blocks swap.
#[target_feature(enable = "avx512f")]
fn transpose(r: [__m512; LANES]) -> [__m512; LANES] {
    let mut t = [_mm512_setzero_ps(); LANES];
    for i in (0..LANES).step_by(2) {
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    let mut u = [_mm512_setzero_ps(); LANES];
    for i in (0..LANES).step_by(4) {
        u[i] = _mm512_shuffle_ps::<0x44>(t[i], t[i + 2]);
        u[i + 1] = _mm512_shuffle_ps::<0xee>(t[i], t[i + 2]);
        u[i + 2] = _mm512_shuffle_ps::<0x44>(t[i + 1], t[i + 3]);
        u[i + 3] = _mm512_shuffle_ps::<0xee>(t[i + 1], t[i + 3]);
    }
    for i in [0, 1, 2, 3, 8, 9, 10, 11] {
        t[i] = _mm512_shuffle_f32x4::<0x88>(u[i], u[i + 4]);
        t[i + 4] = _mm512_shuffle_f32x4::<0xdd>(u[i], u[i + 4]);
    }
    for i in 0..8 {
        u[i] = _mm512_shuffle_f32x4::<0x88>(t[i], t[i + 8]);
        u[i + 8] = _mm512_shuffle_f32x4::<0xdd>(t[i], t[i + 8]);
    }
    u
}

/// `weight_moments` on 16 weights: the same operations in the same order.
#[target_feature(enable = "avx512f")]
fn vector_moments(m: __m512, xi: __m512, pi: __m512) -> (__m512, __m512) {
    let keep = _mm512_sub_ps(_mm512_set1_ps(1.0), pi);
    let slab_and_spike = _mm512_add_ps(xi, _mm512_mul_ps(_mm512_mul_ps(pi, m), m));
    (_mm512_mul_ps(keep, m), _mm512_mul_ps(keep, slab_and_spike))
}

/// `weight_grads` on 16 weights: the same operations in the same order.
#[target_feature(enable = "avx512f")]
fn vector_grads(m: __m512, xi: __m512, pi: __m512, mean: __m512, variance: __m512) -> [__m512; 3] {
    let one = _mm512_set1_ps(1.0);
    let keep = _mm512_sub_ps(one, pi);
    let two_pi = _mm512_mul_ps(_mm512_set1_ps(2.0), pi);
    let through_variance = _mm512_mul_ps(_mm512_mul_ps(two_pi, m), variance);
    let variance_slope = _mm512_sub_ps(
        _mm512_mul_ps(_mm512_mul_ps(_mm512_sub_ps(one, two_pi), m), m),
        xi,
    );
    [
        _mm512_mul_ps(keep, _mm512_add_ps(mean, through_variance)),
        _mm512_mul_ps(keep, variance),
        _mm512_sub_ps(
            _mm512_mul_ps(variance_slope, variance),
            _mm512_mul_ps(m, mean),
        ),
    ]
}

/// See `KernelFloat::transposed_moments_rows`: the moments of 16 × 16 tiles of the
/// parameters, transposed in registers.
///
/// # Safety
/// AVX-512F must be available, and the lengths those `Shape::transposed_rows` checks.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn transposed_moments_rows(
    params: Params<f32>,
    inputs: Range<usize>,
    mean_t: &mut [f32],
    variance_t: &mut [f32],
) {
    let (n_out, n_in) = (params.n_out, params.n_in);
    let input_lanes = first_lanes(inputs.len());
    for first in (0..n_out).step_by(LANES) {
        let outputs = (n_out - first).min(LANES);
        let mut mean = [_mm512_setzero_ps(); LANES];
        let mut variance = [_mm512_setzero_ps(); LANES];
        for o in 0..outputs {
            let at = (first + o) * n_in + inputs.start;
            // SAFETY: the masked loads read columns `inputs` of row `first + o`.
            let load = |values: &[f32]| unsafe {
                _mm512_maskz_loadu_ps(input_lanes, values.as_ptr().add(at))
            };
            (mean[o], variance[o]) =
                vector_moments(load(params.m), load(params.xi), load(params.pi));
        }
        let (mean, variance) = (transpose(mean), transpose(variance));
        let output_lanes = first_lanes(outputs);
        for k in 0..inputs.len() {
            let at = k * n_out + first;
            // SAFETY: the masked stores write columns `first..first + outputs` of row
            // `k` of the block, inside `mean_t` and `variance_t`.
            unsafe {
                _mm512_mask_storeu_ps(mean_t.as_mut_ptr().add(at), output_lanes, mean[k]);
                let variance_at = variance_t.as_mut_ptr().add(at);
                _mm512_mask_storeu_ps(variance_at, output_lanes, variance[k]);
            }
        }
    }
}

/// See `KernelFloat::chain_rule_rows`: 16 × 16 tiles of the transposed gradients,
/// transposed in registers.
///
/// # Safety
/// AVX-512F must be available, and the lengths those `Shape::chain_rule_rows` checks.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn chain_rule_rows(
    params: Params<f32>,
    grad_mean_t: &[f32],
    grad_variance_t: &[f32],
    outputs: Range<usize>,
    mut grads: [&mut [f32]; 3],
) {
    let (n_out, n_in) = (params.n_out, params.n_in);
    let output_lanes = first_lanes(outputs.len());
    // Columns `outputs` of rows `first..first + inputs` of a transposed gradient,
    // transposed back: vector `o` holds output `o`'s gradient for those inputs.
    let untranspose = |grad_t: &[f32], first: usize, inputs: usize| {
        transpose(std::array::from_fn(|k| {
            if k < inputs {
                let at = (first + k) * n_out + outputs.start;
                // SAFETY: the masked load reads columns `outputs` of row `first + k`.
                unsafe { _mm512_maskz_loadu_ps(output_lanes, grad_t.as_ptr().add(at)) }
            } else {
                _mm512_setzero_ps()
            }
        }))
    };
    for first in (0..n_in).step_by(LANES) {
        let inputs = (n_in - first).min(LANES);
        let input_lanes = first_lanes(inputs);
        let grad_mean = untranspose(grad_mean_t, first, inputs);
        let grad_variance = untranspose(grad_variance_t, first, inputs);
        for o in 0..outputs.len() {
            let at = (outputs.start + o) * n_in + first;
            // SAFETY: the masked loads read columns `first..first + inputs` of row
            // `outputs.start + o` of the parameters.
            let load = |values: &[f32]| unsafe {
                _mm512_maskz_loadu_ps(input_lanes, values.as_ptr().add(at))
            };
            let (m, xi, pi) = (load(params.m), load(params.xi), load(params.pi));
            let values = vector_grads(m, xi, pi, grad_mean[o], grad_variance[o]);
            let out = o * n_in + first;
            for (grad, value) in grads.iter_mut().zip(values) {
                // SAFETY: the masked store writes columns `first..first + inputs` of row
                // `o` of the block.
                unsafe { _mm512_mask_storeu_ps(grad.as_mut_ptr().add(out), input_lanes, value) };
            }
        }
    }
}

/// Mask of the first `n` (at most 16) lanes.
fn first_lanes(n: usize) -> __mmask16 {
    if n >= LANES { 0xffff } else { (1u16 << n) - 1 }
}

/// The lane masks of `V` vectors covering columns `offset..width`.
fn tile_masks<const V: usize>(offset: usize, width: usize) -> [__mmask16; V] {
    std::array::from_fn(|v| first_lanes(width.saturating_sub(offset + v * LANES)))
}

/// The positions `k` where `row[k]` or `second[k]` (default `row[k]²`) is nonzero (or
/// NaN), with both values, written to `found` from entry `at` on, 16 entries at a time
/// compressed in registers; returns how many.
///
/// # Safety
/// AVX-512F must be available; `second` must be as long as `row`, and `found` hold
/// `at + row.len() + 16` entries or more.
#[target_feature(enable = "avx512f")]
unsafe fn collect_nonzeros(
    row: &[f32],
    second: Option<&[f32]>,
    found: &mut Nonzeros<f32>,
    at: usize,
) -> usize {
    debug_assert!(found.indices.len() >= at + row.len() + LANES);
    let lanes = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    let mut count = 0;
    for start in (0..row.len()).step_by(LANES) {
        let load = first_lanes(row.len() - start);
        // SAFETY: the masked loads read only lanes inside `row` and `second`; each store
        // writes 16 lanes at `at + count <= at + start`, inside the `at + row.len() + 16`
        // entries of each buffer.
        count += unsafe {
            let x = _mm512_maskz_loadu_ps(load, row.as_ptr().add(start));
            let y = match second {
                Some(t) => _mm512_maskz_loadu_ps(load, t.as_ptr().add(start)),
                None => _mm512_mul_ps(x, x),
            };
            let zero = _mm512_setzero_ps();
            let nonzero = _mm512_mask_cmp_ps_mask::<_CMP_NEQ_UQ>(load, x, zero)
                | _mm512_mask_cmp_ps_mask::<_CMP_NEQ_UQ>(load, y, zero);
            let positions = _mm512_add_epi32(lanes, _mm512_set1_epi32(start as i32));
            let compress = |v| _mm512_maskz_compress_ps(nonzero, v);
            _mm512_storeu_ps(found.first.as_mut_ptr().add(at + count), compress(x));
            _mm512_storeu_ps(found.second.as_mut_ptr().add(at + count), compress(y));
            _mm512_storeu_si512(
                found.indices.as_mut_ptr().add(at + count).cast(),
                _mm512_maskz_compress_epi32(nonzero, positions),
            );
            nonzero.count_ones() as usize
        };
    }
    count
}

/// Output vectors kept in registers per pass: 7 for each of the pair.
const TILE: usize = 7;

/// How many nonzeros ahead [`gather_tile`] prefetches rows.
const PREFETCH_DISTANCE: usize = 4;

/// The AVX-512 loops of the blocked gather and scatter (`blocks.rs`).
pub(super) struct Avx512;

impl BlockKernels for Avx512 {
    const LANES: usize = LANES;
    const TILE: usize = TILE;

    unsafe fn collect(
        row: &[f32],
        second: Option<&[f32]>,
        found: &mut Nonzeros<f32>,
        at: usize,
    ) -> usize {
        // SAFETY: as this function's.
        unsafe { collect_nonzeros(row, second, found, at) }
    }

    unsafe fn tile<const V: usize>(
        sp: &mut [f32],
        sq: &mut [f32],
        p: &[f32],
        q: &[f32],
        found: Found,
        accumulate: bool,
        first: usize,
    ) {
        // SAFETY: as this function's.
        unsafe { gather_tile::<V>(sp, sq, p, q, found, accumulate, first) }
    }
}

/// See [`BlockKernels::tile`]: columns `16 · first` onwards (`V` vectors) of one row, the
/// vectors masked where the row ends.
///
/// # Safety
/// As [`BlockKernels::tile`], with AVX-512F.
#[target_feature(enable = "avx512f")]
unsafe fn gather_tile<const V: usize>(
    sp: &mut [f32],
    sq: &mut [f32],
    p: &[f32],
    q: &[f32],
    found: Found,
    accumulate: bool,
    first: usize,
) {
    let width = sp.len();
    let offset = first * LANES;
    let masks = tile_masks::<V>(offset, width);
    let mut acc_p = [_mm512_setzero_ps(); V];
    let mut acc_q = [_mm512_setzero_ps(); V];
    if accumulate {
        for v in 0..V {
            let column = offset + v * LANES;
            // SAFETY: the masked loads read only columns below `width`, inside `sp`, `sq`.
            unsafe {
                acc_p[v] = _mm512_maskz_loadu_ps(masks[v], sp.as_ptr().add(column));
                acc_q[v] = _mm512_maskz_loadu_ps(masks[v], sq.as_ptr().add(column));
            }
        }
    }
    let values = found.first.iter().zip(found.second);
    for (j, (&k, (&x, &y))) in found.indices.iter().zip(values).enumerate() {
        if let Some(&ahead) = found.indices.get(j + PREFETCH_DISTANCE) {
            let start = ahead as usize * width + offset;
            for v in 0..V {
                // Prefetches never fault; the addresses stay inside the row anyway.
                let at = start + v * LANES;
                _mm_prefetch::<_MM_HINT_T0>(p.as_ptr().wrapping_add(at).cast());
                _mm_prefetch::<_MM_HINT_T0>(q.as_ptr().wrapping_add(at).cast());
            }
        }
        let (x, y) = (_mm512_set1_ps(x), _mm512_set1_ps(y));
        let start = k as usize * width + offset;
        // SAFETY: row `k` of `p` and `q` lies inside them; the masked loads read only its
        // columns from `offset` to `width`.
        unsafe {
            let row_p = p.as_ptr().add(start);
            let row_q = q.as_ptr().add(start);
            for v in 0..V {
                let p = _mm512_maskz_loadu_ps(masks[v], row_p.add(v * LANES));
                let q = _mm512_maskz_loadu_ps(masks[v], row_q.add(v * LANES));
                acc_p[v] = _mm512_fmadd_ps(p, x, acc_p[v]);
                acc_q[v] = _mm512_fmadd_ps(q, y, acc_q[v]);
            }
        }
    }
    for v in 0..V {
        let column = offset + v * LANES;
        // SAFETY: the masked stores write only columns below `width`, inside `sp`, `sq`.
        unsafe {
            _mm512_mask_storeu_ps(sp.as_mut_ptr().add(column), masks[v], acc_p[v]);
            _mm512_mask_storeu_ps(sq.as_mut_ptr().add(column), masks[v], acc_q[v]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transpose_swaps_rows_and_columns() {
        if !available() {
            return; // nothing to check without AVX-512
        }
        let tile: [[f32; LANES]; LANES] =
            std::array::from_fn(|i| std::array::from_fn(|j| (i * 16 + j) as f32));
        // SAFETY: AVX-512F is available; each row is 16 floats.
        let transposed = unsafe {
            let rows = transpose(tile.map(|row| _mm512_loadu_ps(row.as_ptr())));
            rows.map(|row| {
                let mut values = [0.0; LANES];
                _mm512_storeu_ps(values.as_mut_ptr(), row);
                values
            })
        };
        for (i, row) in transposed.iter().enumerate() {
            for (j, &value) in row.iter().enumerate() {
                assert_eq!(value, tile[j][i], "({i}, {j})");
            }
        }
    }
}
