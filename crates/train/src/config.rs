//! Run configuration: TOML files in `configs/`, `--set key=value` overrides, validation.
//!
//! Every field has a default (the reference code's MNIST setup), so a config file only states
//! what differs. Unknown keys are rejected by name.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};
use credit_data::{Format, PixelScale, Source, Splits};
pub use credit_model::ModelConfig;
use credit_model::ModelKind;
use serde::{Deserialize, Serialize};

/// A whole run: what to train, on what, how.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RunConfig {
    /// Seed of parameter init, noise and shuffling.
    pub seed: u64,
    /// The network.
    pub model: ModelConfig,
    /// The data set.
    pub data: DataConfig,
    /// The training loop.
    pub train: TrainConfig,
    /// AdamW settings.
    pub optimizer: OptimizerConfig,
}

/// Where the data is and how much of it is used.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataConfig {
    /// Layout: `idx` (a folder: MNIST, Fashion-MNIST, EMNIST), `cifar10` (a folder of the
    /// binary version) or `npz` (one numpy file, `data.path`).
    pub format: Format,
    /// The folder of `idx` and `cifar10` data, relative to the working directory.
    pub dir: PathBuf,
    /// The `.npz` file of `npz` data (`x_train`, `y_train`, `x_test`, `y_test`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    /// Subtracted from every label (EMNIST letters are labelled 1..26: 1 makes them 0..25);
    /// labels must then lie in `[0, classes)`, the classes being the last of `model.sizes`.
    pub label_offset: i64,
    /// `"auto"` (bytes divided by 255, floats as stored) or a factor for every stored value.
    pub pixel_scale: PixelScale,
    /// Train on the first this many training images (the paper: 10,000); 0 means all.
    pub train_size: usize,
    /// Test on the first this many test images; 0 means all.
    pub test_size: usize,
}

/// The training loop.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// Passes over the training images.
    pub epochs: usize,
    /// Images per optimizer step.
    pub batch_size: usize,
    /// Reshuffle the training images every epoch (seeded).
    pub shuffle: bool,
    /// Checkpoints kept in the run's `checkpoint/` folder: the latest this many.
    pub keep_checkpoints: usize,
    /// Also keep the checkpoint of every this-many-th epoch (for `credit analyze --epoch`);
    /// 0 keeps none beyond the latest.
    pub checkpoint_every: usize,
    /// Leave out the last batch of an epoch when it is smaller than `batch_size` (the 2022
    /// script does; the 2020 one trains on it). Nothing changes when `batch_size` divides the
    /// training set.
    pub drop_last: bool,
    /// The float type of training: `f32`, or `f64` as the authors' numpy code computes (CPU
    /// backends only, about twice as slow).
    pub precision: Precision,
    /// Devices that train at once through burn's multi-device strategy: each takes its share
    /// of every epoch's images, and their gradients are summed and applied on the first. 1
    /// (the default) trains on one device, exactly as the authors' scripts; 2 on a CPU
    /// backend runs two worker threads on the same cores (another run than one device, as
    /// reproducible). At most 2 (`MAX_DEVICES`); not yet on wgpu.
    pub devices: usize,
    /// Train each epoch on only the first this many batches of its reshuffled order (the
    /// recurrent scripts: 200 batches of 128 of the 60,000 images); unset: every batch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batches_per_epoch: Option<usize>,
}

impl Precision {
    /// Bytes of one float.
    pub fn bytes(self) -> u128 {
        match self {
            Precision::F32 => 4,
            Precision::F64 => 8,
        }
    }
}

/// A float type to train in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// 32-bit floats.
    F32,
    /// 64-bit floats.
    F64,
}

/// AdamW with decoupled weight decay on every parameter tensor, and its schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OptimizerConfig {
    /// Learning rate.
    pub lr: f64,
    /// First-moment decay. A float32 run rounds it (and `beta2`, `epsilon`,
    /// `weight_decay`) to `f32`, as burn's `AdamW` does; a float64 run uses it as written.
    pub beta1: f64,
    /// Second-moment decay.
    pub beta2: f64,
    /// Added to the root of the second moment.
    pub epsilon: f64,
    /// Decoupled weight decay: each step multiplies parameters by `1 - lr * weight_decay`.
    pub weight_decay: f64,
    /// Multiply the learning rate by `lr_step_factor` after every this many epochs; 0 keeps
    /// it constant. The reference code halves it every 20 epochs.
    pub lr_step_epochs: usize,
    /// The factor of each learning-rate step, in (0, 1].
    pub lr_step_factor: f64,
    /// Start AdamW afresh at every epoch (zero moments, bias corrections counted from the
    /// epoch's first step), as the 2020 script does.
    pub restart_each_epoch: bool,
    /// The parameters the decoupled weight decay applies to: `m` (and the deterministic
    /// baseline's weights), `xi`, `pi`. The 2020 script decays `m` and `xi`, the 2022 one all
    /// three.
    pub decay: Vec<DecayedParameter>,
    /// Epochs added to the epoch index before the learning-rate steps are counted: unset
    /// (0), the rate steps after every `lr_step_epochs` epochs; 1, one epoch earlier, as
    /// the recurrent scripts' `decay(epoch + 1, ...)` (with 40: halved from epoch 40 on,
    /// counting from 1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lr_step_offset: Option<usize>,
    /// Before each step, every gradient tensor whose norm exceeds this bound is scaled down
    /// to it (the recurrent scripts: 10); unset: no clipping.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clip_grad_norm: Option<f64>,
    /// The norm of `clip_grad_norm`: `spectral` (the largest singular value of the
    /// gradient matrix: numpy's `norm(g, ord=2)` of the scripts, the default) or
    /// `frobenius` (the root of the sum of squares, as PyTorch's `clip_grad_norm_` of one
    /// tensor).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clip_grad_kind: Option<ClipNorm>,
}

/// A norm of a gradient matrix (see [`OptimizerConfig::clip_grad_kind`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClipNorm {
    /// The largest singular value.
    #[default]
    Spectral,
    /// The root of the sum of squares.
    Frobenius,
}

/// A parameter that weight decay can apply to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DecayedParameter {
    /// Slab means, and the weights of the deterministic baseline.
    M,
    /// Slab variances.
    Xi,
    /// Spike probabilities.
    Pi,
}

impl Default for DataConfig {
    fn default() -> Self {
        Self {
            format: Format::Idx,
            dir: PathBuf::from("data/mnist"),
            path: None,
            label_offset: 0,
            pixel_scale: PixelScale::Auto,
            train_size: 10_000,
            test_size: 0,
        }
    }
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            epochs: 100,
            batch_size: 500,
            shuffle: true,
            keep_checkpoints: 2,
            checkpoint_every: 0,
            drop_last: false,
            precision: Precision::F32,
            devices: 1,
            batches_per_epoch: None,
        }
    }
}

impl Default for OptimizerConfig {
    fn default() -> Self {
        Self {
            lr: 0.1,
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-8,
            weight_decay: 1e-4,
            lr_step_epochs: 20,
            lr_step_factor: 0.5,
            restart_each_epoch: true,
            decay: vec![DecayedParameter::M, DecayedParameter::Xi],
            lr_step_offset: None,
            clip_grad_norm: None,
            clip_grad_kind: None,
        }
    }
}

impl RunConfig {
    /// Reads a TOML file, applies `key=value` overrides (dotted keys, TOML values; bare words
    /// are taken as strings) and validates the result.
    ///
    /// # Errors
    /// If the file cannot be read, is not valid TOML, has an unknown key or a value out of
    /// range, or an override names no key; the error names the file and the key.
    pub fn load(path: &Path, overrides: &[String]) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config {}", path.display()))?;
        Self::parse(&text, overrides).with_context(|| format!("config {}", path.display()))
    }

    /// Parses TOML text, applies overrides and validates.
    ///
    /// # Errors
    /// See [`RunConfig::load`].
    pub fn parse(text: &str, overrides: &[String]) -> Result<Self> {
        let mut table: toml::Table = toml::from_str(text)?;
        for assignment in overrides {
            apply_override(&mut table, assignment)?;
        }
        let config: Self = toml::Value::Table(table).try_into()?;
        config.validate()?;
        Ok(config)
    }

    /// The config as TOML, as saved beside a run.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("a RunConfig always serializes")
    }

    /// Checks every field that has a valid range; errors name the field and its bounds.
    ///
    /// # Errors
    /// The first field out of its range.
    pub fn validate(&self) -> Result<()> {
        let m = &self.model;
        ensure!(
            m.sizes.len() >= 2,
            "model.sizes needs at least an input and an output width, got {:?}",
            m.sizes
        );
        ensure!(
            m.sizes.iter().all(|&s| (1..=MAX_WIDTH).contains(&s)),
            "model.sizes must all be between 1 and {MAX_WIDTH}, got {:?}",
            m.sizes
        );
        ensure!(
            m.m_init_std.is_finite() && m.m_init_std >= 0.0,
            "model.m_init_std must be a number >= 0, got {}",
            m.m_init_std
        );
        ensure!(
            m.xi_init_max.is_finite() && m.xi_init_max >= 0.0,
            "model.xi_init_max must be a number >= 0, got {}",
            m.xi_init_max
        );
        ensure!(
            (0.0..=1.0).contains(&m.pi_init),
            "model.pi_init must be in [0, 1], got {}",
            m.pi_init
        );
        ensure!(
            m.delta_floor.is_finite() && m.delta_floor >= 0.0,
            "model.delta_floor must be a number >= 0, got {}",
            m.delta_floor
        );
        if m.kind == ModelKind::SpikeSlabRnn {
            ensure!(
                m.sizes.len() == 3,
                "model.sizes of a recurrent network (model.kind = \"spike-slab-rnn\") is [inputs per step, recurrent units, classes], got {:?}",
                m.sizes
            );
            let dynamics = m.dynamics();
            ensure!(
                dynamics.tau.is_finite() && dynamics.tau >= 1.0,
                "model.tau must be a number >= 1 (steps), got {}",
                dynamics.tau
            );
            ensure!(
                dynamics.h0.is_finite(),
                "model.h0 must be a finite number, got {}",
                dynamics.h0
            );
        } else if let Some(key) = m.recurrent_keys_set().first() {
            bail!(
                "{key} applies to recurrent networks only (model.kind = \"spike-slab-rnn\"), not to model.kind = \"{}\"",
                m.kind.name()
            );
        }
        let d = &self.data;
        ensure!(
            (d.format == Format::Npz) == d.path.is_some(),
            "data.path names the .npz file of data.format = \"npz\" (and only of it); data.dir is the folder of idx and cifar10 data"
        );
        if let PixelScale::Factor(f) = d.pixel_scale {
            ensure!(
                f.is_finite() && f > 0.0,
                "data.pixel_scale must be \"auto\" or a number > 0, got {f}"
            );
        }
        ensure!(
            self.seed <= i64::MAX as u64,
            "seed must be at most {} (TOML integers are 64-bit signed), got {}",
            i64::MAX,
            self.seed
        );
        let t = &self.train;
        ensure!(t.epochs >= 1, "train.epochs must be at least 1");
        ensure!(
            t.epochs <= MAX_EPOCHS,
            "train.epochs must be at most {MAX_EPOCHS}, got {}",
            t.epochs
        );
        ensure!(t.batch_size >= 1, "train.batch_size must be at least 1");
        ensure!(
            (1..=MAX_DEVICES).contains(&t.devices),
            "train.devices must be between 1 and {MAX_DEVICES} (more devices' gradients would be summed in the order they finish: not the same run twice), got {}",
            t.devices
        );
        ensure!(
            t.keep_checkpoints >= 1,
            "train.keep_checkpoints must be at least 1"
        );
        if let Some(batches) = t.batches_per_epoch {
            ensure!(
                batches >= 1,
                "train.batches_per_epoch must be at least 1 (leave it out for every batch)"
            );
            ensure!(
                t.devices == 1,
                "train.batches_per_epoch needs train.devices = 1, got {}",
                t.devices
            );
        }
        let o = &self.optimizer;
        ensure!(
            o.lr.is_finite() && o.lr > 0.0,
            "optimizer.lr must be positive and finite, got {}",
            o.lr
        );
        // Checked as float32 too: a float32 run rounds them, and 1 - 1e-9 rounds to 1.
        for (name, beta) in [("optimizer.beta1", o.beta1), ("optimizer.beta2", o.beta2)] {
            ensure!(
                (0.0..1.0).contains(&beta) && (beta as f32) < 1.0,
                "{name} must be in [0, 1) and below 1 in float32 (at most 0.99999994), got {beta}"
            );
        }
        ensure!(
            (o.epsilon as f32).is_finite() && o.epsilon as f32 > 0.0,
            "optimizer.epsilon must be positive and finite in float32 (1e-45 to 3.4e38), got {:e}",
            o.epsilon
        );
        ensure!(
            (o.weight_decay as f32).is_finite() && o.weight_decay >= 0.0,
            "optimizer.weight_decay must be a number >= 0, got {}",
            o.weight_decay
        );
        ensure!(
            o.lr_step_factor > 0.0 && o.lr_step_factor <= 1.0,
            "optimizer.lr_step_factor must be in (0, 1], got {}",
            o.lr_step_factor
        );
        if let Some(bound) = o.clip_grad_norm {
            ensure!(
                bound.is_finite() && bound > 0.0,
                "optimizer.clip_grad_norm must be positive and finite, got {bound}"
            );
        }
        ensure!(
            o.clip_grad_kind.is_none() || o.clip_grad_norm.is_some(),
            "optimizer.clip_grad_kind needs optimizer.clip_grad_norm, the bound"
        );
        ensure!(
            o.lr_step_offset.unwrap_or(0) <= MAX_EPOCHS,
            "optimizer.lr_step_offset must be at most {MAX_EPOCHS}"
        );
        ensure!(
            o.lr_step_offset.is_none() || o.lr_step_epochs > 0,
            "optimizer.lr_step_offset needs optimizer.lr_step_epochs > 0 (a constant rate has no steps to move)"
        );
        let mut decay = o.decay.clone();
        decay.sort_by_key(|p| *p as u8);
        decay.dedup();
        ensure!(
            decay.len() == o.decay.len(),
            "optimizer.decay lists a parameter twice: {:?}",
            o.decay
        );
        Ok(())
    }

    /// Checks the network against the data and the machine before anything is trained:
    /// `model.sizes` must start with the pixels per image and end with the number of classes
    /// of both the training and the test images, and training must fit in memory.
    ///
    /// # Errors
    /// Naming the field, the data folder and what differs.
    pub fn check_against_data(&self, splits: &Splits) -> Result<()> {
        let sizes = &self.model.sizes;
        // The file or folder really read: `data.path` for npz data, else `data.dir`.
        let source = self.data_source().location;
        let key = if self.data.format == Format::Npz && self.data.path.is_some() {
            "data.path"
        } else {
            "data.dir"
        };
        let dir = format!("{} ({key})", source.display());
        for (name, set) in [("training", &splits.train), ("test", &splits.test)] {
            ensure!(
                !set.is_empty(),
                "the {name} images of {dir} are empty (data.train_size / data.test_size)"
            );
            if self.model.kind == ModelKind::SpikeSlabRnn {
                let steps_cut = step_widths(set.shape());
                ensure!(
                    steps_cut.contains(&sizes[0]),
                    "model.sizes starts with {} inputs per step, but each of the {name} sequences in {dir} has shape {:?}: a step reads 1 value or whole trailing axes ({})",
                    sizes[0],
                    set.shape(),
                    steps_cut
                        .iter()
                        .map(|w| format!("{w} inputs, {} steps", set.features() / w))
                        .collect::<Vec<_>>()
                        .join("; ")
                );
            } else {
                ensure!(
                    sizes[0] == set.features(),
                    "model.sizes starts with {} but the {name} images in {dir} have {} pixels",
                    sizes[0],
                    set.features()
                );
            }
            ensure!(
                sizes[sizes.len() - 1] == set.classes(),
                "model.sizes ends with {} but the {name} data in {dir} has {} classes",
                sizes[sizes.len() - 1],
                set.classes()
            );
        }
        ensure!(
            splits.train.features() == splits.test.features(),
            "the training sequences in {dir} have {} values but the test sequences {}: both splits need the same length",
            splits.train.features(),
            splits.test.features()
        );
        let devices = self.train.devices.max(1);
        ensure!(
            devices <= splits.train.len(),
            "train.devices = {devices} is more than the {} training images",
            splits.train.len()
        );
        ensure!(
            !self.train.drop_last || self.train.batch_size <= splits.train.len() / devices,
            "train.drop_last with train.batch_size = {} leaves no batch of the {} training images{}",
            self.train.batch_size,
            splits.train.len(),
            if devices > 1 {
                format!(" shared by train.devices = {devices}")
            } else {
                String::new()
            }
        );
        let rows = self
            .train
            .batch_size
            .min(splits.train.len())
            .max(EVAL_ROWS.min(splits.test.len()));
        let what = format!(
            "model.sizes = {sizes:?} with train.batch_size = {}",
            self.train.batch_size
        );
        let bytes = self.train.precision.bytes();
        if self.model.kind == ModelKind::SpikeSlabRnn {
            let features = splits.train.features();
            let batch = self.train.batch_size.min(splits.train.len());
            let eval_rows = EVAL_ROWS.min(splits.test.len());
            crate::memory::check_fits(
                crate::memory::recurrent_training_bytes(sizes, features, batch, eval_rows, bytes),
                &what,
            )
        } else {
            crate::memory::check_training_fits(sizes, rows, bytes, &what)
        }
    }

    /// The images one epoch trains on, of `n` training images: all of them, or with
    /// `train.batches_per_epoch` (one device) that many batches at most, less a last
    /// partial batch that `train.drop_last` leaves out.
    pub fn images_per_epoch(&self, n: usize) -> usize {
        let Some(batches) = self.train.batches_per_epoch else {
            return n;
        };
        let batch = self.train.batch_size.max(1);
        let kept = if self.train.drop_last {
            n / batch * batch
        } else {
            n
        };
        kept.min(batches.saturating_mul(batch))
    }

    /// Where the configured data is and how to read it.
    pub fn data_source(&self) -> Source {
        Source {
            format: self.data.format,
            location: match (&self.data.path, self.data.format) {
                (Some(path), Format::Npz) => path.clone(),
                _ => self.data.dir.clone(),
            },
            classes: *self.model.sizes.last().unwrap_or(&0),
            label_offset: self.data.label_offset,
            scale: self.data.pixel_scale,
        }
    }

    /// The keys whose values differ between `saved` (the configuration a checkpoint was
    /// trained with) and this one, each as `(key, saved value, this value)`, in key order.
    pub fn differences(&self, saved: &RunConfig) -> Vec<(String, String, String)> {
        let flat = |config: &RunConfig| {
            let mut keys = std::collections::BTreeMap::new();
            let value = toml::Value::try_from(config).expect("a RunConfig always serializes");
            flatten("", &value, &mut keys);
            keys
        };
        let (ours, theirs) = (flat(self), flat(saved));
        let keys: std::collections::BTreeSet<&String> = ours.keys().chain(theirs.keys()).collect();
        keys.into_iter()
            .filter_map(|key| {
                let (a, b) = (theirs.get(key), ours.get(key));
                (a != b).then(|| {
                    let show = |v: Option<&String>| v.cloned().unwrap_or_else(|| "-".into());
                    (key.clone(), show(a), show(b))
                })
            })
            .collect()
    }
}

/// The most epochs a run may have (a bound that keeps epoch arithmetic far from overflow).
pub const MAX_EPOCHS: usize = 1_000_000_000;

/// The most devices a run trains on at once: burn's multi-device strategy sums the
/// devices' gradients in the order the devices finish, and a sum of two is the same in
/// either order, of three or more not (a run would not be the same run twice, nor resume
/// bit for bit).
pub const MAX_DEVICES: usize = 2;

/// The widest layer accepted: the kernels index columns with 32-bit integers.
pub const MAX_WIDTH: usize = u32::MAX as usize;

/// Images per forward pass when a whole set is evaluated.
pub const EVAL_ROWS: usize = 10_000;

/// `value`'s leaves as `a.b.c = value` text, into `keys`.
fn flatten(
    prefix: &str,
    value: &toml::Value,
    keys: &mut std::collections::BTreeMap<String, String>,
) {
    match value {
        toml::Value::Table(table) => {
            for (key, value) in table {
                let key = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                flatten(&key, value, keys);
            }
        }
        other => {
            keys.insert(prefix.to_string(), other.to_string());
        }
    }
}

/// The key and the raw value of a `key=value` override (both trimmed): the one reader of the
/// `--set` syntax, for runs and sweeps.
///
/// # Errors
/// If there is no `=`.
pub fn split_override(assignment: &str) -> Result<(&str, &str)> {
    let (key, raw) = assignment
        .split_once('=')
        .with_context(|| format!("override {assignment:?} is not of the form key=value"))?;
    Ok((key.trim(), raw.trim()))
}

/// Sets `a.b.c = value` in a TOML table, creating intermediate tables.
fn apply_override(table: &mut toml::Table, assignment: &str) -> Result<()> {
    let (key, raw) = split_override(assignment)?;
    let value = toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_string()));
    let mut parts: Vec<&str> = key.split('.').collect();
    let last = parts.pop().filter(|k| !k.is_empty());
    let last = last.with_context(|| format!("override {assignment:?} has an empty key"))?;
    let mut current = table;
    for part in parts {
        let entry = current
            .entry(part.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        current = entry
            .as_table_mut()
            .with_context(|| format!("override {key}: `{part}` is not a table"))?;
    }
    current.insert(last.to_string(), value);
    Ok(())
}

#[cfg(test)]
mod tests;

/// The widths `D` a recurrent network's step may read from samples of `shape` (row-major):
/// one value per step, or whole trailing axes, `shape[k] * ... * shape[last]` for each `k`
/// (a sequence `[T, D]`: `D` or `T D`; an image `[28, 28]`: 1, 28 or 784).
fn step_widths(shape: &[usize]) -> Vec<usize> {
    let mut widths = vec![1];
    let mut width = 1;
    for &axis in shape.iter().rev() {
        width *= axis;
        if !widths.contains(&width) {
            widths.push(width);
        }
    }
    widths
}
