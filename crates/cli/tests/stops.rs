//! Stopping, locking and refusing, as a user meets them: Ctrl-C at the progress bar and
//! SIGTERM stop a run that then resumes to the uninterrupted result; a job put in the
//! background trains with plain lines; one process per run folder; bad analysis settings and
//! unfinished runs are clear errors.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod common;
use common::{credit, metrics_without_seconds, repo, text};

/// A smoke run of `epochs` epochs into `out`, with extra arguments.
fn train_args(out: &str, epochs: usize, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "train",
        "--config",
        "configs/smoke.toml",
        "--out",
        out,
        "--set",
        &format!("train.epochs={epochs}"),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

/// Waits (at most a minute) until `run` holds a checkpoint of epoch 1 or later.
fn wait_for_first_checkpoint(run: &Path, child: &mut Child) {
    let started = Instant::now();
    while !std::fs::read_dir(run.join("checkpoint")).is_ok_and(|entries| {
        entries
            .filter_map(|e| e.ok())
            .any(|e| e.file_name().to_string_lossy().starts_with("state-"))
    }) {
        assert!(
            child.try_wait().unwrap().is_none(),
            "credit ended before its first checkpoint"
        );
        assert!(started.elapsed() < Duration::from_secs(60), "no checkpoint");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Sends `signal` (`INT`, `TERM`) to process `pid`.
fn signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn sigint_and_sigterm_stop_a_run_that_then_resumes_to_the_uninterrupted_result() {
    let scratch = tempfile::tempdir().unwrap();
    let reference = scratch.path().join("reference");
    let reference = reference.to_str().unwrap();
    let done = credit(
        &train_args(reference, 40, &[])
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    assert!(done.status.success(), "{}", text(&done.stderr));

    for (name, code) in [("INT", 130), ("TERM", 143)] {
        let run = scratch.path().join(name);
        let out = run.to_str().unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_credit"))
            .args(train_args(out, 40, &[]))
            .current_dir(repo())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        wait_for_first_checkpoint(&run, &mut child);
        signal(child.id(), name);
        let output = child.wait_with_output().unwrap();
        let stdout = text(&output.stdout);
        assert_eq!(output.status.code(), Some(code), "SIG{name}: {stdout}");
        assert!(
            stdout.contains("stopped at epoch")
                && stdout.contains(&format!("--out {out} --resume")),
            "SIG{name}: {stdout}"
        );
        assert!(!run.join("summary.json").exists() && !run.join("model.bpk").exists());
        let evaluated = credit(&["eval", "--run", out]);
        assert!(
            text(&evaluated.stderr).contains("has no final model")
                && text(&evaluated.stderr).contains("--resume"),
            "{}",
            text(&evaluated.stderr)
        );
        let resumed = credit(&["train", "--out", out, "--resume"]);
        assert!(resumed.status.success(), "{}", text(&resumed.stderr));
        assert_eq!(
            metrics_without_seconds(&run),
            metrics_without_seconds(Path::new(reference)),
            "SIG{name}"
        );
    }
}

/// Runs `command` under `script` in a new pseudo-terminal, calls `react` with everything it
/// printed so far (until it returns bytes to type, or `None` for nothing), and returns the
/// whole output and the exit status.
fn in_terminal(
    command: &str,
    react: impl Fn(&str) -> Option<&'static [u8]>,
) -> (String, Option<i32>) {
    let mut child = Command::new("script")
        .args(["-qefc", command, "/dev/null"])
        .current_dir(repo())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("script (util-linux) runs");
    let seen = Arc::new(Mutex::new(String::new()));
    let mut stdout = child.stdout.take().unwrap();
    let reader = {
        let seen = seen.clone();
        std::thread::spawn(move || {
            let mut buffer = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut buffer) {
                if n == 0 {
                    break;
                }
                seen.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buffer[..n]));
            }
        })
    };
    let mut stdin = child.stdin.take().unwrap();
    let started = Instant::now();
    let mut typed = false;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(started.elapsed() < Duration::from_secs(120), "timed out");
        if !typed && let Some(keys) = react(&seen.lock().unwrap()) {
            stdin.write_all(keys).unwrap();
            stdin.flush().unwrap();
            typed = true;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    drop(stdin);
    reader.join().unwrap();
    let output = seen.lock().unwrap().clone();
    (output, status.code())
}

#[test]
fn ctrl_c_typed_at_the_progress_bar_stops_the_run() {
    let scratch = tempfile::tempdir().unwrap();
    let run = scratch.path().join("terminal");
    let exe = env!("CARGO_BIN_EXE_credit");
    let command = format!(
        "{exe} train --config configs/smoke.toml --out {} --set train.epochs=60",
        run.display()
    );
    // Ctrl-C (0x03) once the first epoch's line is shown.
    let (output, code) = in_terminal(&command, |seen| {
        seen.contains("epoch   1/60").then_some(b"\x03".as_slice())
    });
    assert!(
        output.contains("images"),
        "the progress bar is shown: {output}"
    );
    assert!(output.contains("stopped at epoch"), "{output}");
    assert_eq!(code, Some(130), "{output}");
    assert!(!run.join("summary.json").exists());
}

#[test]
fn a_job_in_the_background_trains_with_plain_lines() {
    let scratch = tempfile::tempdir().unwrap();
    let run = scratch.path().join("background");
    let exe = env!("CARGO_BIN_EXE_credit");
    // `set -m`: job control, so that the job gets its own process group, as in an
    // interactive shell; the terminal's foreground stays with the shell.
    let command = format!(
        "sh -c 'set -m; {exe} train --config configs/smoke.toml --out {} --set train.epochs=2 & wait $!; echo status=$?'",
        run.display()
    );
    let (output, code) = in_terminal(&command, |_| None);
    assert!(output.contains("epoch   2/2"), "{output}");
    assert!(
        !output.contains("images,"),
        "no progress bar in the background: {output}"
    );
    assert!(output.contains("status=0"), "{output}");
    assert_eq!(code, Some(0));
    assert!(run.join("summary.json").is_file());
}

#[test]
fn one_process_at_a_time_works_on_a_run_folder() {
    let scratch = tempfile::tempdir().unwrap();
    let run = scratch.path().join("locked");
    let out = run.to_str().unwrap();
    let trained = credit(
        &train_args(out, 1, &[])
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    assert!(trained.status.success(), "{}", text(&trained.stderr));
    let _held = credit_train::RunLock::acquire(&run, "credit test").unwrap();
    let pid = std::process::id();
    for args in [
        vec!["train", "--out", out, "--resume", "--set", "train.epochs=2"],
        vec!["analyze", "--run", out],
        vec!["export", "--run", out],
    ] {
        let output = credit(&args);
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(
            stderr.contains(&format!("is in use by `credit test` (process {pid}")),
            "{args:?}: {stderr}"
        );
    }
}

#[test]
fn analysis_settings_out_of_range_are_errors_naming_the_file_and_key() {
    let scratch = tempfile::tempdir().unwrap();
    let run = scratch.path().join("run");
    let out = run.to_str().unwrap();
    let trained = credit(
        &train_args(out, 1, &[])
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    assert!(trained.status.success());
    for (settings, expected) in [
        ("bins = 0\n", "bins must be between 1 and"),
        (
            "entropy_samples = 0\n",
            "entropy_samples must be between 1 and",
        ),
        ("samples = 0\n", "samples must be between 1 and"),
        ("fractions = []\n", "fractions must list at least one"),
        ("fractions = [0.5, 2.0]\n", "fractions must lie in [0, 1]"),
        ("pi_thresholds = []\n", "pi_thresholds must list 1 to"),
        (
            "pi_thresholds = [0.9, 0.5]\n",
            "pi_thresholds must be increasing",
        ),
        (
            "pi_thresholds = [0.5, 1.5]\n",
            "pi_thresholds must be increasing",
        ),
        ("bin = 3\n", "unknown field `bin`"),
        (
            "tolerance = { pi = -1.0 }\n",
            "tolerance.pi and tolerance.xi must lie in [0, 0.5], got pi = -1, xi = 0",
        ),
        (
            "png_dpi = 5000\n",
            "png_dpi must be 0 (no PNGs) or between 72 and 1200",
        ),
        (
            "png_dpi = 1\n",
            "png_dpi must be 0 (no PNGs) or between 72 and 1200",
        ),
    ] {
        let path = scratch.path().join("analysis.toml");
        std::fs::write(&path, settings).unwrap();
        let path = path.to_str().unwrap();
        let output = credit(&["analyze", "--run", out, "--config", path]);
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{settings}: {stderr}");
        assert!(
            stderr.contains(expected) && stderr.contains("analysis.toml"),
            "{settings}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

#[test]
fn a_sweep_checks_its_settings_before_training() {
    let scratch = tempfile::tempdir().unwrap();
    let bad = scratch.path().join("bad.toml");
    std::fs::write(&bad, "bins = 0\n").unwrap();
    let fine = scratch.path().join("fine.toml");
    std::fs::write(&fine, "bins = 10\n").unwrap();
    for (file, sizes, expected) in [
        (
            scratch.path().join("missing.toml"),
            "[784,32,10]",
            "missing.toml",
        ),
        (bad, "[784,32,10]", "bins must be between 1"),
        // A layer that no machine holds: the memory check of every run, before the first.
        (
            fine,
            "[784,1000000000,10]",
            "model.sizes = [784, 1000000000, 10] with train.batch_size = 100 need about",
        ),
    ] {
        let out = scratch.path().join("sweep");
        let output = credit(&[
            "sweep",
            "--config",
            "configs/smoke.toml",
            "--set",
            &format!("model.sizes={sizes}"),
            "--set",
            "data.train_size=500,1000",
            "--out",
            out.to_str().unwrap(),
            "--analysis-config",
            file.to_str().unwrap(),
        ]);
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains(expected), "{stderr}");
        assert!(!out.exists(), "nothing trained: {stderr}");
    }
}
