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

use crate::config::{ClipNorm, DecayedParameter, OptimizerConfig};

/// `grad` scaled by `bound / |grad|` where its norm `|grad|` is at least `bound` (the
/// recurrent scripts' `grad_clip`, which scales at equality too: the same values). The
/// spectral norm of a matrix is the root of the largest eigenvalue of `gᵀg`, by power
/// iteration in float64 on the host; a tensor of another rank takes its Frobenius norm.
pub(crate) fn clip_to_norm<const D: usize>(
    grad: Tensor<D>,
    bound: f64,
    norm: ClipNorm,
) -> Tensor<D> {
    let dims = grad.dims();
    let values: Vec<f64> = grad
        .clone()
        .into_data()
        .convert::<f64>()
        .try_into_vec::<f64>()
        .expect("float gradients");
    let frobenius = values.iter().map(|v| v * v).sum::<f64>().sqrt();
    let size = match (norm, D) {
        // The spectral norm is at most the Frobenius norm: below the bound neither clips,
        // and the power iteration (5% of a recurrent epoch, measured) is skipped.
        (ClipNorm::Spectral, 2) if frobenius >= bound => spectral_norm(&values, dims[0], dims[1]),
        _ => frobenius,
    };
    if size >= bound && size > 0.0 {
        grad.mul_scalar(bound / size)
    } else {
        grad
    }
}

/// The largest singular value of the row-major `[rows, cols]` matrix `a`: the root of the
/// largest eigenvalue of the `[k, k]` Gram matrix (`k` the smaller side), by
/// [`power_iteration`].
pub fn spectral_norm(a: &[f64], rows: usize, cols: usize) -> f64 {
    let k = rows.min(cols);
    if k == 0 {
        return 0.0;
    }
    // gram = a aᵀ ([rows, rows]) or aᵀ a ([cols, cols]), whichever is smaller.
    let mut gram = vec![0.0; k * k];
    for i in 0..k {
        for j in 0..=i {
            let dot: f64 = if rows <= cols {
                (0..cols).map(|c| a[i * cols + c] * a[j * cols + c]).sum()
            } else {
                (0..rows).map(|r| a[r * cols + i] * a[r * cols + j]).sum()
            };
            gram[i * k + j] = dot;
            gram[j * k + i] = dot;
        }
    }
    // Power iteration from a start with no special structure (the ones vector can lie in
    // the Gram matrix's null space: the readout's gradient rows sum to about zero), then
    // from each unit vector in turn while the start gives zero.
    let starts = std::iter::once(
        (0..k)
            .map(|i| 1.0 + 0.618_033_988_75 * i as f64 % 1.0)
            .collect(),
    )
    .chain((0..k).map(|j| (0..k).map(|i| f64::from(u8::from(i == j))).collect()));
    for start in starts {
        let estimate = power_iteration(&gram, k, start);
        if estimate > 0.0 {
            return estimate.sqrt();
        }
    }
    0.0
}

/// The largest eigenvalue of the symmetric positive semi-definite `[k, k]` matrix `gram`
/// by power iteration from `v`, until the estimate changes by less than 1e-12 relative (at
/// most 1,000 iterations; it approaches the value from below); 0 if `gram v = 0`.
fn power_iteration(gram: &[f64], k: usize, mut v: Vec<f64>) -> f64 {
    let mut estimate = 0.0;
    for _ in 0..1_000 {
        let w: Vec<f64> = (0..k)
            .map(|i| (0..k).map(|j| gram[i * k + j] * v[j]).sum())
            .collect();
        let length = w.iter().map(|x| x * x).sum::<f64>().sqrt();
        if length == 0.0 {
            return 0.0;
        }
        let norm_v = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        let value = length / norm_v;
        let converged = (value - estimate).abs() <= 1e-12 * value;
        estimate = value;
        v = w.into_iter().map(|x| x / length).collect();
        if converged {
            break;
        }
    }
    estimate
}

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
    clip: Option<(f64, ClipNorm)>,
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
            clip: config
                .clip_grad_norm
                .map(|bound| (bound, config.clip_grad_kind.unwrap_or_default())),
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
        let grad = match self.clip {
            Some((bound, norm)) => clip_to_norm(grad, bound, norm),
            None => grad,
        };
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
        Classifier::Deterministic(net) if !decays(DecayedParameter::M) => {
            net.layers.iter().map(|l| l.weight.clone()).collect()
        }
        Classifier::Deterministic(_) => Vec::new(),
        spike_slab => spike_slab
            .spike_slab_layers()
            .into_iter()
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
/// `lr0 0.5^floor(i / 20)` for the epoch index `i` from 0), counted from
/// `config.lr_step_offset` epochs earlier (the recurrent scripts: `0.5^floor((i + 1) / 40)`).
pub fn learning_rate(config: &OptimizerConfig, epoch: usize) -> f64 {
    if config.lr_step_epochs == 0 {
        return config.lr;
    }
    let index = epoch.saturating_sub(1) + config.lr_step_offset.unwrap_or(0);
    let steps = (index / config.lr_step_epochs).min(i32::MAX as usize);
    config.lr * config.lr_step_factor.powi(steps as i32)
}
