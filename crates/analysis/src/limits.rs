//! The bounds of the analysis settings and of `eval` and `predict`, checked before any work.

/// The most histogram bins a figure draws (and calibration bins).
pub const MAX_BINS: usize = 10_000;
/// The most sampled networks (`samples`, `repetitions`): each is a pass over the test set.
pub const MAX_SAMPLES: usize = 10_000;
/// The most Monte Carlo draws per connection for the entropy.
pub const MAX_ENTROPY_SAMPLES: usize = 1_000_000;
/// The most perturbed fractions.
pub const MAX_FRACTIONS: usize = 1_000;
/// The highest PNG resolution, dots per inch (a figure of 1260 x 400 pixels is then 16 x 5
/// thousand pixels).
pub const MAX_PNG_DPI: u32 = 1_200;
/// The lowest PNG resolution but 0 (no PNGs), dots per inch: a screen's.
pub const MIN_PNG_DPI: u32 = 72;
