//! Every inner loop of the flex kernels against the scalar equations of
//! [`crate::equations`] (moments, chain rule, noisy pre-activation) or a plain sum in `f64`
//! (the sparse products): the portable loops in `f32` and `f64`, the `f32` dispatch (the
//! AVX-512 loops on a CPU that has them, AVX2 ones on one that has only those), and the
//! AVX-512 and AVX2 loops directly where available.
//! Shapes are not multiples of the 16-lane tiles, and the data hold the zeros, spikes
//! (`pi` in {0, 1}) and vanishing `Delta` that the kernels treat specially.

#[cfg(target_arch = "x86_64")]
use super::blocks;
use super::kernels::KernelFloat;
use super::layout::{Coefficients, Columns, Params, Shape};
use super::portable;
use crate::equations::{DeltaFloor, FloorMode, noisy_preactivation, weight_grads, weight_moments};

/// A small deterministic generator (xorshift64*): uniform values in [0, 1).
struct Values(u64);

impl Values {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// `n` values: a third exactly zero, the rest in `[-1, 1)`.
    fn sparse(&mut self, n: usize) -> Vec<f64> {
        (0..n)
            .map(|_| {
                let u = self.next();
                if u < 1.0 / 3.0 {
                    0.0
                } else {
                    2.0 * self.next() - 1.0
                }
            })
            .collect()
    }

    /// `n` probabilities: a quarter 0, a quarter 1, the rest in (0, 1).
    fn pi(&mut self, n: usize) -> Vec<f64> {
        (0..n)
            .map(|_| match self.next() {
                u if u < 0.25 => 0.0,
                u if u < 0.5 => 1.0,
                _ => self.next(),
            })
            .collect()
    }
}

fn cast<T: KernelFloat>(values: &[f64]) -> Vec<T> {
    values.iter().map(|&v| T::from(v).unwrap()).collect()
}

/// `|a - b| <= tol (1 + |b|)`, naming `what` otherwise.
fn close<T: KernelFloat>(a: T, b: T, tol: f64, what: &str) {
    let (a, b): (f64, f64) = (
        num_traits::ToPrimitive::to_f64(&a).unwrap(),
        num_traits::ToPrimitive::to_f64(&b).unwrap(),
    );
    assert!(
        (a - b).abs() <= tol * (1.0 + b.abs()),
        "{what}: {a} against {b}"
    );
}

const N_OUT: usize = 37;
const N_IN: usize = 53;

struct Layer<T> {
    m: Vec<T>,
    xi: Vec<T>,
    pi: Vec<T>,
}

impl<T: KernelFloat> Layer<T> {
    fn new(seed: u64) -> Self {
        let mut v = Values(seed);
        let n = N_OUT * N_IN;
        let m = v.sparse(n);
        let xi: Vec<f64> = (0..n)
            .map(|_| if v.next() < 0.3 { 0.0 } else { 0.01 * v.next() })
            .collect();
        Self {
            m: cast(&m),
            xi: cast(&xi),
            pi: cast(&v.pi(n)),
        }
    }

    fn params(&self) -> Params<'_, T> {
        Params {
            m: &self.m,
            xi: &self.xi,
            pi: &self.pi,
            n_out: N_OUT,
            n_in: N_IN,
        }
    }
}

/// The loops under test for one element type: the dispatching ones and, for `f32`, the
/// portable and AVX-512 ones called directly.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Loops {
    Dispatch,
    Portable,
    #[cfg(target_arch = "x86_64")]
    Avx512,
    /// The AVX2 gather and scatter (the other loops have no AVX2 version of their own).
    #[cfg(target_arch = "x86_64")]
    Avx2,
}

fn loops_f32() -> Vec<Loops> {
    let mut loops = vec![Loops::Dispatch, Loops::Portable];
    #[cfg(target_arch = "x86_64")]
    if super::avx512::available() {
        loops.push(Loops::Avx512);
    }
    #[cfg(target_arch = "x86_64")]
    if super::avx2::available() {
        loops.push(Loops::Avx2);
    }
    loops
}

fn moments_case<T: KernelFloat>(
    tol: f64,
    run: impl Fn(Params<T>, std::ops::Range<usize>, &mut [T], &mut [T]),
) {
    let layer = Layer::<T>::new(7);
    for inputs in [0..16, 16..32, 48..53, 5..6] {
        let mut mean_t = vec![T::nan(); inputs.len() * N_OUT];
        let mut variance_t = mean_t.clone();
        run(layer.params(), inputs.clone(), &mut mean_t, &mut variance_t);
        for (k, i) in inputs.clone().enumerate() {
            for o in 0..N_OUT {
                let j = o * N_IN + i;
                let (mean, variance) = weight_moments(layer.m[j], layer.xi[j], layer.pi[j]);
                close(mean_t[k * N_OUT + o], mean, tol, "mean");
                close(variance_t[k * N_OUT + o], variance, tol, "variance");
            }
        }
    }
}

#[test]
fn moments_loops_match_the_equations() {
    moments_case::<f64>(0.0, |p, i, a, b| {
        portable::transposed_moments_rows(p, i, a, b)
    });
    for loops in loops_f32() {
        moments_case::<f32>(2e-7, |p, i, a, b| match loops {
            Loops::Dispatch => f32::transposed_moments_rows(p, i, a, b),
            // No AVX2 loop of its own: the dispatched one.
            #[cfg(target_arch = "x86_64")]
            Loops::Avx2 => f32::transposed_moments_rows(p, i, a, b),
            Loops::Portable => portable::transposed_moments_rows(p, i, a, b),
            #[cfg(target_arch = "x86_64")]
            Loops::Avx512 => {
                Shape::transposed_rows(p, i.clone(), [&*a, &*b]);
                // SAFETY: AVX-512F is available (checked by `loops_f32`); sizes checked.
                unsafe { super::avx512::transposed_moments_rows(p, i, a, b) }
            }
        });
    }
}

fn chain_rule_case<T: KernelFloat>(
    tol: f64,
    run: impl Fn(Params<T>, &[T], &[T], std::ops::Range<usize>, [&mut [T]; 3]),
) {
    let layer = Layer::<T>::new(11);
    let mut v = Values(5);
    // Transposed gradients `[n_in, n_out]`.
    let grad_mean_t: Vec<T> = cast(&v.sparse(N_OUT * N_IN));
    let grad_variance_t: Vec<T> = cast(&v.sparse(N_OUT * N_IN));
    for outputs in [0..16, 16..32, 32..37, 3..4] {
        let len = outputs.len() * N_IN;
        let (mut gm, mut gxi, mut gpi) = (
            vec![T::nan(); len],
            vec![T::nan(); len],
            vec![T::nan(); len],
        );
        run(
            layer.params(),
            &grad_mean_t,
            &grad_variance_t,
            outputs.clone(),
            [&mut gm, &mut gxi, &mut gpi],
        );
        for (r, o) in outputs.clone().enumerate() {
            for i in 0..N_IN {
                let j = o * N_IN + i;
                let expected = weight_grads(
                    layer.m[j],
                    layer.xi[j],
                    layer.pi[j],
                    grad_mean_t[i * N_OUT + o],
                    grad_variance_t[i * N_OUT + o],
                );
                let at = r * N_IN + i;
                close(gm[at], expected[0], tol, "dL/dm");
                close(gxi[at], expected[1], tol, "dL/dxi");
                close(gpi[at], expected[2], tol, "dL/dpi");
            }
        }
    }
}

#[test]
fn chain_rule_loops_match_the_equations() {
    chain_rule_case::<f64>(0.0, |p, a, b, o, g| {
        portable::chain_rule_rows(p, a, b, o, g)
    });
    for loops in loops_f32() {
        chain_rule_case::<f32>(1e-6, |p, a, b, o, g| match loops {
            Loops::Dispatch => f32::chain_rule_rows(p, a, b, o, g),
            #[cfg(target_arch = "x86_64")]
            Loops::Avx2 => f32::chain_rule_rows(p, a, b, o, g),
            Loops::Portable => portable::chain_rule_rows(p, a, b, o, g),
            #[cfg(target_arch = "x86_64")]
            Loops::Avx512 => {
                Shape::chain_rule_rows(p, [a, b], o.clone(), &g);
                // SAFETY: AVX-512F is available (checked by `loops_f32`); sizes checked.
                unsafe { super::avx512::chain_rule_rows(p, a, b, o, g) }
            }
        });
    }
}

fn noise_case<T: KernelFloat>(tol: f64, run: impl Fn(&mut [T], &mut [T], &[T], T, DeltaFloor)) {
    let mut v = Values(3);
    let n = 100;
    let g: Vec<T> = cast(&v.sparse(n));
    // Delta: zeros, tiny values around the floors, ordinary ones.
    let delta: Vec<T> = cast(
        &(0..n)
            .map(|i| match i % 4 {
                0 => 0.0,
                1 => 1e-21 * v.next(),
                _ => v.next(),
            })
            .collect::<Vec<_>>(),
    );
    let eps: Vec<T> = cast(&v.sparse(n));
    let scale = T::from(1.0 / 53f64.sqrt()).unwrap();
    for floor in [
        DeltaFloor::EXACT,
        DeltaFloor {
            value: 1e-20,
            mode: FloorMode::Clamp,
        },
        DeltaFloor {
            value: 1e-20,
            mode: FloorMode::Add,
        },
    ] {
        let (mut h, mut slope) = (g.clone(), delta.clone());
        run(&mut h, &mut slope, &eps, scale, floor);
        for i in 0..n {
            let (eh, es) = noisy_preactivation(g[i], delta[i], eps[i], scale, floor);
            close(h[i], eh, tol, "h");
            close(slope[i], es, tol, "dh/dDelta");
        }
    }
}

#[test]
fn noise_loops_match_the_equations() {
    noise_case::<f64>(0.0, portable::add_noise);
    for loops in loops_f32() {
        noise_case::<f32>(0.0, |h, s, e, scale, floor| match loops {
            Loops::Dispatch => f32::add_noise(h, s, e, scale, floor),
            #[cfg(target_arch = "x86_64")]
            Loops::Avx2 => f32::add_noise(h, s, e, scale, floor),
            Loops::Portable => portable::add_noise(h, s, e, scale, floor),
            #[cfg(target_arch = "x86_64")]
            // SAFETY: AVX-512F is available (checked by `loops_f32`).
            Loops::Avx512 => unsafe { super::avx512::add_noise(h, s, e, scale, floor) },
        });
    }
}

/// `sp = s · p` and `sq = t · q` (`t = s²` or its own matrix) in `f64`, row-major.
fn gathered(
    s: &[f64],
    t: Option<&[f64]>,
    p: &[f64],
    q: &[f64],
    inner: usize,
) -> (Vec<f64>, Vec<f64>) {
    let (rows, width) = (s.len() / inner, p.len() / inner);
    let mut sp = vec![0.0; rows * width];
    let mut sq = sp.clone();
    for r in 0..rows {
        for k in 0..inner {
            let a = s[r * inner + k];
            let b = t.map_or(a * a, |t| t[r * inner + k]);
            for w in 0..width {
                sp[r * width + w] += a * p[k * width + w];
                sq[r * width + w] += b * q[k * width + w];
            }
        }
    }
    (sp, sq)
}

fn gather_case<T: KernelFloat>(
    tol: f64,
    run: impl Fn(Coefficients<T>, usize, &[T], &[T], &mut [T], &mut [T]),
) {
    let mut v = Values(9);
    // One block of rows, and two whole blocks of the AVX-512 loop's 64 with a partial one.
    for (rows, inner, width) in [(7, 53, 37), (150, 21, 130)] {
        gather_shape(&mut v, tol, [rows, inner, width], &run);
    }
}

fn gather_shape<T: KernelFloat>(
    v: &mut Values,
    tol: f64,
    [rows, inner, width]: [usize; 3],
    run: &impl Fn(Coefficients<T>, usize, &[T], &[T], &mut [T], &mut [T]),
) {
    let s = v.sparse(rows * inner);
    let t = v.sparse(rows * inner);
    let (p, q) = (v.sparse(inner * width), v.sparse(inner * width));
    for second in [None, Some(&t[..])] {
        let (es, eq) = gathered(&s, second, &p, &q, inner);
        let (s_t, t_t, p_t, q_t) = (cast::<T>(&s), cast::<T>(&t), cast::<T>(&p), cast::<T>(&q));
        let c = Coefficients {
            first: &s_t,
            second: second.map(|_| &t_t[..]),
        };
        let (mut sp, mut sq) = (vec![T::nan(); rows * width], vec![T::nan(); rows * width]);
        run(c, inner, &p_t, &q_t, &mut sp, &mut sq);
        for i in 0..sp.len() {
            close(sp[i], T::from(es[i]).unwrap(), tol, "s · p");
            close(sq[i], T::from(eq[i]).unwrap(), tol, "t · q");
        }
    }
}

#[test]
fn gather_loops_match_plain_sums() {
    gather_case::<f64>(1e-12, |c, inner, p, q, sp, sq| {
        portable::gather_rows(Shape::gather(c, inner, p, q, sp, sq), c, p, q, sp, sq)
    });
    for loops in loops_f32() {
        gather_case::<f32>(1e-5, |c, inner, p, q, sp, sq| {
            let shape = Shape::gather(c, inner, p, q, sp, sq);
            match loops {
                Loops::Dispatch => f32::gather_rows(c, inner, p, q, sp, sq),
                Loops::Portable => portable::gather_rows(shape, c, p, q, sp, sq),
                #[cfg(target_arch = "x86_64")]
                // SAFETY: AVX-512F is available (checked by `loops_f32`); sizes checked.
                Loops::Avx512 => unsafe {
                    blocks::gather_rows::<super::avx512::Avx512>(shape, c, p, q, sp, sq)
                },
                #[cfg(target_arch = "x86_64")]
                // SAFETY: AVX2 and FMA are available (checked by `loops_f32`); sizes checked.
                Loops::Avx2 => unsafe {
                    blocks::gather_rows::<super::avx2::Avx2>(shape, c, p, q, sp, sq)
                },
            }
        });
    }
}

fn scatter_case<T: KernelFloat>(
    tol: f64,
    run: impl Fn(Columns<T>, &[T], &[T], &mut [T], &mut [T]),
) {
    let mut v = Values(13);
    for (rows, cols, width) in [(9, 53, 37), (150, 53, 130)] {
        scatter_shape(&mut v, tol, [rows, cols, width], &run);
    }
}

fn scatter_shape<T: KernelFloat>(
    v: &mut Values,
    tol: f64,
    [rows, cols, width]: [usize; 3],
    run: &impl Fn(Columns<T>, &[T], &[T], &mut [T], &mut [T]),
) {
    let s = v.sparse(rows * cols);
    let (p_rows, q_rows) = (v.sparse(rows * width), v.sparse(rows * width));
    for block in [0..53, 16..40, 50..53] {
        // Expected: out[k] = initial + Σ_r s[r, k] p_rows[r] (and s² q_rows).
        let initial = v.sparse(block.len() * width);
        let (mut ep, mut eq) = (initial.clone(), initial.clone());
        for r in 0..rows {
            for (b, k) in block.clone().enumerate() {
                let a = s[r * cols + k];
                for w in 0..width {
                    ep[b * width + w] += a * p_rows[r * width + w];
                    eq[b * width + w] += a * a * q_rows[r * width + w];
                }
            }
        }
        let s_t = cast::<T>(&s);
        let columns = Columns::new(&s_t, cols, block.clone());
        let (mut p_out, mut q_out) = (cast::<T>(&initial), cast::<T>(&initial));
        run(
            columns,
            &cast::<T>(&p_rows),
            &cast::<T>(&q_rows),
            &mut p_out,
            &mut q_out,
        );
        for i in 0..p_out.len() {
            close(p_out[i], T::from(ep[i]).unwrap(), tol, "sᵀ · p");
            close(q_out[i], T::from(eq[i]).unwrap(), tol, "(s²)ᵀ · q");
        }
    }
}

#[test]
fn scatter_loops_match_plain_sums() {
    scatter_case::<f64>(1e-12, |s, p, q, po, qo| {
        portable::scatter_rows(Shape::scatter(s, p, q, po, qo), s, p, q, po, qo)
    });
    for loops in loops_f32() {
        scatter_case::<f32>(1e-5, |s, p, q, po, qo| {
            let shape = Shape::scatter(s, p, q, po, qo);
            match loops {
                Loops::Dispatch => f32::scatter_rows(s, p, q, po, qo),
                Loops::Portable => portable::scatter_rows(shape, s, p, q, po, qo),
                #[cfg(target_arch = "x86_64")]
                // SAFETY: AVX-512F is available (checked by `loops_f32`); sizes checked.
                Loops::Avx512 => unsafe {
                    blocks::scatter_rows::<super::avx512::Avx512>(shape, s, p, q, po, qo)
                },
                #[cfg(target_arch = "x86_64")]
                // SAFETY: AVX2 and FMA are available (checked by `loops_f32`); sizes checked.
                Loops::Avx2 => unsafe {
                    blocks::scatter_rows::<super::avx2::Avx2>(shape, s, p, q, po, qo)
                },
            }
        });
    }
}

#[test]
fn density_probes_tell_sparse_from_dense_batches() {
    // Every fifth value nonzero (MNIST's pixels: 19%), over a batch of 500 images.
    let sparse: Vec<f32> = (0..500 * 784)
        .map(|i| if i % 5 == 0 { 0.5 } else { 0.0 })
        .collect();
    let fraction = super::nonzero_fraction(&sparse, 784);
    assert!((fraction - 0.2).abs() < 0.02, "{fraction}");
    assert!(fraction < super::FORWARD_DENSE_FROM);
    // Random bytes (CIFAR-10-like): a zero in 256.
    let dense: Vec<f64> = (0..200 * 3072).map(|i| ((i * 7) % 256) as f64).collect();
    let fraction = super::nonzero_fraction(&dense, 3072);
    assert!((fraction - 255.0 / 256.0).abs() < 0.01, "{fraction}");
    assert!(fraction >= super::FORWARD_DENSE_FROM);
    // Hidden ReLU outputs, half of them nonzero: the dense products too.
    let hidden: Vec<f32> = (0..500 * 1000u64)
        .map(|i| {
            if i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 63 == 0 {
                0.0
            } else {
                1.5
            }
        })
        .collect();
    let fraction = super::nonzero_fraction(&hidden, 1000);
    assert!((fraction - 0.5).abs() < 0.05, "{fraction}");
    assert!(fraction >= super::FORWARD_DENSE_FROM);
    // A batch of 1,024 rows, whose even stride would be the row width: one column all zero
    // (an always-blank pixel) must not decide the batch.
    let width = 64;
    let blank_first: Vec<f32> = (0..1024 * width)
        .map(|i| if i % width == 0 { 0.0 } else { 1.0 })
        .collect();
    let fraction = super::nonzero_fraction(&blank_first, width);
    assert!((fraction - 63.0 / 64.0).abs() < 0.01, "{fraction}");
    assert_eq!(super::nonzero_fraction::<f32>(&[], 3), 0.0);
}

/// The portable loops compiled for AVX2 and FMA give the plain loops' results bit for bit
/// (each `mul_add` is rounded once either way), in f32 and f64.
#[cfg(target_arch = "x86_64")]
#[test]
fn fma_compiled_loops_equal_the_plain_ones_bit_for_bit() {
    if !portable::fma::available() {
        return;
    }
    fn bits<T: KernelFloat>(v: &[T]) -> Vec<u64> {
        v.iter()
            .map(|&x| num_traits::ToPrimitive::to_f64(&x).unwrap().to_bits())
            .collect()
    }
    fn check<T: KernelFloat>() {
        let mut v = Values(21);
        let (rows, inner, width) = (7, 53, 37);
        let s = cast::<T>(&v.sparse(rows * inner));
        let t = cast::<T>(&v.sparse(rows * inner));
        let (p, q) = (
            cast::<T>(&v.sparse(inner * width)),
            cast::<T>(&v.sparse(inner * width)),
        );
        for second in [None, Some(&t[..])] {
            let c = Coefficients { first: &s, second };
            let run = |fma: bool| {
                let (mut sp, mut sq) =
                    (vec![T::zero(); rows * width], vec![T::zero(); rows * width]);
                let shape = Shape::gather(c, inner, &p, &q, &sp, &sq);
                if fma {
                    // SAFETY: the CPU has AVX2 and FMA (checked above).
                    unsafe { portable::fma::gather_rows(shape, c, &p, &q, &mut sp, &mut sq) }
                } else {
                    portable::gather_rows(shape, c, &p, &q, &mut sp, &mut sq)
                }
                (bits(&sp), bits(&sq))
            };
            assert_eq!(run(true), run(false), "gather_rows");
        }
        let cols = inner;
        let (p_rows, q_rows) = (
            cast::<T>(&v.sparse(rows * width)),
            cast::<T>(&v.sparse(rows * width)),
        );
        let initial = cast::<T>(&v.sparse(cols * width));
        let run = |fma: bool| {
            let columns = Columns::new(&s, cols, 0..cols);
            let (mut po, mut qo) = (initial.clone(), initial.clone());
            let shape = Shape::scatter(columns, &p_rows, &q_rows, &po, &qo);
            if fma {
                // SAFETY: the CPU has AVX2 and FMA (checked above).
                unsafe {
                    portable::fma::scatter_rows(shape, columns, &p_rows, &q_rows, &mut po, &mut qo)
                }
            } else {
                portable::scatter_rows(shape, columns, &p_rows, &q_rows, &mut po, &mut qo)
            }
            (bits(&po), bits(&qo))
        };
        assert_eq!(run(true), run(false), "scatter_rows");
    }
    check::<f32>();
    check::<f64>();
}

/// The AVX-512 and AVX2 gather and scatter add each output's terms in the order the
/// portable loops do, fused as theirs are, so that the results are the same bit for bit (a
/// change of blocking or tiling must keep the order).
#[cfg(target_arch = "x86_64")]
#[test]
fn vector_gather_and_scatter_equal_the_portable_loops_bit_for_bit() {
    if super::avx512::available() {
        block_kernels_equal_the_portable_loops::<super::avx512::Avx512>();
    }
    if super::avx2::available() {
        block_kernels_equal_the_portable_loops::<super::avx2::Avx2>();
    }
}

/// The gather and scatter of the kernel set `K`, whose CPU features the caller checked,
/// against the portable loops, bit for bit, on rows 130 wide (8 whole AVX-512 vectors and
/// one of 2 lanes; 16 whole AVX2 vectors and one of 2) and 128 wide (whole vectors only).
#[cfg(target_arch = "x86_64")]
fn block_kernels_equal_the_portable_loops<K: blocks::BlockKernels>() {
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    let mut v = Values(33);
    for width in [130, 128] {
        let (rows, inner) = (150, 70);
        let mut s = cast::<f32>(&v.sparse(rows * inner));
        let mut t = cast::<f32>(&v.sparse(rows * inner));
        // Rows without a nonzero at the ends of the gather's blocks of 64.
        for r in [0, 63, 64, 149] {
            s[r * inner..(r + 1) * inner].fill(0.0);
            t[r * inner..(r + 1) * inner].fill(0.0);
        }
        let (p, q) = (
            cast::<f32>(&v.sparse(inner * width)),
            cast::<f32>(&v.sparse(inner * width)),
        );
        for second in [None, Some(&t[..])] {
            let c = Coefficients { first: &s, second };
            let run = |vector: bool| {
                let (mut sp, mut sq) = (vec![0.0; rows * width], vec![0.0; rows * width]);
                let shape = Shape::gather(c, inner, &p, &q, &sp, &sq);
                if vector {
                    // SAFETY: the caller checked `K`'s CPU features; sizes checked.
                    unsafe { blocks::gather_rows::<K>(shape, c, &p, &q, &mut sp, &mut sq) }
                } else {
                    portable::gather_rows(shape, c, &p, &q, &mut sp, &mut sq)
                }
                (bits(&sp), bits(&sq))
            };
            assert_eq!(run(true), run(false), "gather_rows, width {width}");
        }
        let (p_rows, q_rows) = (
            cast::<f32>(&v.sparse(rows * width)),
            cast::<f32>(&v.sparse(rows * width)),
        );
        for block in [0..inner, 20..47, 5..5] {
            let initial = cast::<f32>(&v.sparse(block.len() * width));
            let run = |vector: bool| {
                let columns = Columns::new(&s, inner, block.clone());
                let (mut po, mut qo) = (initial.clone(), initial.clone());
                let shape = Shape::scatter(columns, &p_rows, &q_rows, &po, &qo);
                if vector {
                    // SAFETY: the caller checked `K`'s CPU features; sizes checked.
                    unsafe {
                        blocks::scatter_rows::<K>(
                            shape, columns, &p_rows, &q_rows, &mut po, &mut qo,
                        )
                    }
                } else {
                    portable::scatter_rows(shape, columns, &p_rows, &q_rows, &mut po, &mut qo)
                }
                (bits(&po), bits(&qo))
            };
            assert_eq!(run(true), run(false), "scatter_rows, width {width}");
        }
    }
}

/// The vector collections of nonzeros list what the portable one lists, in the same order,
/// with NaN counted as nonzero and -0 as zero, from any starting entry and for rows whose
/// length is not a multiple of a vector.
#[cfg(target_arch = "x86_64")]
#[test]
fn vector_collections_of_nonzeros_equal_the_portable_one() {
    use super::layout::Nonzeros;
    fn check<K: blocks::BlockKernels>() {
        let mut v = Values(5);
        for len in [0, 7, 8, 37, 784] {
            let mut row = cast::<f32>(&v.sparse(len));
            let mut second = cast::<f32>(&v.sparse(len));
            for (k, x) in row.iter_mut().enumerate() {
                match k % 11 {
                    3 => *x = f32::NAN,
                    5 => *x = -0.0,
                    _ => {}
                }
            }
            if len > 2 {
                second[1] = f32::NAN;
            }
            for t in [None, Some(&second[..])] {
                let at = 5;
                let mut expected = Nonzeros::<f32>::new(at + len);
                let n = portable::collect_nonzeros_at(&row, t, &mut expected, at);
                let mut found = Nonzeros::<f32>::new(at + len);
                // SAFETY: the caller checked `K`'s CPU features; `found` holds
                // `at + len + 16` entries.
                let count = unsafe { K::collect(&row, t, &mut found, at) };
                assert_eq!(count, n, "count, length {len}");
                let range = at..at + n;
                assert_eq!(
                    found.indices[range.clone()],
                    expected.indices[range.clone()]
                );
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(
                    bits(&found.first[range.clone()]),
                    bits(&expected.first[range.clone()])
                );
                assert_eq!(
                    bits(&found.second[range.clone()]),
                    bits(&expected.second[range])
                );
            }
        }
    }
    if super::avx512::available() {
        check::<super::avx512::Avx512>();
    }
    if super::avx2::available() {
        check::<super::avx2::Avx2>();
    }
}
