//! Helpers shared by the tests of the `credit` binary.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root, where the binary runs (so that `configs/` and `data/` resolve).
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs `credit` with `args` in the repository root.
pub fn credit(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_credit"))
        .args(args)
        .current_dir(repo())
        .output()
        .expect("credit runs")
}

/// Output bytes as text.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The rows of `run`'s `metrics.csv` without its wall-clock column (`train_seconds`), which
/// no two runs share.
pub fn metrics_without_seconds(run: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    let header: Vec<&str> = text.lines().next().unwrap().split(',').collect();
    let seconds = header
        .iter()
        .position(|&c| c == "train_seconds")
        .expect("metrics.csv has train_seconds");
    text.lines()
        .map(|line| {
            let mut fields: Vec<&str> = line.split(',').collect();
            fields.remove(seconds);
            fields.join(",")
        })
        .collect()
}
