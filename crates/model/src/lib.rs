//! The models of "Learning credit assignment" (Li & Huang, PRL 125, 178301, 2020) as burn
//! modules: the spike-and-slab mean-field layer ([`SpikeSlabLinear`]), networks of such layers
//! ([`SpikeSlabNet`]), the deterministic baseline ([`DeterministicNet`]), which is also the
//! form of every concrete sub-network sampled from a trained model, and either of them as the
//! network of a run ([`Classifier`], configured by [`ModelConfig`]), and the spike-and-slab
//! recurrent network of the follow-up paper (Zou, Li & Huang, PRE 107, 024307, 2023;
//! [`SpikeSlabRnn`]); the three classes of
//! connection ([`classes`]) and the seeds every random draw comes from ([`Seed`]). The
//! layer's computation is one backend operation of `credit-ops`. [`Classifier`] implements
//! burn's `TrainStep` and `InferenceStep` on a [`NoisyBatch`], so that burn's `Learner`
//! trains it.

#![deny(missing_docs)]

pub mod classes;
mod classifier;
mod config;
mod network;
mod rnn;
mod seed;
mod spike_slab;
mod step;

pub use classifier::{Classifier, SampledNetwork};
pub use config::{DEFAULT_H0, DEFAULT_TAU, FloorModeName, ModelConfig, ModelKind};
pub use network::{DeterministicLinear, DeterministicNet, SpikeSlabNet};
pub use rnn::{
    DeterministicRnn, InputWeights, RecurrentInit, RnnDynamics, RnnScaling, SpikeSlabRnn,
};
pub use seed::{Seed, Stream};
pub use spike_slab::{
    Noise, SpikeSlabLinear, preactivation_moments, reference_preactivation, weight_moments,
};
pub use step::{NoisyBatch, StepOutput};
