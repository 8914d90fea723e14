//! One writer per run folder: `train`, `--resume`, `analyze` and `export` hold an exclusive
//! lock on `RUN/.lock` for as long as they work on the run. The operating system releases it
//! when the process ends, however it ends, so a killed run never stays locked.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// The lock file inside a run folder.
pub const LOCK_FILE: &str = ".lock";

/// An exclusive lock on a run folder, released when dropped.
#[derive(Debug)]
pub struct RunLock {
    _file: File,
    path: PathBuf,
}

impl RunLock {
    /// Takes the lock of the run folder `dir` (created if absent) for `what` (e.g.
    /// `credit train`), and writes who holds it into the lock file.
    ///
    /// # Errors
    /// If another process holds it (the error names that process and what it is doing), or
    /// the folder cannot be written.
    pub fn acquire(dir: &Path, what: &str) -> Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let path = dir.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        // A moment's retry: a status probe (a shared lock taken for an instant) must not
        // make a starting process fail.
        let mut attempt = 0;
        let locked = loop {
            match file.try_lock() {
                Err(TryLockError::WouldBlock) if attempt < 20 => {
                    attempt += 1;
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                other => break other,
            }
        };
        match locked {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                let holder = if holder.is_empty() {
                    "another process".to_string()
                } else {
                    holder.to_string()
                };
                bail!(
                    "{} is in use by {holder}; wait for it to finish, or stop it first",
                    dir.display()
                );
            }
            Err(TryLockError::Error(error)) => {
                return Err(error).with_context(|| format!("cannot lock {}", path.display()));
            }
        }
        let holder = format!("`{what}` ({}, since {})", own_process(), now());
        file.set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| file.write_all(holder.as_bytes()))
            .and_then(|()| file.sync_all())
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(Self { _file: file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Who holds the lock of the run folder `dir` now (as written in its lock file, e.g.
    /// `` `credit train` (process 4242 on node7, since unix time ...) ``), or `None` if
    /// nobody does. Looks for an instant only (a shared lock, released at once). The calling
    /// process is never named: a lock it holds itself (an analysis asking why the run it
    /// locked has no final model) is `None`.
    pub fn holder(dir: &Path) -> Option<String> {
        let mut file = File::open(dir.join(LOCK_FILE)).ok()?;
        match file.try_lock_shared() {
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                if holder.contains(&format!("({}, since", own_process())) {
                    return None;
                }
                Some(if holder.is_empty() {
                    "another process".to_string()
                } else {
                    holder.to_string()
                })
            }
            _ => None,
        }
    }
}

impl Drop for RunLock {
    /// Empties the lock file before the lock is released, so that no holder is named once
    /// the work ends, however it ends short of a kill (an error, a panic that unwinds). The
    /// file itself stays: removing it while another process waits on it would let two
    /// processes hold locks on two different files.
    fn drop(&mut self) {
        let _ = self._file.set_len(0);
    }
}

/// `process PID on HOST`, as this process signs the lock files it takes.
fn own_process() -> String {
    format!("process {} on {}", std::process::id(), hostname())
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "this machine".to_string())
}

/// Seconds since the Unix epoch, as `unix time N`.
fn now() -> String {
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format!("unix time {seconds}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_with_the_first_ones_name() {
        let dir = tempfile::tempdir().unwrap();
        let first = RunLock::acquire(dir.path(), "credit train").unwrap();
        let error = RunLock::acquire(dir.path(), "credit analyze").unwrap_err();
        let message = error.to_string();
        assert!(message.contains("is in use by `credit train`"), "{message}");
        assert!(
            message.contains(&format!("process {}", std::process::id())),
            "{message}"
        );
        // This process holds it: `holder` names others only.
        assert_eq!(RunLock::holder(dir.path()), None);
        drop(first);
        assert_eq!(
            std::fs::read_to_string(dir.path().join(LOCK_FILE)).unwrap(),
            "",
            "a released lock names nobody"
        );
        assert_eq!(RunLock::holder(dir.path()), None);
        let again = RunLock::acquire(dir.path(), "credit analyze").unwrap();
        assert!(again.path().ends_with(LOCK_FILE));
    }
}
