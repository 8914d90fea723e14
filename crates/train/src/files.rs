//! Writing files so that nothing is ever half-written: every file goes to a temporary name
//! unique to the process, is synced, then renamed over its destination; JSON refuses
//! numbers that are not finite.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Serialize;

/// The suffix of every temporary file credit writes.
const TEMPORARY_SUFFIX: &str = ".credit-tmp";

/// `dir/.NAME.PID-NONCE.credit-tmp` beside `path`: unique per process and per write (the
/// nonce tells apart processes of equal ids on different hosts or in different containers
/// sharing a file system), and hidden.
pub fn temporary_path(path: &Path) -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let clock = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() as u64 ^ d.as_secs());
    let nonce = clock ^ COUNTER.fetch_add(1, Ordering::Relaxed).rotate_left(32);
    path.with_file_name(format!(
        ".{name}.{}-{nonce:x}{TEMPORARY_SUFFIX}",
        std::process::id()
    ))
}

/// Whether `name` is a temporary file of [`temporary_path`] (of any process).
pub fn is_temporary(name: &str) -> bool {
    name.starts_with('.') && name.ends_with(TEMPORARY_SUFFIX)
}

/// Writes `bytes` to a temporary file beside `path`, syncs it and renames it over `path`.
///
/// # Errors
/// If the folder cannot be created or the file written (disk full, permissions), naming
/// the file; the destination is then untouched.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_with(path, |tmp| {
        let mut file = std::fs::File::create(tmp)
            .with_context(|| format!("cannot create {}", tmp.display()))?;
        file.write_all(bytes)
            .and_then(|()| file.sync_all())
            .with_context(|| format!("cannot write {}", tmp.display()))
    })
}

/// Runs `write` on a temporary path beside `path`, then renames the result over `path`; the
/// temporary file is removed if `write` fails.
///
/// # Errors
/// What `write` returns, or a failed rename, naming the file.
pub fn write_atomic_with(path: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let tmp = temporary_path(path);
    if let Err(error) = write(&tmp) {
        let _ = std::fs::remove_file(&tmp);
        return Err(error);
    }
    crate::failpoint::hit("rename");
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    // The rename itself is made durable by syncing the folder that holds the new entry
    // (POSIX); where a folder cannot be opened for that (some platforms), it is skipped.
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
    if let Ok(folder) = std::fs::File::open(parent.unwrap_or(Path::new("."))) {
        let _ = folder.sync_all();
    }
    Ok(())
}

/// `value` as pretty JSON.
///
/// # Errors
/// If a number in it is NaN or infinite (JSON has no such numbers, and serde would write
/// `null`, which does not read back), naming where it is.
pub fn to_json<T: Serialize>(value: &T) -> Result<String> {
    finite::check(value)?;
    Ok(serde_json::to_string_pretty(value)?)
}

/// Writes `value` as pretty JSON to `path`, atomically.
///
/// # Errors
/// See [`to_json`] and [`write_atomic`]; the error names the file.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let text = to_json(value).with_context(|| format!("cannot write {}", path.display()))?;
    write_atomic(path, text.as_bytes())
}

/// Reads a file written by [`write_json`].
///
/// # Errors
/// If the file cannot be read or does not hold a `T`, naming the file.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{}: not valid", path.display()))
}

mod finite;
mod output;

pub use output::{SWEEP_PLAN_FILE, check_output_dir, check_output_file};

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[derive(Serialize)]
    struct Layer {
        entropy_mean: f64,
        counts: Vec<usize>,
    }

    #[derive(Serialize)]
    struct Report {
        name: String,
        accuracy: Option<f64>,
        layers: Vec<Layer>,
        by_name: BTreeMap<String, f32>,
    }

    fn report(entropy: f64, by_name: f32) -> Report {
        Report {
            name: "run".into(),
            accuracy: None,
            layers: vec![
                Layer {
                    entropy_mean: 0.5,
                    counts: vec![1, 2],
                },
                Layer {
                    entropy_mean: entropy,
                    counts: vec![],
                },
            ],
            by_name: BTreeMap::from([("a".to_string(), 1.0), ("b".to_string(), by_name)]),
        }
    }

    #[test]
    fn finite_values_serialize_and_the_rest_are_named() {
        assert!(
            to_json(&report(0.25, 2.0))
                .unwrap()
                .contains("\"entropy_mean\": 0.25")
        );
        let error = to_json(&report(f64::NAN, 2.0)).unwrap_err().to_string();
        assert_eq!(error, "layers[1].entropy_mean is NaN, not a finite number");
        let error = to_json(&report(0.1, f32::NEG_INFINITY))
            .unwrap_err()
            .to_string();
        assert_eq!(error, "by_name.b is -inf, not a finite number");
        assert!(to_json(&vec![1.0, f64::INFINITY]).is_err());
    }

    #[test]
    fn an_atomic_write_replaces_whole_files_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/file.json");
        write_json(&path, &vec![1, 2]).unwrap();
        write_json(&path, &vec![3]).unwrap();
        assert_eq!(read_json::<Vec<u32>>(&path).unwrap(), vec![3]);
        let error = write_json(&path, &vec![f64::NAN]).unwrap_err();
        assert!(format!("{error:#}").contains("file.json"), "{error:#}");
        assert_eq!(read_json::<Vec<u32>>(&path).unwrap(), vec![3]);
        let names: Vec<String> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["file.json"]);
        assert!(is_temporary(
            &temporary_path(&path).file_name().unwrap().to_string_lossy()
        ));
        assert!(!is_temporary(".draft.tmp"), "a user's own file");
        assert_ne!(temporary_path(&path), temporary_path(&path));
    }
}
