//! Host kernels of the spike-and-slab operation for the `flex` backend, skipping zero inputs.
//!
//! Forward, per sample `b` (in parallel over samples):
//!
//! ```text
//! G[b]     = Σ_k input[b,k]  · meanᵀ[k]           over the nonzero input[b,k]
//! Delta[b] = Σ_k input[b,k]² · varianceᵀ[k]
//! ```
//!
//! with `meanᵀ`, `varianceᵀ` `[d_input, d_output]` built once per call; a row's outputs stay
//! in registers while the rows they need stream through. Backward, per input column `k` (in
//! parallel over blocks of columns, each sample's nonzeros scattered into its block):
//!
//! ```text
//! (dL/dmean)ᵀ[k] += input[b,k] · dL/dG[b]        (dL/dvariance)ᵀ[k] += input[b,k]² · dL/dDelta[b]
//! ```
//!
//! followed by the chain rule to `m`, `xi`, `pi`. With AVX-512 (`f32`) the inner loops are
//! written with intrinsics; other CPUs and `f64` use portable loops.

use burn::backend::Flex;
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::tensor::{DType, Element, TensorData};
use num_traits::Float;
use rayon::prelude::*;

use super::{DELTA_FLOOR, MeanFieldBackend, composed_forward, composed_param_grads};

impl MeanFieldBackend for Flex {
    fn spike_slab_forward(
        input: FloatTensor<Self>,
        m: FloatTensor<Self>,
        xi: FloatTensor<Self>,
        pi: FloatTensor<Self>,
        eps: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        match input.dtype() {
            DType::F32 if is_wide(&m) => forward::<f32>(&input, [&m, &xi, &pi], &eps),
            DType::F64 if is_wide(&m) => forward::<f64>(&input, [&m, &xi, &pi], &eps),
            _ => composed_forward::<Self>(input, m, xi, pi, eps),
        }
    }

    fn spike_slab_param_grads(
        input: FloatTensor<Self>,
        m: FloatTensor<Self>,
        xi: FloatTensor<Self>,
        pi: FloatTensor<Self>,
        grad_g: FloatTensor<Self>,
        grad_delta: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        match input.dtype() {
            DType::F32 if is_wide(&m) => {
                param_grads::<f32>(&input, [&m, &xi, &pi], &grad_g, &grad_delta)
            }
            DType::F64 if is_wide(&m) => {
                param_grads::<f64>(&input, [&m, &xi, &pi], &grad_g, &grad_delta)
            }
            _ => composed_param_grads::<Self>(input, m, xi, pi, grad_g, grad_delta),
        }
    }
}

/// Whether a layer with parameters `m` (`[d_output, d_input]`) has at least one vector of
/// outputs. The kernels keep a row of outputs in vector registers and gain nothing on
/// narrower layers (a 10-class output layer), where the dense products are faster.
fn is_wide(m: &FlexTensor) -> bool {
    m.layout().shape()[0] >= LANES
}

/// `(h, dh/dDelta)`, see [`MeanFieldBackend::spike_slab_forward`].
fn forward<T: KernelFloat>(
    input: &FlexTensor,
    params: [&FlexTensor; 3],
    eps: &FlexTensor,
) -> (FlexTensor, FlexTensor) {
    let input = HostMatrix::<T>::new(input);
    let [batch, n_in] = input.shape;
    let params = params.map(HostMatrix::<T>::new);
    let [n_out, n_in_params] = params[0].shape;
    assert_eq!(n_in, n_in_params, "input width and layer width differ");
    let (mean, variance) = moments(&params);
    let mean_t = transpose(&mean, n_out, n_in);
    let variance_t = transpose(&variance, n_out, n_in);
    let eps = HostMatrix::<T>::new(eps);
    let scale = T::from((n_in as f64).sqrt().recip()).unwrap();
    let half_scale = T::from(0.5).unwrap() * scale;
    let floor = T::from(DELTA_FLOOR).unwrap();

    let mut h = vec![T::zero(); batch * n_out];
    let mut slope = vec![T::zero(); batch * n_out];
    let rows = chunk_len(batch, n_in * n_out);
    let (input, eps) = (input.values(), eps.values());
    h.par_chunks_mut(rows * n_out)
        .zip(slope.par_chunks_mut(rows * n_out))
        .zip(input.par_chunks(rows * n_in))
        .zip(eps.par_chunks(rows * n_out))
        .for_each(|(((h, slope), input), eps)| {
            // h and slope receive G and Delta first.
            T::gather_rows(input, n_in, &mean_t, &variance_t, h, slope);
            for ((h, slope), &eps) in h.iter_mut().zip(slope.iter_mut()).zip(eps) {
                let delta = *slope;
                let std = delta.max(floor).sqrt();
                *h = (*h + std * eps) * scale;
                *slope = if delta > floor {
                    eps * half_scale / std
                } else {
                    T::zero()
                };
            }
        });
    (
        flex_matrix(h, [batch, n_out]),
        flex_matrix(slope, [batch, n_out]),
    )
}

/// `(dL/dm, dL/dxi, dL/dpi)`, see [`MeanFieldBackend::spike_slab_param_grads`].
fn param_grads<T: KernelFloat>(
    input: &FlexTensor,
    params: [&FlexTensor; 3],
    grad_g: &FlexTensor,
    grad_delta: &FlexTensor,
) -> (FlexTensor, FlexTensor, FlexTensor) {
    let input = HostMatrix::<T>::new(input);
    let [batch, n_in] = input.shape;
    let grad_g = HostMatrix::<T>::new(grad_g);
    let grad_delta = HostMatrix::<T>::new(grad_delta);
    let n_out = grad_g.shape[1];
    assert_eq!(
        grad_g.shape,
        [batch, n_out],
        "gradient and input differ in batch"
    );
    assert_eq!(
        grad_delta.shape, grad_g.shape,
        "the two gradients differ in shape"
    );

    // (dL/dmean)ᵀ and (dL/dvariance)ᵀ, [d_input, d_output], in blocks of input columns.
    let mut grad_mean_t = vec![T::zero(); n_in * n_out];
    let mut grad_variance_t = vec![T::zero(); n_in * n_out];
    let columns = chunk_len(n_in, batch * n_out);
    let (input, grad_g, grad_delta) = (input.values(), grad_g.values(), grad_delta.values());
    grad_mean_t
        .par_chunks_mut(columns * n_out)
        .zip(grad_variance_t.par_chunks_mut(columns * n_out))
        .enumerate()
        .for_each(|(task, (grad_mean_t, grad_variance_t))| {
            let block = task * columns..(task * columns + columns).min(n_in);
            let input = Columns::new(input, n_in, block);
            T::scatter_rows(input, grad_g, grad_delta, grad_mean_t, grad_variance_t);
        });
    let grad_mean = transpose(&grad_mean_t, n_in, n_out);
    let grad_variance = transpose(&grad_variance_t, n_in, n_out);

    // The chain rule.
    let params = params.map(HostMatrix::<T>::new);
    assert_eq!(
        params[0].shape,
        [n_out, n_in],
        "parameter and gradient shapes differ"
    );
    let [m, xi, pi] = [0, 1, 2].map(|i| params[i].values());
    let mut grads = [0, 1, 2].map(|_| vec![T::zero(); n_out * n_in]);
    let [grad_m, grad_xi, grad_pi] = &mut grads;
    let two = T::from(2.0).unwrap();
    let inputs = m.iter().zip(xi).zip(pi).zip(&grad_mean).zip(&grad_variance);
    let outputs = grad_m
        .iter_mut()
        .zip(grad_xi.iter_mut())
        .zip(grad_pi.iter_mut());
    for (((((&m, &xi), &pi), &grad_mean), &grad_variance), ((grad_m, grad_xi), grad_pi)) in
        inputs.zip(outputs)
    {
        let keep = T::one() - pi;
        *grad_m = keep * (grad_mean + two * pi * m * grad_variance);
        *grad_xi = keep * grad_variance;
        *grad_pi = ((T::one() - two * pi) * m * m - xi) * grad_variance - m * grad_mean;
    }
    let [grad_m, grad_xi, grad_pi] = grads.map(|values| flex_matrix(values, [n_out, n_in]));
    (grad_m, grad_xi, grad_pi)
}

/// `(mean, variance)` of every weight from its `[m, xi, pi]`, all `[d_output, d_input]`.
fn moments<T: KernelFloat>(params: &[HostMatrix<T>; 3]) -> (Vec<T>, Vec<T>) {
    let [m, xi, pi] = params;
    assert!(
        xi.shape == m.shape && pi.shape == m.shape,
        "m, xi, pi differ in shape"
    );
    let len = m.values().len();
    let mut mean = vec![T::zero(); len];
    let mut variance = vec![T::zero(); len];
    let inputs = m.values().iter().zip(xi.values()).zip(pi.values());
    for (((&m, &xi), &pi), (mean, variance)) in inputs.zip(mean.iter_mut().zip(&mut variance)) {
        let keep = T::one() - pi;
        *mean = keep * m;
        *variance = keep * (xi + pi * m * m);
    }
    (mean, variance)
}

/// The transpose `[cols, rows]` of the row-major `[rows, cols]` matrix `src`, in tiles that
/// stay in cache.
fn transpose<T: KernelFloat>(src: &[T], rows: usize, cols: usize) -> Vec<T> {
    const TILE: usize = 16;
    let mut dst = vec![T::zero(); rows * cols];
    for r0 in (0..rows).step_by(TILE) {
        for c0 in (0..cols).step_by(TILE) {
            let c1 = (c0 + TILE).min(cols);
            for r in r0..(r0 + TILE).min(rows) {
                for (c, &x) in (c0..c1).zip(&src[r * cols + c0..r * cols + c1]) {
                    dst[c * rows + r] = x;
                }
            }
        }
    }
    dst
}

/// Parallel tasks per thread: enough to balance the load, few enough that starting them
/// stays cheap.
const TASKS_PER_THREAD: usize = 4;

/// Multiply-adds below which a parallel task is not worth starting.
const MIN_TASK_WORK: usize = 1 << 16;

/// Items per parallel task when `items`, each costing about `work` multiply-adds, are shared
/// out.
fn chunk_len(items: usize, work: usize) -> usize {
    let worth = (items * work / MIN_TASK_WORK).max(1);
    let tasks = (rayon::current_num_threads() * TASKS_PER_THREAD).min(worth);
    items.div_ceil(tasks).max(1)
}

fn flex_matrix<T: KernelFloat>(values: Vec<T>, shape: [usize; 2]) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape))
}

/// A row-major matrix on the host: the contiguous storage of a 2-d tensor.
struct HostMatrix<T> {
    tensor: FlexTensor,
    shape: [usize; 2],
    element: std::marker::PhantomData<T>,
}

impl<T: KernelFloat> HostMatrix<T> {
    fn new(tensor: &FlexTensor) -> Self {
        let dims = tensor.layout().shape();
        let tensor = if tensor.is_contiguous() {
            tensor.clone()
        } else {
            tensor.to_contiguous()
        };
        Self {
            tensor,
            shape: [dims[0], dims[1]],
            element: std::marker::PhantomData,
        }
    }

    fn values(&self) -> &[T] {
        self.tensor
            .as_slice()
            .expect("spike-and-slab kernel: a contiguous tensor of the dispatched dtype")
    }
}

/// Lanes of an AVX-512 vector of `f32`, the width of the kernels' column tiles.
const LANES: usize = 16;

/// Columns `block` of a row-major matrix with rows of `width` (a range within them).
#[derive(Clone, Copy)]
struct Columns<'a, T> {
    values: &'a [T],
    width: usize,
    start: usize,
    len: usize,
}

impl<'a, T> Columns<'a, T> {
    fn new(values: &'a [T], width: usize, block: std::ops::Range<usize>) -> Self {
        assert!(
            block.start <= block.end && block.end <= width && values.len().is_multiple_of(width)
        );
        Self {
            values,
            width,
            start: block.start,
            len: block.len(),
        }
    }

    fn rows(self) -> impl Iterator<Item = &'a [T]> {
        self.values
            .chunks_exact(self.width)
            .map(move |row| &row[self.start..self.start + self.len])
    }

    fn row_count(&self) -> usize {
        self.values.len() / self.width
    }
}

/// Element types the kernels run on (the others go through the composed operations), with
/// their inner loops. The defaults are portable; `f32` uses AVX-512 where the CPU has it.
/// Matrices are row-major slices.
trait KernelFloat: Float + Element + bytemuck::Pod + Send + Sync {
    /// `sp[r] = Σ_k s[r,k] · p[k]` and `sq[r] = Σ_k s[r,k]² · q[k]` over the nonzero `s[r,k]`,
    /// for `s` `[rows, inner]`, `p`, `q` `[inner, width]`, `sp`, `sq` `[rows, width]`.
    fn gather_rows(
        s: &[Self],
        inner: usize,
        p: &[Self],
        q: &[Self],
        sp: &mut [Self],
        sq: &mut [Self],
    ) {
        let shape = Shape::gather(s, inner, p, q, sp, sq);
        portable::gather_rows(shape, s, p, q, sp, sq)
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
        portable::scatter_rows(shape, s, p_rows, q_rows, p_out, q_out)
    }
}

impl KernelFloat for f64 {}

impl KernelFloat for f32 {
    fn gather_rows(s: &[f32], inner: usize, p: &[f32], q: &[f32], sp: &mut [f32], sq: &mut [f32]) {
        let shape = Shape::gather(s, inner, p, q, sp, sq);
        #[cfg(target_arch = "x86_64")]
        if avx512::available() {
            // SAFETY: AVX-512F is available; `Shape::gather` checked the lengths.
            return unsafe { avx512::gather_rows(shape, s, p, q, sp, sq) };
        }
        portable::gather_rows(shape, s, p, q, sp, sq)
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
            return unsafe { avx512::scatter_rows(shape, s, p_rows, q_rows, p_out, q_out) };
        }
        portable::scatter_rows(shape, s, p_rows, q_rows, p_out, q_out)
    }
}

/// Checked sizes of a kernel call: the length of the sparse rows, and of the dense ones.
#[derive(Clone, Copy)]
struct Shape {
    inner: usize,
    width: usize,
}

impl Shape {
    /// See [`KernelFloat::gather_rows`].
    fn gather<T>(s: &[T], inner: usize, p: &[T], q: &[T], sp: &[T], sq: &[T]) -> Self {
        assert!(inner > 0 && s.len().is_multiple_of(inner) && p.len().is_multiple_of(inner));
        let (rows, width) = (s.len() / inner, p.len() / inner);
        assert!(q.len() == p.len() && sp.len() == rows * width && sq.len() == sp.len());
        Self { inner, width }
    }

    /// See [`KernelFloat::scatter_rows`].
    fn scatter<T>(s: Columns<T>, p_rows: &[T], q_rows: &[T], p_out: &[T], q_out: &[T]) -> Self {
        let rows = s.row_count();
        assert!(rows > 0 && p_rows.len().is_multiple_of(rows));
        let width = p_rows.len() / rows;
        assert!(q_rows.len() == p_rows.len() && p_out.len() == s.len * width);
        assert!(q_out.len() == p_out.len());
        Self {
            inner: s.len,
            width,
        }
    }
}

/// Room for the nonzeros of a row of `len`: the vector kernels write whole vectors.
fn nonzero_buffers<T: KernelFloat>(len: usize) -> (Vec<u32>, Vec<T>) {
    (vec![0; len + LANES], vec![T::zero(); len + LANES])
}

/// Loops for any CPU, written for the compiler to vectorise.
mod portable {
    use super::{Columns, KernelFloat, Shape, nonzero_buffers};

    /// The positions and values of the nonzero entries of `row` written to the fronts of
    /// `indices` and `values`; returns how many. Branch-free: sparsity patterns of images
    /// are unpredictable, and a mispredicted branch per entry costs more than the products.
    fn collect_nonzeros<T: KernelFloat>(row: &[T], indices: &mut [u32], values: &mut [T]) -> usize {
        let mut count = 0;
        for (k, &x) in row.iter().enumerate() {
            indices[count] = k as u32;
            values[count] = x;
            count += usize::from(x != T::zero());
        }
        count
    }

    /// See [`KernelFloat::gather_rows`].
    pub(super) fn gather_rows<T: KernelFloat>(
        shape: Shape,
        s: &[T],
        p: &[T],
        q: &[T],
        sp: &mut [T],
        sq: &mut [T],
    ) {
        let (mut indices, mut values) = nonzero_buffers(shape.inner);
        let outputs = sp
            .chunks_exact_mut(shape.width)
            .zip(sq.chunks_exact_mut(shape.width));
        for (row, (sp, sq)) in s.chunks_exact(shape.inner).zip(outputs) {
            let count = collect_nonzeros(row, &mut indices, &mut values);
            let (indices, values) = (&indices[..count], &values[..count]);
            sp.fill(T::zero());
            sq.fill(T::zero());
            gather(sp, p, indices, values, |x| x);
            gather(sq, q, indices, values, |x| x * x);
        }
    }

    /// `acc += Σ_j coefficient(values[j]) · m[indices[j]]`, four rows at a time.
    fn gather<T: KernelFloat>(
        acc: &mut [T],
        m: &[T],
        indices: &[u32],
        values: &[T],
        coefficient: impl Fn(T) -> T,
    ) {
        let width = acc.len();
        let row = |k: u32| &m[k as usize * width..][..width];
        let quads = indices.chunks_exact(4).zip(values.chunks_exact(4));
        for (k, x) in quads {
            let c = [0, 1, 2, 3].map(|i| coefficient(x[i]));
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
        for (&k, &x) in indices[done..].iter().zip(&values[done..]) {
            let c = coefficient(x);
            for (a, &mk) in acc.iter_mut().zip(row(k)) {
                *a = mk.mul_add(c, *a);
            }
        }
    }

    /// See [`KernelFloat::scatter_rows`].
    pub(super) fn scatter_rows<T: KernelFloat>(
        shape: Shape,
        s: Columns<T>,
        p_rows: &[T],
        q_rows: &[T],
        p_out: &mut [T],
        q_out: &mut [T],
    ) {
        let width = shape.width;
        let (mut indices, mut values) = nonzero_buffers(shape.inner);
        let dense = p_rows.chunks_exact(width).zip(q_rows.chunks_exact(width));
        for (row, (p_row, q_row)) in s.rows().zip(dense) {
            let count = collect_nonzeros(row, &mut indices, &mut values);
            for (&k, &x) in indices[..count].iter().zip(&values[..count]) {
                let at = k as usize * width;
                for (out, &p) in p_out[at..at + width].iter_mut().zip(p_row) {
                    *out = p.mul_add(x, *out);
                }
                let x2 = x * x;
                for (out, &q) in q_out[at..at + width].iter_mut().zip(q_row) {
                    *out = q.mul_add(x2, *out);
                }
            }
        }
    }
}

/// AVX-512F kernels for `f32`. Row tails shorter than a vector use masked loads and stores.
#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    use super::{Columns, LANES, Shape, nonzero_buffers};

    pub(super) fn available() -> bool {
        std::arch::is_x86_feature_detected!("avx512f")
    }

    /// Mask of the first `n` (at most 16) lanes.
    fn first_lanes(n: usize) -> __mmask16 {
        if n >= LANES { 0xffff } else { (1u16 << n) - 1 }
    }

    /// The lane masks of `V` vectors covering columns `offset..width`.
    fn tile_masks<const V: usize>(offset: usize, width: usize) -> [__mmask16; V] {
        std::array::from_fn(|v| first_lanes(width.saturating_sub(offset + v * LANES)))
    }

    /// The positions and values of the nonzero (or NaN) entries of `row` written to the
    /// fronts of `indices` and `values`, 16 entries at a time compressed in registers;
    /// returns how many.
    ///
    /// # Safety
    /// AVX-512F must be available; `indices` and `values` must be at least `row.len() + 16`
    /// long.
    #[target_feature(enable = "avx512f")]
    unsafe fn collect_nonzeros(row: &[f32], indices: &mut [u32], values: &mut [f32]) -> usize {
        let lanes = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
        let mut count = 0;
        for start in (0..row.len()).step_by(LANES) {
            let load = first_lanes(row.len() - start);
            // SAFETY: the masked load reads only lanes inside `row`; each store writes 16
            // lanes at `count <= start`, inside the `row.len() + 16` of each buffer.
            count += unsafe {
                let x = _mm512_maskz_loadu_ps(load, row.as_ptr().add(start));
                let nonzero = _mm512_mask_cmp_ps_mask::<_CMP_NEQ_UQ>(load, x, _mm512_setzero_ps());
                let positions = _mm512_add_epi32(lanes, _mm512_set1_epi32(start as i32));
                _mm512_storeu_ps(
                    values.as_mut_ptr().add(count),
                    _mm512_maskz_compress_ps(nonzero, x),
                );
                _mm512_storeu_si512(
                    indices.as_mut_ptr().add(count).cast(),
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

    /// Runs `$tile::<V>($args..., first)` over the column tiles of a `$width`-wide row.
    macro_rules! in_tiles {
        ($width:expr, $tile:ident($($arg:expr),*)) => {{
            let vectors = $width.div_ceil(LANES);
            let mut first = 0;
            while first < vectors {
                let tile = (vectors - first).min(TILE);
                match tile {
                    1 => $tile::<1>($($arg),*, first),
                    2 => $tile::<2>($($arg),*, first),
                    3 => $tile::<3>($($arg),*, first),
                    4 => $tile::<4>($($arg),*, first),
                    5 => $tile::<5>($($arg),*, first),
                    6 => $tile::<6>($($arg),*, first),
                    _ => $tile::<TILE>($($arg),*, first),
                }
                first += tile;
            }
        }};
    }

    /// See `KernelFloat::gather_rows`.
    ///
    /// # Safety
    /// AVX-512F must be available, and the lengths those of `shape` (`Shape::gather`).
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn gather_rows(
        shape: Shape,
        s: &[f32],
        p: &[f32],
        q: &[f32],
        sp: &mut [f32],
        sq: &mut [f32],
    ) {
        let (mut indices, mut values) = nonzero_buffers(shape.inner);
        let outputs = sp
            .chunks_exact_mut(shape.width)
            .zip(sq.chunks_exact_mut(shape.width));
        for (row, (sp, sq)) in s.chunks_exact(shape.inner).zip(outputs) {
            // SAFETY: the buffers hold `inner + 16`; the indices found are below `inner`, the
            // rows of `p` and `q`, which are `width` long like `sp` and `sq`.
            unsafe {
                let count = collect_nonzeros(row, &mut indices, &mut values);
                let (indices, values) = (&indices[..count], &values[..count]);
                in_tiles!(shape.width, gather_tile(sp, sq, p, q, indices, values));
            }
        }
    }

    /// `sp`, `sq` columns `16 · first` onwards (`V` vectors) of one row of
    /// [`gather_rows`].
    ///
    /// # Safety
    /// As [`gather_rows`], for one row, with `16 · first` below `width = sp.len()`.
    #[target_feature(enable = "avx512f")]
    unsafe fn gather_tile<const V: usize>(
        sp: &mut [f32],
        sq: &mut [f32],
        p: &[f32],
        q: &[f32],
        indices: &[u32],
        values: &[f32],
        first: usize,
    ) {
        let width = sp.len();
        let offset = first * LANES;
        let masks = tile_masks::<V>(offset, width);
        let mut acc_p = [_mm512_setzero_ps(); V];
        let mut acc_q = [_mm512_setzero_ps(); V];
        for (j, (&k, &x)) in indices.iter().zip(values).enumerate() {
            if let Some(&ahead) = indices.get(j + PREFETCH_DISTANCE) {
                let start = ahead as usize * width + offset;
                for v in 0..V {
                    // Prefetches never fault; the addresses stay inside the row anyway.
                    let at = start + v * LANES;
                    _mm_prefetch::<_MM_HINT_T0>(p.as_ptr().wrapping_add(at).cast());
                    _mm_prefetch::<_MM_HINT_T0>(q.as_ptr().wrapping_add(at).cast());
                }
            }
            let x = _mm512_set1_ps(x);
            let x2 = _mm512_mul_ps(x, x);
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
                    acc_q[v] = _mm512_fmadd_ps(q, x2, acc_q[v]);
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

    /// See `KernelFloat::scatter_rows`.
    ///
    /// # Safety
    /// AVX-512F must be available, and the lengths those of `shape` (`Shape::scatter`).
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn scatter_rows(
        shape: Shape,
        s: Columns<f32>,
        p_rows: &[f32],
        q_rows: &[f32],
        p_out: &mut [f32],
        q_out: &mut [f32],
    ) {
        let width = shape.width;
        let (mut indices, mut values) = nonzero_buffers(shape.inner);
        let dense = p_rows.chunks_exact(width).zip(q_rows.chunks_exact(width));
        for (row, (p_row, q_row)) in s.rows().zip(dense) {
            // SAFETY: the buffers hold `inner + 16`; the indices found are below `inner`, the
            // rows of `p_out` and `q_out`, which are `width` long like `p_row` and `q_row`.
            unsafe {
                let count = collect_nonzeros(row, &mut indices, &mut values);
                let (indices, values) = (&indices[..count], &values[..count]);
                in_tiles!(
                    width,
                    scatter_tile(p_out, q_out, p_row, q_row, indices, values)
                );
            }
        }
    }

    /// Columns `16 · first` onwards (`V` vectors) of one row of [`scatter_rows`], whose
    /// `p_row`, `q_row` values stay in registers.
    ///
    /// # Safety
    /// As [`scatter_rows`], for one row, with `16 · first` below `width = p_row.len()`.
    #[target_feature(enable = "avx512f")]
    unsafe fn scatter_tile<const V: usize>(
        p_out: &mut [f32],
        q_out: &mut [f32],
        p_row: &[f32],
        q_row: &[f32],
        indices: &[u32],
        values: &[f32],
        first: usize,
    ) {
        let width = p_row.len();
        let offset = first * LANES;
        let masks = tile_masks::<V>(offset, width);
        // SAFETY: the masked loads and stores touch only columns `offset..width` of the two
        // rows and of the output rows `k`, which lie inside `p_out`, `q_out`.
        unsafe {
            let load = |row: &[f32], v: usize| {
                _mm512_maskz_loadu_ps(masks[v], row.as_ptr().add(offset + v * LANES))
            };
            let p: [__m512; V] = std::array::from_fn(|v| load(p_row, v));
            let q: [__m512; V] = std::array::from_fn(|v| load(q_row, v));
            for (&k, &x) in indices.iter().zip(values) {
                let x = _mm512_set1_ps(x);
                let x2 = _mm512_mul_ps(x, x);
                let start = k as usize * width + offset;
                let out_p = p_out.as_mut_ptr().add(start);
                let out_q = q_out.as_mut_ptr().add(start);
                for v in 0..V {
                    let at = out_p.add(v * LANES);
                    let sum = _mm512_fmadd_ps(p[v], x, _mm512_maskz_loadu_ps(masks[v], at));
                    _mm512_mask_storeu_ps(at, masks[v], sum);
                    let at = out_q.add(v * LANES);
                    let sum = _mm512_fmadd_ps(q[v], x2, _mm512_maskz_loadu_ps(masks[v], at));
                    _mm512_mask_storeu_ps(at, masks[v], sum);
                }
            }
        }
    }
}
