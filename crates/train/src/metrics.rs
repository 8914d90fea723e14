//! `metrics.csv`: one row per epoch, rewritten (atomically) after every epoch.
//!
//! Columns: `epoch`, `train_loss`, `train_accuracy_pct`, `test_loss`, `test_accuracy_pct`,
//! `train_seconds`, `learning_rate`, `test_accuracy_sampled_pct` (one sampled network's test
//! accuracy; empty for deterministic runs), then for each layer `L` of a spike-and-slab run
//! `layerL_very_important`, `layerL_unimportant` (exact classes, fractions of the layer's
//! connections), `layerL_very_important_loose`, `layerL_unimportant_loose` (at
//! [`Tolerance::LOOSE`]) and `layerL_mean_pi`. Files of earlier versions (six, seven or
//! seven plus layer columns) still read.

use std::path::Path;

use anyhow::{Context, Result, bail};
use credit_model::classes::{ConnectionClass, Tolerance, count_classes, layer_classes};
use serde::{Deserialize, Serialize};

use crate::files::write_atomic;

/// One row of `metrics.csv`. Accuracies in percent; `test_loss` and `test_accuracy_pct` are
/// mean-field (noise on), `test_accuracy_sampled_pct` one sampled network's.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    /// 1-based epoch.
    pub epoch: usize,
    /// Mean cross-entropy over the epoch's training images (parameters change during it).
    pub train_loss: f64,
    /// Training accuracy over the epoch.
    pub train_accuracy_pct: f64,
    /// Cross-entropy on the test images after the epoch.
    pub test_loss: f64,
    /// Test accuracy after the epoch.
    pub test_accuracy_pct: f64,
    /// Test accuracy of one sampled network after the epoch (every weight drawn once from
    /// the epoch's `m`, `xi`, `pi`; seed `Stream::Sampling`, the epoch): the 2020 scripts'
    /// `sampling_evaluate` curve. `None` for deterministic runs and in files written before
    /// it was recorded.
    #[serde(default)]
    pub test_accuracy_sampled_pct: Option<f64>,
    /// Wall-clock seconds of the epoch's training part.
    pub train_seconds: f64,
    /// The learning rate of the epoch's steps (0 in files written before it was recorded).
    pub learning_rate: f64,
    /// Connection classes of each layer after the epoch (spike-and-slab runs; empty in
    /// files written before they were recorded).
    pub layers: Vec<LayerClasses>,
}

/// The class fractions of one layer's connections, and its mean `pi`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct LayerClasses {
    /// Fraction with `pi = 0` and `xi = 0` exactly.
    pub very_important: f64,
    /// Fraction with `pi = 1` exactly.
    pub unimportant: f64,
    /// Fraction very important at [`Tolerance::LOOSE`].
    pub very_important_loose: f64,
    /// Fraction unimportant at [`Tolerance::LOOSE`].
    pub unimportant_loose: f64,
    /// Mean `pi`: the expected fraction of absent connections.
    pub mean_pi: f64,
}

impl LayerClasses {
    /// The classes of a layer with these `pi` and `xi` (row-major, equally long).
    pub fn of(pi: &[f32], xi: &[f32]) -> Self {
        let exact = count_classes(&layer_classes(pi, xi, Tolerance::EXACT));
        let loose = count_classes(&layer_classes(pi, xi, Tolerance::LOOSE));
        let mean_pi = pi.iter().map(|&p| f64::from(p)).sum::<f64>() / pi.len().max(1) as f64;
        Self {
            very_important: exact.fraction(ConnectionClass::VeryImportant),
            unimportant: exact.fraction(ConnectionClass::Unimportant),
            very_important_loose: loose.fraction(ConnectionClass::VeryImportant),
            unimportant_loose: loose.fraction(ConnectionClass::Unimportant),
            mean_pi,
        }
    }

    fn values(&self) -> [f64; 5] {
        [
            self.very_important,
            self.unimportant,
            self.very_important_loose,
            self.unimportant_loose,
            self.mean_pi,
        ]
    }
}

/// The columns of each layer, after `layerL_`.
const LAYER_COLUMNS: [&str; 5] = [
    "very_important",
    "unimportant",
    "very_important_loose",
    "unimportant_loose",
    "mean_pi",
];

/// The columns every row has (files of earlier versions end after the 6th or the 7th).
/// `test_accuracy_sampled_pct` is empty where there is no sampled network.
const COLUMNS: [&str; 8] = [
    "epoch",
    "train_loss",
    "train_accuracy_pct",
    "test_loss",
    "test_accuracy_pct",
    "train_seconds",
    "learning_rate",
    "test_accuracy_sampled_pct",
];

/// The header of a file whose rows have `layers` layers of classes.
fn header(layers: usize) -> String {
    let mut columns: Vec<String> = COLUMNS.iter().map(|c| c.to_string()).collect();
    for l in 1..=layers {
        columns.extend(LAYER_COLUMNS.iter().map(|c| format!("layer{l}_{c}")));
    }
    columns.join(",")
}

/// `metrics.csv` as text (numbers in their shortest exact form).
pub fn to_csv(rows: &[EpochMetrics]) -> String {
    let layers = rows.iter().map(|r| r.layers.len()).max().unwrap_or(0);
    let mut text = header(layers);
    text.push('\n');
    for r in rows {
        let mut fields = vec![r.epoch.to_string()];
        fields.extend(
            [
                r.train_loss,
                r.train_accuracy_pct,
                r.test_loss,
                r.test_accuracy_pct,
                r.train_seconds,
                r.learning_rate,
            ]
            .map(|v| v.to_string()),
        );
        fields.push(
            r.test_accuracy_sampled_pct
                .map_or_else(String::new, |v| v.to_string()),
        );
        for layer in &r.layers {
            fields.extend(layer.values().map(|v| v.to_string()));
        }
        text.push_str(&fields.join(","));
        text.push('\n');
    }
    text
}

/// Writes `rows` to `path`, atomically.
///
/// # Errors
/// If the file cannot be written, naming it.
pub fn write_metrics(path: &Path, rows: &[EpochMetrics]) -> Result<()> {
    write_atomic(path, to_csv(rows).as_bytes())
}

/// Reads a `metrics.csv` (this version's or an earlier one's); no file is no rows.
///
/// # Errors
/// If the file cannot be read or a row is malformed, naming the file and line.
pub fn read_metrics(path: &Path) -> Result<Vec<EpochMetrics>> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    parse_csv(&text).with_context(|| format!("{}: not a metrics file", path.display()))
}

/// Parses `metrics.csv` text; errors name the line.
fn parse_csv(text: &str) -> Result<Vec<EpochMetrics>> {
    let mut lines = text.lines().enumerate();
    let Some((_, head)) = lines.next() else {
        return Ok(Vec::new());
    };
    let names: Vec<&str> = head.split(',').map(str::trim).collect();
    let fixed = COLUMNS.iter().take_while(|c| names.contains(c)).count();
    if fixed < 6 || names[..fixed] != COLUMNS[..fixed] {
        bail!("line 1: unexpected header {head:?}");
    }
    let layer_columns = names.len() - fixed;
    if !layer_columns.is_multiple_of(LAYER_COLUMNS.len())
        || names[fixed..] != header_tail(layer_columns)
    {
        bail!("line 1: unexpected header {head:?}");
    }
    lines
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| {
            parse_row(line, names.len(), fixed).with_context(|| format!("line {}", i + 1))
        })
        .collect()
}

/// The layer columns of a header with `count` of them.
fn header_tail(count: usize) -> Vec<String> {
    (1..=count / LAYER_COLUMNS.len())
        .flat_map(|l| LAYER_COLUMNS.iter().map(move |c| format!("layer{l}_{c}")))
        .collect()
}

fn parse_row(line: &str, columns: usize, fixed: usize) -> Result<EpochMetrics> {
    let fields: Vec<&str> = line.split(',').map(str::trim).collect();
    if fields.len() != columns {
        bail!("{} fields where the header has {columns}", fields.len());
    }
    let number = |i: usize| -> Result<f64> {
        fields[i]
            .parse()
            .with_context(|| format!("field {} is not a number: {:?}", i + 1, fields[i]))
    };
    let layers = fields[fixed..]
        .chunks_exact(LAYER_COLUMNS.len())
        .enumerate()
        .map(|(l, _)| {
            let at = fixed + l * LAYER_COLUMNS.len();
            Ok(LayerClasses {
                very_important: number(at)?,
                unimportant: number(at + 1)?,
                very_important_loose: number(at + 2)?,
                unimportant_loose: number(at + 3)?,
                mean_pi: number(at + 4)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(EpochMetrics {
        epoch: fields[0].parse().context("the epoch is not an integer")?,
        train_loss: number(1)?,
        train_accuracy_pct: number(2)?,
        test_loss: number(3)?,
        test_accuracy_pct: number(4)?,
        train_seconds: number(5)?,
        learning_rate: if fixed >= 7 { number(6)? } else { 0.0 },
        test_accuracy_sampled_pct: if fixed < 8 || fields[7].is_empty() {
            None
        } else {
            Some(number(7)?)
        },
        layers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(epoch: usize, layers: usize) -> EpochMetrics {
        EpochMetrics {
            epoch,
            train_loss: 0.1 / 3.0,
            train_accuracy_pct: 97.25,
            test_loss: 1e-7,
            test_accuracy_pct: 96.0,
            test_accuracy_sampled_pct: epoch.is_multiple_of(2).then_some(95.5),
            train_seconds: 0.123,
            learning_rate: 0.05,
            layers: (0..layers)
                .map(|l| LayerClasses {
                    very_important: 0.01 * l as f64,
                    unimportant: 1.0 / 7.0,
                    very_important_loose: 0.5,
                    unimportant_loose: 0.25,
                    mean_pi: 0.3,
                })
                .collect(),
        }
    }

    #[test]
    fn rows_read_back_exactly() {
        for layers in [0, 3] {
            let rows = vec![row(1, layers), row(2, layers)];
            assert_eq!(parse_csv(&to_csv(&rows)).unwrap(), rows);
        }
    }

    #[test]
    fn files_of_earlier_versions_read() {
        let six = "epoch,train_loss,train_accuracy_pct,test_loss,test_accuracy_pct,train_seconds\n1,0.5,80,0.6,79,1.5\n";
        let rows = parse_csv(six).unwrap();
        assert_eq!(rows[0].test_accuracy_pct, 79.0);
        assert_eq!(rows[0].learning_rate, 0.0);
        let seven = format!("{}\n2,0.5,80,0.6,79,1.5,0.1\n", COLUMNS[..7].join(","));
        assert_eq!(parse_csv(&seven).unwrap()[0].learning_rate, 0.1);
        assert_eq!(
            parse_csv(&seven).unwrap()[0].test_accuracy_sampled_pct,
            None
        );
        let layered = format!(
            "{},{}\n2,0.5,80,0.6,79,1.5,0.1,0,0,0,0,0.5\n",
            COLUMNS[..7].join(","),
            header_tail(5).join(",")
        );
        let rows = parse_csv(&layered).unwrap();
        assert_eq!(rows[0].test_accuracy_sampled_pct, None);
        assert_eq!(rows[0].layers[0].mean_pi, 0.5);
    }

    #[test]
    fn malformed_rows_name_their_line() {
        let text = format!(
            "{}\n1,0.5,80,0.6,79,1.5,0.1,\n2,0.5,x,0.6,79,1.5,0.1,\n",
            header(0)
        );
        let error = format!("{:#}", parse_csv(&text).unwrap_err());
        assert!(
            error.contains("line 3") && error.contains("field 3"),
            "{error}"
        );
        let error = format!("{:#}", parse_csv("a,b\n1,2\n").unwrap_err());
        assert!(error.contains("line 1"), "{error}");
        let short = format!("{}\n1,0.5\n", header(1));
        assert!(format!("{:#}", parse_csv(&short).unwrap_err()).contains("2 fields"));
    }

    #[test]
    fn layer_classes_count_exact_and_loose_bounds() {
        let pi = [0.0, 0.0, 1.0, 0.9995, 0.5];
        let xi = [0.0, 1e-7, 0.2, 0.0, 0.1];
        let c = LayerClasses::of(&pi, &xi);
        assert_eq!(c.very_important, 0.2);
        assert_eq!(c.unimportant, 0.2);
        assert_eq!(c.very_important_loose, 0.4);
        assert_eq!(c.unimportant_loose, 0.4);
        assert!((c.mean_pi - (2.0 + 0.9995 + 0.5 - 1.0) / 5.0).abs() < 1e-6);
    }
}
