//! Backends compiled in by cargo feature, chosen at run time by name.

use std::fmt;
use std::str::FromStr;

use burn::tensor::{Device, DeviceError, FloatDType};

use crate::config::Precision;
use serde::{Deserialize, Serialize};

/// A burn backend this build may contain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BackendKind {
    /// burn-flex: pure-Rust CPU backend (feature `flex`).
    Flex,
    /// burn-ndarray: the older CPU backend, deprecated in burn 0.22 (feature `ndarray`).
    Ndarray,
    /// wgpu: GPUs through Vulkan, Metal or DX12 (feature `wgpu`).
    Wgpu,
}

impl BackendKind {
    /// Every backend, fastest CPU backend first (measured with `credit bench`).
    pub const ALL: [BackendKind; 3] = [BackendKind::Flex, BackendKind::Ndarray, BackendKind::Wgpu];

    /// The backends compiled into this build.
    pub fn available() -> Vec<BackendKind> {
        Self::ALL.into_iter().filter(|b| b.is_compiled()).collect()
    }

    /// The default: the first compiled one of [`BackendKind::ALL`].
    pub fn default_available() -> Option<BackendKind> {
        Self::available().into_iter().next()
    }

    /// Whether this build contains the backend.
    pub fn is_compiled(self) -> bool {
        match self {
            BackendKind::Flex => cfg!(feature = "flex"),
            BackendKind::Ndarray => cfg!(feature = "ndarray"),
            BackendKind::Wgpu => cfg!(feature = "wgpu"),
        }
    }

    /// The cargo feature that compiles it in.
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Flex => "flex",
            BackendKind::Ndarray => "ndarray",
            BackendKind::Wgpu => "wgpu",
        }
    }

    /// The backend's default device (no autodiff).
    ///
    /// # Errors
    /// If this build does not contain the backend ([`BackendError::NotCompiled`]).
    pub fn device(self) -> Result<Device, BackendError> {
        match self {
            #[cfg(feature = "flex")]
            BackendKind::Flex => Ok(Device::flex()),
            #[cfg(feature = "ndarray")]
            #[allow(deprecated)]
            BackendKind::Ndarray => Ok(Device::ndarray()),
            #[cfg(feature = "wgpu")]
            BackendKind::Wgpu => Ok(Device::wgpu(burn::tensor::DeviceKind::DefaultDevice)),
            #[allow(unreachable_patterns)]
            other => Err(BackendError::NotCompiled(other)),
        }
    }
}

impl BackendKind {
    /// The backend's default device computing in `precision`.
    ///
    /// A device's float type is set once per process: a second float64 run in the same
    /// process gets the device the first one configured.
    ///
    /// # Errors
    /// If the backend is not compiled in, or cannot compute in that precision (wgpu has no
    /// `f64`), or this process already computes in the other precision on that device.
    pub fn device_for(self, precision: Precision) -> anyhow::Result<Device> {
        let mut device = self.device()?;
        let (wanted, name) = match precision {
            Precision::F32 => (FloatDType::F32, "f32"),
            Precision::F64 => (FloatDType::F64, "f64"),
        };
        // Settings already fixed (by an earlier run in this process) are judged below.
        if precision == Precision::F64
            && let Err(e @ DeviceError::UnsupportedDType { .. }) = device.configure(FloatDType::F64)
        {
            anyhow::bail!("train.precision = \"f64\" is not available on {self} ({e})");
        }
        let current = device.settings().float_dtype;
        anyhow::ensure!(
            current == wanted,
            "train.precision = \"{name}\": this process already computes in {current:?} on {self}; run it in a process of its own"
        );
        Ok(device)
    }
}

impl BackendKind {
    /// `count` devices of the backend computing in `precision`: the default device `count`
    /// times on a CPU backend (burn's multi-device strategy then runs one worker thread per
    /// copy).
    ///
    /// # Errors
    /// As [`BackendKind::device_for`]; and for more than one device on wgpu, where the
    /// final evaluation would need the model moved off the first GPU (not done yet).
    pub fn devices_for(self, precision: Precision, count: usize) -> anyhow::Result<Vec<Device>> {
        anyhow::ensure!(
            count <= 1 || self.name() != "wgpu",
            "train.devices = {count} is for the CPU backends for now; on wgpu train with train.devices = 1"
        );
        Ok(vec![self.device_for(precision)?; count])
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for BackendKind {
    type Err = BackendError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|b| b.name() == s)
            .ok_or_else(|| BackendError::Unknown(s.to_string()))
    }
}

/// A backend that cannot be used in this build.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// Not one of the names in [`BackendKind::ALL`].
    #[error("unknown backend `{0}` (known: flex, ndarray, wgpu)")]
    Unknown(String),
    /// Known, but its cargo feature was not enabled.
    #[error(
        "backend `{0}` is not compiled into this build (available: {list}); rebuild with `--features {0}`",
        list = BackendKind::available().iter().map(|b| b.name()).collect::<Vec<_>>().join(", ")
    )]
    NotCompiled(BackendKind),
}
