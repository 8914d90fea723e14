//! The forward pass, the parameter gradients and the input gradient on dense operands: their
//! six matrix products through the `gemm` crate (the one burn-flex's `matmul` calls), two at
//! a time (`product_pair`), each reading its operands through their strides so that no
//! transpose is copied, and the element-wise work around them in one parallel pass each: the
//! moments of the weights (one pass over `[m, xi, pi]`, written transposed for the forward
//! products), the squares of the input, the noise term (`add_noise`, the sparse kernels' own),
//! the chain rule to `m`, `xi`, `pi` (`chain_rule`, also theirs) and the input gradient's
//! `2 · input ⊙ (dL/dDelta · variance)`.
//!
//! burn's composed operations (the reference) spend a dozen passes over the weights and the
//! activations, each allocating its result; on 3072-200-200-10 with dense inputs the
//! evaluation ran 37,453-40,088 images/s through these products against 26,291-35,071
//! through burn's (measured when these products were added).
//!
//! # Shapes
//! `input` `[batch, n_in]`, `m`, `xi`, `pi` `[n_out, n_in]`, `eps`, `h`, `dL/dG`, `dL/dDelta`
//! `[batch, n_out]`; every matrix row-major.

use burn::backend::flex::FlexTensor;
use rayon::prelude::*;

use super::kernels::KernelFloat;
use super::layout::{LANES, Reused, chunk_len, flex_matrix};
use super::{ForwardOperands, GradOperands, chain_rule, moments, transposed_moments};
use crate::equations::DeltaFloor;
use crate::host_product::{Operand, product_pair};

/// `values²`, in parallel chunks.
fn squares<T: KernelFloat>(values: &[T]) -> Reused<T> {
    const CHUNK: usize = 1 << 14;
    let mut out = Reused::new(values.len());
    out.par_chunks_mut(CHUNK)
        .zip(values.par_chunks(CHUNK))
        .for_each(|(out, values)| {
            for (o, &x) in out.iter_mut().zip(values) {
                *o = x * x;
            }
        });
    out
}

/// `(h, dh/dDelta)`, see [`MeanFieldBackend::spike_slab_forward`](super::MeanFieldBackend):
/// `G = input · meanᵀ`, `Delta = input² · varianceᵀ` as two products, then the noise pass.
pub(super) fn forward<T: KernelFloat>(
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
    // Transposed, so that the products read the weights in the orientation `gemm` reads
    // fastest (see `product_into`).
    let (mean_t, variance_t) = transposed_moments(&params);
    let squared = squares(input.values());

    let mut h = vec![T::zero(); batch * n_out];
    let mut slope = vec![T::zero(); batch * n_out];
    product_pair(
        [&mut h, &mut slope],
        [
            Operand::plain(input.values(), n_in),
            Operand::plain(&squared, n_in),
        ],
        [
            Operand::plain(&mean_t, n_out),
            Operand::plain(&variance_t, n_out),
        ],
        [batch, n_in, n_out],
    );
    let scale = T::from((n_in as f64).sqrt().recip()).unwrap();
    let rows = chunk_len(batch, LANES * n_out);
    h.par_chunks_mut(rows * n_out)
        .zip(slope.par_chunks_mut(rows * n_out))
        .zip(eps.values().par_chunks(rows * n_out))
        .for_each(|((h, slope), eps)| T::add_noise(h, slope, eps, scale, floor));
    (
        flex_matrix(h, [batch, n_out]),
        flex_matrix(slope, [batch, n_out]),
    )
}

/// `(dL/dm, dL/dxi, dL/dpi)`, see
/// [`MeanFieldBackend::spike_slab_param_grads`](super::MeanFieldBackend):
/// `(dL/dmean)ᵀ = inputᵀ · dL/dG` and `(dL/dvariance)ᵀ = (input²)ᵀ · dL/dDelta` as two
/// products, then the chain rule.
pub(super) fn param_grads<T: KernelFloat>(
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
    let squared = squares(input.values());
    // Every value written by the products (which do not read them) before it is read.
    let mut grad_mean_t = Reused::new(n_in * n_out);
    let mut grad_variance_t = Reused::new(n_in * n_out);
    product_pair(
        [&mut grad_mean_t, &mut grad_variance_t],
        [
            Operand::transposed(input.values(), n_in),
            Operand::transposed(&squared, n_in),
        ],
        [
            Operand::plain(grad_g.values(), n_out),
            Operand::plain(grad_delta.values(), n_out),
        ],
        [n_in, batch, n_out],
    );
    chain_rule(&params, &grad_mean_t, &grad_variance_t)
}

/// `dL/dinput`, see [`MeanFieldBackend::spike_slab_input_grad`](super::MeanFieldBackend):
/// `dL/dG · mean` and `dL/dDelta · variance` as two products, then one pass adding
/// `2 · input ⊙ (dL/dDelta · variance)` to the first.
pub(super) fn input_grad<T: KernelFloat>(
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
    let mut grad_input = vec![T::zero(); batch * n_in];
    // Every value written by the product (which does not read them) before it is read.
    let mut through_delta = Reused::new(batch * n_in);
    product_pair(
        [&mut grad_input, &mut through_delta],
        [
            Operand::plain(grad_g.values(), n_out),
            Operand::plain(grad_delta.values(), n_out),
        ],
        [Operand::plain(&mean, n_in), Operand::plain(&variance, n_in)],
        [batch, n_out, n_in],
    );
    let two = T::from(2.0).unwrap();
    let chunk = chunk_len(batch * n_in, LANES);
    grad_input
        .par_chunks_mut(chunk)
        .zip(through_delta.par_chunks(chunk))
        .zip(input.values().par_chunks(chunk))
        .for_each(|((grad, through_delta), input)| {
            for ((grad, &through_delta), &x) in grad.iter_mut().zip(through_delta).zip(input) {
                *grad = *grad + x * through_delta * two;
            }
        });
    flex_matrix(grad_input, [batch, n_in])
}
