//! Tests of `fit_inputs`: inputs unlike the training data are refused.

use super::*;
use credit_data::{Inputs, Pixels};
use std::path::Path;

fn config(text: &str) -> credit_train::RunConfig {
    credit_train::RunConfig::parse(text, &[]).unwrap()
}

fn inputs(pixels: Pixels, image_shape: Vec<usize>) -> Inputs {
    let features = image_shape.iter().product();
    Inputs {
        images: ImageSet::new(features, pixels, vec![0], 10),
        names: vec!["0".into()],
        image_shape,
        labels: None,
    }
}

#[test]
fn inputs_unlike_the_training_data_are_refused_naming_the_file() {
    let path = Path::new("x.npy");
    // A fixed byte factor would misscale floats (and a float factor bytes).
    let scaled = config("[model]\nsizes = [4, 2]\n[data]\ndir = \"d\"\npixel_scale = 0.5\n");
    let floats = || inputs(Pixels::Floats(vec![0.5; 4].into()), vec![2, 2]);
    let bytes = || inputs(Pixels::Bytes(vec![3u8; 4].into()), vec![2, 2]);
    let error = fit_inputs(floats(), path, &scaled, true)
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("x.npy") && error.contains("data.pixel_scale = 0.5"),
        "{error}"
    );
    assert!(fit_inputs(bytes(), path, &scaled, false).is_err());
    assert_eq!(
        fit_inputs(bytes(), path, &scaled, true).unwrap().pixels(0),
        [1.5; 4]
    );
    // Automatic scaling takes either kind.
    let auto = config("[model]\nsizes = [4, 2]\n[data]\ndir = \"d\"\n");
    assert_eq!(
        fit_inputs(floats(), path, &auto, true).unwrap().pixels(0),
        [0.5; 4]
    );
    // CIFAR-10 runs take the colour planes first; channels-last arrays are refused.
    let cifar = config("[model]\nsizes = [3072, 2]\n[data]\nformat = \"cifar10\"\ndir = \"d\"\n");
    let last = inputs(Pixels::Bytes(vec![0u8; 3072].into()), vec![32, 32, 3]);
    let error = fit_inputs(last, path, &cifar, true)
        .unwrap_err()
        .to_string();
    assert!(error.contains("channels-last"), "{error}");
    let first = inputs(Pixels::Bytes(vec![0u8; 3072].into()), vec![3, 32, 32]);
    assert!(fit_inputs(first, path, &cifar, true).is_ok());
}
