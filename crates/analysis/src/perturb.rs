//! The paper's targeted perturbation of one layer: remove growing fractions of its very
//! important connections, or as many of its variable ones, or as many chosen at random from
//! the whole layer (the authors' random-deletion control), or give growing fractions of its
//! unimportant connections `N(0, 1)` weights, and measure the test error of sampled networks.
//!
//! Removing a connection (`pi = 1`) sets its weight to zero in every sampled network, and the
//! other weights keep their distribution, so a perturbed network is sampled by drawing the
//! unperturbed one and zeroing (or re-drawing) the chosen weights. The chosen sets grow by
//! nesting (the first `f n` of one random order), so each repetition updates the layer's
//! pre-activations incrementally instead of recomputing the layer for every `f`.
//!
//! Repetition `r` draws its network from `seed.child(r)` ([`SpikeSlabNet::sample_network`]);
//! the chosen orders and new weights come from `seed`'s generator.
//!
//! The matrices of a recurrent network are perturbed the same way ([`perturb_with`] of a
//! [`Perturbed::Recurrent`]), each perturbed network run through the whole sequence.

use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor, TensorData};
use credit_data::ImageSet;
use credit_model::{DeterministicLinear, DeterministicNet, Seed, SpikeSlabNet, SpikeSlabRnn};
use rand::seq::SliceRandom;
use rand_chacha::ChaCha12Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

use crate::classes::ConnectionClass;
use crate::params::host;
use crate::subnetworks::mean_sd;

/// Test error (percent) against the perturbed fraction, mean and sd over repetitions.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Curve {
    /// Fractions `f`.
    pub fractions: Vec<f64>,
    /// Connections changed at each fraction.
    pub changed: Vec<usize>,
    /// Mean test error over repetitions, percent.
    pub error_mean_pct: Vec<f64>,
    /// Standard deviation of the test error over repetitions.
    pub error_sd_pct: Vec<f64>,
}

/// The four curves of one layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerPerturbation {
    /// Layer number, 1 for the weights on the input.
    pub layer: usize,
    /// (a) a fraction `f` of the very important connections removed.
    pub very_important_removed: Curve,
    /// (b) as many randomly chosen variable connections removed.
    pub variable_removed: Curve,
    /// (c) a fraction `f` of the unimportant connections given `N(0, 1)` weights.
    pub unimportant_randomised: Curve,
    /// The authors' control of (a): as many connections as (a) removes, chosen at random
    /// from the whole layer, whatever their class (empty in analyses written before it was
    /// recorded).
    #[serde(default)]
    pub random_removed: Curve,
}

/// Row-major `[rows, cols]` to row-major `[cols, rows]`.
fn transpose(values: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0; values.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = values[r * cols + c];
        }
    }
    out
}

/// A sampled network split at one layer: the input of that layer and its pre-activation
/// (both transposed, one contiguous row per unit) and the layers above it.
struct SplitNetwork<'a> {
    /// Layer input, `[d_input][images]`.
    input_t: std::borrow::Cow<'a, [f32]>,
    /// Layer pre-activation, `[d_output][images]`.
    preactivation_t: Vec<f32>,
    /// The layers above, empty for the last layer.
    above: DeterministicNet,
    images: usize,
}

impl<'a> SplitNetwork<'a> {
    /// Splits the sampled network `net` at layer index `layer`, evaluated on `images`; at
    /// layer 0 the input is `images_t`, the images transposed (the same for every network).
    fn new(net: &DeterministicNet, layer: usize, images: &Tensor<2>, images_t: &'a [f32]) -> Self {
        let below = &net.layers[..layer];
        let x = below.iter().fold(images.clone(), |x, l| relu(l.forward(x)));
        let h = net.layers[layer].forward(x.clone());
        let [d_output, d_input] = net.layers[layer].weight.val().dims();
        let n = images.dims()[0];
        let input_t = if layer == 0 {
            std::borrow::Cow::Borrowed(images_t)
        } else {
            std::borrow::Cow::Owned(transpose(&host(x), n, d_input))
        };
        Self {
            input_t,
            preactivation_t: transpose(&host(h), n, d_output),
            above: DeterministicNet {
                layers: net.layers[layer + 1..].to_vec(),
            },
            images: n,
        }
    }

    /// Test error (percent) of the network with the pre-activations `preactivation_t` at the
    /// split (`[units][images]`). The layers above run in the same transposed layout
    /// (`h' = w · relu(h) / sqrt(units)`), so that nothing is transposed; on ties the last
    /// maximum wins. (Evaluating several fractions in one product was measured slower here:
    /// the larger operands leave the cache.)
    fn error_pct(&self, preactivation_t: &[f32], targets: &[u32], device: &Device) -> f64 {
        let n = self.images;
        let units = preactivation_t.len() / n.max(1);
        let computed;
        let (logits, classes) = if self.above.layers.is_empty() {
            (preactivation_t, units)
        } else {
            let mut h: Tensor<2> = Tensor::from_data(
                TensorData::new(preactivation_t.to_vec(), [units, n]),
                device,
            );
            for layer in &self.above.layers {
                let width = h.dims()[0];
                h = layer
                    .weight
                    .val()
                    .matmul(relu(h))
                    .mul_scalar((width as f64).sqrt().recip());
            }
            let classes = h.dims()[0];
            computed = host(h);
            (computed.as_slice(), classes)
        };
        let wrong = (0..n)
            .filter(|&i| {
                let mut best = 0;
                for u in 1..classes {
                    if logits[u * n + i].total_cmp(&logits[best * n + i])
                        != std::cmp::Ordering::Less
                    {
                        best = u;
                    }
                }
                best != targets[i] as usize
            })
            .count();
        100.0 * wrong as f64 / n as f64
    }
}

/// What one curve does to its chosen connections.
#[derive(Clone, Copy)]
enum Change {
    /// Weight set to zero.
    Remove,
    /// Weight replaced by a fresh `N(0, 1)` draw.
    Randomise,
}

/// Errors at each fraction for one repetition of one curve; `chosen` in the order they are
/// changed, `counts[f]` how many are changed at fraction index `f`; `unperturbed` the error
/// of the split network as it is. A fraction that changes nothing since the last one measured
/// (`f = 0`, a count that does not grow, weights already 0) is not evaluated again: its
/// error is the last one's, exactly.
#[allow(clippy::too_many_arguments)]
fn curve_errors(
    split: &SplitNetwork,
    weights: &[f32],
    d_input: usize,
    chosen: &[usize],
    counts: &[usize],
    change: Change,
    targets: &[u32],
    unperturbed: f64,
    rng: &mut ChaCha12Rng,
    device: &Device,
) -> Vec<f64> {
    let n = split.images;
    let scale = 1.0 / (d_input as f32).sqrt();
    let mut h = split.preactivation_t.clone();
    let mut done = 0;
    let mut last = Some(unperturbed);
    counts
        .iter()
        .map(|&count| {
            for &k in &chosen[done..count] {
                let (i, j) = (k / d_input, k % d_input);
                let new_weight = match change {
                    Change::Remove => 0.0,
                    Change::Randomise => StandardNormal.sample(rng),
                };
                let delta = (new_weight - weights[k]) * scale;
                if delta != 0.0 {
                    let a = &split.input_t[j * n..(j + 1) * n];
                    for (h, &a) in h[i * n..(i + 1) * n].iter_mut().zip(a) {
                        *h += delta * a;
                    }
                    last = None;
                }
            }
            done = count;
            *last.get_or_insert_with(|| split.error_pct(&h, targets, device))
        })
        .collect()
}

/// Runs the four perturbation curves on layer index `layer` (0 for the weights on the
/// input) with `repetitions` sampled networks each; `classes` are that layer's. The
/// random-deletion control draws its orders from its own generator
/// (`seed.child(u64::MAX)`), so the other three curves are those of a version without it.
#[allow(clippy::too_many_arguments)]
pub fn perturb_layer(
    net: &SpikeSlabNet,
    classes: &[ConnectionClass],
    layer: usize,
    test: &ImageSet,
    fractions: &[f64],
    repetitions: usize,
    seed: Seed,
    device: &Device,
) -> LayerPerturbation {
    perturb_with(
        Perturbed::FeedForward(net),
        classes,
        layer,
        test,
        fractions,
        repetitions,
        seed,
        device,
        &mut || {},
    )
}

/// The network whose layer or matrix a perturbation changes.
#[derive(Clone, Copy)]
pub enum Perturbed<'a> {
    /// A feed-forward network; the index is a layer's (0 for the weights on the input).
    FeedForward(&'a SpikeSlabNet),
    /// A recurrent network; the index is a matrix's (input 0, recurrent 1, readout 2).
    Recurrent(&'a SpikeSlabRnn),
}

/// The four perturbation curves of layer or matrix index `index` of `network`, as
/// [`perturb_layer`] runs them (a recurrent network's matrices see
/// [`Curves::recurrent`]), calling `done` after each repetition.
#[allow(clippy::too_many_arguments)]
pub fn perturb_with(
    network: Perturbed,
    classes: &[ConnectionClass],
    index: usize,
    test: &ImageSet,
    fractions: &[f64],
    repetitions: usize,
    seed: Seed,
    device: &Device,
    done: &mut dyn FnMut(),
) -> LayerPerturbation {
    let curves = Curves {
        plan: Plan::new(classes, fractions),
        test,
        fractions,
        repetitions,
        seed,
        device,
    };
    match network {
        Perturbed::FeedForward(net) => curves.feed_forward(net, index, done),
        Perturbed::Recurrent(net) => curves.recurrent(net, index, done),
    }
}

/// What every perturbation takes beside the network: the curves' plan, the test images,
/// the fractions, the sampled networks per point and the seed.
struct Curves<'a> {
    plan: Plan,
    test: &'a ImageSet,
    fractions: &'a [f64],
    repetitions: usize,
    seed: Seed,
    device: &'a Device,
}

impl Curves<'_> {
    /// The generators of the orders and new weights: the three curves' from the seed, the
    /// random-deletion control's its own (`seed.child(u64::MAX)`), so that the other three
    /// are those of a version without it.
    fn generators(&self) -> (ChaCha12Rng, ChaCha12Rng) {
        (self.seed.rng(), self.seed.child(u64::MAX).rng())
    }

    /// The curves of layer index `layer` of a feed-forward network: each sampled network split
    /// at the layer, its pre-activations updated per changed connection.
    fn feed_forward(
        &self,
        net: &SpikeSlabNet,
        layer: usize,
        done: &mut dyn FnMut(),
    ) -> LayerPerturbation {
        let (mut rng, mut control_rng) = self.generators();
        let batch = self.test.all(self.device);
        let targets = self.test.labels();
        let images_t = if layer == 0 {
            transpose(
                &host(batch.images.clone()),
                self.test.len(),
                self.test.features(),
            )
        } else {
            Vec::new()
        };
        let mut errors: [Vec<Vec<f64>>; 4] = Default::default();
        for r in 0..self.repetitions {
            let sampled = net.sample_network(self.seed.child(r as u64));
            let split = SplitNetwork::new(&sampled, layer, &batch.images, &images_t);
            let w = &host(sampled.layers[layer].weight.val());
            let d_input = split.input_t.len() / split.images;
            // The network unperturbed, measured once for the four curves.
            let unperturbed = split.error_pct(&split.preactivation_t, targets, self.device);
            for c in 0..CHANGES.len() {
                let rng = if c == CONTROL {
                    &mut control_rng
                } else {
                    &mut rng
                };
                let order = self.plan.order(c, rng);
                errors[c].push(curve_errors(
                    &split,
                    w,
                    d_input,
                    &order,
                    &self.plan.counts[c],
                    CHANGES[c],
                    targets,
                    unperturbed,
                    rng,
                    self.device,
                ));
            }
            done();
        }
        self.plan.summary(layer, self.fractions, &errors)
    }

    /// The curves of matrix `matrix` (input 0, recurrent 1, readout 2) of a recurrent
    /// network, its sampled networks' weights drawn once and used at every step; the orders and
    /// new weights are drawn as for a feed-forward layer. A change of the input or recurrent
    /// matrix reaches every step, so each perturbed network is run through the whole
    /// sequence; the readout's reads the final rates, computed once per repetition.
    fn recurrent(
        &self,
        net: &SpikeSlabRnn,
        matrix: usize,
        done: &mut dyn FnMut(),
    ) -> LayerPerturbation {
        let (mut rng, mut control_rng) = self.generators();
        let batch = self.test.all(self.device);
        let error_pct =
            |logits: Tensor<2>| 100.0 - credit_train::accuracy_pct(logits, batch.targets.clone());
        let mut errors: [Vec<Vec<f64>>; 4] = Default::default();
        for r in 0..self.repetitions {
            let sampled = net.sample_network(self.seed.child(r as u64));
            let original = [&sampled.input, &sampled.recurrent, &sampled.readout][matrix]
                .weight
                .val();
            let shape = original.dims();
            let weights = host(original);
            let final_rates =
                (matrix == 2).then(|| sampled.final_state(batch.images.clone(), usize::MAX));
            // The error of the sampled network with `w` in place of the matrix.
            let error_with = |w: &[f32]| -> f64 {
                let w = DeterministicLinear::new(Tensor::from_data(
                    TensorData::new(w.to_vec(), shape),
                    self.device,
                ));
                let mut perturbed = sampled.clone();
                match matrix {
                    0 => perturbed.input = w,
                    1 => perturbed.recurrent = w,
                    _ => perturbed.readout = w,
                }
                let logits = match &final_rates {
                    Some(rates) => perturbed.readout_logits(rates.clone()),
                    None => perturbed.forward(batch.images.clone()),
                };
                error_pct(logits)
            };
            let unperturbed = error_pct(sampled.forward(batch.images.clone()));
            for c in 0..CHANGES.len() {
                let rng = if c == CONTROL {
                    &mut control_rng
                } else {
                    &mut rng
                };
                let order = self.plan.order(c, rng);
                let mut w = weights.clone();
                let (mut changed, mut last) = (0, unperturbed);
                let curve = self.plan.counts[c]
                    .iter()
                    .map(|&count| {
                        let mut moved = false;
                        for &k in &order[changed..count] {
                            let new_weight = match CHANGES[c] {
                                Change::Remove => 0.0,
                                Change::Randomise => StandardNormal.sample(rng),
                            };
                            moved |= new_weight != w[k];
                            w[k] = new_weight;
                        }
                        changed = count;
                        if moved {
                            last = error_with(&w);
                        }
                        last
                    })
                    .collect();
                errors[c].push(curve);
            }
            done();
        }
        self.plan.summary(matrix, self.fractions, &errors)
    }
}

/// The change of each curve: (a) very important removed, (b) variable removed, (c)
/// unimportant randomised, (d) the control, removed at random.
const CHANGES: [Change; 4] = [
    Change::Remove,
    Change::Remove,
    Change::Randomise,
    Change::Remove,
];

/// The index of the random-deletion control among the curves.
const CONTROL: usize = 3;

/// The connections each of the four curves may change and how many it changes at each
/// fraction: (a) `f` of the very important ones, (b) as many variable ones, (c) `f` of the
/// unimportant ones, (d) as many as (a) from the whole matrix.
struct Plan {
    sets: [Vec<usize>; 4],
    counts: [Vec<usize>; 4],
}

impl Plan {
    fn new(classes: &[ConnectionClass], fractions: &[f64]) -> Self {
        let members = |class| -> Vec<usize> {
            (0..classes.len())
                .filter(|&k| classes[k] == class)
                .collect()
        };
        let very_important = members(ConnectionClass::VeryImportant);
        let variable = members(ConnectionClass::Variable);
        let unimportant = members(ConnectionClass::Unimportant);
        let everyone: Vec<usize> = (0..classes.len()).collect();
        let counts_of = |total: usize, available: usize| -> Vec<usize> {
            fractions
                .iter()
                .map(|f| ((f * total as f64).round() as usize).min(available))
                .collect()
        };
        let counts = [
            counts_of(very_important.len(), very_important.len()),
            counts_of(very_important.len(), variable.len()),
            counts_of(unimportant.len(), unimportant.len()),
            counts_of(very_important.len(), everyone.len()),
        ];
        Self {
            sets: [very_important, variable, unimportant, everyone],
            counts,
        }
    }

    /// The order in which curve `c` changes its connections in one repetition: its set
    /// shuffled by `rng` (each curve's new weights are drawn from the same generator right
    /// after its order).
    fn order(&self, c: usize, rng: &mut ChaCha12Rng) -> Vec<usize> {
        let mut order = self.sets[c].clone();
        order.shuffle(rng);
        order
    }

    /// The four curves of matrix or layer index `layer` from the errors of each repetition
    /// at each fraction.
    fn summary(
        &self,
        layer: usize,
        fractions: &[f64],
        errors: &[Vec<Vec<f64>>; 4],
    ) -> LayerPerturbation {
        let curve = |c: usize| {
            let (mean, sd): (Vec<f64>, Vec<f64>) = (0..fractions.len())
                .map(|f| mean_sd(&errors[c].iter().map(|r| r[f]).collect::<Vec<_>>()))
                .unzip();
            Curve {
                fractions: fractions.to_vec(),
                changed: self.counts[c].clone(),
                error_mean_pct: mean,
                error_sd_pct: sd,
            }
        };
        LayerPerturbation {
            layer: layer + 1,
            very_important_removed: curve(0),
            variable_removed: curve(1),
            unimportant_randomised: curve(2),
            random_removed: curve(CONTROL),
        }
    }
}

/// The error (percent) of `repetitions` unperturbed sampled networks, drawn as
/// [`perturb_layer`] draws them: with the same seed, what every curve starts from at `f = 0`.
pub fn sampled_error_pct(
    net: &SpikeSlabNet,
    test: &ImageSet,
    repetitions: usize,
    seed: Seed,
    device: &Device,
) -> Vec<f64> {
    let batch = test.all(device);
    (0..repetitions)
        .map(|r| {
            let logits = net
                .sample_network(seed.child(r as u64))
                .forward(batch.images.clone());
            100.0 - credit_train::accuracy_pct(logits, batch.targets.clone())
        })
        .collect()
}
