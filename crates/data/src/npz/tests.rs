//! Tests of the numpy readers on generated and malformed arrays.

use super::*;
use npyz::WriterBuilder;
use std::io::Write;

/// One `.npy` of `values` with `shape`.
fn npy<T: npyz::AutoSerialize + Copy>(shape: &[u64], values: &[T]) -> Vec<u8> {
    let mut bytes = Vec::new();
    {
        let mut writer = npyz::WriteOptions::new()
            .default_dtype()
            .shape(shape)
            .writer(&mut bytes)
            .begin_nd()
            .unwrap();
        writer.extend(values.iter().copied()).unwrap();
        writer.finish().unwrap();
    }
    bytes
}

/// A uint8 `[3, 4]` array stored in Fortran order.
fn fortran() -> Vec<u8> {
    let mut bytes = Vec::new();
    {
        let mut writer = npyz::WriteOptions::new()
            .default_dtype()
            .order(npyz::Order::Fortran)
            .shape(&[3, 4])
            .writer(&mut bytes)
            .begin_nd()
            .unwrap();
        writer.extend([0u8; 12]).unwrap();
        writer.finish().unwrap();
    }
    bytes
}

/// A uint8 `[3, 4]` array missing its last two values.
fn truncated() -> Vec<u8> {
    let mut bytes = npy(&[3, 4], &[7u8; 12]);
    bytes.truncate(bytes.len() - 2);
    bytes
}

fn archive(dir: &Path, members: &[(&str, Vec<u8>)]) -> std::path::PathBuf {
    let path = dir.join("data.npz");
    let mut zip = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
    for (name, bytes) in members {
        zip.start_file(
            format!("{name}.npy"),
            zip::write::SimpleFileOptions::default(),
        )
        .unwrap();
        zip.write_all(bytes).unwrap();
    }
    zip.finish().unwrap();
    path
}

fn good() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        (
            "x_train",
            npy(&[3, 2, 2], &[0u8, 255, 10, 20, 1, 2, 3, 4, 5, 6, 7, 8]),
        ),
        ("y_train", npy(&[3], &[1i64, 26, 5])),
        ("x_test", npy(&[1, 4], &[0.5f32, 0.25, 1.0, 0.0])),
        ("y_test", npy(&[1], &[2u8])),
    ]
}

#[test]
fn malformed_npy_files_are_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, Vec<u8>, &str); 5] = [
        ("fortran.npy", fortran(), "Fortran (column-major) order"),
        ("short.npy", truncated(), "the file is truncated"),
        (
            "nan.npy",
            npy(&[2, 2], &[0.0f32, 1.0, f32::NAN, 0.5]),
            "image 1 has a pixel that is not finite (NaN)",
        ),
        ("scalar.npy", npy(&[], &[1u8]), "a scalar"),
        ("text.npy", b"x_train".to_vec(), "not an npy array"),
    ];
    for (name, bytes, expected) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let error = read_npy_images(&path).unwrap_err().to_string();
        assert!(
            error.contains(name) && error.contains(expected),
            "{name}: {error}"
        );
    }
    let path = dir.path().join("ok.npy");
    std::fs::write(&path, npy(&[2, 2, 2], &[0.25f32; 8])).unwrap();
    let (images, shape) = read_npy_images(&path).unwrap();
    assert_eq!((images.len(), shape), (2, vec![2, 2]));
}

#[test]
fn generated_arrays_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = archive(dir.path(), &good());
    let splits = load_npz(&path, 27, 0).unwrap();
    assert_eq!((splits.train.len(), splits.train.features()), (3, 4));
    // The shape of one sample as stored: x_train [3, 2, 2], x_test [1, 4].
    assert_eq!(
        (splits.train.shape(), splits.test.shape()),
        (&[2, 2][..], &[4][..])
    );
    assert_eq!(splits.train.first(2).shape(), [2, 2]);
    assert_eq!(splits.train.labels(), &[1, 26, 5]);
    assert_eq!(
        splits.train.pixels(0),
        vec![0.0, 1.0, 10.0 / 255.0, 20.0 / 255.0]
    );
    assert_eq!(splits.test.pixels(0), vec![0.5, 0.25, 1.0, 0.0]);
    // Labels 1..26 shifted to 0..25.
    let shifted = load_npz(&path, 26, 1).unwrap();
    assert_eq!(shifted.train.labels(), &[0, 25, 4]);
}

#[test]
fn malformed_arrays_are_errors_naming_the_array() {
    let dir = tempfile::tempdir().unwrap();
    let cases: Vec<(usize, Vec<u8>, &str)> = vec![
        (0, npy(&[3, 4], &[0i32; 12]), "x_train: integer images"),
        (1, npy(&[2], &[1i64, 2]), "y_train: 2 labels for 3 images"),
        (
            1,
            npy(&[3, 1, 1], &[1i64, 2, 3]),
            "y_train: labels must be one-dimensional",
        ),
        (
            1,
            npy(&[3], &[1.0f32, 2.0, 3.0]),
            "y_train: labels must be integers",
        ),
        (
            1,
            npy(&[3], &[1i64, 99, 3]),
            "label 99 of example 1 is not in [0, 27)",
        ),
        (
            2,
            npy(&[1, 5], &[0.0f32; 5]),
            "x_train has 4 pixels per image, x_test 5",
        ),
        (
            0,
            npy(&[0, 4], &[0u8; 0]),
            "x_train: shape [0, 4] holds no images",
        ),
        (
            2,
            npy(&[1, 4], &[0.5f32, f32::NAN, 0.0, 1.0]),
            "x_test: image 0 has a pixel that is not finite",
        ),
        (
            0,
            npy(
                &[3, 4],
                &[
                    0.0f32,
                    1.0,
                    0.0,
                    0.0,
                    0.0,
                    0.0,
                    0.0,
                    f32::INFINITY,
                    0.0,
                    0.0,
                    0.0,
                    0.0,
                ],
            ),
            "x_train: image 1 has a pixel that is not finite (inf)",
        ),
        (
            0,
            fortran(),
            "x_train: stored in Fortran (column-major) order",
        ),
        (0, truncated(), "x_train: its header announces 12 bytes"),
        (0, npy(&[3, 4], &[true; 12]), "dtype '|b1' is not supported"),
    ];
    for (member, bytes, expected) in cases {
        let mut members = good();
        members[member].1 = bytes;
        let path = archive(dir.path(), &members);
        let error = load_npz(&path, 27, 0).unwrap_err().to_string();
        assert!(
            error.contains(expected) && error.contains("data.npz"),
            "{expected}: {error}"
        );
    }
    let mut missing = good();
    missing.remove(3);
    let error = load_npz(&archive(dir.path(), &missing), 27, 0)
        .unwrap_err()
        .to_string();
    assert!(error.contains("no array y_test"), "{error}");
    std::fs::write(dir.path().join("bad.npz"), b"not a zip").unwrap();
    let error = load_npz(&dir.path().join("bad.npz"), 27, 0)
        .unwrap_err()
        .to_string();
    assert!(error.contains("not an npz"), "{error}");
}
