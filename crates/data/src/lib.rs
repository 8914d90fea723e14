//! Data for credit: readers for IDX files (MNIST, Fashion-MNIST, raw or gzip) and CIFAR-10's
//! binary batches, every error naming its file, and batches of the resulting [`ImageSet`] as
//! tensors (pixels scaled to `[0, 1]`).

mod error;
mod idx;
mod image_set;
mod sources;

pub use error::DataError;
pub use idx::{IdxArray, read_idx};
pub use image_set::{ImageBatch, ImageSet};
pub use sources::{Format, Splits, load, load_cifar10_dir, load_idx_dir, read_cifar10};
