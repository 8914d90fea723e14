//! AdamW in one pass over each parameter tensor.
//!
//! burn's `AdamW` takes about fifteen tensor operations per parameter tensor and step, each
//! reading and writing the whole tensor; [`FusedAdamW`] computes the same update, operation
//! by operation in the same order and precision, in one pass on the `flex` backend (other
//! backends compose the same generic operations). On `flex` it also sets moments that fall
//! below the smallest normal number to zero (see `flex::flush`). Its state is burn's
//! [`AdamWState`], so optimizer checkpoints keep their format.
//!
//! [`learning_rate_schedule`] and [`FusedAdamW::for_epochs`] give the reference code's
//! schedule: the learning rate halved every 20 epochs, AdamW started afresh every epoch.

use anyhow::{Result, anyhow};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Dispatch, backend_extension};
use burn::optim::lr_scheduler::module_lr_scheduler::ModuleLrScheduler;
use burn::optim::lr_scheduler::step::StepLrSchedulerConfig;
use burn::optim::{AdamWState, AdaptiveMomentumState, LearningRate, ModuleOptimizer, Optimizer};
use burn::tensor::{Device, Tensor};

use crate::config::OptimizerConfig;

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
    beta_1: f32,
    beta_2: f32,
    epsilon: f32,
    weight_decay: f32,
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
        let step = Step {
            lr,
            beta_1: self.beta_1,
            beta_2: self.beta_2,
            epsilon: self.epsilon,
            weight_decay: self.weight_decay,
            time,
        };
        let (tensor, moment_1, moment_2) = step.apply(tensor, grad, moment_1, moment_2);
        let momentum = AdaptiveMomentumState::new(time, moment_1, moment_2);
        (tensor, Some(AdamWState::new(momentum)))
    }

    fn to_device<const D: usize>(mut state: Self::State<D>, device: &Device) -> Self::State<D> {
        state.momentum = state.momentum.to_device(device);
        state
    }
}

/// The learning rate of each step for epochs of `steps_per_epoch` steps: `config.lr`,
/// multiplied by `config.lr_step_factor` after every `config.lr_step_epochs` epochs.
pub fn learning_rate_schedule(
    config: &OptimizerConfig,
    steps_per_epoch: usize,
) -> Result<ModuleLrScheduler> {
    if config.lr_step_epochs == 0 {
        return Ok(config.lr.into());
    }
    StepLrSchedulerConfig::new(config.lr, config.lr_step_epochs * steps_per_epoch.max(1))
        .with_gamma(config.lr_step_factor)
        .init()
        .map_err(|error| anyhow!("optimizer.lr_step_epochs: {error}"))
}

/// The scalars of one step.
#[derive(Debug, Clone, Copy)]
pub struct Step {
    lr: f64,
    beta_1: f32,
    beta_2: f32,
    epsilon: f32,
    weight_decay: f32,
    time: usize,
}

impl Step {
    fn apply<const D: usize>(
        self,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        moment_1: Tensor<D>,
        moment_2: Tensor<D>,
    ) -> (Tensor<D>, Tensor<D>, Tensor<D>) {
        let (tensor, moment_1, moment_2) = <Dispatch as AdamWBackend>::adamw_update(
            tensor.into_dispatch(),
            grad.into_dispatch(),
            moment_1.into_dispatch(),
            moment_2.into_dispatch(),
            self,
        );
        (
            Tensor::from_dispatch(tensor),
            Tensor::from_dispatch(moment_1),
            Tensor::from_dispatch(moment_2),
        )
    }

    /// `1 - beta^t`, the bias corrections, as burn computes them.
    fn corrections(&self) -> (f32, f32) {
        let time = self.time as i32;
        (1.0 - self.beta_1.powi(time), 1.0 - self.beta_2.powi(time))
    }

    /// The factor `1 - lr weight_decay` of the decoupled decay.
    fn decay(&self) -> f64 {
        1.0 - self.lr * self.weight_decay as f64
    }
}

/// The backend operation behind [`FusedAdamW`]: returns the parameter and the two moments
/// after one step (all of the parameter's shape).
#[backend_extension(
    Flex: cfg(feature = "flex"),
    NdArray: cfg(feature = "ndarray"),
    Cube: cfg(feature = "wgpu")
)]
pub trait AdamWBackend: Backend {
    fn adamw_update(
        tensor: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        moment_1: FloatTensor<Self>,
        moment_2: FloatTensor<Self>,
        step: Step,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        composed_update::<Self>(tensor, grad, moment_1, moment_2, step)
    }
}

#[cfg(feature = "ndarray")]
impl AdamWBackend for burn::backend::NdArray {}

#[cfg(feature = "wgpu")]
impl AdamWBackend for burn::backend::Cube {}

/// The update from generic operations, in burn's `AdamW` order.
fn composed_update<B: Backend>(
    tensor: FloatTensor<B>,
    grad: FloatTensor<B>,
    moment_1: FloatTensor<B>,
    moment_2: FloatTensor<B>,
    step: Step,
) -> (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>) {
    let (correction_1, correction_2) = step.corrections();
    let moment_1 = B::float_add(
        B::float_mul_scalar(moment_1, step.beta_1.into()),
        B::float_mul_scalar(grad.clone(), (1.0 - step.beta_1).into()),
    );
    let squared = B::float_mul(grad.clone(), grad);
    let moment_2 = B::float_add(
        B::float_mul_scalar(moment_2, step.beta_2.into()),
        B::float_mul_scalar(squared, (1.0 - step.beta_2).into()),
    );
    let corrected_1 = B::float_div_scalar(moment_1.clone(), correction_1.into());
    let corrected_2 = B::float_div_scalar(moment_2.clone(), correction_2.into());
    let denominator = B::float_add_scalar(B::float_sqrt(corrected_2), step.epsilon.into());
    let delta = B::float_div(corrected_1, denominator);
    let decayed = B::float_mul_scalar(tensor, step.decay().into());
    let tensor = B::float_sub(decayed, B::float_mul_scalar(delta, step.lr.into()));
    (tensor, moment_1, moment_2)
}

#[cfg(feature = "flex")]
mod flex {
    use burn::backend::Flex;
    use burn::backend::flex::FlexTensor;
    use burn::backend::tensor::FloatTensor;
    use burn::tensor::{DType, Element};
    use num_traits::Float;
    use rayon::prelude::*;

    use credit_model::flex_host::{contiguous, values, values_mut};

    use super::{AdamWBackend, Step, composed_update};

    impl AdamWBackend for Flex {
        fn adamw_update(
            tensor: FloatTensor<Self>,
            grad: FloatTensor<Self>,
            moment_1: FloatTensor<Self>,
            moment_2: FloatTensor<Self>,
            step: Step,
        ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
            let tensors = [tensor, grad, moment_1, moment_2];
            match tensors[0].dtype() {
                DType::F32 => update::<f32>(tensors, step),
                DType::F64 => update::<f64>(tensors, step),
                _ => {
                    let [tensor, grad, moment_1, moment_2] = tensors;
                    composed_update::<Self>(tensor, grad, moment_1, moment_2, step)
                }
            }
        }
    }

    /// `[tensor, grad, moment_1, moment_2]` to `(tensor, moment_1, moment_2)`, in place where
    /// the storage is not shared. Each value goes through the operations of
    /// `composed_update`, in its order and precision (scalars rounded to `T` as flex does).
    fn update<T: Float + Element + bytemuck::Pod>(
        tensors: [FlexTensor; 4],
        step: Step,
    ) -> (FlexTensor, FlexTensor, FlexTensor) {
        let [mut tensor, grad, mut moment_1, mut moment_2] = tensors.map(contiguous);
        let scalars = Scalars::new(step);
        let grad: &[T] = values(&grad);
        #[cfg(target_arch = "x86_64")]
        let avx512 = std::arch::is_x86_feature_detected!("avx512f");
        values_mut::<T>(&mut tensor)
            .par_chunks_mut(CHUNK)
            .zip(values_mut::<T>(&mut moment_1).par_chunks_mut(CHUNK))
            .zip(values_mut::<T>(&mut moment_2).par_chunks_mut(CHUNK))
            .zip(grad.par_chunks(CHUNK))
            .for_each(|(((tensor, moment_1), moment_2), grad)| {
                let values = [tensor, moment_1, moment_2];
                #[cfg(target_arch = "x86_64")]
                if avx512 {
                    // SAFETY: AVX-512F is available.
                    return unsafe { update_values_avx512(values, grad, &scalars) };
                }
                update_values(values, grad, &scalars)
            });
        (tensor, moment_1, moment_2)
    }

    /// Values per parallel task.
    const CHUNK: usize = 1 << 13;

    /// The scalars of a [`Step`] rounded to `T`, as flex rounds scalar operands.
    struct Scalars<T> {
        beta_1: T,
        beta_2: T,
        keep_1: T,
        keep_2: T,
        correction_1: T,
        correction_2: T,
        epsilon: T,
        decay: T,
        lr: T,
    }

    impl<T: Float> Scalars<T> {
        fn new(step: Step) -> Self {
            let scalar = |value: f64| T::from(value).expect("a float scalar");
            let (correction_1, correction_2) = step.corrections();
            Self {
                beta_1: scalar(step.beta_1.into()),
                beta_2: scalar(step.beta_2.into()),
                keep_1: scalar((1.0 - step.beta_1).into()),
                keep_2: scalar((1.0 - step.beta_2).into()),
                correction_1: scalar(correction_1.into()),
                correction_2: scalar(correction_2.into()),
                epsilon: scalar(step.epsilon.into()),
                decay: scalar(step.decay()),
                lr: scalar(step.lr),
            }
        }
    }

    /// One step over `[parameter, moment_1, moment_2]` with gradient `grad`.
    #[inline(always)]
    fn update_values<T: Float>(values: [&mut [T]; 3], grad: &[T], s: &Scalars<T>) {
        let [tensor, moment_1, moment_2] = values;
        let moments = moment_1.iter_mut().zip(moment_2);
        for ((w, &g), (m1, m2)) in tensor.iter_mut().zip(grad).zip(moments) {
            *m1 = flush(*m1 * s.beta_1 + g * s.keep_1);
            *m2 = flush(*m2 * s.beta_2 + g * g * s.keep_2);
            let delta = (*m1 / s.correction_1) / ((*m2 / s.correction_2).sqrt() + s.epsilon);
            *w = *w * s.decay - delta * s.lr;
        }
    }

    /// [`update_values`] compiled for AVX-512: the divisions and the square root dominate,
    /// four times as many lanes as the baseline's SSE.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    fn update_values_avx512<T: Float>(values: [&mut [T]; 3], grad: &[T], s: &Scalars<T>) {
        update_values(values, grad, s)
    }

    /// `x`, or 0 where `x` is subnormal. The moments of a parameter whose gradient stays 0
    /// (a weight from a pixel that is 0 in every image) shrink geometrically into the
    /// subnormal range and stop at its smallest number; arithmetic on subnormal numbers is
    /// tens of times slower on x86 CPUs, and was half of the step time late in a paper run.
    /// Such a moment changes the parameter by less than `1e-30`.
    #[inline(always)]
    fn flush<T: Float>(x: T) -> T {
        // `abs() < MIN_POSITIVE` holds for the subnormal numbers and zero, not for NaN.
        if x.abs() < T::min_positive_value() {
            T::zero()
        } else {
            x
        }
    }
}
