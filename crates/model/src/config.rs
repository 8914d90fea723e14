//! The network a run trains: its kind, widths and initialisation. This is the `[model]`
//! table of a run's TOML; every default is written here, once.

use burn::tensor::Device;
use credit_ops::mean_field::{DeltaFloor, FloorMode};
use serde::{Deserialize, Serialize};

use crate::classifier::Classifier;
use crate::network::{DeterministicNet, SpikeSlabNet};
use crate::rnn::{InputWeights, RecurrentInit, RnnDynamics, RnnScaling, SpikeSlabRnn};
use crate::seed::Seed;

/// Which network, which widths, which initialisation. The defaults are those of the
/// authors' 2020 code (`DNN-SAS-MNIST.py` at c74f63a): 784-100-100-10, `m ~ sqrt(2/784)
/// N(0, 1)` in every layer, `xi ~ 0.01 U(0, 1)`, `pi = 0`, `sqrt(Delta)` without a floor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelConfig {
    /// `spike-slab` (the paper's model) or `deterministic` (plain backprop baseline).
    pub kind: ModelKind,
    /// Layer widths, input first: `[784, 100, 100, 10]` is two hidden layers.
    pub sizes: Vec<usize>,
    /// Standard deviation of the Gaussian init of `m` (and of the baseline's weights):
    /// `sqrt(2/784)` in the authors' code, for every layer whatever its width.
    pub m_init_std: f64,
    /// `xi` starts uniform in `[0, xi_init_max)`.
    pub xi_init_max: f64,
    /// Initial value of every `pi`.
    pub pi_init: f64,
    /// The floor `f` of `Delta` under its square root (see `delta_floor_mode`): 0 in the
    /// 2020 script, 1e-20 in the 2022 one.
    pub delta_floor: f64,
    /// `clamp`: `sqrt(max(Delta, f))`, no gradient where the floor holds (2020); `add`:
    /// `sqrt(Delta + f)` (2022).
    pub delta_floor_mode: FloorModeName,
    /// Recurrent networks only: the time constant `tau` of the leaky integration, in steps.
    /// Default 10 (the authors' scripts).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tau: Option<f64>,
    /// Recurrent networks only: the initial state `h_0` of every unit. Default 0.1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub h0: Option<f64>,
    /// Recurrent networks only: `none` (the scripts) or `sqrt-n` (`1/sqrt(N)` as in the
    /// feed-forward layers). Default `none`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scaling: Option<RnnScaling>,
    /// Recurrent networks only: `identity` (`m_rec = I`, the scripts) or `gaussian`
    /// (`N(0, m_init_std²)`). Default `identity`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recurrent_init: Option<RecurrentInit>,
    /// Recurrent networks only: `spike-slab` input weights (the 28x28 script, the default)
    /// or `deterministic` ones (`xi = pi = 0`, never trained: the pixel-by-pixel script).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_weights: Option<InputWeights>,
}

/// `tau` of the authors' recurrent scripts.
pub const DEFAULT_TAU: f64 = 10.0;
/// `h_0` of the authors' recurrent scripts.
pub const DEFAULT_H0: f64 = 0.1;

/// How the floor of `Delta` applies, by name (see `credit_ops::equations::DeltaFloor`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FloorModeName {
    /// `sqrt(max(Delta, f))`.
    Clamp,
    /// `sqrt(Delta + f)`.
    Add,
}

/// The trainable networks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModelKind {
    /// Spike-and-slab mean-field network.
    SpikeSlab,
    /// Ordinary network with deterministic weights.
    Deterministic,
    /// Spike-and-slab recurrent network (Zou, Li & Huang 2023): `sizes = [D, n_rec,
    /// classes]`, `D` inputs per step.
    SpikeSlabRnn,
}

impl ModelKind {
    /// The name in configs and folder names: `spike-slab` or `deterministic`.
    pub fn name(self) -> &'static str {
        match self {
            ModelKind::SpikeSlab => "spike-slab",
            ModelKind::Deterministic => "deterministic",
            ModelKind::SpikeSlabRnn => "spike-slab-rnn",
        }
    }
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            kind: ModelKind::SpikeSlab,
            sizes: vec![784, 100, 100, 10],
            m_init_std: (2.0f64 / 784.0).sqrt(),
            xi_init_max: 0.01,
            pi_init: 0.0,
            delta_floor: 0.0,
            delta_floor_mode: FloorModeName::Clamp,
            tau: None,
            h0: None,
            scaling: None,
            recurrent_init: None,
            input_weights: None,
        }
    }
}

impl ModelConfig {
    /// The floor of `Delta` of the spike-and-slab layers.
    pub fn floor(&self) -> DeltaFloor {
        DeltaFloor {
            value: self.delta_floor,
            mode: match self.delta_floor_mode {
                FloorModeName::Clamp => FloorMode::Clamp,
                FloorModeName::Add => FloorMode::Add,
            },
        }
    }

    /// `(d_input, d_output)` of each layer, input side first.
    pub fn layer_dims(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        self.sizes.windows(2).map(|pair| (pair[0], pair[1]))
    }

    /// The network of this configuration's kind, with parameters drawn from `seed` (a run
    /// draws them from `Seed::new(seed).stream(Stream::Init)`).
    pub fn init(&self, seed: Seed, device: &Device) -> Classifier {
        match self.kind {
            ModelKind::SpikeSlab => Classifier::SpikeSlab(SpikeSlabNet::init(self, seed, device)),
            ModelKind::Deterministic => {
                Classifier::Deterministic(DeterministicNet::init(self, seed, device))
            }
            ModelKind::SpikeSlabRnn => {
                Classifier::SpikeSlabRnn(SpikeSlabRnn::init(self, seed, device))
            }
        }
    }

    /// The dynamics of a recurrent network: `tau`, `h0` and `scaling`, or their defaults.
    pub fn dynamics(&self) -> RnnDynamics {
        RnnDynamics {
            tau: self.tau.unwrap_or(DEFAULT_TAU),
            h0: self.h0.unwrap_or(DEFAULT_H0),
            scaling: self.scaling.unwrap_or_default(),
            input_weights: self.input_weights.unwrap_or_default(),
        }
    }

    /// How `m_rec` starts, or its default.
    pub fn recurrent_init(&self) -> RecurrentInit {
        self.recurrent_init.unwrap_or_default()
    }

    /// The keys of the recurrent network set in this configuration, by name.
    pub fn recurrent_keys_set(&self) -> Vec<&'static str> {
        [
            ("model.tau", self.tau.is_some()),
            ("model.h0", self.h0.is_some()),
            ("model.scaling", self.scaling.is_some()),
            ("model.recurrent_init", self.recurrent_init.is_some()),
            ("model.input_weights", self.input_weights.is_some()),
        ]
        .into_iter()
        .filter_map(|(key, set)| set.then_some(key))
        .collect()
    }
}
