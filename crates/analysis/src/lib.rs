//! Analysis of trained credit runs: which connections a spike-and-slab network relies on.
//!
//! Connection classes ([`classes`]), the entropy of each weight's distribution ([`entropy`]),
//! concrete sub-networks sampled from the learned distribution and their ensemble
//! ([`subnetworks`]), the targeted perturbation experiment ([`perturb`]), predictions with
//! uncertainty, calibration and out-of-distribution detection ([`predict`], [`uncertainty`]),
//! and the report that puts them together ([`analyze()`], [`report`]); parameters exported
//! for numpy and PyTorch ([`export`]); sweeps and `credit reproduce` ([`sweep`]).

#![deny(missing_docs)]

pub mod analyze;
pub use credit_model::classes;
pub mod entropy;
pub mod eval;
pub mod export;
pub mod figures;
mod host_net;
pub mod limits;
pub mod params;
pub mod perturb;
pub mod predict;
pub mod progress;
pub mod recurrent;
pub mod report;
pub mod sparsity;
pub mod subnetworks;
pub mod sweep;
pub mod uncertainty;

pub use analyze::{Analysis, AnalysisConfig, analyze, analyze_with};
pub use eval::{EvalOptions, EvalReport, OodReport, evaluate_run, evaluate_run_with};
pub use progress::Progress;
pub use report::{write_report, write_report_with};
pub use subnetworks::{SubnetworkReport, evaluate_subnetworks, mean_sd, zero_fraction};
