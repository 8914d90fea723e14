//! The AdamW update on `flex`: one pass over each parameter tensor, in parallel chunks.

use std::mem::MaybeUninit;

use burn::backend::Flex;
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::tensor::{DType, Element, TensorData};
use num_traits::Float;
use rayon::prelude::*;

use super::reference::composed_update;
use super::{AdamWBackend, AdamWScalars, AdamWStep};
use crate::flex_host::{contiguous, values, values_mut};

impl AdamWBackend for Flex {
    fn adamw_update(
        tensor: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        moment_1: FloatTensor<Self>,
        moment_2: FloatTensor<Self>,
        step: AdamWStep,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let tensors = [tensor, grad, moment_1, moment_2];
        let dtype = tensors[0].dtype();
        let same = tensors.iter().all(|t| t.dtype() == dtype);
        match dtype {
            DType::F32 if same => update::<f32>(tensors, step),
            DType::F64 if same => update::<f64>(tensors, step),
            _ => {
                let [tensor, grad, moment_1, moment_2] = tensors;
                composed_update::<Self>(tensor, grad, moment_1, moment_2, step)
            }
        }
    }
}

/// `[tensor, grad, moment_1, moment_2]` to `(tensor, moment_1, moment_2)`: the moments in
/// place where their storage is not shared, the parameter into new storage. Each value goes
/// through the operations of `composed_update`, in its order and precision (scalars rounded
/// to `T` as flex does).
///
/// In training the parameter's storage is shared: burn's `Learner` keeps its model until the
/// optimized one replaces it (`self.model = self.model().optimize(..)`), so an update in
/// place would first copy it (5% of a profile of 3072-200-200-10 training, in `memmove`).
fn update<T: Float + Element + bytemuck::Pod>(
    tensors: [FlexTensor; 4],
    step: AdamWStep,
) -> (FlexTensor, FlexTensor, FlexTensor) {
    let [tensor, grad, mut moment_1, mut moment_2] = tensors.map(contiguous);
    let scalars = step.scalars::<T>();
    let (old, grad): (&[T], &[T]) = (values(&tensor), values(&grad));
    let mut new = Vec::<T>::with_capacity(old.len());
    #[cfg(target_arch = "x86_64")]
    let avx512 = std::arch::is_x86_feature_detected!("avx512f");
    #[cfg(target_arch = "x86_64")]
    let avx2 = std::arch::is_x86_feature_detected!("avx2");
    new.spare_capacity_mut()[..old.len()]
        .par_chunks_mut(CHUNK)
        .zip(old.par_chunks(CHUNK))
        .zip(values_mut::<T>(&mut moment_1).par_chunks_mut(CHUNK))
        .zip(values_mut::<T>(&mut moment_2).par_chunks_mut(CHUNK))
        .zip(grad.par_chunks(CHUNK))
        .for_each(|((((new, old), moment_1), moment_2), grad)| {
            let values = Values {
                old,
                new,
                moment_1,
                moment_2,
                grad,
            };
            #[cfg(target_arch = "x86_64")]
            if avx512 {
                // SAFETY: AVX-512F is available.
                return unsafe { update_values_avx512(values, &scalars) };
            }
            #[cfg(target_arch = "x86_64")]
            if avx2 {
                // SAFETY: AVX2 is available.
                return unsafe { update_values_avx2(values, &scalars) };
            }
            update_values(values, &scalars)
        });
    // SAFETY: the chunks above cover the first `old.len()` elements of the capacity, and
    // `update_values` wrote each of them.
    unsafe { new.set_len(old.len()) };
    let shape = tensor.layout().shape().clone();
    let tensor = FlexTensor::from_data(TensorData::new(new, shape));
    (tensor, moment_1, moment_2)
}

/// Values per parallel task.
const CHUNK: usize = 1 << 13;

/// One chunk of an update: the parameter before (`old`) and after (`new`, every element
/// written), the moments (updated in place) and the gradient, all of one length.
struct Values<'a, T> {
    old: &'a [T],
    new: &'a mut [MaybeUninit<T>],
    moment_1: &'a mut [T],
    moment_2: &'a mut [T],
    grad: &'a [T],
}

/// One step over a chunk, writing every element of `new`.
#[inline(always)]
fn update_values<T: Float>(v: Values<T>, s: &AdamWScalars<T>) {
    let moments = v.moment_1.iter_mut().zip(v.moment_2);
    let params = v.new.iter_mut().zip(v.old);
    for (((new, &w), &g), (m1, m2)) in params.zip(v.grad).zip(moments) {
        *m1 = flush(*m1 * s.beta_1 + g * s.keep_1);
        *m2 = flush(*m2 * s.beta_2 + g * g * s.keep_2);
        let delta = (*m1 / s.correction_1) / ((*m2 / s.correction_2).sqrt() + s.epsilon);
        new.write(w * s.decay - delta * s.lr);
    }
}

/// [`update_values`] compiled for AVX-512: the divisions and the square root dominate,
/// four times as many lanes as the baseline's SSE.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn update_values_avx512<T: Float>(v: Values<T>, s: &AdamWScalars<T>) {
    update_values(v, s)
}

/// [`update_values`] compiled for AVX2, for CPUs without AVX-512 (twice the baseline's
/// lanes). No fused multiply-adds (Rust does not contract `a * b + c`), and division and
/// square root are correctly rounded, so every build gives the same values.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn update_values_avx2<T: Float>(v: Values<T>, s: &AdamWScalars<T>) {
    update_values(v, s)
}

/// `x`, or 0 where `x` is subnormal. The moments of a parameter whose gradient stays 0
/// (a weight from a pixel that is 0 in every image) shrink geometrically into the
/// subnormal range and stop at its smallest number; arithmetic on subnormal numbers is
/// tens of times slower on x86 CPUs, and was half of the step time late in a paper run.
/// Such a moment changes the parameter by less than `1e-30`.
#[inline(always)]
fn flush<T: Float>(x: T) -> T {
    // The `unflushed` build (a measurement of what the flush changes) keeps every value.
    if cfg!(feature = "unflushed") {
        return x;
    }
    // `abs() < MIN_POSITIVE` holds for the subnormal numbers and zero, not for NaN.
    if x.abs() < T::min_positive_value() {
        T::zero()
    } else {
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each vector build the CPU can run gives the baseline loop's values bit for bit,
    /// subnormal moments (flushed to zero) included.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn vector_builds_equal_the_baseline_loop() {
        let n = 1001;
        let value = |i: usize, scale: f32| ((i * 7919 % 1000) as f32 / 500.0 - 1.0) * scale;
        let old: Vec<f32> = (0..n).map(|i| value(i, 1.0)).collect();
        let grad: Vec<f32> = (0..n).map(|i| value(i + 3, 1e-3)).collect();
        let moment_1: Vec<f32> = (0..n)
            .map(|i| {
                if i % 5 == 0 {
                    1e-39
                } else {
                    value(i + 5, 1e-2)
                }
            })
            .collect();
        let moment_2: Vec<f32> = (0..n).map(|i| value(i + 9, 1e-4).abs()).collect();
        let step = AdamWStep {
            lr: 1e-3,
            beta_1: 0.9,
            beta_2: 0.999,
            epsilon: 1e-8,
            weight_decay: 1e-4,
            time: 7,
        };
        let scalars = step.scalars::<f32>();
        let run = |build: fn(Values<f32>, &AdamWScalars<f32>)| {
            let mut new = vec![MaybeUninit::<f32>::uninit(); n];
            let (mut m1, mut m2) = (moment_1.clone(), moment_2.clone());
            let values = Values {
                old: &old,
                new: &mut new,
                moment_1: &mut m1,
                moment_2: &mut m2,
                grad: &grad,
            };
            build(values, &scalars);
            // SAFETY: `update_values` writes every element of `new`.
            let new: Vec<u32> = new
                .iter()
                .map(|x| unsafe { x.assume_init() }.to_bits())
                .collect();
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            (new, bits(&m1), bits(&m2))
        };
        let baseline = run(update_values);
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: AVX2 is available.
            assert_eq!(
                run(|v, s| unsafe { update_values_avx2(v, s) }),
                baseline,
                "AVX2"
            );
        }
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: AVX-512F is available.
            assert_eq!(
                run(|v, s| unsafe { update_values_avx512(v, s) }),
                baseline,
                "AVX-512"
            );
        }
    }
}
