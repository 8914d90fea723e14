//! credit's numbers against the authors': mean and sample sd over seeds, and the difference
//! in pooled seed standard deviations.

use credit_train::RunSummary;
use serde::{Deserialize, Serialize};

use super::Protocol;
use crate::analyze::Analysis;
use crate::classes::ConnectionClass;
use crate::subnetworks::mean_sd;

/// Mean, sample standard deviation and count.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Mean.
    pub mean: f64,
    /// Sample standard deviation (0 for fewer than two values).
    pub sd: f64,
    /// Values.
    pub n: usize,
}

pub(super) fn summary(values: &[f64]) -> Option<Summary> {
    if values.is_empty() {
        return None;
    }
    let (mean, sd) = mean_sd(values);
    Some(Summary {
        mean,
        sd,
        n: values.len(),
    })
}

/// One row of the comparison with the authors' code.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComparisonRow {
    /// What the row measures.
    pub quantity: String,
    /// credit, over its seeds.
    pub credit: Option<Summary>,
    /// credit's value per seed.
    pub credit_values: Vec<f64>,
    /// The authors' code, over seeds 0-2 (none for the baseline).
    pub authors: Option<Summary>,
    /// `credit - authors` in units of the pooled seed standard deviation
    /// `sqrt((sd_credit² + sd_authors²) / 2)`.
    pub difference_in_pooled_sd: Option<f64>,
}

/// The comparison of one protocol.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProtocolComparison {
    /// `2020` or `2022`.
    pub protocol: String,
    /// The rows.
    pub rows: Vec<ComparisonRow>,
}

pub(super) fn row(quantity: String, credit: Vec<f64>, authors: Option<Vec<f64>>) -> ComparisonRow {
    let c = summary(&credit);
    let a = authors.as_deref().and_then(summary);
    let difference_in_pooled_sd = match (c, a) {
        (Some(c), Some(a)) => {
            let pooled = ((c.sd * c.sd + a.sd * a.sd) / 2.0).sqrt();
            (pooled > 0.0).then(|| (c.mean - a.mean) / pooled)
        }
        _ => None,
    };
    ComparisonRow {
        quantity,
        credit: c,
        credit_values: credit,
        authors: a,
        difference_in_pooled_sd,
    }
}

/// The comparison rows of one protocol from its complete runs.
pub(super) fn compare(
    protocol: &Protocol,
    analyses: &[&Analysis],
    baselines: &[&RunSummary],
) -> ProtocolComparison {
    let au = &protocol.authors;
    let of = |f: &dyn Fn(&Analysis) -> Option<f64>| -> Vec<f64> {
        analyses.iter().filter_map(|a| f(a)).collect()
    };
    let mut rows = vec![
        row(
            "mean-field test accuracy, noise on (%)".into(),
            of(&|a| Some(a.accuracy.mean_field_pct)),
            Some(au.mean_field.to_vec()),
        ),
        row(
            "mean network (1 - pi) m, noise off (%)".into(),
            of(&|a| Some(a.accuracy.mean_network_pct)),
            Some(au.mean_network.to_vec()),
        ),
        row(
            "sampled sub-networks, mean (%)".into(),
            of(&|a| a.accuracy.subnetworks.as_ref().map(|s| s.mean_pct)),
            Some(au.subnetworks.to_vec()),
        ),
        row(
            "sub-network ensemble (%)".into(),
            of(&|a| a.accuracy.subnetworks.as_ref().map(|s| s.ensemble_pct)),
            Some(au.ensemble.to_vec()),
        ),
    ];
    for (name, class, authors) in [
        (
            "very important (pi = 0, xi = 0 exactly)",
            ConnectionClass::VeryImportant,
            &au.very_important,
        ),
        (
            "unimportant (pi = 1 exactly)",
            ConnectionClass::Unimportant,
            &au.unimportant,
        ),
    ] {
        for l in 0..3 {
            rows.push(row(
                format!("{name}, layer {} (%)", l + 1),
                of(&|a| {
                    a.layers
                        .get(l)
                        .map(|layer| 100.0 * layer.classes.fraction(class))
                }),
                Some(authors.iter().map(|seed| seed[l]).collect()),
            ));
        }
    }
    rows.push(row(
        "deterministic baseline test accuracy (%)".into(),
        baselines
            .iter()
            .map(|s| s.test_accuracy_mean_network_pct)
            .collect(),
        None,
    ));
    ProtocolComparison {
        protocol: protocol.name.to_string(),
        rows,
    }
}
