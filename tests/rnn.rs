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

/// The sizes and dynamics of the script's network.
#[derive(Clone, Copy)]
struct Shape {
    d: usize,
    n_rec: usize,
    classes: usize,
    steps: usize,
    tau: f64,
    h0: f64,
}

const SHAPE: Shape = Shape {
    d: D,
    n_rec: N_REC,
    classes: CLASSES,
    steps: STEPS,
    tau: TAU,
    h0: H0,
};

/// One batch of sequences with its noise.
#[derive(Clone)]
struct ScriptBatch {
    /// `[batch][t D + i]`.
    input: Vec<f64>,
    labels: Vec<usize>,
    /// `[t][batch][unit]`.
    eps: Vec<Vec<f64>>,
    /// `[batch][class]`.
    eps_out: Vec<f64>,
}

struct Fixture {
    net: Net,
    batch: ScriptBatch,
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
        batch: ScriptBatch {
            input,
            labels: LABELS.to_vec(),
            eps,
            eps_out,
        },
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
    let input = tensor(f.batch.input.clone(), [BATCH, STEPS * D], device);
    let eps: Vec<Tensor<2>> = f
        .batch
        .eps
        .iter()
        .map(|e| tensor(e.clone(), [BATCH, N_REC], device))
        .collect();
    let eps_out = tensor(f.batch.eps_out.clone(), [BATCH, CLASSES], device);
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
fn script_bptt(
    net: &Net,
    shape: &Shape,
    batch: &ScriptBatch,
) -> [(Vec<f64>, Vec<f64>, Vec<f64>); 3] {
    let [inp, rec, out] = net;
    let Shape {
        d,
        n_rec,
        classes,
        steps,
        tau,
        h0,
    } = *shape;
    let size = batch.labels.len();
    let x = |t: usize, b: usize, i: usize| batch.input[b * steps * d + t * d + i];
    // Forward, [t][b][unit]; r[0] = relu(h0), h[t + 1] after step t.
    let mut h = vec![vec![vec![h0; n_rec]; size]];
    let mut r = vec![vec![vec![h0.max(0.0); n_rec]; size]];
    let mut delta = Vec::new();
    for t in 0..steps {
        let mut h_t = vec![vec![0.0; n_rec]; size];
        let mut d_t = vec![vec![0.0; n_rec]; size];
        for b in 0..size {
            for i in 0..n_rec {
                let (mut g, mut var) = (0.0, 0.0);
                for j in 0..n_rec {
                    let a = r[t][b][j];
                    g += rec.mu(i * n_rec + j) * a;
                    var += rec.var(i * n_rec + j) * a * a;
                }
                for j in 0..d {
                    let a = x(t, b, j);
                    g += inp.mu(i * d + j) * a;
                    var += inp.var(i * d + j) * a * a;
                }
                let dl = var.sqrt();
                let u = g + dl * batch.eps[t][b * n_rec + i];
                h_t[b][i] = h[t][b][i] + (u - h[t][b][i]) / tau;
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
    let r_last = &r[steps];
    let mut err = vec![vec![0.0; classes]; size];
    let mut e_out = vec![vec![0.0; classes]; size];
    for b in 0..size {
        let mut y = vec![0.0; classes];
        let mut d_out = vec![0.0; classes];
        for c in 0..classes {
            let (mut g, mut var) = (0.0, 0.0);
            for j in 0..n_rec {
                g += out.mu(c * n_rec + j) * r_last[b][j];
                var += out.var(c * n_rec + j) * r_last[b][j] * r_last[b][j];
            }
            d_out[c] = var.sqrt();
            y[c] = g + d_out[c] * batch.eps_out[b * classes + c];
        }
        let top = y.iter().cloned().fold(f64::MIN, f64::max);
        let sum: f64 = y.iter().map(|v| (v - top).exp()).sum();
        for c in 0..classes {
            err[b][c] = (y[c] - top).exp() / sum - if batch.labels[b] == c { 1.0 } else { 0.0 };
            e_out[b][c] = if d_out[c] > 0.0 {
                err[b][c] * batch.eps_out[b * classes + c] / d_out[c]
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
    for b in 0..size {
        accumulate(&mut grads[2], out, &err[b], &e_out[b], &r_last[b], 1.0);
        // z_T = f'(h_T) [mu_outᵀ err + r_T (var_outᵀ e_out)].
        let mut z: Vec<f64> = (0..n_rec)
            .map(|j| {
                let on = if h[steps][b][j] > 0.0 { 1.0 } else { 0.0 };
                let (mut back, mut back_var) = (0.0, 0.0);
                for c in 0..classes {
                    back += out.mu(c * n_rec + j) * err[b][c];
                    back_var += out.var(c * n_rec + j) * e_out[b][c];
                }
                on * (back + r_last[b][j] * back_var)
            })
            .collect();
        for t in (0..steps).rev() {
            let e: Vec<f64> = (0..n_rec)
                .map(|i| {
                    let dl = delta[t][b][i];
                    if dl > 0.0 {
                        z[i] * batch.eps[t][b * n_rec + i] / dl
                    } else {
                        0.0
                    }
                })
                .collect();
            let xs: Vec<f64> = (0..d).map(|j| x(t, b, j)).collect();
            accumulate(&mut grads[1], rec, &z, &e, &r[t][b], 1.0 / tau);
            accumulate(&mut grads[0], inp, &z, &e, &xs, 1.0 / tau);
            if t > 0 {
                z = (0..n_rec)
                    .map(|j| {
                        let on = if h[t][b][j] > 0.0 { 1.0 } else { 0.0 };
                        let (mut back, mut back_var) = (0.0, 0.0);
                        for i in 0..n_rec {
                            back += rec.mu(i * n_rec + j) * z[i];
                            back_var += rec.var(i * n_rec + j) * e[i];
                        }
                        (1.0 - 1.0 / tau) * z[j] + on / tau * (back + r[t][b][j] * back_var)
                    })
                    .collect();
            }
        }
    }
    for g in &mut grads {
        for v in [&mut g.0, &mut g.1, &mut g.2] {
            v.iter_mut().for_each(|x| *x /= size as f64);
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
    let script = script_bptt(&f.net, &SHAPE, &f.batch);
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
    let input = tensor(f.batch.input.clone(), [BATCH, STEPS * D], &device);
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
    // The readout of the final rates is the forward (the perturbation of the readout
    // matrix reads them once).
    let sampled = net.sample_network(Seed::new(5));
    let whole = values(sampled.forward(input.clone()));
    let rates = sampled.final_state(input.clone(), usize::MAX);
    assert_eq!(rates.dims(), [BATCH, N_REC]);
    assert_eq!(values(sampled.readout_logits(rates)), whole);
    // A sampled network with every pi = 0 and xi = 0 is the mean network.
    let mut exact = f.net.clone();
    for p in &mut exact {
        p.pi.iter_mut().for_each(|v| *v = 0.0);
        p.xi.iter_mut().for_each(|v| *v = 0.0);
    }
    let exact = rnn(&exact, &device);
    let sampled = values(exact.sample_network(Seed::new(3)).forward(input.clone()));
    let redrawn = values(exact.forward_redrawn(input.clone(), Seed::new(4)));
    let mean = values(exact.mean_network().forward(input.clone()));
    assert_close_relative("sampled with xi = pi = 0", &sampled, &mean, 1e-6);
    assert_close_relative("redrawn with xi = pi = 0", &redrawn, &mean, 1e-6);
    // With noise the redrawn weights differ at every step: neither the mean network nor
    // one fixed draw.
    let redrawn = values(net.forward_redrawn(input.clone(), Seed::new(4)));
    let fixed = values(net.sample_network(Seed::new(4)).forward(input));
    assert!(
        redrawn
            .iter()
            .zip(&fixed)
            .any(|(a, b)| (a - b).abs() > 1e-3)
    );
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

/// One matrix of a layer as oracle parameters.
fn params_of(layer: &SpikeSlabLinear) -> Params {
    let [rows, cols] = layer.dims();
    Params {
        rows,
        cols,
        m: values(layer.m.val()),
        xi: values(layer.xi.val()),
        pi: values(layer.pi.val()),
    }
}

fn net_of(model: &credit_model::Classifier) -> Net {
    let net = model.spike_slab_rnn().expect("a recurrent network");
    net.matrices().map(params_of)
}

/// The largest singular value of the row-major `[rows, cols]` matrix `g` (numpy's
/// `norm(g, ord=2)`), by power iteration on `gᵀ g` to convergence.
fn largest_singular_value(g: &[f64], rows: usize, cols: usize) -> f64 {
    let mut v = vec![1.0; cols];
    let mut sigma = 0.0;
    for _ in 0..10_000 {
        let u: Vec<f64> = (0..rows)
            .map(|i| (0..cols).map(|j| g[i * cols + j] * v[j]).sum())
            .collect();
        let w: Vec<f64> = (0..cols)
            .map(|j| (0..rows).map(|i| g[i * cols + j] * u[i]).sum())
            .collect();
        let norm = w.iter().map(|x| x * x).sum::<f64>().sqrt();
        if norm == 0.0 {
            return 0.0;
        }
        let next = norm.sqrt();
        v = w.iter().map(|x| x / norm).collect();
        if (next - sigma).abs() <= 1e-15 * next {
            return next;
        }
        sigma = next;
    }
    sigma
}

/// The script's optimizer state: one `Adam` per `m` and `xi` tensor (decoupled decay
/// `lr * 1e-4 * theta`), one `Adam2` per `pi` tensor (no decay), all nine stepped together.
struct ScriptAdam {
    first: Vec<[Vec<f64>; 3]>,
    second: Vec<[Vec<f64>; 3]>,
    t: i32,
}

/// One step of `run_bptt` after its BPTT: each of the nine gradients clipped to spectral
/// norm 10 (`grad_clip`), the Adam updates at rate `lr`, then `pi` clipped into `[0, 1]` and
/// `xi` to `>= 0`.
fn script_update(
    net: &mut Net,
    adam: &mut ScriptAdam,
    grads: [(Vec<f64>, Vec<f64>, Vec<f64>); 3],
    lr: f64,
) {
    const DECAY: f64 = 1e-4;
    let (beta1, beta2, epsilon) = (0.9f64, 0.999f64, 1e-8);
    adam.t += 1;
    let (c1, c2) = (1.0 - beta1.powi(adam.t), 1.0 - beta2.powi(adam.t));
    for (l, (gm, gxi, gpi)) in grads.into_iter().enumerate() {
        let p = &mut net[l];
        let (rows, cols) = (p.rows, p.cols);
        for (w, (theta, mut g)) in [(&mut p.m, gm), (&mut p.xi, gxi), (&mut p.pi, gpi)]
            .into_iter()
            .enumerate()
        {
            let norm = largest_singular_value(&g, rows, cols);
            if norm >= 10.0 {
                g.iter_mut().for_each(|x| *x *= 10.0 / norm);
            }
            let decay = if w < 2 { DECAY } else { 0.0 };
            let (first, second) = (&mut adam.first[l][w], &mut adam.second[l][w]);
            for k in 0..theta.len() {
                first[k] = beta1 * first[k] + (1.0 - beta1) * g[k];
                second[k] = beta2 * second[k] + (1.0 - beta2) * g[k] * g[k];
                let (m_hat, s_hat) = (first[k] / c1, second[k] / c2);
                theta[k] -= lr * (m_hat / (s_hat.sqrt() + epsilon) + decay * theta[k]);
            }
        }
        p.pi.iter_mut().for_each(|v| *v = v.clamp(0.0, 1.0));
        p.xi.iter_mut().for_each(|v| *v = v.max(0.0));
    }
}

/// The largest absolute difference over the nine tensors, and where it is.
fn largest_difference(a: &Net, b: &Net) -> (f64, &'static str) {
    let names = [
        ["m_in", "xi_in", "pi_in"],
        ["m_rec", "xi_rec", "pi_rec"],
        ["m_out", "xi_out", "pi_out"],
    ];
    let mut worst = (0.0, names[0][0]);
    for l in 0..3 {
        let pairs = [
            (&a[l].m, &b[l].m),
            (&a[l].xi, &b[l].xi),
            (&a[l].pi, &b[l].pi),
        ];
        for (w, (x, y)) in pairs.into_iter().enumerate() {
            for (p, q) in x.iter().zip(y) {
                if (p - q).abs() > worst.0 {
                    worst = ((p - q).abs(), names[l][w]);
                }
            }
        }
    }
    worst
}

/// The steps compared (`CREDIT_TRAJECTORY_STEPS`, default 6).
fn trajectory_steps() -> usize {
    std::env::var("CREDIT_TRAJECTORY_STEPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(6)
        .max(1)
}

#[test]
fn credit_takes_the_steps_of_the_28_by_28_script() {
    // The preset in float64 from credit's initial parameters, batches and noise: credit's
    // training step (the Learner's `TrainStep::step` and `optimize`) against the script's
    // forward, BPTT, clipping, Adam and clamps, step by step. With
    // `CREDIT_TRAJECTORY_DUMP=DIR` the inputs and the oracle's parameters after each step
    // are written for `bench/reference/authors_rnn.py trajectory`, which runs the script's
    // own `run_bptt` on them.
    let config = float64_preset(&[]);
    let device = common::f64_device().autodiff();
    let data = credit_train::load_data(&config).expect("the committed MNIST");
    let root = Seed::new(config.seed);
    let mut model = config
        .model
        .init(root.stream(credit_model::Stream::Init), &device);
    let mut oracle = net_of(&model);
    let initial = oracle.clone();
    let zeros = |net: &Net| -> Vec<[Vec<f64>; 3]> {
        net.iter()
            .map(|p| std::array::from_fn(|_| vec![0.0; p.rows * p.cols]))
            .collect()
    };
    let mut adam = ScriptAdam {
        first: zeros(&oracle),
        second: zeros(&oracle),
        t: 0,
    };
    let batches = common::epoch_batches(&config, data.train.len(), 1);
    let mut optimizer = credit_train::optimizer_for(&config.optimizer, batches.len(), &model);
    let lr = credit_train::learning_rate(&config.optimizer, 1);
    let shape = Shape {
        d: 28,
        n_rec: 100,
        classes: 10,
        steps: 28,
        tau: 10.0,
        h0: 0.1,
    };
    let (mut inputs, mut after, mut distances) = (vec![], vec![], vec![]);
    for (b, (indices, noise)) in batches.into_iter().take(trajectory_steps()).enumerate() {
        let rows = indices.len();
        let (input, labels) = common::host_batch(&data.train, &indices);
        let batch = ScriptBatch {
            input,
            labels,
            eps: (0..shape.steps)
                .map(|t| {
                    let key = noise.child(0).child(t as u64).value();
                    credit_ops::noise::standard_normal_values(rows * shape.n_rec, key)
                        .into_iter()
                        .map(f64::from)
                        .collect()
                })
                .collect(),
            eps_out: credit_ops::noise::standard_normal_values(
                rows * shape.classes,
                noise.child(1).value(),
            )
            .into_iter()
            .map(f64::from)
            .collect(),
        };
        let images = data.train.batch(indices.iter().copied(), &device);
        model = common::credit_step(model, &mut optimizer, images, noise, b, lr);
        let grads = script_bptt(&oracle, &shape, &batch);
        script_update(&mut oracle, &mut adam, grads, lr);
        let (distance, at) = largest_difference(&net_of(&model), &oracle);
        eprintln!("step {}: largest distance {distance:.2e} ({at})", b + 1);
        distances.push(distance);
        inputs.push(batch);
        after.push(oracle.clone());
    }
    if let Some(dir) = std::env::var_os("CREDIT_TRAJECTORY_DUMP") {
        dump_trajectory(
            std::path::Path::new(&dir),
            &initial,
            &inputs,
            &after,
            lr,
            &shape,
        );
    }
    // Parameters are of order 0.01-1; float64 rounding of two summation orders stays near
    // 1e-15 over these steps, a difference of maths (a factor, a term, a clip) shows above
    // 1e-6 at once.
    for (s, d) in distances.iter().enumerate() {
        assert!(
            *d < 1e-11,
            "step {}: credit is {d:.2e} from the script's maths",
            s + 1
        );
    }
}

/// The inputs, the initial parameters and the oracle's parameters after every step, as
/// `.npy` files in `dir`: `initial_{m,xi,pi}_{in,rec,out}` (`[rows, cols]`),
/// `after_*` (`[steps, rows, cols]`), `x` (`[steps, batch, T D]`), `labels`
/// (`[steps, batch]`), `eps` (`[steps, T, batch, n_rec]`), `eps_out`
/// (`[steps, batch, classes]`), `lr` (`[steps]`).
fn dump_trajectory(
    dir: &std::path::Path,
    initial: &Net,
    inputs: &[ScriptBatch],
    after: &[Net],
    lr: f64,
    shape: &Shape,
) {
    std::fs::create_dir_all(dir).unwrap();
    let steps = inputs.len() as u64;
    let rows = inputs[0].labels.len() as u64;
    for (l, matrix) in ["in", "rec", "out"].iter().enumerate() {
        let p = &initial[l];
        let dims = [p.rows as u64, p.cols as u64];
        let tensors =
            |net: &Net, w: usize| -> Vec<f64> { [&net[l].m, &net[l].xi, &net[l].pi][w].clone() };
        for (w, name) in ["m", "xi", "pi"].iter().enumerate() {
            common::write_npy(
                &dir.join(format!("initial_{name}_{matrix}.npy")),
                &tensors(initial, w),
                &dims,
            );
            let all: Vec<f64> = after.iter().flat_map(|net| tensors(net, w)).collect();
            common::write_npy(
                &dir.join(format!("after_{name}_{matrix}.npy")),
                &all,
                &[steps, dims[0], dims[1]],
            );
        }
    }
    let flat =
        |f: &dyn Fn(&ScriptBatch) -> Vec<f64>| -> Vec<f64> { inputs.iter().flat_map(f).collect() };
    let (t, width) = (shape.steps as u64, (shape.steps * shape.d) as u64);
    common::write_npy(
        &dir.join("x.npy"),
        &flat(&|b| b.input.clone()),
        &[steps, rows, width],
    );
    common::write_npy(
        &dir.join("labels.npy"),
        &flat(&|b| b.labels.iter().map(|&l| l as f64).collect()),
        &[steps, rows],
    );
    common::write_npy(
        &dir.join("eps.npy"),
        &flat(&|b| b.eps.concat()),
        &[steps, t, rows, shape.n_rec as u64],
    );
    common::write_npy(
        &dir.join("eps_out.npy"),
        &flat(&|b| b.eps_out.clone()),
        &[steps, rows, shape.classes as u64],
    );
    common::write_npy(&dir.join("lr.npy"), &vec![lr; inputs.len()], &[steps]);
}

/// `configs/smnist-rnn.toml` in float64 on the committed MNIST, with `overrides`.
fn float64_preset(overrides: &[&str]) -> credit_train::RunConfig {
    let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut all = vec![
        format!("data.dir={}", manifest.join("data/mnist").display()),
        "train.precision=\"f64\"".to_string(),
    ];
    all.extend(overrides.iter().map(|o| o.to_string()));
    credit_train::RunConfig::load(&manifest.join("configs/smnist-rnn.toml"), &all)
        .expect("the preset loads")
}

#[test]
fn the_steps_compared_are_the_steps_credit_train_takes() {
    // Two epochs of 3 batches through `credit train` (burn's Learner, the loader's order
    // and noise, `batches_per_epoch`) end where the step loop of the trajectory check
    // ends: bit for bit.
    use burn::module::Module as _;
    let config = float64_preset(&[
        "train.epochs=2",
        "train.batches_per_epoch=3",
        "data.test_size=200",
    ]);
    let root = tempfile::tempdir().unwrap();
    let run = credit_train::RunDir::new(root.path().join("run"));
    credit_train::train(&config, &run, &common::runs::options())
        .unwrap()
        .finished()
        .unwrap();
    let plain = common::f64_device();
    let trained = run.load_model(&config, &plain, None).unwrap();
    let device = plain.autodiff();
    let data = credit_train::load_data(&config).unwrap();
    let mut model = config.model.init(
        Seed::new(config.seed).stream(credit_model::Stream::Init),
        &device,
    );
    let mut optimizer = credit_train::optimizer_for(&config.optimizer, 3, &model);
    for epoch in 1..=2 {
        let lr = credit_train::learning_rate(&config.optimizer, epoch);
        let batches = common::epoch_batches(&config, data.train.len(), epoch);
        assert_eq!(batches.len(), 3);
        for (b, (indices, noise)) in batches.into_iter().enumerate() {
            let images = data.train.batch(indices, &device);
            model = common::credit_step(model, &mut optimizer, images, noise, b, lr);
        }
    }
    assert_eq!(
        net_of(&model.valid()).map(|p| [p.m, p.xi, p.pi]),
        net_of(&trained).map(|p| [p.m, p.xi, p.pi])
    );
}
