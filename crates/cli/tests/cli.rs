//! The `credit` binary as a user runs it.

use std::path::Path;

mod common;
use common::{credit, text};

#[test]
fn train_then_eval_the_smoke_config() {
    let scratch = tempfile::tempdir().unwrap();
    let out = scratch.path().join("smoke");
    let out = out.to_str().unwrap();
    let trained = credit(&[
        "train",
        "--config",
        "configs/smoke.toml",
        "--out",
        out,
        "--set",
        "train.epochs=2",
    ]);
    let stdout = text(&trained.stdout);
    assert!(
        trained.status.success(),
        "{stdout}{}",
        text(&trained.stderr)
    );
    assert!(
        stdout.contains("epoch   1/2"),
        "one plain line per epoch: {stdout}"
    );
    assert!(stdout.contains("epoch   2/2"), "{stdout}");
    assert!(stdout.contains("on flex"), "names the backend: {stdout}");

    let evaluated = credit(&["eval", "--run", out, "--samples", "3", "--json"]);
    assert!(evaluated.status.success(), "{}", text(&evaluated.stderr));
    let report: serde_json::Value = serde_json::from_slice(&evaluated.stdout).unwrap();
    let accuracy = report["test_accuracy_mean_network_pct"].as_f64().unwrap();
    assert!(accuracy > 70.0, "mean network {accuracy}%");
    let samples = report["subnetworks"]["accuracies_pct"].as_array().unwrap();
    assert_eq!(samples.len(), 3);
    let ensemble = report["subnetworks"]["ensemble_pct"].as_f64().unwrap();
    assert!(ensemble > 70.0, "ensemble {ensemble}%");

    let analysed = credit(&["analyze", "--run", out]);
    let stdout = text(&analysed.stdout);
    assert!(analysed.status.success(), "{}", text(&analysed.stderr));
    assert!(stdout.contains("layer 1: very important"), "{stdout}");
    assert!(Path::new(out).join("analysis/report.html").is_file());

    let exported = credit(&["export", "--run", out, "--format", "npz", "--pruned"]);
    let stdout = text(&exported.stdout);
    assert!(exported.status.success(), "{}", text(&exported.stderr));
    assert!(stdout.contains("pruned network:"), "{stdout}");
    assert!(Path::new(out).join("pruned.npz").is_file());
}

#[test]
fn bad_input_is_a_clear_error_not_a_panic() {
    let cases: [(&[&str], &str); 4] = [
        (
            &[
                "train",
                "--config",
                "configs/smoke.toml",
                "--set",
                "optimizer.lr=-1",
            ],
            "optimizer.lr must be positive",
        ),
        (
            &[
                "train",
                "--config",
                "configs/smoke.toml",
                "--set",
                "train.epoch=3",
            ],
            "unknown field `epoch`",
        ),
        (
            &["train", "--config", "configs/missing.toml"],
            "configs/missing.toml",
        ),
        (
            &["eval", "--run", "runs/does-not-exist"],
            "runs/does-not-exist",
        ),
    ];
    for (args, expected) in cases {
        let output = credit(args);
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(
            stderr.contains(expected),
            "{args:?}: {stderr:?} should say {expected:?}"
        );
        assert!(!stderr.contains("panicked"), "{args:?} panicked: {stderr}");
    }
}

#[test]
fn a_sweep_trains_analyses_compares_and_resumes() {
    let scratch = tempfile::tempdir().unwrap();
    let out = scratch.path().join("sweep");
    let out = out.to_str().unwrap();
    let args = [
        "sweep",
        "--config",
        "configs/smoke.toml",
        "--set",
        "model.sizes=[784,16,10]",
        "--set",
        "data.train_size=500,1000",
        "--set",
        "train.epochs=2",
        "--out",
        out,
        "--jobs",
        "2",
    ];
    let first = credit(&args);
    let stdout = text(&first.stdout);
    assert!(first.status.success(), "{stdout}{}", text(&first.stderr));
    assert!(stdout.contains("4 to run (0 already complete)"), "{stdout}");
    let summaries: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(Path::new(out).join("sweep.json")).unwrap())
            .unwrap();
    let summaries = summaries.as_array().unwrap();
    assert_eq!(summaries.len(), 2);
    assert_eq!(summaries[1]["setting"], "data.train_size=1000");
    assert!(summaries[1]["deterministic_pct"]["mean"].as_f64().unwrap() > 50.0);
    let html = std::fs::read_to_string(Path::new(out).join("report.html")).unwrap();
    // The fixed model.sizes, whose value holds commas, is not what the figures are against.
    assert!(html.contains("against data.train_size"), "{html}");
    assert!(!html.contains("against model.sizes"));
    for figure in ["entropy-by-layer", "classes-by-layer", "accuracy"] {
        assert!(
            html.contains(&format!("<figure id=\"{figure}\" style=")),
            "{figure}"
        );
        for file in ["svg", "csv", "png"] {
            assert!(
                Path::new(out).join(format!("{figure}.{file}")).is_file(),
                "{figure}.{file}"
            );
        }
    }
    // One seed per setting: n shown, means without a spread.
    assert!(html.contains("n = 1 seed per setting"), "{html}");
    assert!(!html.contains("± 0.00"), "{html}");
    let classes = std::fs::read_to_string(Path::new(out).join("classes-by-layer.csv")).unwrap();
    assert!(
        classes.contains("\nLayer 2,"),
        "one panel per layer: {classes}"
    );

    let again = credit(&args);
    let stdout = text(&again.stdout);
    assert!(again.status.success());
    assert!(stdout.contains("0 to run (4 already complete)"), "{stdout}");
}
