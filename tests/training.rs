//! Training through burn's Learner on the committed MNIST: learning, the projection after
//! every step, reloading, resuming and stopping on a diverging loss.

mod common;

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::optim::{AdamWConfig, GradientsParams};
use burn::tensor::Tensor;
use burn::train::TrainStep;
use common::{device, values};
use credit_model::{Noise, SpikeSlabLinear};
use credit_train::{
    Classifier, FusedAdamW, RunConfig, RunDir, TrainOptions, learning_rate_schedule, load_data,
    train,
};

fn smoke(overrides: &[&str]) -> RunConfig {
    let path = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/configs/smoke.toml"));
    let mut all = vec![format!(
        "data.dir={}",
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("data/mnist")
            .display()
    )];
    all.extend(overrides.iter().map(|s| s.to_string()));
    RunConfig::load(path, &all).unwrap()
}

/// Test accuracy the smoke config must exceed after its 3 epochs.
const SMOKE_FLOOR_PCT: f64 = 70.0;

fn options() -> TrainOptions {
    let mut options = TrainOptions::new(credit_train::BackendKind::default_available().unwrap());
    options.dashboard = false;
    options
}

fn run_dir(root: &tempfile::TempDir, name: &str) -> RunDir {
    RunDir::new(PathBuf::from(root.path()).join(name))
}

/// Every `pi` in [0, 1] and `xi >= 0`; returns how many sit exactly on a bound that
/// initialisation does not produce (`pi = 1` or `xi = 0`).
fn assert_in_support(model: &Classifier) -> usize {
    let net = model.spike_slab().expect("a spike-and-slab model");
    let mut on_bounds = 0;
    for layer in &net.layers {
        let pi = values(layer.pi.val());
        let xi = values(layer.xi.val());
        assert!(pi.iter().all(|p| (0.0..=1.0).contains(p)), "pi left [0, 1]");
        assert!(xi.iter().all(|&x| x >= 0.0), "xi went negative");
        on_bounds += pi.iter().filter(|&&p| p == 1.0).count();
        on_bounds += xi.iter().filter(|&&x| x == 0.0).count();
    }
    on_bounds
}

#[test]
fn the_smoke_config_learns_and_reloads_identically() {
    let root = tempfile::tempdir().unwrap();
    let config = smoke(&[]);
    let run = run_dir(&root, "smoke");
    let summary = train(&config, &run, &options()).unwrap();
    assert_eq!(summary.epochs, 3);
    // Chance is 10%. Seeds 0-9 give 80.0-82.6% mean-field and 79.3-82.9% for the mean network;
    // the tests of this file share the noise stream and run at once, so the draws vary.
    assert!(
        summary.test_accuracy_mean_field_pct > SMOKE_FLOOR_PCT,
        "mean-field test accuracy {}%",
        summary.test_accuracy_mean_field_pct
    );
    assert!(summary.test_accuracy_mean_network_pct > SMOKE_FLOOR_PCT);

    let metrics = run.metrics().unwrap();
    assert_eq!(
        metrics.iter().map(|m| m.epoch).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert!(
        metrics[2].train_loss < metrics[0].train_loss,
        "training loss falls"
    );
    assert!(metrics.iter().all(|m| m.test_accuracy_pct > 50.0));
    // The learning rate first steps after optimizer.lr_step_epochs = 20 epochs.
    let lr = config.optimizer.lr;
    assert!(
        metrics
            .iter()
            .all(|m| (m.learning_rate - lr).abs() < 1e-12 * lr)
    );
    assert_eq!(
        RunConfig::load(&run.file("config.toml"), &[]).unwrap(),
        config
    );

    let device = device();
    let data = load_data(&config).unwrap();
    let final_model = run.load_model(&config, &device, None).unwrap();
    let checkpoint = run.load_model(&config, &device, Some(3)).unwrap();
    let images = data.test.all(&device).images;
    let logits = values(final_model.forward(images.clone(), Noise::Off));
    assert_eq!(logits, values(checkpoint.forward(images, Noise::Off)));
    let reloaded = credit_train::test_accuracies(&final_model, &data, &device);
    assert_eq!(
        reloaded.test_mean_network_pct,
        summary.test_accuracy_mean_network_pct
    );
    assert_in_support(&final_model);
}

#[test]
fn resume_continues_after_the_saved_epoch() {
    let root = tempfile::tempdir().unwrap();
    let run = run_dir(&root, "resumed");
    // The learning rate halves every epoch, so its schedule must survive the resume too.
    let smoke = |epochs: &str| smoke(&[epochs, "optimizer.lr_step_epochs=1"]);
    train(&smoke("train.epochs=2"), &run, &options()).unwrap();
    assert_eq!(run.latest_checkpoint(), Some(2));

    let again = train(&smoke("train.epochs=2"), &run, &options()).unwrap_err();
    assert!(format!("{again:#}").contains("is not empty"), "{again:#}");

    let mut resume = options();
    resume.resume = true;
    let finished = train(&smoke("train.epochs=2"), &run, &resume).unwrap_err();
    assert!(
        format!("{finished:#}").contains("already holds epoch 2"),
        "{finished:#}"
    );

    let config = smoke("train.epochs=4");
    let summary = train(&config, &run, &resume).unwrap();
    assert_eq!(summary.epochs, 4);
    assert_eq!(run.latest_checkpoint(), Some(4));
    let metrics = run.metrics().unwrap();
    let epochs: Vec<usize> = metrics.iter().map(|m| m.epoch).collect();
    assert_eq!(epochs, [1, 2, 3, 4]);
    let lr = config.optimizer.lr;
    for (row, expected) in metrics.iter().zip([lr, lr / 2.0, lr / 4.0, lr / 8.0]) {
        assert!((row.learning_rate - expected).abs() < 1e-12 * lr, "{row:?}");
    }
    assert!(summary.test_accuracy_mean_network_pct > SMOKE_FLOOR_PCT);
}

#[test]
fn a_diverging_loss_stops_training_with_its_epoch_and_batch() {
    let root = tempfile::tempdir().unwrap();
    let run = run_dir(&root, "diverged");
    // Weights of order 1e20 overflow float32 in the variance at the first batch.
    let error = train(&smoke(&["model.m_init_std=1e20"]), &run, &options()).unwrap_err();
    let message = format!("{error:#}");
    assert!(
        message.contains("not finite at epoch 1, batch 1"),
        "{message}"
    );
    assert!(
        !run.file("model.bpk").exists(),
        "no final model from a diverged run"
    );
}

#[test]
fn every_optimizer_step_keeps_pi_and_xi_in_their_support() {
    let device = device().autodiff();
    device.seed(9);
    let config = smoke(&[]);
    let data = load_data(&config).unwrap();
    let mut model = Classifier::init(&config.model, &device);
    let mut optimizer = AdamWConfig::new().init();
    let mut on_bounds = 0;
    for step in 0..20 {
        let batch = data.train.batch(step * 50..(step + 1) * 50, &device);
        let output = TrainStep::step(&model, batch);
        // A learning rate of 1 pushes many parameters past their bounds at every step.
        model = model.optimize(&mut optimizer, 1.0.into(), output.grads);
        on_bounds = assert_in_support(&model.valid());
    }
    assert!(on_bounds > 100, "only {on_bounds} parameters on a bound");
    let logits: Tensor<2> = model.forward(data.test.batch(0..10, &device).images, Noise::Sampled);
    assert!(values(logits).iter().all(|v| v.is_finite()));
}

#[test]
fn fused_adamw_takes_the_steps_of_burns_adamw() {
    let device = device().autodiff();
    let config = smoke(&[]).optimizer;
    let shape = [30, 17];
    let mut rng = common::Lcg(5);
    let mut param = |lo, hi| common::tensor(rng.uniform(30 * 17, lo, hi), shape, &device);
    let layer = SpikeSlabLinear::from_tensors(param(-1.0, 1.0), param(0.0, 0.1), param(0.0, 1.0));
    let mut reference = AdamWConfig::new()
        .with_beta_1(config.beta1)
        .with_beta_2(config.beta2)
        .with_epsilon(config.epsilon)
        .with_weight_decay(config.weight_decay)
        .init();
    let mut fused = FusedAdamW::new(&config).init();
    let (mut a, mut b) = (layer.clone(), layer);
    for _ in 0..25 {
        // A loss linear in the parameters: the same gradients for both copies.
        let weights: Vec<Tensor<2>> = (0..3)
            .map(|_| common::tensor(rng.uniform(30 * 17, -1.0, 1.0), shape, &device))
            .collect();
        let gradients = |l: &SpikeSlabLinear| {
            let loss = (l.m.val() * weights[0].clone()
                + l.xi.val() * weights[1].clone()
                + l.pi.val() * weights[2].clone())
            .sum();
            GradientsParams::from_grads(loss.backward(), l)
        };
        let (grads_a, grads_b) = (gradients(&a), gradients(&b));
        a = reference.step(config.lr, a, grads_a);
        b = fused.step(config.lr, b, grads_b);
    }
    for (x, y) in [(a.m, b.m), (a.xi, b.xi), (a.pi, b.pi)] {
        let (x, y) = (values(x.val()), values(y.val()));
        assert!(x.iter().zip(&y).all(|(x, y)| x == y), "{x:?} vs {y:?}");
    }
}

#[test]
fn the_learning_rate_steps_after_every_lr_step_epochs() {
    let config = smoke(&["optimizer.lr=0.1", "optimizer.lr_step_epochs=2"]).optimizer;
    let mut schedule = learning_rate_schedule(&config, 3).unwrap();
    let rates: Vec<f64> = (0..14).map(|_| schedule.step().base()).collect();
    // Epochs of 3 steps: 6 steps at 0.1, 6 at 0.05, then 0.025.
    let expected = [[0.1; 6], [0.05; 6]].concat();
    assert_eq!(rates[..12], expected);
    assert_eq!(rates[12..], [0.025; 2]);

    let constant = smoke(&["optimizer.lr_step_epochs=0"]).optimizer;
    let mut schedule = learning_rate_schedule(&constant, 3).unwrap();
    assert!((0..100).all(|_| schedule.step().base() == constant.lr));
}

#[test]
fn fused_adamw_restarts_after_every_period() {
    use burn::optim::Optimizer;
    let device = device();
    let config = smoke(&[]).optimizer;
    let mut rng = common::Lcg(11);
    let mut tensor = |lo, hi| common::tensor(rng.uniform(40, lo, hi), [40], &device);
    let grads: Vec<Tensor<1>> = (0..4).map(|_| tensor(-1.0, 1.0)).collect();
    // Epochs of 3 steps, with and without optimizer.restart_each_epoch.
    let restarting = FusedAdamW::for_epochs(&config, 3);
    assert!(config.restart_each_epoch);
    let steady =
        FusedAdamW::for_epochs(&smoke(&["optimizer.restart_each_epoch=false"]).optimizer, 3);
    let start = tensor(-1.0, 1.0);
    let (mut a, mut b) = (start.clone(), start);
    let (mut state_a, mut state_b) = (None, None);
    for grad in &grads[..3] {
        (a, state_a) = restarting.step(config.lr, a, grad.clone(), state_a);
        (b, state_b) = steady.step(config.lr, b, grad.clone(), state_b);
    }
    assert_eq!(
        values(a.clone()),
        values(b.clone()),
        "the same first period"
    );
    let (fresh, _) = steady.step(config.lr, b.clone(), grads[3].clone(), None);
    let (continued, _) = steady.step(config.lr, b, grads[3].clone(), state_b);
    let (restarted, state_a) = restarting.step(config.lr, a, grads[3].clone(), state_a);
    assert_eq!(state_a.expect("a state").momentum.time, 1);
    assert_eq!(values(restarted.clone()), values(fresh));
    assert_ne!(values(restarted), values(continued));
}

#[test]
fn fused_adamw_sets_subnormal_moments_to_zero() {
    use burn::optim::{AdamWState, AdaptiveMomentumState, Optimizer};
    let device = device();
    let config = smoke(&[]).optimizer;
    let tiny = f32::MIN_POSITIVE as f64;
    // Moments just above the normal range; with a zero gradient, beta_1 = 0.9 and
    // beta_2 = 0.999 shrink them below it.
    let moment = |scale: f64| common::tensor(vec![tiny * scale; 4], [4], &device);
    let state = AdamWState::new(AdaptiveMomentumState::new(50, moment(1.05), moment(1.0005)));
    let param = common::tensor(vec![0.5; 4], [4], &device);
    let zero = common::tensor(vec![0.0; 4], [4], &device);
    let (param, state) = FusedAdamW::new(&config).step(0.1, param, zero, Some(state));
    let momentum = state.expect("a state").momentum;
    assert_eq!(values(momentum.moment_1), vec![0.0; 4]);
    assert_eq!(values(momentum.moment_2), vec![0.0; 4]);
    assert!(values(param).iter().all(|&w| w > 0.49 && w < 0.5));
}
