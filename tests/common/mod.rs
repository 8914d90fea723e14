//! Helpers shared by the integration tests.

#![allow(dead_code)]

pub mod runs;

use burn::tensor::{Device, Tensor, TensorData};
use credit_train::BackendKind;

/// The default backend's device (flex in the default build).
pub fn device() -> Device {
    BackendKind::default_available()
        .expect("a backend is compiled in")
        .device()
        .expect("the default backend has a device")
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
