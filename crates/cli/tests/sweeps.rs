//! Sweeps as plans: the same arguments give the same plan; the local `--jobs` path runs
//! exactly the plan's runs; tasks by index run at once on one sweep folder and leave a valid
//! report; a task killed with SIGKILL resumes its run; `--status` says where runs stand; the
//! SLURM job script names every task.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{credit, metrics_without_seconds, repo, text};

fn spawn(args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_credit"))
        .args(args)
        .current_dir(repo())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("credit runs")
}

fn ok(output: &Output) -> String {
    assert!(
        output.status.success(),
        "{}{}",
        text(&output.stdout),
        text(&output.stderr)
    );
    text(&output.stdout)
}

/// Plans a two-setting smoke sweep (no baseline unless `baseline`) into `out`.
fn plan(out: &Path, epochs: usize, baseline: bool) -> String {
    let out = out.to_str().unwrap();
    let epochs = format!("train.epochs={epochs}");
    let mut args = vec![
        "sweep",
        "--config",
        "configs/smoke.toml",
        "--set",
        "data.train_size=500,1000",
        "--set",
        &epochs,
        "--set",
        "data.test_size=500",
        "--out",
        out,
        "--plan",
    ];
    if !baseline {
        args.push("--no-baseline");
    }
    ok(&credit(&args))
}

#[test]
fn the_same_arguments_give_the_same_plan_and_the_local_path_runs_exactly_it() {
    let scratch = tempfile::tempdir().unwrap();
    let (a, b) = (scratch.path().join("a"), scratch.path().join("b"));
    assert!(plan(&a, 1, true).contains("4 runs planned"));
    plan(&b, 1, true);
    let read = |dir: &Path| std::fs::read_to_string(dir.join("plan.json")).unwrap();
    assert_eq!(read(&a), read(&b));
    let planned: serde_json::Value = serde_json::from_str(&read(&a)).unwrap();
    let names: Vec<String> = planned["runs"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .map(|(i, run)| {
            assert_eq!(run["index"], i);
            run["name"].as_str().unwrap().to_string()
        })
        .collect();
    // Planning again in the same folder changes nothing; another sweep there is refused.
    plan(&a, 1, true);
    let other = credit(&[
        "sweep",
        "--config",
        "configs/smoke.toml",
        "--set",
        "data.train_size=700,900",
        "--out",
        a.to_str().unwrap(),
        "--plan",
    ]);
    assert!(text(&other.stderr).contains("holds the plan of another sweep"));

    let status = ok(&credit(&[
        "sweep",
        "--dir",
        a.to_str().unwrap(),
        "--status",
    ]));
    assert!(status.contains("4 runs: 4 pending"), "{status}");
    ok(&credit(&[
        "sweep",
        "--dir",
        a.to_str().unwrap(),
        "--jobs",
        "2",
    ]));
    let status = ok(&credit(&[
        "sweep",
        "--dir",
        a.to_str().unwrap(),
        "--status",
    ]));
    assert!(status.contains("4 runs: 4 done"), "{status}");
    // Exactly the plan's runs: one folder per run, complete, and nothing else trained.
    for name in &names {
        assert!(a.join(name).join("summary.json").is_file(), "{name}");
    }
    let mut trained = Vec::new();
    for entry in walk(&a) {
        if entry.ends_with("summary.json") {
            let run = entry.parent().unwrap().strip_prefix(&a).unwrap();
            trained.push(run.to_string_lossy().into_owned());
        }
    }
    trained.sort();
    let mut expected = names.clone();
    expected.sort();
    assert_eq!(trained, expected);
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().filter_map(|e| e.ok()) {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

#[test]
fn two_tasks_at_once_on_one_sweep_complete_and_leave_a_valid_report() {
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path().join("sweep");
    plan(&dir, 2, false);
    let d = dir.to_str().unwrap();
    let tasks = [
        spawn(&["sweep", "--dir", d, "--task", "0"]),
        spawn(&["sweep", "--dir", d, "--task", "1"]),
    ];
    for task in tasks {
        let output = task.wait_with_output().unwrap();
        ok(&output);
    }
    // The task that finished last found both complete and wrote the report.
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    for setting in ["data.train_size=500", "data.train_size=1000"] {
        assert!(html.contains(setting), "{setting}");
    }
    let summaries: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("sweep.json")).unwrap()).unwrap();
    assert_eq!(summaries.as_array().unwrap().len(), 2);
    // A task of a complete run has nothing to do; an index outside the plan is an error.
    assert!(ok(&credit(&["sweep", "--dir", d, "--task", "1"])).contains("already complete"));
    let outside = credit(&["sweep", "--dir", d, "--task", "2"]);
    assert!(
        text(&outside.stderr).contains("runs 0 to 1, not 2"),
        "{}",
        text(&outside.stderr)
    );
}

#[test]
fn reproduce_with_epochs_plans_the_2020_scripts_own_main() {
    // Their __main__: five runs of 200 epochs (credit plans both protocols, each with its
    // baseline).
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path().join("main");
    let said = ok(&credit(&[
        "reproduce",
        "--epochs",
        "200",
        "--seeds",
        "5",
        "--sizes",
        "",
        "--plan",
        "--out",
        dir.to_str().unwrap(),
    ]));
    assert!(said.contains("20 runs planned"), "{said}");
    let plan: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("plan.json")).unwrap()).unwrap();
    let runs = plan["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 20);
    assert!(runs.iter().all(|r| r["config"]["train"]["epochs"] == 200));
    let mut seeds: Vec<u64> = runs.iter().map(|r| r["seed"].as_u64().unwrap()).collect();
    seeds.sort();
    seeds.dedup();
    assert_eq!(seeds, [0, 1, 2, 3, 4]);
}

#[test]
fn the_entropy_preset_gives_the_authors_entropy_figure() {
    // The documented sweep of configs/mnist-entropy.toml, small: two training-set sizes,
    // two seeds, one epoch, 500 test images.
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path().join("entropy");
    ok(&credit(&[
        "sweep",
        "--config",
        "configs/mnist-entropy.toml",
        "--set",
        "data.train_size=500,1000",
        "--set",
        "train.epochs=1",
        "--set",
        "data.test_size=500",
        "--seeds",
        "2",
        "--no-baseline",
        "--out",
        dir.to_str().unwrap(),
    ]));
    // Four weight layers per setting, each with a mean and an sd over the two seeds.
    let csv = std::fs::read_to_string(dir.join("sweep.csv")).unwrap();
    let head: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let column = |name: &str| head.iter().position(|c| *c == name).unwrap();
    let (setting, seeds, layer, mean, sd) = (
        column("setting"),
        column("seeds"),
        column("layer"),
        column("entropy_mean"),
        column("entropy_sd"),
    );
    let rows: Vec<Vec<&str>> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    for size in ["data.train_size=500", "data.train_size=1000"] {
        let layers: Vec<&Vec<&str>> = rows.iter().filter(|r| r[setting] == size).collect();
        assert_eq!(
            layers.iter().map(|r| r[layer]).collect::<Vec<_>>(),
            ["1", "2", "3", "4"],
            "{size}"
        );
        for r in layers {
            assert_eq!(r[seeds], "2");
            let (m, s): (f64, f64) = (r[mean].parse().unwrap(), r[sd].parse().unwrap());
            assert!(m.is_finite() && s.is_finite() && s > 0.0, "{size}: {r:?}");
        }
    }
    let figure = std::fs::read_to_string(dir.join("entropy-by-layer.svg")).unwrap();
    for size in ["data.train_size=500", "data.train_size=1000"] {
        assert!(figure.contains(size), "the figure has a curve for {size}");
    }
}

#[test]
fn a_task_killed_with_sigkill_resumes_its_run_from_its_checkpoint() {
    let scratch = tempfile::tempdir().unwrap();
    let (killed, straight) = (
        scratch.path().join("killed"),
        scratch.path().join("straight"),
    );
    for dir in [&killed, &straight] {
        plan(dir, 30, false);
    }
    ok(&credit(&[
        "sweep",
        "--dir",
        straight.to_str().unwrap(),
        "--task",
        "0",
    ]));
    let run = |dir: &Path| {
        let planned: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("plan.json")).unwrap()).unwrap();
        dir.join(planned["runs"][0]["name"].as_str().unwrap())
    };
    let mut task = spawn(&["sweep", "--dir", killed.to_str().unwrap(), "--task", "0"]);
    let started = Instant::now();
    let checkpoints = run(&killed).join("checkpoint");
    while !std::fs::read_dir(&checkpoints).is_ok_and(|e| {
        e.filter_map(|e| e.ok())
            .any(|e| e.file_name().to_string_lossy().starts_with("state-"))
    }) {
        assert!(
            task.try_wait().unwrap().is_none(),
            "the task ended too soon"
        );
        assert!(started.elapsed() < Duration::from_secs(60));
        std::thread::sleep(Duration::from_millis(2));
    }
    task.kill().unwrap();
    task.wait().unwrap();
    let status = ok(&credit(&[
        "sweep",
        "--dir",
        killed.to_str().unwrap(),
        "--status",
    ]));
    assert!(status.contains("stopped at epoch"), "{status}");
    ok(&credit(&[
        "sweep",
        "--dir",
        killed.to_str().unwrap(),
        "--task",
        "0",
    ]));
    assert_eq!(
        metrics_without_seconds(&run(&killed)),
        metrics_without_seconds(&run(&straight))
    );
    assert!(run(&killed).join("analysis/analysis.json").is_file());
}

#[test]
fn the_slurm_script_runs_every_task_of_the_plan() {
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path().join("cluster");
    plan(&dir, 1, true);
    let d = dir.to_str().unwrap();
    let out = ok(&credit(&[
        "sweep",
        "--dir",
        d,
        "--slurm",
        "--partition",
        "debug",
        "--time",
        "00:10:00",
        "--cpus",
        "1",
        "--max-parallel",
        "2",
    ]));
    assert!(out.contains("(4 tasks)"), "{out}");
    let script = std::fs::read_to_string(dir.join("slurm.sbatch")).unwrap();
    for line in [
        "#SBATCH --array=0-3%2",
        "#SBATCH --requeue",
        "#SBATCH --partition=debug",
        "#SBATCH --time=00:10:00",
        "#SBATCH --cpus-per-task=1",
        "--task \"$SLURM_ARRAY_TASK_ID\" --backend flex",
    ] {
        assert!(script.contains(line), "{line}:\n{script}");
    }
    assert!(script.contains(&format!("#SBATCH --output={d}/slurm/task-%a.out")));
    let refused = credit(&["sweep", "--dir", d, "--slurm", "--partition", "a b"]);
    assert!(
        text(&refused.stderr).contains("--partition"),
        "{}",
        text(&refused.stderr)
    );
}
