//! The IDX format of MNIST and Fashion-MNIST, raw or gzip-compressed.
//!
//! A file is a 4-byte magic (`0, 0`, a type code, the number of dimensions), one big-endian
//! `u32` per dimension, then the values in row-major order. Only unsigned bytes (type `0x08`)
//! occur in these data sets, and only they are accepted.

use std::io::Read;
use std::path::Path;

use crate::error::DataError;

/// Type code of unsigned-byte data.
const TYPE_U8: u8 = 0x08;

/// Decompressed files larger than this are rejected rather than read into memory.
const MAX_DECOMPRESSED_BYTES: u64 = 1 << 30;

/// An n-dimensional array of bytes read from an IDX file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxArray {
    /// Dimensions, outermost first (`[count, rows, cols]` for images, `[count]` for labels).
    pub dims: Vec<usize>,
    /// Values in row-major order; `data.len()` is the product of `dims`.
    pub data: Vec<u8>,
}

/// Reads and validates an IDX file; names ending in `.gz` are decompressed first.
///
/// Checks the magic, the type code, that no dimension is zero and that the file holds exactly
/// the number of values its header announces. `expected_rank` (3 for images, 1 for labels)
/// is checked too.
///
/// # Errors
/// [`DataError`] naming the file: missing, unreadable, not gzip when named `.gz`, a bad
/// magic, type or rank, a header announcing more than the file holds or more than memory
/// allows.
pub fn read_idx(path: &Path, expected_rank: usize) -> Result<IdxArray, DataError> {
    let bytes = read_maybe_gz(path)?;
    parse_idx(&bytes, expected_rank).map_err(|message| DataError::invalid(path, message))
}

/// Reads a whole file, decompressing it when its name ends in `.gz`.
pub(crate) fn read_maybe_gz(path: &Path) -> Result<Vec<u8>, DataError> {
    let file = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    let mut bytes = Vec::new();
    if path.extension().is_some_and(|ext| ext == "gz") {
        flate2::read::GzDecoder::new(file)
            .take(MAX_DECOMPRESSED_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| DataError::invalid(path, format!("not a valid gzip stream ({e})")))?;
        if bytes.len() as u64 > MAX_DECOMPRESSED_BYTES {
            return Err(DataError::invalid(
                path,
                format!("decompresses to more than {MAX_DECOMPRESSED_BYTES} bytes"),
            ));
        }
    } else {
        std::io::BufReader::new(file)
            .read_to_end(&mut bytes)
            .map_err(|e| DataError::io(path, e))?;
    }
    Ok(bytes)
}

/// Parses IDX bytes; the error is a message without the file name.
fn parse_idx(bytes: &[u8], expected_rank: usize) -> Result<IdxArray, String> {
    let header = bytes
        .get(..4)
        .ok_or_else(|| format!("file is {} bytes, shorter than the IDX magic", bytes.len()))?;
    if header[0] != 0 || header[1] != 0 {
        return Err(format!(
            "bad magic {:02x}{:02x}{:02x}{:02x}: not an IDX file",
            header[0], header[1], header[2], header[3]
        ));
    }
    if header[2] != TYPE_U8 {
        return Err(format!(
            "type code 0x{:02x} is not supported (only unsigned bytes, 0x08)",
            header[2]
        ));
    }
    let rank = header[3] as usize;
    if rank != expected_rank {
        return Err(format!(
            "has {rank} dimensions, expected {expected_rank} (magic {})",
            2048 + expected_rank
        ));
    }
    let dims_end = 4 + 4 * rank;
    let dims_bytes = bytes
        .get(4..dims_end)
        .ok_or_else(|| format!("truncated header: {} bytes, need {dims_end}", bytes.len()))?;
    let dims: Vec<usize> = dims_bytes
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect();
    if let Some(axis) = dims.iter().position(|&d| d == 0) {
        return Err(format!("dimension {axis} is zero (dimensions {dims:?})"));
    }
    let count = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| format!("dimensions {dims:?} overflow"))?;
    let body = &bytes[dims_end..];
    if body.len() != count {
        let what = if body.len() < count {
            "truncated"
        } else {
            "has trailing bytes"
        };
        return Err(format!(
            "{what}: header {dims:?} announces {count} values, the file holds {}",
            body.len()
        ));
    }
    Ok(IdxArray {
        dims,
        data: body.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Any bytes are an array whose size is what its header says, or an error; never a
        /// panic or an allocation larger than the input.
        #[test]
        fn any_bytes_parse_or_fail_cleanly(
            bytes in proptest::collection::vec(any::<u8>(), 0..600),
            rank in 1usize..4,
        ) {
            if let Ok(array) = parse_idx(&bytes, rank) {
                prop_assert_eq!(array.dims.len(), rank);
                prop_assert_eq!(array.dims.iter().product::<usize>(), array.data.len());
                prop_assert_eq!(array.data.len() + 4 + 4 * rank, bytes.len());
            }
        }

        /// Valid headers with bodies of any length: exactly the right length parses.
        #[test]
        fn a_header_and_a_body_agree_or_fail(
            dims in proptest::collection::vec(0u32..12, 1..4),
            extra in -3i64..3,
        ) {
            let count: i64 = dims.iter().map(|&d| i64::from(d)).product();
            let len = (count + extra).max(0) as usize;
            let bytes = idx(&dims, &vec![1; len]);
            let parsed = parse_idx(&bytes, dims.len());
            prop_assert_eq!(parsed.is_ok(), extra == 0 && count > 0, "{:?}", parsed);
        }

        /// Huge headers over tiny bodies are errors, never allocations.
        #[test]
        fn huge_headers_are_errors(dims in proptest::collection::vec(any::<u32>(), 3)) {
            let bytes = idx(&dims, &[0; 8]);
            let expected_ok = dims.iter().map(|&d| u64::from(d)).product::<u64>() == 8;
            prop_assert_eq!(parse_idx(&bytes, 3).is_ok(), expected_ok);
        }
    }

    fn idx(rank_dims: &[u32], body: &[u8]) -> Vec<u8> {
        let mut bytes = vec![0, 0, TYPE_U8, rank_dims.len() as u8];
        for d in rank_dims {
            bytes.extend_from_slice(&d.to_be_bytes());
        }
        bytes.extend_from_slice(body);
        bytes
    }

    #[test]
    fn parses_a_small_image_file() {
        let parsed = parse_idx(
            &idx(&[2, 2, 3], &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]),
            3,
        );
        let array = parsed.unwrap();
        assert_eq!(array.dims, vec![2, 2, 3]);
        assert_eq!(array.data[11], 12);
    }

    #[test]
    fn rejects_malformed_headers() {
        let cases: [(Vec<u8>, usize, &str); 6] = [
            (vec![1, 0, 8, 1, 0, 0, 0, 1, 7], 1, "bad magic"),
            (vec![0, 0, 0x0d, 1, 0, 0, 0, 1, 7], 1, "type code"),
            (idx(&[1], &[7]), 3, "expected 3"),
            (idx(&[0], &[]), 1, "dimension 0 is zero"),
            (idx(&[4], &[1, 2]), 1, "truncated"),
            (idx(&[1], &[1, 2]), 1, "trailing"),
        ];
        for (bytes, rank, expected) in cases {
            let err = parse_idx(&bytes, rank).unwrap_err();
            assert!(
                err.contains(expected),
                "{err:?} should mention {expected:?}"
            );
        }
    }

    #[test]
    fn a_huge_header_count_is_an_error_not_an_allocation() {
        let err = parse_idx(&idx(&[u32::MAX, u32::MAX, u32::MAX], &[0; 16]), 3).unwrap_err();
        assert!(
            err.contains("overflow") || err.contains("truncated"),
            "{err}"
        );
        let err = parse_idx(&idx(&[60_000, 28, 28], &[0; 16]), 3).unwrap_err();
        assert!(err.contains("announces 47040000 values"), "{err}");
    }
}
