//! Where every random number of credit comes from.
//!
//! A run has one seed (`seed` in its config). Each kind of draw gets its own stream of it
//! ([`Seed::stream`]), and each draw within a stream its own seed ([`Seed::child`]): the noise
//! of batch `b` of epoch `e` is `Seed::new(seed).stream(Stream::Noise).child(e).child(b)`.
//! Seeds are values, not generators: a draw depends only on the path that names it, never on
//! how many draws came before, so an interrupted run that resumes at epoch `e` draws exactly
//! what the uninterrupted run drew, and nothing is global. Functions that draw take a `Seed`
//! argument, so forgetting to seed does not compile.

use rand::SeedableRng;
use rand_chacha::ChaCha12Rng;
use serde::{Deserialize, Serialize};

/// A node of the tree of seeds of a run (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Seed(u64);

/// The independent streams of a run's randomness.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stream {
    /// Initial parameters.
    Init,
    /// The pre-activation noise `eps` of training steps.
    Noise,
    /// The order of the training images in each epoch.
    Shuffle,
    /// The noise of evaluations (test metrics after each epoch, final accuracies).
    Evaluation,
    /// Concrete sub-networks drawn from a trained model.
    Subnetworks,
    /// The targeted perturbation of the analysis.
    Perturbation,
    /// The Monte Carlo draws of the entropy.
    Entropy,
    /// Predictions of `credit predict`.
    Prediction,
    /// The sampled network (one concrete weight draw) whose test accuracy training records
    /// after each epoch, beside the mean-field one.
    Sampling,
}

/// SplitMix64's output function (Steele, Lea & Flood, OOPSLA 2014): a bijection of `u64`
/// whose outputs for consecutive inputs look independent.
const fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The golden-ratio increment of SplitMix64.
const GOLDEN: u64 = 0x9e37_79b9_7f4a_7c15;

impl Seed {
    /// The root seed of a run (its config's `seed`).
    pub const fn new(value: u64) -> Self {
        Self(value)
    }

    /// The seed's 64 bits: the key of the noise sequences of `credit_ops::noise`.
    pub const fn value(self) -> u64 {
        self.0
    }

    /// The seed of child `index` (an epoch, a batch, a layer): different indices and
    /// different parents give unrelated seeds, and `a.child(i).child(j)` differs from
    /// `a.child(j).child(i)`.
    pub const fn child(self, index: u64) -> Self {
        Self(mix(self.0 ^ mix(index.wrapping_add(1).wrapping_mul(GOLDEN))))
    }

    /// The seed of one stream of this seed's randomness.
    pub const fn stream(self, stream: Stream) -> Self {
        let tag = match stream {
            Stream::Init => 1,
            Stream::Noise => 2,
            Stream::Shuffle => 3,
            Stream::Evaluation => 4,
            Stream::Subnetworks => 5,
            Stream::Perturbation => 6,
            Stream::Entropy => 7,
            Stream::Prediction => 8,
            Stream::Sampling => 9,
        };
        // Stream tags live far from the indices that `child` takes.
        self.child(u64::MAX - tag)
    }

    /// A generator started at this seed (ChaCha12, whose output is fixed by its
    /// specification, so draws are the same on every platform and version).
    pub fn rng(self) -> ChaCha12Rng {
        ChaCha12Rng::seed_from_u64(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn children_and_streams_are_distinct() {
        let root = Seed::new(0);
        let mut seen = HashSet::new();
        for stream in [
            Stream::Init,
            Stream::Noise,
            Stream::Shuffle,
            Stream::Evaluation,
            Stream::Sampling,
        ] {
            for e in 0..100 {
                for b in 0..100 {
                    assert!(seen.insert(root.stream(stream).child(e).child(b)));
                }
            }
        }
        assert_ne!(root.child(1).child(2), root.child(2).child(1));
        assert_ne!(Seed::new(1).child(0), Seed::new(0).child(1));
        assert_eq!(root.child(7), Seed::new(0).child(7), "a pure function");
    }

    #[test]
    fn child_seeds_have_balanced_bits() {
        // Each bit of the children of consecutive indices is set about half the time.
        let n = 20_000u64;
        let seeds: Vec<u64> = (0..n).map(|i| Seed::new(42).child(i).value()).collect();
        for bit in 0..64 {
            let ones = seeds.iter().filter(|&&s| s >> bit & 1 == 1).count() as f64;
            // Five standard deviations of a binomial(n, 1/2).
            let sd = (n as f64 / 4.0).sqrt();
            assert!(
                (ones - n as f64 / 2.0).abs() < 5.0 * sd,
                "bit {bit}: {ones}"
            );
        }
    }
}
