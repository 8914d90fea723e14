//! The spike-and-slab layer against Monte Carlo: its mean-field moments, its noisy forward
//! pass, its weight sampler, and the networks built from it.

mod common;

use burn::tensor::Tensor;
use common::{Lcg, device, tensor, values};
use credit_model::{Classifier, ModelConfig, Noise, Seed, SpikeSlabLinear};

const D_IN: usize = 8;
const D_OUT: usize = 3;

/// A layer with hand-picked parameters, exact 0 and 1 spike probabilities included.
fn fixture_layer(device: &burn::tensor::Device) -> SpikeSlabLinear {
    let mut rng = Lcg(7);
    let m = rng.uniform(D_OUT * D_IN, -1.0, 1.0);
    let xi = rng.uniform(D_OUT * D_IN, 0.0, 0.5);
    let mut pi = rng.uniform(D_OUT * D_IN, 0.0, 1.0);
    pi[0] = 0.0;
    pi[1] = 1.0;
    pi[D_IN] = 0.0;
    SpikeSlabLinear::from_tensors(
        tensor(m, [D_OUT, D_IN], device),
        tensor(xi, [D_OUT, D_IN], device),
        tensor(pi, [D_OUT, D_IN], device),
    )
}

fn spike_slab(model: Classifier) -> credit_model::SpikeSlabNet {
    match model {
        Classifier::SpikeSlab(net) => net,
        _ => panic!("a spike-and-slab network"),
    }
}

fn fixture_input() -> Vec<f64> {
    Lcg(11).uniform(D_IN, 0.0, 1.0)
}

/// Sample mean, variance and the standard errors of both.
fn moments(samples: &[f64]) -> (f64, f64, f64, f64) {
    let n = samples.len() as f64;
    let mean = samples.iter().sum::<f64>() / n;
    let central = |p: i32| samples.iter().map(|x| (x - mean).powi(p)).sum::<f64>() / n;
    let var = central(2);
    let m4 = central(4);
    (mean, var, (var / n).sqrt(), ((m4 - var * var) / n).sqrt())
}

/// Checks columns of `[samples, D_OUT]` draws against the expected mean and variance.
fn assert_matches_moments(draws: &[f64], expected_mean: &[f64], expected_var: &[f64]) {
    for unit in 0..D_OUT {
        let column: Vec<f64> = draws.iter().skip(unit).step_by(D_OUT).copied().collect();
        let (mean, var, mean_se, var_se) = moments(&column);
        assert!(
            (mean - expected_mean[unit]).abs() < 5.0 * mean_se,
            "unit {unit}: Monte Carlo mean {mean} vs G/sqrt(N) {} (se {mean_se})",
            expected_mean[unit]
        );
        assert!(
            (var - expected_var[unit]).abs() < 5.0 * var_se,
            "unit {unit}: Monte Carlo variance {var} vs Delta/N {} (se {var_se})",
            expected_var[unit]
        );
    }
}

#[test]
fn preactivation_moments_match_sampled_weight_matrices() {
    let device = device();
    let layer = fixture_layer(&device);
    let a = fixture_input();
    let (mean, std) = layer.preactivation_moments(tensor(a.clone(), [1, D_IN], &device));
    let expected_mean = values(mean);
    let expected_var: Vec<f64> = values(std).iter().map(|s| s * s).collect();

    // h = sum_j a_j w_ij / sqrt(N) for 200k independently drawn weight matrices.
    let samples = 200_000;
    let weights = layer.sample_weight_stack(samples, Seed::new(3));
    let input: Tensor<3> = tensor(a, [1, 1, D_IN], &device);
    let h = (weights * input)
        .sum_dim(2)
        .reshape([samples, D_OUT])
        .div_scalar((D_IN as f64).sqrt());
    assert_matches_moments(&values(h), &expected_mean, &expected_var);
}

#[test]
fn noisy_forward_has_the_mean_field_distribution() {
    let device = device();
    let layer = fixture_layer(&device);
    let a = fixture_input();
    let (mean, std) = layer.preactivation_moments(tensor(a.clone(), [1, D_IN], &device));
    let expected_mean = values(mean);
    let expected_var: Vec<f64> = values(std).iter().map(|s| s * s).collect();

    let samples = 200_000;
    let batch: Tensor<2> = tensor(a, [1, D_IN], &device).repeat_dim(0, samples);
    let h = layer.forward(batch.clone(), Noise::Sampled(Seed::new(4)));
    assert_matches_moments(&values(h), &expected_mean, &expected_var);

    let off = values(layer.forward(batch.slice([0..1, 0..D_IN]), Noise::Off));
    for (o, e) in off.iter().zip(&expected_mean) {
        assert!(
            (o - e).abs() < 1e-6,
            "noise off gives G/sqrt(N): {o} vs {e}"
        );
    }
}

#[test]
fn sampled_weights_follow_the_spike_and_slab_law() {
    let device = device();
    let layer = fixture_layer(&device);
    let samples = 100_000;
    let stack = values(layer.sample_weight_stack(samples, Seed::new(5)));
    let m = values(layer.m.val());
    let xi = values(layer.xi.val());
    let pi = values(layer.pi.val());
    let per = D_OUT * D_IN;
    for k in 0..per {
        let draws: Vec<f64> = stack.iter().skip(k).step_by(per).copied().collect();
        let zeros = draws.iter().filter(|&&w| w == 0.0).count() as f64 / samples as f64;
        let se = (pi[k] * (1.0 - pi[k]) / samples as f64).sqrt().max(1e-9);
        assert!(
            (zeros - pi[k]).abs() <= 5.0 * se,
            "weight {k}: zero fraction {zeros} vs pi {}",
            pi[k]
        );
        let kept: Vec<f64> = draws.iter().copied().filter(|&w| w != 0.0).collect();
        if kept.len() > 1000 {
            let (mean, var, mean_se, var_se) = moments(&kept);
            assert!(
                (mean - m[k]).abs() < 5.0 * mean_se,
                "weight {k}: slab mean {mean} vs m {}",
                m[k]
            );
            assert!(
                (var - xi[k]).abs() < 5.0 * var_se,
                "weight {k}: slab variance {var} vs xi {}",
                xi[k]
            );
        }
    }
}

#[test]
fn a_layer_with_no_spikes_and_no_variance_samples_its_mean() {
    let device = device();
    let m = Lcg(2).uniform(D_OUT * D_IN, -1.0, 1.0);
    let layer = SpikeSlabLinear::from_tensors(
        tensor(m.clone(), [D_OUT, D_IN], &device),
        Tensor::zeros([D_OUT, D_IN], &device),
        Tensor::zeros([D_OUT, D_IN], &device),
    );
    let sampled = values(layer.sample_weights(Seed::new(1)));
    for (s, e) in sampled.iter().zip(&m) {
        assert!((s - e).abs() < 1e-6, "{s} vs {e}");
    }
}

#[test]
fn the_mean_network_equals_the_noise_free_forward_pass() {
    let device = device();
    let config = ModelConfig {
        sizes: vec![D_IN, 5, D_OUT],
        pi_init: 0.3,
        ..ModelConfig::default()
    };
    let net = spike_slab(config.init(Seed::new(6), &device));
    let input: Tensor<2> = tensor(Lcg(9).uniform(4 * D_IN, 0.0, 1.0), [4, D_IN], &device);
    let direct = values(net.forward(input.clone(), Noise::Off));
    let via_mean = values(net.mean_network().forward(input));
    for (a, b) in direct.iter().zip(&via_mean) {
        assert!((a - b).abs() < 1e-5, "{a} vs {b}");
    }
    assert_eq!(net.sizes(), vec![D_IN, 5, D_OUT]);
    assert_eq!(
        net.sample_network(Seed::new(1)).sizes(),
        vec![D_IN, 5, D_OUT]
    );
}

#[test]
fn initialisation_follows_the_reference_code() {
    let device = device();
    let net = spike_slab(ModelConfig::default().init(Seed::new(8), &device));
    for layer in &net.layers {
        let m = values(layer.m.val());
        let (mean, var, mean_se, _) = moments(&m);
        let std = (2.0f64 / 784.0).sqrt();
        assert!(mean.abs() < 5.0 * mean_se, "m mean {mean}");
        assert!(
            (var.sqrt() / std - 1.0).abs() < 0.08,
            "m std {} vs {std}",
            var.sqrt()
        );
        let xi = values(layer.xi.val());
        assert!(
            xi.iter().all(|&x| (0.0..0.01).contains(&x)),
            "xi in [0, 0.01)"
        );
        let xi_mean = xi.iter().sum::<f64>() / xi.len() as f64;
        assert!((xi_mean - 0.005).abs() < 0.0005, "xi mean {xi_mean}");
        assert!(
            values(layer.pi.val()).iter().all(|&p| p == 0.0),
            "pi starts at 0"
        );
    }
}

#[test]
fn initialisation_is_a_function_of_the_seed() {
    let device = device();
    let config = ModelConfig {
        sizes: vec![20, 17, 3],
        ..ModelConfig::default()
    };
    let params = |seed: u64| {
        let net = spike_slab(config.init(Seed::new(seed), &device));
        let layer = &net.layers[0];
        [values(layer.m.val()), values(layer.xi.val())]
    };
    assert_eq!(params(1), params(1));
    assert_ne!(params(1)[0], params(2)[0]);
    assert_ne!(params(1)[1], params(2)[1]);
}

/// Every value the configuration accepts at the edges of its ranges initialises both
/// networks (`xi ~ U(0, 0)` once made burn's sampler panic).
#[test]
fn every_edge_of_the_init_ranges_initialises() {
    let device = device();
    for (m_init_std, xi_init_max, pi_init) in [
        (0.0, 0.0, 0.0),
        (0.0, 0.0, 1.0),
        (1e6, 1e6, 0.5),
        (0.05, 0.0, 0.0),
    ] {
        for kind in [
            credit_model::ModelKind::SpikeSlab,
            credit_model::ModelKind::Deterministic,
        ] {
            let config = ModelConfig {
                kind,
                sizes: vec![D_IN, 5, D_OUT],
                m_init_std,
                xi_init_max,
                pi_init,
                ..ModelConfig::default()
            };
            let model = config.init(Seed::new(0), &device);
            let input: Tensor<2> = tensor(fixture_input(), [1, D_IN], &device);
            let logits = values(model.forward(input, Noise::Sampled(Seed::new(1))));
            assert!(
                logits.iter().all(|v| v.is_finite()),
                "{config:?}: {logits:?}"
            );
            if let Classifier::SpikeSlab(net) = model {
                let xi = values(net.layers[0].xi.val());
                assert!(
                    xi.iter()
                        .all(|&x| (0.0..=xi_init_max.max(0.0)).contains(&x))
                );
                assert!(values(net.layers[0].pi.val()).iter().all(|&p| p == pi_init));
            }
        }
    }
}
