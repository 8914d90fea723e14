//! Predicting with uncertainty from an ensemble of networks, and how good the predicted
//! probabilities are.
//!
//! For `K` probability vectors `p_k` over the classes (sampled sub-networks, or mean-field
//! passes with different noise) and their mean `p̄` (Depeweg et al., ICML 2018; Gal, 2016):
//!
//! ```text
//! predictive entropy   H[p̄] = -Σ_c p̄_c ln p̄_c
//! expected entropy     E_k H[p_k]
//! mutual information   H[p̄] - E_k H[p_k]    (0 when all networks agree exactly)
//! ```
//!
//! Calibration of probabilities `p` against labels `y` over `N` inputs (Guo et al., ICML
//! 2017): NLL `-mean ln p_y`, Brier score `mean Σ_c (p_c - [c = y])²`, and the expected
//! calibration error over `B` equal-width confidence bins, `Σ_b (n_b / N) |acc_b - conf_b|`
//! with the confidence `max_c p_c`. Out-of-distribution detection: AUROC and AUPR (the
//! average precision) of a score that should be higher out of distribution.

use serde::{Deserialize, Serialize};

/// Natural-log entropy of a probability vector (terms with `p = 0` contribute 0; never
/// `-0`).
pub fn entropy(p: &[f32]) -> f64 {
    0.0 - p
        .iter()
        .map(|&x| f64::from(x))
        .filter(|&x| x > 0.0)
        .map(|x| x * x.ln())
        .sum::<f64>()
}

/// The index of the largest entry (the first, on ties).
pub fn argmax(p: &[f32]) -> usize {
    p.iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |best, (i, &x)| {
            if x > best.1 { (i, x) } else { best }
        })
        .0
}

/// What an ensemble says about one input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    /// The class of the largest mean probability.
    pub predicted: usize,
    /// The mean probabilities `p̄`.
    pub probabilities: Vec<f32>,
    /// `H[p̄]`, nats.
    pub predictive_entropy: f64,
    /// `E_k H[p_k]`, nats.
    pub expected_entropy: f64,
    /// `H[p̄] - E_k H[p_k]`, nats: the part of the uncertainty due to disagreement.
    pub mutual_information: f64,
    /// The fraction of the members whose own prediction is `predicted`.
    pub agreement: f64,
}

/// The ensemble prediction from its members' probability vectors (each over the same
/// classes).
///
/// # Panics
/// If `members` is empty or they differ in length.
pub fn predict(members: &[&[f32]]) -> Prediction {
    assert!(!members.is_empty(), "at least one member");
    let mut sums = EnsembleSums::new(1, members[0].len());
    for p in members {
        sums.add(p);
    }
    sums.prediction(0)
}

/// Running sums of an ensemble's members over `n` inputs: what [`Prediction`] needs, without
/// keeping the members (memory `O(n · classes)` for any number of members).
#[derive(Debug, Clone)]
pub struct EnsembleSums {
    classes: usize,
    members: usize,
    /// `Σ_k p_k`, `[n, classes]`.
    probabilities: Vec<f64>,
    /// `Σ_k H[p_k]`, `[n]`.
    entropies: Vec<f64>,
    /// Members whose own prediction is each class, `[n, classes]`.
    votes: Vec<u32>,
}

impl EnsembleSums {
    /// No members yet, for `n` inputs over `classes` classes.
    pub fn new(n: usize, classes: usize) -> Self {
        Self {
            classes,
            members: 0,
            probabilities: vec![0.0; n * classes],
            entropies: vec![0.0; n],
            votes: vec![0; n * classes],
        }
    }

    /// Adds one member's probabilities, `[n, classes]` row-major.
    ///
    /// # Panics
    /// If `member` is not `n · classes` long.
    pub fn add(&mut self, member: &[f32]) {
        assert_eq!(member.len(), self.probabilities.len(), "one row per input");
        for (i, row) in member.chunks_exact(self.classes).enumerate() {
            let at = i * self.classes;
            for (sum, &p) in self.probabilities[at..at + self.classes]
                .iter_mut()
                .zip(row)
            {
                *sum += f64::from(p);
            }
            self.entropies[i] += entropy(row);
            self.votes[at + argmax(row)] += 1;
        }
        self.members += 1;
    }

    /// Members added.
    pub fn members(&self) -> usize {
        self.members
    }

    /// The mean probabilities `p̄`, `[n, classes]` row-major.
    pub fn mean_probabilities(&self) -> Vec<f32> {
        let k = self.members.max(1) as f64;
        self.probabilities.iter().map(|&s| (s / k) as f32).collect()
    }

    /// The prediction for input `i`.
    ///
    /// # Panics
    /// If no member was added or `i` is out of range.
    pub fn prediction(&self, i: usize) -> Prediction {
        assert!(self.members > 0, "at least one member");
        let k = self.members as f64;
        let at = i * self.classes;
        let probabilities: Vec<f32> = self.probabilities[at..at + self.classes]
            .iter()
            .map(|&s| (s / k) as f32)
            .collect();
        let predicted = argmax(&probabilities);
        let predictive_entropy = entropy(&probabilities);
        let expected_entropy = self.entropies[i] / k;
        Prediction {
            predicted,
            probabilities,
            predictive_entropy,
            expected_entropy,
            // Rounding can make it a hair negative when the members agree.
            mutual_information: (predictive_entropy - expected_entropy).max(0.0),
            agreement: f64::from(self.votes[at + predicted]) / k,
        }
    }

    /// The prediction for every input.
    ///
    /// # Panics
    /// If no member was added.
    pub fn predictions(&self) -> Vec<Prediction> {
        (0..self.entropies.len())
            .map(|i| self.prediction(i))
            .collect()
    }
}

/// One bin of a reliability diagram.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ReliabilityBin {
    /// Lower edge of the confidence bin.
    pub lower: f64,
    /// Upper edge.
    pub upper: f64,
    /// Inputs whose confidence falls in it.
    pub count: usize,
    /// Their accuracy (0 when empty).
    pub accuracy: f64,
    /// Their mean confidence (0 when empty).
    pub confidence: f64,
}

/// How well probabilities match outcomes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// Accuracy, percent.
    pub accuracy_pct: f64,
    /// Mean negative log-likelihood of the label (probabilities floored at 1e-12).
    pub nll: f64,
    /// Mean Brier score (summed over classes).
    pub brier: f64,
    /// Expected calibration error over equal-width confidence bins.
    pub ece: f64,
    /// The bins.
    pub bins: Vec<ReliabilityBin>,
}

/// The calibration of `probabilities` (`[N, classes]` row-major) against `labels`, with
/// `bins` equal-width confidence bins.
///
/// # Panics
/// If `bins` is 0, `labels` is empty, or the lengths disagree.
pub fn calibration(probabilities: &[f32], labels: &[u32], bins: usize) -> Calibration {
    assert!(bins > 0 && !labels.is_empty());
    let classes = probabilities.len() / labels.len();
    assert_eq!(
        classes * labels.len(),
        probabilities.len(),
        "one row per label"
    );
    let mut bin_stats = vec![(0usize, 0usize, 0f64); bins];
    let (mut nll, mut brier, mut right) = (0.0, 0.0, 0usize);
    for (row, &label) in probabilities.chunks_exact(classes).zip(labels) {
        let label = label as usize;
        let p_label = f64::from(row.get(label).copied().unwrap_or(0.0));
        nll -= p_label.max(1e-12).ln();
        brier += row
            .iter()
            .enumerate()
            .map(|(c, &p)| (f64::from(p) - if c == label { 1.0 } else { 0.0 }).powi(2))
            .sum::<f64>();
        let predicted = argmax(row);
        let confidence = f64::from(row[predicted]);
        let correct = usize::from(predicted == label);
        right += correct;
        let b = ((confidence * bins as f64) as usize).min(bins - 1);
        bin_stats[b].0 += 1;
        bin_stats[b].1 += correct;
        bin_stats[b].2 += confidence;
    }
    let n = labels.len() as f64;
    let bins: Vec<ReliabilityBin> = bin_stats
        .iter()
        .enumerate()
        .map(|(b, &(count, correct, confidence))| ReliabilityBin {
            lower: b as f64 / bin_stats.len() as f64,
            upper: (b + 1) as f64 / bin_stats.len() as f64,
            count,
            accuracy: if count > 0 {
                correct as f64 / count as f64
            } else {
                0.0
            },
            confidence: if count > 0 {
                confidence / count as f64
            } else {
                0.0
            },
        })
        .collect();
    let ece = bins
        .iter()
        .map(|b| b.count as f64 / n * (b.accuracy - b.confidence).abs())
        .sum();
    Calibration {
        accuracy_pct: 100.0 * right as f64 / n,
        nll: nll / n,
        brier: brier / n,
        ece,
        bins,
    }
}

/// The area under the ROC curve of telling `outside` from `inside` by a score that should be
/// higher outside: the probability that a random outside score exceeds a random inside one,
/// ties counting one half (the Mann-Whitney statistic).
///
/// # Panics
/// If either list is empty.
pub fn auroc(inside: &[f64], outside: &[f64]) -> f64 {
    assert!(!inside.is_empty() && !outside.is_empty());
    let mut all: Vec<(f64, bool)> = inside
        .iter()
        .map(|&s| (s, false))
        .chain(outside.iter().map(|&s| (s, true)))
        .collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0));
    // Mid-ranks of ties, summed over the outside scores.
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < all.len() {
        let mut j = i;
        while j < all.len() && all[j].0.total_cmp(&all[i].0).is_eq() {
            j += 1;
        }
        let mid_rank = (i + j + 1) as f64 / 2.0;
        rank_sum += mid_rank * all[i..j].iter().filter(|s| s.1).count() as f64;
        i = j;
    }
    let (n_in, n_out) = (inside.len() as f64, outside.len() as f64);
    (rank_sum - n_out * (n_out + 1.0) / 2.0) / (n_in * n_out)
}

/// The area under the precision-recall curve (average precision) of finding `outside`
/// among `inside` by a score that should be higher outside; tied scores are taken together.
///
/// # Panics
/// If either list is empty.
pub fn aupr(inside: &[f64], outside: &[f64]) -> f64 {
    assert!(!inside.is_empty() && !outside.is_empty());
    let mut all: Vec<(f64, bool)> = inside
        .iter()
        .map(|&s| (s, false))
        .chain(outside.iter().map(|&s| (s, true)))
        .collect();
    all.sort_by(|a, b| b.0.total_cmp(&a.0));
    let positives = outside.len() as f64;
    let (mut found, mut seen, mut area) = (0.0, 0.0, 0.0);
    let mut i = 0;
    while i < all.len() {
        let mut j = i;
        let mut new = 0.0;
        while j < all.len() && all[j].0.total_cmp(&all[i].0).is_eq() {
            new += f64::from(u8::from(all[j].1));
            j += 1;
        }
        seen += (j - i) as f64;
        found += new;
        area += (new / positives) * (found / seen);
        i = j;
    }
    area
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn entropy_and_mutual_information_by_hand() {
        assert!(close(entropy(&[0.5, 0.5]), 2f64.ln()));
        assert!(close(entropy(&[1.0, 0.0, 0.0]), 0.0));
        // Two confident members that disagree: the mean is uniform over two classes.
        let a = [1.0f32, 0.0];
        let b = [0.0f32, 1.0];
        let p = predict(&[&a, &b]);
        assert!(close(p.predictive_entropy, 2f64.ln()));
        assert!(close(p.expected_entropy, 0.0));
        assert!(close(p.mutual_information, 2f64.ln()));
        assert_eq!((p.predicted, p.agreement), (0, 0.5));
        // Identical members: no mutual information, full agreement.
        let c = [0.2f32, 0.7, 0.1];
        let same = predict(&[&c, &c, &c]);
        assert!(close(same.mutual_information, 0.0));
        assert!(close(same.predictive_entropy, entropy(&c)));
        assert_eq!((same.predicted, same.agreement), (1, 1.0));
    }

    #[test]
    fn calibration_by_hand() {
        // Two inputs, two classes: p = (0.8, 0.2) with label 0, p = (0.6, 0.4) with label 1.
        let probabilities = [0.8f32, 0.2, 0.6, 0.4];
        let c = calibration(&probabilities, &[0, 1], 10);
        assert!(close(c.accuracy_pct, 50.0));
        let nll = -(0.8f64.ln() + 0.4f64.ln()) / 2.0;
        assert!((c.nll - nll).abs() < 1e-6);
        // (0.2² + 0.2²) and (0.6² + 0.6²), averaged.
        assert!((c.brier - (0.08 + 0.72) / 2.0).abs() < 1e-6);
        // Bin [0.8, 0.9): acc 1, conf 0.8; bin [0.6, 0.7): acc 0, conf 0.6.
        assert!((c.ece - (0.5 * 0.2 + 0.5 * 0.6)).abs() < 1e-6);
        assert_eq!(c.bins.iter().map(|b| b.count).sum::<usize>(), 2);
        // Perfectly confident and right: everything is 0.
        let perfect = calibration(&[1.0, 0.0, 0.0, 1.0], &[0, 1], 15);
        assert!(close(perfect.brier, 0.0) && close(perfect.ece, 0.0));
        assert!(perfect.nll < 1e-9);
    }

    #[test]
    fn auroc_and_aupr_on_constructed_cases() {
        // Outside scores beat inside ones in 3 of 4 pairs.
        assert!(close(auroc(&[0.1, 0.4], &[0.35, 0.8]), 0.75));
        // Perfect separation, and the reverse.
        assert!(close(auroc(&[0.1, 0.2], &[0.3, 0.4]), 1.0));
        assert!(close(auroc(&[0.3, 0.4], &[0.1, 0.2]), 0.0));
        // Identical distributions (all ties): one half.
        assert!(close(auroc(&[0.5; 7], &[0.5; 3]), 0.5));
        assert!(close(auroc(&[1.0, 2.0, 3.0], &[1.0, 2.0, 3.0]), 0.5));
        // Average precision: perfect is 1; the outside ranked 1st and 3rd of 4 gives
        // (1/1 + 2/3) / 2.
        assert!(close(aupr(&[0.1, 0.2], &[0.3, 0.4]), 1.0));
        assert!(close(
            aupr(&[0.1, 0.5], &[0.2, 0.9]),
            (1.0 + 2.0 / 3.0) / 2.0
        ));
    }
}
