//! Sparsity beyond `pi = 1` exactly: prune every connection whose spike probability exceeds a
//! threshold `t` and measure what is left.
//!
//! At each `t` a connection is kept if `pi <= t` and `pi < 1` (a connection with `pi = 1` is
//! absent from every sampled network and has mean weight 0, so it never counts as kept). The
//! curve gives, for each `t`: the connections kept and the compression ratio (all / kept); the
//! test accuracy of the mean network `(1 - pi) m` and of sampled networks (each weight 0 with
//! probability `pi`, else from `N(m, xi)`) with the pruned connections set to zero; and, per
//! hidden layer, the fraction of units left with no incoming or no outgoing connection (units
//! cut off from the network). Sampled network `r` is drawn from `seed.child(r)` once and pruned
//! at every threshold, so the curve is the same networks thinned; `credit analyze` passes the
//! sub-networks' seed, so that at `t = 1` they are the first sub-networks of its ensemble.

use credit_data::ImageSet;
use credit_model::{Seed, SpikeSlabNet};
use serde::{Deserialize, Serialize};

use crate::host_net::{self, HostImages, HostLayer};
use crate::params::{LayerParams, host};
use crate::subnetworks::mean_sd;

/// The thresholds of the curve unless an analysis config sets others.
pub const DEFAULT_THRESHOLDS: [f64; 9] = [0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 0.999, 1.0];

/// Units of one hidden layer cut off at each threshold, as fractions of its units.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HiddenUnitsCut {
    /// The hidden layer: the output of weight layer `layer` (from 1) and the input of the
    /// next.
    pub layer: usize,
    /// Units with every incoming connection pruned.
    pub no_incoming: Vec<f64>,
    /// Units with every outgoing connection pruned.
    pub no_outgoing: Vec<f64>,
    /// Units with either: cut off from the network.
    pub cut_off: Vec<f64>,
}

/// The pruning curve of a network over thresholds on `pi`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SparsityCurve {
    /// Thresholds `t`: connections with `pi > t` pruned.
    pub thresholds: Vec<f64>,
    /// Connections kept at each `t` (all layers).
    pub kept: Vec<usize>,
    /// All connections.
    pub total: usize,
    /// `total / kept` at each `t` (`None` where nothing is kept).
    pub compression_ratio: Vec<Option<f64>>,
    /// Test accuracy of the pruned mean network `(1 - pi) m`, percent.
    pub mean_network_accuracy_pct: Vec<f64>,
    /// Mean test accuracy of the pruned sampled networks, percent.
    pub sampled_accuracy_mean_pct: Vec<f64>,
    /// Standard deviation over the sampled networks.
    pub sampled_accuracy_sd_pct: Vec<f64>,
    /// Sampled networks per threshold.
    pub samples: usize,
    /// Per hidden layer, the units cut off.
    pub hidden: Vec<HiddenUnitsCut>,
}

/// Whether a connection with spike probability `pi` is kept at threshold `t`.
fn kept(pi: f32, t: f64) -> bool {
    let pi = f64::from(pi);
    pi <= t && pi < 1.0
}

/// The layers of the network with the given host weights (row-major `[d_output, d_input]`)
/// and the pruned ones zero.
fn pruned_layers(weights: &[Vec<f32>], params: &[LayerParams], t: f64) -> Vec<HostLayer> {
    weights
        .iter()
        .zip(params)
        .map(|(w, p)| HostLayer {
            weight: w
                .iter()
                .zip(&p.pi)
                .map(|(&w, &pi)| if kept(pi, t) { w } else { 0.0 })
                .collect(),
            d_output: p.d_output,
            d_input: p.d_input,
        })
        .collect()
}

/// The fractions of hidden units with no incoming or no outgoing connection kept at `t`.
fn cut_units(params: &[LayerParams], t: f64) -> Vec<[f64; 3]> {
    params
        .windows(2)
        .map(|pair| {
            let (into, out) = (&pair[0], &pair[1]);
            let units = into.d_output;
            let incoming =
                |j: usize| (0..into.d_input).any(|i| kept(into.pi[j * into.d_input + i], t));
            let outgoing =
                |j: usize| (0..out.d_output).any(|o| kept(out.pi[o * out.d_input + j], t));
            let (mut no_in, mut no_out, mut cut) = (0, 0, 0);
            for j in 0..units {
                let (i, o) = (incoming(j), outgoing(j));
                no_in += usize::from(!i);
                no_out += usize::from(!o);
                cut += usize::from(!i || !o);
            }
            let n = units.max(1) as f64;
            [no_in as f64 / n, no_out as f64 / n, cut as f64 / n]
        })
        .collect()
}

/// The pruning curve of `net` (whose host parameters are `params`) at `thresholds`, with
/// `samples` sampled networks drawn from `seed`, on `test`.
///
/// # Panics
/// If `params` are not the layers of `net`.
pub fn sparsity_curve(
    net: &SpikeSlabNet,
    params: &[LayerParams],
    test: &ImageSet,
    thresholds: &[f64],
    samples: usize,
    seed: Seed,
) -> SparsityCurve {
    assert_eq!(net.layers.len(), params.len(), "one LayerParams per layer");
    // Every pruned network runs on the host, whatever the device (see `host_net`).
    let images = HostImages::of(test);
    let accuracy = |layers: &[HostLayer]| {
        host_net::accuracy_pct(&host_net::logits(layers, &images), test.labels())
    };
    let mean_weights: Vec<Vec<f32>> = params.iter().map(LayerParams::mean_weights).collect();
    // The connections kept per layer at each threshold. The kept sets grow with `t`, so
    // equal counts in every layer mean the same pruned network, whose accuracy is the last
    // threshold's, exactly (`t = 0.999` and `t = 1` often prune the same connections).
    let kept_by_layer: Vec<Vec<usize>> = thresholds
        .iter()
        .map(|&t| {
            params
                .iter()
                .map(|p| p.pi.iter().filter(|&&pi| kept(pi, t)).count())
                .collect()
        })
        .collect();
    let curve_of = |weights: &[Vec<f32>]| -> Vec<f64> {
        let mut last: Option<(&Vec<usize>, f64)> = None;
        thresholds
            .iter()
            .zip(&kept_by_layer)
            .map(|(&t, kept_now)| match last {
                Some((kept_before, a)) if kept_before == kept_now => a,
                _ => {
                    let a = accuracy(&pruned_layers(weights, params, t));
                    last = Some((kept_now, a));
                    a
                }
            })
            .collect()
    };
    // One sampled network at a time, pruned at every threshold: `by_sample[r][t]`.
    let by_sample: Vec<Vec<f64>> = (0..samples)
        .map(|r| {
            let weights: Vec<Vec<f32>> = net
                .sample_network(seed.child(r as u64))
                .layers
                .iter()
                .map(|l| host(l.weight.val()))
                .collect();
            curve_of(&weights)
        })
        .collect();
    let mean_network = curve_of(&mean_weights);
    let total: usize = params.iter().map(LayerParams::len).sum();
    let mut curve = SparsityCurve {
        thresholds: thresholds.to_vec(),
        kept: Vec::new(),
        total,
        compression_ratio: Vec::new(),
        mean_network_accuracy_pct: Vec::new(),
        sampled_accuracy_mean_pct: Vec::new(),
        sampled_accuracy_sd_pct: Vec::new(),
        samples,
        hidden: (1..params.len())
            .map(|layer| HiddenUnitsCut {
                layer,
                no_incoming: Vec::new(),
                no_outgoing: Vec::new(),
                cut_off: Vec::new(),
            })
            .collect(),
    };
    for (i, &t) in thresholds.iter().enumerate() {
        let kept_now: usize = kept_by_layer[i].iter().sum();
        curve.kept.push(kept_now);
        curve
            .compression_ratio
            .push((kept_now > 0).then(|| total as f64 / kept_now as f64));
        curve.mean_network_accuracy_pct.push(mean_network[i]);
        let accuracies: Vec<f64> = by_sample.iter().map(|a| a[i]).collect();
        let (mean, sd) = mean_sd(&accuracies);
        curve.sampled_accuracy_mean_pct.push(mean);
        curve.sampled_accuracy_sd_pct.push(sd);
        for (h, [no_in, no_out, cut]) in curve.hidden.iter_mut().zip(cut_units(params, t)) {
            h.no_incoming.push(no_in);
            h.no_outgoing.push(no_out);
            h.cut_off.push(cut);
        }
    }
    curve
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(d_input: usize, d_output: usize, pi: Vec<f32>) -> LayerParams {
        let n = d_input * d_output;
        LayerParams {
            d_input,
            d_output,
            m: vec![1.0; n],
            xi: vec![0.0; n],
            pi,
        }
    }

    #[test]
    fn units_are_cut_off_when_all_their_connections_are_pruned() {
        // 2 inputs -> 3 hidden -> 1 output. Hidden unit 0 keeps an input down to t = 0.2,
        // unit 1 has pi = 1 on both inputs (never kept), unit 2 loses its output at t < 0.9.
        let first = layer(2, 3, vec![0.7, 0.2, 1.0, 1.0, 0.0, 0.1]);
        let second = layer(3, 1, vec![0.0, 0.0, 0.9]);
        let params = [first, second];
        assert_eq!(cut_units(&params, 1.0), vec![[1.0 / 3.0, 0.0, 1.0 / 3.0]]);
        assert_eq!(
            cut_units(&params, 0.8),
            vec![[1.0 / 3.0, 1.0 / 3.0, 2.0 / 3.0]]
        );
        assert_eq!(cut_units(&params, 0.1), vec![[2.0 / 3.0, 1.0 / 3.0, 1.0]]);
        // A connection with pi = 1 is never kept, one with pi = t is.
        assert!(!kept(1.0, 1.0) && kept(0.9, 0.9) && !kept(0.9, 0.89));
    }
}
