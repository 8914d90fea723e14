//! The pre-activation noise `eps ~ N(0, 1)`, drawn on the host by fast seeded generators
//! (xoshiro256++ with a ziggurat normal sampler) and uploaded.
//!
//! Sampling `eps` is the only random step of training; doing it here instead of with the
//! backend's generator makes it several times cheaper on CPU backends and gives every backend
//! the same noise for the same seed. Each draw takes one seed from a global stream and fills
//! fixed blocks of values in parallel, each block from its own generator seeded by that seed
//! and the block's position: the values depend on the seed only, not on the thread count.

use std::sync::Mutex;

use burn::tensor::{Device, Tensor, TensorData};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, StandardNormal};
use rayon::prelude::*;

static SEEDS: Mutex<Option<SmallRng>> = Mutex::new(None);

/// Values drawn by one generator.
const BLOCK: usize = 8192;

/// Restarts the noise stream from `seed`.
pub fn seed_noise(seed: u64) {
    *SEEDS.lock().unwrap_or_else(|e| e.into_inner()) = Some(SmallRng::seed_from_u64(seed));
}

/// Standard-normal draws of the given shape on `device` (seed 0 unless [`seed_noise`] was
/// called).
pub fn standard_normal(shape: [usize; 2], device: &Device) -> Tensor<2> {
    let seed: u64 = SEEDS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get_or_insert_with(|| SmallRng::seed_from_u64(0))
        .random();
    let mut values = vec![0f32; shape[0] * shape[1]];
    values
        .par_chunks_mut(BLOCK)
        .enumerate()
        .for_each(|(block, values)| {
            // Distinct blocks get distinct, well-mixed seeds (the splitmix64 increment).
            let block_seed = seed.wrapping_add((block as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
            let mut rng = SmallRng::seed_from_u64(block_seed);
            for value in values {
                *value = StandardNormal.sample(&mut rng);
            }
        });
    Tensor::from_data(TensorData::new(values, shape), device)
}

#[cfg(all(test, feature = "flex"))]
mod tests {
    use super::*;

    /// The noise stream is global: tests that reseed it take turns.
    static STREAM: Mutex<()> = Mutex::new(());

    fn draw(threads: usize) -> Vec<f32> {
        let _turn = STREAM.lock().unwrap_or_else(|e| e.into_inner());
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            seed_noise(11);
            let _ = standard_normal([3, 5], &Device::flex());
            standard_normal([300, 100], &Device::flex())
                .into_data()
                .try_to_vec::<f32>()
                .unwrap()
        })
    }

    #[test]
    fn the_noise_depends_on_the_seed_only() {
        let one = draw(1);
        assert_eq!(one, draw(3));
        // Blocks come from different generators.
        assert_ne!(one[..BLOCK], one[BLOCK..2 * BLOCK]);
    }

    #[test]
    fn the_noise_is_standard_normal() {
        let values: Vec<f64> = draw(2).into_iter().map(f64::from).collect();
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        let variance = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
        // Five standard errors: sd(mean) = 1/sqrt(n), sd(variance) = sqrt(2/n).
        assert!(mean.abs() < 5.0 / n.sqrt(), "mean {mean}");
        assert!(
            (variance - 1.0).abs() < 5.0 * (2.0 / n).sqrt(),
            "variance {variance}"
        );
    }
}
