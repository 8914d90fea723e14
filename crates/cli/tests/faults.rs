//! Fault injection: `credit train` is killed with SIGKILL at chosen points (between writing
//! every file and renaming it into place, between a checkpoint's records and its state file,
//! while old checkpoints are removed, between the final model and the summary) and at random
//! moments; each time the run is resumed until it finishes, and its parameters and
//! `metrics.csv` must equal those of a run that was never interrupted, bit for bit.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

mod common;
use common::{metrics_without_seconds, repo};

/// The run of every case: five short epochs on a slice of MNIST, checkpoints pruned.
const CONFIG: [&str; 8] = [
    "--set",
    "train.epochs=5",
    "--set",
    "data.train_size=1000",
    "--set",
    "data.test_size=500",
    "--set",
    "train.keep_checkpoints=2",
];

fn command(run: &Path, failpoint: Option<&str>) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_credit"));
    command.current_dir(repo()).env_remove("CREDIT_FAILPOINT");
    if let Some(point) = failpoint {
        command.env("CREDIT_FAILPOINT", point);
    }
    let out = run.to_str().unwrap();
    if run.join("config.toml").is_file() {
        command.args(["train", "--out", out, "--resume"]);
    } else {
        command.args(["train", "--config", "configs/smoke.toml", "--out", out]);
        command.args(CONFIG);
    }
    command.arg("--no-dashboard");
    command
}

fn killed(output: &Output) -> bool {
    use std::os::unix::process::ExitStatusExt;
    output.status.signal() == Some(9)
}

/// `metrics.csv` without the wall-clock column, and the exported parameters.
fn result(run: &Path) -> (Vec<String>, Vec<u8>) {
    let metrics = metrics_without_seconds(run);
    let file = run.join("params.npz");
    let exported = Command::new(env!("CARGO_BIN_EXE_credit"))
        .current_dir(repo())
        .args(["export", "--run", run.to_str().unwrap(), "--format", "npz"])
        .args(["--out", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        exported.status.success(),
        "{}",
        String::from_utf8_lossy(&exported.stderr)
    );
    (metrics, std::fs::read(file).unwrap())
}

/// Resumes `run` (without a failpoint) until it finishes.
fn finish(run: &Path) {
    let output = command(run, None).output().unwrap();
    assert!(
        output.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn runs_killed_at_any_point_resume_to_the_uninterrupted_result() {
    let scratch = tempfile::tempdir().unwrap();
    let reference = scratch.path().join("reference");
    let started = Instant::now();
    finish(&reference);
    let duration = started.elapsed();
    let expected = result(&reference);

    // Every file write of this run: config.toml and the empty metrics.csv, four per epoch
    // (two records, the state file, metrics.csv), model.bpk and summary.json.
    let writes = 2 + 4 * 5 + 2;
    let mut points: Vec<String> = (1..=writes).map(|n| format!("rename:{n}")).collect();
    points.extend((1..=5).map(|n| format!("checkpoint:{n}")));
    points.extend((1..=3).map(|n| format!("prune:{n}")));
    points.push("final:1".into());
    let mut kills = 0;
    for (i, point) in points.iter().enumerate() {
        let run = scratch.path().join(format!("point{i}"));
        let output = command(&run, Some(point)).output().unwrap();
        assert!(killed(&output), "{point}: not reached");
        kills += 1;
        finish(&run);
        assert_eq!(result(&run), expected, "killed at {point}");
    }

    // Random moments: each run is killed at a pseudo-random time within the reference's
    // duration, again and again on resume (up to three kills), then finished.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for case in 0..8 {
        let run = scratch.path().join(format!("random{case}"));
        for _ in 0..3 {
            let delay = duration.mul_f64((next() % 1000) as f64 / 1000.0);
            let mut child = command(&run, None)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap();
            std::thread::sleep(delay.max(Duration::from_millis(1)));
            if child.try_wait().unwrap().is_none() {
                child.kill().unwrap();
                kills += 1;
            }
            child.wait().unwrap();
            if run.join("summary.json").is_file() {
                break;
            }
        }
        if !run.join("summary.json").is_file() {
            finish(&run);
        }
        assert_eq!(result(&run), expected, "random case {case}");
    }
    println!("{kills} kills, every run resumed to the uninterrupted result");
    assert!(kills >= points.len());
}
