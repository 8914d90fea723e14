//! The spike-and-slab recurrent network of Zou, Li & Huang, "Ensemble perspective for
//! understanding temporal credit assignment", Phys. Rev. E 107, 024307 (2023), as their
//! `BPTT-SAS-28by28.py` computes it (ZouWenXuan/Spike-and-Slab-RNN).
//!
//! Every input, recurrent and readout weight is a spike-and-slab random variable. With
//! `x_t` the `D` inputs of step `t` (one image row, or one pixel) and `r_0 = relu(h_0)`:
//!
//! ```text
//! G_t     = mu_rec r_{t-1} + mu_in x_t        Delta_t = var_rec r_{t-1}² + var_in x_t²
//! u_t     = (G_t + sqrt(Delta_t) eps_t) / s   eps_t ~ N(0, 1) per sample, unit and step
//! h_t     = h_{t-1} + (u_t - h_{t-1}) / tau   r_t = relu(h_t)
//! logits  = (mu_out r_T + sqrt(var_out r_T²) eps_out) / s_out
//! ```
//!
//! with `s = 1` and `s_out = 1` in the authors' scripts (`scaling = "none"`), or
//! `s = sqrt(n_rec + D)` and `s_out = sqrt(n_rec)` (`scaling = "sqrt-n"`, as the
//! feed-forward layers). One step is one spike-and-slab operation of `credit-ops` over the
//! concatenation `[r_{t-1}, x_t]` with the matrices `[m_rec | m_in]`: one noise per unit
//! and step, as in the script, and the layer's generalised backprop through time by
//! autodiff.

use burn::module::Module;
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use credit_ops::mean_field::spike_slab_linear;
use credit_ops::noise::standard_normal;

use crate::config::ModelConfig;
use crate::network::DeterministicLinear;
use crate::seed::Seed;
use crate::spike_slab::{Noise, SpikeSlabLinear};

/// How the pre-activations of a recurrent network are scaled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RnnScaling {
    /// No scaling (the authors' scripts).
    #[default]
    None,
    /// `1/sqrt(N)`, `N` the width summed over (`n_rec + D` for the recurrent step,
    /// `n_rec` for the readout), as in the feed-forward layers.
    SqrtN,
}

/// How the recurrent slab means `m_rec` start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RecurrentInit {
    /// `m_rec = I` (the authors' scripts).
    #[default]
    Identity,
    /// `m_rec ~ N(0, m_init_std²)`, as the other matrices.
    Gaussian,
}

/// What the input weights are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InputWeights {
    /// Spike-and-slab, as the other matrices (the 28x28 script).
    #[default]
    SpikeSlab,
    /// Plain weights `m`: `xi = 0` and `pi = 0` at the start and never trained (the
    /// pixel-by-pixel script, whose input has no noise and no spike).
    Deterministic,
}

/// The settings of the dynamics, not parameters (not saved in records).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RnnDynamics {
    /// Time constant of the leaky integration, in steps (`tau = 10` in the scripts).
    pub tau: f64,
    /// Initial state `h_0` of every unit (0.1 in the scripts).
    pub h0: f64,
    /// Scaling of the pre-activations.
    pub scaling: RnnScaling,
    /// What the input weights are.
    pub input_weights: InputWeights,
}

impl RnnDynamics {
    /// The multiplier that turns the layer operation's `(G + sqrt(Delta) eps) / sqrt(N)`
    /// into this network's pre-activation over `n` summed inputs.
    fn rescale(&self, n: usize) -> f64 {
        match self.scaling {
            RnnScaling::None => (n as f64).sqrt(),
            RnnScaling::SqrtN => 1.0,
        }
    }

    /// One leaky-integration step `h + (u - h) / tau`. (Multiplied by `1 / tau`: burn's
    /// autodiff of `div_scalar` rounds the divisor's inverse to float32, an error of about
    /// 1e-9 relative in float64 gradients for `tau = 10`, where `mul_scalar` keeps the
    /// float64 factor; `tests/rnn.rs` checks it.)
    fn integrate(&self, h: Tensor<2>, u: Tensor<2>) -> Tensor<2> {
        h.clone() + (u - h).mul_scalar(self.tau.recip())
    }

    /// The rates after the first `t_max` steps of `input` (`[batch, T d]`) through fixed
    /// weights: step `t` with `weights(t) = (w_inᵀ [d, n_rec], w_recᵀ [n_rec, n_rec])`.
    ///
    /// # Panics
    /// If the input width is not a multiple of `d`.
    fn deterministic_rates(
        &self,
        input: &Tensor<2>,
        d: usize,
        n_rec: usize,
        t_max: usize,
        mut weights: impl FnMut(usize) -> (Tensor<2>, Tensor<2>),
    ) -> Tensor<2> {
        let scale = self.rescale(n_rec + d) / ((n_rec + d) as f64).sqrt();
        let mut h = Tensor::full([input.dims()[0], n_rec], self.h0, &input.device());
        let mut r = relu(h.clone());
        for (t, x) in steps(input, d).take(t_max).enumerate() {
            let (w_in, w_rec) = weights(t);
            let u = (r.matmul(w_rec) + x.matmul(w_in)).mul_scalar(scale);
            h = self.integrate(h, u);
            r = relu(h.clone());
        }
        r
    }
}

/// The spike-and-slab recurrent network: input, recurrent and readout matrices.
#[derive(Module, Debug)]
pub struct SpikeSlabRnn {
    /// Input weights, `[n_rec, D]`.
    pub input: SpikeSlabLinear,
    /// Recurrent weights, `[n_rec, n_rec]` (row: receiving unit).
    pub recurrent: SpikeSlabLinear,
    /// Readout weights, `[classes, n_rec]`.
    pub readout: SpikeSlabLinear,
    /// The dynamics' settings.
    #[module(skip)]
    pub dynamics: RnnDynamics,
}

/// Where the noise of an unrolled forward comes from.
enum StepNoise<'a> {
    /// Drawn: step `t` from the seed's child `0`'s child `t`, the readout from its child 1.
    Seeded(Seed),
    /// Given, per step and for the readout.
    Given(&'a [Tensor<2>], &'a Tensor<2>),
    /// None: the mean network.
    Off,
}

/// The steps of `input` (`[batch, T D]`) of `d` inputs each, in order, each `[batch, d]`
/// and contiguous: the input is rearranged step-major (`[T batch, d]`) once, so that a step
/// is a block of rows rather than a strided column slice copied at every use (the slices
/// and their copies were 12% of a recurrent training epoch, measured).
///
/// # Panics
/// If the width of `input` is not a multiple of `d`.
fn steps(input: &Tensor<2>, d: usize) -> impl Iterator<Item = Tensor<2>> + use<> {
    let [batch, width] = input.dims();
    assert!(
        d > 0 && width % d == 0,
        "an input of {width} values is not a sequence of steps of {d}"
    );
    let t_max = width / d;
    let step_major = input
        .clone()
        .reshape([batch, t_max, d])
        .swap_dims(0, 1)
        .reshape([t_max * batch, d]);
    (0..t_max).map(move |t| step_major.clone().slice([t * batch..(t + 1) * batch, 0..d]))
}

impl SpikeSlabRnn {
    /// The network of `config` (`sizes = [D, n_rec, classes]`) with parameters from `seed`:
    /// matrix `k` (input 0, recurrent 1, readout 2) from its child `k` as
    /// [`SpikeSlabLinear::init`] draws them, then `m_rec` set to the identity if
    /// `recurrent_init = "identity"`.
    ///
    /// # Panics
    /// If `config.sizes` does not hold three widths.
    pub fn init(config: &ModelConfig, seed: Seed, device: &Device) -> Self {
        let [d, n_rec, classes] = config.sizes[..] else {
            panic!("a recurrent network has sizes [D, n_rec, classes]")
        };
        let mut input = SpikeSlabLinear::init(d, n_rec, config, seed.child(0), device);
        if config.dynamics().input_weights == InputWeights::Deterministic {
            let zeros = || Tensor::zeros([n_rec, d], device);
            input = SpikeSlabLinear::from_tensors(input.m.val(), zeros(), zeros())
                .with_floor(input.floor);
        }
        let mut recurrent = SpikeSlabLinear::init(n_rec, n_rec, config, seed.child(1), device);
        if config.recurrent_init() == RecurrentInit::Identity {
            let eye: Vec<f32> = (0..n_rec * n_rec)
                .map(|k| if k / n_rec == k % n_rec { 1.0 } else { 0.0 })
                .collect();
            let eye = Tensor::from_data(TensorData::new(eye, [n_rec, n_rec]), device);
            // A new parameter (`Param::map` would keep the old one's id but not its
            // gradient requirement).
            recurrent = SpikeSlabLinear::from_tensors(eye, recurrent.xi.val(), recurrent.pi.val())
                .with_floor(recurrent.floor);
        }
        let readout = SpikeSlabLinear::init(n_rec, classes, config, seed.child(2), device);
        Self {
            input,
            recurrent,
            readout,
            dynamics: config.dynamics(),
        }
    }

    /// `[D, n_rec, classes]`.
    pub fn sizes(&self) -> Vec<usize> {
        let [n_rec, d] = self.input.dims();
        vec![d, n_rec, self.readout.dims()[0]]
    }

    /// The three matrices: input, recurrent, readout.
    pub fn matrices(&self) -> [&SpikeSlabLinear; 3] {
        [&self.input, &self.recurrent, &self.readout]
    }

    /// `[m_rec | m_in]`, `[xi_rec | xi_in]` and `[pi_rec | pi_in]`: the matrices of one
    /// step, `[n_rec, n_rec + D]`. Deterministic input weights give `xi_in` and `pi_in` no
    /// gradient (detached), so that no optimizer step moves them from 0.
    fn step_params(&self) -> (Tensor<2>, Tensor<2>, Tensor<2>) {
        let cat = |a: Tensor<2>, b: Tensor<2>| Tensor::cat(vec![a, b], 1);
        let frozen = |t: Tensor<2>| match self.dynamics.input_weights {
            InputWeights::SpikeSlab => t,
            InputWeights::Deterministic => t.detach(),
        };
        (
            cat(self.recurrent.m.val(), self.input.m.val()),
            cat(self.recurrent.xi.val(), frozen(self.input.xi.val())),
            cat(self.recurrent.pi.val(), frozen(self.input.pi.val())),
        )
    }

    /// Logits after the whole sequence; the noise of step `t` (from 0) comes from the
    /// noise seed's child `0`'s child `t`, the readout's from its child `1`.
    ///
    /// # Shapes
    /// - input: `[batch, T D]`, step `t` in columns `t D .. (t + 1) D`
    /// - output: `[batch, classes]`
    ///
    /// # Panics
    /// If the input width is not a multiple of `D`.
    pub fn forward(&self, input: Tensor<2>, noise: Noise) -> Tensor<2> {
        self.forward_truncated(input, noise, usize::MAX)
    }

    /// [`Self::forward`] with the readout after the first `t_max` steps only (the
    /// accuracy of a sequence cut after `t` steps).
    ///
    /// # Shapes
    /// As [`Self::forward`].
    pub fn forward_truncated(&self, input: Tensor<2>, noise: Noise, t_max: usize) -> Tensor<2> {
        let noise = match noise {
            Noise::Sampled(seed) => StepNoise::Seeded(seed),
            Noise::Off => StepNoise::Off,
        };
        let mut logits = self.unroll(input, noise, t_max, false);
        logits.pop().expect("the readout after the last step")
    }

    /// The logits of the readout after every step: element `t - 1` is
    /// [`Self::forward_truncated`] after `t` steps, the same draws included (the readout's
    /// noise is the same at every step).
    ///
    /// # Shapes
    /// - input: `[batch, T D]`
    /// - output: `T` tensors `[batch, classes]`
    pub fn forward_every_step(&self, input: Tensor<2>, noise: Noise) -> Vec<Tensor<2>> {
        let noise = match noise {
            Noise::Sampled(seed) => StepNoise::Seeded(seed),
            Noise::Off => StepNoise::Off,
        };
        self.unroll(input, noise, usize::MAX, true)
    }

    /// Logits with given standard-normal draws: `eps[t]` for step `t`, `eps_readout` for
    /// the readout (gradient checks against hand-derived BPTT).
    ///
    /// # Shapes
    /// - input: `[batch, T D]`
    /// - eps\[t\]: `[batch, n_rec]`, one per step
    /// - eps_readout: `[batch, classes]`
    /// - output: `[batch, classes]`
    ///
    /// # Panics
    /// If `eps` does not hold one tensor per step.
    pub fn forward_with_eps(
        &self,
        input: Tensor<2>,
        eps: &[Tensor<2>],
        eps_readout: Tensor<2>,
    ) -> Tensor<2> {
        let steps = input.dims()[1] / self.input.dims()[1].max(1);
        assert_eq!(eps.len(), steps, "one eps tensor per step");
        let mut logits = self.unroll(
            input,
            StepNoise::Given(eps, &eps_readout),
            usize::MAX,
            false,
        );
        logits.pop().expect("the readout after the last step")
    }

    /// The readout's logits after the first `t_max` steps, or after each of them if
    /// `every_step`.
    fn unroll(
        &self,
        input: Tensor<2>,
        noise: StepNoise<'_>,
        t_max: usize,
        every_step: bool,
    ) -> Vec<Tensor<2>> {
        let [n_rec, d] = self.input.dims();
        let batch = input.dims()[0];
        let device = input.device();
        let (m, xi, pi) = self.step_params();
        let floor = self.input.floor;
        let rescale = self.dynamics.rescale(n_rec + d);
        // The mean network's step matrix `(1 - pi) m`, transposed, and its scale.
        let mean_t = matches!(noise, StepNoise::Off).then(|| {
            let keep = pi.clone().neg().add_scalar(1.0);
            (keep * m.clone()).transpose()
        });
        let mean_scale = rescale / ((n_rec + d) as f64).sqrt();
        let readout = |r: Tensor<2>| {
            let logits = match &noise {
                StepNoise::Seeded(seed) => self.readout.forward(r, Noise::Sampled(seed.child(1))),
                StepNoise::Given(_, eps) => self.readout.forward_with_eps(r, (*eps).clone()),
                StepNoise::Off => self.readout.forward(r, Noise::Off),
            };
            logits.mul_scalar(self.dynamics.rescale(n_rec))
        };
        let mut outputs = Vec::new();
        let mut h = Tensor::full([batch, n_rec], self.dynamics.h0, &device);
        let mut r = relu(h.clone());
        for (t, x) in steps(&input, d).take(t_max).enumerate() {
            let a = Tensor::cat(vec![r, x], 1);
            let eps = match &noise {
                StepNoise::Seeded(seed) => {
                    let key = seed.child(0).child(t as u64).value();
                    Some(standard_normal([batch, n_rec], key, &device))
                }
                StepNoise::Given(eps, _) => Some(eps[t].clone()),
                StepNoise::Off => None,
            };
            let u = match (eps, &mean_t) {
                (Some(eps), _) => {
                    spike_slab_linear(a, m.clone(), xi.clone(), pi.clone(), eps, floor)
                        .mul_scalar(rescale)
                }
                (None, Some(mean_t)) => a.matmul(mean_t.clone()).mul_scalar(mean_scale),
                (None, None) => unreachable!("the mean matrix is made without noise"),
            };
            h = self.dynamics.integrate(h, u);
            r = relu(h.clone());
            if every_step {
                outputs.push(readout(r.clone()));
            }
        }
        if !every_step {
            outputs.push(readout(r));
        }
        outputs
    }

    /// Every `pi` clamped into `[0, 1]` and every `xi` to `>= 0`.
    pub fn project(self) -> Self {
        Self {
            input: self.input.project(),
            recurrent: self.recurrent.project(),
            readout: self.readout.project(),
            dynamics: self.dynamics,
        }
    }

    /// One concrete recurrent network drawn from the learned distribution (matrix `k` from
    /// `seed.child(k)`): the same weights at every step. The authors' `sample_forward`
    /// draws new weights at every step instead, which samples no single network.
    pub fn sample_network(&self, seed: Seed) -> DeterministicRnn {
        let [input, recurrent, readout] = self.matrices();
        DeterministicRnn {
            input: DeterministicLinear::new(input.sample_weights(seed.child(0))),
            recurrent: DeterministicLinear::new(recurrent.sample_weights(seed.child(1))),
            readout: DeterministicLinear::new(readout.sample_weights(seed.child(2))),
            dynamics: self.dynamics,
        }
    }

    /// Logits with the weights redrawn at every step, as the authors' `sample_forward` of
    /// `BPTT-SAS-28by28.py` computes its sampled test accuracy: the input and recurrent
    /// matrices of step `t` (from 0) drawn from `seed.child(t)` (their children 0 and 1), the
    /// readout from `seed.child(T)`'s child 2. This samples no single network (each step
    /// sees other weights, so their noise averages over the sequence); [`Self::sample_network`]
    /// draws one and keeps it.
    ///
    /// # Shapes
    /// - input: `[batch, T D]`
    /// - output: `[batch, classes]`
    ///
    /// # Panics
    /// If the input width is not a multiple of `D`.
    pub fn forward_redrawn(&self, input: Tensor<2>, seed: Seed) -> Tensor<2> {
        let [n_rec, d] = self.input.dims();
        let steps = input.dims()[1] / d.max(1);
        let r = self
            .dynamics
            .deterministic_rates(&input, d, n_rec, usize::MAX, |t| {
                let draws = seed.child(t as u64);
                (
                    self.input.sample_weights(draws.child(0)).transpose(),
                    self.recurrent.sample_weights(draws.child(1)).transpose(),
                )
            });
        let readout = self
            .readout
            .sample_weights(seed.child(steps as u64).child(2));
        // `DeterministicLinear` divides by `sqrt(n_rec)`.
        DeterministicLinear::new(readout)
            .forward(r)
            .mul_scalar(self.dynamics.rescale(n_rec))
    }

    /// The network of expected weights `(1 - pi) m`: `forward(x, Noise::Off)`.
    pub fn mean_network(&self) -> DeterministicRnn {
        let mean = |l: &SpikeSlabLinear| DeterministicLinear::new(l.weight_mean().inner());
        DeterministicRnn {
            input: mean(&self.input),
            recurrent: mean(&self.recurrent),
            readout: mean(&self.readout),
            dynamics: self.dynamics,
        }
    }
}

/// A recurrent network with fixed weights: a sub-network sampled from a
/// [`SpikeSlabRnn`], or its mean network.
#[derive(Module, Debug)]
pub struct DeterministicRnn {
    /// Input weights, `[n_rec, D]`.
    pub input: DeterministicLinear,
    /// Recurrent weights, `[n_rec, n_rec]`.
    pub recurrent: DeterministicLinear,
    /// Readout weights, `[classes, n_rec]`.
    pub readout: DeterministicLinear,
    /// The dynamics' settings.
    #[module(skip)]
    pub dynamics: RnnDynamics,
}

impl DeterministicRnn {
    /// Logits after the whole sequence.
    ///
    /// # Shapes
    /// - input: `[batch, T D]`
    /// - output: `[batch, classes]`
    ///
    /// # Panics
    /// If the input width is not a multiple of `D`.
    pub fn forward(&self, input: Tensor<2>) -> Tensor<2> {
        self.forward_truncated(input, usize::MAX)
    }

    /// Logits after the first `t_max` steps.
    ///
    /// # Shapes
    /// As [`Self::forward`].
    pub fn forward_truncated(&self, input: Tensor<2>, t_max: usize) -> Tensor<2> {
        let r = self.final_state(input, t_max);
        self.readout_logits(r)
    }

    /// The rates `r_t = relu(h_t)` after the first `t_max` steps (all steps for
    /// `usize::MAX`): what the readout reads.
    ///
    /// # Shapes
    /// - input: `[batch, T D]`
    /// - output: `[batch, n_rec]`
    ///
    /// # Panics
    /// If the input width is not a multiple of `D`.
    pub fn final_state(&self, input: Tensor<2>, t_max: usize) -> Tensor<2> {
        let [n_rec, d] = self.input.weight.val().dims();
        let w_in = self.input.weight.val().transpose();
        let w_rec = self.recurrent.weight.val().transpose();
        self.dynamics
            .deterministic_rates(&input, d, n_rec, t_max, |_| (w_in.clone(), w_rec.clone()))
    }

    /// The readout's logits of the rates `r` (`[batch, n_rec]` to `[batch, classes]`).
    pub fn readout_logits(&self, r: Tensor<2>) -> Tensor<2> {
        let n_rec = r.dims()[1];
        // `DeterministicLinear` divides by `sqrt(n_rec)`.
        self.readout
            .forward(r)
            .mul_scalar(self.dynamics.rescale(n_rec))
    }
}
