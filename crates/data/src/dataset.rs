//! The image sets as burn datasets: [`ImageSet`] is a [`Dataset`] of [`ImageItem`]s, and
//! [`ImageBatcher`] is the [`Batcher`] that turns items into an [`ImageBatch`], so that
//! burn's `DataLoaderBuilder` (or credit's seeded loaders in `credit-train`) can batch them.

use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::{Dataset, DatasetError};
use burn::tensor::{Device, Tensor, TensorData};

use crate::image_set::{ImageBatch, ImageSet};

/// One image as a network sees it, with its label.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageItem {
    /// The scaled pixels, `[features]`.
    pub pixels: Vec<f32>,
    /// The class label, below the set's number of classes.
    pub label: u32,
}

/// An index past the end of a set.
#[derive(Debug, thiserror::Error)]
#[error("no image {index} in a set of {len}")]
pub struct OutOfRange {
    /// The index asked for.
    pub index: usize,
    /// The set's length.
    pub len: usize,
}

impl Dataset<ImageItem> for ImageSet {
    /// Image `index`.
    ///
    /// # Errors
    /// [`OutOfRange`] if `index` is not below the set's length.
    fn get(&self, index: usize) -> Result<ImageItem, DatasetError> {
        if index >= self.len() {
            return Err(DatasetError::new(OutOfRange {
                index,
                len: self.len(),
            }));
        }
        Ok(ImageItem {
            pixels: self.pixels(index),
            label: self.labels()[index],
        })
    }

    fn len(&self) -> usize {
        ImageSet::len(self)
    }
}

/// Stacks [`ImageItem`]s of `features` pixels into an [`ImageBatch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageBatcher {
    /// Pixels per image.
    pub features: usize,
}

impl ImageBatcher {
    /// A batcher for images of `features` pixels.
    pub fn new(features: usize) -> Self {
        Self { features }
    }
}

impl Batcher<ImageItem, ImageBatch> for ImageBatcher {
    /// # Shapes
    /// - images: `[items.len(), features]`, targets: `[items.len()]`
    ///
    /// # Panics
    /// If an item does not have `features` pixels.
    fn batch(&self, items: Vec<ImageItem>, device: &Device) -> ImageBatch {
        let n = items.len();
        let mut pixels = Vec::with_capacity(n * self.features);
        let mut targets = Vec::with_capacity(n);
        for item in items {
            assert_eq!(item.pixels.len(), self.features, "pixels per image");
            pixels.extend_from_slice(&item.pixels);
            targets.push(i64::from(item.label));
        }
        ImageBatch {
            images: Tensor::from_data(TensorData::new(pixels, [n, self.features]), device),
            targets: Tensor::from_data(TensorData::new(targets, [n]), device),
        }
    }
}
