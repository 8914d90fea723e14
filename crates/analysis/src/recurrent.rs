//! What the analysis of a spike-and-slab recurrent run (Zou, Li & Huang, PRE 107, 024307,
//! 2023) adds to the feed-forward one: the classes of the recurrent matrix's
//! self-connections (its diagonal, which starts at `m = 1`) apart from the others, and the
//! test accuracy when the sequence is cut after `t` steps, for the mean-field network and
//! the mean network. The classes, histograms, entropy, sub-networks and calibration of the
//! three matrices come from the feed-forward analysis, which runs on any spike-and-slab
//! model.

use anyhow::{Result, bail};
use burn::tensor::{Device, Tensor};
use credit_data::ImageSet;
use credit_model::classes::{ClassCounts, Tolerance, count_classes, layer_classes};
use credit_model::{Noise, Seed, SpikeSlabRnn};
use credit_train::{EVAL_ROWS, ModelKind, RunConfig, RunDir};
use serde::{Deserialize, Serialize};

use crate::params::host;

/// The names of a recurrent network's three matrices, in the order of its layers.
pub const MATRICES: [&str; 3] = ["input", "recurrent", "readout"];

/// The recurrent run's own findings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecurrentReport {
    /// Steps per sequence.
    pub steps: usize,
    /// Classes of the `n_rec` self-connections (the diagonal of the recurrent matrix).
    pub self_connections: ClassCounts,
    /// Classes of the other `n_rec (n_rec - 1)` recurrent connections.
    pub other_recurrent: ClassCounts,
    /// Mean slab mean `m` of the self-connections.
    pub self_mean_m: f64,
    /// Mean `|m|` of the other recurrent connections.
    pub other_mean_abs_m: f64,
    /// Test accuracy (percent) after `t = 1..=steps` steps, the mean-field network (its
    /// noise drawn as the analysis' mean-field accuracy draws it, so that the last value is
    /// that accuracy).
    pub truncated_mean_field_pct: Vec<f64>,
    /// The same for the mean network (the last value is its accuracy).
    pub truncated_mean_network_pct: Vec<f64>,
    /// Test accuracy (percent) with the weights redrawn at every step
    /// ([`SpikeSlabRnn::forward_redrawn`]): the sampled accuracy the authors' script reports,
    /// beside the analysis' sub-networks, whose weights are drawn once (absent in analyses
    /// written before it was recorded).
    #[serde(default)]
    pub redrawn_sampled_pct: Option<f64>,
}

/// The recurrent report of `net` on `test`: classes at `tolerance`, and the accuracies of
/// truncated sequences, the mean-field noise of chunk `c` from `evaluation.child(c)` (the
/// noise of the analysis' mean-field accuracy); the accuracy with the weights redrawn at
/// every step, chunk `c` from `redrawn.child(c)`.
pub fn recurrent_report(
    net: &SpikeSlabRnn,
    test: &ImageSet,
    tolerance: Tolerance,
    evaluation: Seed,
    redrawn: Seed,
    device: &Device,
) -> RecurrentReport {
    let [n, _] = net.recurrent.dims();
    let (m, xi, pi) = (
        host(net.recurrent.m.val()),
        host(net.recurrent.xi.val()),
        host(net.recurrent.pi.val()),
    );
    let classes = layer_classes(&pi, &xi, tolerance);
    let diagonal = |k: &usize| k / n == k % n;
    let pick = |on_diagonal: bool| -> Vec<usize> {
        (0..n * n).filter(|k| diagonal(k) == on_diagonal).collect()
    };
    let (own, other) = (pick(true), pick(false));
    let counts = |ks: &[usize]| count_classes(&ks.iter().map(|&k| classes[k]).collect::<Vec<_>>());
    let mean = |ks: &[usize], f: &dyn Fn(f32) -> f32| {
        ks.iter().map(|&k| f64::from(f(m[k]))).sum::<f64>() / ks.len().max(1) as f64
    };
    let steps = test.features() / net.input.dims()[1].max(1);
    let mut right = [vec![0usize; steps], vec![0usize; steps]];
    let mut right_redrawn = 0;
    for (chunk, start) in (0..test.len()).step_by(EVAL_ROWS).enumerate() {
        let batch = test.batch(start..(start + EVAL_ROWS).min(test.len()), device);
        let logits = net.forward_redrawn(batch.images.clone(), redrawn.child(chunk as u64));
        right_redrawn += right_rows(logits, batch.targets.clone());
        let noisy = Noise::Sampled(evaluation.child(chunk as u64));
        for (sums, noise) in right.iter_mut().zip([noisy, Noise::Off]) {
            let logits = net.forward_every_step(batch.images.clone(), noise);
            for (sum, logits) in sums.iter_mut().zip(logits) {
                *sum += right_rows(logits, batch.targets.clone());
            }
        }
    }
    let pct = |sums: &[usize]| -> Vec<f64> {
        sums.iter()
            .map(|&r| 100.0 * r as f64 / test.len().max(1) as f64)
            .collect()
    };
    RecurrentReport {
        steps,
        self_connections: counts(&own),
        other_recurrent: counts(&other),
        self_mean_m: mean(&own, &|v| v),
        other_mean_abs_m: mean(&other, &|v| v.abs()),
        truncated_mean_field_pct: pct(&right[0]),
        truncated_mean_network_pct: pct(&right[1]),
        redrawn_sampled_pct: Some(100.0 * right_redrawn as f64 / test.len().max(1) as f64),
    }
}

/// Rows of `logits` (`[batch, classes]`) whose largest logit is at the label.
fn right_rows(logits: Tensor<2>, targets: Tensor<1, burn::tensor::Int>) -> usize {
    let n = targets.dims()[0];
    let right: i64 = logits
        .argmax(1)
        .reshape([n])
        .equal(targets)
        .int()
        .sum()
        .into_scalar();
    right as usize
}

/// Fails, naming the run and the work, if `config` is that of a recurrent run: what handles
/// feed-forward networks only (out-of-distribution scoring) calls it first.
///
/// # Errors
/// If `config.model.kind` is `spike-slab-rnn`.
pub fn not_recurrent(run: &RunDir, config: &RunConfig, command: &str) -> Result<()> {
    if config.model.kind == ModelKind::SpikeSlabRnn {
        bail!(
            "{} is a recurrent run (model.kind = \"spike-slab-rnn\"): {command} is for feed-forward runs only",
            run.path().display()
        );
    }
    Ok(())
}
