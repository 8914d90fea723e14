//! `credit predict` and `credit eval`'s calibration and out-of-distribution scores, through
//! the binary on a smoke-trained run.

use std::path::{Path, PathBuf};
use std::process::Output;

use credit_data::{ImageSet, Pixels};

mod common;
use common::{credit, repo};

fn ok(output: Output) -> Vec<u8> {
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

/// Trains the smoke config into `out` with `overrides`.
fn train(out: &Path, overrides: &[&str]) {
    let mut args = vec!["train", "--config", "configs/smoke.toml"];
    args.extend(["--out", out.to_str().unwrap()]);
    for o in overrides {
        args.extend(["--set", o]);
    }
    ok(credit(&args));
}

fn json(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes).unwrap()
}

/// MNIST's test images, as committed.
fn mnist_test() -> ImageSet {
    credit_data::load_idx_dir(&repo().join("data/mnist"))
        .unwrap()
        .test
}

fn bytes(set: &ImageSet, i: usize) -> &[u8] {
    let Pixels::Bytes(all) = set.stored() else {
        panic!("MNIST is stored as bytes")
    };
    &all[i * 784..(i + 1) * 784]
}

/// The first `n` images of `set` as an IDX images file.
fn write_idx(path: &Path, set: &ImageSet, n: usize) {
    let mut file = vec![0u8, 0, 8, 3];
    for d in [n as u32, 28, 28] {
        file.extend(d.to_be_bytes());
    }
    for i in 0..n {
        file.extend(bytes(set, i));
    }
    std::fs::write(path, file).unwrap();
}

fn predict(run: &Path, input: &Path, extra: &[&str], out: &Path) -> serde_json::Value {
    let mut args = vec!["predict", "--run", run.to_str().unwrap()];
    args.extend(["--input", input.to_str().unwrap()]);
    args.extend(["--out", out.to_str().unwrap()]);
    args.extend(extra);
    ok(credit(&args));
    json(&std::fs::read(out).unwrap())
}

fn predicted(report: &serde_json::Value) -> Vec<u64> {
    report["predictions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["predicted"].as_u64().unwrap())
        .collect()
}

fn accuracy_pct(classes: &[u64], labels: &[u32]) -> f64 {
    let right = classes
        .iter()
        .zip(labels)
        .filter(|&(&c, &l)| c == u64::from(l))
        .count();
    100.0 * right as f64 / classes.len() as f64
}

#[test]
fn predict_agrees_with_eval_and_reads_pictures_like_idx() {
    let scratch = tempfile::tempdir().unwrap();
    let run = scratch.path().join("run");
    train(&run, &["data.test_size=100"]);
    let r = run.to_str().unwrap();
    let eval = json(&ok(credit(&[
        "eval",
        "--run",
        r,
        "--samples",
        "20",
        "--json",
    ])));
    let test = mnist_test();
    let labels = &test.labels()[..100];

    // The first 100 test images as an IDX file: the same sub-networks (same seed) as eval's.
    let idx = scratch.path().join("first100-idx3-ubyte");
    write_idx(&idx, &test, 100);
    let out = scratch.path().join("ensemble.json");
    let ensemble = predict(&run, &idx, &["--samples", "20"], &out);
    assert_eq!(ensemble["members"], 20);
    let classes = predicted(&ensemble);
    assert_eq!(classes.len(), 100);
    let expected = eval["subnetworks"]["ensemble_pct"].as_f64().unwrap();
    let got = accuracy_pct(&classes, labels);
    // Eval sums the members' f32 softmax on the device, predict averages in f64: a near tie
    // may fall the other way, nothing more.
    assert!(
        (got - expected).abs() <= 1.0,
        "predict's ensemble {got}% against eval's {expected}%"
    );
    let out = scratch.path().join("mean-network.json");
    let mean = predict(&run, &idx, &["--mode", "mean-network"], &out);
    assert_eq!(mean["members"], 1);
    let expected = eval["test_accuracy_mean_network_pct"].as_f64().unwrap();
    let got = accuracy_pct(&predicted(&mean), labels);
    assert!((got - expected).abs() <= 1.0, "{got}% against {expected}%");
    for p in mean["predictions"].as_array().unwrap() {
        let q = p;
        assert_eq!(q["mutual_information"], 0.0, "one member: no disagreement");
        assert_eq!(q["agreement"], 1.0);
    }
    for p in ensemble["predictions"].as_array().unwrap() {
        let q = p;
        let (h, e, mi) = (
            q["predictive_entropy"].as_f64().unwrap(),
            q["expected_entropy"].as_f64().unwrap(),
            q["mutual_information"].as_f64().unwrap(),
        );
        assert!((h - e - mi).abs() < 1e-9 && mi >= -1e-12 && h <= 10f64.ln() + 1e-9);
        let sum: f64 = q["probabilities"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .sum();
        assert!((sum - 1.0).abs() < 1e-5, "probabilities sum to {sum}");
    }

    // Three digits as PNG files (28 x 28, no resize): the same classes and probabilities as
    // the same digits from IDX.
    let pictures = scratch.path().join("pictures");
    std::fs::create_dir(&pictures).unwrap();
    for i in 0..3 {
        image::GrayImage::from_raw(28, 28, bytes(&test, i).to_vec())
            .unwrap()
            .save(pictures.join(format!("digit{i}.png")))
            .unwrap();
    }
    let out = scratch.path().join("pictures.json");
    let from_png = predict(&run, &pictures, &["--samples", "20"], &out);
    let rows = from_png["predictions"].as_array().unwrap();
    assert_eq!(rows.len(), 3);
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(row["input"], format!("digit{i}.png"));
        let idx_row = &ensemble["predictions"][i];
        assert_eq!(row["predicted"], idx_row["predicted"]);
        for (a, b) in row["probabilities"]
            .as_array()
            .unwrap()
            .iter()
            .zip(idx_row["probabilities"].as_array().unwrap())
        {
            assert!((a.as_f64().unwrap() - b.as_f64().unwrap()).abs() < 1e-6);
        }
    }

    // CSV: a header and one row per input with its probabilities.
    let csv = scratch.path().join("pictures.csv");
    ok(credit(&[
        "predict",
        "--run",
        r,
        "--input",
        pictures.to_str().unwrap(),
        "--out",
        csv.to_str().unwrap(),
    ]));
    let text = std::fs::read_to_string(&csv).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    // Pictures carry no labels: no label column.
    assert!(lines[0].starts_with("input,predicted,predictive_entropy"));
    assert_eq!(lines[1].split(',').count(), 6 + 10);

    // Without --out: a table naming each input.
    let table = String::from_utf8(ok(credit(&[
        "predict",
        "--run",
        r,
        "--input",
        pictures.to_str().unwrap(),
    ])))
    .unwrap();
    assert!(table.contains("digit2.png"), "{table}");
}

#[test]
fn bad_predict_inputs_are_errors_naming_the_file() {
    let scratch = tempfile::tempdir().unwrap();
    let run = scratch.path().join("run");
    train(&run, &["train.epochs=1", "data.test_size=100"]);
    let r = run.to_str().unwrap();
    let empty = scratch.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let text_file = scratch.path().join("notes.png");
    std::fs::write(&text_file, "not a picture").unwrap();
    let wide = scratch.path().join("wide.png");
    image::GrayImage::new(30, 20).save(&wide).unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--input", "no/such/file.npy"], "no/such/file.npy"),
        (vec!["--input", empty.to_str().unwrap()], "neither PNG"),
        (vec!["--input", text_file.to_str().unwrap()], "notes.png"),
        (
            vec!["--input", "data/mnist", "--samples", "0"],
            "--samples must be between 1 and",
        ),
        (
            vec!["--input", "data/mnist", "--out", "p.txt"],
            "must end in .csv or .json",
        ),
    ];
    for (extra, expected) in cases {
        let mut args = vec!["predict", "--run", r];
        args.extend(&extra);
        let output = credit(&args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{extra:?}: {stderr}");
        assert!(stderr.contains(expected), "{extra:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    // A picture of another shape is resized, not refused.
    ok(credit(&[
        "predict",
        "--run",
        r,
        "--input",
        wide.to_str().unwrap(),
    ]));
}

/// Where Debian's `dataset-fashion-mnist` puts Fashion-MNIST (or `CREDIT_FASHION_MNIST`).
fn fashion_mnist() -> PathBuf {
    let dir = std::env::var_os("CREDIT_FASHION_MNIST").map_or_else(
        || PathBuf::from("/usr/share/datasets/fashion-mnist"),
        PathBuf::from,
    );
    assert!(
        dir.join("t10k-images-idx3-ubyte.gz").is_file(),
        "this test needs Fashion-MNIST in {}: apt-get install dataset-fashion-mnist (or set CREDIT_FASHION_MNIST)",
        dir.display()
    );
    dir
}

#[test]
fn mutual_information_tells_fashion_from_mnist() {
    let fashion = fashion_mnist();
    let scratch = tempfile::tempdir().unwrap();
    let run = scratch.path().join("run");
    train(&run, &[]);
    let baseline = scratch.path().join("baseline");
    train(&baseline, &["model.kind=\"deterministic\""]);
    let eval = json(&ok(credit(&[
        "eval",
        "--run",
        run.to_str().unwrap(),
        "--samples",
        "20",
        "--ood",
        fashion.to_str().unwrap(),
        "--baseline",
        baseline.to_str().unwrap(),
        "--json",
    ])));
    let ood = &eval["ood"];
    assert_eq!(ood["images"], 10_000);
    let auroc = |report: &serde_json::Value, score: &str| {
        report["scores"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["score"] == score)
            .unwrap_or_else(|| panic!("no {score} in {report}"))["auroc"]
            .as_f64()
            .unwrap()
    };
    // Smoke config, seeds 0-9 (3 epochs, 20 sub-networks): AUROC of mutual information
    // 0.57-0.85 (mean 0.77), of predictive entropy 0.47-0.71, MI above entropy in all ten.
    let mi = auroc(ood, "mutual information");
    let entropy = auroc(ood, "predictive entropy");
    assert!(mi > 0.55, "AUROC of mutual information {mi}");
    assert!(mi > entropy, "mutual information {mi}, entropy {entropy}");
    // The calibration of every mode, then the baseline's max-softmax score beside.
    let modes: Vec<&str> = eval["calibration"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["mode"].as_str().unwrap())
        .collect();
    assert_eq!(
        modes,
        [
            "mean-field",
            "mean network",
            "one sampled network",
            "20-ensemble"
        ]
    );
    let base = &eval["baseline"];
    assert_eq!(base["calibration"][0]["mode"], "network");
    let softmax = auroc(&base["ood"], "max-softmax");
    assert!((0.0..=1.0).contains(&softmax));
    assert!(
        base["ood"]["scores"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["score"] != "mutual information"),
        "one network has no disagreement to measure"
    );
}
