//! Analysis of trained credit runs: which connections a spike-and-slab network relies on.
//!
//! Connection classes ([`classes`]), the entropy of each weight's distribution ([`entropy`]),
//! concrete sub-networks sampled from the learned distribution and their ensemble
//! ([`subnetworks`]), the targeted perturbation experiment ([`perturb`]), and the report that
//! puts them together ([`analyze()`], [`report`]); parameters exported for numpy and PyTorch
//! ([`export`]).

#![deny(missing_docs)]

pub mod analyze;
pub use credit_model::classes;
pub mod entropy;
pub mod eval;
pub mod export;
mod figures;
pub mod params;
pub mod perturb;
pub mod report;
pub mod subnetworks;
pub mod sweep;

pub use analyze::{Analysis, AnalysisConfig, analyze};
pub use eval::{EvalReport, evaluate_run};
pub use report::write_report;
pub use subnetworks::{SubnetworkReport, evaluate_subnetworks, mean_sd, zero_fraction};
