//! Standard-normal noise drawn on the host: the pre-activation noise `eps ~ N(0, 1)`.
//!
//! Drawing `eps` here instead of with a backend's generator makes it much cheaper on CPU
//! backends and gives every backend the same noise for the same key. Value pair `i` of a draw
//! comes from the 64 bits of SplitMix64 at position `i` of the key's sequence, turned into two
//! normals by the Box–Muller transform with float32 polynomial logarithm, sine and cosine
//! (errors below 1e-6). Values depend on the key and position only, so blocks fill in
//! parallel, vectorised, and the noise does not depend on the thread count. The smallest
//! uniform used is 2^-33: draws stop at |eps| = 6.77, which a normal exceeds with
//! probability 1.3e-11.

use burn::tensor::{Device, Tensor, TensorData};
use rayon::prelude::*;

/// Values per parallel task.
const BLOCK: usize = 8192;

/// Standard-normal draws of the given shape on `device`, the values of the sequence `key`
/// (see [`standard_normal_values`]).
///
/// # Shapes
/// - output: `shape`
pub fn standard_normal(shape: [usize; 2], key: u64, device: &Device) -> Tensor<2> {
    let values = standard_normal_values(shape[0] * shape[1], key);
    Tensor::from_data(TensorData::new(values, shape), device)
}

/// The first `len` standard normals of the sequence `key`: value `2i` and `2i + 1` of a block
/// come from position `i` of SplitMix64 started at `key`, the same values whatever the
/// number of threads.
pub fn standard_normal_values(len: usize, key: u64) -> Vec<f32> {
    let mut values = vec![0f32; len];
    values
        .par_chunks_mut(BLOCK)
        .enumerate()
        .for_each(|(block, values)| fill(values, key, (block * BLOCK / 2) as u64));
    values
}

/// The first `len` values of the uniform sequence `key`, in `[0, 1)` with 24 random bits:
/// value `i` from the high bits of position `i` of SplitMix64 started at `key` (the same
/// generator as the normals, so the two sequences of one key are related: draw them from
/// different keys).
pub fn uniform_values(len: usize, key: u64) -> Vec<f32> {
    let mut values = vec![0f32; len];
    values
        .par_chunks_mut(BLOCK)
        .enumerate()
        .for_each(|(block, values)| fill_uniform(values, key, (block * BLOCK) as u64));
    values
}

/// `values` from positions `first..` of the uniform sequence `seed`.
fn fill_uniform(values: &mut [f32], seed: u64, first: u64) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx512dq")
    {
        // SAFETY: AVX-512F and DQ are available.
        return unsafe { fill_uniform_avx512(values, seed, first) };
    }
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: AVX2 is available.
        return unsafe { fill_uniform_avx2(values, seed, first) };
    }
    fill_uniform_portable(values, seed, first)
}

/// [`fill_uniform_portable`] compiled for AVX2, for CPUs without AVX-512 (4 positions a
/// vector, the 64-bit multiplies in 32-bit pieces): the same integers, so the same values.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn fill_uniform_avx2(values: &mut [f32], seed: u64, first: u64) {
    fill_uniform_portable(values, seed, first)
}

/// [`fill_uniform_portable`] compiled for AVX-512, where the 64-bit multiplies of 8
/// positions take one instruction (AVX-512DQ's `vpmullq`) against the portable build's
/// 32-bit pieces: the same integers, so the same values.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512dq")]
fn fill_uniform_avx512(values: &mut [f32], seed: u64, first: u64) {
    fill_uniform_portable(values, seed, first)
}

/// Value `i` of `values` from the high 24 bits of position `first + i` of `seed`.
#[inline(always)]
fn fill_uniform_portable(values: &mut [f32], seed: u64, first: u64) {
    const TWO_TO_MINUS_24: f32 = 1.0 / (1u64 << 24) as f32;
    for (i, value) in values.iter_mut().enumerate() {
        let bits = random_bits(seed, first + i as u64);
        *value = (bits >> 40) as f32 * TWO_TO_MINUS_24;
    }
}

/// `values` (an even count, or the last block) from pairs `first..` of the sequence `seed`.
fn fill(values: &mut [f32], seed: u64, first: u64) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx512dq")
    {
        // SAFETY: AVX-512F and DQ are available.
        return unsafe { fill_avx512(values, seed, first) };
    }
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: AVX2 is available.
        return unsafe { fill_avx2(values, seed, first) };
    }
    fill_pairs(values, seed, first)
}

/// [`fill_pairs`] compiled for AVX2, for CPUs without AVX-512 (an AMD EPYC here): 8 pairs
/// at a time, and `floor` one instruction instead of a call to the C library's `floorf`
/// per value as in the baseline x86-64 build. Each operation is the same one rounded the
/// same way (no fused multiply-adds: Rust does not contract `a * b + c`), so the values are
/// the portable loop's bit for bit; the AVX2 build of the paper's net spent 8% of its
/// training profile in the baseline loop.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn fill_avx2(values: &mut [f32], seed: u64, first: u64) {
    fill_pairs(values, seed, first)
}

/// [`fill_pairs`] compiled for AVX-512, where the loop runs 16 pairs at a time.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512dq")]
fn fill_avx512(values: &mut [f32], seed: u64, first: u64) {
    fill_pairs(values, seed, first)
}

/// Pair `j` of `values` (the first and the second half hold the two members of each pair)
/// from position `first + j` of the sequence `seed`.
#[inline(always)]
fn fill_pairs(values: &mut [f32], seed: u64, first: u64) {
    let (cosines, sines) = values.split_at_mut(values.len() / 2);
    for (j, (cosine, sine)) in cosines.iter_mut().zip(sines.iter_mut()).enumerate() {
        (*cosine, *sine) = box_muller(random_bits(seed, first + j as u64));
    }
    if sines.len() > cosines.len() {
        let last = first + cosines.len() as u64;
        sines[cosines.len()] = box_muller(random_bits(seed, last)).0;
    }
}

/// SplitMix64: output `position` of the generator started at `seed`.
#[inline(always)]
fn random_bits(seed: u64, position: u64) -> u64 {
    let mut z = seed.wrapping_add(position.wrapping_add(1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Two independent standard normals `(r cos θ, r sin θ)` from 64 random bits: the radius
/// `r = sqrt(-2 ln u1)` with `u1` in `(0, 1]` from the high 32 bits, the angle `θ = 2π u2`
/// with `u2` in `[0, 1)` from 24 of the low bits.
#[inline(always)]
fn box_muller(bits: u64) -> (f32, f32) {
    const TWO_TO_MINUS_24: f32 = 1.0 / (1u64 << 24) as f32;
    const TWO_TO_MINUS_32: f32 = 1.0 / (1u64 << 32) as f32;
    let u1 = ((bits >> 32) as u32 as f32) * TWO_TO_MINUS_32 + 0.5 * TWO_TO_MINUS_32;
    let u2 = ((bits as u32) >> 8) as f32 * TWO_TO_MINUS_24;
    let radius = (-2.0 * ln(u1)).sqrt();
    let (sine, cosine) = sin_cos_turns(u2);
    (radius * cosine, radius * sine)
}

/// The natural logarithm of a normal positive `x` (Cephes `logf`: the mantissa reduced to
/// `[sqrt(1/2), sqrt(2))`, a polynomial of degree 9 there).
#[inline(always)]
fn ln(x: f32) -> f32 {
    let bits = x.to_bits();
    // x = m 2^e with m in [1/2, 1).
    let m = f32::from_bits((bits & 0x007f_ffff) | 0x3f00_0000);
    let e = ((bits >> 23) as i32 - 126) as f32;
    let low = m < std::f32::consts::FRAC_1_SQRT_2;
    let (f, e) = if low {
        (m + m - 1.0, e - 1.0)
    } else {
        (m - 1.0, e)
    };
    let z = f * f;
    let p = [
        7.037_683_6e-2,
        -1.151_461e-1,
        1.167_699_9e-1,
        -1.242_014_1e-1,
        1.424_932_3e-1,
        -1.666_805_8e-1,
        2.000_071_5e-1,
        -2.499_999_4e-1,
        3.333_333e-1,
    ]
    .into_iter()
    .fold(0.0, |acc: f32, c| acc * f + c);
    let tail = p * f * z + e * -2.121_944_4e-4 - 0.5 * z;
    f + tail + e * 0.693_359_4
}

/// `(sin 2πu, cos 2πu)` for `u` in `[0, 1)`: the angle reduced to `[-π/4, π/4]` around the
/// nearest multiple of π/2, Cephes' `sinf` and `cosf` polynomials there, and the quadrant's
/// swap and signs.
#[inline(always)]
fn sin_cos_turns(u: f32) -> (f32, f32) {
    let eighths = u * 8.0;
    // The even multiple of π/4 nearest the angle, and which quarter turn it is (all in
    // floats: a float-to-integer cast does not vectorise).
    let nearest = ((eighths + 1.0) * 0.5).floor() * 2.0;
    let half = nearest * 0.5;
    let quadrant = if half >= 4.0 { half - 4.0 } else { half };
    let y = (eighths - nearest) * std::f32::consts::FRAC_PI_4;
    let z = y * y;
    let sin_y = ((-1.951_529_6e-4 * z + 8.332_161e-3) * z - 1.666_665_5e-1) * z * y + y;
    let cos_y =
        ((2.443_315_7e-5 * z - 1.388_731_6e-3) * z + 4.166_664_6e-2) * z * z - 0.5 * z + 1.0;
    let odd = quadrant == 1.0 || quadrant == 3.0;
    let (sine, cosine) = if odd { (cos_y, sin_y) } else { (sin_y, cos_y) };
    let sine = if quadrant >= 2.0 { -sine } else { sine };
    let cosine = if quadrant == 1.0 || quadrant == 2.0 {
        -cosine
    } else {
        cosine
    };
    (sine, cosine)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_logarithm_is_accurate_on_the_uniforms_used() {
        // From 2^-33 to 1, evenly on a linear and on a logarithmic scale.
        let linear = (0..=100_000).map(|i| (i as f32 * 1e-5).max(2f32.powi(-33)));
        let logarithmic = (0..=100_000).map(|i| 2f32.powf(-33.0 * i as f32 / 1e5));
        for x in linear.chain(logarithmic) {
            let exact = f64::from(x).ln();
            let error = (f64::from(ln(x)) - exact).abs();
            assert!(error <= 1e-6 * exact.abs().max(1.0), "ln({x}): {error}");
        }
    }

    #[test]
    fn sine_and_cosine_are_accurate_over_a_turn() {
        for i in 0..(1 << 16) {
            let u = i as f32 / 65536.0;
            let angle = std::f64::consts::TAU * f64::from(u);
            let (sine, cosine) = sin_cos_turns(u);
            assert!((f64::from(sine) - angle.sin()).abs() < 1e-6, "sin at {u}");
            assert!((f64::from(cosine) - angle.cos()).abs() < 1e-6, "cos at {u}");
        }
    }

    #[test]
    fn the_vector_and_portable_loops_agree() {
        let n = 100_001;
        let mut portable = vec![0.0; n];
        fill_pairs(&mut portable, 42, 7);
        let mut dispatched = vec![0.0; n];
        fill(&mut dispatched, 42, 7);
        assert_eq!(portable, dispatched);
        // Each vector build this CPU can run, whichever `fill` takes.
        #[cfg(target_arch = "x86_64")]
        {
            let mut checked = 0;
            if std::arch::is_x86_feature_detected!("avx2") {
                let mut vector = vec![0.0; n];
                // SAFETY: AVX2 is available.
                unsafe { fill_avx2(&mut vector, 42, 7) };
                assert_eq!(portable, vector, "AVX2");
                let mut uniform = vec![0.0; n];
                // SAFETY: AVX2 is available.
                unsafe { fill_uniform_avx2(&mut uniform, 42, 7) };
                let mut expected = vec![0.0; n];
                fill_uniform_portable(&mut expected, 42, 7);
                assert_eq!(expected, uniform, "AVX2 uniforms");
                checked += 1;
            }
            if std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512dq")
            {
                let mut vector = vec![0.0; n];
                // SAFETY: AVX-512F and DQ are available.
                unsafe { fill_avx512(&mut vector, 42, 7) };
                assert_eq!(portable, vector, "AVX-512");
                checked += 1;
            }
            eprintln!("vector builds checked against the portable loop: {checked}");
        }
    }

    fn draw(threads: usize) -> Vec<f32> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| standard_normal_values(300 * 1001, 11))
    }

    #[test]
    fn the_noise_depends_on_the_seed_only() {
        let one = draw(1);
        assert_eq!(one, draw(3));
        // Blocks hold different values.
        assert_ne!(one[..BLOCK], one[BLOCK..2 * BLOCK]);
    }

    /// Φ(x) from the complementary error function of Numerical Recipes (`erfcc`, relative
    /// error below 1.2e-7).
    fn normal_cdf(x: f64) -> f64 {
        let z = x.abs() / std::f64::consts::SQRT_2;
        let t = 1.0 / (1.0 + 0.5 * z);
        let coefficients = [
            -1.265_512_23,
            1.000_023_68,
            0.374_091_96,
            0.096_784_18,
            -0.186_288_06,
            0.278_868_07,
            -1.135_203_98,
            1.488_515_87,
            -0.822_152_23,
            0.170_872_77,
        ];
        let polynomial = coefficients.iter().rev().fold(0.0, |acc, c| acc * t + c);
        let erfc = t * (-z * z + polynomial).exp();
        if x >= 0.0 {
            1.0 - 0.5 * erfc
        } else {
            0.5 * erfc
        }
    }

    #[test]
    fn uniforms_are_uniform_and_depend_on_the_key_only() {
        let n = 200_000;
        let values = uniform_values(n, 3);
        assert!(values.iter().all(|&u| (0.0..1.0).contains(&u)));
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        assert_eq!(values, pool.install(|| uniform_values(n, 3)));
        assert_ne!(values[..100], uniform_values(100, 4)[..]);
        // The build for this CPU (AVX-512 or AVX2 where it has them) gives the portable
        // loop's values.
        let mut portable = vec![0.0; n];
        fill_uniform_portable(&mut portable, 3, 0);
        assert_eq!(values, portable);
        // Counts in ten bins within five standard deviations of n/10.
        let mut bins = [0usize; 10];
        for &u in &values {
            bins[(u * 10.0) as usize] += 1;
        }
        let sd = (n as f64 * 0.1 * 0.9).sqrt();
        for count in bins {
            assert!(
                (count as f64 - n as f64 / 10.0).abs() < 5.0 * sd,
                "{bins:?}"
            );
        }
    }

    #[test]
    fn the_noise_is_standard_normal() {
        let mut values: Vec<f64> = draw(2).into_iter().map(f64::from).collect();
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        let variance = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
        let kurtosis = values.iter().map(|v| (v - mean).powi(4)).sum::<f64>() / n;
        // Five standard errors: sd(mean) = 1/sqrt(n), sd(variance) = sqrt(2/n),
        // sd(fourth moment) = sqrt(96/n).
        assert!(mean.abs() < 5.0 / n.sqrt(), "mean {mean}");
        let variance_error = (variance - 1.0).abs();
        assert!(
            variance_error < 5.0 * (2.0 / n).sqrt(),
            "variance {variance}"
        );
        let kurtosis_error = (kurtosis - 3.0).abs();
        assert!(
            kurtosis_error < 5.0 * (96.0 / n).sqrt(),
            "4th moment {kurtosis}"
        );
        // Kolmogorov-Smirnov against N(0, 1): the 0.1% critical value is 1.95 / sqrt(n).
        values.sort_by(f64::total_cmp);
        let distance = values
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                let cdf = normal_cdf(v);
                (cdf - i as f64 / n).abs().max((i as f64 + 1.0) / n - cdf)
            })
            .fold(0.0, f64::max);
        assert!(distance < 1.95 / n.sqrt(), "KS distance {distance}");
    }
}
