//! The trajectory check: credit's training steps against the authors' update rules, step by
//! step, in float64.
//!
//! The oracle below is an independent float64 re-implementation of the formulas of the
//! authors' two MNIST scripts (Chan-Li/SAS-model, `Training for MNIST/DNN-SAS-MNIST.py` at
//! c74f63a for 2020, at HEAD with `utils/optimizers.py` for 2022), written from their
//! equations: the forward of `feedforward`, the gradients of `backprop` (both scripts' forms,
//! including the 2020 script's misplaced parenthesis in the hidden layers' backward pass as
//! an option), their Adam (`adam_mini` restarted every epoch with `sqrt(s_hat + 1e-30)`, or
//! one `Adam` with `sqrt(s_hat)`), their decay and clamps. It takes credit's initial `m`, `xi`,
//! `pi`, credit's batch order and credit's noise `eps`, so that the two sides differ only in
//! their arithmetic. `bench/reference/authors_trajectory.py` checks the oracle once against
//! the authors' script itself, run on the same inputs (write them with
//! `CREDIT_TRAJECTORY_DUMP=DIR`).
//!
//! The runs are chaotic: a one-ulp difference grows by orders of magnitude within a few
//! epochs. The check compares from the first step, where rounding differences are still
//! near 1e-16.
//!
//! Findings (README, "The authors' two protocols"): credit follows both protocols' maths to
//! rounding over 100 steps; the 2020 script as written parts from them at step 2 (its line
//! 222); float64 runs took AdamW's hyperparameters and bias corrections in float32 until
//! this check found it.
//!
//! This file is its own test binary because it switches the CPU device to float64.

// The oracle indexes its arrays as the scripts' formulas do.
#![allow(clippy::needless_range_loop)]

mod common;

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::tensor::Device;
use credit_model::{Classifier, Seed, Stream};
use credit_ops::noise::standard_normal_values;
use credit_train::{RunConfig, RunDir, learning_rate, load_data, optimizer_for, train};

use common::runs::options;
use common::{credit_step, epoch_batches, values, write_npy};

/// The update rules of one of the authors' scripts.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Rules {
    /// `DNN-SAS-MNIST.py` at c74f63a. With `slip`, line 222's variance factor in the hidden
    /// layers' backward pass, `(1-pi)(xi + m² - (1-pi)² m²)`; without, the correct
    /// `(1-pi)(xi + m²) - (1-pi)² m²`.
    Y2020 { slip: bool },
    /// `DNN-SAS-MNIST.py` and `utils/optimizers.py` at HEAD.
    Y2022,
}

/// One layer's parameters, row-major `[n_out, n_in]`: `[m, xi, pi]`.
#[derive(Debug, Clone, PartialEq)]
struct Layer {
    n_in: usize,
    n_out: usize,
    params: [Vec<f64>; 3],
}

/// Adam's moments per layer and tensor, and the step count `t`.
struct Adam {
    first: Vec<[Vec<f64>; 3]>,
    second: Vec<[Vec<f64>; 3]>,
    t: i32,
}

impl Adam {
    fn new(layers: &[Layer]) -> Self {
        let zeros = |l: &Layer| std::array::from_fn(|_| vec![0.0; l.n_in * l.n_out]);
        Self {
            first: layers.iter().map(zeros).collect(),
            second: layers.iter().map(zeros).collect(),
            t: 0,
        }
    }
}

/// One batch: pixels `[batch, n_0]` row-major, labels, and `eps` of each layer
/// `[batch, n_l]`.
struct Batch {
    x: Vec<f64>,
    labels: Vec<usize>,
    eps: Vec<Vec<f64>>,
}

/// The order of every sum in the oracle. The same maths summed backwards rounds
/// differently: the distance between the two orders is the size of rounding, against which
/// credit's distance from the oracle is judged.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Order {
    Forward,
    Backward,
}

impl Order {
    fn indices(self, n: usize) -> Box<dyn Iterator<Item = usize>> {
        match self {
            Order::Forward => Box::new(0..n),
            Order::Backward => Box::new((0..n).rev()),
        }
    }
}

/// `out[b][j] = sum_k a[b][k] w[j][k]`: `[rows, n_in] x [n_out, n_in]^T`.
fn times_transposed(
    a: &[f64],
    w: &[f64],
    [rows, n_in, n_out]: [usize; 3],
    order: Order,
) -> Vec<f64> {
    let mut out = vec![0.0; rows * n_out];
    for b in 0..rows {
        let a = &a[b * n_in..(b + 1) * n_in];
        for j in 0..n_out {
            let w = &w[j * n_in..(j + 1) * n_in];
            out[b * n_out + j] = order.indices(n_in).map(|k| a[k] * w[k]).sum();
        }
    }
    out
}

/// `out[j][k] = sum_b d[b][j] a[b][k]`: `[rows, n_out]^T x [rows, n_in]`.
fn transposed_times(
    d: &[f64],
    a: &[f64],
    [rows, n_out, n_in]: [usize; 3],
    order: Order,
) -> Vec<f64> {
    let mut out = vec![0.0; n_out * n_in];
    for b in order.indices(rows) {
        let a = &a[b * n_in..(b + 1) * n_in];
        for j in 0..n_out {
            let d = d[b * n_out + j];
            if d == 0.0 {
                continue;
            }
            let row = &mut out[j * n_in..(j + 1) * n_in];
            row.iter_mut().zip(a).for_each(|(o, a)| *o += d * a);
        }
    }
    out
}

/// The gradients of the batch's mean cross-entropy with respect to `[m, xi, pi]` of every
/// layer, by the scripts' `backprop`.
fn authors_gradients(
    layers: &[Layer],
    batch: &Batch,
    rules: Rules,
    order: Order,
) -> Vec<[Vec<f64>; 3]> {
    let rows = batch.labels.len();
    // Forward (`feedforward`): per layer its input, sqrt(Delta) and pre-activation.
    let (mut inputs, mut roots, mut pre) = (vec![batch.x.clone()], vec![], vec![]);
    for (l, layer) in layers.iter().enumerate() {
        let [m, xi, pi] = &layer.params;
        let (n_in, n_out) = (layer.n_in, layer.n_out);
        let mu: Vec<f64> = (0..m.len()).map(|k| (1.0 - pi[k]) * m[k]).collect();
        let var: Vec<f64> = (0..m.len())
            .map(|k| {
                let (m, xi, pi) = (m[k], xi[k], pi[k]);
                match rules {
                    // ((1-pi)*((sigma)+(mess*mess))-(1-pi)*(1-pi)*mess*mess)
                    Rules::Y2020 { .. } => {
                        (1.0 - pi) * (xi + m * m) - (1.0 - pi) * (1.0 - pi) * m * m
                    }
                    // rho - mu**2 with rho = (1-pi)*(sigma+(mess*mess)), mu = mess*(1-pi)
                    Rules::Y2022 => {
                        let mu = m * (1.0 - pi);
                        (1.0 - pi) * (xi + m * m) - mu * mu
                    }
                }
            })
            .collect();
        let a = &inputs[l];
        let squares: Vec<f64> = a.iter().map(|a| a * a).collect();
        let g = times_transposed(a, &mu, [rows, n_in, n_out], order);
        let delta = times_transposed(&squares, &var, [rows, n_in, n_out], order);
        let root: Vec<f64> = delta
            .iter()
            .map(|&d| match rules {
                Rules::Y2020 { .. } => d.powf(0.5),
                Rules::Y2022 => (d + 1e-20).sqrt(),
            })
            .collect();
        let scale = 1.0 / (n_in as f64).sqrt();
        let z: Vec<f64> = (0..rows * n_out)
            .map(|i| (g[i] + root[i] * batch.eps[l][i]) * scale)
            .collect();
        let out = if l + 1 < layers.len() {
            z.iter().map(|&z| if z < 0.0 { 0.0 } else { z }).collect()
        } else {
            let mut out = z.clone();
            for row in out.chunks_mut(n_out) {
                let max = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                row.iter_mut().for_each(|v| *v = (*v - max).exp());
                let sum: f64 = order.indices(n_out).map(|j| row[j]).sum();
                row.iter_mut().for_each(|v| *v /= sum);
            }
            out
        };
        inputs.push(out);
        roots.push(root);
        pre.push(z);
    }
    // Backward: `tri` from the top, then each layer's gradients.
    let top = layers.len() - 1;
    let mut tri: Vec<f64> = inputs[top + 1].clone();
    for (b, &label) in batch.labels.iter().enumerate() {
        tri[b * layers[top].n_out + label] -= 1.0;
    }
    let mut grads = vec![[vec![], vec![], vec![]]; layers.len()];
    for l in (0..layers.len()).rev() {
        let layer = &layers[l];
        let [m, xi, pi] = &layer.params;
        let (n_in, n_out) = (layer.n_in, layer.n_out);
        let a = &inputs[l];
        let squares: Vec<f64> = a.iter().map(|a| a * a).collect();
        let scale = 1.0 / (n_in as f64).sqrt();
        let over = rows as f64;
        // turn_2_zero(va) * tri * eps / var and the same over 2 var, var = va + 1e-30.
        let masked = |half: bool| -> Vec<f64> {
            (0..rows * n_out)
                .map(|i| {
                    let va = roots[l][i];
                    let mask = if va > 0.0 { 1.0 } else { 0.0 };
                    let var = va + 1e-30;
                    let denominator = if half { 2.0 * var } else { var };
                    mask * tri[i] * batch.eps[l][i] / denominator
                })
                .collect()
        };
        let p = transposed_times(&tri, a, [rows, n_out, n_in], order);
        let q = transposed_times(&masked(false), &squares, [rows, n_out, n_in], order);
        let q_half = transposed_times(&masked(true), &squares, [rows, n_out, n_in], order);
        let k_all = 0..m.len();
        let (gm, gxi, gpi): (Vec<f64>, Vec<f64>, Vec<f64>) = match rules {
            Rules::Y2020 { .. } => (
                k_all
                    .clone()
                    .map(|k| {
                        let c = (1.0 - pi[k]) * m[k] - (1.0 - pi[k]).powi(2) * m[k];
                        scale * (p[k] * (1.0 - pi[k]) + q[k] * c) / over
                    })
                    .collect(),
                k_all
                    .clone()
                    .map(|k| scale * q_half[k] * (1.0 - pi[k]) / over)
                    .collect(),
                k_all
                    .map(|k| {
                        let c = -(xi[k] + m[k] * m[k]) - 2.0 * (pi[k] - 1.0) * m[k] * m[k];
                        scale * (-m[k] * p[k] + q_half[k] * c) / over
                    })
                    .collect(),
            ),
            Rules::Y2022 => (
                k_all
                    .clone()
                    .map(|k| {
                        let mu = m[k] * (1.0 - pi[k]);
                        scale * (p[k] * (1.0 - pi[k]) + q[k] * mu * pi[k]) / over
                    })
                    .collect(),
                k_all
                    .clone()
                    .map(|k| scale * q_half[k] * (1.0 - pi[k]) / over)
                    .collect(),
                k_all
                    .map(|k| {
                        let c = (2.0 * pi[k] - 1.0) * m[k] * m[k] + xi[k];
                        -(scale * (p[k] * m[k] + q_half[k] * c)) / over
                    })
                    .collect(),
            ),
        };
        grads[l] = [gm, gxi, gpi];
        if l == 0 {
            break;
        }
        // tri of the layer below: 1/sqrt(n_in) drelu(z) (mu^T tri + var'^T (r) * a).
        let r: Vec<f64> = match rules {
            // No mask in the 2020 script's hidden backward pass.
            Rules::Y2020 { .. } => (0..rows * n_out)
                .map(|i| tri[i] * batch.eps[l][i] / (roots[l][i] + 1e-30))
                .collect(),
            Rules::Y2022 => masked(false),
        };
        let mut below = vec![0.0; rows * n_in];
        for b in 0..rows {
            for k in 0..n_in {
                let (mut mean, mut noise) = (0.0, 0.0);
                for j in order.indices(n_out) {
                    let w = j * n_in + k;
                    let (m, xi, pi) = (m[w], xi[w], pi[w]);
                    let var = match rules {
                        Rules::Y2020 { slip: true } => {
                            (1.0 - pi) * ((xi + m * m) - (1.0 - pi).powi(2) * m * m)
                        }
                        Rules::Y2020 { slip: false } => {
                            (1.0 - pi) * (xi + m * m) - (1.0 - pi).powi(2) * m * m
                        }
                        Rules::Y2022 => {
                            let mu = m * (1.0 - pi);
                            (1.0 - pi) * (xi + m * m) - mu * mu
                        }
                    };
                    mean += (1.0 - pi) * m * tri[b * n_out + j];
                    noise += var * r[b * n_out + j];
                }
                // drelu: 1 where z >= 0.
                let slope = if pre[l - 1][b * n_in + k] >= 0.0 {
                    1.0
                } else {
                    0.0
                };
                below[b * n_in + k] = scale * slope * (mean + noise * a[b * n_in + k]);
            }
        }
        tri = below;
    }
    grads
}

/// One step of the scripts' Adam on every tensor, then their decay and clamps. `restart`
/// starts Adam afresh (the first step of a 2020 epoch).
fn authors_step(
    layers: &mut [Layer],
    adam: &mut Adam,
    grads: &[[Vec<f64>; 3]],
    lr: f64,
    rules: Rules,
    restart: bool,
) {
    if restart {
        *adam = Adam::new(layers);
    }
    adam.t += 1;
    let (beta1, beta2, eps, decay) = (0.9f64, 0.999f64, 1e-8, 1e-4);
    let (tiny, decay_pi) = match rules {
        Rules::Y2020 { .. } => (1e-30, false),
        Rules::Y2022 => (0.0, true),
    };
    let t = adam.t;
    for (l, layer) in layers.iter_mut().enumerate() {
        for which in 0..3 {
            let decays = which != 2 || decay_pi;
            let (first, second) = (&mut adam.first[l][which], &mut adam.second[l][which]);
            let theta = &mut layer.params[which];
            for k in 0..theta.len() {
                let g = grads[l][which][k];
                first[k] = first[k] * beta1 + (1.0 - beta1) * g;
                second[k] = beta2 * second[k] + (1.0 - beta2) * g * g;
                let m_hat = first[k] / (1.0 - beta1.powf(t as f64));
                let s_hat = second[k] / (1.0 - beta2.powf(t as f64));
                let update = m_hat / ((s_hat + tiny).sqrt() + eps);
                let decayed = if decays { decay * theta[k] } else { 0.0 };
                theta[k] -= lr * (update + decayed);
            }
        }
        layer.params[1].iter_mut().for_each(|x| *x = x.max(0.0));
        layer.params[2]
            .iter_mut()
            .for_each(|p| *p = p.clamp(0.0, 1.0));
    }
}

/// The CPU device in float64, as a float64 run configures it (once per process).
fn f64_device() -> Device {
    credit_train::BackendKind::default_available()
        .expect("a backend is compiled in")
        .device_for(credit_train::Precision::F64)
        .expect("the CPU backend supports float64")
}

fn preset(name: &str, epochs: usize) -> RunConfig {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let data_dir = format!("data.dir={}", manifest.join("data/mnist").display());
    let overrides = [
        data_dir,
        "train.precision=\"f64\"".to_string(),
        format!("train.epochs={epochs}"),
    ];
    RunConfig::load(&manifest.join(format!("configs/{name}.toml")), &overrides).unwrap()
}

/// The parameters of a spike-and-slab classifier as oracle layers.
fn layers_of(model: &Classifier) -> Vec<Layer> {
    let net = model.spike_slab().expect("a spike-and-slab network");
    net.layers
        .iter()
        .map(|l| {
            let [n_out, n_in] = l.dims();
            Layer {
                n_in,
                n_out,
                params: [values(l.m.val()), values(l.xi.val()), values(l.pi.val())],
            }
        })
        .collect()
}

/// The largest absolute difference per layer and tensor.
fn differences(a: &[Layer], b: &[Layer]) -> Vec<[f64; 3]> {
    a.iter()
        .zip(b)
        .map(|(a, b)| {
            std::array::from_fn(|w| {
                a.params[w]
                    .iter()
                    .zip(&b.params[w])
                    .map(|(x, y)| (x - y).abs())
                    .fold(0.0, f64::max)
            })
        })
        .collect()
}

/// What a comparison found, per step: credit's largest distance from the oracle and the
/// oracle's from its twin summed backwards (the size of rounding), over all tensors; and the
/// first step (from 1), layer (from 1) and tensor where credit's distance exceeds
/// `ENVELOPE` times the rounding's (the twin's largest distance over all tensors at that
/// step) and `FLOOR`.
struct Trajectory {
    largest: Vec<f64>,
    rounding: Vec<f64>,
    first_parting: Option<(usize, usize, &'static str)>,
}

const NAMES: [&str; 3] = ["m", "xi", "pi"];

/// Distances below this are rounding whatever the twin shows (parameters are of order
/// 0.01-1).
const FLOOR: f64 = 1e-12;

/// How far above the rounding of the oracle's own two orders credit may be. Rounding is
/// amplified where a step is ill-conditioned (at the first step of a 2020 epoch Adam's
/// update is `g / (|g| + 1e-8)`, steep where a gradient is near 1e-8: a distance of 1e-13
/// becomes 1e-11), and two runs that start from different roundings drift apart by
/// different amounts (measured with `CREDIT_TRAJECTORY_STEPS=100`: credit's distance is
/// 1-3 times the twin's for 2022, 1-8 times over the first 40 steps of 2020 and up to 110
/// times by step 71, after three restarts, back to 18 at step 100). A difference of maths
/// shows at once and far above it: the 2020 script's parenthesis, by 1e-2 at step 2, 1e12
/// times the twin's distance.
const ENVELOPE: f64 = 1000.0;

/// `steps` training steps of `config` through credit (`Classifier`'s `TrainStep`, the run's
/// optimizer and learning rates) and through the oracle with `rules` in both summation
/// orders, from credit's initial parameters, on the same batches and noise; compared after
/// every step.
fn compare(config: &RunConfig, rules: Rules, steps: usize) -> Trajectory {
    let device = f64_device().autodiff();
    let data = load_data(config).unwrap();
    let root = Seed::new(config.seed);
    let mut model = config.model.init(root.stream(Stream::Init), &device);
    let mut oracle = layers_of(&model);
    let mut twin = oracle.clone();
    let (mut adam, mut twin_adam) = (Adam::new(&oracle), Adam::new(&oracle));
    let per_epoch = epoch_batches(config, data.train.len(), 1).len();
    let mut optimizer = optimizer_for(&config.optimizer, per_epoch, &model);
    let dump = std::env::var_os("CREDIT_TRAJECTORY_DUMP").map(PathBuf::from);
    let mut dumped = Dump::default();
    if dump.is_some() {
        dumped.initial = oracle.clone();
    }
    let mut trajectory = Trajectory {
        largest: vec![],
        rounding: vec![],
        first_parting: None,
    };
    let sizes = config.model.sizes.clone();
    'epochs: for epoch in 1.. {
        let lr = learning_rate(&config.optimizer, epoch);
        for (b, (indices, noise)) in epoch_batches(config, data.train.len(), epoch)
            .into_iter()
            .enumerate()
        {
            if trajectory.largest.len() == steps {
                break 'epochs;
            }
            let images = data.train.batch(indices.iter().copied(), &device);
            let (x, labels) = common::host_batch(&data.train, &indices);
            let batch = Batch {
                x,
                labels,
                eps: (1..sizes.len())
                    .map(|l| {
                        let key = noise.child(l as u64 - 1).value();
                        standard_normal_values(indices.len() * sizes[l], key)
                            .into_iter()
                            .map(f64::from)
                            .collect()
                    })
                    .collect(),
            };
            model = credit_step(model, &mut optimizer, images, noise, b, lr);
            // The authors' rules, in both orders.
            let restart = matches!(rules, Rules::Y2020 { .. }) && b == 0;
            let grads = authors_gradients(&oracle, &batch, rules, Order::Forward);
            authors_step(&mut oracle, &mut adam, &grads, lr, rules, restart);
            let grads = authors_gradients(&twin, &batch, rules, Order::Backward);
            authors_step(&mut twin, &mut twin_adam, &grads, lr, rules, restart);
            let step = trajectory.largest.len() + 1;
            let (distance, rounding) = (
                differences(&layers_of(&model), &oracle),
                differences(&twin, &oracle),
            );
            let largest = |d: &[[f64; 3]]| d.iter().flatten().cloned().fold(0.0, f64::max);
            let bound = FLOOR.max(ENVELOPE * largest(&rounding));
            if trajectory.first_parting.is_none() {
                trajectory.first_parting = distance
                    .iter()
                    .enumerate()
                    .flat_map(|(l, d)| (0..3).map(move |w| (l, w, d[w])))
                    .find(|&(_, _, d)| d > bound)
                    .map(|(l, w, _)| (step, l + 1, NAMES[w]));
            }
            trajectory.largest.push(largest(&distance));
            trajectory.rounding.push(largest(&rounding));
            if dump.is_some() {
                dumped.batches.push(batch);
                dumped.after.push(oracle.clone());
                dumped.lr.push(lr);
            }
        }
    }
    if let Some(dir) = dump {
        dumped.write(&dir, config, rules, per_epoch);
    }
    trajectory
}

/// The inputs and the oracle's parameters after every step, for
/// `bench/reference/authors_trajectory.py`.
#[derive(Default)]
struct Dump {
    initial: Vec<Layer>,
    batches: Vec<Batch>,
    after: Vec<Vec<Layer>>,
    lr: Vec<f64>,
}

impl Dump {
    fn write(&self, dir: &Path, config: &RunConfig, rules: Rules, per_epoch: usize) {
        let rows = self.batches[0].labels.len();
        assert!(
            self.batches.iter().all(|b| b.labels.len() == rows),
            "the dump holds batches of one size (the presets' 10,000 images in batches of 500)"
        );
        let name = match rules {
            Rules::Y2020 { slip: true } => "2020-slip",
            Rules::Y2020 { slip: false } => "2020",
            Rules::Y2022 => "2022",
        };
        let dir = dir.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let sizes = &config.model.sizes;
        let rows = rows as u64;
        let steps = self.batches.len() as u64;
        for (l, layer) in self.initial.iter().enumerate() {
            let shape = [layer.n_out as u64, layer.n_in as u64];
            for (w, name) in NAMES.iter().enumerate() {
                write_npy(
                    &dir.join(format!("initial_{name}_{l}.npy")),
                    &layer.params[w],
                    &shape,
                );
                let after: Vec<f64> = self
                    .after
                    .iter()
                    .flat_map(|s| s[l].params[w].iter().copied())
                    .collect();
                write_npy(
                    &dir.join(format!("after_{name}_{l}.npy")),
                    &after,
                    &[steps, shape[0], shape[1]],
                );
            }
            let eps: Vec<f64> = self
                .batches
                .iter()
                .flat_map(|b| b.eps[l].iter().copied())
                .collect();
            write_npy(
                &dir.join(format!("eps_{l}.npy")),
                &eps,
                &[steps, rows, sizes[l + 1] as u64],
            );
        }
        let x: Vec<f64> = self
            .batches
            .iter()
            .flat_map(|b| b.x.iter().copied())
            .collect();
        write_npy(&dir.join("x.npy"), &x, &[steps, rows, sizes[0] as u64]);
        let labels: Vec<f64> = self
            .batches
            .iter()
            .flat_map(|b| b.labels.iter().map(|&l| l as f64))
            .collect();
        write_npy(&dir.join("labels.npy"), &labels, &[steps, rows]);
        write_npy(&dir.join("lr.npy"), &self.lr, &[steps]);
        std::fs::write(
            dir.join("meta.txt"),
            format!("sizes={sizes:?}\nsteps_per_epoch={per_epoch}\n"),
        )
        .unwrap();
    }
}

/// The steps compared: one epoch and a restart of the 2020 Adam (the authors' runs part
/// from a one-ulp change after about ten epochs). `CREDIT_TRAJECTORY_STEPS` compares more.
fn steps() -> usize {
    std::env::var("CREDIT_TRAJECTORY_STEPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(21)
        .max(2)
}

/// Prints the distances after some steps (`cargo test --test trajectory -- --nocapture`;
/// after every step with `CREDIT_TRAJECTORY_VERBOSE=1`).
fn report(what: &str, t: &Trajectory) {
    if std::env::var_os("CREDIT_TRAJECTORY_VERBOSE").is_some() {
        for (i, (d, r)) in t.largest.iter().zip(&t.rounding).enumerate() {
            eprintln!(
                "{what}: step {}: {d:.2e} ({r:.2e}, ratio {:.1})",
                i + 1,
                d / r
            );
        }
    }
    let n = t.largest.len();
    let at = |s: usize| {
        let i = s.min(n) - 1;
        format!("{s}: {:.1e} ({:.1e})", t.largest[i], t.rounding[i])
    };
    eprintln!(
        "{what}: credit's largest distance from the oracle (the oracle's from its twin) after step {}, {}, {}, {}, {}; first parting (step, layer, tensor): {:?}",
        at(1),
        at(2),
        at(20),
        at(21),
        at(n),
        t.first_parting
    );
}

#[test]
fn credit_takes_the_steps_of_the_authors_2020_maths_with_the_parenthesis_corrected() {
    let config = preset("mnist", 100);
    let t = compare(&config, Rules::Y2020 { slip: false }, steps());
    report("2020, corrected", &t);
    assert_eq!(t.first_parting, None, "{:?}", t.largest);
}

#[test]
fn credit_takes_the_steps_of_the_authors_2022_maths() {
    let config = preset("mnist-2022", 100);
    let t = compare(&config, Rules::Y2022, steps());
    report("2022", &t);
    assert_eq!(t.first_parting, None, "{:?}", t.largest);
}

#[test]
fn the_2020_scripts_parenthesis_parts_the_runs_at_step_two_in_the_hidden_layers() {
    // With every pi at 0 the misplaced factor equals the correct one, so step 1 agrees;
    // after it some pi lie inside (0, 1) and the backward pass into layers 1 and 2 differs.
    let config = preset("mnist", 100);
    let t = compare(&config, Rules::Y2020 { slip: true }, steps());
    report("2020, as written", &t);
    assert!(t.largest[0] <= FLOOR, "{:?}", t.largest);
    let (step, layer, _) = t.first_parting.expect("the slip changes the steps");
    assert_eq!(step, 2);
    assert!(
        layer <= 2,
        "the output layer's gradients have no such factor"
    );
}

#[test]
fn the_steps_compared_are_the_steps_credit_train_takes() {
    // One epoch through `credit train` (burn's Learner, the loader's order and noise)
    // ends where the step loop above ends: bit for bit.
    let config = preset("mnist", 1);
    let root = tempfile::tempdir().unwrap();
    let run = RunDir::new(root.path().join("run"));
    train(&config, &run, &options())
        .unwrap()
        .finished()
        .unwrap();
    let trained = run.load_model(&config, &f64_device(), None).unwrap();
    let device = f64_device().autodiff();
    let data = load_data(&config).unwrap();
    let mut model = config
        .model
        .init(Seed::new(config.seed).stream(Stream::Init), &device);
    let batches = epoch_batches(&config, data.train.len(), 1);
    let mut optimizer = optimizer_for(&config.optimizer, batches.len(), &model);
    for (b, (indices, noise)) in batches.into_iter().enumerate() {
        let images = data.train.batch(indices, &device);
        model = credit_step(model, &mut optimizer, images, noise, b, config.optimizer.lr);
    }
    assert_eq!(layers_of(&model.valid()), layers_of(&trained));
}
