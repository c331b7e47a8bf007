//! Scenarios: each builds a cluster, disturbs it, lets it settle, and
//! returns a report. Each is also a test at a smaller size.

pub mod churn;
pub mod cluster;
pub mod crash;
pub mod join;
pub mod loss;
pub mod partition;
/// Whole peer cores with a workload (apply, failover, scale, ...).
pub mod peer;

use shoal_gossip::Preset;

use crate::net::{NetConfig, Network};
use crate::report::Report;

/// Options shared by every scenario.
#[derive(Debug, Clone)]
pub struct Options {
    pub peers: usize,
    pub seed: u64,
    pub preset: Preset,
    pub net: NetConfig,
}

impl Options {
    pub fn new(peers: usize, seed: u64) -> Self {
        Self {
            peers,
            seed,
            preset: Preset::Lan,
            net: NetConfig::default(),
        }
    }

    pub(crate) fn cluster(&self) -> cluster::Cluster {
        cluster::Cluster::new(Network::new(self.net.clone()), self.preset, self.seed)
    }
}

/// Scenario names accepted by [`run`] and the command line.
pub const NAMES: [&str; 5] = ["join", "crash", "partition-heal", "loss", "churn"];

/// Runs the scenario called `name`.
pub fn run(name: &str, options: &Options) -> Result<Report, String> {
    match name {
        "join" => Ok(join::run(options)),
        "crash" => Ok(crash::run(options)),
        "partition-heal" => Ok(partition::run(options)),
        "loss" => Ok(loss::run(options)),
        "churn" => Ok(churn::run(options)),
        other => Err(format!(
            "unknown scenario {other:?}; pick one of {}",
            NAMES.join(", ")
        )),
    }
}
