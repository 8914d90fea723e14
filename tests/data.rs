//! The committed MNIST, malformed IDX files, and the CIFAR-10 reader on generated files.

mod common;

use std::io::Write;
use std::path::Path;

use credit_data::{load_cifar10_dir, load_idx_dir, read_idx};

fn mnist_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/data/mnist"))
}

#[test]
fn the_committed_mnist_parses_completely() {
    let splits = load_idx_dir(mnist_dir()).unwrap();
    assert_eq!(splits.train.len(), 60_000);
    assert_eq!(splits.test.len(), 10_000);
    assert_eq!(splits.train.features(), 784);
    assert_eq!(splits.train.shape(), [28, 28]);
    assert_eq!(
        &splits.train.labels()[..10],
        &[5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    );
    assert_eq!(&splits.test.labels()[..10], &[7, 2, 1, 0, 4, 1, 4, 9, 5, 9]);
    let mut counts = [0usize; 10];
    for &label in splits.train.labels() {
        counts[label as usize] += 1;
    }
    assert_eq!(
        counts,
        [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    );
    // The first training image (a 5) has ink in its middle rows and a blank border.
    let first = splits.train.pixels(0);
    assert_eq!(first[0], 0.0);
    assert!(first.iter().filter(|&&p| p > 0.0).count() > 100);
    assert!(first.iter().all(|&p| (0.0..=1.0).contains(&p)));

    let batch = splits.train.first(10_000).batch(0..3, &common::device());
    assert_eq!(batch.images.dims(), [3, 784]);
    let pixels = common::values(batch.images);
    assert!(pixels.iter().all(|&p| (0.0..=1.0).contains(&p)));
    assert!(pixels.contains(&1.0), "pixels/255 reaches 1");
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::File::create(&path)
        .unwrap()
        .write_all(bytes)
        .unwrap();
    path
}

fn header(magic_type: u8, dims: &[u32]) -> Vec<u8> {
    let mut bytes = vec![0, 0, magic_type, dims.len() as u8];
    for d in dims {
        bytes.extend_from_slice(&d.to_be_bytes());
    }
    bytes
}

#[test]
fn malformed_idx_files_are_errors_that_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut good = header(8, &[2, 2, 2]);
    good.extend_from_slice(&[1; 8]);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "magic.idx",
            b"\x89PNG\r\n\x1a\n\0\0\0\0".to_vec(),
            "bad magic",
        ),
        (
            "truncated.idx",
            good[..good.len() - 3].to_vec(),
            "truncated",
        ),
        (
            "header.idx",
            header(8, &[60_000, 28, 28]),
            "announces 47040000 values",
        ),
        (
            "huge.idx",
            header(8, &[u32::MAX, u32::MAX, u32::MAX]),
            "overflow",
        ),
        ("zero.idx", header(8, &[0, 28, 28]), "dimension 0 is zero"),
        ("short.idx", vec![0, 0], "shorter than the IDX magic"),
        ("rank.idx", header(8, &[5]), "expected 3"),
    ];
    for (name, bytes, expected) in cases {
        let path = write(dir.path(), name, &bytes);
        let message = read_idx(&path, 3).unwrap_err().to_string();
        assert!(message.contains(name), "{message:?} names the file");
        assert!(message.contains(expected), "{message:?} says {expected:?}");
    }
    let gz = write(dir.path(), "broken.idx.gz", b"not gzip at all");
    let message = read_idx(&gz, 3).unwrap_err().to_string();
    assert!(
        message.contains("broken.idx.gz") && message.contains("gzip"),
        "{message}"
    );

    let missing = load_idx_dir(dir.path()).unwrap_err().to_string();
    assert!(missing.contains("train-images-idx3-ubyte"), "{missing}");
}

#[test]
fn mismatched_image_and_label_counts_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    for prefix in ["train", "t10k"] {
        let mut images = header(8, &[3, 2, 2]);
        images.extend_from_slice(&[0; 12]);
        write(dir.path(), &format!("{prefix}-images-idx3-ubyte"), &images);
        let mut labels = header(8, &[2]);
        labels.extend_from_slice(&[1, 2]);
        write(dir.path(), &format!("{prefix}-labels-idx1-ubyte"), &labels);
    }
    let message = load_idx_dir(dir.path()).unwrap_err().to_string();
    assert!(message.contains("holds 2 labels but"), "{message}");
}

#[test]
fn cifar10_binary_batches_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let record = |label: u8, fill: u8| {
        let mut r = vec![label];
        r.extend(std::iter::repeat_n(fill, 3072));
        r
    };
    let train: Vec<u8> = [record(3, 10), record(9, 20)].concat();
    write(dir.path(), "data_batch_1.bin", &train);
    write(dir.path(), "data_batch_2.bin", &record(0, 30));
    write(dir.path(), "test_batch.bin", &record(7, 40));
    let splits = load_cifar10_dir(dir.path()).unwrap();
    assert_eq!(splits.train.len(), 3);
    assert_eq!(splits.train.labels(), &[3, 9, 0]);
    assert_eq!(splits.train.features(), 3072);
    assert_eq!(splits.train.shape(), [3, 32, 32]);
    assert_eq!(splits.train.pixels(1)[3071], 20.0 / 255.0);
    assert_eq!(splits.test.labels(), &[7]);

    write(dir.path(), "data_batch_3.bin", &train[..100]);
    let message = load_cifar10_dir(dir.path()).unwrap_err().to_string();
    assert!(
        message.contains("data_batch_3.bin") && message.contains("3073-byte"),
        "{message}"
    );
    write(dir.path(), "data_batch_3.bin", &record(12, 0));
    let message = load_cifar10_dir(dir.path()).unwrap_err().to_string();
    assert!(message.contains("label 12"), "{message}");
}
