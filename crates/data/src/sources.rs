//! Data sets on disk: IDX folders (MNIST, Fashion-MNIST) and CIFAR-10's binary version.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::DataError;
use crate::idx::{read_idx, read_maybe_gz};
use crate::image_set::{ImageSet, PixelScale};

/// The on-disk layout of a data set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// A folder of `train-images-idx3-ubyte`, `train-labels-idx1-ubyte`,
    /// `t10k-images-idx3-ubyte`, `t10k-labels-idx1-ubyte`, each raw or with `.gz`: MNIST,
    /// Fashion-MNIST, EMNIST.
    Idx,
    /// A folder of CIFAR-10's binary version: `data_batch_*.bin` and `test_batch.bin`, each
    /// record one label byte and 3072 pixel bytes (red, green, blue planes of 32x32).
    Cifar10,
    /// One numpy `.npz` file with `x_train`, `y_train`, `x_test`, `y_test` (see `npz`).
    Npz,
}

/// Where a data set is and how to read it.
#[derive(Debug, Clone, PartialEq)]
pub struct Source {
    /// Its layout.
    pub format: Format,
    /// The folder (`idx`, `cifar10`) or the file (`npz`).
    pub location: PathBuf,
    /// The number of classes (the network's output width): every label, less
    /// `label_offset`, must be in `[0, classes)`.
    pub classes: usize,
    /// Subtracted from every label (1 for EMNIST letters, labelled 1..26).
    pub label_offset: i64,
    /// How stored pixels become inputs.
    pub scale: PixelScale,
}

/// The training and test parts of a data set.
#[derive(Debug, Clone)]
pub struct Splits {
    /// All training images, in file order.
    pub train: ImageSet,
    /// All test images, in file order.
    pub test: ImageSet,
}

/// Loads a data set.
///
/// # Errors
/// If a file cannot be read or is not valid, or a label is out of range; the error names the
/// file.
pub fn load(source: &Source) -> Result<Splits, DataError> {
    let (classes, offset) = (source.classes, source.label_offset);
    let splits = match source.format {
        Format::Idx => Splits {
            train: load_idx_pair(&source.location, "train", classes, offset)?,
            test: load_idx_pair(&source.location, "t10k", classes, offset)?,
        },
        Format::Cifar10 => load_cifar10(&source.location, classes, offset)?,
        Format::Npz => crate::npz::load_npz(&source.location, classes, offset)?,
    };
    Ok(Splits {
        train: splits.train.with_scale(source.scale),
        test: splits.test.with_scale(source.scale),
    })
}

/// Number of classes of MNIST, Fashion-MNIST and CIFAR-10.
pub const CLASSES: usize = 10;

/// Loads an IDX folder of 10 classes (see [`Format::Idx`]).
///
/// # Errors
/// As [`load`].
pub fn load_idx_dir(dir: &Path) -> Result<Splits, DataError> {
    Ok(Splits {
        train: load_idx_pair(dir, "train", CLASSES, 0)?,
        test: load_idx_pair(dir, "t10k", CLASSES, 0)?,
    })
}

/// Loads `{prefix}-images-idx3-ubyte` with `{prefix}-labels-idx1-ubyte`.
fn load_idx_pair(
    dir: &Path,
    prefix: &str,
    classes: usize,
    offset: i64,
) -> Result<ImageSet, DataError> {
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
    let labels = check_labels(&labels_path, &labels.data, classes, offset)?;
    let features = images.dims[1] * images.dims[2];
    Ok(ImageSet::from_bytes(features, images.data, labels, classes)
        .with_shape(vec![images.dims[1], images.dims[2]]))
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

/// `labels` less `offset`, each checked to be in `[0, classes)`.
fn check_labels(
    path: &Path,
    labels: &[u8],
    classes: usize,
    offset: i64,
) -> Result<Vec<u32>, DataError> {
    labels
        .iter()
        .enumerate()
        .map(|(i, &label)| {
            let shifted = i64::from(label) - offset;
            if (0..classes as i64).contains(&shifted) {
                Ok(shifted as u32)
            } else {
                let hint = if offset == 0 {
                    "; the network's classes are the last entry of model.sizes, and data.label_offset shifts labels".to_string()
                } else {
                    format!(" after data.label_offset = {offset}")
                };
                Err(DataError::invalid(
                    path,
                    format!("label {label} of example {i} is not in [0, {classes}){hint}"),
                ))
            }
        })
        .collect()
}

/// The side of one CIFAR-10 image (3 colour planes of 32 x 32).
const CIFAR_SIDE: usize = 32;
/// Pixels of one CIFAR-10 image.
const CIFAR_FEATURES: usize = 3 * CIFAR_SIDE * CIFAR_SIDE;

/// Loads a CIFAR-10 binary folder of 10 classes (see [`Format::Cifar10`]); training batches
/// in name order.
///
/// # Errors
/// As [`load`].
pub fn load_cifar10_dir(dir: &Path) -> Result<Splits, DataError> {
    load_cifar10(dir, CLASSES, 0)
}

fn load_cifar10(dir: &Path, classes: usize, offset: i64) -> Result<Splits, DataError> {
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
        train: read_cifar10(&train_files, classes, offset)?,
        test: read_cifar10(&[dir.join("test_batch.bin")], classes, offset)?,
    })
}

/// Reads and concatenates CIFAR-10 binary batch files of `classes` classes (labels less
/// `offset`).
///
/// # Errors
/// If a file cannot be read, is not a whole number of records, or holds a label out of
/// range; the error names the file.
pub fn read_cifar10(files: &[PathBuf], classes: usize, offset: i64) -> Result<ImageSet, DataError> {
    let mut pixels = Vec::new();
    let mut labels = Vec::new();
    for path in files {
        let bytes = read_maybe_gz(path)?;
        let mut raw = Vec::new();
        parse_cifar10(&bytes, &mut raw, &mut pixels)
            .map_err(|message| DataError::invalid(path, message))?;
        labels.extend(check_labels(path, &raw, classes, offset)?);
    }
    Ok(
        ImageSet::from_bytes(CIFAR_FEATURES, pixels, labels, classes)
            .with_shape(vec![3, CIFAR_SIDE, CIFAR_SIDE]),
    )
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
    for record in bytes.chunks_exact(RECORD) {
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
                }
                Err(message) => prop_assert!(message.contains("CIFAR-10")),
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
