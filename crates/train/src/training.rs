//! Training a run: the loop over epochs and batches, checkpoints, resume and stopping.
//!
//! Each step draws the batch's pre-activation noise, computes the softmax cross-entropy of
//! the mean-field logits, backpropagates through the layers' generalised backprop, takes an
//! AdamW step and projects `pi` into `[0, 1]` and `xi` to `>= 0`. After each epoch the
//! network is evaluated on the test images (mean-field), its connection classes are counted,
//! and a checkpoint is written; `metrics.csv` follows. Every random draw is a function of
//! the seed, the epoch and the batch, so a run stopped or killed at any moment and resumed
//! from its last checkpoint ends bit for bit where the uninterrupted run ends.

use std::time::Instant;

use anyhow::{Context, Result, bail, ensure};
use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Tensor};
use credit_data::{ImageSet, Splits};
use credit_model::{Classifier, Noise, Seed, Stream};
use rand::seq::SliceRandom;

use crate::backend::BackendKind;
use crate::checkpoint::{Provenance, data_fingerprint, model_from_record};
use crate::config::RunConfig;
use crate::display::{Display, Progress};
use crate::evaluate::{set_loss_and_accuracy, test_accuracies};
use crate::failpoint;
use crate::files::{write_atomic, write_json};
use crate::metrics::{EpochMetrics, LayerClasses};
use crate::optimizer::{learning_rate, optimizer_for};
use crate::resume::{Start, fresh_run, resume_point};
use crate::run::{CONFIG_FILE, MODEL_FILE, RunDir, RunSummary, SUMMARY_FILE};
use crate::runtime::compute;
use crate::stop::StopSignal;

/// How a training run is launched.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    /// The backend to train on.
    pub backend: BackendKind,
    /// Continue the run from its latest intact checkpoint.
    pub resume: bool,
    /// With `resume`: continue a finished run whose checkpoint of its last epoch is lost
    /// from its final model (`model.bpk`), with a fresh optimizer state.
    pub from_final_model: bool,
    /// What is shown while training.
    pub display: Display,
    /// Training stops (cleanly, resumable) once this is requested.
    pub stop: StopSignal,
}

impl TrainOptions {
    /// The given backend, a fresh run, [`Display::automatic`], a stop nobody requests.
    pub fn new(backend: BackendKind) -> Self {
        Self {
            backend,
            resume: false,
            from_final_model: false,
            display: Display::automatic(),
            stop: StopSignal::new(),
        }
    }
}

/// How a training call ended.
#[derive(Debug, Clone, PartialEq)]
pub enum TrainOutcome {
    /// Every epoch trained; the final model and summary are written.
    Finished(RunSummary),
    /// A stop was requested: the run holds the checkpoint of `epoch` (0: none yet) of
    /// `epochs`, no final model, and resumes from there.
    Stopped {
        /// The last epoch checkpointed.
        epoch: usize,
        /// The epochs the run is configured for.
        epochs: usize,
    },
}

impl TrainOutcome {
    /// The summary of a finished run.
    ///
    /// # Errors
    /// If training was stopped.
    pub fn finished(self) -> Result<RunSummary> {
        match self {
            TrainOutcome::Finished(summary) => Ok(summary),
            TrainOutcome::Stopped { epoch, epochs } => {
                bail!("training stopped at epoch {epoch} of {epochs}")
            }
        }
    }
}

/// The training and test images a config asks for, checked against its network and the
/// machine's memory.
///
/// # Errors
/// If the files cannot be read, or do not fit the network (see
/// [`RunConfig::check_against_data`]).
pub fn load_data(config: &RunConfig) -> Result<Splits> {
    let source = config.data_source();
    let splits = credit_data::load(&source)
        .with_context(|| format!("cannot load the data in {}", source.location.display()))?;
    check_data_sizes(config, splits.train.len(), splits.test.len())?;
    let take = |set: &ImageSet, n: usize| if n == 0 { set.clone() } else { set.first(n) };
    let splits = Splits {
        train: take(&splits.train, config.data.train_size),
        test: take(&splits.test, config.data.test_size),
    };
    config.check_against_data(&splits)?;
    Ok(splits)
}

/// Checks `data.train_size` and `data.test_size` of `config` against the `train` and `test`
/// images its data holds: neither may ask for more (0 means all).
///
/// # Errors
/// Naming the key, the data read and how many images it holds.
pub fn check_data_sizes(config: &RunConfig, train: usize, test: usize) -> Result<()> {
    for (key, asked, held, name) in [
        ("data.train_size", config.data.train_size, train, "training"),
        ("data.test_size", config.data.test_size, test, "test"),
    ] {
        ensure!(
            asked <= held,
            "{key} = {asked}, but {} holds {held} {name} images: choose at most that many, or 0 for all",
            config.data_source().location.display(),
        );
    }
    Ok(())
}

/// Trains `config` into `run` and, once every epoch is trained, evaluates the final model
/// and writes it with the summary.
///
/// A fresh run needs an empty or absent directory. With `options.resume`, training continues
/// after the latest intact checkpoint (damaged newer ones are reported on stderr and
/// skipped); `config` may differ from the run's only in [`RESUMABLE_KEYS`](crate::RESUMABLE_KEYS). A run whose last
/// epoch is checkpointed but whose final files are missing is finished by writing them. The
/// run folder is locked for the whole call.
///
/// # Errors
/// Invalid settings, data that does not fit the network, a run folder in use or not in the
/// expected state, a resume that would change the run, a loss that stops being finite
/// (naming the epoch and batch; earlier checkpoints stay), or files that cannot be written.
pub fn train(config: &RunConfig, run: &RunDir, options: &TrainOptions) -> Result<TrainOutcome> {
    compute(|| train_here(config, run, options))
}

fn train_here(config: &RunConfig, run: &RunDir, options: &TrainOptions) -> Result<TrainOutcome> {
    config.validate()?;
    let started = Instant::now();
    // The data is checked against the config before the run folder is touched.
    let data = load_data(config)?;
    let _lock = run.lock("credit train")?;
    let start = if options.resume {
        resume_point(config, run, options.from_final_model)?
    } else {
        ensure!(
            !options.from_final_model,
            "--from-final-model continues a run: it needs --resume"
        );
        fresh_run(run)?;
        Start::fresh()
    };
    let fingerprint = data_fingerprint(&data);
    if let Some(trained_on) = &start.data {
        ensure!(
            *trained_on == fingerprint,
            "--resume: the images in {} differ from those the run was trained on",
            config.data_source().location.display()
        );
    }
    if let Some(backend) = &start.backend
        && backend != options.backend.name()
    {
        eprintln!(
            "warning: {} was trained on {backend} so far and continues on {}: its numbers will differ in rounding from a run on one backend",
            run.path().display(),
            options.backend
        );
    }
    // Everything that can fail before training is done before the run's files change.
    let device = options.backend.device_for(config.train.precision)?;
    let trainer = Trainer {
        config,
        run,
        data: &data,
        fingerprint,
        device: device.clone(),
        seed: Seed::new(config.seed),
        backend: options.backend,
    };
    let mut rows = start.rows;
    let model = if start.epoch < config.train.epochs {
        let from_final_model = start.epoch > 0 && start.optimizer.is_none();
        let (model, optimizer) = trainer.prepare(start.epoch, start.model, start.optimizer)?;
        if from_final_model {
            // The final model becomes the checkpoint of its epoch (with the fresh optimizer)
            // before it is removed below: a stop or kill from here on resumes from it.
            let provenance = Provenance {
                config,
                data: &trainer.fingerprint,
                backend: options.backend,
            };
            run.checkpoints()
                .save(start.epoch, &provenance, &model, &optimizer, &rows)?;
        }
        // More epochs for a finished run: it is not finished until they are.
        for file in [SUMMARY_FILE, MODEL_FILE] {
            remove_if_present(&run.file(file))?;
        }
        write_atomic(&run.file(CONFIG_FILE), config.to_toml().as_bytes())?;
        // Rows of epochs after the checkpoint (a damaged newer one) are trained again.
        run.write_metrics(&rows)?;
        match trainer.epochs(start.epoch, model, optimizer, &mut rows, options)? {
            Some(model) => model,
            None => {
                return Ok(TrainOutcome::Stopped {
                    epoch: rows.last().map_or(0, |r| r.epoch),
                    epochs: config.train.epochs,
                });
            }
        }
    } else {
        let model = start.model.expect("a checkpoint at the last epoch");
        let model = model_from_record(model, config, &device, run.checkpoints().dir())?;
        // A run stopped after its last checkpoint: its final files are written again, the
        // metrics from the checkpoint's rows (the stop may have come before their write).
        write_atomic(&run.file(CONFIG_FILE), config.to_toml().as_bytes())?;
        run.write_metrics(&rows)?;
        model
    };
    trainer
        .finish(&model, &rows, started)
        .map(TrainOutcome::Finished)
}

fn remove_if_present(path: &std::path::Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("cannot update {}", path.display()))
        }
        _ => Ok(()),
    }
}

/// What every epoch of a session shares.
struct Trainer<'a> {
    config: &'a RunConfig,
    run: &'a RunDir,
    data: &'a Splits,
    fingerprint: String,
    device: Device,
    seed: Seed,
    backend: BackendKind,
}

impl Trainer<'_> {
    /// Optimizer steps per epoch: one per batch, the last one partial unless dropped.
    fn steps_per_epoch(&self) -> usize {
        let (n, batch) = (self.data.train.len(), self.config.train.batch_size);
        if self.config.train.drop_last {
            n / batch
        } else {
            n.div_ceil(batch)
        }
    }

    /// The model and optimizer training starts from: the `model` and `optimizer` records of
    /// epoch `start` (a fresh optimizer without one), or the seed's initial parameters.
    fn prepare(
        &self,
        start: usize,
        model: Option<burn::tensor::Bytes>,
        optimizer_record: Option<burn::tensor::Bytes>,
    ) -> Result<(Classifier, ModuleOptimizer)> {
        let config = self.config;
        let train_device = self.device.clone().autodiff();
        let checkpoints = self.run.checkpoints();
        let from = if optimizer_record.is_some() {
            checkpoints.dir().to_path_buf()
        } else {
            self.run.file(MODEL_FILE)
        };
        let model = match model {
            Some(model) => model_from_record(model, config, &train_device, &from)?,
            None => config
                .model
                .init(self.seed.stream(Stream::Init), &train_device),
        };
        let mut optimizer = optimizer_for(&config.optimizer, self.steps_per_epoch(), &model);
        if let Some(record) = optimizer_record {
            optimizer = optimizer.from_bytes(record).map_err(|e| {
                anyhow::anyhow!(
                    "{}: not an optimizer record of epoch {start} ({e})",
                    checkpoints.dir().display()
                )
            })?;
        }
        Ok((model, optimizer))
    }

    /// Trains the epochs after `start` from `model` and `optimizer`, appending to `rows`;
    /// the final model, or `None` if a stop was requested.
    fn epochs(
        &self,
        start: usize,
        mut model: Classifier,
        mut optimizer: ModuleOptimizer,
        rows: &mut Vec<EpochMetrics>,
        options: &TrainOptions,
    ) -> Result<Option<Classifier>> {
        let config = self.config;
        let train_device = self.device.clone().autodiff();
        let checkpoints = self.run.checkpoints();
        let mut progress = Progress::new(options.display, config.train.epochs);
        for epoch in start + 1..=config.train.epochs {
            if options.stop.requested().is_some() {
                return Ok(None);
            }
            let Some(trained) = self.epoch(
                model,
                &mut optimizer,
                epoch,
                &train_device,
                &mut progress,
                options,
            )?
            else {
                return Ok(None);
            };
            model = trained.0;
            let row = trained.1;
            rows.push(row.clone());
            let provenance = Provenance {
                config,
                data: &self.fingerprint,
                backend: self.backend,
            };
            checkpoints.save(epoch, &provenance, &model, &optimizer, rows)?;
            let keep = |e: usize| {
                e.saturating_add(config.train.keep_checkpoints) > epoch
                    || (config.train.checkpoint_every > 0
                        && e.is_multiple_of(config.train.checkpoint_every))
            };
            checkpoints.prune(keep)?;
            self.run.write_metrics(rows)?;
            progress.epoch_done(&row);
        }
        progress.finish();
        Ok(Some(model.valid()))
    }

    /// One epoch: its steps, then the test evaluation and the class count. `None` if a stop
    /// was requested during it (the epoch's work is discarded).
    fn epoch(
        &self,
        mut model: Classifier,
        optimizer: &mut ModuleOptimizer,
        epoch: usize,
        device: &Device,
        progress: &mut Progress,
        options: &TrainOptions,
    ) -> Result<Option<(Classifier, EpochMetrics)>> {
        let config = self.config;
        let train = &self.data.train;
        let mut order: Vec<usize> = (0..train.len()).collect();
        if config.train.shuffle {
            order.shuffle(&mut self.seed.stream(Stream::Shuffle).child(epoch as u64).rng());
        }
        let mut batches: Vec<&[usize]> = order.chunks(config.train.batch_size).collect();
        if config.train.drop_last
            && batches
                .last()
                .is_some_and(|b| b.len() < config.train.batch_size)
        {
            batches.pop();
        }
        let lr = learning_rate(&config.optimizer, epoch);
        let loss_fn = CrossEntropyLossConfig::new().init(device);
        let noise = self.seed.stream(Stream::Noise).child(epoch as u64);
        let started = Instant::now();
        progress.start_epoch(epoch, batches.len());
        let (mut losses, mut right) = (Vec::with_capacity(batches.len()), Vec::new());
        for (b, indices) in batches.iter().enumerate() {
            if options.stop.requested().is_some() {
                return Ok(None);
            }
            let batch = train.batch(indices.iter().copied(), device);
            let logits = model.forward(batch.images, Noise::Sampled(noise.child(b as u64)));
            let loss = loss_fn.forward(logits.clone(), batch.targets.clone());
            losses.push(loss.clone().inner());
            let predicted = logits.inner().argmax(1).reshape([indices.len()]);
            right.push(predicted.equal(batch.targets.inner()).int().sum());
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optimizer.step(lr, model, grads).project();
            progress.batch_done();
        }
        let losses: Vec<f64> = Tensor::cat(losses, 0)
            .into_data()
            .convert::<f64>()
            .try_into_vec::<f64>()
            .expect("float losses");
        let right: i64 = Tensor::cat(right, 0).sum().into_scalar();
        let train_seconds = started.elapsed().as_secs_f64();
        if let Some(b) = losses.iter().position(|l| !l.is_finite()) {
            let last_good = self
                .run
                .checkpoints()
                .epochs()
                .last()
                .map_or("none".to_string(), |e| format!("epoch {e}"));
            bail!(
                "training diverged: the loss is not finite at epoch {epoch}, batch {}; last good checkpoint: {last_good} in {}",
                b + 1,
                self.run.checkpoints().dir().display()
            );
        }
        let trained: usize = batches.iter().map(|b| b.len()).sum();
        let loss_sum: f64 = losses
            .iter()
            .zip(&batches)
            .map(|(loss, indices)| loss * indices.len() as f64)
            .sum();
        let valid = model.valid();
        let evaluation = self.seed.stream(Stream::Evaluation).child(epoch as u64);
        let (test_loss, test_accuracy_pct) =
            set_loss_and_accuracy(&valid, &self.data.test, evaluation, &self.device);
        let layers = layer_classes(&valid);
        let finite = test_loss.is_finite()
            && layers.iter().all(|l| {
                [l.very_important, l.unimportant, l.mean_pi]
                    .iter()
                    .all(|v| v.is_finite())
            });
        if !finite {
            bail!(
                "training diverged: the test loss or the parameters are not finite after epoch {epoch} (after its last step); last good checkpoint: {} in {}",
                self.run
                    .checkpoints()
                    .epochs()
                    .last()
                    .map_or("none".to_string(), |e| format!("epoch {e}")),
                self.run.checkpoints().dir().display()
            );
        }
        let row = EpochMetrics {
            epoch,
            train_loss: loss_sum / trained as f64,
            train_accuracy_pct: 100.0 * right as f64 / trained as f64,
            test_loss,
            test_accuracy_pct,
            train_seconds,
            learning_rate: lr,
            layers,
        };
        Ok(Some((model, row)))
    }

    /// Evaluates the final model and writes it with the summary.
    fn finish(
        &self,
        model: &Classifier,
        rows: &[EpochMetrics],
        started: Instant,
    ) -> Result<RunSummary> {
        let final_seed = self.seed.stream(Stream::Evaluation).child(0);
        let accuracies = test_accuracies(model, self.data, final_seed, &self.device);
        let seconds: Vec<f64> = rows.iter().map(|r| r.train_seconds).collect();
        let summary = RunSummary {
            credit_version: env!("CARGO_PKG_VERSION").to_string(),
            backend: self.backend.name().to_string(),
            device: format!("{:?}", self.device),
            seed: self.config.seed,
            epochs: rows.last().map_or(0, |r| r.epoch),
            train_images: self.data.train.len(),
            test_images: self.data.test.len(),
            test_accuracy_mean_field_pct: accuracies.test_mean_field_pct,
            test_accuracy_mean_network_pct: accuracies.test_mean_network_pct,
            train_accuracy_mean_network_pct: accuracies.train_mean_network_pct,
            seconds_per_epoch: seconds.iter().sum::<f64>() / seconds.len().max(1) as f64,
            total_seconds: started.elapsed().as_secs_f64(),
        };
        self.run.save_model(model)?;
        failpoint::hit("final");
        write_json(&self.run.file(SUMMARY_FILE), &summary)?;
        Ok(summary)
    }
}

/// The connection classes of each layer of a spike-and-slab network (none for the baseline).
fn layer_classes(model: &Classifier) -> Vec<LayerClasses> {
    let Some(net) = model.spike_slab() else {
        return Vec::new();
    };
    let host = |t: Tensor<2>| {
        t.into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .expect("float parameters")
    };
    net.layers
        .iter()
        .map(|layer| LayerClasses::of(&host(layer.pi.val()), &host(layer.xi.val())))
        .collect()
}
