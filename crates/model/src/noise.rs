//! The pre-activation noise `eps ~ N(0, 1)`, drawn on the host by a fast seeded generator
//! (xoshiro256++ with a ziggurat normal sampler) and uploaded.
//!
//! Sampling `eps` is the only random step of training; doing it here instead of with the
//! backend's generator makes it several times cheaper on CPU backends and gives every backend
//! the same noise for the same seed.

use std::sync::Mutex;

use burn::tensor::{Device, Tensor, TensorData};
use rand::SeedableRng;
use rand::rngs::SmallRng;
use rand_distr::{Distribution, StandardNormal};

static GENERATOR: Mutex<Option<SmallRng>> = Mutex::new(None);

/// Restarts the noise stream from `seed`.
pub fn seed_noise(seed: u64) {
    *GENERATOR.lock().unwrap_or_else(|e| e.into_inner()) = Some(SmallRng::seed_from_u64(seed));
}

/// Standard-normal draws of the given shape on `device` (seed 0 unless [`seed_noise`] was
/// called).
pub fn standard_normal(shape: [usize; 2], device: &Device) -> Tensor<2> {
    let mut guard = GENERATOR.lock().unwrap_or_else(|e| e.into_inner());
    let rng = guard.get_or_insert_with(|| SmallRng::seed_from_u64(0));
    let values: Vec<f32> = (0..shape[0] * shape[1])
        .map(|_| StandardNormal.sample(rng))
        .collect();
    drop(guard);
    Tensor::from_data(TensorData::new(values, shape), device)
}
