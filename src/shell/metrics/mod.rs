//! `/metrics`: what a peer tells Prometheus about itself and the cluster.
//!
//! - [`catalog`]: every metric's name, kind and help text (the README's list).
//! - [`exposition`]: at each scrape, sets what is read rather than counted
//!   (the core's counters, the snapshot's gauges, the process) and renders
//!   the registry in the text format.
//! - `process`: RSS, CPU seconds, threads and open fds from `/proc/self`.
//! - [`http`]: the API middleware counting requests by route and status.
//! - [`timing`]: durations the driver measures around the core (pod start
//!   latency, placement rounds).
//!
//! **The pure core stays pure.** `crdt-state`, `src/placement`,
//! `src/reconcile` and `src/peer` never call the `metrics` facade: the core
//! counts into plain structs ([`PeerStats`](crate::peer::PeerStats),
//! [`MembershipStats`](crate::peer::MembershipStats)) that a scrape asks
//! the driver for, and durations are measured by the driver around the
//! core's inputs (it has the clock; the core has only `now`). The facade is
//! called from the shell and the Docker executor only.
//!
//! **One recorder per process.** The facade has one global recorder,
//! installed by the first [`install`]. `shoal up` runs one peer per process;
//! tests that run several peers in one process share it, and their
//! facade-counted series (API requests, image transfers) add up.
//!
//! **Series of things that are gone.** Gauges are set at every scrape from
//! the snapshot; a gauge no scrape has set for [`GAUGE_IDLE`] (the RC was
//! deleted, the member forgotten) is dropped from the output.

pub mod catalog;
pub mod exposition;
pub mod http;
mod process;
pub mod timing;

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use metrics_util::MetricKindMask;

pub use exposition::CoreStats;

/// A gauge not set by any scrape for this long leaves the output.
pub const GAUGE_IDLE: Duration = Duration::from_secs(10);

/// Buckets of request-sized durations (API requests, placement rounds).
const FAST_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Buckets of a pod's start: an image transfer or pull can take minutes.
const START_BUCKETS: &[f64] = &[
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process's recorder (once; later calls return the same
/// handle) and describes every metric. Call before the peer starts, so
/// nothing counted at start-up is lost.
pub fn install() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let recorder = builder().build_recorder();
        let handle = recorder.handle();
        if let Err(e) = metrics::set_global_recorder(recorder) {
            // Another recorder owns the facade (an embedding program): our
            // own series still render, the facade's go to the other one.
            tracing::warn!(error = %e, "metrics recorder already installed; /metrics shows only what a scrape reads");
        }
        catalog::describe();
        handle
    })
}

fn builder() -> PrometheusBuilder {
    let builder = PrometheusBuilder::new()
        .idle_timeout(MetricKindMask::GAUGE, Some(GAUGE_IDLE))
        .set_buckets(FAST_BUCKETS)
        .and_then(|b| {
            b.set_buckets_for_metric(
                Matcher::Full(catalog::POD_START_SECONDS.to_owned()),
                START_BUCKETS,
            )
        });
    // Only an empty bucket list fails, and ours are constants.
    builder.expect("constant histogram buckets are valid")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_accepts_the_bucket_constants() {
        let _ = builder().build_recorder();
    }
}
