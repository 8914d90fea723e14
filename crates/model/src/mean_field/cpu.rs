//! Host kernels of the spike-and-slab operation for the `flex` backend, skipping zero inputs.
//!
//! Both products of the operation are sums over the nonzero entries of a sparse matrix `S`
//! of rows of a pair of dense matrices `P`, `Q`:
//!
//! ```text
//! out_p[r] = Σ_k S[r,k] · P[k]      out_q[r] = Σ_k S[r,k]² · Q[k]      over S[r,k] != 0
//!
//! forward:   S = input      (rows: samples)       P, Q = meanᵀ, varianceᵀ   ->  G, Delta
//! backward:  S = inputᵀ     (rows: input units)   P, Q = dL/dG, dL/dDelta   ->  (dL/dmean)ᵀ, (dL/dvariance)ᵀ
//! ```
//!
//! Rows of `S` are listed as (column, value) pairs ([`SparseRows`]; for `inputᵀ` by a counting
//! sort of a block of input columns), and rows of `P` and `Q` are stored side by side
//! ([`Pairs`]), so that each nonzero reads two neighbouring rows while the output row stays
//! in registers. Work is split over samples (forward) or blocks of input columns (backward).
//! The chain rule to `m`, `xi`, `pi` follows the backward products. With AVX-512 (`f32`) the
//! inner loops are written with intrinsics; other CPUs and `f64` use portable loops.

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
    let moments_t = Pairs::transposed_moments(&params);
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
            T::gather(&SparseRows::of_rows(input, n_in), &moments_t, h, slope);
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
    let grad_pairs = Pairs::interleaved(grad_g.values(), grad_delta.values(), n_out);
    let mut grad_mean_t = vec![T::zero(); n_in * n_out];
    let mut grad_variance_t = vec![T::zero(); n_in * n_out];
    let columns = chunk_len(n_in, batch * n_out);
    let input = input.values();
    grad_mean_t
        .par_chunks_mut(columns * n_out)
        .zip(grad_variance_t.par_chunks_mut(columns * n_out))
        .enumerate()
        .for_each(|(task, (grad_mean_t, grad_variance_t))| {
            let block = task * columns..(task * columns + columns).min(n_in);
            let columns = SparseRows::of_columns(input, n_in, block);
            T::gather(&columns, &grad_pairs, grad_mean_t, grad_variance_t);
        });

    // The chain rule, in blocks of output rows and tiles of input columns, so that the
    // transposed products are read a cache line at a time.
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
    let rows = chunk_len(n_out, n_in * ELEMENTWISE_COST);
    grad_m
        .par_chunks_mut(rows * n_in)
        .zip(grad_xi.par_chunks_mut(rows * n_in))
        .zip(grad_pi.par_chunks_mut(rows * n_in))
        .enumerate()
        .for_each(|(task, ((grad_m, grad_xi), grad_pi))| {
            let outputs = task * rows..task * rows + grad_m.len() / n_in;
            for tile in (0..n_in).step_by(TRANSPOSE_TILE) {
                let tile = tile..(tile + TRANSPOSE_TILE).min(n_in);
                for (j, o) in outputs.clone().enumerate() {
                    for k in tile.clone() {
                        let (at, local) = (o * n_in + k, j * n_in + k);
                        let (m, xi, pi) = (m[at], xi[at], pi[at]);
                        let grad_mean = grad_mean_t[k * n_out + o];
                        let grad_variance = grad_variance_t[k * n_out + o];
                        let keep = T::one() - pi;
                        grad_m[local] = keep * (grad_mean + two * pi * m * grad_variance);
                        grad_xi[local] = keep * grad_variance;
                        grad_pi[local] =
                            ((T::one() - two * pi) * m * m - xi) * grad_variance - m * grad_mean;
                    }
                }
            }
        });
    let [grad_m, grad_xi, grad_pi] = grads.map(|values| flex_matrix(values, [n_out, n_in]));
    (grad_m, grad_xi, grad_pi)
}

/// Two `[rows, width]` matrices `P` and `Q` stored side by side, row `k` of `P` followed by
/// row `k` of `Q`: the kernels read both rows of an index together.
struct Pairs<T> {
    values: Vec<T>,
    rows: usize,
    width: usize,
}

impl<T: KernelFloat> Pairs<T> {
    /// `P` and `Q` given as row-major `[rows, width]` matrices.
    fn interleaved(p: &[T], q: &[T], width: usize) -> Self {
        assert!(p.len() == q.len() && p.len().is_multiple_of(width));
        let mut values = Vec::with_capacity(2 * p.len());
        for (p, q) in p.chunks_exact(width).zip(q.chunks_exact(width)) {
            values.extend_from_slice(p);
            values.extend_from_slice(q);
        }
        Self {
            values,
            rows: p.len() / width,
            width,
        }
    }

    /// `meanᵀ` and `varianceᵀ` (`[d_input, d_output]`) of the weights with parameters
    /// `[m, xi, pi]` (each `[d_output, d_input]`), in parallel blocks of input columns.
    fn transposed_moments(params: &[HostMatrix<T>; 3]) -> Self {
        let [m, xi, pi] = params;
        assert!(
            xi.shape == m.shape && pi.shape == m.shape,
            "m, xi, pi differ in shape"
        );
        let [n_out, n_in] = m.shape;
        let (m, xi, pi) = (m.values(), xi.values(), pi.values());
        let stride = 2 * n_out;
        let mut values = vec![T::zero(); n_in * stride];
        let columns = chunk_len(n_in, n_out * ELEMENTWISE_COST);
        values
            .par_chunks_mut(columns * stride)
            .enumerate()
            .for_each(|(task, values)| {
                let first = task * columns;
                for tile in (0..values.len() / stride).step_by(TRANSPOSE_TILE) {
                    let tile = tile..(tile + TRANSPOSE_TILE).min(values.len() / stride);
                    for o in 0..n_out {
                        for j in tile.clone() {
                            let at = o * n_in + first + j;
                            let keep = T::one() - pi[at];
                            values[j * stride + o] = keep * m[at];
                            values[j * stride + n_out + o] =
                                keep * (xi[at] + pi[at] * m[at] * m[at]);
                        }
                    }
                }
            });
        Self {
            values,
            rows: n_in,
            width: n_out,
        }
    }
}

/// Columns of a tile in which a matrix is read against its transpose.
const TRANSPOSE_TILE: usize = 16;

/// Cost of a parameter-sized elementwise pass per element, in multiply-adds, for
/// [`chunk_len`]: strided reads and several operations each.
const ELEMENTWISE_COST: usize = 16;

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

/// The nonzero entries of the rows of a sparse matrix, row after row: row `r` sums over
/// entries `offsets[r]..offsets[r + 1]`, each a column index (below `cols`) and a value.
struct SparseRows<T> {
    cols: usize,
    offsets: Vec<usize>,
    indices: Vec<u32>,
    values: Vec<T>,
}

impl<T: KernelFloat> SparseRows<T> {
    /// The rows of the row-major `[rows, cols]` matrix `dense`.
    fn of_rows(dense: &[T], cols: usize) -> Self {
        Self::of_row_slices(dense.chunks_exact(cols), cols)
    }

    /// The given rows of length `cols`.
    fn of_row_slices<'a>(rows: impl Iterator<Item = &'a [T]>, cols: usize) -> Self {
        let mut sparse = Self {
            cols,
            offsets: vec![0],
            indices: Vec::new(),
            values: Vec::new(),
        };
        let (mut indices, mut values) = (vec![0; cols + LANES], vec![T::zero(); cols + LANES]);
        for row in rows {
            assert_eq!(row.len(), cols, "rows of one length");
            let count = T::collect_nonzeros(row, &mut indices, &mut values);
            sparse.indices.extend_from_slice(&indices[..count]);
            sparse.values.extend_from_slice(&values[..count]);
            sparse.offsets.push(sparse.indices.len());
        }
        sparse
    }

    /// Columns `block` of the row-major matrix `dense` (rows of `width`), as the rows of
    /// their transpose: built by rows, then sorted by column (a counting sort).
    fn of_columns(dense: &[T], width: usize, block: std::ops::Range<usize>) -> Self {
        let by_rows = Self::of_row_slices(
            dense.chunks_exact(width).map(|row| &row[block.clone()]),
            block.len(),
        );
        let mut offsets = vec![0; block.len() + 1];
        for &c in &by_rows.indices {
            offsets[c as usize + 1] += 1;
        }
        for c in 0..block.len() {
            offsets[c + 1] += offsets[c];
        }
        let mut next = offsets.clone();
        let mut indices = vec![0; by_rows.indices.len()];
        let mut values = vec![T::zero(); by_rows.values.len()];
        for r in 0..by_rows.row_count() {
            let range = by_rows.offsets[r]..by_rows.offsets[r + 1];
            for (&c, &x) in by_rows.indices[range.clone()]
                .iter()
                .zip(&by_rows.values[range])
            {
                let slot = &mut next[c as usize];
                indices[*slot] = r as u32;
                values[*slot] = x;
                *slot += 1;
            }
        }
        Self {
            cols: by_rows.row_count(),
            offsets,
            indices,
            values,
        }
    }

    fn rows(&self) -> impl Iterator<Item = (&[u32], &[T])> {
        self.offsets
            .windows(2)
            .map(|w| (&self.indices[w[0]..w[1]], &self.values[w[0]..w[1]]))
    }

    fn row_count(&self) -> usize {
        self.offsets.len() - 1
    }
}

/// Element types the kernels run on (the others go through the composed operations), with
/// their inner loops. The defaults are portable; `f32` uses AVX-512 where the CPU has it.
trait KernelFloat: Float + Element + bytemuck::Pod + Send + Sync {
    /// Writes the positions and values of the nonzero entries of `row`, in order, to the
    /// fronts of `indices` and `values` (each at least `row.len() + LANES` long); returns how
    /// many there are.
    fn collect_nonzeros(row: &[Self], indices: &mut [u32], values: &mut [Self]) -> usize {
        portable::collect_nonzeros(row, indices, values)
    }

    /// `sp[r] = Σ_j x_j · P[k_j]` and `sq[r] = Σ_j x_j² · Q[k_j]` over the entries `(k_j, x_j)`
    /// of row `r` of `s`, for `pq` with `s.cols` rows and `sp`, `sq` `[s.rows, pq.width]`.
    fn gather(s: &SparseRows<Self>, pq: &Pairs<Self>, sp: &mut [Self], sq: &mut [Self]) {
        check_gather(s, pq, sp, sq);
        portable::gather(s, pq, sp, sq)
    }
}

impl KernelFloat for f64 {}

impl KernelFloat for f32 {
    fn collect_nonzeros(row: &[f32], indices: &mut [u32], values: &mut [f32]) -> usize {
        #[cfg(target_arch = "x86_64")]
        if avx512::available() {
            assert!(indices.len() >= row.len() + LANES && values.len() >= row.len() + LANES);
            // SAFETY: AVX-512F is available, and the buffers have the room the kernel needs.
            return unsafe { avx512::collect_nonzeros(row, indices, values) };
        }
        portable::collect_nonzeros(row, indices, values)
    }

    fn gather(s: &SparseRows<f32>, pq: &Pairs<f32>, sp: &mut [f32], sq: &mut [f32]) {
        check_gather(s, pq, sp, sq);
        #[cfg(target_arch = "x86_64")]
        if avx512::available() {
            // SAFETY: AVX-512F is available; `check_gather` checked that `pq` has `s.cols`
            // rows (every index of `s` is below `s.cols`) and `sp`, `sq` `s.rows` rows of
            // `pq.width`.
            return unsafe { avx512::gather(s, pq, sp, sq) };
        }
        portable::gather(s, pq, sp, sq)
    }
}

/// Checks the lengths of a [`KernelFloat::gather`].
fn check_gather<T: KernelFloat>(s: &SparseRows<T>, pq: &Pairs<T>, sp: &[T], sq: &[T]) {
    assert!(pq.rows == s.cols && pq.values.len() == 2 * pq.rows * pq.width);
    assert!(sp.len() == s.row_count() * pq.width && sq.len() == sp.len());
}

/// Loops for any CPU, written for the compiler to vectorise.
mod portable {
    use super::{KernelFloat, Pairs, SparseRows};

    /// See [`KernelFloat::collect_nonzeros`]. Branch-free: sparsity patterns of images are
    /// unpredictable, and a mispredicted branch per entry costs more than the products.
    pub(super) fn collect_nonzeros<T: KernelFloat>(
        row: &[T],
        indices: &mut [u32],
        values: &mut [T],
    ) -> usize {
        let mut count = 0;
        for (k, &x) in row.iter().enumerate() {
            indices[count] = k as u32;
            values[count] = x;
            count += usize::from(x != T::zero());
        }
        count
    }

    /// See [`KernelFloat::gather`].
    pub(super) fn gather<T: KernelFloat>(
        s: &SparseRows<T>,
        pq: &Pairs<T>,
        sp: &mut [T],
        sq: &mut [T],
    ) {
        let width = pq.width;
        let p = |k: u32| &pq.values[2 * width * k as usize..][..width];
        let q = |k: u32| &pq.values[2 * width * k as usize + width..][..width];
        let outputs = sp.chunks_exact_mut(width).zip(sq.chunks_exact_mut(width));
        for ((indices, values), (sp, sq)) in s.rows().zip(outputs) {
            sp.fill(T::zero());
            sq.fill(T::zero());
            accumulate(sp, p, indices, values, |x| x);
            accumulate(sq, q, indices, values, |x| x * x);
        }
    }

    /// `acc += Σ_j coefficient(values[j]) · row(indices[j])`, four rows at a time.
    fn accumulate<'a, T: KernelFloat>(
        acc: &mut [T],
        row: impl Fn(u32) -> &'a [T],
        indices: &[u32],
        values: &[T],
        coefficient: impl Fn(T) -> T,
    ) {
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
}

/// AVX-512F kernels for `f32`. Row tails shorter than a vector use masked loads and stores.
#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    use super::{LANES, Pairs, SparseRows};

    pub(super) fn available() -> bool {
        std::arch::is_x86_feature_detected!("avx512f")
    }

    /// Mask of the first `n` (at most 16) lanes.
    fn first_lanes(n: usize) -> __mmask16 {
        if n >= LANES { 0xffff } else { (1u16 << n) - 1 }
    }

    /// See `KernelFloat::collect_nonzeros`: 16 entries at a time, compressed in registers.
    ///
    /// # Safety
    /// AVX-512F must be available; `indices` and `values` must be at least `row.len() + 16`
    /// long.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn collect_nonzeros(
        row: &[f32],
        indices: &mut [u32],
        values: &mut [f32],
    ) -> usize {
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

    /// How many entries ahead [`gather_tile`] prefetches rows.
    const PREFETCH_DISTANCE: usize = 4;

    /// See `KernelFloat::gather`, row by row, each in passes over column tiles of up to
    /// `16 · TILE`.
    ///
    /// # Safety
    /// AVX-512F must be available; `pq` must have `s.cols` rows, `sp` and `sq` hold
    /// `s.row_count()` rows of `pq.width`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn gather(
        s: &SparseRows<f32>,
        pq: &Pairs<f32>,
        sp: &mut [f32],
        sq: &mut [f32],
    ) {
        let width = pq.width;
        let outputs = sp.chunks_exact_mut(width).zip(sq.chunks_exact_mut(width));
        for ((indices, values), (sp, sq)) in s.rows().zip(outputs) {
            let vectors = width.div_ceil(LANES);
            let mut first = 0;
            while first < vectors {
                let tile = (vectors - first).min(TILE);
                // SAFETY: forwarded; the indices are below `s.cols`, rows of `pq`.
                unsafe {
                    match tile {
                        1 => gather_tile::<1>(sp, sq, pq, indices, values, first),
                        2 => gather_tile::<2>(sp, sq, pq, indices, values, first),
                        3 => gather_tile::<3>(sp, sq, pq, indices, values, first),
                        4 => gather_tile::<4>(sp, sq, pq, indices, values, first),
                        5 => gather_tile::<5>(sp, sq, pq, indices, values, first),
                        6 => gather_tile::<6>(sp, sq, pq, indices, values, first),
                        _ => gather_tile::<TILE>(sp, sq, pq, indices, values, first),
                    }
                }
                first += tile;
            }
        }
    }

    /// Columns `16 · first` onwards (`V` vectors) of one output row of [`gather`].
    ///
    /// # Safety
    /// As [`gather`], for one row, with `16 · first` below `width = sp.len()` and every index
    /// a row of `pq`.
    #[target_feature(enable = "avx512f")]
    unsafe fn gather_tile<const V: usize>(
        sp: &mut [f32],
        sq: &mut [f32],
        pq: &Pairs<f32>,
        indices: &[u32],
        values: &[f32],
        first: usize,
    ) {
        let width = sp.len();
        let offset = first * LANES;
        let masks: [__mmask16; V] =
            std::array::from_fn(|v| first_lanes(width.saturating_sub(offset + v * LANES)));
        let mut acc_p = [_mm512_setzero_ps(); V];
        let mut acc_q = [_mm512_setzero_ps(); V];
        let base = pq.values.as_ptr();
        for (j, (&k, &x)) in indices.iter().zip(values).enumerate() {
            if let Some(&ahead) = indices.get(j + PREFETCH_DISTANCE) {
                let start = 2 * width * ahead as usize + offset;
                for v in 0..V {
                    // Prefetches never fault; the addresses stay inside the rows anyway.
                    let at = start + v * LANES;
                    _mm_prefetch::<_MM_HINT_T0>(base.wrapping_add(at).cast());
                    _mm_prefetch::<_MM_HINT_T0>(base.wrapping_add(at + width).cast());
                }
            }
            let x = _mm512_set1_ps(x);
            let x2 = _mm512_mul_ps(x, x);
            // SAFETY: rows `k` of P and Q lie inside `pq`; the masked loads read only their
            // columns from `offset` to `width`.
            unsafe {
                let row_p = base.add(2 * width * k as usize + offset);
                let row_q = row_p.add(width);
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
}
