//! No command throws a run away or says something untrue about it: runs without their
//! checkpoints, output paths pointed at a run's own files, damaged final models, sizes beyond
//! the data, seeds of analyses, true labels in predictions, sweeps and their plans, analysis
//! settings. Every case through the binary, as a user meets it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

mod common;
use common::{credit, metrics_without_seconds, repo, text};

/// A finished smoke run of `epochs` epochs (seed 1) in `dir/name`.
fn trained(dir: &Path, name: &str, epochs: usize, extra: &[&str]) -> PathBuf {
    let out = dir.join(name);
    let epochs = format!("train.epochs={epochs}");
    let mut args = vec![
        "train",
        "--config",
        "configs/smoke.toml",
        "--out",
        out.to_str().unwrap(),
        "--set",
        &epochs,
        "--set",
        "data.train_size=500",
        "--set",
        "data.test_size=500",
    ];
    args.extend(extra);
    let output = credit(&args);
    assert!(output.status.success(), "{}", all(&output));
    out
}

fn all(output: &Output) -> String {
    format!("{}{}", text(&output.stdout), text(&output.stderr))
}

/// Runs `args`, expects a failure (exit 1, no panic) whose output contains every one of
/// `expected`, and returns the output.
fn refused<S: AsRef<str>>(args: &[S], expected: &[&str]) -> String {
    let args: Vec<&str> = args.iter().map(AsRef::as_ref).collect();
    let output = credit(&args);
    let said = all(&output);
    assert_eq!(output.status.code(), Some(1), "{args:?}: {said}");
    assert!(!said.contains("panicked"), "{args:?}: {said}");
    for e in expected {
        assert!(said.contains(e), "{args:?} should say {e:?}: {said}");
    }
    said
}

/// The arguments as owned strings.
fn owned(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| a.to_string()).collect()
}

/// `credit train --out RUN --resume --set train.epochs=EPOCHS`.
fn resume_to(run: &Path, epochs: usize) -> Vec<String> {
    let epochs = format!("train.epochs={epochs}");
    owned(&["train", "--out", s(run), "--resume", "--set", &epochs])
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The files training writes, as bytes.
fn run_files(run: &Path) -> Vec<(String, Vec<u8>)> {
    ["model.bpk", "metrics.csv", "summary.json", "config.toml"]
        .iter()
        .map(|f| (f.to_string(), read(&run.join(f))))
        .collect()
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn a_finished_run_without_its_checkpoints_is_not_trained_again_from_scratch() {
    let scratch = tempfile::tempdir().unwrap();
    let run = trained(scratch.path(), "r", 2, &[]);
    let before = run_files(&run);
    // The checkpoint folder deleted, then emptied: both refused, nothing changed.
    for empty in [false, true] {
        let _ = std::fs::remove_dir_all(run.join("checkpoint"));
        if empty {
            std::fs::create_dir(run.join("checkpoint")).unwrap();
        }
        refused(
            &resume_to(&run, 3),
            &[
                "model.bpk",
                "epochs 1 to 2 again",
                "--from-final-model",
                "no intact checkpoint",
            ],
        );
        assert_eq!(run_files(&run), before, "the run is untouched");
    }
    // Asked for explicitly, the final model goes on with a fresh optimizer: under the
    // smoke config's 2020 protocol (AdamW restarted every epoch) exactly as an uninterrupted
    // 3-epoch run.
    let resumed = credit(&[
        "train",
        "--out",
        s(&run),
        "--resume",
        "--from-final-model",
        "--set",
        "train.epochs=3",
    ]);
    let said = all(&resumed);
    assert!(resumed.status.success(), "{said}");
    assert!(said.contains("fresh optimizer state"), "{said}");
    let straight = trained(scratch.path(), "straight", 3, &[]);
    assert_eq!(
        metrics_without_seconds(&run),
        metrics_without_seconds(&straight)
    );
    for r in [&run, &straight] {
        let out = r.join("p.npz");
        let exported = credit(&["export", "--run", s(r), "--format", "npz", "--out", s(&out)]);
        assert!(exported.status.success(), "{}", all(&exported));
    }
    assert_eq!(read(&run.join("p.npz")), read(&straight.join("p.npz")));
    // With the checkpoint of its last epoch back, the optimizer state is kept: refused.
    refused(
        &["train", "--out", s(&run), "--resume", "--from-final-model"],
        &[
            "intact checkpoint of epoch 3",
            "continue it with plain --resume",
        ],
    );
}

#[test]
fn a_fallback_to_an_older_checkpoint_never_replaces_a_final_model_and_names_what_it_drops() {
    let scratch = tempfile::tempdir().unwrap();
    let run = trained(scratch.path(), "r", 3, &[]);
    let before = run_files(&run);
    // The newest checkpoint damaged: the older one would drop epoch 3 of a finished run.
    std::fs::write(run.join("checkpoint/model-3.bpk"), b"").unwrap();
    refused(
        &resume_to(&run, 4),
        &[
            "epochs 3 to 3 again",
            "replace the final model",
            "--from-final-model",
        ],
    );
    assert_eq!(run_files(&run), before);
    // An unfinished run (its final files gone, as after a kill) falls back, saying so.
    std::fs::remove_file(run.join("model.bpk")).unwrap();
    std::fs::remove_file(run.join("summary.json")).unwrap();
    let resumed = credit(&["train", "--out", s(&run), "--resume"]);
    let said = all(&resumed);
    assert!(resumed.status.success(), "{said}");
    assert!(
        said.contains(
            "epochs 3 to 3 (their checkpoints are damaged) are dropped and trained again"
        ),
        "{said}"
    );
}

#[test]
fn no_command_writes_over_a_runs_own_files_or_its_inputs() {
    let scratch = tempfile::tempdir().unwrap();
    let run = trained(scratch.path(), "r", 1, &[]);
    let other = trained(scratch.path(), "r2", 1, &[]);
    let before = run_files(&run);
    let before_other = run_files(&other);
    std::os::unix::fs::symlink(run.join("model.bpk"), scratch.path().join("link.npz")).unwrap();
    let inside = |f: &str| run.join(f).to_str().unwrap().to_string();
    let beside = |f: &str| scratch.path().join(f).to_str().unwrap().to_string();
    let via_dots = format!("{}/../r/summary.json", s(&run));
    let export = |format: &str, out: String| {
        owned(&[
            "export",
            "--run",
            s(&run),
            "--format",
            format,
            "--out",
            &out,
        ])
    };
    let predict = |out: String| {
        owned(&[
            "predict",
            "--run",
            s(&run),
            "--input",
            "data/mnist",
            "--out",
            &out,
        ])
    };
    let bench = |json: String| {
        owned(&[
            "bench",
            "--config",
            "configs/smoke.toml",
            "--epochs",
            "1",
            "--json",
            &json,
        ])
    };
    let analyze = |out: String| owned(&["analyze", "--run", s(&run), "--out", &out]);
    let cases: Vec<(Vec<String>, &str)> = vec![
        (export("npz", inside("model.bpk")), "must end in .npz"),
        (
            export("safetensors", inside("config.toml")),
            "must end in .safetensors",
        ),
        (export("npz", beside("x.safetensors")), "must end in .npz"),
        (
            export("npz", beside("link.npz")),
            "would overwrite model.bpk of the run",
        ),
        (
            export("npz", inside("checkpoint/x.npz")),
            "would overwrite checkpoint of the run",
        ),
        (
            predict(inside("summary.json")),
            "would overwrite summary.json of the run",
        ),
        (
            predict(inside("metrics.csv")),
            "would overwrite metrics.csv of the run",
        ),
        (predict(via_dots), "would overwrite summary.json of the run"),
        (
            bench(s(&other.join("model.bpk")).to_string()),
            "must end in .json",
        ),
        (
            bench(s(&other.join("summary.json")).to_string()),
            "would overwrite summary.json of the run",
        ),
        (analyze(s(&other).to_string()), "is a run folder"),
        (
            analyze(inside("checkpoint")),
            "would overwrite checkpoint of the run",
        ),
    ];
    for (args, expected) in &cases {
        refused(args, &[expected]);
    }
    // A new run inside a run's own folders.
    refused(
        &[
            "train",
            "--config",
            "configs/smoke.toml",
            "--out",
            &inside("checkpoint/new"),
        ],
        &["would overwrite checkpoint of the run"],
    );
    // A picture folder's own file as --out: the input is not overwritten.
    let input = scratch.path().join("inputs.csv");
    std::fs::write(&input, "keep").unwrap();
    refused(
        &[
            "predict",
            "--run",
            s(&run),
            "--input",
            s(&input),
            "--out",
            s(&input),
        ],
        &["own input"],
    );
    assert_eq!(read(&input), b"keep");
    assert_eq!(run_files(&run), before);
    assert_eq!(run_files(&other), before_other);
    // Outside the run's own files, writing is fine.
    let fine = credit(&[
        "export",
        "--run",
        s(&run),
        "--format",
        "npz",
        "--out",
        &inside("weights.npz"),
    ]);
    assert!(fine.status.success(), "{}", all(&fine));
}

#[test]
fn a_missing_or_broken_final_model_is_named_as_it_is() {
    let scratch = tempfile::tempdir().unwrap();
    let run = trained(scratch.path(), "r", 2, &[]);
    let model = run.join("model.bpk");
    let original = read(&model);
    let commands: [&[&str]; 3] = [
        &["analyze", "--run", s(&run)],
        &["export", "--run", s(&run)],
        &["eval", "--run", s(&run), "--samples", "1"],
    ];
    // Deleted (training had finished: summary.json is there).
    std::fs::remove_file(&model).unwrap();
    for args in commands {
        let said = refused(args, &["model.bpk is missing", "finished after epoch 2"]);
        assert!(!said.contains("in use by"), "{said}");
        assert!(!said.contains("training stopped"), "{said}");
    }
    // A directory.
    std::fs::create_dir(&model).unwrap();
    for args in commands {
        let said = refused(args, &["model.bpk is a directory"]);
        assert!(
            !said.contains("in use by") && !said.contains("training stopped"),
            "{said}"
        );
    }
    std::fs::remove_dir(&model).unwrap();
    // A symbolic link in a loop.
    std::os::unix::fs::symlink(&model, &model).unwrap();
    for args in commands {
        let said = refused(args, &["model.bpk", "symbolic link"]);
        assert!(
            !said.contains("in use by") && !said.contains("training stopped"),
            "{said}"
        );
    }
    std::fs::remove_file(&model).unwrap();
    std::fs::write(&model, &original).unwrap();
    let fine = credit(&["eval", "--run", s(&run), "--samples", "1"]);
    assert!(fine.status.success(), "{}", all(&fine));
}

#[test]
fn sizes_beyond_the_data_are_refused_and_the_counts_used_are_recorded() {
    let scratch = tempfile::tempdir().unwrap();
    let out = scratch.path().join("r");
    for (set, expected) in [
        (
            "data.train_size=100000",
            "data.train_size = 100000, but data/mnist holds 60000 training images",
        ),
        (
            "data.test_size=20000",
            "data.test_size = 20000, but data/mnist holds 10000 test images",
        ),
    ] {
        refused(
            &[
                "train",
                "--config",
                "configs/smoke.toml",
                "--out",
                s(&out),
                "--set",
                set,
            ],
            &[expected],
        );
        assert!(!out.exists(), "nothing written");
    }
    refused(
        &[
            "reproduce",
            "--out",
            s(&scratch.path().join("rep")),
            "--sizes",
            "100000",
            "--seeds",
            "1",
            "--plan",
        ],
        &["data.train_size = 100000, but"],
    );
    let run = trained(scratch.path(), "ok", 1, &[]);
    let summary: serde_json::Value =
        serde_json::from_slice(&read(&run.join("summary.json"))).unwrap();
    assert_eq!(summary["train_images"], 500);
    assert_eq!(summary["test_images"], 500);
}

#[test]
fn one_run_has_one_mean_field_accuracy_and_its_report_names_its_seeds() {
    let scratch = tempfile::tempdir().unwrap();
    // The smoke config's seed is 1.
    let run = trained(scratch.path(), "r", 1, &[]);
    let summary: serde_json::Value =
        serde_json::from_slice(&read(&run.join("summary.json"))).unwrap();
    let analysed = credit(&["analyze", "--run", s(&run), "--config", "/dev/null"]);
    assert!(analysed.status.success(), "{}", all(&analysed));
    let analysis: serde_json::Value =
        serde_json::from_slice(&read(&run.join("analysis/analysis.json"))).unwrap();
    assert_eq!(analysis["config"]["seed"], 1);
    assert_eq!(analysis["run_seed"], 1);
    assert_eq!(
        analysis["accuracy"]["mean_field_pct"],
        summary["test_accuracy_mean_field_pct"]
    );
    let evaluated = credit(&["eval", "--run", s(&run), "--samples", "1", "--json"]);
    let eval: serde_json::Value = serde_json::from_slice(&evaluated.stdout).unwrap();
    assert_eq!(
        eval["test_accuracy_mean_field_pct"],
        summary["test_accuracy_mean_field_pct"]
    );
    let html = String::from_utf8(read(&run.join("analysis/report.html"))).unwrap();
    assert!(
        html.contains("run seed 1, also the analysis&#39;s seed")
            || html.contains("run seed 1, also the analysis's seed"),
        "{html}"
    );
    // Another analysis seed is said as such.
    let config = scratch.path().join("a.toml");
    std::fs::write(&config, "seed = 7\nsamples = 2\nrepetitions = 2\n").unwrap();
    let analysed = credit(&[
        "analyze",
        "--run",
        s(&run),
        "--config",
        s(&config),
        "--out",
        s(&scratch.path().join("a7")),
    ]);
    assert!(analysed.status.success(), "{}", all(&analysed));
    let html = String::from_utf8(read(&scratch.path().join("a7/report.html"))).unwrap();
    assert!(html.contains("run seed 1; analysis seed 7"), "{html}");
}

#[test]
fn predictions_carry_the_true_label_only_where_the_input_has_one() {
    let scratch = tempfile::tempdir().unwrap();
    // Tested on all 10,000 test images, as predict reads them from the IDX folder.
    let run = trained(scratch.path(), "r", 2, &["--set", "data.test_size=0"]);
    // An IDX folder: its test images and labels.
    let out = scratch.path().join("p.csv");
    let predicted = credit(&[
        "predict",
        "--run",
        s(&run),
        "--input",
        "data/mnist",
        "--samples",
        "2",
        "--out",
        s(&out),
    ]);
    assert!(predicted.status.success(), "{}", all(&predicted));
    let csv = String::from_utf8(read(&out)).unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(&header[..3], ["input", "predicted", "label"]);
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 10_000);
    // The first MNIST test labels are 7, 2, 1, 0, 4.
    let labels: Vec<&str> = rows.iter().take(5).map(|r| r[2]).collect();
    assert_eq!(labels, ["7", "2", "1", "0", "4"]);
    // Accuracy against those labels is the run's own, as eval gives it (same members).
    let right = rows.iter().filter(|r| r[1] == r[2]).count();
    let accuracy = 100.0 * right as f64 / rows.len() as f64;
    let evaluated = credit(&["eval", "--run", s(&run), "--samples", "2", "--json"]);
    let eval: serde_json::Value = serde_json::from_slice(&evaluated.stdout).unwrap();
    let ensemble = eval["subnetworks"]["ensemble_pct"].as_f64().unwrap();
    // Eval sums f32 softmax outputs on the device, predict averages in f64: near ties only.
    assert!(
        (accuracy - ensemble).abs() <= 0.2,
        "{accuracy}% against eval's {ensemble}%"
    );
    assert!(
        accuracy < 99.0,
        "not the 100% of predicted against predicted"
    );
    // The IDX images file alone finds its labels beside it; the table gives the accuracy.
    let table = credit(&[
        "predict",
        "--run",
        s(&run),
        "--input",
        "data/mnist/t10k-images-idx3-ubyte.gz",
        "--mode",
        "mean-network",
    ]);
    let said = text(&table.stdout);
    assert!(table.status.success(), "{}", all(&table));
    let last = said.lines().last().unwrap();
    let mean_network = eval["test_accuracy_mean_network_pct"].as_f64().unwrap();
    assert!(
        last.ends_with(&format!("predicted as labelled ({mean_network:.2}%)")),
        "{last} against eval's mean network {mean_network}"
    );
    // Pictures carry no label: no label column.
    let out = scratch.path().join("digits.csv");
    let predicted = credit(&[
        "predict",
        "--run",
        s(&run),
        "--input",
        "examples/digits",
        "--invert",
        "--samples",
        "2",
        "--out",
        s(&out),
    ]);
    assert!(predicted.status.success(), "{}", all(&predicted));
    let csv = String::from_utf8(read(&out)).unwrap();
    let header = csv.lines().next().unwrap();
    assert!(
        header.starts_with("input,predicted,predictive_entropy"),
        "{header}"
    );
}

#[test]
fn analysis_settings_out_of_order_are_refused_before_any_work() {
    let scratch = tempfile::tempdir().unwrap();
    let run = trained(scratch.path(), "r", 1, &[]);
    for (fractions, expected) in [
        ("[0.5, 0.1]", "0.5 before 0.1"),
        ("[1.0, 0.0]", "1 before 0"),
        ("[0.0, 0.5, 0.5]", "0.5 twice: 0.5"),
    ] {
        let config = scratch.path().join("a.toml");
        std::fs::write(&config, format!("fractions = {fractions}\n")).unwrap();
        refused(
            &["analyze", "--run", s(&run), "--config", s(&config)],
            &["fractions must be increasing", expected, "a.toml"],
        );
        assert!(!run.join("analysis").exists(), "no work was done");
        assert_eq!(read(&run.join(".lock")), b"", "the lock names nobody");
    }
}

/// A two-run sweep plan (no baseline) in `dir`.
fn sweep_plan(dir: &Path) {
    let output = credit(&[
        "sweep",
        "--config",
        "configs/smoke.toml",
        "--set",
        "data.train_size=300,400",
        "--set",
        "data.test_size=300",
        "--set",
        "train.epochs=1",
        "--no-baseline",
        "--out",
        s(dir),
        "--plan",
    ]);
    assert!(output.status.success(), "{}", all(&output));
}

#[test]
fn sweeps_refuse_what_they_would_ignore_duplicates_and_edited_plans() {
    let scratch = tempfile::tempdir().unwrap();
    // A value twice, literally or as the same number.
    for set in ["data.train_size=500,500", "optimizer.lr=0.01,0.010"] {
        refused(
            &[
                "sweep",
                "--config",
                "configs/smoke.toml",
                "--set",
                set,
                "--out",
                s(&scratch.path().join("dup")),
                "--plan",
            ],
            &["would train the same configuration", "list each value once"],
        );
    }
    let dir = scratch.path().join("s");
    sweep_plan(&dir);
    // Options that would change the plan of an existing sweep are refused, not ignored.
    for extra in [
        &["--seeds", "5"][..],
        &["--set", "train.epochs=2"],
        &["--no-baseline"],
        &["--analysis-config", "bad.toml"],
        &["--out", "elsewhere"],
    ] {
        let mut args = vec!["sweep", "--dir", s(&dir)];
        args.extend(extra);
        let output = credit(&args);
        assert_eq!(output.status.code(), Some(2), "{extra:?}: {}", all(&output));
        assert!(
            text(&output.stderr).contains("cannot be used with"),
            "{extra:?}: {}",
            all(&output)
        );
    }
    let ran = credit(&["sweep", "--dir", s(&dir)]);
    assert!(ran.status.success(), "{}", all(&ran));
    // The plan edited after its runs trained: another kind, another epoch count.
    let plan_path = dir.join("plan.json");
    let original = read(&plan_path);
    let mut plan: serde_json::Value = serde_json::from_slice(&original).unwrap();
    plan["runs"][0]["kind"] = "deterministic".into();
    std::fs::write(&plan_path, serde_json::to_vec(&plan).unwrap()).unwrap();
    refused(
        &["sweep", "--dir", s(&dir), "--report"],
        &["run 0", "kind (deterministic)", "model.kind (spike-slab)"],
    );
    let mut plan: serde_json::Value = serde_json::from_slice(&original).unwrap();
    plan["runs"][1]["config"]["train"]["epochs"] = 3.into();
    std::fs::write(&plan_path, serde_json::to_vec(&plan).unwrap()).unwrap();
    refused(
        &["sweep", "--dir", s(&dir), "--status"],
        &["run 1", "train.epochs (plan 3, run 1)", "restore plan.json"],
    );
    std::fs::write(&plan_path, &original).unwrap();
    let report = credit(&["sweep", "--dir", s(&dir), "--report"]);
    assert!(report.status.success(), "{}", all(&report));
}

#[test]
fn two_sweeps_of_one_folder_at_once_are_one_too_many() {
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path().join("s");
    sweep_plan(&dir);
    let first = Command::new(env!("CARGO_BIN_EXE_credit"))
        .args(["sweep", "--dir", s(&dir)])
        .current_dir(repo())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the first holds the sweep's lock (its first log appears).
    let started = std::time::Instant::now();
    while !dir.join("logs/0.log").exists() {
        assert!(started.elapsed().as_secs() < 60, "the first sweep started");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let second = credit(&["sweep", "--dir", s(&dir)]);
    let first = first.wait_with_output().unwrap();
    assert!(first.status.success(), "{}", all(&first));
    let said = all(&second);
    assert_eq!(second.status.code(), Some(1), "{said}");
    assert!(said.contains("is in use by `credit sweep`"), "{said}");
    assert!(!said.contains("FAILED"), "{said}");
    let status = credit(&["sweep", "--dir", s(&dir), "--status"]);
    assert!(
        text(&status.stdout).contains("2 runs: 2 done"),
        "{}",
        all(&status)
    );
}

#[test]
fn a_reproduction_of_another_budget_is_shown_not_compared() {
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path().join("rep");
    let quick = scratch.path().join("quick.toml");
    std::fs::write(
        &quick,
        "samples = 2\nrepetitions = 1\nfractions = [0.0, 1.0]\nentropy_samples = 2\n",
    )
    .unwrap();
    let ran = credit(&[
        "reproduce",
        "--out",
        s(&dir),
        "--sizes",
        "",
        "--seeds",
        "1",
        "--set",
        "train.epochs=1",
        "--set",
        "data.test_size=500",
        "--analysis-config",
        s(&quick),
    ]);
    assert!(ran.status.success(), "{}", all(&ran));
    let said = text(&ran.stdout);
    assert!(
        said.contains("every run trained with train.epochs=1 data.test_size=500"),
        "{said}"
    );
    assert!(
        said.contains("not compared: credit's runs trained 1 epochs, the authors' 100"),
        "{said}"
    );
    assert!(
        !said.contains(" sd\n"),
        "no difference in sds is given: {said}"
    );
    let report: serde_json::Value =
        serde_json::from_slice(&read(&dir.join("reproduce.json"))).unwrap();
    for protocol in report["protocols"].as_array().unwrap() {
        for row in protocol["rows"].as_array().unwrap() {
            assert!(row["difference_in_pooled_sd"].is_null(), "{row}");
        }
    }
    let html = String::from_utf8(read(&dir.join("report.html"))).unwrap();
    assert!(html.contains("n = 1, no sd"), "{html}");
    assert!(html.contains("Every run was trained with"), "{html}");
}
