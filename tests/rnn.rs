//! The spike-and-slab recurrent network in float64 with the noise fixed: burn's autodiff
//! through time against central finite differences, and against the gradients of the
//! authors' hand-derived BPTT (`run_bptt` of `BPTT-SAS-28by28.py` in
//! ZouWenXuan/Spike-and-Slab-RNN), written out here from its formulas; the mean network
//! against the noise-free forward; the presets' initialisation. (The spectral norm and the
//! clipping are tested in `crates/train/src/config/tests.rs`.)
//!
//! The recurrent layer (17 units, above a vector's width) goes through flex's kernels, the
//! readout (3 classes) through the composed operations. This file is its own test binary
//! because it switches the CPU device to float64.

// The oracle indexes as the script's formulas do.
#![allow(clippy::needless_range_loop)]

mod common;

use burn::nn::loss::CrossEntropyLossConfig;
use burn::tensor::{Device, Int, Tensor, TensorData};
use common::{Lcg, assert_close_relative, tensor, values};
use credit_model::{Noise, RnnDynamics, RnnScaling, Seed, SpikeSlabLinear, SpikeSlabRnn};
use credit_ops::mean_field::DeltaFloor;

const D: usize = 3;
const N_REC: usize = 17;
const CLASSES: usize = 3;
const STEPS: usize = 4;
const BATCH: usize = 4;
const LABELS: [usize; BATCH] = [0, 2, 1, 2];
const TAU: f64 = 3.0;
const H0: f64 = 0.1;

/// One matrix's parameters, row-major `[d_output, d_input]`.
#[derive(Clone)]
struct Params {
    rows: usize,
    cols: usize,
    m: Vec<f64>,
    xi: Vec<f64>,
    pi: Vec<f64>,
}

impl Params {
    fn random(rows: usize, cols: usize, rng: &mut Lcg) -> Self {
        let n = rows * cols;
        let mut pi = rng.uniform(n, 0.0, 0.8);
        // Some exact spikes and slabs, as training leaves them.
        for k in (0..n).step_by(5) {
            pi[k] = 0.0;
        }
        Self {
            rows,
            cols,
            m: rng.uniform(n, -0.9, 0.9),
            xi: rng.uniform(n, 0.01, 0.3),
            pi,
        }
    }

    fn mu(&self, k: usize) -> f64 {
        (1.0 - self.pi[k]) * self.m[k]
    }

    fn var(&self, k: usize) -> f64 {
        (1.0 - self.pi[k]) * (self.xi[k] + self.pi[k] * self.m[k] * self.m[k])
    }

    fn layer(&self, device: &Device) -> SpikeSlabLinear {
        let shape = [self.rows, self.cols];
        SpikeSlabLinear::from_tensors(
            tensor(self.m.clone(), shape, device),
            tensor(self.xi.clone(), shape, device),
            tensor(self.pi.clone(), shape, device),
        )
        .with_floor(DeltaFloor::EXACT)
    }
}

/// Input, recurrent, readout.
type Net = [Params; 3];

struct Fixture {
    net: Net,
    /// `[batch][t D + i]`.
    input: Vec<f64>,
    /// `[t][batch][unit]`.
    eps: Vec<Vec<f64>>,
    /// `[batch][class]`.
    eps_out: Vec<f64>,
}

fn fixture() -> Fixture {
    let mut rng = Lcg(7);
    let net = [
        Params::random(N_REC, D, &mut rng),
        Params::random(N_REC, N_REC, &mut rng),
        Params::random(CLASSES, N_REC, &mut rng),
    ];
    let mut input = rng.uniform(BATCH * STEPS * D, 0.0, 1.0);
    // Exact zeros, as MNIST's pixels.
    for k in (0..input.len()).step_by(3) {
        input[k] = 0.0;
    }
    let normal = |rng: &mut Lcg, n: usize| -> Vec<f64> {
        (0..n)
            .map(|_| {
                let (u, v) = (rng.next().max(1e-12), rng.next());
                (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
            })
            .collect()
    };
    let eps = (0..STEPS)
        .map(|_| normal(&mut rng, BATCH * N_REC))
        .collect();
    let eps_out = normal(&mut rng, BATCH * CLASSES);
    Fixture {
        net,
        input,
        eps,
        eps_out,
    }
}

fn rnn(net: &Net, device: &Device) -> SpikeSlabRnn {
    SpikeSlabRnn {
        input: net[0].layer(device),
        recurrent: net[1].layer(device),
        readout: net[2].layer(device),
        dynamics: RnnDynamics {
            tau: TAU,
            h0: H0,
            scaling: RnnScaling::None,
            input_weights: credit_model::InputWeights::SpikeSlab,
        },
    }
}

fn loss(net: &SpikeSlabRnn, f: &Fixture, device: &Device) -> Tensor<1> {
    let input = tensor(f.input.clone(), [BATCH, STEPS * D], device);
    let eps: Vec<Tensor<2>> = f
        .eps
        .iter()
        .map(|e| tensor(e.clone(), [BATCH, N_REC], device))
        .collect();
    let eps_out = tensor(f.eps_out.clone(), [BATCH, CLASSES], device);
    let logits = net.forward_with_eps(input, &eps, eps_out);
    let labels: Vec<i64> = LABELS.iter().map(|&l| l as i64).collect();
    let targets = Tensor::<1, Int>::from_data(TensorData::new(labels, [BATCH]), device);
    CrossEntropyLossConfig::new()
        .init(device)
        .forward(logits, targets)
}

/// `(dm, dxi, dpi)` of the three matrices by the script's BPTT: `z_t = dL/dh_t`,
/// `e_t = z_t eps_t / delta_t` (0 where `delta_t = 0`, `variance_fix`), for `t = T..1`:
///
/// ```text
/// gm  += (1/tau) [(1 - pi) (z_t a_tᵀ) + mu pi (e_t (a_t²)ᵀ)]
/// gpi += (1/tau) [-m (z_t a_tᵀ) - ((2 pi - 1) m² + xi) (e_t (a_t²)ᵀ) / 2]
/// gxi += (1/(2 tau)) (1 - pi) (e_t (a_t²)ᵀ)
/// z_{t-1} = (1 - 1/tau) z_t + (1/tau) f'(h_{t-1}) [mu_recᵀ z_t + r_{t-1} (var_recᵀ e_t)]
/// ```
///
/// with `a_t = r_{t-1}` for the recurrent matrix and `x_t` for the input one, and the
/// readout's as a feed-forward layer on `r_T`; all divided by the batch size.
fn script_bptt(f: &Fixture) -> [(Vec<f64>, Vec<f64>, Vec<f64>); 3] {
    let [inp, rec, out] = &f.net;
    let x = |t: usize, b: usize, i: usize| f.input[b * STEPS * D + t * D + i];
    // Forward, [t][b][unit]; r[0] = relu(h0), h[t + 1] after step t.
    let mut h = vec![vec![vec![H0; N_REC]; BATCH]];
    let mut r = vec![vec![vec![H0.max(0.0); N_REC]; BATCH]];
    let mut delta = Vec::new();
    for t in 0..STEPS {
        let mut h_t = vec![vec![0.0; N_REC]; BATCH];
        let mut d_t = vec![vec![0.0; N_REC]; BATCH];
        for b in 0..BATCH {
            for i in 0..N_REC {
                let (mut g, mut var) = (0.0, 0.0);
                for j in 0..N_REC {
                    let a = r[t][b][j];
                    g += rec.mu(i * N_REC + j) * a;
                    var += rec.var(i * N_REC + j) * a * a;
                }
                for j in 0..D {
                    let a = x(t, b, j);
                    g += inp.mu(i * D + j) * a;
                    var += inp.var(i * D + j) * a * a;
                }
                let dl = var.sqrt();
                let u = g + dl * f.eps[t][b * N_REC + i];
                h_t[b][i] = h[t][b][i] + (u - h[t][b][i]) / TAU;
                d_t[b][i] = dl;
            }
        }
        r.push(
            h_t.iter()
                .map(|v| v.iter().map(|&z| z.max(0.0)).collect())
                .collect(),
        );
        h.push(h_t);
        delta.push(d_t);
    }
    // Readout and err = softmax(y) - y_.
    let r_last = &r[STEPS];
    let mut err = vec![vec![0.0; CLASSES]; BATCH];
    let mut e_out = vec![vec![0.0; CLASSES]; BATCH];
    for b in 0..BATCH {
        let mut y = [0.0; CLASSES];
        let mut d_out = [0.0; CLASSES];
        for c in 0..CLASSES {
            let (mut g, mut var) = (0.0, 0.0);
            for j in 0..N_REC {
                g += out.mu(c * N_REC + j) * r_last[b][j];
                var += out.var(c * N_REC + j) * r_last[b][j] * r_last[b][j];
            }
            d_out[c] = var.sqrt();
            y[c] = g + d_out[c] * f.eps_out[b * CLASSES + c];
        }
        let top = y.iter().cloned().fold(f64::MIN, f64::max);
        let sum: f64 = y.iter().map(|v| (v - top).exp()).sum();
        for c in 0..CLASSES {
            err[b][c] = (y[c] - top).exp() / sum - if LABELS[b] == c { 1.0 } else { 0.0 };
            e_out[b][c] = if d_out[c] > 0.0 {
                err[b][c] * f.eps_out[b * CLASSES + c] / d_out[c]
            } else {
                0.0
            };
        }
    }
    let zeros = |p: &Params| {
        let n = p.rows * p.cols;
        (vec![0.0; n], vec![0.0; n], vec![0.0; n])
    };
    let mut grads = [zeros(inp), zeros(rec), zeros(out)];
    // A layer's gradient from its output gradient `z` and `e`, its input `a`, times `k`.
    let accumulate = |g: &mut (Vec<f64>, Vec<f64>, Vec<f64>),
                      p: &Params,
                      z: &[f64],
                      e: &[f64],
                      a: &[f64],
                      k: f64| {
        for i in 0..p.rows {
            for j in 0..p.cols {
                let w = i * p.cols + j;
                let (za, ea) = (z[i] * a[j], e[i] * a[j] * a[j]);
                let (m, xi, pi) = (p.m[w], p.xi[w], p.pi[w]);
                g.0[w] += k * ((1.0 - pi) * za + p.mu(w) * pi * ea);
                g.1[w] += k * 0.5 * (1.0 - pi) * ea;
                g.2[w] += k * (-m * za - 0.5 * ((2.0 * pi - 1.0) * m * m + xi) * ea);
            }
        }
    };
    for b in 0..BATCH {
        accumulate(&mut grads[2], out, &err[b], &e_out[b], &r_last[b], 1.0);
        // z_T = f'(h_T) [mu_outᵀ err + r_T (var_outᵀ e_out)].
        let mut z: Vec<f64> = (0..N_REC)
            .map(|j| {
                let on = if h[STEPS][b][j] > 0.0 { 1.0 } else { 0.0 };
                let (mut back, mut back_var) = (0.0, 0.0);
                for c in 0..CLASSES {
                    back += out.mu(c * N_REC + j) * err[b][c];
                    back_var += out.var(c * N_REC + j) * e_out[b][c];
                }
                on * (back + r_last[b][j] * back_var)
            })
            .collect();
        for t in (0..STEPS).rev() {
            let e: Vec<f64> = (0..N_REC)
                .map(|i| {
                    let dl = delta[t][b][i];
                    if dl > 0.0 {
                        z[i] * f.eps[t][b * N_REC + i] / dl
                    } else {
                        0.0
                    }
                })
                .collect();
            let xs: Vec<f64> = (0..D).map(|j| x(t, b, j)).collect();
            accumulate(&mut grads[1], rec, &z, &e, &r[t][b], 1.0 / TAU);
            accumulate(&mut grads[0], inp, &z, &e, &xs, 1.0 / TAU);
            if t > 0 {
                z = (0..N_REC)
                    .map(|j| {
                        let on = if h[t][b][j] > 0.0 { 1.0 } else { 0.0 };
                        let (mut back, mut back_var) = (0.0, 0.0);
                        for i in 0..N_REC {
                            back += rec.mu(i * N_REC + j) * z[i];
                            back_var += rec.var(i * N_REC + j) * e[i];
                        }
                        (1.0 - 1.0 / TAU) * z[j] + on / TAU * (back + r[t][b][j] * back_var)
                    })
                    .collect();
            }
        }
    }
    for g in &mut grads {
        for v in [&mut g.0, &mut g.1, &mut g.2] {
            v.iter_mut().for_each(|x| *x /= BATCH as f64);
        }
    }
    grads
}

#[test]
fn bptt_matches_finite_differences_and_the_scripts_hand_derived_gradients() {
    let device = common::f64_device().autodiff();
    let f = fixture();
    let net = rnn(&f.net, &device);
    let grads = loss(&net, &f, &device).backward();
    let script = script_bptt(&f);
    let plain = device.clone().inner();
    let loss_at = |params: &Net| -> f64 { values(loss(&rnn(params, &plain), &f, &plain))[0] };
    let names = ["input", "recurrent", "readout"];
    for (l, layer) in net.matrices().into_iter().enumerate() {
        let hand = [&script[l].0[..], &script[l].1, &script[l].2];
        common::check_layer_gradients(
            names[l],
            layer,
            &grads,
            ("script", hand, 1e-12),
            |t, k, delta| {
                let mut p = f.net.clone();
                let q = &mut p[l];
                [&mut q.m, &mut q.xi, &mut q.pi][t][k] += delta;
                loss_at(&p)
            },
        );
    }
}

#[test]
fn the_mean_network_is_the_noise_free_forward_and_truncation_cuts_the_sequence() {
    let device = common::f64_device();
    let f = fixture();
    let net = rnn(&f.net, &device);
    let input = tensor(f.input.clone(), [BATCH, STEPS * D], &device);
    let mean = values(net.mean_network().forward(input.clone()));
    let off = values(net.forward(input.clone(), Noise::Off));
    assert_close_relative("mean network vs Noise::Off", &mean, &off, 1e-12);
    // Cut after t steps = the whole forward of the first t steps' inputs.
    for t in 1..STEPS {
        let cut = values(net.mean_network().forward_truncated(input.clone(), t));
        let first = input.clone().slice([0..BATCH, 0..t * D]);
        let whole = values(net.mean_network().forward(first));
        assert_close_relative(&format!("cut after {t}"), &cut, &whole, 1e-12);
    }
    // A sampled network with every pi = 0 and xi = 0 is the mean network.
    let mut exact = f.net.clone();
    for p in &mut exact {
        p.pi.iter_mut().for_each(|v| *v = 0.0);
        p.xi.iter_mut().for_each(|v| *v = 0.0);
    }
    let exact = rnn(&exact, &device);
    let sampled = values(exact.sample_network(Seed::new(3)).forward(input.clone()));
    let mean = values(exact.mean_network().forward(input));
    assert_close_relative("sampled with xi = pi = 0", &sampled, &mean, 1e-6);
}

#[test]
fn the_preset_initialises_as_the_script() {
    let config =
        credit_train::RunConfig::load(std::path::Path::new("configs/smnist-rnn.toml"), &[])
            .expect("the preset loads");
    let device = common::device();
    let model = config.model.init(Seed::new(0), &device);
    let net = model.spike_slab_rnn().expect("a recurrent network");
    let m_rec = values(net.recurrent.m.val());
    for (k, &v) in m_rec.iter().enumerate() {
        let want = if k / 100 == k % 100 { 1.0 } else { 0.0 };
        assert_eq!(v, want, "m_rec[{k}]");
    }
    let (mean, sd) = credit_analysis::mean_sd(&values(net.input.m.val()));
    assert!(
        mean.abs() < 0.05 && (sd - 0.529).abs() < 0.03,
        "m_in ~ N(0, 0.28): {mean} {sd}"
    );
    let xi = values(net.recurrent.xi.val());
    assert!(
        xi.iter().all(|&x| (0.0..0.1).contains(&x)),
        "xi_rec ~ 0.1 U(0, 1)"
    );
    assert!(
        values(net.readout.pi.val()).iter().all(|&p| p == 0.0),
        "pi = 0"
    );
    // Every parameter is trained: each one gets a gradient.
    let autodiff = device.clone().autodiff();
    let model = config.model.init(Seed::new(0), &autodiff);
    let input = Tensor::<2>::ones([2, 784], &autodiff);
    let grads = model
        .forward(input, Noise::Sampled(Seed::new(1)))
        .sum()
        .backward();
    let net = model.spike_slab_rnn().expect("a recurrent network");
    for (name, layer) in ["input", "recurrent", "readout"].iter().zip(net.matrices()) {
        for (p, param) in [("m", &layer.m), ("xi", &layer.xi), ("pi", &layer.pi)] {
            assert!(
                param.val().grad(&grads).is_some(),
                "{name} {p} has no gradient"
            );
        }
    }
    assert_eq!(net.dynamics.tau, 10.0);
    assert_eq!(net.dynamics.h0, 0.1);
}

#[test]
fn the_pixel_preset_has_plain_input_weights_that_only_train_their_means() {
    let config =
        credit_train::RunConfig::load(std::path::Path::new("configs/smnist-rnn-pixel.toml"), &[])
            .expect("the preset loads");
    let device = common::device().autodiff();
    let model = config.model.init(Seed::new(0), &device);
    let net = model.spike_slab_rnn().expect("a recurrent network");
    assert!(values(net.input.xi.val()).iter().all(|&v| v == 0.0));
    assert!(values(net.input.pi.val()).iter().all(|&v| v == 0.0));
    assert!(
        values(net.recurrent.xi.val())
            .iter()
            .all(|&v| (0.0..0.01).contains(&v))
    );
    let input = Tensor::<2>::ones([2, 784], &device);
    let grads = model
        .forward(input, Noise::Sampled(Seed::new(1)))
        .sum()
        .backward();
    assert!(net.input.m.val().grad(&grads).is_some(), "m_in trains");
    assert!(
        net.input.xi.val().grad(&grads).is_none(),
        "xi_in is not trained"
    );
    assert!(
        net.input.pi.val().grad(&grads).is_none(),
        "pi_in is not trained"
    );
    assert!(
        net.recurrent.xi.val().grad(&grads).is_some(),
        "xi_rec trains"
    );
}
