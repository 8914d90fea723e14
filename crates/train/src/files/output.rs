//! Where a command may write what it makes (`--out`, `--json`): never over a run's or a
//! sweep's own files, nor over the command's inputs, and only with the extension of its
//! format. Checked before any work, on the path as the file system resolves it (symbolic
//! links followed, `..` removed), so that `R/../R/model.bpk` or a link to it is refused too.

use std::path::{Component, Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::lock::LOCK_FILE;
use crate::run::{CHECKPOINT_DIR, CONFIG_FILE, METRICS_FILE, MODEL_FILE, SUMMARY_FILE};

/// The plan of a sweep folder (`credit sweep`, `credit reproduce`).
pub const SWEEP_PLAN_FILE: &str = "plan.json";

/// What only training writes in a run folder, by first path component below it.
const RUN_OWN: [&str; 7] = [
    CONFIG_FILE,
    MODEL_FILE,
    METRICS_FILE,
    SUMMARY_FILE,
    LOCK_FILE,
    CHECKPOINT_DIR,
    "task-error.txt",
];

/// What only the sweep writes in a sweep folder, by first path component below it.
const SWEEP_OWN: [&str; 4] = [SWEEP_PLAN_FILE, LOCK_FILE, "logs", "slurm"];

/// Checks that `path`, given as `flag` (e.g. `--out`), may receive a new file: its
/// extension is one of `extensions` (lower case, without the dot; none: any), it is not a
/// directory, and it is none of `inputs` and no file of a run or sweep folder that only
/// training or the sweep writes (`config.toml`, `model.bpk`, `metrics.csv`, `summary.json`,
/// `.lock`, `checkpoint/...`, `plan.json`, `logs/...`), of any run.
///
/// # Errors
/// Naming the flag, the path and what it would overwrite.
pub fn check_output_file(
    path: &Path,
    flag: &str,
    extensions: &[&str],
    inputs: &[&Path],
) -> Result<()> {
    let shown = path.display();
    if !extensions.is_empty() {
        let extension = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        if !extension
            .as_deref()
            .is_some_and(|e| extensions.contains(&e))
        {
            let wanted: Vec<String> = extensions.iter().map(|e| format!(".{e}")).collect();
            bail!(
                "{flag} {shown}: the file must end in {}",
                wanted.join(" or ")
            );
        }
    }
    let resolved = resolve(path).with_context(|| format!("{flag} {shown}"))?;
    if resolved.is_dir() {
        bail!("{flag} {shown} is a directory; name a file");
    }
    for input in inputs {
        if let Ok(input) = resolve(input)
            && input == resolved
        {
            bail!(
                "{flag} {shown} is the command's own input {}: write elsewhere",
                input.display()
            );
        }
    }
    check_not_owned(&resolved, path, flag)
}

/// Checks that the folder `path`, given as `flag`, may receive a command's files (an
/// analysis): it is no run or sweep folder itself, and inside none of their own files or
/// folders (see [`check_output_file`]).
///
/// # Errors
/// Naming the flag, the path and the run or sweep it belongs to.
pub fn check_output_dir(path: &Path, flag: &str) -> Result<()> {
    let shown = path.display();
    let resolved = resolve(path).with_context(|| format!("{flag} {shown}"))?;
    if resolved.exists() && !resolved.is_dir() {
        bail!("{flag} {shown} is a file; name a folder");
    }
    if let Some(kind) = folder_kind(&resolved) {
        bail!(
            "{flag} {shown} is a {kind} folder: its files would mix with the {kind}'s own; name a folder inside it, e.g. {}",
            path.join("analysis").display()
        );
    }
    check_not_owned(&resolved, path, flag)
}

/// Fails if `resolved` lies below a run or sweep folder in one of its own entries.
fn check_not_owned(resolved: &Path, path: &Path, flag: &str) -> Result<()> {
    for folder in resolved.ancestors().skip(1) {
        let Some(kind) = folder_kind(folder) else {
            continue;
        };
        let own: &[&str] = if kind == "run" { &RUN_OWN } else { &SWEEP_OWN };
        let below = resolved.strip_prefix(folder).unwrap_or(resolved);
        let first = below.components().next().and_then(|c| match c {
            Component::Normal(name) => name.to_str(),
            _ => None,
        });
        if let Some(first) = first.filter(|f| own.contains(f)) {
            bail!(
                "{flag} {} would overwrite {first} of the {kind} in {}: choose a path outside the {kind}'s own files",
                path.display(),
                folder.display()
            );
        }
    }
    Ok(())
}

/// `run` for a folder that holds a run (its configuration or checkpoints), `sweep` for one
/// that holds a sweep plan.
fn folder_kind(folder: &Path) -> Option<&'static str> {
    if folder.join(SWEEP_PLAN_FILE).is_file() {
        Some("sweep")
    } else if folder.join(CONFIG_FILE).is_file() || folder.join(CHECKPOINT_DIR).is_dir() {
        Some("run")
    } else {
        None
    }
}

/// `path` as the file system resolves it: links followed and `.`/`..` removed, component by
/// component as the kernel does for the part that exists; the rest appended as given.
fn resolve(path: &Path) -> Result<PathBuf> {
    let absolute = std::path::absolute(path).context("cannot make the path absolute")?;
    let mut resolved = PathBuf::new();
    for component in absolute.components() {
        match component {
            Component::ParentDir => {
                resolved.pop();
            }
            Component::CurDir => {}
            other => {
                resolved.push(other);
                if std::fs::symlink_metadata(&resolved).is_ok() {
                    resolved = std::fs::canonicalize(&resolved)
                        .with_context(|| format!("cannot resolve {}", resolved.display()))?;
                }
            }
        }
    }
    Ok(resolved)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_runs_own_files_and_the_inputs_are_refused_whatever_the_path_says() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("R");
        std::fs::create_dir_all(run.join(CHECKPOINT_DIR)).unwrap();
        std::fs::write(run.join(CONFIG_FILE), "").unwrap();
        std::fs::write(run.join(MODEL_FILE), "").unwrap();
        let sweep = dir.path().join("S");
        std::fs::create_dir_all(&sweep).unwrap();
        std::fs::write(sweep.join(SWEEP_PLAN_FILE), "{}").unwrap();
        std::os::unix::fs::symlink(run.join(MODEL_FILE), dir.path().join("link.npz")).unwrap();
        let input = dir.path().join("x.csv");
        std::fs::write(&input, "").unwrap();
        let refused = [
            (run.join(MODEL_FILE), "model.bpk of the run"),
            (run.join("sub/../config.toml"), "config.toml of the run"),
            (run.join(METRICS_FILE), "metrics.csv of the run"),
            (run.join(SUMMARY_FILE), "summary.json of the run"),
            (run.join(LOCK_FILE), ".lock of the run"),
            (run.join("checkpoint/model-1.bpk"), "checkpoint of the run"),
            (run.join("checkpoint/new/x.npz"), "checkpoint of the run"),
            (sweep.join(SWEEP_PLAN_FILE), "plan.json of the sweep"),
            (sweep.join("logs/0.log"), "logs of the sweep"),
            (dir.path().join("link.npz"), "model.bpk of the run"),
            (input.clone(), "own input"),
            (run.clone(), "is a directory"),
        ];
        for (path, expected) in refused {
            let error = check_output_file(&path, "--out", &[], &[&input])
                .unwrap_err()
                .to_string();
            assert!(error.contains(expected), "{}: {error}", path.display());
        }
        let error = check_output_file(&dir.path().join("x.safetensors"), "--out", &["npz"], &[])
            .unwrap_err()
            .to_string();
        assert!(error.contains("must end in .npz"), "{error}");
        for allowed in [
            run.join("export.npz"),
            dir.path().join("new/p.npz"),
            sweep.join("r.npz"),
        ] {
            check_output_file(&allowed, "--out", &["npz"], &[&input]).unwrap();
        }
        for (folder, expected) in [
            (run.clone(), "is a run folder"),
            (sweep.clone(), "is a sweep folder"),
            (run.join("checkpoint/analysis"), "checkpoint of the run"),
            (run.join(MODEL_FILE), "is a file"),
        ] {
            let error = check_output_dir(&folder, "--out").unwrap_err().to_string();
            assert!(error.contains(expected), "{}: {error}", folder.display());
        }
        check_output_dir(&run.join("analysis"), "--out").unwrap();
    }
}
