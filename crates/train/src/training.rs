//! Training a run on burn's `Learner`, with checkpoints, resume and a run directory.

use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use burn::data::dataloader::DataLoaderBuilder;
use burn::module::Module;
use burn::train::checkpoint::KeepLastNCheckpoints;
use burn::train::metric::{AccuracyMetric, LearningRateMetric, LossMetric};
use burn::train::{Interrupter, Learner, SupervisedTraining};
use credit_data::{ImageSet, Splits};

use crate::backend::BackendKind;
use crate::checkpoint::AtomicFileCheckpointer;
use crate::classifier::Classifier;
use crate::config::RunConfig;
use crate::evaluate::test_accuracies;
use crate::optimizer::{FusedAdamW, learning_rate_schedule};
use crate::progress::{EpochLogger, SilentRenderer, TrainingRecord};
use crate::run::{CONFIG_FILE, RunDir, RunSummary, write_atomic};

/// How a training run is launched.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    /// The backend to train on.
    pub backend: BackendKind,
    /// Continue from the run directory's latest checkpoint.
    pub resume: bool,
    /// burn's terminal dashboard; off means one plain line per epoch.
    pub dashboard: bool,
}

impl TrainOptions {
    /// The given backend, a fresh run, the dashboard when stdout is a terminal.
    pub fn new(backend: BackendKind) -> Self {
        Self {
            backend,
            resume: false,
            dashboard: std::io::stdout().is_terminal(),
        }
    }
}

/// The training and test images a config asks for.
pub fn load_data(config: &RunConfig) -> Result<Splits> {
    let splits = credit_data::load(config.data.format, &config.data.dir)
        .with_context(|| format!("cannot load data.dir = {}", config.data.dir.display()))?;
    let take = |set: &ImageSet, n: usize| if n == 0 { set.clone() } else { set.first(n) };
    let splits = Splits {
        train: take(&splits.train, config.data.train_size),
        test: take(&splits.test, config.data.test_size),
    };
    config.check_against_data(splits.train.features(), splits.train.classes())?;
    Ok(splits)
}

/// Trains `config` into `run`, then evaluates the final model and writes the summary.
///
/// A fresh run needs an empty or absent directory. With `options.resume`, training continues
/// after the latest complete checkpoint. If the training loss turns NaN or infinite, training
/// stops with an error naming the epoch and batch; the checkpoints of earlier epochs stay.
pub fn train(config: &RunConfig, run: &RunDir, options: &TrainOptions) -> Result<RunSummary> {
    config.validate()?;
    let started = Instant::now();
    let start_epoch = prepare_run_dir(run, options.resume)?;
    let data = load_data(config)?;
    if start_epoch >= config.train.epochs {
        bail!(
            "{} already holds epoch {start_epoch} of train.epochs = {}; raise it with --set train.epochs=N to continue",
            run.path().display(),
            config.train.epochs
        );
    }
    write_atomic(&run.file(CONFIG_FILE), config.to_toml().as_bytes())?;

    let device = options.backend.device()?;
    device.seed(config.seed);
    credit_model::seed_noise(config.seed);
    let train_device = device.clone().autodiff();
    let model = Classifier::init(&config.model, &train_device);

    let steps_per_epoch = data.train.len().div_ceil(config.train.batch_size);
    let optimizer = FusedAdamW::for_epochs(&config.optimizer, steps_per_epoch).init();
    let learning_rate = learning_rate_schedule(&config.optimizer, steps_per_epoch)?;

    let mut train_loader = DataLoaderBuilder::new(data.train.clone())
        .batch_size(config.train.batch_size)
        .set_device(train_device.clone());
    if config.train.shuffle {
        train_loader = train_loader.shuffle(config.seed.wrapping_add(start_epoch as u64));
    }
    let train_loader = train_loader.build(data.train.clone());
    let test_loader = DataLoaderBuilder::new(data.test.clone())
        .batch_size(config.train.batch_size)
        .set_device(device.clone())
        .build(data.test.clone());

    // Epochs of earlier sessions of a resumed run stay in metrics.csv.
    let earlier = TrainingRecord {
        epochs: run
            .metrics()?
            .into_iter()
            .filter(|row| row.epoch <= start_epoch)
            .map(|row| (row.epoch, row))
            .collect(),
        ..TrainingRecord::default()
    };
    let record = Arc::new(Mutex::new(earlier));
    let interrupter = Interrupter::new();
    let logger = EpochLogger::new(
        record.clone(),
        run.clone(),
        interrupter.clone(),
        config.train.epochs,
        !options.dashboard,
    );
    let checkpoint_dir = run.checkpoint_dir();
    let mut training = SupervisedTraining::new(run.path(), train_loader, test_loader)
        .metrics((AccuracyMetric::new(), LossMetric::new()))
        .metric_train_numeric(LearningRateMetric::new())
        .with_metric_logger(logger)
        .with_interrupter(interrupter)
        .with_custom_checkpointers(
            AtomicFileCheckpointer::new(checkpoint_dir.clone(), "model"),
            AtomicFileCheckpointer::new(checkpoint_dir.clone(), "optim"),
            AtomicFileCheckpointer::new(checkpoint_dir, "scheduler"),
        )
        .with_checkpointing_strategy(KeepLastNCheckpoints::new(config.train.keep_checkpoints))
        .with_application_logger(None)
        .num_epochs(config.train.epochs);
    if !options.dashboard {
        training = training.renderer(Box::new(SilentRenderer));
    }
    if start_epoch > 0 {
        training = training.checkpoint(start_epoch);
    }
    let result = training.launch(Learner::new(model, optimizer, learning_rate));

    let record = record
        .lock()
        .map_err(|_| anyhow::anyhow!("training record poisoned"))?;
    if let Some(d) = record.divergence {
        let last_good = run
            .latest_checkpoint()
            .map_or("none".to_string(), |e| format!("epoch {e}"));
        bail!(
            "training diverged: the loss is not finite at epoch {}, batch {}; last good checkpoint: {last_good} in {}",
            d.epoch,
            d.batch,
            run.checkpoint_dir().display()
        );
    }
    if let Some(error) = result.error {
        bail!("training failed: {error}");
    }

    if let Some(error) = &record.write_error {
        bail!("training stopped: {error}");
    }

    let model = result.model.valid();
    let accuracies = test_accuracies(&model, &data, &device);
    let epochs = record.epochs.keys().last().copied().unwrap_or(0);
    let timed: Vec<f64> = record
        .epochs
        .values()
        .filter(|row| row.epoch > start_epoch)
        .map(|row| row.train_seconds)
        .collect();
    let summary = RunSummary {
        credit_version: env!("CARGO_PKG_VERSION").to_string(),
        backend: options.backend.name().to_string(),
        device: format!("{device:?}"),
        seed: config.seed,
        epochs,
        test_accuracy_mean_field_pct: accuracies.test_mean_field_pct,
        test_accuracy_mean_network_pct: accuracies.test_mean_network_pct,
        train_accuracy_mean_network_pct: accuracies.train_mean_network_pct,
        seconds_per_epoch: timed.iter().sum::<f64>() / timed.len().max(1) as f64,
        total_seconds: started.elapsed().as_secs_f64(),
    };
    run.save_model(model)?;
    write_atomic(
        &run.file(crate::run::SUMMARY_FILE),
        serde_json::to_string_pretty(&summary)?.as_bytes(),
    )?;
    Ok(summary)
}

/// Checks the run directory and returns the epoch training continues after.
fn prepare_run_dir(run: &RunDir, resume: bool) -> Result<usize> {
    if resume {
        return run.latest_checkpoint().with_context(|| {
            format!(
                "--resume: no complete checkpoint in {}",
                run.checkpoint_dir().display()
            )
        });
    }
    let occupied = std::fs::read_dir(run.path()).is_ok_and(|mut entries| entries.next().is_some());
    if occupied {
        bail!(
            "{} is not empty: choose another --out, or --resume to continue that run",
            run.path().display()
        );
    }
    std::fs::create_dir_all(run.path())
        .with_context(|| format!("cannot create {}", run.path().display()))?;
    Ok(0)
}
