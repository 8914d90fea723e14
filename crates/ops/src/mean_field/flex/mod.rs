//! Host kernels of the spike-and-slab operation for the `flex` backend, skipping zeros.
//! Batches where skipping zeros does not pay (the crossovers `FORWARD_DENSE_FROM`,
//! `PARAM_GRADS_DENSE_FROM`, `INPUT_GRAD_DENSE_FROM`, measured per operation: CIFAR-10's
//! pixels, most batches of hidden ReLU outputs) take `dense.rs`: the operation's two products
//! through `gemm` with the operands' strides, and one pass each for the element-wise work
//! around them. The forward pass and the parameter gradients of outputs narrower than a
//! vector (a 10-class layer) take the composed reference operations, as they always did;
//! so does the input gradient of inputs narrower than a vector.
//!
//! Forward, per sample `b` (in parallel over samples):
//!
//! ```text
//! G[b]     = Σ_k input[b,k]  · meanᵀ[k]           over the nonzero input[b,k]
//! Delta[b] = Σ_k input[b,k]² · varianceᵀ[k]
//! ```
//!
//! with `meanᵀ`, `varianceᵀ` `[d_input, d_output]` built once per call (16 × 16 tiles of the
//! parameters transposed in registers); blocks of 64 samples have their nonzeros collected
//! first, then each tile of outputs is accumulated in registers over the samples of the
//! block, so that its columns of `meanᵀ` and `varianceᵀ` are read from L2; the noise term
//! follows in vector registers. Backward, per input column `k` (in parallel over blocks of
//! columns, the block's nonzeros sorted by column, each column's outputs accumulated in
//! registers over the samples where it is nonzero, in increasing `b`):
//!
//! ```text
//! (dL/dmean)ᵀ[k] += input[b,k] · dL/dG[b]        (dL/dvariance)ᵀ[k] += input[b,k]² · dL/dDelta[b]
//! ```
//!
//! followed by the chain rule to `m`, `xi`, `pi` (tiles transposed back in registers). On
//! the kernels, the input gradient gathers the rows of `mean` and `variance` over the
//! nonzeros of `dL/dG`, which is zero wherever the next ReLU is off (the softmax gradient
//! into a 10-class layer is not, and takes the dense products). With AVX-512 (`f32`) the inner loops are
//! written with intrinsics or compiled for it; other CPUs and `f64` use portable loops.
//!
//! Files: `dense.rs` (the dense products), `layout.rs` (host views of the tensors, sizes
//! checked once per call, the per-thread buffers `Reused`), `kernels.rs` (the element types and their dispatch),
//! `portable.rs` and `avx512.rs` (the inner loops), `tests.rs` (every inner loop against
//! `crate::equations` and plain sums).

#[cfg(target_arch = "x86_64")]
mod avx2;
mod avx512;
#[cfg(target_arch = "x86_64")]
mod blocks;
mod dense;
mod kernels;
mod layout;
mod portable;
#[cfg(test)]
mod tests;

use burn::backend::Flex;
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::tensor::DType;
use rayon::prelude::*;

use super::MeanFieldBackend;
use super::reference::{
    composed_clamp, composed_forward, composed_input_grad, composed_output_grads,
    composed_param_grads,
};
use crate::equations::{DeltaFloor, weight_moments};
use crate::flex_host;
use kernels::KernelFloat;
use layout::{Coefficients, Columns, HostMatrix, LANES, Params, Reused, chunk_len, flex_matrix};

impl MeanFieldBackend for Flex {
    fn spike_slab_forward(
        input: FloatTensor<Self>,
        m: FloatTensor<Self>,
        xi: FloatTensor<Self>,
        pi: FloatTensor<Self>,
        eps: FloatTensor<Self>,
        floor: DeltaFloor,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let dtype = kernel_dtype(&[&input, &m, &xi, &pi, &eps]);
        let params = [&m, &xi, &pi];
        match (dtype, route(&input, outputs(&m), FORWARD_DENSE_FROM)) {
            (Some(DType::F32), Route::Sparse) => forward::<f32>(&input, params, &eps, floor),
            (Some(DType::F64), Route::Sparse) => forward::<f64>(&input, params, &eps, floor),
            (Some(DType::F32), Route::Dense) => dense::forward::<f32>(&input, params, &eps, floor),
            (Some(DType::F64), Route::Dense) => dense::forward::<f64>(&input, params, &eps, floor),
            _ => composed_forward::<Self>(input, m, xi, pi, eps, floor),
        }
    }

    fn spike_slab_output_grads(
        grad: FloatTensor<Self>,
        slope: FloatTensor<Self>,
        scale: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        match kernel_dtype(&[&grad, &slope]) {
            Some(DType::F32) => output_grads::<f32>(&grad, &slope, scale),
            Some(DType::F64) => output_grads::<f64>(&grad, &slope, scale),
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
        let dtype = kernel_dtype(&[&input, &m, &xi, &pi, &grad_g, &grad_delta]);
        let params = [&m, &xi, &pi];
        let (g, d) = (&grad_g, &grad_delta);
        match (dtype, route(&input, outputs(&m), PARAM_GRADS_DENSE_FROM)) {
            (Some(DType::F32), Route::Sparse) => param_grads::<f32>(&input, params, g, d),
            (Some(DType::F64), Route::Sparse) => param_grads::<f64>(&input, params, g, d),
            (Some(DType::F32), Route::Dense) => dense::param_grads::<f32>(&input, params, g, d),
            (Some(DType::F64), Route::Dense) => dense::param_grads::<f64>(&input, params, g, d),
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
        // The input gradient gathers rows of the moments over the nonzeros of `dL/dG`, whose
        // density the ReLU above sets; its rows are the layer's inputs.
        let inputs = m.layout().shape()[1];
        let params = [&m, &xi, &pi];
        let (g, d) = (&grad_g, &grad_delta);
        let dtype = kernel_dtype(&[&input, &m, &xi, &pi, &grad_g, &grad_delta]);
        let route = route(g, inputs, INPUT_GRAD_DENSE_FROM);
        match (dtype, route) {
            (Some(DType::F32), Route::Sparse) => input_grad::<f32>(&input, params, g, d),
            (Some(DType::F64), Route::Sparse) => input_grad::<f64>(&input, params, g, d),
            (Some(DType::F32), Route::Dense) => dense::input_grad::<f32>(&input, params, g, d),
            (Some(DType::F64), Route::Dense) => dense::input_grad::<f64>(&input, params, g, d),
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
    // The `unflushed` build (a measurement of what the flush changes) keeps every value.
    let tiny = T::from(if cfg!(feature = "unflushed") {
        0.0
    } else {
        NEGLIGIBLE_GRADIENT
    })
    .unwrap();
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

/// The float type all `tensors` share, if they share one: the kernels read every operand
/// as the same type (mixed types go through the composed operations).
fn kernel_dtype(tensors: &[&FlexTensor]) -> Option<DType> {
    let dtype = tensors.first()?.dtype();
    tensors.iter().all(|t| t.dtype() == dtype).then_some(dtype)
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

/// The fraction of nonzero inputs from which a batch's forward pass goes through the dense
/// products (`dense.rs`) instead of the kernels that skip zeros; [`PARAM_GRADS_DENSE_FROM`]
/// and [`INPUT_GRAD_DENSE_FROM`] are the same for the two gradients (the input gradient's
/// sparse operand is `dL/dG`, zero wherever the ReLU above is off). The crossovers measured
/// on this project's 2-core AVX-512 machine by `cargo bench -p credit-ops --features flex
/// --bench layer` (random inputs and gradients of the given density, MNIST's first 500
/// training images for the 784-input layers; the fastest of 15 calls in each of 3
/// alternating runs of each route, [`forced_route`]), dense / sparse milliseconds:
///
/// | layer, batch | density | forward | parameter gradients | input gradient |
/// | --- | --- | --- | --- | --- |
/// | 784 → 1000, 500 (MNIST) | 0.19 | 9.04 / 4.71 | 9.00 / 5.22 |  |
/// | 1000 → 1000, 500 | 0.05 | 11.47 / 3.20 | 12.19 / 3.94 | 11.17 / 2.19 |
/// |  | 0.10 | 12.37 / 4.76 | 12.14 / 5.29 | 9.99 / 3.44 |
/// |  | 0.15 | 11.28 / 5.72 | 11.88 / 6.52 | 10.06 / 4.78 |
/// |  | 0.20 | 11.38 / 7.24 | 12.01 / 7.96 | 10.47 / 6.14 |
/// |  | 0.30 | 11.25 / 9.83 | 12.47 / 9.99 | 10.35 / 8.74 |
/// |  | 0.40 | 11.71 / 12.76 | 12.29 / 13.07 | 10.22 / 11.37 |
/// |  | 0.50 | 11.96 / 15.27 | 12.13 / 15.46 | 10.95 / 13.99 |
/// |  | 0.70 | 11.49 / 20.17 | 12.21 / 19.89 | 10.07 / 19.08 |
/// | 784 → 100, 500 (MNIST) | 0.19 | 0.98 / 0.46 | 0.86 / 0.66 |  |
/// | 100 → 100, 500 | 0.10 | 0.16 / 0.09 | 0.14 / 0.10 | 0.14 / 0.08 |
/// |  | 0.20 | 0.19 / 0.12 | 0.14 / 0.13 | 0.14 / 0.10 |
/// |  | 0.30 | 0.15 / 0.14 | 0.14 / 0.16 | 0.17 / 0.13 |
/// |  | 0.50 | 0.20 / 0.18 | 0.18 / 0.22 | 0.15 / 0.17 |
/// | 3072 → 200, 200 | 1.00 | 3.08 / 8.77 | 4.65 / 7.81 | 2.79 / 7.24 |
/// | 200 → 200, 200 | 0.20 | 0.23 / 0.15 | 0.21 / 0.17 | 0.20 / 0.13 |
/// |  | 0.50 | 0.21 / 0.26 | 0.21 / 0.29 | 0.19 / 0.24 |
/// | 500 → 500, 500 | 0.10 | 2.55 / 0.98 | 2.70 / 1.02 | 2.40 / 0.86 |
/// |  | 0.20 | 2.68 / 1.58 | 3.00 / 1.69 | 2.44 / 1.45 |
/// |  | 0.30 | 2.62 / 2.20 | 2.76 / 2.29 | 2.56 / 2.03 |
/// |  | 0.50 | 2.73 / 3.47 | 2.99 / 3.59 | 2.71 / 3.18 |
///
/// An earlier run of the 100- to 1000-unit rows put the forward pass's and the parameter
/// gradients' crossovers within 0.05 of the same places: the forward pass about 0.35
/// (0.3-0.4 on 1000 units, about 0.5 on 100), the parameter gradients 0.3-0.4. The input
/// gradient's two sparse operands have their zeros in the same places (`dL/dDelta` is
/// `dL/dh` times the slope, `dL/dG` is `dL/dh` scaled), and its crossover is 0.3-0.4. The
/// dense forward pass of 1000 → 1000 is 11.4 ms against 9.2 ms for its two products
/// alone. MNIST's pixels (17-21% of a batch nonzero) stay on the kernels; hidden ReLU
/// outputs (22-64% in a 784-1000-1000-10 network's first two epochs, 38-77% in the paper's)
/// mostly take the dense products, and so does the softmax gradient into a 10-class layer.
const FORWARD_DENSE_FROM: f64 = 0.35;

/// See [`FORWARD_DENSE_FROM`].
const PARAM_GRADS_DENSE_FROM: f64 = 0.33;

/// See [`FORWARD_DENSE_FROM`].
const INPUT_GRAD_DENSE_FROM: f64 = 0.35;

/// How an operation of a layer runs on flex.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Route {
    /// The kernels that skip zeros, on the whole layer.
    Sparse,
    /// The dense products (`dense.rs`).
    Dense,
    /// The composed reference operations: rows narrower than a vector ([`is_wide`]), as
    /// before there were dense products, so that the forward pass and the parameter
    /// gradients of a 10-class output layer compute what they always did.
    Composed,
}

/// How an operation whose sparse operand is `sparse` (`[batch, inner]`: the input of the
/// forward pass and of the parameter gradients, `dL/dG` of the input gradient) and whose
/// accumulated rows are `width` long (the outputs; the inputs, for the input gradient) runs:
/// the kernels that skip zeros where the rows fill a vector ([`is_wide`]) and `sparse` has
/// fewer than `dense_from` nonzeros, the composed reference for rows narrower than a
/// vector, the dense products for the rest ([`forced_route`] overrides the choice between
/// the last two).
///
/// The dense products run two at a time on one thread each (`product_pair`); before they
/// did, the kernels were as fast on the hidden layers of 784-1000-1000-10 too, and run on
/// blocks of outputs whose moments fit in 1 MiB they were no faster.
fn route(sparse: &FlexTensor, width: usize, dense_from: f64) -> Route {
    if !is_wide(width) {
        return Route::Composed;
    }
    if let Some(forced) = forced_route() {
        return forced;
    }
    match density(sparse) {
        Some(f) if f < dense_from => Route::Sparse,
        _ => Route::Dense,
    }
}

/// The route forced on every operation that has a choice, for measurements only: the
/// environment variable `CREDIT_FLEX_ROUTE`, `dense` or `sparse` (any other value, or none,
/// leaves the choice to the crossovers), read once per process. The bench
/// `crates/ops/benches/layer.rs` times each operation both ways through it.
fn forced_route() -> Option<Route> {
    static FORCED: std::sync::OnceLock<Option<Route>> = std::sync::OnceLock::new();
    *FORCED.get_or_init(|| match std::env::var("CREDIT_FLEX_ROUTE").as_deref() {
        Ok("dense") => Some(Route::Dense),
        Ok("sparse") => Some(Route::Sparse),
        _ => None,
    })
}

/// The fraction of nonzero values of `input` (`[batch, width]`), judged from at most
/// [`DENSITY_PROBES`] evenly spaced values (`None` for element types the kernels do not
/// take). Near the crossovers ([`FORWARD_DENSE_FROM`]) the estimate is within about 1.5
/// points (the standard error of 1,024 probes at 35%) and decides only which of two exact
/// computations runs, for the same batch always the same one; a pass over the whole batch
/// cost a tenth of an evaluation.
fn density(input: &FlexTensor) -> Option<f64> {
    match input.dtype() {
        DType::F32 => {
            let input = HostMatrix::<f32>::new(input);
            Some(nonzero_fraction(input.values(), input.shape[1]))
        }
        DType::F64 => {
            let input = HostMatrix::<f64>::new(input);
            Some(nonzero_fraction(input.values(), input.shape[1]))
        }
        _ => None,
    }
}

/// Values of a batch that [`density`] reads.
const DENSITY_PROBES: usize = 1024;

/// The fraction of nonzero values among at most [`DENSITY_PROBES`] evenly spaced ones of
/// `values`, rows of `width` (0 for none). The stride is prime to `width`, so that the probes
/// visit every column instead of the same few (a stride of exactly `width` would read one
/// pixel of every image).
fn nonzero_fraction<T: KernelFloat>(values: &[T], width: usize) -> f64 {
    let gcd = |mut a: usize, mut b: usize| {
        while b != 0 {
            (a, b) = (b, a % b);
        }
        a
    };
    let mut step = values.len().div_ceil(DENSITY_PROBES).max(1);
    while width > 1 && gcd(step, width) != 1 {
        step += 1;
    }
    let (mut probes, mut nonzero) = (0usize, 0usize);
    for &x in values.iter().step_by(step) {
        probes += 1;
        nonzero += usize::from(x != T::zero());
    }
    nonzero as f64 / probes.max(1) as f64
}

/// The host views of the operands of the forward pass, their shapes checked: `input`
/// `[batch, n_in]`, `params` `[n_out, n_in]`, `eps` `[batch, n_out]`.
struct ForwardOperands<T> {
    input: HostMatrix<T>,
    params: [HostMatrix<T>; 3],
    eps: HostMatrix<T>,
    /// `[batch, n_in, n_out]`.
    sizes: [usize; 3],
}

impl<T: KernelFloat> ForwardOperands<T> {
    /// # Panics
    /// If the input and the parameters differ in width, or the noise is not `[batch, n_out]`.
    fn new(input: &FlexTensor, params: [&FlexTensor; 3], eps: &FlexTensor) -> Self {
        let input = HostMatrix::<T>::new(input);
        let [batch, n_in] = input.shape;
        let params = params.map(HostMatrix::<T>::new);
        let [n_out, n_in_params] = params[0].shape;
        assert_eq!(n_in, n_in_params, "input width and layer width differ");
        let eps = HostMatrix::<T>::new(eps);
        assert_eq!(
            eps.shape,
            [batch, n_out],
            "noise shape differs from [batch, d_output]"
        );
        Self {
            input,
            params,
            eps,
            sizes: [batch, n_in, n_out],
        }
    }
}

/// `(h, dh/dDelta)`, see [`MeanFieldBackend::spike_slab_forward`].
fn forward<T: KernelFloat>(
    input: &FlexTensor,
    params: [&FlexTensor; 3],
    eps: &FlexTensor,
    floor: DeltaFloor,
) -> (FlexTensor, FlexTensor) {
    let ForwardOperands {
        input,
        params,
        eps,
        sizes: [batch, n_in, n_out],
    } = ForwardOperands::<T>::new(input, params, eps);
    let (mean_t, variance_t) = transposed_moments(&params);
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
            T::add_noise(h, slope, eps, scale, floor);
        });
    (
        flex_matrix(h, [batch, n_out]),
        flex_matrix(slope, [batch, n_out]),
    )
}

/// The host views of the operands of the parameter and input gradients, their shapes checked:
/// `input` `[batch, n_in]`, `params` `[n_out, n_in]`, `grad_g` and `grad_delta`
/// `[batch, n_out]`.
struct GradOperands<T> {
    input: HostMatrix<T>,
    params: [HostMatrix<T>; 3],
    grad_g: HostMatrix<T>,
    grad_delta: HostMatrix<T>,
    /// `[batch, n_in, n_out]`.
    sizes: [usize; 3],
}

impl<T: KernelFloat> GradOperands<T> {
    /// # Panics
    /// If the gradients and the input differ in batch, the two gradients in shape, or the
    /// parameters from `[n_out, n_in]`.
    fn new(
        input: &FlexTensor,
        params: [&FlexTensor; 3],
        grad_g: &FlexTensor,
        grad_delta: &FlexTensor,
    ) -> Self {
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
        let params = params.map(HostMatrix::<T>::new);
        assert_eq!(
            params[0].shape,
            [n_out, n_in],
            "parameter and gradient shapes differ"
        );
        Self {
            input,
            params,
            grad_g,
            grad_delta,
            sizes: [batch, n_in, n_out],
        }
    }
}

/// `(dL/dm, dL/dxi, dL/dpi)`, see [`MeanFieldBackend::spike_slab_param_grads`].
fn param_grads<T: KernelFloat>(
    input: &FlexTensor,
    params: [&FlexTensor; 3],
    grad_g: &FlexTensor,
    grad_delta: &FlexTensor,
) -> (FlexTensor, FlexTensor, FlexTensor) {
    let GradOperands {
        input,
        params,
        grad_g,
        grad_delta,
        sizes: [batch, n_in, n_out],
    } = GradOperands::<T>::new(input, params, grad_g, grad_delta);

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
    chain_rule(&params, &grad_mean_t, &grad_variance_t)
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
    let GradOperands {
        input,
        params,
        grad_g,
        grad_delta,
        sizes: [batch, n_in, n_out],
    } = GradOperands::<T>::new(input, params, grad_g, grad_delta);
    let (mean, variance) = moments(&params);
    let two = T::from(2.0).unwrap();

    let mut grad_input = vec![T::zero(); batch * n_in];
    // Every value written by the gather before it is read.
    let mut through_delta = Reused::new(batch * n_in);
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

/// `(mean, variance)` `[d_output, d_input]` of the weights with `[m, xi, pi]`, in parallel
/// chunks.
fn moments<T: KernelFloat>(params: &[HostMatrix<T>; 3]) -> (Reused<T>, Reused<T>) {
    const CHUNK: usize = 1 << 14;
    let params = Params::new(params);
    let mut mean = Reused::new(params.m.len());
    let mut variance = Reused::new(params.m.len());
    mean.par_chunks_mut(CHUNK)
        .zip(variance.par_chunks_mut(CHUNK))
        .zip(params.m.par_chunks(CHUNK))
        .zip(params.xi.par_chunks(CHUNK).zip(params.pi.par_chunks(CHUNK)))
        .for_each(|(((mean, variance), m), (xi, pi))| {
            for (k, (mean, variance)) in mean.iter_mut().zip(variance).enumerate() {
                (*mean, *variance) = weight_moments(m[k], xi[k], pi[k]);
            }
        });
    (mean, variance)
}

/// `meanᵀ`, `varianceᵀ` `[d_input, d_output]` of the weights with `[m, xi, pi]`
/// `[d_output, d_input]`, in parallel blocks of inputs.
fn transposed_moments<T: KernelFloat>(params: &[HostMatrix<T>; 3]) -> (Reused<T>, Reused<T>) {
    let params = Params::new(params);
    let (n_out, n_in) = (params.n_out, params.n_in);
    let mut mean_t = Reused::new(n_in * n_out);
    let mut variance_t = Reused::new(n_in * n_out);
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

/// `(dL/dm, dL/dxi, dL/dpi)` `[d_output, d_input]` from `(dL/dmean)ᵀ`, `(dL/dvariance)ᵀ`
/// `[d_input, d_output]` and the parameters `[m, xi, pi]`, in parallel blocks of outputs.
fn chain_rule<T: KernelFloat>(
    params: &[HostMatrix<T>; 3],
    grad_mean_t: &[T],
    grad_variance_t: &[T],
) -> (FlexTensor, FlexTensor, FlexTensor) {
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
    let [grad_m, grad_xi, grad_pi] = grads.map(|grad| flex_matrix(grad, [n_out, n_in]));
    (grad_m, grad_xi, grad_pi)
}
