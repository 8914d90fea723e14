//! Training on the committed MNIST: learning, the projection after every step, reloading,
//! resuming bit for bit, checkpoints that fall back when damaged, runs that always finish,
//! refusals of resumes that would change a run, stopping, and inputs rejected before any work.

mod common;

use std::path::{Path, PathBuf};

use common::{device, values};
use credit_model::{Classifier, Noise, Seed};
use credit_train::{
    Display, RunConfig, RunDir, RunLock, StopSignal, TrainOptions, TrainOutcome, load_data, train,
};

fn manifest() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn smoke(overrides: &[&str]) -> RunConfig {
    let mut all = vec![format!(
        "data.dir={}",
        manifest().join("data/mnist").display()
    )];
    all.extend(overrides.iter().map(|s| s.to_string()));
    RunConfig::load(&manifest().join("configs/smoke.toml"), &all).unwrap()
}

/// Test accuracy the smoke config must exceed after its 3 epochs.
const SMOKE_FLOOR_PCT: f64 = 70.0;

fn options() -> TrainOptions {
    let mut options = TrainOptions::new(credit_train::BackendKind::default_available().unwrap());
    options.display = Display::Quiet;
    options
}

fn resuming() -> TrainOptions {
    let mut options = options();
    options.resume = true;
    options
}

fn run_dir(root: &tempfile::TempDir, name: &str) -> RunDir {
    RunDir::new(PathBuf::from(root.path()).join(name))
}

/// `metrics.csv` without the wall-clock column, which no two runs share.
fn metrics_without_seconds(run: &RunDir) -> Vec<String> {
    std::fs::read_to_string(run.file("metrics.csv"))
        .unwrap()
        .lines()
        .map(|line| {
            let mut fields: Vec<&str> = line.split(',').collect();
            fields.remove(5);
            fields.join(",")
        })
        .collect()
}

/// Every parameter of the run's final model, bit for bit.
fn final_parameters(run: &RunDir, config: &RunConfig) -> Vec<Vec<u32>> {
    let model = run.load_model(config, &device(), None).unwrap();
    let net = model.spike_slab().expect("a spike-and-slab run");
    net.layers
        .iter()
        .flat_map(|l| [l.m.val(), l.xi.val(), l.pi.val()])
        .map(|t| values(t).iter().map(|&v| (v as f32).to_bits()).collect())
        .collect()
}

/// Every `pi` in [0, 1] and `xi >= 0`; returns how many sit exactly on a bound that
/// initialisation does not produce (`pi = 1` or `xi = 0`).
fn assert_in_support(model: &Classifier) -> usize {
    let net = model.spike_slab().expect("a spike-and-slab model");
    let mut on_bounds = 0;
    for layer in &net.layers {
        let pi = values(layer.pi.val());
        let xi = values(layer.xi.val());
        assert!(pi.iter().all(|p| (0.0..=1.0).contains(p)), "pi left [0, 1]");
        assert!(xi.iter().all(|&x| x >= 0.0), "xi went negative");
        on_bounds += pi.iter().filter(|&&p| p == 1.0).count();
        on_bounds += xi.iter().filter(|&&x| x == 0.0).count();
    }
    on_bounds
}

#[test]
fn the_smoke_config_learns_and_reloads_identically() {
    let root = tempfile::tempdir().unwrap();
    let config = smoke(&[]);
    let run = run_dir(&root, "smoke");
    let summary = train(&config, &run, &options())
        .unwrap()
        .finished()
        .unwrap();
    assert_eq!(summary.epochs, 3);
    // Chance is 10%. Seeds 0-9 give 80.0-82.4% mean-field and 80.5-82.9% for the mean
    // network.
    assert!(
        summary.test_accuracy_mean_field_pct > SMOKE_FLOOR_PCT,
        "mean-field test accuracy {}%",
        summary.test_accuracy_mean_field_pct
    );
    assert!(summary.test_accuracy_mean_network_pct > SMOKE_FLOOR_PCT);

    let metrics = run.metrics().unwrap();
    assert_eq!(
        metrics.iter().map(|m| m.epoch).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert!(
        metrics[2].train_loss < metrics[0].train_loss,
        "training loss falls"
    );
    assert!(metrics.iter().all(|m| m.test_accuracy_pct > 50.0));
    // The learning rate first steps after optimizer.lr_step_epochs = 20 epochs.
    let lr = config.optimizer.lr;
    assert!(metrics.iter().all(|m| m.learning_rate == lr));
    // Classes per layer after each epoch: fractions, loose at least as many as exact.
    for row in &metrics {
        assert_eq!(row.layers.len(), 2);
        for l in &row.layers {
            assert!(l.very_important_loose >= l.very_important);
            assert!(l.unimportant_loose >= l.unimportant);
            assert!((0.0..=1.0).contains(&l.mean_pi));
        }
    }
    assert_eq!(
        RunConfig::load(&run.file("config.toml"), &[]).unwrap(),
        config
    );

    let device = device();
    let data = load_data(&config).unwrap();
    let final_model = run.load_model(&config, &device, None).unwrap();
    let checkpoint = run.load_model(&config, &device, Some(3)).unwrap();
    let images = data.test.all(&device).images;
    let logits = values(final_model.forward(images.clone(), Noise::Off));
    assert_eq!(logits, values(checkpoint.forward(images, Noise::Off)));
    let seed = Seed::new(config.seed)
        .stream(credit_model::Stream::Evaluation)
        .child(0);
    let reloaded = credit_train::test_accuracies(&final_model, &data, seed, &device);
    assert_eq!(
        reloaded.test_mean_network_pct,
        summary.test_accuracy_mean_network_pct
    );
    assert_eq!(
        reloaded.test_mean_field_pct,
        summary.test_accuracy_mean_field_pct
    );
    assert_in_support(&final_model);
}

#[test]
fn a_resumed_run_equals_the_uninterrupted_run_bit_for_bit() {
    let root = tempfile::tempdir().unwrap();
    // The learning rate halves every second epoch and AdamW restarts every epoch: the
    // schedule and the optimizer state must survive each resume too.
    let config = |epochs: usize| {
        smoke(&[
            &format!("train.epochs={epochs}"),
            "optimizer.lr_step_epochs=2",
        ])
    };
    let straight = run_dir(&root, "straight");
    train(&config(6), &straight, &options()).unwrap();
    for stops in [vec![2], vec![1, 3, 5]] {
        let run = run_dir(&root, &format!("stops{stops:?}"));
        train(&config(stops[0]), &run, &options()).unwrap();
        for &epochs in stops[1..].iter().chain([6].iter()) {
            train(&config(epochs), &run, &resuming()).unwrap();
        }
        assert_eq!(
            metrics_without_seconds(&run),
            metrics_without_seconds(&straight),
            "stops after {stops:?}"
        );
        assert_eq!(
            final_parameters(&run, &config(6)),
            final_parameters(&straight, &config(6))
        );
        let (a, b) = (run.summary().unwrap(), straight.summary().unwrap());
        assert_eq!(
            (
                a.test_accuracy_mean_field_pct,
                a.test_accuracy_mean_network_pct
            ),
            (
                b.test_accuracy_mean_field_pct,
                b.test_accuracy_mean_network_pct
            )
        );
    }
    let rates: Vec<f64> = straight
        .metrics()
        .unwrap()
        .iter()
        .map(|m| m.learning_rate)
        .collect();
    assert_eq!(rates, [0.05, 0.05, 0.025, 0.025, 0.0125, 0.0125]);
}

#[test]
fn resume_refuses_every_change_that_would_alter_the_run() {
    let root = tempfile::tempdir().unwrap();
    let run = run_dir(&root, "finished");
    let config = smoke(&["train.epochs=2"]);
    train(&config, &run, &options()).unwrap();
    let saved = std::fs::read(run.file("config.toml")).unwrap();
    for change in [
        "model.sizes=[784, 64, 10]",
        "model.kind=deterministic",
        "train.batch_size=50",
        "optimizer.lr=0.01",
        "seed=7",
        "data.train_size=1000",
        "train.shuffle=false",
    ] {
        let key = change.split('=').next().unwrap();
        let changed = smoke(&["train.epochs=4", change]);
        let error = format!("{:#}", train(&changed, &run, &resuming()).unwrap_err());
        assert!(
            error.contains(&format!("--resume cannot change {key}")),
            "{change}: {error}"
        );
        assert_eq!(
            std::fs::read(run.file("config.toml")).unwrap(),
            saved,
            "{change}: config.toml untouched"
        );
    }
    // The finished run still loads and evaluates.
    let model = run.load_model(&config, &device(), None).unwrap();
    assert_in_support(&model);
    // The same refusal when the edit is made in config.toml itself.
    let text = String::from_utf8(saved.clone()).unwrap();
    let start = text.find("sizes = [").unwrap();
    let end = start + text[start..].find(']').unwrap() + 1;
    let edited = format!("{}sizes = [784, 16, 10]{}", &text[..start], &text[end..]);
    std::fs::write(run.file("config.toml"), edited).unwrap();
    let from_file = run.config_with(&["train.epochs=4".into()]).unwrap();
    let error = format!("{:#}", train(&from_file, &run, &resuming()).unwrap_err());
    assert!(
        error.contains("--resume cannot change model.sizes"),
        "{error}"
    );
    std::fs::write(run.file("config.toml"), &saved).unwrap();
    // train.epochs may change: the run continues.
    let more = smoke(&["train.epochs=3"]);
    assert_eq!(
        train(&more, &run, &resuming())
            .unwrap()
            .finished()
            .unwrap()
            .epochs,
        3
    );
    // ... but not below what was trained, and a finished run says how to continue it.
    let error = format!("{:#}", train(&config, &run, &resuming()).unwrap_err());
    assert!(error.contains("already trained 3 epochs"), "{error}");
    let error = format!("{:#}", train(&more, &run, &resuming()).unwrap_err());
    assert!(error.contains("already holds epoch 3"), "{error}");
}

/// Damages the checkpoint folder it is given.
type Damage = fn(&Path);

#[test]
fn a_damaged_newest_checkpoint_is_named_and_the_intact_one_is_used() {
    let root = tempfile::tempdir().unwrap();
    let config = |epochs: usize| smoke(&[&format!("train.epochs={epochs}")]);
    let straight = run_dir(&root, "straight");
    train(&config(4), &straight, &options()).unwrap();
    let damages: [(&str, Damage); 4] = [
        ("an empty model record", |p| {
            std::fs::write(p.join("model-3.bpk"), b"").unwrap()
        }),
        ("a flipped optimizer byte", |p| {
            let path = p.join("optim-3.bpk");
            let mut bytes = std::fs::read(&path).unwrap();
            bytes[1000] ^= 1;
            std::fs::write(path, bytes).unwrap()
        }),
        ("a truncated state file", |p| {
            let path = p.join("state-3.json");
            let text = std::fs::read_to_string(&path).unwrap();
            std::fs::write(path, &text[..text.len() / 2]).unwrap()
        }),
        ("a missing model record", |p| {
            std::fs::remove_file(p.join("model-3.bpk")).unwrap()
        }),
    ];
    for (what, damage) in damages {
        let run = run_dir(&root, what);
        // Stopped after epoch 3 with epochs 2 and 3 kept.
        train(&config(3), &run, &options()).unwrap();
        std::fs::remove_file(run.file("summary.json")).unwrap();
        damage(run.checkpoints().dir());
        let (latest, damaged) = run.checkpoints().latest_intact();
        assert_eq!(latest.unwrap().0.epoch, 2, "{what}");
        assert_eq!(damaged.len(), 1, "{what}");
        assert_eq!(damaged[0].epoch, 3);
        assert!(
            damaged[0].reason.contains("-3."),
            "{what}: {}",
            damaged[0].reason
        );
        let remaining: Vec<String> = ["model-3.bpk", "optim-3.bpk", "state-3.json"]
            .into_iter()
            .filter(|f| run.checkpoints().dir().join(f).exists())
            .map(String::from)
            .collect();
        train(&config(4), &run, &resuming()).unwrap();
        // The damaged checkpoint's files are moved aside, not deleted.
        let aside = run.checkpoints().damaged_dir();
        for file in &remaining {
            assert!(aside.join(file).is_file(), "{what}: {file} not kept");
        }
        assert_eq!(
            metrics_without_seconds(&run),
            metrics_without_seconds(&straight),
            "{what}"
        );
        assert_eq!(
            final_parameters(&run, &config(4)),
            final_parameters(&straight, &config(4))
        );
    }
}

#[test]
fn a_run_killed_before_its_final_files_finishes_on_resume() {
    let root = tempfile::tempdir().unwrap();
    let run = run_dir(&root, "killed");
    let config = smoke(&["train.epochs=2"]);
    let summary = train(&config, &run, &options())
        .unwrap()
        .finished()
        .unwrap();
    let parameters = final_parameters(&run, &config);
    std::fs::remove_file(run.file("model.bpk")).unwrap();
    std::fs::remove_file(run.file("summary.json")).unwrap();
    let error = format!(
        "{:#}",
        run.load_model(&config, &device(), None).unwrap_err()
    );
    assert!(
        error.contains("training stopped after epoch 2 of 2") && error.contains("--resume"),
        "{error}"
    );
    let finished = train(&config, &run, &resuming())
        .unwrap()
        .finished()
        .unwrap();
    assert_eq!(
        finished.test_accuracy_mean_field_pct,
        summary.test_accuracy_mean_field_pct
    );
    assert_eq!(
        finished.test_accuracy_mean_network_pct,
        summary.test_accuracy_mean_network_pct
    );
    assert_eq!(final_parameters(&run, &config), parameters);
    assert!(run.is_complete());
}

#[test]
fn a_stop_request_ends_training_without_final_files_and_the_run_resumes() {
    let root = tempfile::tempdir().unwrap();
    let config = smoke(&["train.epochs=6"]);
    let straight = run_dir(&root, "straight");
    train(&config, &straight, &options()).unwrap();

    let run = run_dir(&root, "stopped");
    let stopping = options();
    // Asked before the first batch: nothing is trained, nothing final is written.
    stopping.stop.request();
    let outcome = train(&config, &run, &stopping).unwrap();
    assert_eq!(
        outcome,
        TrainOutcome::Stopped {
            epoch: 0,
            epochs: 6
        }
    );
    assert!(!run.file("model.bpk").exists() && !run.file("summary.json").exists());

    // Asked while a later epoch trains (a watcher sees epoch 2's checkpoint).
    let mut resume = resuming();
    resume.stop = StopSignal::new();
    let stop = resume.stop.clone();
    let checkpoints = run.checkpoints();
    let watcher = std::thread::spawn(move || {
        while checkpoints.epochs().last().is_none_or(|&e| e < 2) {
            std::thread::sleep(std::time::Duration::from_micros(200));
        }
        stop.request();
    });
    let outcome = train(&config, &run, &resume).unwrap();
    watcher.join().unwrap();
    let TrainOutcome::Stopped { epoch, epochs: 6 } = outcome else {
        panic!("not stopped: {outcome:?}");
    };
    assert!((2..6).contains(&epoch), "stopped at {epoch}");
    assert!(!run.is_complete() && !run.file("model.bpk").exists());
    assert_eq!(run.metrics().unwrap().len(), epoch);

    train(&config, &run, &resuming())
        .unwrap()
        .finished()
        .unwrap();
    assert_eq!(
        metrics_without_seconds(&run),
        metrics_without_seconds(&straight)
    );
    assert_eq!(
        final_parameters(&run, &config),
        final_parameters(&straight, &config)
    );
}

#[test]
fn a_run_folder_has_one_writer_at_a_time() {
    let root = tempfile::tempdir().unwrap();
    let run = run_dir(&root, "locked");
    let holder = RunLock::acquire(run.path(), "credit train").unwrap();
    let error = format!(
        "{:#}",
        train(&smoke(&["train.epochs=1"]), &run, &options()).unwrap_err()
    );
    assert!(error.contains("is in use by `credit train`"), "{error}");
    assert!(!run.file("config.toml").exists());
    drop(holder);
    train(&smoke(&["train.epochs=1"]), &run, &options()).unwrap();
    // A second fresh start in the same folder is refused.
    let error = format!(
        "{:#}",
        train(&smoke(&["train.epochs=1", "seed=2"]), &run, &options()).unwrap_err()
    );
    assert!(error.contains("is not empty"), "{error}");
    assert_eq!(run.config().unwrap().seed, 1);
}

/// Writes an IDX folder with 28x28 training images and `test_side`² test images.
fn idx_folder(dir: &Path, test_side: u32) {
    let write = |name: &str, dims: &[u32], body: &[u8]| {
        let mut bytes = vec![0, 0, 8, dims.len() as u8];
        for d in dims {
            bytes.extend(d.to_be_bytes());
        }
        bytes.extend(body);
        std::fs::write(dir.join(name), bytes).unwrap();
    };
    let n = 20u32;
    write("train-images-idx3-ubyte", &[n, 28, 28], &vec![7; 20 * 784]);
    write("train-labels-idx1-ubyte", &[n], &[3; 20]);
    let side = test_side * test_side;
    write(
        "t10k-images-idx3-ubyte",
        &[n, test_side, test_side],
        &vec![7; 20 * side as usize],
    );
    write("t10k-labels-idx1-ubyte", &[n], &[3; 20]);
}

#[test]
fn inputs_that_cannot_train_are_refused_before_any_work() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("mixed");
    std::fs::create_dir(&data).unwrap();
    idx_folder(&data, 32);
    let dir = format!("data.dir={}", data.display());
    let cases: [(Vec<String>, &str); 4] = [
        (
            vec![dir.clone(), "model.sizes=[784, 32, 10]".into()],
            "the test images in",
        ),
        (
            vec!["model.sizes=[784, 1000000000, 10]".into()],
            "need about",
        ),
        (
            vec!["model.sizes=[784, 100000, 100000, 10]".into()],
            "of memory to train",
        ),
        (
            vec![dir.clone(), "model.sizes=[1024, 32, 10]".into()],
            "the training images in",
        ),
    ];
    for (i, (overrides, expected)) in cases.into_iter().enumerate() {
        let mut all: Vec<&str> = vec!["train.epochs=1"];
        all.extend(overrides.iter().map(String::as_str));
        let run = run_dir(&root, &format!("case{i}"));
        let error = format!("{:#}", train(&smoke(&all), &run, &options()).unwrap_err());
        assert!(error.contains(expected), "{overrides:?}: {error}");
        assert!(
            run.checkpoints().epochs().is_empty(),
            "{overrides:?}: nothing trained"
        );
    }
}

#[test]
fn the_edges_of_the_accepted_ranges_train() {
    let root = tempfile::tempdir().unwrap();
    for (i, overrides) in [
        // A batch larger than the training set is the whole set, one step per epoch.
        vec!["train.batch_size=1000000000000"],
        vec!["model.xi_init_max=0"],
        vec!["model.m_init_std=0", "model.pi_init=1"],
        vec!["optimizer.beta1=0", "optimizer.beta2=0"],
        vec!["train.shuffle=false", "train.keep_checkpoints=1"],
    ]
    .into_iter()
    .enumerate()
    {
        let mut all = vec![
            "train.epochs=1",
            "data.train_size=300",
            "data.test_size=100",
        ];
        all.extend(overrides.iter().copied());
        let run = run_dir(&root, &format!("edge{i}"));
        let summary = train(&smoke(&all), &run, &options())
            .unwrap()
            .finished()
            .unwrap();
        assert!(
            summary.test_accuracy_mean_network_pct.is_finite(),
            "{overrides:?}"
        );
    }
}

#[test]
fn a_diverging_loss_stops_training_with_its_epoch_and_batch() {
    let root = tempfile::tempdir().unwrap();
    let run = run_dir(&root, "diverged");
    // Weights of order 1e20 overflow float32 in the variance at the first batch.
    let error = train(&smoke(&["model.m_init_std=1e20"]), &run, &options()).unwrap_err();
    let message = format!("{error:#}");
    assert!(
        message.contains("not finite at epoch 1, batch 1"),
        "{message}"
    );
    assert!(
        !run.file("model.bpk").exists(),
        "no final model from a diverged run"
    );
}

#[test]
fn checkpoints_keep_the_latest_and_every_nth_epoch() {
    let root = tempfile::tempdir().unwrap();
    let run = run_dir(&root, "kept");
    let config = smoke(&[
        "train.epochs=7",
        "data.train_size=300",
        "train.keep_checkpoints=2",
        "train.checkpoint_every=3",
    ]);
    train(&config, &run, &options()).unwrap();
    assert_eq!(run.checkpoints().epochs(), [3, 6, 7]);
    let files = std::fs::read_dir(run.checkpoints().dir()).unwrap().count();
    assert_eq!(files, 9, "a record pair and a state file each");
}
