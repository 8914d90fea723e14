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
    /// The authors' code, over its seeds (none for the baseline).
    pub authors: Option<Summary>,
    /// `credit - authors` in units of the pooled seed standard deviation
    /// `sqrt((sd_credit² + sd_authors²) / 2)`; absent where the two are not comparable (see
    /// `not_compared`).
    pub difference_in_pooled_sd: Option<f64>,
    /// Why no difference is given although both sides have numbers: fewer than two seeds on
    /// a side (no seed sd), or credit's runs trained another budget than the authors'.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_compared: Option<String>,
}

/// The comparison of one protocol.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProtocolComparison {
    /// `2020` or `2022`.
    pub protocol: String,
    /// The rows.
    pub rows: Vec<ComparisonRow>,
}

/// One row; `budget` says why credit's runs cannot be compared with the authors' at all
/// (another number of epochs), if they cannot.
pub(super) fn row(
    quantity: String,
    credit: Vec<f64>,
    authors: Option<Vec<f64>>,
    budget: Option<&str>,
) -> ComparisonRow {
    let c = summary(&credit);
    let a = authors.as_deref().and_then(summary);
    let (difference_in_pooled_sd, not_compared) = match (c, a) {
        (Some(_), Some(_)) if budget.is_some() => (None, budget.map(str::to_string)),
        (Some(c), Some(a)) if c.n < 2 || a.n < 2 => (
            None,
            Some(format!(
                "n = {} of credit, {} of the authors: a seed sd needs two seeds on each side",
                c.n, a.n
            )),
        ),
        (Some(c), Some(a)) => {
            let pooled = ((c.sd * c.sd + a.sd * a.sd) / 2.0).sqrt();
            (pooled > 0.0).then(|| (c.mean - a.mean) / pooled).map_or(
                (None, Some("both sides have a seed sd of 0".to_string())),
                |z| (Some(z), None),
            )
        }
        _ => (None, None),
    };
    ComparisonRow {
        quantity,
        credit: c,
        credit_values: credit,
        authors: a,
        difference_in_pooled_sd,
        not_compared,
    }
}

/// The comparison rows of one protocol from its complete runs.
pub(super) fn compare(
    protocol: &Protocol,
    analyses: &[&Analysis],
    baselines: &[&RunSummary],
) -> ProtocolComparison {
    let au = &protocol.authors;
    // The authors' numbers are of 100-epoch runs: shorter or longer runs are shown, not
    // compared.
    let other_epochs: Vec<usize> = analyses
        .iter()
        .map(|a| a.epochs)
        .filter(|&e| e != super::AUTHORS_EPOCHS)
        .collect();
    let budget = other_epochs.first().map(|e| {
        format!(
            "credit's runs trained {e} epochs, the authors' {}",
            super::AUTHORS_EPOCHS
        )
    });
    let budget = budget.as_deref();
    let of = |f: &dyn Fn(&Analysis) -> Option<f64>| -> Vec<f64> {
        analyses.iter().filter_map(|a| f(a)).collect()
    };
    let mut rows = vec![
        row(
            "mean-field test accuracy, noise on (%)".into(),
            of(&|a| Some(a.accuracy.mean_field_pct)),
            Some(au.mean_field.to_vec()),
            budget,
        ),
        row(
            "mean network (1 - pi) m, noise off (%)".into(),
            of(&|a| Some(a.accuracy.mean_network_pct)),
            Some(au.mean_network.to_vec()),
            budget,
        ),
        row(
            "sampled sub-networks, mean (%)".into(),
            of(&|a| a.accuracy.subnetworks.as_ref().map(|s| s.mean_pct)),
            Some(au.subnetworks.to_vec()),
            budget,
        ),
        row(
            "sub-network ensemble (%)".into(),
            of(&|a| a.accuracy.subnetworks.as_ref().map(|s| s.ensemble_pct)),
            Some(au.ensemble.to_vec()),
            budget,
        ),
    ];
    for (name, class, authors) in [
        (
            "very important (pi = 0, xi = 0 exactly)",
            ConnectionClass::VeryImportant,
            au.very_important,
        ),
        (
            "unimportant (pi = 1 exactly)",
            ConnectionClass::Unimportant,
            au.unimportant,
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
                budget,
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
        None,
    ));
    ProtocolComparison {
        protocol: protocol.name.to_string(),
        rows,
    }
}
