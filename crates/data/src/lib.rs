//! Data for credit: readers for IDX files (MNIST, Fashion-MNIST, EMNIST; raw or gzip),
//! CIFAR-10's binary batches and numpy arrays (`.npz`, `.npy`), every error naming its file,
//! and batches of the resulting [`ImageSet`] as tensors: an [`ImageSet`] is a burn
//! `Dataset` of [`ImageItem`]s, batched by [`ImageBatcher`].

#![deny(missing_docs)]

mod dataset;
mod error;
mod idx;
mod image_set;
mod inputs;
mod npz;
mod sources;

pub use dataset::{ImageBatcher, ImageItem, OutOfRange};
pub use error::DataError;
pub use idx::{IdxArray, read_idx};
pub use image_set::{ImageBatch, ImageSet, PixelScale, Pixels};
pub use inputs::{Inputs, RESIZE_METHOD, load_inputs};
pub use npz::{load_npz, load_npz_images, load_npz_labels, npz_holds_bytes, read_npy_images};
pub use sources::{
    CLASSES, Format, Source, Splits, load, load_cifar10_dir, load_idx_dir, read_cifar10,
};
