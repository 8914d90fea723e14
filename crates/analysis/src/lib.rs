//! Analysis of trained credit runs: concrete sub-networks sampled from the learned weight
//! distribution and their ensemble.

mod subnetworks;

pub use subnetworks::{SubnetworkReport, evaluate_subnetworks, mean_sd, zero_fraction};
