//! Data held as numpy arrays: one `.npz` with `x_train`, `y_train`, `x_test`, `y_test`, and
//! single `.npy` images for `credit predict`.
//!
//! Images are `uint8` (scaled by 1/255 by default) or `float32`/`float64` (taken as they are),
//! of any shape `[N, ...]`, each image flattened; labels are one-dimensional integers. Arrays
//! are read with `npyz`; every error names the file and the array.

use std::io::{Read, Seek};
use std::path::Path;

use npyz::{DType, NpyFile, Order, TypeChar};

use crate::error::DataError;
use crate::image_set::{ImageSet, Pixels};

/// The largest array read, in bytes: a header announcing more is an error, not an allocation.
const MAX_ARRAY_BYTES: u64 = 16 << 30;

/// An array's flattened values: images (bytes or floats) or integer labels.
enum Values {
    Bytes(Vec<u8>),
    Floats(Vec<f32>),
    Integers(Vec<i64>),
}

/// The type of one array: `u1`, `f4`, `i8`, ...
fn kind(dtype: &DType) -> Option<(TypeChar, u64)> {
    match dtype {
        DType::Plain(t) => Some((t.type_char(), t.size_field())),
        _ => None,
    }
}

/// Reads one `.npy` array (from a file or an archive member of `available` bytes): its shape
/// and values.
fn read_array<R: Read>(
    npy: NpyFile<R>,
    what: &str,
    available: u64,
) -> Result<(Vec<usize>, Values), String> {
    let shape: Vec<usize> = npy.shape().iter().map(|&d| d as usize).collect();
    let dtype = npy.dtype();
    let (type_char, size) =
        kind(&dtype).ok_or_else(|| format!("{what}: a structured dtype is not supported"))?;
    if npy.order() == Order::Fortran {
        return Err(format!(
            "{what}: stored in Fortran (column-major) order, which would scramble the pixels; save it in C order (numpy.ascontiguousarray)"
        ));
    }
    let count = npy
        .shape()
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d));
    match count.and_then(|c| c.checked_mul(size)) {
        Some(bytes) if bytes > MAX_ARRAY_BYTES => {
            return Err(format!(
                "{what}: shape {shape:?} is larger than {MAX_ARRAY_BYTES} bytes"
            ));
        }
        Some(bytes) if bytes > available => {
            return Err(format!(
                "{what}: its header announces {bytes} bytes of values (shape {shape:?}), but only {available} bytes follow: the file is truncated"
            ));
        }
        Some(_) => {}
        None => return Err(format!("{what}: shape {shape:?} overflows")),
    }
    let read = |e: std::io::Error| format!("{what}: cannot read its values ({e})");
    let values = match (type_char, size) {
        (TypeChar::Uint, 1) => Values::Bytes(npy.into_vec::<u8>().map_err(read)?),
        (TypeChar::Float, 4) => Values::Floats(npy.into_vec::<f32>().map_err(read)?),
        (TypeChar::Float, 8) => Values::Floats(
            npy.into_vec::<f64>()
                .map_err(read)?
                .into_iter()
                .map(|x| x as f32)
                .collect(),
        ),
        (TypeChar::Int, 1) => Values::Integers(ints(npy.into_vec::<i8>().map_err(read)?)),
        (TypeChar::Int, 2) => Values::Integers(ints(npy.into_vec::<i16>().map_err(read)?)),
        (TypeChar::Int, 4) => Values::Integers(ints(npy.into_vec::<i32>().map_err(read)?)),
        (TypeChar::Int, 8) => Values::Integers(npy.into_vec::<i64>().map_err(read)?),
        (TypeChar::Uint, 2) => Values::Integers(ints(npy.into_vec::<u16>().map_err(read)?)),
        (TypeChar::Uint, 4) => Values::Integers(ints(npy.into_vec::<u32>().map_err(read)?)),
        (TypeChar::Uint, 8) => Values::Integers(
            npy.into_vec::<u64>()
                .map_err(read)?
                .into_iter()
                .map(|v| i64::try_from(v).unwrap_or(i64::MAX))
                .collect(),
        ),
        _ => {
            return Err(format!(
                "{what}: dtype {} is not supported (images: uint8, float32, float64; labels: integers)",
                dtype.descr()
            ));
        }
    };
    Ok((shape, values))
}

fn ints<T: Into<i64>>(values: Vec<T>) -> Vec<i64> {
    values.into_iter().map(Into::into).collect()
}

/// The whole of an `.npy` (a file or an archive member), refusing more than
/// [`MAX_ARRAY_BYTES`] plus a header before anything is allocated for it.
fn read_bounded(reader: impl Read, what: &str) -> Result<Vec<u8>, String> {
    let limit = MAX_ARRAY_BYTES + (1 << 20);
    let mut bytes = Vec::new();
    reader
        .take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("{what}: cannot be read ({e})"))?;
    if bytes.len() as u64 > limit {
        return Err(format!("{what}: larger than {MAX_ARRAY_BYTES} bytes"));
    }
    Ok(bytes)
}

/// The bytes after an `.npy`'s header: magic (6), version (2), header length (2 bytes in
/// version 1, 4 in versions 2 and 3), header.
fn values_available(npy: &[u8]) -> u64 {
    let header = match npy.get(6) {
        Some(1) => npy
            .get(8..10)
            .map(|b| 10 + u64::from(u16::from_le_bytes([b[0], b[1]]))),
        Some(_) => npy
            .get(8..12)
            .map(|b| 12 + u64::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))),
        None => None,
    };
    (npy.len() as u64).saturating_sub(header.unwrap_or(npy.len() as u64))
}

/// Images from an array `[N, ...]`: the count, the pixels per image and the pixels.
fn images(shape: &[usize], values: Values, what: &str) -> Result<(usize, usize, Pixels), String> {
    let Some((&n, rest)) = shape.split_first() else {
        return Err(format!("{what}: a scalar, not images [N, ...]"));
    };
    let features: usize = rest.iter().product();
    if rest.is_empty() || features == 0 || n == 0 {
        return Err(format!(
            "{what}: shape {shape:?} holds no images of at least one pixel"
        ));
    }
    let pixels = match values {
        Values::Bytes(v) => Pixels::Bytes(v.into()),
        Values::Floats(v) => {
            if let Some(i) = v.iter().position(|x| !x.is_finite()) {
                return Err(format!(
                    "{what}: image {} has a pixel that is not finite ({})",
                    i / features,
                    v[i]
                ));
            }
            Pixels::Floats(v.into())
        }
        Values::Integers(_) => {
            return Err(format!(
                "{what}: integer images are not supported (uint8, float32, float64)"
            ));
        }
    };
    Ok((n, features, pixels))
}

/// Labels from a one-dimensional integer array of `n` values, shifted by `offset` and checked
/// to be in `[0, classes)`.
fn labels(
    shape: &[usize],
    values: Values,
    n: usize,
    classes: usize,
    offset: i64,
    what: &str,
) -> Result<Vec<u32>, String> {
    let values = match values {
        Values::Integers(values) => values,
        Values::Bytes(values) => ints(values),
        Values::Floats(_) => return Err(format!("{what}: labels must be integers, not floats")),
    };
    if shape.len() != 1 {
        return Err(format!(
            "{what}: labels must be one-dimensional, got shape {shape:?}"
        ));
    }
    if values.len() != n {
        return Err(format!("{what}: {} labels for {n} images", values.len()));
    }
    values
        .iter()
        .enumerate()
        .map(|(i, &label)| {
            let shifted = label.checked_sub(offset).filter(|&l| l >= 0 && (l as u64) < classes as u64);
            shifted.map(|l| l as u32).ok_or_else(|| {
                format!(
                    "{what}: label {label} of example {i}{} is not in [0, {classes}) (the last entry of model.sizes{})",
                    if offset != 0 { format!(" minus data.label_offset = {offset}") } else { String::new() },
                    if offset == 0 { "; shift labels with data.label_offset" } else { "" }
                )
            })
        })
        .collect()
}

/// Loads a `.npz` holding `x_train`, `y_train`, `x_test`, `y_test`; `classes` is the output
/// width of the network, `label_offset` is subtracted from every label.
///
/// # Errors
/// If the file cannot be read, an array is missing or has another dtype or shape, the counts
/// of images and labels differ, the two splits differ in pixels per image, or a label is out
/// of range; the error names the file and the array.
pub fn load_npz(
    path: &Path,
    classes: usize,
    label_offset: i64,
) -> Result<crate::Splits, DataError> {
    let file = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    let mut archive = zip::ZipArchive::new(std::io::BufReader::new(file))
        .map_err(|e| DataError::invalid(path, format!("not an npz (zip) archive ({e})")))?;
    let mut split = |x: &str, y: &str| -> Result<ImageSet, DataError> {
        let (x_shape, x_values) =
            member(&mut archive, x).map_err(|m| DataError::invalid(path, m))?;
        let (n, features, pixels) =
            images(&x_shape, x_values, x).map_err(|m| DataError::invalid(path, m))?;
        let (y_shape, y_values) =
            member(&mut archive, y).map_err(|m| DataError::invalid(path, m))?;
        let labels = labels(&y_shape, y_values, n, classes, label_offset, y)
            .map_err(|m| DataError::invalid(path, m))?;
        Ok(ImageSet::new(features, pixels, labels, classes).with_shape(x_shape[1..].to_vec()))
    };
    let train = split("x_train", "y_train")?;
    let test = split("x_test", "y_test")?;
    if train.features() != test.features() {
        return Err(DataError::invalid(
            path,
            format!(
                "x_train has {} pixels per image, x_test {}",
                train.features(),
                test.features()
            ),
        ));
    }
    Ok(crate::Splits { train, test })
}

/// The array `name` of an archive (a member `name.npy`).
fn member<R: Read + Seek>(
    archive: &mut zip::ZipArchive<R>,
    name: &str,
) -> Result<(Vec<usize>, Values), String> {
    let file = archive
        .by_name(&format!("{name}.npy"))
        .map_err(|e| match e {
            zip::result::ZipError::FileNotFound => {
                format!("no array {name} (expected x_train, y_train, x_test, y_test)")
            }
            other => format!("{name}: cannot be read from the archive ({other})"),
        })?;
    let bytes = read_bounded(file, name)?;
    let npy = NpyFile::new(&bytes[..]).map_err(|e| format!("{name}: not an npy array ({e})"))?;
    read_array(npy, name, values_available(&bytes))
}

/// Whether the array `name` of a `.npz` holds bytes (`uint8`) rather than floats, from its
/// header alone.
///
/// # Errors
/// If the file or the array cannot be read, naming them.
pub fn npz_holds_bytes(path: &Path, name: &str) -> Result<bool, DataError> {
    let file = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    let mut archive = zip::ZipArchive::new(std::io::BufReader::new(file))
        .map_err(|e| DataError::invalid(path, format!("not an npz (zip) archive ({e})")))?;
    let member = archive
        .by_name(&format!("{name}.npy"))
        .map_err(|e| DataError::invalid(path, format!("{name}: {e}")))?;
    let npy = NpyFile::new(member)
        .map_err(|e| DataError::invalid(path, format!("{name}: not an npy array ({e})")))?;
    Ok(kind(&npy.dtype()) == Some((TypeChar::Uint, 1)))
}

/// The images of the array `name` (`x_test`, say) of a `.npz`, every label 0, and the shape
/// of one image (`[28, 28]`, `[32, 32, 3]`, ...).
///
/// # Errors
/// If the file or the array cannot be read or is not an image array, naming them.
pub fn load_npz_images(path: &Path, name: &str) -> Result<(ImageSet, Vec<usize>), DataError> {
    let file = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    let mut archive = zip::ZipArchive::new(std::io::BufReader::new(file))
        .map_err(|e| DataError::invalid(path, format!("not an npz (zip) archive ({e})")))?;
    let (shape, values) = member(&mut archive, name).map_err(|m| DataError::invalid(path, m))?;
    let (n, features, pixels) =
        images(&shape, values, name).map_err(|m| DataError::invalid(path, m))?;
    Ok((
        ImageSet::new(features, pixels, vec![0; n], 1),
        shape[1..].to_vec(),
    ))
}

/// The integer labels of the array `name` (`y_test`, say) of a `.npz`, as stored, with the
/// archive's path; `None` if the archive has no such array.
///
/// # Errors
/// If the file cannot be read, or the array is not one-dimensional integers, naming them.
pub fn load_npz_labels(
    path: &Path,
    name: &str,
) -> Result<Option<(std::path::PathBuf, Vec<i64>)>, DataError> {
    let file = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    let mut archive = zip::ZipArchive::new(std::io::BufReader::new(file))
        .map_err(|e| DataError::invalid(path, format!("not an npz (zip) archive ({e})")))?;
    if archive.index_for_name(&format!("{name}.npy")).is_none() {
        return Ok(None);
    }
    let (shape, values) = member(&mut archive, name).map_err(|m| DataError::invalid(path, m))?;
    let values = match values {
        Values::Integers(values) => values,
        Values::Bytes(values) => ints(values),
        Values::Floats(_) => {
            return Err(DataError::invalid(
                path,
                format!("{name}: labels must be integers, not floats"),
            ));
        }
    };
    if shape.len() != 1 {
        return Err(DataError::invalid(
            path,
            format!("{name}: labels must be one-dimensional, got shape {shape:?}"),
        ));
    }
    Ok(Some((path.to_path_buf(), values)))
}

/// Images from a `.npy` file `[N, ...]` (each flattened), every label 0 (for predictions),
/// and the shape of one image.
///
/// # Errors
/// If the file cannot be read or is not an image array, naming it.
pub fn read_npy_images(path: &Path) -> Result<(ImageSet, Vec<usize>), DataError> {
    let file = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    let bytes = read_bounded(file, "the array").map_err(|m| DataError::invalid(path, m))?;
    let npy = NpyFile::new(&bytes[..])
        .map_err(|e| DataError::invalid(path, format!("not an npy array ({e})")))?;
    let (shape, values) = read_array(npy, "the array", values_available(&bytes))
        .map_err(|m| DataError::invalid(path, m))?;
    let (n, features, pixels) =
        images(&shape, values, "the array").map_err(|m| DataError::invalid(path, m))?;
    Ok((
        ImageSet::new(features, pixels, vec![0; n], 1),
        shape[1..].to_vec(),
    ))
}

#[cfg(test)]
mod tests;
