//! The paper's targeted perturbation of one layer: remove growing fractions of its very
//! important connections, or as many of its variable ones, or as many chosen at random from
//! the whole layer (the authors' random-deletion control), or give growing fractions of its
//! unimportant connections `N(0, 1)` weights, and measure the test error of sampled networks.
//!
//! Removing a connection (`pi = 1`) sets its weight to zero in every sampled network, and the
//! other weights keep their distribution, so a perturbed network is sampled by drawing the
//! unperturbed one and zeroing (or re-drawing) the chosen weights. The chosen sets grow by
//! nesting (the first `f n` of one random order), so each repetition updates the layer's
//! pre-activations incrementally instead of recomputing the layer for every `f`, and carries
//! the change of its `relu` up through the next layer (over the change's nonzeros, by the
//! touched units' rows of the weights, or by the whole product again; see
//! `SplitNetwork::carry`); a fraction that changes no `relu` keeps the last error. Every
//! layer runs on the host, through [`credit_ops::host_product`] and
//! [`credit_ops::sparse_product`], whatever the device.
//!
//! Repetition `r` draws its network from `seed.child(r)` ([`SpikeSlabNet::sample_network`]);
//! the chosen orders and new weights come from `seed`'s generator.
//!
//! The matrices of a recurrent network are perturbed the same way ([`perturb_with`] of a
//! [`Perturbed::Recurrent`]), each perturbed network run through the whole sequence.

use burn::tensor::{Device, Tensor, TensorData};
use credit_data::ImageSet;
use credit_model::{DeterministicLinear, DeterministicNet, Seed, SpikeSlabNet, SpikeSlabRnn};
use credit_ops::host_product::{Operand, product_into};
use credit_ops::sparse_product::{Left, add_rows, sparse_product_into};
use rand::seq::SliceRandom;
use rand_chacha::ChaCha12Rng;
use rand_distr::{Distribution, StandardNormal};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::classes::ConnectionClass;
use crate::host_net::{self, HostImages, HostLayer, SPARSE_BELOW, inverse_sqrt};
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

/// A sampled network split at one layer: the input of that layer and its pre-activation
/// (both transposed, one contiguous row per unit) and the layers above it, on the host.
struct SplitNetwork<'a> {
    /// Layer input, `[d_input][images]`.
    input_t: std::borrow::Cow<'a, [f32]>,
    /// Whether row `j` of `input_t` holds a nonzero value: a connection from an input that is
    /// zero on every image changes no pre-activation (MNIST's border pixels).
    input_active: Vec<bool>,
    /// Layer pre-activation, `[d_output][images]`.
    preactivation_t: Vec<f32>,
    /// The weights of the layer split at.
    layer: HostLayer,
    /// The weights of the layers above, `[d_output, d_input]` row-major, input side first;
    /// empty for the last layer.
    above: Vec<HostLayer>,
    /// The first layer above's weights transposed, `[units][d_output]` (empty for the last
    /// layer).
    first_t: Vec<f32>,
    images: usize,
    /// The route every carried change takes, or `None` for the cheapest (tests set it).
    route: Option<Route>,
}

/// What the layers above the split computed for one perturbed network, kept from one
/// fraction to the next: once a few units' pre-activations change, only the change is
/// carried up (see [`SplitNetwork::carry`]).
#[derive(Clone)]
struct AboveState {
    /// `relu(h)` at the split as last carried up, `[units][images]` (empty for the last
    /// layer, whose pre-activations are the logits).
    rectified: Vec<f32>,
    /// The first layer above's pre-activation, `[images][d_output]` (empty for the last
    /// layer).
    next: Vec<f32>,
}

/// The fraction of a layer's units whose `relu` moved from which a change too dense for
/// [`sparse_product_into`] is carried up by the whole product again instead of by the
/// touched units' rows of `wᵀ`: the two cost the same multiply-adds per unit, and the rows
/// are gathered first.
const FULL_PRODUCT_FROM: f64 = 0.5;

/// Images per block of the pre-activation updates: a block's rows of the layer's input and
/// pre-activation (1 kB each) stay in a core's cache while every change of a fraction is
/// applied, and the blocks are shared among threads.
const IMAGE_BLOCK: usize = 256;

/// The width of a next layer up to which a change is carried up by the whole product
/// again, without `Δ`: for the 784-1000-1000-10 net's second layer (a next layer of 10
/// units, MNIST's test set; 80 carries of 2 repetitions, timed one by one) the carries took
/// 7.4 ms each this way against 19 ms through `Δ`, whose pass alone took 6 ms.
const WHOLE_PRODUCT_UP_TO: usize = 64;

/// How [`SplitNetwork::carry`] takes a change up to the next layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Route {
    /// Over the nonzeros of the change ([`sparse_product_into`]).
    Sparse,
    /// `gemm`'s product of the change and the touched units' rows of the weights.
    Rows,
    /// `gemm`'s whole product of the carried `relu(h)` again.
    Full,
}

/// Buffers a curve's carried changes reuse from one fraction to the next, rather than
/// allocating (and the kernel zeroing) tens of megabytes for each.
#[derive(Default)]
struct Scratch {
    /// The change of the touched units' `relu`, `[touched][images]`.
    delta: Vec<f32>,
    /// The touched units' rows of the next layer's `wᵀ`, `[touched][d_output]`.
    rows: Vec<f32>,
    /// The rectified activations between the layers above.
    rectified: Vec<f32>,
}

impl<'a> SplitNetwork<'a> {
    /// Splits the sampled network `net` at layer index `layer`, evaluated on the `images`
    /// `images_t` (`[features][images]`, the same for every network). The layers up to the
    /// split run on the host in the transposed layout (`h = w · x / sqrt(d_input)`,
    /// `[d_output][images]`), so that nothing is transposed.
    fn new(net: &DeterministicNet, layer: usize, images_t: &'a [f32], n: usize) -> Self {
        let mut input_t = std::borrow::Cow::Borrowed(images_t);
        for l in &net.layers[..layer] {
            let mut h = HostLayer::of(l).product_t(&input_t, n);
            h.par_iter_mut().for_each(|h| *h = h.max(0.0));
            input_t = std::borrow::Cow::Owned(h);
        }
        let split = HostLayer::of(&net.layers[layer]);
        let d_input = split.d_input;
        let preactivation_t = split.product_t(&input_t, n);
        let input_active = if n == 0 {
            vec![false; d_input]
        } else {
            input_t
                .chunks(n)
                .map(|row| row.iter().any(|&a| a != 0.0))
                .collect()
        };
        let above: Vec<HostLayer> = net.layers[layer + 1..].iter().map(HostLayer::of).collect();
        let first_t = above.first().map_or_else(Vec::new, HostLayer::transposed);
        Self {
            input_t,
            input_active,
            preactivation_t,
            layer: split,
            above,
            first_t,
            images: n,
            route: None,
        }
    }

    /// Applies `changes` `(unit, input, Δw / sqrt(d_input))` to the pre-activations
    /// `preactivation_t` (`h[unit] += Δ · input_t[input]`), in blocks of [`IMAGE_BLOCK`]
    /// images shared among threads (each block holds its piece of every unit's row); each
    /// entry adds the changes in their order, so the sums are those of one change at a time.
    fn apply(&self, preactivation_t: &mut [f32], changes: &[(usize, usize, f32)]) {
        let n = self.images;
        if changes.is_empty() || n == 0 {
            return;
        }
        let mut blocks: Vec<Vec<&mut [f32]>> = (0..n.div_ceil(IMAGE_BLOCK))
            .map(|_| Vec::with_capacity(preactivation_t.len() / n))
            .collect();
        for row in preactivation_t.chunks_mut(n) {
            for (block, piece) in blocks.iter_mut().zip(row.chunks_mut(IMAGE_BLOCK)) {
                block.push(piece);
            }
        }
        // The changes unit by unit, each unit's in their order: `terms[groups[g]]` are the
        // `(input, Δ)` of unit `groups[g].0`.
        let mut sorted = changes.to_vec();
        sorted.sort_by_key(|&(i, _, _)| i);
        let terms: Vec<(usize, f32)> = sorted.iter().map(|&(_, j, delta)| (j, delta)).collect();
        let groups: Vec<(usize, std::ops::Range<usize>)> = sorted
            .chunk_by(|a, b| a.0 == b.0)
            .scan(0, |start, group| {
                let range = *start..*start + group.len();
                *start = range.end;
                Some((group[0].0, range))
            })
            .collect();
        let input = &self.input_t;
        let add_rows = add_rows();
        blocks
            .into_par_iter()
            .enumerate()
            .for_each(|(block, mut rows)| {
                let start = block * IMAGE_BLOCK;
                for (i, range) in &groups {
                    add_rows(rows[*i], &input[start..], n, &terms[range.clone()]);
                }
            });
    }

    /// The first layer above evaluated on the pre-activations `preactivation_t` at the split
    /// (`[units][images]`): `h' = relu(h)ᵀ · wᵀ / sqrt(units)`, `[images][d_output]`, the
    /// operands read through their strides.
    fn state(&self, preactivation_t: &[f32]) -> AboveState {
        let Some(first) = self.above.first() else {
            return AboveState {
                rectified: Vec::new(),
                next: Vec::new(),
            };
        };
        let rectified: Vec<f32> = preactivation_t.par_iter().map(|&h| h.max(0.0)).collect();
        let mut next = vec![0.0; first.d_output * self.images];
        first.product(
            &mut next,
            Operand::transposed(&rectified, self.images),
            self.images,
        );
        AboveState { rectified, next }
    }

    /// Carries the change of the pre-activations of units `touched` (now `preactivation_t`)
    /// up into `state`; false if no unit's `relu` changed, so that the error is the last one,
    /// exactly. The change `Δ = relu(h) - relu(h_old)` of the touched units (`U`) reaches
    /// the next layer as `next += Δ[U]ᵀ · wᵀ[U] / sqrt(units)` by one of three [`Route`]s
    /// (`route`'s, else the cheapest): skipping `Δ`'s zeros ([`sparse_product_into`]) below
    /// [`SPARSE_BELOW`] of them nonzero, else by `gemm`'s product of the touched units' rows,
    /// or, once the `relu` of [`FULL_PRODUCT_FROM`] of the units moved, by the whole product
    /// taken again, which a next layer of at most [`WHOLE_PRODUCT_UP_TO`] units always takes;
    /// the three agree up to the rounding of a different summation order. For the last
    /// layer, whose pre-activations are the logits, true whenever a unit was touched.
    fn carry(
        &self,
        state: &mut AboveState,
        preactivation_t: &[f32],
        touched: &[usize],
        scratch: &mut Scratch,
    ) -> bool {
        let n = self.images;
        let Some(first) = self.above.first() else {
            return !touched.is_empty();
        };
        let row = |u: usize| u * n..(u + 1) * n;
        let units = first.d_input;
        let whole = match self.route {
            Some(route) => route == Route::Full,
            None => first.d_output <= WHOLE_PRODUCT_UP_TO,
        };
        let carried = touched_rows(&mut state.rectified, touched, n);
        if whole {
            // `relu(h)` carried up, and whether it moved anywhere.
            let moved = carried
                .into_par_iter()
                .zip(touched)
                .map(|(rectified, &u)| {
                    let mut moved = false;
                    for (r, &h) in rectified.iter_mut().zip(&preactivation_t[row(u)]) {
                        moved |= *r != h.max(0.0);
                        *r = h.max(0.0);
                    }
                    moved
                })
                .reduce(|| false, |a, b| a || b);
            if moved {
                first.product(&mut state.next, Operand::transposed(&state.rectified, n), n);
            }
            return moved;
        }
        // The change of `relu(h)` of the touched units, `[touched][images]`, and on how many
        // images each unit's moved, in one pass that also carries `relu(h)` up.
        let delta = &mut scratch.delta;
        delta.resize(touched.len() * n, 0.0);
        let moved: Vec<usize> = delta
            .par_chunks_mut(n.max(1))
            .zip(carried)
            .zip(touched)
            .map(|((delta, rectified), &u)| {
                let mut moved = 0;
                let new = &preactivation_t[row(u)];
                for ((d, r), &h) in delta.iter_mut().zip(rectified).zip(new) {
                    *d = h.max(0.0) - *r;
                    *r = h.max(0.0);
                    moved += usize::from(*d != 0.0);
                }
                moved
            })
            .collect();
        let nonzeros: usize = moved.iter().sum();
        if nonzeros == 0 {
            return false;
        }
        let changed = moved.iter().filter(|&&m| m > 0).count();
        let route = self.route.unwrap_or({
            if (nonzeros as f64) < SPARSE_BELOW * (touched.len() * n) as f64 {
                Route::Sparse
            } else if changed as f64 >= FULL_PRODUCT_FROM * units as f64 {
                Route::Full
            } else {
                Route::Rows
            }
        });
        if route == Route::Full {
            first.product(&mut state.next, Operand::transposed(&state.rectified, n), n);
            return true;
        }
        let d_output = first.d_output;
        let sizes = [n, touched.len(), d_output];
        if route == Route::Sparse {
            sparse_product_into(
                &mut state.next,
                Left::Transposed(delta),
                &self.first_t,
                Some(touched),
                sizes,
                inverse_sqrt(units),
            );
        } else {
            // The touched units' rows of `wᵀ`, `[touched][d_output]` (a unit whose `relu`
            // did not move has a zero row of `delta`).
            let rows = &mut scratch.rows;
            rows.clear();
            rows.extend(
                touched
                    .iter()
                    .flat_map(|&u| &self.first_t[u * d_output..(u + 1) * d_output]),
            );
            product_into(
                &mut state.next,
                Some(1.0),
                Operand::transposed(delta, n),
                Operand::plain(rows, d_output),
                sizes,
                inverse_sqrt(units),
            );
        }
        true
    }

    /// Test error (percent) of the network whose state above the split is `state`
    /// (`preactivation_t` the pre-activations at the split, the logits of the last layer);
    /// on ties the last maximum wins. `scratch.rectified` holds the rectified activations in
    /// between.
    fn error_pct(
        &self,
        state: &AboveState,
        preactivation_t: &[f32],
        targets: &[u32],
        scratch: &mut Scratch,
    ) -> f64 {
        let n = self.images;
        if n == 0 {
            return f64::NAN;
        }
        // The logits and the distances between an image's consecutive ones and between its
        // classes': `[classes][images]` at the last layer, `[images][classes]` above it.
        let (logits, image_stride, class_stride) = if self.above.is_empty() {
            (std::borrow::Cow::Borrowed(preactivation_t), 1, n)
        } else {
            let h = host_net::through(&self.above[1..], &state.next, n, &mut scratch.rectified);
            let classes = h.len() / n;
            (h, classes, 1)
        };
        let classes = logits.len() / n;
        let wrong = (0..n)
            .filter(|&i| {
                let logit = |u: usize| logits[i * image_stride + u * class_stride];
                let mut best = 0;
                for u in 1..classes {
                    if logit(u).total_cmp(&logit(best)) != std::cmp::Ordering::Less {
                        best = u;
                    }
                }
                best != targets[i] as usize
            })
            .count();
        100.0 * wrong as f64 / n as f64
    }
}

/// The rows of the `touched` units (distinct), in their order, of `rectified`
/// (`[units][images]`, `n` images).
fn touched_rows<'r>(rectified: &'r mut [f32], touched: &[usize], n: usize) -> Vec<&'r mut [f32]> {
    let mut rows: Vec<Option<&mut [f32]>> = rectified.chunks_mut(n.max(1)).map(Some).collect();
    touched
        .iter()
        .map(|&u| rows[u].take().expect("touched units are distinct"))
        .collect()
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
/// changed, `counts[f]` how many are changed at fraction index `f`; `unperturbed` the split
/// network's state above the split as it is, and its error. A fraction that changes no
/// unit's `relu` since the last one measured (`f = 0`, a count that does not grow, weights
/// already 0, inputs that are always 0) is not evaluated again: its error is the last
/// one's, exactly.
#[allow(clippy::too_many_arguments)]
fn curve_errors(
    split: &SplitNetwork,
    weights: &[f32],
    d_input: usize,
    chosen: &[usize],
    counts: &[usize],
    change: Change,
    targets: &[u32],
    unperturbed: (&AboveState, f64),
    rng: &mut ChaCha12Rng,
) -> Vec<f64> {
    let n = split.images;
    let scale = inverse_sqrt(d_input);
    let mut h = split.preactivation_t.clone();
    let mut state = unperturbed.0.clone();
    let mut last = unperturbed.1;
    let units = h.len() / n.max(1);
    let mut is_touched = vec![false; units];
    let (mut touched, mut changes) = (Vec::new(), Vec::new());
    let mut scratch = Scratch::default();
    let mut done = 0;
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
                if delta != 0.0 && split.input_active[j] {
                    changes.push((i, j, delta));
                    if !is_touched[i] {
                        is_touched[i] = true;
                        touched.push(i);
                    }
                }
            }
            done = count;
            if !touched.is_empty() {
                split.apply(&mut h, &changes);
                if split.carry(&mut state, &h, &touched, &mut scratch) {
                    last = split.error_pct(&state, &h, targets, &mut scratch);
                }
                for &i in &touched {
                    is_touched[i] = false;
                }
                touched.clear();
                changes.clear();
            }
            last
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
/// `Curves::recurrent`), calling `done` after each repetition.
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
        let targets = self.test.labels();
        let images = HostImages::of(self.test);
        let mut errors: [Vec<Vec<f64>>; 4] = Default::default();
        for r in 0..self.repetitions {
            let sampled = net.sample_network(self.seed.child(r as u64));
            let split = SplitNetwork::new(&sampled, layer, &images.pixels_t, images.images);
            let (w, d_input) = (&split.layer.weight, split.layer.d_input);
            // The network unperturbed, measured once for the four curves.
            let state = split.state(&split.preactivation_t);
            let unperturbed = split.error_pct(
                &state,
                &split.preactivation_t,
                targets,
                &mut Scratch::default(),
            );
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
                    (&state, unperturbed),
                    rng,
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

#[cfg(test)]
mod tests {
    use super::*;
    use credit_train::BackendKind;
    use rand::Rng;

    /// A network of `sizes` with `N(0, 1)` weights from `rng`.
    fn random_net(sizes: &[usize], rng: &mut ChaCha12Rng, device: &Device) -> DeterministicNet {
        let layers = sizes
            .windows(2)
            .map(|w| {
                let values: Vec<f32> = (0..w[0] * w[1])
                    .map(|_| StandardNormal.sample(rng))
                    .collect();
                DeterministicLinear::new(Tensor::from_data(
                    TensorData::new(values, [w[1], w[0]]),
                    device,
                ))
            })
            .collect();
        DeterministicNet { layers }
    }

    /// The error (percent) of `net` with layer `layer`'s weights `w`, run whole by burn.
    fn whole_error(
        net: &DeterministicNet,
        layer: usize,
        w: &[f32],
        images: &Tensor<2>,
        targets: &[u32],
        device: &Device,
    ) -> f64 {
        let mut perturbed = net.clone();
        let dims = net.layers[layer].weight.val().dims();
        perturbed.layers[layer] =
            DeterministicLinear::new(Tensor::from_data(TensorData::new(w.to_vec(), dims), device));
        let logits = host(perturbed.forward(images.clone()));
        let classes = net.layers.last().unwrap().weight.val().dims()[0];
        let wrong = targets
            .iter()
            .enumerate()
            .filter(|&(i, &t)| {
                let row = &logits[i * classes..(i + 1) * classes];
                let best = (0..classes).fold(0, |b, u| if row[u] >= row[b] { u } else { b });
                best != t as usize
            })
            .count();
        100.0 * wrong as f64 / targets.len() as f64
    }

    /// Every fraction's error from the carried changes (one unit's, a few, or most units'),
    /// by each route and by the cheapest, is the error of the perturbed network run whole,
    /// at every layer and for both changes, on inputs with zeros and with inputs that are
    /// zero on every image: at most one of 400 images apart (a changed summation order may
    /// move an image across a tie).
    #[test]
    fn carried_changes_give_the_errors_of_the_perturbed_network_run_whole() {
        let device = BackendKind::default_available().unwrap().device().unwrap();
        let mut rng = Seed::new(3).rng();
        let sizes = [40, 24, 16, 5];
        let net = random_net(&sizes, &mut rng, &device);
        let n = 400;
        // 60% zeros, and inputs 0..5 zero on every image.
        let pixels: Vec<f32> = (0..n * sizes[0])
            .map(|k| {
                let on = k % sizes[0] >= 5 && rng.random::<f64>() < 0.4;
                if on { rng.random::<f32>() } else { 0.0 }
            })
            .collect();
        let images: Tensor<2> =
            Tensor::from_data(TensorData::new(pixels.clone(), [n, sizes[0]]), &device);
        // Labels the unperturbed network gets right on about half the images.
        let logits = host(net.forward(images.clone()));
        let targets: Vec<u32> = (0..n)
            .map(|i| {
                let row = &logits[i * 5..(i + 1) * 5];
                let best = (0..5).fold(0, |b, u| if row[u] >= row[b] { u } else { b });
                if i % 2 == 0 {
                    best as u32
                } else {
                    ((best + 1) % 5) as u32
                }
            })
            .collect();
        let host_images = HostImages::new(&pixels, n, sizes[0]);
        let routes = [
            None,
            Some(Route::Sparse),
            Some(Route::Rows),
            Some(Route::Full),
        ];
        let cases = sizes[..3]
            .iter()
            .enumerate()
            .flat_map(|(layer, &d_input)| routes.map(|route| (layer, d_input, route)));
        for (layer, d_input, route) in cases {
            let mut split = SplitNetwork::new(&net, layer, &host_images.pixels_t, n);
            split.route = route;
            let weights = host(net.layers[layer].weight.val());
            let state = split.state(&split.preactivation_t);
            let unperturbed = split.error_pct(
                &state,
                &split.preactivation_t,
                &targets,
                &mut Scratch::default(),
            );
            let mut chosen: Vec<usize> = (0..weights.len()).collect();
            chosen.shuffle(&mut rng);
            // Not every weight: with a whole layer removed every logit ties at 0, where the
            // carried pre-activations keep rounding residues.
            let counts: Vec<usize> = [0, 1, 2, 3, 5, 9, 17, 40, 120, 640]
                .into_iter()
                .map(|c| c.min(weights.len() * 2 / 3))
                .collect();
            for change in [Change::Remove, Change::Randomise] {
                let before = rng.clone();
                let errors = curve_errors(
                    &split,
                    &weights,
                    d_input,
                    &chosen,
                    &counts,
                    change,
                    &targets,
                    (&state, unperturbed),
                    &mut rng,
                );
                let mut replay = before;
                let mut w = weights.clone();
                let mut done = 0;
                for (f, &count) in counts.iter().enumerate() {
                    for &k in &chosen[done..count] {
                        w[k] = match change {
                            Change::Remove => 0.0,
                            Change::Randomise => StandardNormal.sample(&mut replay),
                        };
                    }
                    done = count;
                    let whole = whole_error(&net, layer, &w, &images, &targets, &device);
                    assert!(
                        (errors[f] - whole).abs() <= 100.0 / n as f64 + 1e-9,
                        "layer {layer}, {route:?}, {count} changed: {} carried, {whole} run whole",
                        errors[f]
                    );
                }
                assert!(
                    errors.last() != errors.first(),
                    "layer {layer}: the curve moves"
                );
            }
        }
    }
}
