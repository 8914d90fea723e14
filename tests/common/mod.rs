//! Helpers shared by the integration tests.

#![allow(dead_code)]

pub mod runs;

use burn::tensor::{Device, Tensor, TensorData};
use burn::train::TrainStep;
use credit_model::{Classifier, NoisyBatch, Seed, Stream};
use credit_train::{BackendKind, RunConfig};
use rand::seq::SliceRandom;

/// The default backend's device (flex in the default build).
pub fn device() -> Device {
    BackendKind::default_available()
        .expect("a backend is compiled in")
        .device()
        .expect("the default backend has a device")
}

/// The default CPU device switched to float64, once per test binary (a binary that uses it
/// computes every float of the default device in float64).
pub fn f64_device() -> Device {
    static DEVICE: std::sync::OnceLock<Device> = std::sync::OnceLock::new();
    DEVICE
        .get_or_init(|| {
            let mut device = device();
            device
                .configure(burn::tensor::FloatDType::F64)
                .expect("the CPU backend supports float64");
            device
        })
        .clone()
}

/// Asserts `|got - want| <= tolerance (1 + |want|)` element by element, naming `what` and
/// the index.
pub fn assert_close_relative(what: &str, got: &[f64], want: &[f64], tolerance: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (k, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= tolerance * (1.0 + w.abs()),
            "{what}[{k}]: {g} vs {w}"
        );
    }
}

/// Central finite differences `(f(k, +step) - f(k, -step)) / (2 step)` for `k` in `0..n`,
/// where `f(k, delta)` is the loss with parameter `k` shifted by `delta`.
pub fn central_differences(n: usize, step: f64, f: impl Fn(usize, f64) -> f64) -> Vec<f64> {
    (0..n)
        .map(|k| (f(k, step) - f(k, -step)) / (2.0 * step))
        .collect()
}

/// Checks the autodiff gradients of one spike-and-slab layer's `m`, `xi` and `pi` (`what`
/// names the layer): against `hand` (`hand_name`, a hand-derived backprop) to `hand_tolerance`,
/// and against central finite differences of `loss_shifted(t, k, delta)`, the loss with
/// entry `k` of parameter `t` (0 `m`, 1 `xi`, 2 `pi`) shifted by `delta`, to 1e-7.
pub fn check_layer_gradients(
    what: &str,
    layer: &credit_model::SpikeSlabLinear,
    grads: &burn::tensor::Gradients,
    (hand_name, hand, hand_tolerance): (&str, [&[f64]; 3], f64),
    loss_shifted: impl Fn(usize, usize, f64) -> f64,
) {
    let autodiff =
        [&layer.m, &layer.xi, &layer.pi].map(|p| values(p.val().grad(grads).expect("a gradient")));
    for (t, name) in ["m", "xi", "pi"].iter().enumerate() {
        let what = format!("{what} d{name}");
        assert!(
            autodiff[t].iter().any(|g| g.abs() > 1e-6),
            "{what}: every gradient is zero"
        );
        assert_close_relative(
            &format!("{what} autodiff vs {hand_name}"),
            &autodiff[t],
            hand[t],
            hand_tolerance,
        );
        let finite = central_differences(autodiff[t].len(), 1e-6, |k, delta| {
            loss_shifted(t, k, delta)
        });
        assert_close_relative(
            &format!("{what} autodiff vs finite differences"),
            &autodiff[t],
            &finite,
            1e-7,
        );
    }
}

/// A tensor from row-major values.
pub fn tensor<const D: usize>(values: Vec<f64>, shape: [usize; D], device: &Device) -> Tensor<D> {
    Tensor::from_data(TensorData::new(values, shape), device)
}

/// A tensor's values as `f64`, row-major.
pub fn values<const D: usize>(tensor: Tensor<D>) -> Vec<f64> {
    tensor
        .into_data()
        .convert::<f64>()
        .try_to_vec::<f64>()
        .expect("float tensor")
}

/// Deterministic pseudo-random numbers in `[0, 1)` (a 64-bit LCG), for hand-built fixtures.
pub struct Lcg(pub u64);

impl Lcg {
    pub fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }

    /// `n` values uniform in `[lo, hi)`.
    pub fn uniform(&mut self, n: usize, lo: f64, hi: f64) -> Vec<f64> {
        (0..n).map(|_| lo + (hi - lo) * self.next()).collect()
    }
}

/// The training batches of epoch `epoch` (from 1) as credit's loader cuts them: dataset
/// indices and the seed of each batch's noise, at most `train.batches_per_epoch`.
pub fn epoch_batches(config: &RunConfig, n: usize, epoch: usize) -> Vec<(Vec<usize>, Seed)> {
    let root = Seed::new(config.seed);
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut root.stream(Stream::Shuffle).child(epoch as u64).rng());
    let mut batches: Vec<(Vec<usize>, Seed)> = order
        .chunks(config.train.batch_size)
        .enumerate()
        .map(|(b, indices)| {
            let noise = root
                .stream(Stream::Noise)
                .child(epoch as u64)
                .child(b as u64);
            (indices.to_vec(), noise)
        })
        .collect();
    if config.train.drop_last && batches.last().unwrap().0.len() < config.train.batch_size {
        batches.pop();
    }
    batches.truncate(config.train.batches_per_epoch.unwrap_or(usize::MAX));
    batches
}

/// One training step of credit, the one burn's Learner takes: `TrainStep::step` on batch
/// `b` with its noise seed, then `optimize` (AdamW and the clamps) at learning rate `lr`.
pub fn credit_step(
    model: Classifier,
    optimizer: &mut burn::optim::ModuleOptimizer,
    images: credit_data::ImageBatch,
    noise: Seed,
    b: usize,
    lr: f64,
) -> Classifier {
    let output = TrainStep::step(
        &model,
        NoisyBatch {
            images: images.images,
            targets: images.targets,
            noise,
            key: b as u64,
            network: None,
        },
    );
    model.optimize(optimizer, lr.into(), output.grads)
}

/// The bytes of a `.npy` of `values` (row-major, `shape`).
///
/// # Panics
/// If `values` do not fill `shape`.
pub fn npy_bytes<T: npyz::AutoSerialize + Copy>(values: &[T], shape: &[u64]) -> Vec<u8> {
    use npyz::WriterBuilder as _;
    let mut bytes = Vec::new();
    let mut writer = npyz::WriteOptions::<T>::new()
        .default_dtype()
        .shape(shape)
        .writer(&mut bytes)
        .begin_nd()
        .unwrap();
    writer.extend(values.iter().copied()).unwrap();
    writer.finish().unwrap();
    bytes
}

/// Writes `values` (row-major, `shape`) as a float64 `.npy` file.
///
/// # Panics
/// If the file cannot be written.
pub fn write_npy(path: &std::path::Path, values: &[f64], shape: &[u64]) {
    std::fs::write(path, npy_bytes(values, shape)).unwrap();
}

/// The pixels (row-major, in float64) and the labels of images `indices` of `set`: a
/// batch as the tests' float64 oracles read it.
pub fn host_batch(set: &credit_data::ImageSet, indices: &[usize]) -> (Vec<f64>, Vec<usize>) {
    let x = indices
        .iter()
        .flat_map(|&i| set.pixels(i).into_iter().map(f64::from))
        .collect();
    let labels = indices.iter().map(|&i| set.labels()[i] as usize).collect();
    (x, labels)
}
