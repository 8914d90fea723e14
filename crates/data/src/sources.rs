//! Data sets on disk: IDX folders (MNIST, Fashion-MNIST) and CIFAR-10's binary version.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::DataError;
use crate::idx::{read_idx, read_maybe_gz};
use crate::image_set::ImageSet;

/// The on-disk layout of a data set folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// `train-images-idx3-ubyte`, `train-labels-idx1-ubyte`, `t10k-images-idx3-ubyte`,
    /// `t10k-labels-idx1-ubyte`, each raw or with `.gz`: MNIST and Fashion-MNIST.
    Idx,
    /// CIFAR-10's binary version: `data_batch_*.bin` and `test_batch.bin`, each record one
    /// label byte and 3072 pixel bytes (red, green, blue planes of 32x32).
    Cifar10,
}

/// The training and test parts of a data set.
#[derive(Debug, Clone)]
pub struct Splits {
    /// All training images, in file order.
    pub train: ImageSet,
    /// All test images, in file order.
    pub test: ImageSet,
}

/// Loads a data set folder of the given format.
pub fn load(format: Format, dir: &Path) -> Result<Splits, DataError> {
    match format {
        Format::Idx => load_idx_dir(dir),
        Format::Cifar10 => load_cifar10_dir(dir),
    }
}

/// Number of classes of MNIST, Fashion-MNIST and CIFAR-10.
const CLASSES: usize = 10;

/// Loads an IDX folder (see [`Format::Idx`]).
pub fn load_idx_dir(dir: &Path) -> Result<Splits, DataError> {
    Ok(Splits {
        train: load_idx_pair(dir, "train")?,
        test: load_idx_pair(dir, "t10k")?,
    })
}

/// Loads `{prefix}-images-idx3-ubyte` with `{prefix}-labels-idx1-ubyte`.
fn load_idx_pair(dir: &Path, prefix: &str) -> Result<ImageSet, DataError> {
    let images_path = find_maybe_gz(dir, &format!("{prefix}-images-idx3-ubyte"))?;
    let labels_path = find_maybe_gz(dir, &format!("{prefix}-labels-idx1-ubyte"))?;
    let images = read_idx(&images_path, 3)?;
    let labels = read_idx(&labels_path, 1)?;
    if images.dims[0] != labels.dims[0] {
        return Err(DataError::invalid(
            &labels_path,
            format!(
                "holds {} labels but {} holds {} images",
                labels.dims[0],
                images_path.display(),
                images.dims[0]
            ),
        ));
    }
    check_labels(&labels_path, &labels.data)?;
    let features = images.dims[1] * images.dims[2];
    Ok(ImageSet::new(features, images.data, labels.data, CLASSES))
}

/// `dir/name.gz` if it exists, else `dir/name` if that exists.
fn find_maybe_gz(dir: &Path, name: &str) -> Result<PathBuf, DataError> {
    let gz = dir.join(format!("{name}.gz"));
    let raw = dir.join(name);
    [gz.clone(), raw]
        .into_iter()
        .find(|p| p.is_file())
        .ok_or_else(|| {
            DataError::io(
                &gz,
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("not found (nor without .gz) in {}", dir.display()),
                ),
            )
        })
}

fn check_labels(path: &Path, labels: &[u8]) -> Result<(), DataError> {
    match labels.iter().position(|&l| l as usize >= CLASSES) {
        Some(i) => Err(DataError::invalid(
            path,
            format!("label {} of example {i} is not below {CLASSES}", labels[i]),
        )),
        None => Ok(()),
    }
}

/// Pixels of one CIFAR-10 image.
const CIFAR_FEATURES: usize = 3 * 32 * 32;

/// Loads a CIFAR-10 binary folder (see [`Format::Cifar10`]); training batches in name order.
pub fn load_cifar10_dir(dir: &Path) -> Result<Splits, DataError> {
    let entries = std::fs::read_dir(dir).map_err(|e| DataError::io(dir, e))?;
    let mut train_files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("data_batch_") && n.ends_with(".bin"))
        })
        .collect();
    train_files.sort();
    if train_files.is_empty() {
        return Err(DataError::io(
            &dir.join("data_batch_1.bin"),
            std::io::Error::new(std::io::ErrorKind::NotFound, "no data_batch_*.bin found"),
        ));
    }
    Ok(Splits {
        train: read_cifar10(&train_files)?,
        test: read_cifar10(&[dir.join("test_batch.bin")])?,
    })
}

/// Reads and concatenates CIFAR-10 binary batch files.
///
/// # Errors
/// If a file cannot be read, is not a whole number of records, or holds a label of 10 or
/// more; the error names the file.
pub fn read_cifar10(files: &[PathBuf]) -> Result<ImageSet, DataError> {
    let mut pixels = Vec::new();
    let mut labels = Vec::new();
    for path in files {
        let bytes = read_maybe_gz(path)?;
        parse_cifar10(&bytes, &mut labels, &mut pixels)
            .map_err(|message| DataError::invalid(path, message))?;
    }
    Ok(ImageSet::new(CIFAR_FEATURES, pixels, labels, CLASSES))
}

/// Appends the records of one CIFAR-10 batch to `labels` and `pixels`; the error is a message
/// without the file name.
fn parse_cifar10(bytes: &[u8], labels: &mut Vec<u8>, pixels: &mut Vec<u8>) -> Result<(), String> {
    const RECORD: usize = 1 + CIFAR_FEATURES;
    if bytes.is_empty() || !bytes.len().is_multiple_of(RECORD) {
        return Err(format!(
            "{} bytes is not a whole number of {RECORD}-byte CIFAR-10 records",
            bytes.len()
        ));
    }
    for (i, record) in bytes.chunks_exact(RECORD).enumerate() {
        if record[0] as usize >= CLASSES {
            return Err(format!(
                "label {} of record {i} is not below {CLASSES}",
                record[0]
            ));
        }
        labels.push(record[0]);
        pixels.extend_from_slice(&record[1..]);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Any bytes are either whole records with valid labels, read back exactly, or an
        /// error; never a panic.
        #[test]
        fn any_bytes_parse_or_fail_cleanly(bytes in proptest::collection::vec(any::<u8>(), 0..8000)) {
            let (mut labels, mut pixels) = (Vec::new(), Vec::new());
            match parse_cifar10(&bytes, &mut labels, &mut pixels) {
                Ok(()) => {
                    prop_assert_eq!(bytes.len() % 3073, 0);
                    prop_assert_eq!(labels.len() * 3072, pixels.len());
                    prop_assert!(labels.iter().all(|&l| l < 10));
                }
                Err(message) => prop_assert!(message.contains("CIFAR-10") || message.contains("label")),
            }
        }

        /// Well-formed batches of random records read back exactly.
        #[test]
        fn whole_records_read_back(records in proptest::collection::vec((0u8..10, any::<u8>()), 1..4)) {
            let mut bytes = Vec::new();
            for &(label, fill) in &records {
                bytes.push(label);
                bytes.extend(std::iter::repeat_n(fill, 3072));
            }
            let (mut labels, mut pixels) = (Vec::new(), Vec::new());
            parse_cifar10(&bytes, &mut labels, &mut pixels).unwrap();
            prop_assert_eq!(labels, records.iter().map(|r| r.0).collect::<Vec<_>>());
            for (chunk, record) in pixels.chunks(3072).zip(&records) {
                prop_assert!(chunk.iter().all(|&p| p == record.1));
            }
        }
    }
}
