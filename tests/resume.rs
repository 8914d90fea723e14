//! Interrupted runs: resuming bit for bit, checkpoints that fall back when damaged, runs that
//! always finish, refusals of resumes that would change a run, stopping, one writer per run.

mod common;

use std::path::Path;

use common::device;
use credit_train::{RunLock, StopSignal, TrainOutcome, train};

use common::runs::*;

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
    // A run without its final model (as `--resume` with more epochs leaves it while it
    // trains), locked by another process: readers are told who holds it.
    std::fs::remove_file(run.file("model.bpk")).unwrap();
    std::fs::remove_file(run.file("summary.json")).unwrap();
    let lock = run.file(".lock");
    std::fs::write(
        &lock,
        "`credit train` (process 1 on elsewhere, since unix time 0)",
    )
    .unwrap();
    // One process (no fork): killing it releases the lock.
    let mut other = std::process::Command::new("flock")
        .args(["--exclusive", "--no-fork"])
        .arg(&lock)
        .args(["sh", "-c", "echo locked; exec sleep 60"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("flock(1) runs");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(other.stdout.as_mut().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line.trim(), "locked");
    let config = run.config().unwrap();
    let error = format!(
        "{:#}",
        run.load_model(&config, &device(), None).unwrap_err()
    );
    other.kill().unwrap();
    other.wait().unwrap();
    assert!(
        error
            .contains("no final model yet: it is in use by `credit train` (process 1 on elsewhere"),
        "{error}"
    );
    // A lock this process holds itself names nobody: an analysis of a run it locked is not
    // told that the run is in use by itself.
    let own = RunLock::acquire(run.path(), "credit analyze").unwrap();
    let error = format!(
        "{:#}",
        run.load_model(&config, &device(), None).unwrap_err()
    );
    assert!(!error.contains("in use by"), "{error}");
    drop(own);
    let error = format!(
        "{:#}",
        run.load_model(&config, &device(), None).unwrap_err()
    );
    assert!(error.contains("--resume"), "{error}");
}
