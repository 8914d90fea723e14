//! AdamW as a burn optimizer whose update is one backend operation per parameter tensor
//! ([`credit_ops::adamw`]): the same values as burn's `AdamW` in float32, and in float64 the
//! hyperparameters and bias corrections in float64 (burn's are `f32`). Its state is burn's
//! [`AdamWState`], so optimizer checkpoints keep their format.
//!
//! [`learning_rate`] and [`FusedAdamW::for_epochs`] give the reference code's schedule: the
//! learning rate halved every 20 epochs, AdamW started afresh every epoch.

use burn::module::{Param, ParamGroup};
use burn::optim::{AdamWState, AdaptiveMomentumState, LearningRate, ModuleOptimizer, Optimizer};
use burn::tensor::{Device, Tensor};
use credit_model::Classifier;
use credit_ops::adamw::{AdamWStep, adamw_update};

use crate::config::{DecayedParameter, OptimizerConfig};

/// AdamW with decoupled weight decay: with `g` the gradient and `t` the step number,
///
/// ```text
/// m1 = beta_1 m1 + (1 - beta_1) g          m2 = beta_2 m2 + (1 - beta_2) g²
/// w  = (1 - lr weight_decay) w - lr (m1 / (1 - beta_1^t)) / (sqrt(m2 / (1 - beta_2^t)) + epsilon)
/// ```
///
/// With a restart period `n`, the step after every `n` steps of a tensor starts from zero
/// moments again, with `t = 1`.
#[derive(Debug, Clone, Copy)]
pub struct FusedAdamW {
    beta_1: f64,
    beta_2: f64,
    epsilon: f64,
    weight_decay: f64,
    restart_every: Option<usize>,
}

impl FusedAdamW {
    /// The optimizer of `config`, never restarting.
    pub fn new(config: &OptimizerConfig) -> Self {
        Self {
            beta_1: config.beta1,
            beta_2: config.beta2,
            epsilon: config.epsilon,
            weight_decay: config.weight_decay,
            restart_every: None,
        }
    }

    /// The optimizer of `config` for epochs of `steps_per_epoch` steps: restarting every
    /// epoch if `config.restart_each_epoch`.
    pub fn for_epochs(config: &OptimizerConfig, steps_per_epoch: usize) -> Self {
        Self {
            restart_every: config.restart_each_epoch.then_some(steps_per_epoch.max(1)),
            ..Self::new(config)
        }
    }

    /// The optimizer for every parameter of a module.
    pub fn init(self) -> ModuleOptimizer {
        ModuleOptimizer::from(self)
    }
}

impl Optimizer for FusedAdamW {
    type State<const D: usize> = AdamWState<D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<D>, Option<Self::State<D>>) {
        let restart = |state: &Self::State<D>| {
            self.restart_every
                .is_some_and(|steps| state.momentum.time % steps == 0)
        };
        // Zero moments make the first step's update equal burn's initialisation.
        let (moment_1, moment_2, time) = match state.filter(|state| !restart(state)) {
            Some(state) => {
                let momentum = state.momentum;
                (momentum.moment_1, momentum.moment_2, momentum.time + 1)
            }
            None => (grad.zeros_like(), grad.zeros_like(), 1),
        };
        let step = AdamWStep {
            lr,
            beta_1: self.beta_1,
            beta_2: self.beta_2,
            epsilon: self.epsilon,
            weight_decay: self.weight_decay,
            time,
        };
        let (tensor, moment_1, moment_2) = adamw_update(tensor, grad, moment_1, moment_2, step);
        let momentum = AdaptiveMomentumState::new(time, moment_1, moment_2);
        (tensor, Some(AdamWState::new(momentum)))
    }

    fn to_device<const D: usize>(mut state: Self::State<D>, device: &Device) -> Self::State<D> {
        state.momentum = state.momentum.to_device(device);
        state
    }
}

/// The optimizer of a run: AdamW (restarting every epoch of `steps_per_epoch` steps if
/// `config.restart_each_epoch`), with decoupled weight decay on the parameters of `model`
/// that `config.decay` names and none on the others.
pub fn optimizer_for(
    config: &OptimizerConfig,
    steps_per_epoch: usize,
    model: &Classifier,
) -> ModuleOptimizer {
    let adamw = FusedAdamW::for_epochs(config, steps_per_epoch);
    let decays = |p: DecayedParameter| config.decay.contains(&p);
    let undecayed: Vec<Param<Tensor<2>>> = match model {
        Classifier::SpikeSlab(net) => net
            .layers
            .iter()
            .flat_map(|l| {
                [
                    (DecayedParameter::M, &l.m),
                    (DecayedParameter::Xi, &l.xi),
                    (DecayedParameter::Pi, &l.pi),
                ]
            })
            .filter(|(p, _)| !decays(*p))
            .map(|(_, param)| param.clone())
            .collect(),
        Classifier::Deterministic(net) if !decays(DecayedParameter::M) => {
            net.layers.iter().map(|l| l.weight.clone()).collect()
        }
        Classifier::Deterministic(_) => Vec::new(),
    };
    let optimizer = adamw.init();
    if undecayed.is_empty() {
        return optimizer;
    }
    let no_decay = FusedAdamW {
        weight_decay: 0.0,
        ..adamw
    };
    optimizer.with_group(ParamGroup::ids_from_module(undecayed), no_decay, None)
}

/// The learning rate of the steps of epoch `epoch` (from 1): `config.lr`, multiplied by
/// `config.lr_step_factor` after every `config.lr_step_epochs` epochs (the authors' `divi_`:
/// `lr0 0.5^floor(i / 20)` for the epoch index `i` from 0).
pub fn learning_rate(config: &OptimizerConfig, epoch: usize) -> f64 {
    if config.lr_step_epochs == 0 {
        return config.lr;
    }
    let steps = (epoch.saturating_sub(1) / config.lr_step_epochs).min(i32::MAX as usize);
    config.lr * config.lr_step_factor.powi(steps as i32)
}
