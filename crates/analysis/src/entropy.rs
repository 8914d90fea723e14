//! The paper's entropy of each connection's spike-and-slab weight distribution.
//!
//! The spike is taken as a box of width `2e-4` and height `0.5e4` around zero. Per connection:
//!
//! - `0` if `pi = 1` (always absent);
//! - `0` if `xi <= 1e-8` and (`m = 0` or `pi = 0`) (a single fixed value);
//! - `-pi ln pi - (1-pi) ln(1-pi)` if `xi <= 1e-8` and `0 < pi < 1` (two fixed values);
//! - otherwise `-pi ln(pi + (1-pi) N(0; m, xi) + 1e-6) - (1-pi) E_z[ln(pi box(m + z sqrt(xi))
//!   + (1-pi) N(z) / sqrt(xi))]` with `z ~ N(0, 1)`, the expectation by Monte Carlo.

use credit_model::Seed;
use rand_distr::{Distribution, StandardNormal};

use crate::params::LayerParams;

/// Half the width of the box that stands for the spike.
pub const BOX_HALF_WIDTH: f64 = 1e-4;
/// Height of the box (`1 / width`, so it integrates to one).
pub const BOX_HEIGHT: f64 = 0.5e4;
/// Slab variances at or below this count as zero.
pub const XI_ZERO: f64 = 1e-8;

/// Density of `N(mean, var)` at `x`.
fn normal_pdf(x: f64, mean: f64, var: f64) -> f64 {
    (-(x - mean).powi(2) / (2.0 * var)).exp() / (2.0 * std::f64::consts::PI * var).sqrt()
}

/// The entropy where it has no slab integral, `None` in the general case.
pub fn special_case(m: f64, xi: f64, pi: f64) -> Option<f64> {
    // Always absent, or a single fixed value.
    let deterministic = pi >= 1.0 || (xi <= XI_ZERO && (m == 0.0 || pi <= 0.0));
    if deterministic {
        Some(0.0)
    } else if xi <= XI_ZERO {
        Some(-pi * pi.ln() - (1.0 - pi) * (1.0 - pi).ln())
    } else {
        None
    }
}

/// `-pi ln(pi + (1-pi) N(0; m, xi) + 1e-6)`.
pub fn spike_term(m: f64, xi: f64, pi: f64) -> f64 {
    -pi * (pi + (1.0 - pi) * normal_pdf(0.0, m, xi) + 1e-6).ln()
}

/// `ln(pi box(m + z sqrt(xi)) + (1-pi) N(z) / sqrt(xi))`, the slab integrand at `z`.
pub fn slab_integrand(z: f64, m: f64, xi: f64, pi: f64) -> f64 {
    let w = m + z * xi.sqrt();
    let spike = if w.abs() < BOX_HALF_WIDTH {
        pi * BOX_HEIGHT
    } else {
        0.0
    };
    (spike + (1.0 - pi) * normal_pdf(z, 0.0, 1.0) / xi.sqrt()).ln()
}

/// The entropy with the slab expectation averaged over the given standard-normal draws.
pub fn entropy_monte_carlo(m: f64, xi: f64, pi: f64, z: &[f64]) -> f64 {
    if let Some(h) = special_case(m, xi, pi) {
        return h;
    }
    let mean = z.iter().map(|&z| slab_integrand(z, m, xi, pi)).sum::<f64>() / z.len() as f64;
    spike_term(m, xi, pi) - (1.0 - pi) * mean
}

/// The slab term in closed form when the box is negligible under the slab
/// (`|m| / sqrt(xi)` large or `xi` far above the box width):
/// `-(1-pi) E_z[ln((1-pi) N(z)/sqrt(xi))] = (1-pi) (ln(2 pi e xi)/2 - ln(1-pi))`.
pub fn slab_term_closed_form(xi: f64, pi: f64) -> f64 {
    (1.0 - pi)
        * (0.5 * (2.0 * std::f64::consts::PI * std::f64::consts::E * xi).ln() - (1.0 - pi).ln())
}

/// The entropy with the slab term in closed form (see [`slab_term_closed_form`]).
pub fn entropy_closed_form(m: f64, xi: f64, pi: f64) -> f64 {
    special_case(m, xi, pi).unwrap_or_else(|| spike_term(m, xi, pi) + slab_term_closed_form(xi, pi))
}

/// Monte Carlo entropy of every connection of a layer, `samples` draws each, from `seed`.
pub fn layer_entropies(layer: &LayerParams, samples: usize, seed: Seed) -> Vec<f64> {
    let mut rng = seed.rng();
    let mut z = vec![0.0; samples];
    (0..layer.len())
        .map(|k| {
            let (m, xi, pi) = (
                f64::from(layer.m[k]),
                f64::from(layer.xi[k]),
                f64::from(layer.pi[k]),
            );
            if let Some(h) = special_case(m, xi, pi) {
                return h;
            }
            z.iter_mut()
                .for_each(|v| *v = StandardNormal.sample(&mut rng));
            entropy_monte_carlo(m, xi, pi, &z)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The general-case entropy by trapezoidal integration over z in [-12, 12], on a grid
    /// fine enough to resolve the box.
    fn entropy_by_quadrature(m: f64, xi: f64, pi: f64) -> f64 {
        let (lo, hi, n) = (-12.0, 12.0, 2_000_000);
        let dz = (hi - lo) / n as f64;
        let integral: f64 = (0..=n)
            .map(|i| {
                let z = lo + i as f64 * dz;
                let weight = if i == 0 || i == n { 0.5 } else { 1.0 };
                weight * normal_pdf(z, 0.0, 1.0) * slab_integrand(z, m, xi, pi)
            })
            .sum::<f64>()
            * dz;
        spike_term(m, xi, pi) - (1.0 - pi) * integral
    }

    fn draws(n: usize) -> Vec<f64> {
        let mut rng = Seed::new(1).rng();
        (0..n).map(|_| StandardNormal.sample(&mut rng)).collect()
    }

    #[test]
    fn special_cases() {
        assert_eq!(entropy_monte_carlo(0.3, 0.2, 1.0, &[0.0]), 0.0);
        assert_eq!(entropy_monte_carlo(0.0, 0.0, 0.4, &[0.0]), 0.0);
        assert_eq!(entropy_monte_carlo(0.7, 1e-9, 0.0, &[0.0]), 0.0);
        let binary = entropy_monte_carlo(0.7, 0.0, 0.25, &[0.0]);
        let expected = -(0.25f64 * 0.25f64.ln() + 0.75 * 0.75f64.ln());
        assert!((binary - expected).abs() < 1e-12, "{binary} vs {expected}");
    }

    #[test]
    fn monte_carlo_agrees_with_quadrature() {
        let z = draws(400_000);
        // Slab far from zero, slab around zero (the box matters), a narrow slab on zero.
        for (m, xi, pi) in [
            (0.3, 0.01, 0.4),
            (0.0, 0.02, 0.6),
            (5e-5, 1e-7, 0.5),
            (-0.1, 0.5, 0.0),
        ] {
            let mc = entropy_monte_carlo(m, xi, pi, &z);
            let exact = entropy_by_quadrature(m, xi, pi);
            assert!(
                (mc - exact).abs() < 0.01,
                "({m}, {xi}, {pi}): MC {mc} vs quadrature {exact}"
            );
        }
    }

    #[test]
    fn the_closed_form_slab_term_agrees_where_the_box_is_negligible() {
        let z = draws(400_000);
        for (m, xi, pi) in [(0.3, 0.01, 0.4), (-0.2, 0.05, 0.1), (1.0, 0.3, 0.9)] {
            let mc = entropy_monte_carlo(m, xi, pi, &z);
            let closed = entropy_closed_form(m, xi, pi);
            assert!(
                (mc - closed).abs() < 0.005,
                "({m}, {xi}, {pi}): MC {mc} vs closed {closed}"
            );
        }
        // Where the box carries real mass the closed form (box neglected) is off.
        let (m, xi, pi) = (5e-5, 1e-7, 0.5);
        let gap = (entropy_by_quadrature(m, xi, pi) - entropy_closed_form(m, xi, pi)).abs();
        assert!(gap > 0.05, "box effect {gap}");
    }
}
