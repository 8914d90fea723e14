//! The optimizer step: AdamW in one pass against burn's `AdamW`, the learning-rate steps and
//! the per-epoch restarts of the 2020 protocol, subnormal moments, and the projection of
//! `pi` and `xi` onto their supports after every step.

mod common;

use burn::optim::{AdamWConfig, GradientsParams};
use burn::tensor::Tensor;
use common::runs::{assert_in_support, smoke};
use common::{device, values};
use credit_model::{Noise, Seed, SpikeSlabLinear};
use credit_train::{FusedAdamW, learning_rate, load_data};

#[test]
fn every_optimizer_step_keeps_pi_and_xi_in_their_support() {
    let device = device().autodiff();
    let config = smoke(&[]);
    let data = load_data(&config).unwrap();
    let mut model = config.model.init(Seed::new(9), &device);
    let mut optimizer = AdamWConfig::new().init();
    let loss_fn = burn::nn::loss::CrossEntropyLossConfig::new().init(&device);
    let mut on_bounds = 0;
    for step in 0..20 {
        let batch = data.train.batch(step * 50..(step + 1) * 50, &device);
        let logits = model.forward(batch.images, Noise::Sampled(Seed::new(step as u64)));
        let loss = loss_fn.forward(logits, batch.targets);
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        // A learning rate of 1 pushes many parameters past their bounds at every step.
        model = optimizer.step(1.0, model, grads).project();
        on_bounds = assert_in_support(&burn::module::Module::valid(&model));
    }
    assert!(on_bounds > 100, "only {on_bounds} parameters on a bound");
    let logits: Tensor<2> = model.forward(
        data.test.batch(0..10, &device).images,
        Noise::Sampled(Seed::new(99)),
    );
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
        .with_beta_1(config.beta1 as f32)
        .with_beta_2(config.beta2 as f32)
        .with_epsilon(config.epsilon as f32)
        .with_weight_decay(config.weight_decay as f32)
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
    let rates: Vec<f64> = (1..=7).map(|e| learning_rate(&config, e)).collect();
    assert_eq!(rates, [0.1, 0.1, 0.05, 0.05, 0.025, 0.025, 0.0125]);
    // The authors' 2020 schedule: 0.1 halved every 20 epochs, 0.00625 in epochs 81-100.
    let authors = smoke(&["optimizer.lr=0.1", "optimizer.lr_step_epochs=20"]).optimizer;
    assert_eq!(learning_rate(&authors, 20), 0.1);
    assert_eq!(learning_rate(&authors, 21), 0.05);
    assert_eq!(learning_rate(&authors, 100), 0.00625);
    let constant = smoke(&["optimizer.lr_step_epochs=0"]).optimizer;
    assert!((1..100).all(|e| learning_rate(&constant, e) == constant.lr));
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
