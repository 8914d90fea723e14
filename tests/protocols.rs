//! The authors' two MNIST protocols as presets: each parses to the documented values, they
//! differ exactly in their protocol keys, and optimizer steps of each equal the authors'
//! update rules computed by hand (in float64, from `DNN-SAS-MNIST.py` at c74f63a for 2020,
//! and `utils/optimizers.py` at HEAD for 2022).

mod common;

use std::path::Path;

use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor};
use common::{device, tensor, values};
use credit_model::{Classifier, FloorModeName, SpikeSlabLinear, SpikeSlabNet};
use credit_train::{DecayedParameter, OptimizerConfig, RunConfig, optimizer_for};

fn preset(name: &str) -> RunConfig {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("configs/{name}.toml"));
    RunConfig::load(&path, &[]).unwrap()
}

#[test]
fn the_presets_are_the_documented_protocols_and_differ_only_in_protocol_keys() {
    let (old, new) = (preset("mnist"), preset("mnist-2022"));
    // 2020: the built-in defaults.
    assert_eq!(old, RunConfig::default());
    assert_eq!(old.model.sizes, [784, 100, 100, 10]);
    assert_eq!(old.model.m_init_std, (2.0f64 / 784.0).sqrt());
    assert_eq!((old.model.xi_init_max, old.model.pi_init), (0.01, 0.0));
    assert_eq!(old.model.delta_floor, 0.0);
    assert_eq!(old.model.delta_floor_mode, FloorModeName::Clamp);
    assert_eq!(
        (old.data.train_size, old.train.batch_size, old.train.epochs),
        (10_000, 500, 100)
    );
    assert!(!old.train.drop_last && old.train.shuffle);
    let o = &old.optimizer;
    assert_eq!(
        (o.lr, o.beta1, o.beta2, o.epsilon, o.weight_decay),
        (0.1, 0.9, 0.999, 1e-8, 1e-4)
    );
    assert_eq!(o.decay, [DecayedParameter::M, DecayedParameter::Xi]);
    assert_eq!(
        (o.lr_step_epochs, o.lr_step_factor, o.restart_each_epoch),
        (20, 0.5, true)
    );
    // 2022.
    assert_eq!(new.model.delta_floor, 1e-20);
    assert_eq!(new.model.delta_floor_mode, FloorModeName::Add);
    assert!(new.train.drop_last);
    let o = &new.optimizer;
    assert_eq!(
        o.decay,
        [
            DecayedParameter::M,
            DecayedParameter::Xi,
            DecayedParameter::Pi
        ]
    );
    assert_eq!((o.lr_step_epochs, o.restart_each_epoch), (0, false));
    // Everything else is shared.
    let keys: Vec<String> = new.differences(&old).into_iter().map(|d| d.0).collect();
    assert_eq!(
        keys,
        [
            "model.delta_floor",
            "model.delta_floor_mode",
            "optimizer.decay",
            "optimizer.lr_step_epochs",
            "optimizer.restart_each_epoch",
            "train.drop_last"
        ]
    );
    // The deterministic baselines share their protocol's schedule.
    let (base_old, base_new) = (
        preset("mnist-deterministic"),
        preset("mnist-2022-deterministic"),
    );
    assert_eq!(base_old.optimizer.lr_step_epochs, 20);
    assert!(base_old.optimizer.restart_each_epoch);
    assert_eq!(base_new.optimizer.lr_step_epochs, 0);
    assert!(!base_new.optimizer.restart_each_epoch && base_new.train.drop_last);
}

#[test]
fn the_entropy_preset_is_the_2020_protocol_with_four_weight_layers() {
    let (entropy, old) = (preset("mnist-entropy"), preset("mnist"));
    assert_eq!(entropy.model.sizes, [784, 100, 100, 100, 10]);
    let keys: Vec<String> = entropy.differences(&old).into_iter().map(|d| d.0).collect();
    assert_eq!(keys, ["model.sizes"]);
}

/// Parameters of a 1-layer network (3 outputs, 4 inputs) with `pi` at both bounds and an
/// `xi` at 0, as `[m, xi, pi]` row-major.
fn start() -> [Vec<f64>; 3] {
    [
        vec![
            0.3, -0.2, 0.05, 0.8, -0.6, 0.1, 0.0, 0.25, 0.4, -0.45, 0.7, -0.1,
        ],
        vec![
            0.01, 0.0, 0.002, 0.5, 0.003, 0.0, 0.04, 0.007, 0.0, 0.02, 0.001, 0.009,
        ],
        vec![
            0.0, 1.0, 0.3, 0.0, 0.999, 0.5, 1.0, 0.0, 0.2, 0.7, 0.0, 0.05,
        ],
    ]
}

/// Gradients of step `step` of parameter `which` (0: m, 1: xi, 2: pi): signs that push `pi`
/// and `xi` into their bounds and out of them.
fn gradient(step: usize, which: usize) -> Vec<f64> {
    (0..12)
        .map(|k| {
            let x = ((k * 7 + which * 5 + step * 3) % 11) as f64 - 5.0;
            0.02 * x + 0.001 * step as f64
        })
        .collect()
}

/// `steps` optimizer steps of `config` (epochs of `steps_per_epoch` steps) at learning rate
/// `lr`, each followed by the projection, through credit.
fn credit_steps(
    config: &OptimizerConfig,
    steps: usize,
    steps_per_epoch: usize,
    lr: f64,
) -> [Vec<f64>; 3] {
    let device: Device = device().autodiff();
    let [m, xi, pi] = start().map(|v| tensor(v, [3, 4], &device));
    let layer = SpikeSlabLinear::from_tensors(m, xi, pi);
    let mut model = Classifier::SpikeSlab(SpikeSlabNet {
        layers: vec![layer],
    });
    let mut optimizer = optimizer_for(config, steps_per_epoch, &model);
    for step in 0..steps {
        let net = model.spike_slab().unwrap();
        let l = &net.layers[0];
        let weights: Vec<Tensor<2>> = (0..3)
            .map(|w| tensor(gradient(step, w), [3, 4], &device))
            .collect();
        let loss = (l.m.val() * weights[0].clone()
            + l.xi.val() * weights[1].clone()
            + l.pi.val() * weights[2].clone())
        .sum();
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optimizer.step(lr, model, grads).project();
    }
    let l = &model.spike_slab().unwrap().layers[0];
    [values(l.m.val()), values(l.xi.val()), values(l.pi.val())]
}

/// The authors' update, in float64: Adam moments per tensor, bias corrections from `t`
/// (restarting with the epoch in 2020), `sqrt(s_hat + tiny) + 1e-8` (`tiny` = 1e-30 in the
/// 2020 script, 0 in 2022), decoupled decay `lr · 1e-4 · theta` on the decayed tensors, then
/// `max(xi, 0)` and `clip(pi, 0, 1)`.
fn authors_steps(
    steps: usize,
    steps_per_epoch: Option<usize>,
    decay_pi: bool,
    tiny: f64,
    lr: f64,
) -> [Vec<f64>; 3] {
    let mut theta = start();
    let mut moments = [
        [vec![0.0; 12], vec![0.0; 12]],
        [vec![0.0; 12], vec![0.0; 12]],
        [vec![0.0; 12], vec![0.0; 12]],
    ];
    let mut t = 0;
    for step in 0..steps {
        if steps_per_epoch.is_some_and(|n| step % n == 0) {
            moments = Default::default();
            moments
                .iter_mut()
                .for_each(|m| *m = [vec![0.0; 12], vec![0.0; 12]]);
            t = 0;
        }
        t += 1;
        for (which, param) in theta.iter_mut().enumerate() {
            let g = gradient(step, which);
            let [m1, s] = &mut moments[which];
            let decays = which != 2 || decay_pi;
            for k in 0..12 {
                m1[k] = 0.9 * m1[k] + 0.1 * g[k];
                s[k] = 0.999 * s[k] + 0.001 * g[k] * g[k];
                let m_hat = m1[k] / (1.0 - 0.9f64.powi(t));
                let s_hat = s[k] / (1.0 - 0.999f64.powi(t));
                let update = m_hat / ((s_hat + tiny).sqrt() + 1e-8);
                let decay = if decays { 1e-4 * param[k] } else { 0.0 };
                param[k] -= lr * (update + decay);
            }
        }
        theta[1].iter_mut().for_each(|x| *x = x.max(0.0));
        theta[2].iter_mut().for_each(|p| *p = p.clamp(0.0, 1.0));
    }
    theta
}

fn assert_steps_equal(credit: &[Vec<f64>; 3], authors: &[Vec<f64>; 3], what: &str) {
    for (name, (c, a)) in ["m", "xi", "pi"].iter().zip(credit.iter().zip(authors)) {
        for (k, (c, a)) in c.iter().zip(a).enumerate() {
            assert!(
                (c - a).abs() <= 1e-6,
                "{what}: {name}[{k}] credit {c} vs authors {a}"
            );
        }
    }
}

#[test]
fn optimizer_steps_of_each_preset_equal_the_authors_update_rules() {
    let (old, new) = (preset("mnist").optimizer, preset("mnist-2022").optimizer);
    let lr = 0.1;
    // One step: the same Adam step, with and without decay on pi.
    assert_steps_equal(
        &credit_steps(&old, 1, 2, lr),
        &authors_steps(1, Some(2), false, 1e-30, lr),
        "2020, 1 step",
    );
    assert_steps_equal(
        &credit_steps(&new, 1, 2, lr),
        &authors_steps(1, None, true, 0.0, lr),
        "2022, 1 step",
    );
    // Five steps in epochs of two: 2020 starts Adam afresh at steps 3 and 5, 2022 goes on.
    assert_steps_equal(
        &credit_steps(&old, 5, 2, lr),
        &authors_steps(5, Some(2), false, 1e-30, lr),
        "2020, 5 steps",
    );
    assert_steps_equal(
        &credit_steps(&new, 5, 2, lr),
        &authors_steps(5, None, true, 0.0, lr),
        "2022, 5 steps",
    );
    // The protocols differ in these steps, and they would not without their keys.
    assert!(credit_steps(&old, 5, 2, lr) != credit_steps(&new, 5, 2, lr));
}

#[test]
fn each_protocol_key_changes_only_its_own_behaviour() {
    let old = preset("mnist").optimizer;
    let lr = 0.1;
    let base = credit_steps(&old, 3, 2, lr);
    // Decay on pi: only pi changes, and pi is what the authors' rule with decay gives.
    let mut with_pi = old.clone();
    with_pi.decay.push(DecayedParameter::Pi);
    let decayed = credit_steps(&with_pi, 3, 2, lr);
    assert_eq!((&decayed[0], &decayed[1]), (&base[0], &base[1]));
    assert_ne!(decayed[2], base[2]);
    assert_steps_equal(
        &decayed,
        &authors_steps(3, Some(2), true, 1e-30, lr),
        "2020 with decay on pi",
    );
    // Without decay on pi, pi moves by the Adam step alone: the same as with weight_decay 0.
    let mut no_decay = old.clone();
    no_decay.weight_decay = 0.0;
    assert_eq!(credit_steps(&no_decay, 3, 2, lr)[2], base[2]);
    // A persistent Adam keeps its step count across epochs.
    let mut persistent = old.clone();
    persistent.restart_each_epoch = false;
    assert_steps_equal(
        &credit_steps(&persistent, 3, 2, lr),
        &authors_steps(3, None, false, 0.0, lr),
        "2020 with one Adam",
    );
}
