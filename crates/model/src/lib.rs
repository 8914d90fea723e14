//! The models of "Learning credit assignment" (Li & Huang, PRL 125, 178301, 2020) as burn
//! modules: the spike-and-slab mean-field layer ([`SpikeSlabLinear`]), networks of such layers
//! ([`SpikeSlabNet`]) and the deterministic baseline ([`DeterministicNet`]), which is also the
//! form of every concrete sub-network sampled from a trained model; their configuration
//! ([`ModelConfig`]). The layer's computation is one backend operation of `credit-ops`.

pub mod classes;
mod config;
mod network;
mod noise;
mod spike_slab;

pub use config::{ModelConfig, ModelKind};
pub use network::{DeterministicLinear, DeterministicNet, SpikeSlabNet};
pub use noise::seed_noise;
pub use spike_slab::{Noise, SpikeSlabLinear};
