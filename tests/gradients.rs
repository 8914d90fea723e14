//! Gradients of the loss with respect to `m`, `xi` and `pi`, in float64 with the noise fixed:
//! burn's autodiff against central finite differences, and against the paper's hand-derived
//! generalised backprop (gBP), written out here for a two-layer network.
//!
//! The hidden layer is wide enough (17 units) for flex's sparse kernels and its input has
//! exact zeros; the output layer's forward pass and parameter gradients are narrower than a
//! vector and go through the composed operations, its input gradient (17 rows wide, from a
//! dense softmax gradient) through flex's dense products. This file is its own test binary because it switches the CPU device to float64.

mod common;

use burn::nn::loss::CrossEntropyLossConfig;
use burn::tensor::{Device, Int, Tensor, TensorData};
use common::{Lcg, tensor, values};
use credit_model::{SpikeSlabLinear, SpikeSlabNet};

const SIZES: [usize; 3] = [20, 17, 3];
const BATCH: usize = 4;
const LABELS: [i64; BATCH] = [0, 2, 1, 2];

/// Parameter values of one layer, row-major `[d_output, d_input]`.
#[derive(Clone)]
struct Params {
    m: Vec<f64>,
    xi: Vec<f64>,
    pi: Vec<f64>,
}

fn fixture() -> (Vec<Params>, Vec<f64>, Vec<Vec<f64>>) {
    let mut rng = Lcg(42);
    let params = SIZES
        .windows(2)
        .map(|w| {
            let n = w[0] * w[1];
            Params {
                m: rng.uniform(n, -1.0, 1.0),
                xi: rng.uniform(n, 0.05, 0.5),
                pi: rng.uniform(n, 0.1, 0.9),
            }
        })
        .collect();
    // A third of the pixels are exactly zero, as in images.
    let input = rng
        .uniform(BATCH * SIZES[0], -0.5, 1.0)
        .into_iter()
        .map(|x| x.max(0.0))
        .collect();
    // Standard-normal-ish noise from a Box-Muller transform of the LCG.
    let eps = SIZES[1..]
        .iter()
        .map(|&width| {
            (0..BATCH * width)
                .map(|_| {
                    let (u, v) = (rng.next().max(1e-12), rng.next());
                    (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
                })
                .collect()
        })
        .collect();
    (params, input, eps)
}

fn build(params: &[Params], device: &Device) -> SpikeSlabNet {
    let layers = params
        .iter()
        .zip(SIZES.windows(2))
        .map(|(p, w)| {
            let shape = [w[1], w[0]];
            SpikeSlabLinear::from_tensors(
                tensor(p.m.clone(), shape, device),
                tensor(p.xi.clone(), shape, device),
                tensor(p.pi.clone(), shape, device),
            )
        })
        .collect();
    SpikeSlabNet { layers }
}

/// Mean cross-entropy of the network with the fixed noise.
fn loss(net: &SpikeSlabNet, input: &[f64], eps: &[Vec<f64>], device: &Device) -> Tensor<1> {
    let x = tensor(input.to_vec(), [BATCH, SIZES[0]], device);
    let eps: Vec<Tensor<2>> = eps
        .iter()
        .zip(&SIZES[1..])
        .map(|(e, &width)| tensor(e.clone(), [BATCH, width], device))
        .collect();
    let logits = net.forward_with_eps(x, &eps);
    let targets = Tensor::<1, Int>::from_data(TensorData::new(LABELS.to_vec(), [BATCH]), device);
    CrossEntropyLossConfig::new()
        .init(device)
        .forward(logits, targets)
}

/// The paper's generalised backprop, on plain arrays. Returns `(dm, dxi, dpi)` per layer.
#[allow(clippy::type_complexity)]
fn gbp(params: &[Params], input: &[f64], eps: &[Vec<f64>]) -> Vec<(Vec<f64>, Vec<f64>, Vec<f64>)> {
    // Forward, keeping each layer's input a, h, sqrt(Delta), mu and variance.
    let mut activations = vec![input.to_vec()];
    let mut pre = Vec::new();
    let mut sqrt_delta = Vec::new();
    let mut mus = Vec::new();
    let mut vars = Vec::new();
    for (l, p) in params.iter().enumerate() {
        let (n, out) = (SIZES[l], SIZES[l + 1]);
        let a = &activations[l];
        let mu: Vec<f64> = (0..n * out).map(|k| (1.0 - p.pi[k]) * p.m[k]).collect();
        let var: Vec<f64> = (0..n * out)
            .map(|k| (1.0 - p.pi[k]) * p.xi[k] + p.pi[k] * (1.0 - p.pi[k]) * p.m[k] * p.m[k])
            .collect();
        let mut h = vec![0.0; BATCH * out];
        let mut sd = vec![0.0; BATCH * out];
        for b in 0..BATCH {
            for i in 0..out {
                let (mut g, mut delta) = (0.0, 0.0);
                for j in 0..n {
                    let x = a[b * n + j];
                    g += x * mu[i * n + j];
                    delta += x * x * var[i * n + j];
                }
                sd[b * out + i] = delta.sqrt();
                h[b * out + i] = (g + delta.sqrt() * eps[l][b * out + i]) / (n as f64).sqrt();
            }
        }
        let next = if l + 1 < params.len() {
            h.iter().map(|&v| v.max(0.0)).collect()
        } else {
            h.clone()
        };
        activations.push(next);
        pre.push(h);
        sqrt_delta.push(sd);
        mus.push(mu);
        vars.push(var);
    }

    // Error signal at the top: d = (softmax - onehot) / batch.
    let classes = *SIZES.last().unwrap();
    let logits = pre.last().unwrap();
    let mut d = vec![0.0; BATCH * classes];
    for b in 0..BATCH {
        let row = &logits[b * classes..(b + 1) * classes];
        let max = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let z: f64 = row.iter().map(|v| (v - max).exp()).sum();
        for c in 0..classes {
            let onehot = if LABELS[b] as usize == c { 1.0 } else { 0.0 };
            d[b * classes + c] = ((row[c] - max).exp() / z - onehot) / BATCH as f64;
        }
    }

    let mut grads = vec![(vec![], vec![], vec![]); params.len()];
    for l in (0..params.len()).rev() {
        let (n, out) = (SIZES[l], SIZES[l + 1]);
        let (p, a) = (&params[l], &activations[l]);
        let root_n = (n as f64).sqrt();
        let mut dm = vec![0.0; n * out];
        let mut dxi = vec![0.0; n * out];
        let mut dpi = vec![0.0; n * out];
        for b in 0..BATCH {
            for i in 0..out {
                let di = d[b * out + i];
                let s = di * eps[l][b * out + i] / sqrt_delta[l][b * out + i];
                for j in 0..n {
                    let k = i * n + j;
                    let (x, m, pi, xi) = (a[b * n + j], p.m[k], p.pi[k], p.xi[k]);
                    dm[k] += (di * x * (1.0 - pi) + s * x * x * m * (1.0 - pi) * pi) / root_n;
                    dxi[k] += (s / 2.0 * x * x * (1.0 - pi)) / root_n;
                    dpi[k] -=
                        (di * x * m + s / 2.0 * x * x * ((2.0 * pi - 1.0) * m * m + xi)) / root_n;
                }
            }
        }
        if l > 0 {
            // d_prev_j = sum_i (d_i mu_ij + s_i var_ij a_j) / sqrt(N) * relu'(h_prev_j).
            let mut prev = vec![0.0; BATCH * n];
            for b in 0..BATCH {
                for j in 0..n {
                    if pre[l - 1][b * n + j] <= 0.0 {
                        continue;
                    }
                    let mut sum = 0.0;
                    for i in 0..out {
                        let di = d[b * out + i];
                        let s = di * eps[l][b * out + i] / sqrt_delta[l][b * out + i];
                        sum += di * mus[l][i * n + j] + s * vars[l][i * n + j] * a[b * n + j];
                    }
                    prev[b * n + j] = sum / root_n;
                }
            }
            d = prev;
        }
        grads[l] = (dm, dxi, dpi);
    }
    grads
}

#[test]
fn autodiff_matches_finite_differences_and_generalised_backprop() {
    let device = common::f64_device().autodiff();
    let (params, input, eps) = fixture();
    let net = build(&params, &device);
    let grads = loss(&net, &input, &eps, &device).backward();
    let hand = gbp(&params, &input, &eps);

    let plain = device.clone().inner();
    let loss_at = |params: &[Params]| -> f64 {
        values(loss(&build(params, &plain), &input, &eps, &plain))[0]
    };
    for (l, layer) in net.layers.iter().enumerate() {
        let gbp = [&hand[l].0[..], &hand[l].1, &hand[l].2];
        common::check_layer_gradients(
            &format!("layer {l}"),
            layer,
            &grads,
            ("gBP", gbp, 1e-9),
            |t, k, delta| {
                let mut p = params.to_vec();
                let q = &mut p[l];
                [&mut q.m, &mut q.xi, &mut q.pi][t][k] += delta;
                loss_at(&p)
            },
        );
    }
}
