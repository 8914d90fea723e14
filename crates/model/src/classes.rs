//! The paper's three kinds of connection: very important (`pi = 0` and `xi = 0`: always
//! present with a fixed weight), unimportant (`pi = 1`: never present) and variable (the rest).

use serde::{Deserialize, Serialize};

/// The class of one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConnectionClass {
    /// `pi = 0` and `xi = 0`.
    VeryImportant,
    /// `pi = 1`.
    Unimportant,
    /// Neither.
    Variable,
}

impl ConnectionClass {
    /// All classes, in report order.
    pub const ALL: [ConnectionClass; 3] = [
        ConnectionClass::VeryImportant,
        ConnectionClass::Unimportant,
        ConnectionClass::Variable,
    ];

    /// Name used in tables and figures.
    pub fn label(self) -> &'static str {
        match self {
            ConnectionClass::VeryImportant => "very important",
            ConnectionClass::Unimportant => "unimportant",
            ConnectionClass::Variable => "variable",
        }
    }
}

/// How far from the bounds a value may be and still count as on them. Zero (the default)
/// is the paper's exact comparison, which the projection after each step makes meaningful.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Tolerance {
    /// `pi <= tol` counts as 0 and `pi >= 1 - tol` as 1.
    pub pi: f64,
    /// `xi <= tol` counts as 0.
    pub xi: f64,
}

impl Tolerance {
    /// The paper's exact comparison.
    pub const EXACT: Tolerance = Tolerance { pi: 0.0, xi: 0.0 };
    /// The loose tolerance reported beside the exact one, to show how sharp the classes are.
    pub const LOOSE: Tolerance = Tolerance { pi: 1e-3, xi: 1e-6 };
}

/// Classifies one connection.
pub fn classify(pi: f64, xi: f64, tolerance: Tolerance) -> ConnectionClass {
    if pi >= 1.0 - tolerance.pi {
        ConnectionClass::Unimportant
    } else if pi <= tolerance.pi && xi <= tolerance.xi {
        ConnectionClass::VeryImportant
    } else {
        ConnectionClass::Variable
    }
}

/// Class counts of one layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ClassCounts {
    /// Connections with `pi = 0` and `xi = 0`.
    pub very_important: usize,
    /// Connections with `pi = 1`.
    pub unimportant: usize,
    /// The rest.
    pub variable: usize,
}

impl ClassCounts {
    /// All connections.
    pub fn total(&self) -> usize {
        self.very_important + self.unimportant + self.variable
    }

    /// Count of one class.
    pub fn get(&self, class: ConnectionClass) -> usize {
        match class {
            ConnectionClass::VeryImportant => self.very_important,
            ConnectionClass::Unimportant => self.unimportant,
            ConnectionClass::Variable => self.variable,
        }
    }

    /// Fraction of one class.
    pub fn fraction(&self, class: ConnectionClass) -> f64 {
        self.get(class) as f64 / self.total().max(1) as f64
    }
}

/// The class of every connection of a layer from its `pi` and `xi` (row-major, equally long).
pub fn layer_classes(pi: &[f32], xi: &[f32], tolerance: Tolerance) -> Vec<ConnectionClass> {
    pi.iter()
        .zip(xi)
        .map(|(&pi, &xi)| classify(f64::from(pi), f64::from(xi), tolerance))
        .collect()
}

/// Counts the classes of a layer's connections.
pub fn count_classes(classes: &[ConnectionClass]) -> ClassCounts {
    let mut counts = ClassCounts::default();
    for class in classes {
        match class {
            ConnectionClass::VeryImportant => counts.very_important += 1,
            ConnectionClass::Unimportant => counts.unimportant += 1,
            ConnectionClass::Variable => counts.variable += 1,
        }
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pi_xi() -> (Vec<f32>, Vec<f32>) {
        (
            vec![0.0, 0.0, 1.0, 1.0, 0.5, 1e-6, 0.0, 0.999_99],
            vec![0.0, 0.1, 0.0, 0.3, 0.0, 0.0, 1e-7, 0.0],
        )
    }

    #[test]
    fn exact_classes_on_hand_built_tensors() {
        let (pi, xi) = pi_xi();
        let counts = count_classes(&layer_classes(&pi, &xi, Tolerance::EXACT));
        assert_eq!(
            counts,
            ClassCounts {
                very_important: 1,
                unimportant: 2,
                variable: 5
            }
        );
        assert_eq!(counts.total(), 8);
        assert!((counts.fraction(ConnectionClass::Unimportant) - 0.25).abs() < 1e-12);
    }

    #[test]
    fn a_tolerance_widens_the_bounds() {
        let (pi, xi) = pi_xi();
        let counts = count_classes(&layer_classes(&pi, &xi, Tolerance::LOOSE));
        assert_eq!(
            counts,
            ClassCounts {
                very_important: 3,
                unimportant: 3,
                variable: 2
            }
        );
    }
}
