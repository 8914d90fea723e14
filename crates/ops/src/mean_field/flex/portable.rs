use std::ops::Range;

use super::kernels::KernelFloat;
use super::layout::{Coefficients, Columns, Nonzeros, Params, Shape};
use crate::equations::{DeltaFloor, noisy_preactivation, weight_grads, weight_moments};

/// The positions `k` where `row[k]` or `second[k]` (default `row[k]²`) is nonzero, with
/// both values, written to the fronts of `found`; returns how many. Branch-free:
/// sparsity patterns of images are unpredictable, and a mispredicted branch per entry
/// costs more than the products.
#[inline(always)]
fn collect_nonzeros<T: KernelFloat>(
    row: &[T],
    second: Option<&[T]>,
    found: &mut Nonzeros<T>,
) -> usize {
    collect_nonzeros_at(row, second, found, 0)
}

/// [`collect_nonzeros`] written to `found` from entry `at` on.
///
/// # Panics
/// If `found` holds fewer than `at + row.len()` entries.
#[inline(always)]
pub(super) fn collect_nonzeros_at<T: KernelFloat>(
    row: &[T],
    second: Option<&[T]>,
    found: &mut Nonzeros<T>,
    at: usize,
) -> usize {
    let end = at + row.len();
    let (indices, first, second_found) = (
        &mut found.indices[at..end],
        &mut found.first[at..end],
        &mut found.second[at..end],
    );
    let mut count = 0;
    for (k, &x) in row.iter().enumerate() {
        let y = second.map_or(x * x, |t| t[k]);
        indices[count] = k as u32;
        first[count] = x;
        second_found[count] = y;
        count += usize::from(x != T::zero() || y != T::zero());
    }
    count
}

/// See [`KernelFloat::add_noise`]. Branch-free, for the compiler to vectorise; inlined
/// into the AVX-512 version.
#[inline(always)]
pub(super) fn add_noise<T: KernelFloat>(
    h: &mut [T],
    slope: &mut [T],
    eps: &[T],
    scale: T,
    floor: DeltaFloor,
) {
    assert!(slope.len() == h.len() && eps.len() == h.len());
    for ((h, slope), &eps) in h.iter_mut().zip(slope.iter_mut()).zip(eps) {
        (*h, *slope) = noisy_preactivation(*h, *slope, eps, scale, floor);
    }
}

/// See [`KernelFloat::transposed_moments_rows`].
#[inline(always)]
pub(super) fn transposed_moments_rows<T: KernelFloat>(
    params: Params<T>,
    inputs: Range<usize>,
    mean_t: &mut [T],
    variance_t: &mut [T],
) {
    for o in 0..params.n_out {
        let at = o * params.n_in;
        let row = at + inputs.start..at + inputs.end;
        let (m, xi, pi) = (
            &params.m[row.clone()],
            &params.xi[row.clone()],
            &params.pi[row],
        );
        let rows = mean_t
            .chunks_exact_mut(params.n_out)
            .zip(variance_t.chunks_exact_mut(params.n_out));
        for (((mean_t, variance_t), &m), (&xi, &pi)) in rows.zip(m).zip(xi.iter().zip(pi)) {
            (mean_t[o], variance_t[o]) = weight_moments(m, xi, pi);
        }
    }
}

/// See [`KernelFloat::chain_rule_rows`].
#[inline(always)]
pub(super) fn chain_rule_rows<T: KernelFloat>(
    params: Params<T>,
    grad_mean_t: &[T],
    grad_variance_t: &[T],
    outputs: Range<usize>,
    grads: [&mut [T]; 3],
) {
    let [grad_m, grad_xi, grad_pi] = grads;
    let (n_out, n_in) = (params.n_out, params.n_in);
    let block = outputs.start * n_in..outputs.end * n_in;
    let (m, xi, pi) = (
        &params.m[block.clone()],
        &params.xi[block.clone()],
        &params.pi[block],
    );
    for k in 0..n_in {
        let grad_mean = &grad_mean_t[k * n_out..][outputs.clone()];
        let grad_variance = &grad_variance_t[k * n_out..][outputs.clone()];
        for (row, (&gm, &gv)) in grad_mean.iter().zip(grad_variance).enumerate() {
            let j = row * n_in + k;
            [grad_m[j], grad_xi[j], grad_pi[j]] = weight_grads(m[j], xi[j], pi[j], gm, gv);
        }
    }
}

/// See [`KernelFloat::gather_rows`].
#[inline(always)]
pub(super) fn gather_rows<T: KernelFloat>(
    shape: Shape,
    c: Coefficients<T>,
    p: &[T],
    q: &[T],
    sp: &mut [T],
    sq: &mut [T],
) {
    let mut found = Nonzeros::new(shape.inner);
    let outputs = sp
        .chunks_exact_mut(shape.width)
        .zip(sq.chunks_exact_mut(shape.width));
    for (r, (sp, sq)) in outputs.enumerate() {
        let (row, second) = c.row(r, shape.inner);
        let count = collect_nonzeros(row, second, &mut found);
        let indices = &found.indices[..count];
        sp.fill(T::zero());
        sq.fill(T::zero());
        gather(sp, p, indices, &found.first[..count]);
        gather(sq, q, indices, &found.second[..count]);
    }
}

/// `acc += Σ_j values[j] · m[indices[j]]`, four rows at a time.
#[inline(always)]
fn gather<T: KernelFloat>(acc: &mut [T], m: &[T], indices: &[u32], values: &[T]) {
    let width = acc.len();
    let row = |k: u32| &m[k as usize * width..][..width];
    let quads = indices.chunks_exact(4).zip(values.chunks_exact(4));
    for (k, c) in quads {
        for ((((a, &m0), &m1), &m2), &m3) in acc
            .iter_mut()
            .zip(row(k[0]))
            .zip(row(k[1]))
            .zip(row(k[2]))
            .zip(row(k[3]))
        {
            *a = m3.mul_add(
                c[3],
                m2.mul_add(c[2], m1.mul_add(c[1], m0.mul_add(c[0], *a))),
            );
        }
    }
    let done = indices.len() / 4 * 4;
    for (&k, &c) in indices[done..].iter().zip(&values[done..]) {
        for (a, &mk) in acc.iter_mut().zip(row(k)) {
            *a = mk.mul_add(c, *a);
        }
    }
}

/// See [`KernelFloat::scatter_rows`].
#[inline(always)]
pub(super) fn scatter_rows<T: KernelFloat>(
    shape: Shape,
    s: Columns<T>,
    p_rows: &[T],
    q_rows: &[T],
    p_out: &mut [T],
    q_out: &mut [T],
) {
    let width = shape.width;
    let mut found = Nonzeros::new(shape.inner);
    let dense = p_rows.chunks_exact(width).zip(q_rows.chunks_exact(width));
    for (row, (p_row, q_row)) in s.rows().zip(dense) {
        let count = collect_nonzeros(row, None, &mut found);
        let values = found.first[..count].iter().zip(&found.second[..count]);
        for (&k, (&x, &x2)) in found.indices[..count].iter().zip(values) {
            let at = k as usize * width;
            for (out, &p) in p_out[at..at + width].iter_mut().zip(p_row) {
                *out = p.mul_add(x, *out);
            }
            for (out, &q) in q_out[at..at + width].iter_mut().zip(q_row) {
                *out = q.mul_add(x2, *out);
            }
        }
    }
}

/// For each portable loop `name(args)`: `fma::name`, the loop compiled for AVX2 and FMA, and
/// `best::name`, which takes it where the CPU has them and the plain loop otherwise.
macro_rules! fma_versions {
    ($($name:ident($($arg:ident: $ty:ty),* $(,)?);)*) => {
        /// The portable loops compiled for AVX2 with FMA, for CPUs that have them but not
        /// AVX-512: without the `fma` target feature every `mul_add` is a call to the
        /// library's `fma`, one element at a time. Both round each fused multiply-add once, so
        /// the results are the plain loops' bit for bit (`tests.rs` checks it).
        #[cfg(target_arch = "x86_64")]
        pub(super) mod fma {
            use super::*;

            /// Whether the CPU has AVX2 and FMA.
            pub(in super::super) fn available() -> bool {
                std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
            }

            $(
                #[doc = concat!("[`super::", stringify!($name), "`] compiled for AVX2 and FMA.")]
                #[target_feature(enable = "avx2,fma")]
                pub(in super::super) fn $name<T: KernelFloat>($($arg: $ty),*) {
                    super::$name($($arg),*)
                }
            )*
        }

        /// The portable loops, compiled for AVX2 and FMA where the CPU has them ([`fma`]).
        pub(super) mod best {
            use super::*;

            $(
                #[doc = concat!("See [`super::", stringify!($name), "`].")]
                pub(in super::super) fn $name<T: KernelFloat>($($arg: $ty),*) {
                    #[cfg(target_arch = "x86_64")]
                    if super::fma::available() {
                        // SAFETY: the CPU has AVX2 and FMA.
                        return unsafe { super::fma::$name($($arg),*) };
                    }
                    super::$name($($arg),*)
                }
            )*
        }
    };
}

fma_versions! {
    gather_rows(shape: Shape, c: Coefficients<T>, p: &[T], q: &[T], sp: &mut [T], sq: &mut [T]);
    scatter_rows(
        shape: Shape,
        s: Columns<T>,
        p_rows: &[T],
        q_rows: &[T],
        p_out: &mut [T],
        q_out: &mut [T],
    );
    add_noise(h: &mut [T], slope: &mut [T], eps: &[T], scale: T, floor: DeltaFloor);
    transposed_moments_rows(params: Params<T>, inputs: Range<usize>, mean_t: &mut [T], variance_t: &mut [T]);
    chain_rule_rows(
        params: Params<T>,
        grad_mean_t: &[T],
        grad_variance_t: &[T],
        outputs: Range<usize>,
        grads: [&mut [T]; 3],
    );
}
