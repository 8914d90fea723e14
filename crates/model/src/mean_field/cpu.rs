//! Host kernels of the spike-and-slab operation for the `flex` backend, skipping zeros.
//!
//! Forward, per sample `b` (in parallel over samples):
//!
//! ```text
//! G[b]     = Σ_k input[b,k]  · meanᵀ[k]           over the nonzero input[b,k]
//! Delta[b] = Σ_k input[b,k]² · varianceᵀ[k]
//! ```
//!
//! with `meanᵀ`, `varianceᵀ` `[d_input, d_output]` built once per call (16 × 16 tiles of the
//! parameters transposed in registers); a row's outputs stay in registers while the rows they
//! need stream through, and the noise term follows in vector registers. Backward, per input
//! column `k` (in parallel over blocks of columns, each sample's nonzeros scattered into its
//! block):
//!
//! ```text
//! (dL/dmean)ᵀ[k] += input[b,k] · dL/dG[b]        (dL/dvariance)ᵀ[k] += input[b,k]² · dL/dDelta[b]
//! ```
//!
//! followed by the chain rule to `m`, `xi`, `pi` (tiles transposed back in registers). The
//! input gradient gathers the rows of `mean` and `variance` over the nonzeros of `dL/dG`,
//! which is zero wherever the next ReLU is off. With AVX-512 (`f32`) the inner loops are
//! written with intrinsics or compiled for it; other CPUs and `f64` use portable loops.

use std::ops::Range;

use burn::backend::Flex;
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::tensor::{DType, Element, TensorData};
use num_traits::Float;
use rayon::prelude::*;

use crate::flex_host;

use super::{
    DELTA_FLOOR, MeanFieldBackend, composed_clamp, composed_forward, composed_input_grad,
    composed_output_grads, composed_param_grads,
};

impl MeanFieldBackend for Flex {
    fn spike_slab_forward(
        input: FloatTensor<Self>,
        m: FloatTensor<Self>,
        xi: FloatTensor<Self>,
        pi: FloatTensor<Self>,
        eps: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        match input.dtype() {
            DType::F32 if is_wide(outputs(&m)) => forward::<f32>(&input, [&m, &xi, &pi], &eps),
            DType::F64 if is_wide(outputs(&m)) => forward::<f64>(&input, [&m, &xi, &pi], &eps),
            _ => composed_forward::<Self>(input, m, xi, pi, eps),
        }
    }

    fn spike_slab_output_grads(
        grad: FloatTensor<Self>,
        slope: FloatTensor<Self>,
        scale: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        match grad.dtype() {
            DType::F32 => output_grads::<f32>(&grad, &slope, scale),
            DType::F64 => output_grads::<f64>(&grad, &slope, scale),
            _ => composed_output_grads::<Self>(grad, slope, scale),
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
            DType::F32 if is_wide(outputs(&m)) => {
                param_grads::<f32>(&input, [&m, &xi, &pi], &grad_g, &grad_delta)
            }
            DType::F64 if is_wide(outputs(&m)) => {
                param_grads::<f64>(&input, [&m, &xi, &pi], &grad_g, &grad_delta)
            }
            _ => composed_param_grads::<Self>(input, m, xi, pi, grad_g, grad_delta),
        }
    }

    fn spike_slab_input_grad(
        input: FloatTensor<Self>,
        m: FloatTensor<Self>,
        xi: FloatTensor<Self>,
        pi: FloatTensor<Self>,
        grad_g: FloatTensor<Self>,
        grad_delta: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let inputs = m.layout().shape()[1];
        match input.dtype() {
            DType::F32 if is_wide(inputs) => {
                input_grad::<f32>(&input, [&m, &xi, &pi], &grad_g, &grad_delta)
            }
            DType::F64 if is_wide(inputs) => {
                input_grad::<f64>(&input, [&m, &xi, &pi], &grad_g, &grad_delta)
            }
            _ => composed_input_grad::<Self>(input, m, xi, pi, grad_g, grad_delta),
        }
    }

    fn spike_slab_clamp(tensor: FloatTensor<Self>, min: f64, max: f64) -> FloatTensor<Self> {
        match tensor.dtype() {
            DType::F32 => clamp::<f32>(tensor, min, max),
            DType::F64 => clamp::<f64>(tensor, min, max),
            _ => composed_clamp::<Self>(tensor, min, max),
        }
    }
}

/// Below this, entries of `dL/dG` and `dL/dDelta` are set to zero (2^-100, about 7.9e-31).
const NEGLIGIBLE_GRADIENT: f64 = 7.888_609_052_210_118e-31;

/// `(dL/dG, dL/dDelta)`, see [`MeanFieldBackend::spike_slab_output_grads`], in one pass,
/// with entries below [`NEGLIGIBLE_GRADIENT`] set to zero. Once training fits its data, the
/// softmax gradient of most samples falls below the smallest normal number, and on x86 every
/// operation with a subnormal operand takes a slow microcode path: the paper run's last
/// epochs took twice as long. The threshold sits well above the subnormal range so that the
/// products with weights and activations stay normal too, and 22 orders of magnitude below
/// anything that moves an AdamW step (its `epsilon` is 1e-8); the kernels skip the zeros.
fn output_grads<T: KernelFloat>(
    grad: &FlexTensor,
    slope: &FlexTensor,
    scale: f64,
) -> (FlexTensor, FlexTensor) {
    const CHUNK: usize = 1 << 13;
    let (grad, slope) = (HostMatrix::<T>::new(grad), HostMatrix::<T>::new(slope));
    assert_eq!(
        grad.shape, slope.shape,
        "gradient and slope differ in shape"
    );
    let len = grad.values().len();
    let (mut grad_g, mut grad_delta) = (vec![T::zero(); len], vec![T::zero(); len]);
    let scale = T::from(scale).unwrap();
    let tiny = T::from(NEGLIGIBLE_GRADIENT).unwrap();
    let normal = |x: T| if x.abs() < tiny { T::zero() } else { x };
    grad_g
        .par_chunks_mut(CHUNK)
        .zip(grad_delta.par_chunks_mut(CHUNK))
        .zip(grad.values().par_chunks(CHUNK))
        .zip(slope.values().par_chunks(CHUNK))
        .for_each(|(((grad_g, grad_delta), grad), slope)| {
            let outputs = grad_g.iter_mut().zip(grad_delta.iter_mut());
            for ((g, d), (&x, &s)) in outputs.zip(grad.iter().zip(slope)) {
                *g = normal(x * scale);
                *d = normal(x * s);
            }
        });
    (
        flex_matrix(grad_g, grad.shape),
        flex_matrix(grad_delta, grad.shape),
    )
}

/// `tensor` clamped to `[min, max]`, in place unless its storage is shared, in parallel
/// chunks; NaN stays NaN.
fn clamp<T: KernelFloat>(tensor: FlexTensor, min: f64, max: f64) -> FlexTensor {
    const CHUNK: usize = 1 << 14;
    let mut tensor = flex_host::contiguous(tensor);
    let (min, max) = (T::from(min).unwrap(), T::from(max).unwrap());
    flex_host::values_mut::<T>(&mut tensor)
        .par_chunks_mut(CHUNK)
        .for_each(|values| clamp_slice(values, min, max));
    tensor
}

/// `values` clamped to `[min, max]` as two selects, which the compiler vectorises: whether
/// a value is out of bounds is a coin toss after a step, and mispredicted branches cost more
/// than the clamp.
fn clamp_slice<T: KernelFloat>(values: &mut [T], min: T, max: T) {
    for x in values {
        let above_min = if *x < min { min } else { *x };
        *x = if above_min > max { max } else { above_min };
    }
}

/// The output width of a layer with parameters `m` (`[d_output, d_input]`).
fn outputs(m: &FlexTensor) -> usize {
    m.layout().shape()[0]
}

/// Whether the rows a kernel accumulates, `width` long, fill at least one vector. The kernels
/// keep a row in vector registers and gain nothing on narrower ones (the outputs of a
/// 10-class layer), where the dense products are faster.
fn is_wide(width: usize) -> bool {
    width >= LANES
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
    let (mean_t, variance_t) = transposed_moments(&params);
    let eps = HostMatrix::<T>::new(eps);
    let scale = T::from((n_in as f64).sqrt().recip()).unwrap();

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
            let c = Coefficients {
                first: input,
                second: None,
            };
            T::gather_rows(c, n_in, &mean_t, &variance_t, h, slope);
            T::add_noise(h, slope, eps, scale);
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
    let params = params.map(HostMatrix::<T>::new);
    assert_eq!(
        params[0].shape,
        [n_out, n_in],
        "parameter and gradient shapes differ"
    );
    let [grad_m, grad_xi, grad_pi] = chain_rule(&params, &grad_mean_t, &grad_variance_t);
    let shape = [n_out, n_in];
    (
        flex_matrix(grad_m, shape),
        flex_matrix(grad_xi, shape),
        flex_matrix(grad_pi, shape),
    )
}

/// `dL/dinput`, see [`MeanFieldBackend::spike_slab_input_grad`]: per sample, the rows of
/// `mean` and `variance` (`[d_output, d_input]`) gathered over the nonzeros of `dL/dG`,
/// which is zero wherever the next ReLU is off (about half of a hidden layer).
fn input_grad<T: KernelFloat>(
    input: &FlexTensor,
    params: [&FlexTensor; 3],
    grad_g: &FlexTensor,
    grad_delta: &FlexTensor,
) -> FlexTensor {
    let input = HostMatrix::<T>::new(input);
    let [batch, n_in] = input.shape;
    let params = params.map(HostMatrix::<T>::new);
    let [n_out, n_in_params] = params[0].shape;
    assert_eq!(n_in, n_in_params, "input width and layer width differ");
    let grad_g = HostMatrix::<T>::new(grad_g);
    let grad_delta = HostMatrix::<T>::new(grad_delta);
    assert!(
        grad_g.shape == [batch, n_out] && grad_delta.shape == grad_g.shape,
        "gradient shapes differ from [batch, d_output]"
    );
    let (mean, variance) = moments(&params);
    let two = T::from(2.0).unwrap();

    let mut grad_input = vec![T::zero(); batch * n_in];
    let mut through_delta = vec![T::zero(); batch * n_in];
    let rows = chunk_len(batch, n_in * n_out);
    let (input, grad_g, grad_delta) = (input.values(), grad_g.values(), grad_delta.values());
    grad_input
        .par_chunks_mut(rows * n_in)
        .zip(through_delta.par_chunks_mut(rows * n_in))
        .zip(input.par_chunks(rows * n_in))
        .zip(
            grad_g
                .par_chunks(rows * n_out)
                .zip(grad_delta.par_chunks(rows * n_out)),
        )
        .for_each(
            |(((grad_input, through_delta), input), (grad_g, grad_delta))| {
                let c = Coefficients {
                    first: grad_g,
                    second: Some(grad_delta),
                };
                // grad_input receives dL/dG · mean first.
                T::gather_rows(c, n_out, &mean, &variance, grad_input, through_delta);
                for ((grad, &through_delta), &x) in
                    grad_input.iter_mut().zip(&*through_delta).zip(input)
                {
                    *grad = *grad + x * through_delta * two;
                }
            },
        );
    flex_matrix(grad_input, [batch, n_in])
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

/// `(mean, variance)` of one weight from its `m`, `xi`, `pi`.
#[inline(always)]
fn weight_moments<T: Float>(m: T, xi: T, pi: T) -> (T, T) {
    let keep = T::one() - pi;
    (keep * m, keep * (xi + pi * m * m))
}

/// `[dL/dm, dL/dxi, dL/dpi]` of one weight from its `m`, `xi`, `pi`, `dL/dmean` and
/// `dL/dvariance`.
#[inline(always)]
fn weight_grads<T: Float>(m: T, xi: T, pi: T, grad_mean: T, grad_variance: T) -> [T; 3] {
    let (one, two) = (T::one(), T::one() + T::one());
    let keep = one - pi;
    [
        keep * (grad_mean + two * pi * m * grad_variance),
        keep * grad_variance,
        ((one - two * pi) * m * m - xi) * grad_variance - m * grad_mean,
    ]
}

/// `(mean, variance)` `[d_output, d_input]` of the weights with `[m, xi, pi]`.
fn moments<T: KernelFloat>(params: &[HostMatrix<T>; 3]) -> (Vec<T>, Vec<T>) {
    let params = Params::new(params);
    params
        .m
        .iter()
        .zip(params.xi)
        .zip(params.pi)
        .map(|((&m, &xi), &pi)| weight_moments(m, xi, pi))
        .unzip()
}

/// `meanᵀ`, `varianceᵀ` `[d_input, d_output]` of the weights with `[m, xi, pi]`
/// `[d_output, d_input]`, in parallel blocks of inputs.
fn transposed_moments<T: KernelFloat>(params: &[HostMatrix<T>; 3]) -> (Vec<T>, Vec<T>) {
    let params = Params::new(params);
    let (n_out, n_in) = (params.n_out, params.n_in);
    let mut mean_t = vec![T::zero(); n_in * n_out];
    let mut variance_t = vec![T::zero(); n_in * n_out];
    let block = LANES * n_out;
    mean_t
        .par_chunks_mut(block)
        .zip(variance_t.par_chunks_mut(block))
        .enumerate()
        .for_each(|(task, (mean_t, variance_t))| {
            let first = task * LANES;
            let inputs = first..first + mean_t.len() / n_out;
            T::transposed_moments_rows(params, inputs, mean_t, variance_t);
        });
    (mean_t, variance_t)
}

/// `[dL/dm, dL/dxi, dL/dpi]` `[d_output, d_input]` from `(dL/dmean)ᵀ`, `(dL/dvariance)ᵀ`
/// `[d_input, d_output]` and the parameters `[m, xi, pi]`, in parallel blocks of outputs.
fn chain_rule<T: KernelFloat>(
    params: &[HostMatrix<T>; 3],
    grad_mean_t: &[T],
    grad_variance_t: &[T],
) -> [Vec<T>; 3] {
    let params = Params::new(params);
    let (n_out, n_in) = (params.n_out, params.n_in);
    let mut grads = [0, 1, 2].map(|_| vec![T::zero(); n_out * n_in]);
    let [grad_m, grad_xi, grad_pi] = &mut grads;
    let block = LANES * n_in;
    grad_m
        .par_chunks_mut(block)
        .zip(grad_xi.par_chunks_mut(block))
        .zip(grad_pi.par_chunks_mut(block))
        .enumerate()
        .for_each(|(task, ((grad_m, grad_xi), grad_pi))| {
            let first = task * LANES;
            let outputs = first..first + grad_m.len() / n_in;
            let grads = [grad_m, grad_xi, grad_pi];
            T::chain_rule_rows(params, grad_mean_t, grad_variance_t, outputs, grads);
        });
    grads
}

/// The parameters `[m, xi, pi]` of a layer: row-major `[n_out, n_in]` slices.
#[derive(Clone, Copy)]
struct Params<'a, T> {
    m: &'a [T],
    xi: &'a [T],
    pi: &'a [T],
    n_out: usize,
    n_in: usize,
}

impl<'a, T: KernelFloat> Params<'a, T> {
    fn new(params: &'a [HostMatrix<T>; 3]) -> Self {
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
        Self {
            tensor: flex_host::contiguous(tensor.clone()),
            shape: [dims[0], dims[1]],
            element: std::marker::PhantomData,
        }
    }

    fn values(&self) -> &[T] {
        flex_host::values(&self.tensor)
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

/// The sparse operand of a gather, `[rows, inner]`: the coefficients of the first sum and of
/// the second, which are the squares of the first (the forward pass: `Delta` from `input²`)
/// or a matrix of their own (the input gradient: `dL/dDelta`).
#[derive(Clone, Copy)]
struct Coefficients<'a, T> {
    first: &'a [T],
    second: Option<&'a [T]>,
}

impl<'a, T: KernelFloat> Coefficients<'a, T> {
    /// Row `r` of `first` and, if given, of `second`, rows being `inner` long.
    fn row(&self, r: usize, inner: usize) -> (&'a [T], Option<&'a [T]>) {
        let at = r * inner..(r + 1) * inner;
        (&self.first[at.clone()], self.second.map(|t| &t[at]))
    }
}

/// Element types the kernels run on (the others go through the composed operations), with
/// their inner loops. The defaults are portable; `f32` uses AVX-512 where the CPU has it.
/// Matrices are row-major slices.
trait KernelFloat: Float + Element + bytemuck::Pod + Send + Sync {
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
        portable::gather_rows(shape, c, p, q, sp, sq)
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

    /// `h = (G + sqrt(max(Delta, floor)) · eps) / sqrt(N)` and `slope = dh/dDelta`, zero where
    /// the floor holds, for one block of rows: `h` holds `G` and `slope` holds `Delta` on
    /// entry; `scale = 1 / sqrt(N)`.
    fn add_noise(h: &mut [Self], slope: &mut [Self], eps: &[Self], scale: Self) {
        portable::add_noise(h, slope, eps, scale)
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
        portable::transposed_moments_rows(params, inputs, mean_t, variance_t)
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
        portable::chain_rule_rows(params, grad_mean_t, grad_variance_t, outputs, grads)
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
            return unsafe { avx512::gather_rows(shape, c, p, q, sp, sq) };
        }
        portable::gather_rows(shape, c, p, q, sp, sq)
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

    fn add_noise(h: &mut [f32], slope: &mut [f32], eps: &[f32], scale: f32) {
        #[cfg(target_arch = "x86_64")]
        if avx512::available() {
            // SAFETY: AVX-512F is available.
            return unsafe { avx512::add_noise(h, slope, eps, scale) };
        }
        portable::add_noise(h, slope, eps, scale)
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
        portable::transposed_moments_rows(params, inputs, mean_t, variance_t)
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
        portable::chain_rule_rows(params, grad_mean_t, grad_variance_t, outputs, grads)
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
    fn gather<T>(c: Coefficients<T>, inner: usize, p: &[T], q: &[T], sp: &[T], sq: &[T]) -> Self {
        let s = c.first;
        assert!(inner > 0 && s.len().is_multiple_of(inner) && p.len().is_multiple_of(inner));
        assert!(c.second.is_none_or(|t| t.len() == s.len()));
        let (rows, width) = (s.len() / inner, p.len() / inner);
        assert!(q.len() == p.len() && sp.len() == rows * width && sq.len() == sp.len());
        Self { inner, width }
    }

    /// See [`KernelFloat::transposed_moments_rows`]; `outputs` are `mean_t` and
    /// `variance_t`.
    fn transposed_rows<T>(params: Params<T>, inputs: Range<usize>, outputs: [&[T]; 2]) {
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
    fn chain_rule_rows<T>(
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

/// The nonzeros of one sparse row: positions and both coefficients, at the fronts of buffers
/// with room for a row of `len` plus one vector (the vector kernels write whole vectors).
struct Nonzeros<T> {
    indices: Vec<u32>,
    first: Vec<T>,
    second: Vec<T>,
}

impl<T: KernelFloat> Nonzeros<T> {
    fn new(len: usize) -> Self {
        Self {
            indices: vec![0; len + LANES],
            first: vec![T::zero(); len + LANES],
            second: vec![T::zero(); len + LANES],
        }
    }
}

/// Loops for any CPU, written for the compiler to vectorise.
mod portable {
    use std::ops::Range;

    use super::{
        Coefficients, Columns, DELTA_FLOOR, KernelFloat, Nonzeros, Params, Shape, weight_grads,
        weight_moments,
    };

    /// The positions `k` where `row[k]` or `second[k]` (default `row[k]²`) is nonzero, with
    /// both values, written to the fronts of `found`; returns how many. Branch-free:
    /// sparsity patterns of images are unpredictable, and a mispredicted branch per entry
    /// costs more than the products.
    fn collect_nonzeros<T: KernelFloat>(
        row: &[T],
        second: Option<&[T]>,
        found: &mut Nonzeros<T>,
    ) -> usize {
        let mut count = 0;
        for (k, &x) in row.iter().enumerate() {
            let y = second.map_or(x * x, |t| t[k]);
            found.indices[count] = k as u32;
            found.first[count] = x;
            found.second[count] = y;
            count += usize::from(x != T::zero() || y != T::zero());
        }
        count
    }

    /// See [`KernelFloat::add_noise`]. Branch-free, for the compiler to vectorise; inlined
    /// into the AVX-512 version.
    #[inline(always)]
    pub(super) fn add_noise<T: KernelFloat>(h: &mut [T], slope: &mut [T], eps: &[T], scale: T) {
        assert!(slope.len() == h.len() && eps.len() == h.len());
        let floor = T::from(DELTA_FLOOR).unwrap();
        let half_scale = T::from(0.5).unwrap() * scale;
        for ((h, slope), &eps) in h.iter_mut().zip(slope.iter_mut()).zip(eps) {
            let delta = *slope;
            let above = delta > floor;
            let std = if above { delta } else { floor }.sqrt();
            *h = (*h + std * eps) * scale;
            *slope = if above {
                eps * half_scale / std
            } else {
                T::zero()
            };
        }
    }

    /// See [`KernelFloat::transposed_moments_rows`].
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
}

/// AVX-512F kernels for `f32`. Row tails shorter than a vector use masked loads and stores.
#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;
    use std::ops::Range;

    use super::{Coefficients, Columns, LANES, Nonzeros, Params, Shape};

    pub(super) fn available() -> bool {
        std::arch::is_x86_feature_detected!("avx512f")
    }

    /// `KernelFloat::add_noise`, the portable loop compiled for AVX-512.
    #[target_feature(enable = "avx512f")]
    pub(super) fn add_noise(h: &mut [f32], slope: &mut [f32], eps: &[f32], scale: f32) {
        super::portable::add_noise(h, slope, eps, scale)
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
    fn vector_grads(
        m: __m512,
        xi: __m512,
        pi: __m512,
        mean: __m512,
        variance: __m512,
    ) -> [__m512; 3] {
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
                    unsafe {
                        _mm512_mask_storeu_ps(grad.as_mut_ptr().add(out), input_lanes, value)
                    };
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
    /// NaN), with both values, written to the fronts of `found`, 16 entries at a time
    /// compressed in registers; returns how many.
    ///
    /// # Safety
    /// AVX-512F must be available; `second` must be as long as `row`, and `found` hold
    /// `Nonzeros::new(row.len())` or more.
    #[target_feature(enable = "avx512f")]
    unsafe fn collect_nonzeros(
        row: &[f32],
        second: Option<&[f32]>,
        found: &mut Nonzeros<f32>,
    ) -> usize {
        let lanes = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
        let mut count = 0;
        for start in (0..row.len()).step_by(LANES) {
            let load = first_lanes(row.len() - start);
            // SAFETY: the masked loads read only lanes inside `row` and `second`; each store
            // writes 16 lanes at `count <= start`, inside the `row.len() + 16` of each buffer.
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
                _mm512_storeu_ps(found.first.as_mut_ptr().add(count), compress(x));
                _mm512_storeu_ps(found.second.as_mut_ptr().add(count), compress(y));
                _mm512_storeu_si512(
                    found.indices.as_mut_ptr().add(count).cast(),
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

    /// The nonzeros found in one row: positions and the two coefficients.
    #[derive(Clone, Copy)]
    struct Found<'a> {
        indices: &'a [u32],
        first: &'a [f32],
        second: &'a [f32],
    }

    impl<'a> Found<'a> {
        fn new(found: &'a Nonzeros<f32>, count: usize) -> Self {
            Self {
                indices: &found.indices[..count],
                first: &found.first[..count],
                second: &found.second[..count],
            }
        }
    }

    /// See `KernelFloat::gather_rows`.
    ///
    /// # Safety
    /// AVX-512F must be available, and the lengths those of `shape` (`Shape::gather`).
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn gather_rows(
        shape: Shape,
        c: Coefficients<f32>,
        p: &[f32],
        q: &[f32],
        sp: &mut [f32],
        sq: &mut [f32],
    ) {
        let mut nonzeros = Nonzeros::new(shape.inner);
        let outputs = sp
            .chunks_exact_mut(shape.width)
            .zip(sq.chunks_exact_mut(shape.width));
        for (r, (sp, sq)) in outputs.enumerate() {
            let (row, second) = c.row(r, shape.inner);
            // SAFETY: the buffers hold `inner + 16`; the indices found are below `inner`, the
            // rows of `p` and `q`, which are `width` long like `sp` and `sq`.
            unsafe {
                let count = collect_nonzeros(row, second, &mut nonzeros);
                let found = Found::new(&nonzeros, count);
                in_tiles!(shape.width, gather_tile(sp, sq, p, q, found));
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
        found: Found,
        first: usize,
    ) {
        let width = sp.len();
        let offset = first * LANES;
        let masks = tile_masks::<V>(offset, width);
        let mut acc_p = [_mm512_setzero_ps(); V];
        let mut acc_q = [_mm512_setzero_ps(); V];
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
        let mut nonzeros = Nonzeros::new(shape.inner);
        let dense = p_rows.chunks_exact(width).zip(q_rows.chunks_exact(width));
        for (row, (p_row, q_row)) in s.rows().zip(dense) {
            // SAFETY: the buffers hold `inner + 16`; the indices found are below `inner`, the
            // rows of `p_out` and `q_out`, which are `width` long like `p_row` and `q_row`.
            unsafe {
                let count = collect_nonzeros(row, None, &mut nonzeros);
                let found = Found::new(&nonzeros, count);
                in_tiles!(width, scatter_tile(p_out, q_out, p_row, q_row, found));
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
        found: Found,
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
            let values = found.first.iter().zip(found.second);
            for (&k, (&x, &x2)) in found.indices.iter().zip(values) {
                let (x, x2) = (_mm512_set1_ps(x), _mm512_set1_ps(x2));
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
}
