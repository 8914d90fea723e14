//! The computational core of credit: the spike-and-slab mean-field layer and the AdamW step
//! as backend operations, with their host kernels.
//!
//! Every `backend_extension`, every `unsafe` block and every `#[target_feature]` of credit
//! lives in this crate. Each operation has one trait with a reference body composed from
//! generic backend operations (what ndarray and wgpu run) and, for `flex`, host kernels that
//! skip zeros and use AVX-512 where the CPU has it:
//!
//! - [`equations`]: the layer's equations for one weight and one pre-activation, written
//!   once; the kernels are tested against them.
//! - [`mean_field`]: the layer's pre-activation `h = (G + sqrt(Delta) eps) / sqrt(N)` and its
//!   generalised backprop (Li & Huang, PRL 125, 178301, 2020).
//! - [`adamw`]: one AdamW step of a parameter tensor in one pass.
//! - [`noise`]: the standard-normal noise, drawn on the host from a key.
//! - [`host_product`]: host matrix products through the `gemm` crate, operands read through
//!   their strides.
//! - [`allocator`]: the allocator settings of the `credit` process.
//! - [`sparse_product`]: a host product that skips its left operand's zeros (the analysis's
//!   carried changes).

#![deny(missing_docs)]
// Built without a backend feature, the operations have no implementation to use their arguments.
#![cfg_attr(
    not(any(feature = "flex", feature = "ndarray", feature = "wgpu")),
    allow(unused_variables)
)]

#[allow(deprecated)] // burn-ndarray is deprecated, and still one of the supported backends
pub mod adamw;
pub mod allocator;
pub mod equations;
#[cfg(feature = "flex")]
mod flex_host;
pub mod host_product;
#[allow(deprecated)] // burn-ndarray is deprecated, and still one of the supported backends
pub mod mean_field;
pub mod noise;
pub mod sparse_product;
