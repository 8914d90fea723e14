//! Host-side views of the operation's tensors: row-major matrices, column blocks, the
//! operands of a kernel call with their checked sizes, and how work is shared out.

use std::ops::Range;

use burn::backend::flex::FlexTensor;
use burn::tensor::TensorData;

use super::kernels::KernelFloat;
use crate::flex_host;

/// The parameters `[m, xi, pi]` of a layer: row-major `[n_out, n_in]` slices.
#[derive(Clone, Copy)]
pub(super) struct Params<'a, T> {
    pub(super) m: &'a [T],
    pub(super) xi: &'a [T],
    pub(super) pi: &'a [T],
    pub(super) n_out: usize,
    pub(super) n_in: usize,
}

impl<'a, T: KernelFloat> Params<'a, T> {
    pub(super) fn new(params: &'a [HostMatrix<T>; 3]) -> Self {
        let [n_out, n_in] = param_shape(params);
        let [m, xi, pi] = params.each_ref().map(HostMatrix::values);
        Self {
            m,
            xi,
            pi,
            n_out,
            n_in,
        }
    }
}

/// Parallel tasks per thread: enough to balance the load, few enough that starting them
/// stays cheap.
const TASKS_PER_THREAD: usize = 4;

/// Multiply-adds below which a parallel task is not worth starting.
const MIN_TASK_WORK: usize = 1 << 16;

/// Items per parallel task when `items`, each costing about `work` multiply-adds, are shared
/// out.
pub(super) fn chunk_len(items: usize, work: usize) -> usize {
    let worth = (items * work / MIN_TASK_WORK).max(1);
    let tasks = (rayon::current_num_threads() * TASKS_PER_THREAD).min(worth);
    items.div_ceil(tasks).max(1)
}

pub(super) fn flex_matrix<T: KernelFloat>(values: Vec<T>, shape: [usize; 2]) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape))
}

/// A row-major matrix on the host: the contiguous storage of a 2-d tensor.
pub(super) struct HostMatrix<T> {
    tensor: FlexTensor,
    pub(super) shape: [usize; 2],
    element: std::marker::PhantomData<T>,
}

impl<T: KernelFloat> HostMatrix<T> {
    pub(super) fn new(tensor: &FlexTensor) -> Self {
        let dims = tensor.layout().shape();
        Self {
            tensor: flex_host::contiguous(tensor.clone()),
            shape: [dims[0], dims[1]],
            element: std::marker::PhantomData,
        }
    }

    pub(super) fn values(&self) -> &[T] {
        flex_host::values(&self.tensor)
    }
}

/// Lanes of an AVX-512 vector of `f32`, the width of the kernels' column tiles.
pub(super) const LANES: usize = 16;

/// Columns `block` of a row-major matrix with rows of `width` (a range within them).
#[derive(Clone, Copy)]
pub(super) struct Columns<'a, T> {
    values: &'a [T],
    width: usize,
    start: usize,
    pub(super) len: usize,
}

impl<'a, T> Columns<'a, T> {
    pub(super) fn new(values: &'a [T], width: usize, block: Range<usize>) -> Self {
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

    pub(super) fn rows(self) -> impl Iterator<Item = &'a [T]> {
        self.values
            .chunks_exact(self.width)
            .map(move |row| &row[self.start..self.start + self.len])
    }

    pub(super) fn row_count(&self) -> usize {
        self.values.len() / self.width
    }
}

/// The sparse operand of a gather, `[rows, inner]`: the coefficients of the first sum and of
/// the second, which are the squares of the first (the forward pass: `Delta` from `input²`)
/// or a matrix of their own (the input gradient: `dL/dDelta`).
#[derive(Clone, Copy)]
pub(super) struct Coefficients<'a, T> {
    pub(super) first: &'a [T],
    pub(super) second: Option<&'a [T]>,
}

impl<'a, T: KernelFloat> Coefficients<'a, T> {
    /// Row `r` of `first` and, if given, of `second`, rows being `inner` long.
    pub(super) fn row(&self, r: usize, inner: usize) -> (&'a [T], Option<&'a [T]>) {
        let at = r * inner..(r + 1) * inner;
        (&self.first[at.clone()], self.second.map(|t| &t[at]))
    }
}

/// Checked sizes of a kernel call: the length of the sparse rows, and of the dense ones.
#[derive(Clone, Copy)]
pub(super) struct Shape {
    pub(super) inner: usize,
    pub(super) width: usize,
}

impl Shape {
    /// See [`KernelFloat::gather_rows`].
    pub(super) fn gather<T>(
        c: Coefficients<T>,
        inner: usize,
        p: &[T],
        q: &[T],
        sp: &[T],
        sq: &[T],
    ) -> Self {
        let s = c.first;
        assert!(inner > 0 && s.len().is_multiple_of(inner) && p.len().is_multiple_of(inner));
        assert!(c.second.is_none_or(|t| t.len() == s.len()));
        let (rows, width) = (s.len() / inner, p.len() / inner);
        assert!(q.len() == p.len() && sp.len() == rows * width && sq.len() == sp.len());
        Self { inner, width }
    }

    /// See [`KernelFloat::transposed_moments_rows`]; `outputs` are `mean_t` and
    /// `variance_t`.
    pub(super) fn transposed_rows<T>(params: Params<T>, inputs: Range<usize>, outputs: [&[T]; 2]) {
        assert!(inputs.len() <= LANES && inputs.end <= params.n_in);
        assert!(params.m.len() == params.n_out * params.n_in);
        assert!(params.xi.len() == params.m.len() && params.pi.len() == params.m.len());
        assert!(
            outputs
                .iter()
                .all(|o| o.len() == inputs.len() * params.n_out)
        );
    }

    /// See [`KernelFloat::chain_rule_rows`]; `grads_t` are `(dL/dmean)ᵀ`, `(dL/dvariance)ᵀ`.
    pub(super) fn chain_rule_rows<T>(
        params: Params<T>,
        grads_t: [&[T]; 2],
        outputs: Range<usize>,
        grads: &[&mut [T]; 3],
    ) {
        assert!(outputs.len() <= LANES && outputs.end <= params.n_out);
        assert!(params.m.len() == params.n_out * params.n_in);
        assert!(params.xi.len() == params.m.len() && params.pi.len() == params.m.len());
        assert!(grads_t.iter().all(|g| g.len() == params.m.len()));
        assert!(grads.iter().all(|g| g.len() == outputs.len() * params.n_in));
    }

    /// See [`KernelFloat::scatter_rows`].
    pub(super) fn scatter<T>(
        s: Columns<T>,
        p_rows: &[T],
        q_rows: &[T],
        p_out: &[T],
        q_out: &[T],
    ) -> Self {
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

/// The nonzeros of sparse rows: positions and both coefficients, one row's after another
/// (the AVX-512 gather holds a block of rows, its scatter a whole batch), in buffers with
/// room for `len` entries plus one vector (the vector kernels write whole vectors).
pub(super) struct Nonzeros<T> {
    pub(super) indices: Vec<u32>,
    pub(super) first: Vec<T>,
    pub(super) second: Vec<T>,
}

impl<T: KernelFloat> Nonzeros<T> {
    pub(super) fn new(len: usize) -> Self {
        Self {
            indices: vec![0; len + LANES],
            first: vec![T::zero(); len + LANES],
            second: vec![T::zero(); len + LANES],
        }
    }

    /// Makes room for `len` entries (the entries kept hold stale values).
    pub(super) fn make_room(&mut self, len: usize) {
        if self.indices.len() < len + LANES {
            *self = Self::new(len);
        }
    }
}

/// The shape `[d_output, d_input]` of `[m, xi, pi]`, checked to be the same for all three.
fn param_shape<T: KernelFloat>(params: &[HostMatrix<T>; 3]) -> [usize; 2] {
    let [m, xi, pi] = params;
    assert!(
        xi.shape == m.shape && pi.shape == m.shape,
        "m, xi, pi differ in shape"
    );
    m.shape
}

thread_local! {
    /// Each thread's buffers for [`Reused`], kept from operation to operation.
    static REUSED: std::cell::RefCell<Vec<Vec<u64>>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// A buffer of `len` values that an operation uses and does not return (the moments of the
/// weights, the squared input, the gradients of the moments): taken from the calling
/// thread's pool and given back when dropped, its values those a previous operation left,
/// so that the operation must write every value before it reads one. A new `vec![0; len]`
/// each time was set to zero first: 4.9 MB per pass over the 3072 × 200 layer's weights,
/// 3.7% of the CIFAR-10 net's training time in `memset`.
///
/// A buffer grows to the largest length asked of it and stays that long (a 784-1000-1000-10
/// network keeps a few 4 MB buffers per thread). It is not `Send`, so that it goes back to
/// the pool it came from.
pub(super) struct Reused<T> {
    storage: Vec<u64>,
    len: usize,
    /// `T`, and a type that is `Sync` but not `Send`.
    element: std::marker::PhantomData<(T, std::sync::MutexGuard<'static, ()>)>,
}

impl<T: KernelFloat> Reused<T> {
    pub(super) fn new(len: usize) -> Self {
        let words = (len * std::mem::size_of::<T>()).div_ceil(8);
        let mut storage = REUSED.with_borrow_mut(Vec::pop).unwrap_or_default();
        if storage.len() < words {
            storage.resize(words, 0);
        }
        Self {
            storage,
            len,
            element: std::marker::PhantomData,
        }
    }
}

impl<T: KernelFloat> std::ops::Deref for Reused<T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        &bytemuck::cast_slice(&self.storage)[..self.len]
    }
}

impl<T: KernelFloat> std::ops::DerefMut for Reused<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        &mut bytemuck::cast_slice_mut(&mut self.storage)[..self.len]
    }
}

impl<T> Drop for Reused<T> {
    fn drop(&mut self) {
        let storage = std::mem::take(&mut self.storage);
        // A thread being torn down has no pool to give the buffer back to.
        let _ = REUSED.try_with(|pool| pool.borrow_mut().push(storage));
    }
}
