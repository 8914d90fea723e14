//! The stream of keys of the pre-activation noise.

use std::sync::Mutex;

use burn::tensor::{Device, Tensor};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

static SEEDS: Mutex<Option<SmallRng>> = Mutex::new(None);

/// Restarts the noise stream from `seed`.
pub fn seed_noise(seed: u64) {
    *SEEDS.lock().unwrap_or_else(|e| e.into_inner()) = Some(SmallRng::seed_from_u64(seed));
}

/// Standard-normal draws of the given shape on `device` (seed 0 unless [`seed_noise`] was
/// called): each draw takes the next key of the stream.
pub fn standard_normal(shape: [usize; 2], device: &Device) -> Tensor<2> {
    let key: u64 = SEEDS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get_or_insert_with(|| SmallRng::seed_from_u64(0))
        .random();
    credit_ops::noise::standard_normal(shape, key, device)
}
