//! A labelled set of images (bytes or floats, one flattened row per image), and its batches
//! as tensors with the pixels scaled.

use std::sync::Arc;

use burn::tensor::{Device, Int, Tensor, TensorData};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// The stored pixel values of a set, row-major `[len, features]`.
#[derive(Debug, Clone)]
pub enum Pixels {
    /// Unsigned bytes (MNIST, CIFAR-10, uint8 arrays).
    Bytes(Arc<[u8]>),
    /// Floats (float32 arrays).
    Floats(Arc<[f32]>),
}

/// How stored pixel values become network inputs: `"auto"` in a config (bytes divided by
/// 255, floats as they are), or a number every stored value is multiplied by.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum PixelScale {
    /// Bytes divided by 255, floats as they are.
    #[default]
    Auto,
    /// Every stored value multiplied by this factor.
    Factor(f64),
}

impl Serialize for PixelScale {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            PixelScale::Auto => s.serialize_str("auto"),
            PixelScale::Factor(f) => s.serialize_f64(*f),
        }
    }
}

impl<'de> Deserialize<'de> for PixelScale {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(f64),
            Integer(i64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Number(f) => Ok(PixelScale::Factor(f)),
            Raw::Integer(i) => Ok(PixelScale::Factor(i as f64)),
            Raw::Text(t) if t == "auto" => Ok(PixelScale::Auto),
            Raw::Text(t) => Err(serde::de::Error::custom(format!(
                "expected \"auto\" or a number, got {t:?}"
            ))),
        }
    }
}

/// Images and their labels.
#[derive(Debug, Clone)]
pub struct ImageSet {
    features: usize,
    /// The shape of one image as stored (`[28, 28]`, `[3, 32, 32]`, a sequence's `[T, D]`);
    /// its product is `features`.
    shape: Arc<[usize]>,
    pixels: Pixels,
    scale: PixelScale,
    labels: Arc<[u32]>,
    classes: usize,
}

/// A batch ready for a network.
#[derive(Debug, Clone)]
pub struct ImageBatch {
    /// Scaled pixels, `[batch, features]`.
    pub images: Tensor<2>,
    /// Class labels, `[batch]`.
    pub targets: Tensor<1, Int>,
}

impl ImageSet {
    /// Wraps flattened images and their labels.
    ///
    /// # Panics
    /// If the pixels are not one row of `features` per label, or a label is not below
    /// `classes`: readers validate files before they build a set.
    pub fn new(features: usize, pixels: Pixels, labels: Vec<u32>, classes: usize) -> Self {
        let len = match &pixels {
            Pixels::Bytes(p) => p.len(),
            Pixels::Floats(p) => p.len(),
        };
        assert_eq!(len, features * labels.len(), "one row per label");
        assert!(
            labels.iter().all(|&l| (l as usize) < classes),
            "labels < classes"
        );
        Self {
            features,
            shape: vec![features].into(),
            pixels,
            scale: PixelScale::Auto,
            labels: labels.into(),
            classes,
        }
    }

    /// Byte images (see [`ImageSet::new`]).
    ///
    /// # Panics
    /// As [`ImageSet::new`].
    pub fn from_bytes(features: usize, pixels: Vec<u8>, labels: Vec<u32>, classes: usize) -> Self {
        Self::new(features, Pixels::Bytes(pixels.into()), labels, classes)
    }

    /// The set with its pixels scaled by `scale`.
    pub fn with_scale(self, scale: PixelScale) -> Self {
        Self { scale, ..self }
    }

    /// The set with `shape` as the shape of one image as stored (row-major, the last axis
    /// fastest): `[rows, cols]` of an idx file, `[3, 32, 32]` of CIFAR-10, `[T, D]` of a
    /// sequence. Only the readers' validation uses it (a recurrent network's steps must cut
    /// along it); the flattened pixels are what the networks read.
    ///
    /// # Panics
    /// If the product of `shape` is not [`ImageSet::features`].
    pub fn with_shape(self, shape: Vec<usize>) -> Self {
        assert_eq!(
            shape.iter().product::<usize>(),
            self.features,
            "the shape of one image holds its pixels"
        );
        Self {
            shape: shape.into(),
            ..self
        }
    }

    /// The shape of one image as stored (see [`ImageSet::with_shape`]); `[features]` where
    /// the reader knows no other.
    pub fn shape(&self) -> &[usize] {
        &self.shape
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
    pub fn labels(&self) -> &[u32] {
        &self.labels
    }

    /// The stored pixel values.
    pub fn stored(&self) -> &Pixels {
        &self.pixels
    }

    /// How the stored values are scaled.
    pub fn scale(&self) -> PixelScale {
        self.scale
    }

    /// The scaled pixels of image `index`, as a network sees them.
    ///
    /// # Panics
    /// If `index` is not below [`ImageSet::len`].
    pub fn pixels(&self, index: usize) -> Vec<f32> {
        let mut row = vec![0.0; self.features];
        self.fill_row(index, &mut row);
        row
    }

    fn fill_row(&self, index: usize, row: &mut [f32]) {
        let at = index * self.features..(index + 1) * self.features;
        match (&self.pixels, self.scale) {
            // Division, not a multiplication by 1/255: the values of every earlier version.
            (Pixels::Bytes(p), PixelScale::Auto) => {
                for (value, &byte) in row.iter_mut().zip(&p[at]) {
                    *value = f32::from(byte) / 255.0;
                }
            }
            (Pixels::Bytes(p), PixelScale::Factor(f)) => {
                let f = f as f32;
                for (value, &byte) in row.iter_mut().zip(&p[at]) {
                    *value = f32::from(byte) * f;
                }
            }
            (Pixels::Floats(p), PixelScale::Auto) => row.copy_from_slice(&p[at]),
            (Pixels::Floats(p), PixelScale::Factor(f)) => {
                let f = f as f32;
                for (value, &x) in row.iter_mut().zip(&p[at]) {
                    *value = x * f;
                }
            }
        }
    }

    /// The first `count` images, as the paper trains on the first 10,000 MNIST images.
    pub fn first(&self, count: usize) -> Self {
        let count = count.min(self.len());
        let rows = count * self.features;
        Self {
            features: self.features,
            shape: self.shape.clone(),
            pixels: match &self.pixels {
                Pixels::Bytes(p) => Pixels::Bytes(p[..rows].into()),
                Pixels::Floats(p) => Pixels::Floats(p[..rows].into()),
            },
            scale: self.scale,
            labels: self.labels[..count].into(),
            classes: self.classes,
        }
    }

    /// Images `indices` as one batch on `device`.
    ///
    /// # Shapes
    /// - images: `[indices.len(), features]`, targets: `[indices.len()]`
    ///
    /// # Panics
    /// If an index is not below [`ImageSet::len`].
    pub fn batch(&self, indices: impl IntoIterator<Item = usize>, device: &Device) -> ImageBatch {
        let indices: Vec<usize> = indices.into_iter().collect();
        let mut pixels = vec![0.0; indices.len() * self.features];
        // Rows in parallel; the division vectorises (a table of p / 255 does not).
        pixels
            .par_chunks_mut(self.features.max(1))
            .zip(&indices)
            .for_each(|(row, &index)| self.fill_row(index, row));
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

    /// Feeds every stored byte of the set (shape, labels, pixels, scale) to `update`: for
    /// fingerprints of the data a run was trained on.
    pub fn hash_into(&self, mut update: impl FnMut(&[u8])) {
        for n in [self.len(), self.features, self.classes] {
            update(&(n as u64).to_le_bytes());
        }
        for label in self.labels.iter() {
            update(&label.to_le_bytes());
        }
        match &self.pixels {
            Pixels::Bytes(p) => update(p),
            Pixels::Floats(p) => {
                for chunk in p.chunks(4096) {
                    let bytes: Vec<u8> = chunk.iter().flat_map(|x| x.to_le_bytes()).collect();
                    update(&bytes);
                }
            }
        }
        match self.scale {
            PixelScale::Auto => update(b"auto"),
            PixelScale::Factor(f) => update(&f.to_le_bytes()),
        }
    }
}
