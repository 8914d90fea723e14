//! The models of "Learning credit assignment" (Li & Huang, PRL 125, 178301, 2020) as burn
//! modules: the spike-and-slab mean-field layer ([`SpikeSlabLinear`]), networks of such layers
//! ([`SpikeSlabNet`]) and the deterministic baseline ([`DeterministicNet`]), which is also the
//! form of every concrete sub-network sampled from a trained model. The layer's computation
//! is one backend operation with a hand-written backward pass ([`mean_field`]).

#[cfg(feature = "flex")]
pub mod flex_host;
#[allow(deprecated)] // burn-ndarray is deprecated, and still one of the supported backends
pub mod mean_field;
mod network;
mod noise;
mod spike_slab;

pub use mean_field::{DELTA_FLOOR, spike_slab_linear};
pub use network::{DeterministicLinear, DeterministicNet, NetworkConfig, SpikeSlabNet};
pub use noise::seed_noise;
pub use spike_slab::{Noise, SpikeSlabLinear, SpikeSlabLinearConfig};
