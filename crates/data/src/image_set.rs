//! A labelled set of byte images, and its batches as tensors with pixels scaled to `[0, 1]`.

use std::sync::Arc;

use burn::tensor::{Device, Int, Tensor, TensorData};
use rayon::prelude::*;

/// Images stored as raw bytes, one flattened row of `features` bytes per image.
#[derive(Debug, Clone)]
pub struct ImageSet {
    features: usize,
    pixels: Arc<[u8]>,
    labels: Arc<[u8]>,
    classes: usize,
}

/// A batch ready for a network.
#[derive(Debug, Clone)]
pub struct ImageBatch {
    /// Pixels scaled to `[0, 1]`, `[batch, features]`.
    pub images: Tensor<2>,
    /// Class labels, `[batch]`.
    pub targets: Tensor<1, Int>,
}

impl ImageSet {
    /// Wraps flattened images and their labels. Panics if the lengths disagree or a label is not
    /// below `classes`: readers validate files before they build a set.
    pub fn new(features: usize, pixels: Vec<u8>, labels: Vec<u8>, classes: usize) -> Self {
        assert_eq!(pixels.len(), features * labels.len(), "one row per label");
        assert!(
            labels.iter().all(|&l| (l as usize) < classes),
            "labels < classes"
        );
        Self {
            features,
            pixels: pixels.into(),
            labels: labels.into(),
            classes,
        }
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the set holds no image.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Pixels per image (784 for MNIST, 3072 for CIFAR-10).
    pub fn features(&self) -> usize {
        self.features
    }

    /// Number of classes.
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// All labels in order.
    pub fn labels(&self) -> &[u8] {
        &self.labels
    }

    /// The raw bytes of every image, row-major `[len, features]`.
    pub fn pixel_bytes(&self) -> &[u8] {
        &self.pixels
    }

    /// The raw bytes of image `index`.
    pub fn pixels(&self, index: usize) -> &[u8] {
        &self.pixels[index * self.features..(index + 1) * self.features]
    }

    /// The first `count` images, as the paper trains on the first 10,000 MNIST images.
    pub fn first(&self, count: usize) -> Self {
        let count = count.min(self.len());
        Self {
            features: self.features,
            pixels: self.pixels[..count * self.features].into(),
            labels: self.labels[..count].into(),
            classes: self.classes,
        }
    }

    /// Images `indices` as one batch on `device`.
    ///
    /// # Shapes
    /// - images: `[indices.len(), features]`, targets: `[indices.len()]`
    pub fn batch(&self, indices: impl IntoIterator<Item = usize>, device: &Device) -> ImageBatch {
        let indices: Vec<usize> = indices.into_iter().collect();
        let mut pixels = vec![0.0; indices.len() * self.features];
        // Rows in parallel; the division vectorises (a table of p / 255 does not).
        pixels
            .par_chunks_mut(self.features.max(1))
            .zip(&indices)
            .for_each(|(row, &index)| {
                for (value, &byte) in row.iter_mut().zip(self.pixels(index)) {
                    *value = f32::from(byte) / 255.0;
                }
            });
        let targets: Vec<i64> = indices
            .iter()
            .map(|&index| i64::from(self.labels[index]))
            .collect();
        let batch = targets.len();
        ImageBatch {
            images: Tensor::from_data(TensorData::new(pixels, [batch, self.features]), device),
            targets: Tensor::from_data(TensorData::new(targets, [batch]), device),
        }
    }

    /// The whole set as one batch.
    pub fn all(&self, device: &Device) -> ImageBatch {
        self.batch(0..self.len(), device)
    }
}
