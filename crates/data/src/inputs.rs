//! Images to predict on or to test out-of-distribution detection with, whatever their form:
//! a `.npy` array, an IDX images file, an IDX folder or `.npz` (their test images), or PNG and
//! JPEG pictures (a file or a folder of them). Where the input carries labels (an IDX folder's
//! `t10k-labels-idx1-ubyte`, the labels file beside an IDX images file, a `.npz`'s `y_test`),
//! they are read as stored, for comparison with the predictions; they never enter the model.

use std::path::{Path, PathBuf};

use crate::error::DataError;
use crate::idx::read_idx;
use crate::image_set::{ImageSet, Pixels};

/// Images loaded for a network with `features` inputs, and a name for each (file name, or
/// `FILE[i]`).
#[derive(Debug, Clone)]
pub struct Inputs {
    /// The images, every label 0.
    pub images: ImageSet,
    /// One name per image.
    pub names: Vec<String>,
    /// The shape of one image as stored (`[28, 28]`, `[32, 32, 3]`, ...; pictures
    /// `[side, side]`).
    pub image_shape: Vec<usize>,
    /// The true label of each image as stored (no `data.label_offset` applied), where the
    /// input carries labels; `None` for `.npy` arrays and pictures.
    pub labels: Option<Vec<i64>>,
}

/// How pictures become inputs: converted to grey (luma), resized to `side × side` with a
/// bilinear filter (`image`'s `FilterType::Triangle`), one byte per pixel, and optionally
/// inverted (MNIST digits are white on black).
pub const RESIZE_METHOD: &str = "grey (luma), bilinear resize to the model's square input";

fn is_picture(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| ["png", "jpg", "jpeg"].contains(&e.to_ascii_lowercase().as_str()))
}

/// Loads `path` for a network of `features` inputs (see the module documentation).
///
/// # Errors
/// If it cannot be read, is none of the forms above, or its images do not have `features`
/// pixels (pictures: if `features` is not a square); the error names the file.
pub fn load_inputs(path: &Path, features: usize, invert: bool) -> Result<Inputs, DataError> {
    let inputs = if path.is_dir() {
        let pictures = pictures_in(path)?;
        if pictures.is_empty() {
            // An IDX folder: its test images.
            let file = ["t10k-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte"]
                .iter()
                .map(|n| path.join(n))
                .find(|p| p.is_file())
                .ok_or_else(|| {
                    DataError::invalid(
                        path,
                        "holds neither PNG/JPEG pictures nor t10k-images-idx3-ubyte(.gz)",
                    )
                })?;
            idx_images(&file)?.with_labels(idx_labels_beside(&file)?)?
        } else {
            pictures_set(&pictures, features, invert)?
        }
    } else if is_picture(path) {
        pictures_set(&[path.to_path_buf()], features, invert)?
    } else {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name.ends_with(".npy") {
            let (images, shape) = crate::npz::read_npy_images(path)?;
            named(images, shape, path)
        } else if name.ends_with(".npz") {
            let (images, shape) = crate::npz::load_npz_images(path, "x_test")?;
            let labels = crate::npz::load_npz_labels(path, "y_test")?;
            named(images, shape, path).with_labels(labels)?
        } else {
            idx_images(path)?.with_labels(idx_labels_beside(path)?)?
        }
    };
    if inputs.images.features() != features {
        return Err(DataError::invalid(
            path,
            format!(
                "its images have {} pixels, the network takes {features}",
                inputs.images.features()
            ),
        ));
    }
    Ok(inputs)
}

impl Inputs {
    /// These inputs with the labels read from `source`, which must hold one per image.
    fn with_labels(mut self, source: Option<(PathBuf, Vec<i64>)>) -> Result<Self, DataError> {
        if let Some((path, labels)) = source {
            if labels.len() != self.images.len() {
                return Err(DataError::invalid(
                    &path,
                    format!(
                        "holds {} labels for {} images",
                        labels.len(),
                        self.images.len()
                    ),
                ));
            }
            self.labels = Some(labels);
        }
        Ok(self)
    }
}

/// The labels file beside an IDX images file (`X-images-idx3-ubyte[.gz]` beside
/// `X-labels-idx1-ubyte[.gz]`), read, if there is one.
fn idx_labels_beside(images: &Path) -> Result<Option<(PathBuf, Vec<i64>)>, DataError> {
    let Some(name) = images.file_name().and_then(|n| n.to_str()) else {
        return Ok(None);
    };
    let Some(prefix) = name
        .split("-images-idx3-ubyte")
        .next()
        .filter(|p| *p != name)
    else {
        return Ok(None);
    };
    let dir = images.parent().unwrap_or(Path::new(""));
    let Some(path) = ["-labels-idx1-ubyte.gz", "-labels-idx1-ubyte"]
        .iter()
        .map(|suffix| dir.join(format!("{prefix}{suffix}")))
        .find(|p| p.is_file())
    else {
        return Ok(None);
    };
    let array = read_idx(&path, 1)?;
    let labels = array.data.iter().map(|&l| i64::from(l)).collect();
    Ok(Some((path, labels)))
}

fn named(images: ImageSet, image_shape: Vec<usize>, path: &Path) -> Inputs {
    let file = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let names = (0..images.len()).map(|i| format!("{file}[{i}]")).collect();
    Inputs {
        images,
        names,
        image_shape,
        labels: None,
    }
}

/// The images of an IDX images file `[N, rows, cols]`.
fn idx_images(path: &Path) -> Result<Inputs, DataError> {
    let array = read_idx(path, 3)?;
    let n = array.dims[0];
    let features = array.dims[1] * array.dims[2];
    let images = ImageSet::new(features, Pixels::Bytes(array.data.into()), vec![0; n], 1);
    Ok(named(images, vec![array.dims[1], array.dims[2]], path))
}

/// The PNG and JPEG files of a folder, in name order.
fn pictures_in(dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    let entries = std::fs::read_dir(dir).map_err(|e| DataError::io(dir, e))?;
    let mut pictures: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let hidden = p
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'));
            !hidden && p.is_file() && is_picture(p)
        })
        .collect();
    pictures.sort();
    Ok(pictures)
}

/// Pictures as grey `side × side` byte images, `side² = features`.
fn pictures_set(files: &[PathBuf], features: usize, invert: bool) -> Result<Inputs, DataError> {
    let side = (features as f64).sqrt().round() as u32;
    if (side as usize) * (side as usize) != features {
        return Err(DataError::invalid(
            &files[0],
            format!(
                "the network takes {features} inputs, not a square picture: give a .npy array instead"
            ),
        ));
    }
    let mut pixels = Vec::with_capacity(files.len() * features);
    let mut names = Vec::with_capacity(files.len());
    for file in files {
        let picture = image::ImageReader::open(file)
            .map_err(|e| DataError::io(file, e))?
            .with_guessed_format()
            .map_err(|e| DataError::io(file, e))?
            .decode()
            .map_err(|e| DataError::invalid(file, format!("not a readable picture ({e})")))?;
        // Transparent parts show the background: dark for light-on-dark digits, light for
        // dark-on-light ones (`invert`).
        let background = if invert { 255.0 } else { 0.0 };
        let with_alpha = picture.to_luma_alpha8();
        let grey = image::GrayImage::from_fn(with_alpha.width(), with_alpha.height(), |x, y| {
            let image::LumaA([luma, alpha]) = *with_alpha.get_pixel(x, y);
            let a = f32::from(alpha) / 255.0;
            image::Luma([(f32::from(luma) * a + background * (1.0 - a)).round() as u8])
        });
        let grey = if grey.dimensions() == (side, side) {
            grey
        } else {
            image::imageops::resize(&grey, side, side, image::imageops::FilterType::Triangle)
        };
        pixels.extend(
            grey.as_raw()
                .iter()
                .map(|&p| if invert { 255 - p } else { p }),
        );
        names.push(
            file.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        );
    }
    let images = ImageSet::new(
        features,
        Pixels::Bytes(pixels.into()),
        vec![0; names.len()],
        1,
    );
    Ok(Inputs {
        images,
        names,
        image_shape: vec![side as usize; 2],
        labels: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pictures_are_grey_resized_and_optionally_inverted() {
        let dir = tempfile::tempdir().unwrap();
        // A 4x4 white picture with a black top-left pixel, as RGB.
        let mut picture = image::RgbImage::from_pixel(4, 4, image::Rgb([255, 255, 255]));
        picture.put_pixel(0, 0, image::Rgb([0, 0, 0]));
        let path = dir.path().join("a.png");
        picture.save(&path).unwrap();
        let inputs = load_inputs(&path, 16, false).unwrap();
        assert_eq!(inputs.names, ["a.png"]);
        let row = inputs.images.pixels(0);
        assert_eq!((row[0], row[1]), (0.0, 1.0));
        let inverted = load_inputs(&path, 16, true).unwrap().images.pixels(0);
        assert_eq!((inverted[0], inverted[1]), (1.0, 0.0));
        // Resized to 2x2 for a network of 4 inputs; a folder reads its pictures in order.
        picture.save(dir.path().join("b.jpg")).unwrap();
        let folder = load_inputs(dir.path(), 4, false).unwrap();
        assert_eq!(folder.names, ["a.png", "b.jpg"]);
        assert_eq!(folder.images.features(), 4);
        let error = load_inputs(&path, 10, false).unwrap_err().to_string();
        assert!(
            error.contains("not a square") && error.contains("a.png"),
            "{error}"
        );
    }

    #[test]
    fn transparent_pixels_show_the_background_and_hidden_files_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        // A fully transparent picture whose colour channels are black, beside a half
        // transparent white one; the background is black, or white for dark-on-light (`invert`).
        image::RgbaImage::from_pixel(2, 2, image::Rgba([0, 0, 0, 0]))
            .save(dir.path().join("clear.png"))
            .unwrap();
        image::RgbaImage::from_pixel(2, 2, image::Rgba([255, 255, 255, 128]))
            .save(dir.path().join("half.png"))
            .unwrap();
        // Hidden files (editor or macOS `._` copies) are not inputs, even when they end in .png.
        std::fs::write(dir.path().join("._clear.png"), b"resource fork").unwrap();
        let plain = load_inputs(dir.path(), 4, false).unwrap();
        assert_eq!(plain.names, ["clear.png", "half.png"]);
        assert_eq!(plain.images.pixels(0), [0.0; 4]);
        let half = 128.0 / 255.0;
        assert_eq!(plain.images.pixels(1), [half; 4]);
        // Inverted: a clear picture on a white page is white, then inverted to 0.
        let inverted = load_inputs(dir.path(), 4, true).unwrap();
        assert_eq!(inverted.images.pixels(0), [0.0; 4]);
        assert_eq!(inverted.images.pixels(1), [0.0; 4]);
    }
}
