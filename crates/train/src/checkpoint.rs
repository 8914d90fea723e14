//! burn checkpointer that writes each record to a temporary file and renames it into place.

use std::path::PathBuf;

use burn::train::checkpoint::{Checkpoint, Checkpointer, CheckpointerError};

use crate::run::temporary_path;

/// Saves `DIR/NAME-EPOCH.bpk` atomically: a crash mid-write leaves the previous checkpoints
/// intact and no truncated file under a checkpoint's name.
pub struct AtomicFileCheckpointer {
    dir: PathBuf,
    name: &'static str,
}

impl AtomicFileCheckpointer {
    /// Checkpoints named `name-EPOCH.bpk` in `dir`.
    pub fn new(dir: PathBuf, name: &'static str) -> Self {
        Self { dir, name }
    }

    fn path(&self, epoch: usize) -> PathBuf {
        self.dir.join(format!("{}-{epoch}.bpk", self.name))
    }
}

impl<R: Checkpoint> Checkpointer<R> for AtomicFileCheckpointer {
    fn save(&self, epoch: usize, record: R) -> Result<(), CheckpointerError> {
        std::fs::create_dir_all(&self.dir).map_err(CheckpointerError::IOError)?;
        let path = self.path(epoch);
        let tmp = temporary_path(&path);
        record.save(tmp.clone())?;
        std::fs::rename(&tmp, &path).map_err(CheckpointerError::IOError)
    }

    fn delete(&self, epoch: usize) -> Result<(), CheckpointerError> {
        match std::fs::remove_file(self.path(epoch)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(CheckpointerError::IOError(e))
            }
            _ => Ok(()),
        }
    }

    fn restore(&self, epoch: usize) -> Result<R, CheckpointerError> {
        R::load(self.path(epoch))
    }
}
