//! Training a run: where it starts (a fresh run, or the latest intact checkpoint), the
//! epochs through burn's `Learner` (`learner/`), and the final files.
//!
//! Each step draws the batch's pre-activation noise, computes the softmax cross-entropy of
//! the mean-field logits, backpropagates through the layers' generalised backprop, takes an
//! AdamW step and projects `pi` into `[0, 1]` and `xi` to `>= 0` (`Classifier`'s
//! `TrainStep`). After each epoch the network is evaluated on the test images (mean-field),
//! its connection classes are counted, and a checkpoint is written; `metrics.csv` follows.
//! Every random draw is a function of the seed, the epoch and the batch, so a run stopped or
//! killed at any moment and resumed from its last checkpoint ends bit for bit where the
//! uninterrupted run ends.

use std::time::Instant;

use anyhow::{Context, Result, bail, ensure};
use credit_data::{ImageSet, Splits};
use credit_model::{Classifier, Seed, Stream};

use crate::backend::BackendKind;
use crate::checkpoint::{Provenance, data_fingerprint, model_from_record};
use crate::config::RunConfig;
use crate::display::Display;
use crate::evaluate::test_accuracies;
use crate::failpoint;
use crate::files::{write_atomic, write_json};
use crate::learner::{Session, SessionEnd, train_session};
use crate::metrics::EpochMetrics;
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
    options
        .backend
        .devices_for(config.train.precision, config.train.devices)?;
    let session = Session {
        config,
        run,
        data: &data,
        fingerprint: &fingerprint,
        device: device.clone(),
        backend: options.backend,
        display: options.display,
        stop: options.stop.clone(),
    };
    let rows = start.rows;
    let (model, rows) = if start.epoch < config.train.epochs {
        let checkpoints = run.checkpoints();
        let restored = match (start.model, start.optimizer) {
            (Some(model), Some(optimizer)) => Some(session.restored(
                start.epoch,
                (model, optimizer, start.scheduler_steps),
                checkpoints.dir(),
            )?),
            (Some(model), None) => {
                // `--from-final-model`: the final model becomes the checkpoint of its epoch,
                // with a fresh optimizer, before it is removed below: a stop or kill from
                // here on resumes from it.
                let train_device = device.clone().autodiff();
                let model = model_from_record(model, config, &train_device, &run.file(MODEL_FILE))?;
                let provenance = Provenance {
                    config,
                    data: &fingerprint,
                    backend: options.backend,
                };
                checkpoints.save(
                    start.epoch,
                    &provenance,
                    &model,
                    &session.optimizer(&model),
                    &rows,
                )?;
                let (_, model, optimizer) = checkpoints.verify(start.epoch)?;
                Some(session.restored(start.epoch, (model, optimizer, None), checkpoints.dir())?)
            }
            _ => None,
        };
        // More epochs for a finished run: it is not finished until they are.
        for file in [SUMMARY_FILE, MODEL_FILE] {
            remove_if_present(&run.file(file))?;
        }
        write_atomic(&run.file(CONFIG_FILE), config.to_toml().as_bytes())?;
        // Rows of epochs after the checkpoint (a damaged newer one) are trained again.
        run.write_metrics(&rows)?;
        match train_session(&session, start.epoch, restored, rows)? {
            SessionEnd::Finished(model, rows) => (model, rows),
            SessionEnd::Stopped(epoch) => {
                return Ok(TrainOutcome::Stopped {
                    epoch,
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
        (model, rows)
    };
    finish(&session, &model, &rows, started).map(TrainOutcome::Finished)
}

fn remove_if_present(path: &std::path::Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("cannot update {}", path.display()))
        }
        _ => Ok(()),
    }
}

/// Evaluates the final model and writes it with the summary.
fn finish(
    session: &Session,
    model: &Classifier,
    rows: &[EpochMetrics],
    started: Instant,
) -> Result<RunSummary> {
    let seed = Seed::new(session.config.seed);
    let final_seed = seed.stream(Stream::Evaluation).child(0);
    let accuracies = test_accuracies(model, session.data, final_seed, &session.device);
    let seconds: Vec<f64> = rows.iter().map(|r| r.train_seconds).collect();
    let summary = RunSummary {
        credit_version: env!("CARGO_PKG_VERSION").to_string(),
        backend: session.backend.name().to_string(),
        device: format!("{:?}", session.device),
        seed: session.config.seed,
        epochs: rows.last().map_or(0, |r| r.epoch),
        train_images: session.data.train.len(),
        test_images: session.data.test.len(),
        test_accuracy_mean_field_pct: accuracies.test_mean_field_pct,
        test_accuracy_mean_network_pct: accuracies.test_mean_network_pct,
        train_accuracy_mean_network_pct: accuracies.train_mean_network_pct,
        seconds_per_epoch: seconds.iter().sum::<f64>() / seconds.len().max(1) as f64,
        total_seconds: started.elapsed().as_secs_f64(),
    };
    session.run.save_model(model)?;
    failpoint::hit("final");
    write_json(&session.run.file(SUMMARY_FILE), &summary)?;
    Ok(summary)
}
