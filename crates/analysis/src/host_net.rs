//! Fixed-weight networks evaluated on the host, whatever the device: the analysis runs many
//! forward passes of pruned and perturbed networks over the whole test set, and on the host
//! each layer is one product with no pass of its own for the scale, and the first one skips
//! the zeros of MNIST-like images ([`sparse_product_into`]).

use std::borrow::Cow;

use credit_data::ImageSet;
use credit_model::DeterministicLinear;
use credit_ops::host_product::{Operand, product_into};
use credit_ops::sparse_product::{Left, sparse_product_into};
use rayon::prelude::*;

/// The fraction of nonzeros below which a product's left operand is multiplied by
/// [`sparse_product_into`] instead of `gemm`'s product. Measured on the 784-1000-1000-10
/// net's shape (10000 images, 800 inputs, 1000 outputs; rounds 2 and 3 of three, the first
/// paying the destination's page faults), `gemm`'s time over the sparse product's, which
/// includes collecting the nonzeros:
///
/// | nonzero | 0.02 | 0.05 | 0.1 | 0.2 | 0.3 | 0.5 |
/// | --- | --- | --- | --- | --- | --- | --- |
/// | `gemm` / sparse | 7.0-7.2 | 3.8 | 2.2-3.0 | 1.7-1.8 | 1.0 | 0.66 |
///
/// MNIST's test images are 19% nonzero; the perturbation curves of that net's first layer
/// move 4-17% of the (unit, image) pairs per fraction, of its second 10-34%.
pub(crate) const SPARSE_BELOW: f64 = 0.3;

/// The weights of one layer, on the host.
pub(crate) struct HostLayer {
    /// `[d_output, d_input]`, row-major.
    pub weight: Vec<f32>,
    /// Output units.
    pub d_output: usize,
    /// Input units.
    pub d_input: usize,
}

impl HostLayer {
    /// The weights of `layer`, copied to the host.
    pub fn of(layer: &DeterministicLinear) -> Self {
        let [d_output, d_input] = layer.weight.val().dims();
        Self {
            weight: crate::params::host(layer.weight.val()),
            d_output,
            d_input,
        }
    }

    /// `out = x · wᵀ / sqrt(d_input)` for `x` `[images, d_input]` (read through its
    /// strides), `out` `[images][d_output]`.
    pub fn product(&self, out: &mut [f32], x: Operand<f32>, images: usize) {
        product_into(
            out,
            None,
            x,
            Operand::transposed(&self.weight, self.d_input),
            [images, self.d_input, self.d_output],
            inverse_sqrt(self.d_input),
        );
    }

    /// [`Self::product`] over the nonzeros of `x` ([`sparse_product_into`]).
    pub fn sparse_product(&self, out: &mut [f32], x: Left, images: usize) {
        sparse_product_into(
            out,
            x,
            &self.transposed(),
            None,
            [images, self.d_input, self.d_output],
            inverse_sqrt(self.d_input),
        );
    }

    /// `h = w · x / sqrt(d_input)`, `[d_output][images]`, for `x` `[d_input][images]`: the
    /// layer in the transposed layout.
    pub fn product_t(&self, x_t: &[f32], images: usize) -> Vec<f32> {
        let mut h = vec![0.0; self.d_output * images];
        product_into(
            &mut h,
            None,
            Operand::plain(&self.weight, self.d_input),
            Operand::plain(x_t, images),
            [self.d_output, self.d_input, images],
            inverse_sqrt(self.d_input),
        );
        h
    }

    /// `wᵀ`, `[d_input][d_output]`: one row per input unit.
    pub fn transposed(&self) -> Vec<f32> {
        transpose(&self.weight, self.d_output, self.d_input)
    }
}

/// Test images on the host, transposed: `[features][images]`, one row per pixel, with the
/// fraction of them that is nonzero.
pub(crate) struct HostImages {
    /// `[features][images]`.
    pub pixels_t: Vec<f32>,
    /// How many images.
    pub images: usize,
    /// The fraction of the pixels that is nonzero.
    nonzero: f64,
}

impl HostImages {
    /// The images of `test`, scaled as a network sees them (without a trip through the
    /// device).
    pub fn of(test: &ImageSet) -> Self {
        let pixels: Vec<f32> = (0..test.len())
            .into_par_iter()
            .flat_map_iter(|i| test.pixels(i))
            .collect();
        Self::new(&pixels, test.len(), test.features())
    }

    /// From row-major `[images, features]` pixels.
    pub fn new(pixels: &[f32], images: usize, features: usize) -> Self {
        let nonzero = pixels.par_iter().filter(|&&x| x != 0.0).count();
        Self {
            pixels_t: transpose(pixels, images, features),
            images,
            nonzero: nonzero as f64 / pixels.len().max(1) as f64,
        }
    }
}

/// The logits of the network `layers` (input side first, `relu` between them) on `images`,
/// `[images][classes]`: each layer skips its input's zeros below [`SPARSE_BELOW`] of them
/// nonzero (MNIST's pixels, 19%; the wide net's first hidden layer, 17%).
///
/// # Panics
/// If `layers` is empty, or the widths do not chain.
pub(crate) fn logits(layers: &[HostLayer], images: &HostImages) -> Vec<f32> {
    let n = images.images;
    let (first, above) = layers.split_first().expect("at least one layer");
    assert_eq!(
        images.pixels_t.len(),
        first.d_input * n,
        "the images have the first layer's width"
    );
    for pair in layers.windows(2) {
        assert_eq!(
            pair[0].d_output, pair[1].d_input,
            "the layers' widths chain"
        );
    }
    let mut h = vec![0.0; n * first.d_output];
    if images.nonzero < SPARSE_BELOW {
        let left = Left::Transposed(&images.pixels_t);
        first.sparse_product(&mut h, left, n);
    } else {
        first.product(&mut h, Operand::transposed(&images.pixels_t, n), n);
    }
    through(above, &h, n, &mut Vec::new()).into_owned()
}

/// `layers` (input side first) on the pre-activations `h` below them (`[images][width]`):
/// each takes `relu` of what is below it, over its nonzeros below [`SPARSE_BELOW`] of them;
/// `[images][last width]`, `h` itself without layers. `rectified` holds the activations in
/// between.
///
/// # Panics
/// If the widths of `h` and `layers` do not chain.
pub(crate) fn through<'h>(
    layers: &[HostLayer],
    h: &'h [f32],
    images: usize,
    rectified: &mut Vec<f32>,
) -> Cow<'h, [f32]> {
    let mut h = Cow::Borrowed(h);
    for layer in layers {
        assert_eq!(h.len(), images * layer.d_input, "the layers' widths chain");
        // `relu` and its nonzeros in one pass.
        rectified.resize(h.len(), 0.0);
        let nonzero: usize = rectified
            .par_iter_mut()
            .zip(h.par_iter())
            .map(|(r, &x)| {
                *r = x.max(0.0);
                usize::from(*r != 0.0)
            })
            .sum();
        let mut out = vec![0.0; images * layer.d_output];
        if (nonzero as f64) < SPARSE_BELOW * rectified.len() as f64 {
            layer.sparse_product(&mut out, Left::RowMajor(rectified), images);
        } else {
            layer.product(&mut out, Operand::plain(rectified, layer.d_input), images);
        }
        h = Cow::Owned(out);
    }
    h
}

/// The percentage of rows of `logits` (`[images][classes]`) whose largest entry (the first
/// of equal ones, as burn's `argmax`) is at the row's target.
///
/// # Panics
/// If `logits` is not whole rows, one per target.
pub(crate) fn accuracy_pct(logits: &[f32], targets: &[u32]) -> f64 {
    let n = targets.len();
    if n == 0 {
        return f64::NAN;
    }
    let classes = logits.len() / n;
    assert_eq!(logits.len(), n * classes, "one row of logits per target");
    let correct = logits
        .par_chunks(classes.max(1))
        .zip(targets)
        .filter(|&(row, &t)| {
            let best = (1..classes).fold(0, |b, u| if row[u] > row[b] { u } else { b });
            best == t as usize
        })
        .count();
    100.0 * correct as f64 / n as f64
}

/// Row-major `[rows, cols]` to row-major `[cols, rows]`.
pub(crate) fn transpose(values: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0; values.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = values[r * cols + c];
        }
    }
    out
}

/// `x / sqrt(width)`'s factor.
pub(crate) fn inverse_sqrt(width: usize) -> f32 {
    (width as f32).sqrt().recip()
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Tensor, TensorData};
    use credit_model::{DeterministicNet, Seed};
    use credit_train::BackendKind;
    use rand::Rng;
    use rand_distr::{Distribution, StandardNormal};

    /// The host network's logits are burn's forward pass's, on images with zeros below and
    /// above [`SPARSE_BELOW`] (the first layer over the nonzeros, and through `gemm`), and
    /// with hidden activations below and above it (first-layer weights shifted negative, so
    /// that few units are active), and its accuracy is `credit_train::accuracy_pct`'s.
    #[test]
    fn host_logits_and_accuracy_are_burns() {
        let device = BackendKind::default_available().unwrap().device().unwrap();
        let mut rng = Seed::new(5).rng();
        let sizes = [70, 40, 33, 7];
        let n = 150;
        let cases = [(0.1, 0.0), (0.6, 0.0), (0.1, -1.0), (0.6, -1.0)];
        for (on, shift) in cases {
            let layers: Vec<DeterministicLinear> = sizes
                .windows(2)
                .enumerate()
                .map(|(l, w)| {
                    let values: Vec<f32> = (0..w[0] * w[1])
                        .map(|_| {
                            let z: f32 = StandardNormal.sample(&mut rng);
                            if l == 0 { z + shift } else { z }
                        })
                        .collect();
                    DeterministicLinear::new(Tensor::from_data(
                        TensorData::new(values, [w[1], w[0]]),
                        &device,
                    ))
                })
                .collect();
            let net = DeterministicNet { layers };
            let host_layers: Vec<HostLayer> = net.layers.iter().map(HostLayer::of).collect();
            let pixels: Vec<f32> = (0..n * sizes[0])
                .map(|_| {
                    if rng.random::<f64>() < on {
                        rng.random()
                    } else {
                        0.0
                    }
                })
                .collect();
            let images = HostImages::new(&pixels, n, sizes[0]);
            assert_eq!(images.nonzero < SPARSE_BELOW, on < SPARSE_BELOW);
            let x = Tensor::from_data(TensorData::new(pixels.clone(), [n, sizes[0]]), &device);
            let hidden = crate::params::host(burn::tensor::activation::relu(
                net.layers[0].forward(x.clone()),
            ));
            let active = hidden.iter().filter(|&&h| h != 0.0).count() as f64 / hidden.len() as f64;
            assert_eq!(active < SPARSE_BELOW, shift < 0.0, "{active} active");
            let got = logits(&host_layers, &images);
            let expected = crate::params::host(net.forward(x));
            for (at, (&g, &e)) in got.iter().zip(&expected).enumerate() {
                assert!(
                    (g - e).abs() <= 1e-4 * (1.0 + e.abs()),
                    "{on} nonzero, shift {shift}, logit {at}: {g} against {e}"
                );
            }
            let targets: Vec<u32> = (0..n).map(|i| (i % 7) as u32).collect();
            let burn_targets = Tensor::from_data(
                TensorData::new(targets.iter().map(|&t| t as i64).collect(), [n]),
                &device,
            );
            let burn_accuracy = credit_train::accuracy_pct(
                Tensor::from_data(TensorData::new(got.clone(), [n, 7]), &device),
                burn_targets,
            );
            assert_eq!(accuracy_pct(&got, &targets), burn_accuracy);
        }
    }

    /// Of equal largest logits the first is the prediction, as burn's `argmax` has it.
    #[test]
    fn ties_go_to_the_first_class() {
        let device = BackendKind::default_available().unwrap().device().unwrap();
        let logits = [1.0, 3.0, 3.0, 2.0, 2.0, 0.0];
        for targets in [[1, 0], [2, 1]] {
            let burn_targets = Tensor::from_data(
                TensorData::new(targets.iter().map(|&t| t as i64).collect(), [2]),
                &device,
            );
            let burn_logits = Tensor::from_data(TensorData::new(logits.to_vec(), [2, 3]), &device);
            assert_eq!(
                accuracy_pct(&logits, &targets),
                credit_train::accuracy_pct(burn_logits, burn_targets)
            );
        }
        assert_eq!(accuracy_pct(&logits, &[1, 0]), 100.0);
        assert_eq!(accuracy_pct(&logits, &[2, 1]), 0.0);
    }
}
