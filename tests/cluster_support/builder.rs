//! What a test asks of its cluster (how many peers, their flags and log
//! level, which engines), and starting it.

use super::{Cluster, engines, ensure_test_images};

/// Which Docker engine the machines of a cluster use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engines {
    /// Every peer uses the machine's engine: fast, for tests that do not
    /// care where a container lives.
    Shared,
    /// Each machine runs its own dockerd ([`NodeEngine`]): killing the
    /// machine kills its containers, and each engine holds its own images.
    PerNode,
}

impl Cluster {
    /// A cluster of `n` peers on 127.0.`subnet`.0/24 sharing the machine's
    /// engine, unless the builder says otherwise.
    pub fn builder(subnet: u8, n: usize) -> ClusterBuilder {
        ClusterBuilder {
            subnet,
            n,
            // The transport's debug lines say why a connection failed.
            log_filter: "info,shoal=debug,shoal_gossip::quic=debug".to_owned(),
            args: Vec::new(),
            engines: Engines::Shared,
            machine_labels: false,
            peer_env: Vec::new(),
        }
    }
}

/// What a test asks of its cluster; [`ClusterBuilder::start`] starts it.
#[derive(Debug)]
pub struct ClusterBuilder {
    subnet: u8,
    n: usize,
    log_filter: String,
    args: Vec<String>,
    engines: Engines,
    machine_labels: bool,
    peer_env: Vec<(usize, String, String)>,
}

impl ClusterBuilder {
    /// Peers log at `log_filter` (`SHOAL_LOG`); benchmarks use `info` so
    /// debug logging does not weigh on the figures.
    pub fn log(mut self, log_filter: &str) -> Self {
        log_filter.clone_into(&mut self.log_filter);
        self
    }

    /// More `shoal up` flags for every peer.
    pub fn args(mut self, args: &[&str]) -> Self {
        self.args.extend(args.iter().map(|a| (*a).to_owned()));
        self
    }

    /// Each machine gets its own Docker engine ([`Engines::PerNode`]).
    pub fn engine_per_node(mut self) -> Self {
        self.engines = Engines::PerNode;
        self
    }

    /// Peer `i` gets node label `machine=I`, so a nodeSelector can pin a
    /// replica to one machine.
    pub fn machine_labels(mut self) -> Self {
        self.machine_labels = true;
        self
    }

    /// Peer `i` runs with `key=value` in its environment (test hooks).
    pub fn peer_env(mut self, i: usize, key: &str, value: &str) -> Self {
        self.peer_env.push((i, key.to_owned(), value.to_owned()));
        self
    }

    /// Starts the engines (per-node mode), then the peers on
    /// 127.0.`subnet`.11.. : the first creates the cluster, the others join
    /// through it. Waits until every peer sees all.
    pub fn start(self) -> Cluster {
        let ClusterBuilder {
            subnet,
            n,
            log_filter,
            args,
            engines,
            machine_labels,
            peer_env,
        } = self;
        ensure_test_images();
        let dir = std::env::temp_dir().join(format!("shoal-e2e-{subnet}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut cluster = Cluster {
            subnet,
            dir,
            peers: Vec::new(),
            token: String::new(),
            cluster_id: String::new(),
            chain: None,
            log_filter,
            extra_args: args,
            engines: Vec::new(),
            machine_labels,
            peer_env,
        };
        let mut loads = None;
        if engines == Engines::PerNode {
            let (started, loading) = engines::launch_all(&cluster.dir, subnet, n);
            cluster.engines = started;
            loads = Some(loading);
        }
        // The peers start while the engines load the images: they need
        // them only once a test applies something.
        cluster.start_peers(n);
        if let Some(loads) = loads {
            loads.wait();
        }
        cluster
    }
}
