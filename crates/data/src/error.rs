//! The one error type of this crate: every variant names the file it is about.

use std::path::{Path, PathBuf};

/// A data file that could not be read or does not hold what it should.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The file could not be opened or read. The I/O error is part of the message (and not
    /// also a `source`, which would print it twice in an error chain).
    #[error("{}: {cause}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        cause: std::io::Error,
    },
    /// The file was read but its content is not valid.
    #[error("{}: {message}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
}

impl DataError {
    pub(crate) fn io(path: &Path, cause: std::io::Error) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            cause,
        }
    }

    pub(crate) fn invalid(path: &Path, message: impl Into<String>) -> Self {
        Self::Invalid {
            path: path.to_path_buf(),
            message: message.into(),
        }
    }
}
