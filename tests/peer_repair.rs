//! Divergence that never heals, at the peer level: a peer resumed from a
//! state that differs from the cluster's under the same stamp (a template)
//! or the same version (a node record) is found out by anti-entropy, and
//! every peer ends with the same value — no silent divergence.
//!
//! Real peer cores (SWIM, CRDT state, placement, reconcile) on a virtual
//! clock: messages take 1 ms, every started pod reports Running and ready.

mod reconcile_support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use shoal::peer::testing;
use shoal::peer::{Command, Peer, PeerConfig, Persisted};
use shoal_crdt_state::desired::{DesiredDelta, DesiredState};
use shoal_crdt_state::node::{NodeId, NodeInfo};
use shoal_crdt_state::observed::{NodeRecord, ObservedDelta, ObservedState};
use shoal_crdt_state::spec::Resources;

const START: Duration = Duration::from_secs(1_700_000_000);
const LATENCY: Duration = Duration::from_millis(1);
const IMAGE: &str = "shoal-test/hello:1.0";

/// N peer cores and the network between them, on a virtual clock.
struct Cluster {
    inner: testing::Cluster,
}

fn addr(i: usize) -> SocketAddr {
    format!("127.0.0.1:{}", 17_300 + i).parse().unwrap()
}

fn config(i: usize, incarnation: u64) -> PeerConfig {
    let resources = Resources {
        cpu_millis: 4000,
        memory_bytes: 8 << 30,
    };
    let info = NodeInfo {
        name: format!("node-{i}"),
        peer_addr: addr(i).to_string(),
        api_addr: format!("127.0.0.1:{}", 18_300 + i),
        capacity: resources,
        allocatable: resources,
        labels: BTreeMap::new(),
        runtime_healthy: true,
        runtime_error: None,
        version: "test".into(),
        leaving: false,
        started_ms: 0,
        incarnation: 0,
        images: Default::default(),
        listener_problems: Default::default(),
    };
    let mut config = PeerConfig::new(NodeId(i as u64 + 1), addr(i), info);
    config.incarnation = incarnation;
    config
}

impl Cluster {
    /// `n` peers, the first creating the cluster and the others joining it,
    /// run until their views and states have settled.
    fn start(n: usize) -> Cluster {
        let mut cluster = testing::Cluster::new(START, LATENCY);
        for i in 0..n {
            let seeds: Vec<SocketAddr> = (i > 0).then(|| addr(0)).into_iter().collect();
            cluster.add(Peer::new(config(i, 0)), &seeds);
        }
        cluster.run_for(Duration::from_secs(3));
        Cluster { inner: cluster }
    }

    fn now(&self) -> Duration {
        self.inner.now
    }

    fn peer(&self, i: usize) -> &Peer {
        &self.inner.peers[i]
    }

    fn run_for(&mut self, span: Duration) {
        self.inner.run_for(span);
    }

    fn command(&mut self, i: usize, command: Command) {
        self.inner.command(i, command).expect("command accepted");
    }

    /// Peer `i` stops, and a new process resumes from `state` (with the
    /// members it knew), joining through peer 0.
    fn restart_from(&mut self, i: usize, state: shoal_crdt_state::ClusterState) {
        let members = self.peer(i).persisted(self.now()).members;
        let incarnation = self.peer(i).config().incarnation + 1;
        let peer = Peer::resume(config(i, incarnation), Persisted { state, members });
        self.inner.restart(i, peer, &[addr(0)]);
    }

    /// Peer `i` crashes for good: it sends and answers nothing more.
    fn crash(&mut self, i: usize) {
        self.inner.crash(i);
    }

    fn desired(&self, i: usize) -> &DesiredState {
        &self.peer(i).state().desired
    }
}

/// `desired` with the record of `rc` replaced by `edit(record)`, taken as
/// is: never merged with the original (which could win its tie-break).
fn edited_desired(
    desired: &DesiredState,
    rc: &str,
    edit: impl Fn(&mut shoal_crdt_state::RcRecord),
) -> DesiredState {
    let mut rcs: BTreeMap<String, _> = desired
        .records()
        .map(|(name, record)| (name.to_owned(), record.clone()))
        .collect();
    edit(rcs.get_mut(rc).expect("the record exists"));
    let mut out = DesiredState::new();
    out.merge_delta(DesiredDelta {
        rcs,
        ..DesiredDelta::default()
    });
    out
}

/// `observed` with the record of `node` replaced by `edit(record)`, as is.
fn edited_observed(
    observed: &ObservedState,
    node: NodeId,
    edit: impl Fn(&mut NodeRecord),
) -> ObservedState {
    let mut nodes: BTreeMap<NodeId, NodeRecord> =
        observed.nodes().map(|(id, r)| (id, r.clone())).collect();
    edit(nodes.get_mut(&node).expect("the record exists"));
    let mut out = ObservedState::new();
    out.merge_delta(ObservedDelta { nodes });
    out
}

fn image_of(desired: &DesiredState, rc: &str) -> String {
    desired
        .get(rc)
        .expect("live RC")
        .template()
        .primary_image()
        .to_owned()
}

/// Three peers run `web`; peer 2 restarts from a copy whose template has
/// another image under the same stamp. The copy with the larger encoding
/// wins everywhere, whichever it is.
fn resumed_with_an_edited_template(edited_image: &str) -> (Cluster, String) {
    let mut cluster = Cluster::start(3);
    let mut web = reconcile_support::rc("web", 3, IMAGE);
    web.selector = [("app".to_owned(), "web".to_owned())].into();
    web.template.labels = web.selector.clone();
    cluster.command(0, Command::Apply(web));
    cluster.run_for(Duration::from_secs(3));
    let original = cluster.desired(0).clone();
    assert_eq!(cluster.desired(2), &original, "the cluster agreed first");

    let mut state = cluster.peer(2).persisted(cluster.now()).state;
    state.desired = edited_desired(&original, "web", |record| {
        let body = record.body.as_mut().expect("web has a body");
        body.val.template.containers[0].image = edited_image.to_owned();
    });
    let mut both = original.clone();
    both.merge(&state.desired);
    let winner = image_of(&both, "web");

    cluster.restart_from(2, state);
    cluster.run_for(Duration::from_secs(5));
    (cluster, winner)
}

#[test]
fn a_template_edited_under_its_stamp_on_a_resumed_peer_is_repaired_everywhere() {
    // A longer image name encodes larger (it wins the tie-break), a shorter
    // one smaller: the edited copy wins in one run and loses in the other.
    for (edited, edited_wins) in [("shoal-test/hello:6.6.6-edited", true), ("x:1", false)] {
        let (cluster, winner) = resumed_with_an_edited_template(edited);
        assert_eq!(
            winner == edited,
            edited_wins,
            "{edited}: unexpected tie-break"
        );
        for i in 0..3 {
            assert_eq!(
                image_of(cluster.desired(i), "web"),
                winner,
                "{edited}: peer {i} runs another template than the cluster"
            );
            assert_eq!(cluster.desired(i), cluster.desired(0), "{edited}: peer {i}");
        }
        for i in 0..3 {
            let specs = cluster.peer(i).rcs();
            assert_eq!(specs["web"].template.primary_image(), winner, "peer {i}");
        }
    }
}

/// Four peers, the last of which crashed: the others keep its record,
/// and no newer version of it will ever come.
fn four_peers_one_crashed() -> (Cluster, NodeId) {
    let mut cluster = Cluster::start(4);
    let gone = cluster.peer(3).node();
    cluster.crash(3);
    cluster.run_for(Duration::from_secs(2));
    (cluster, gone)
}

#[test]
fn a_crashed_nodes_record_edited_under_its_version_converges_on_every_peer() {
    // A longer name encodes larger and would win the tie-break: but the
    // edited copy is not signed by its node, so the resumed peer drops it
    // and takes the genuine one back, whichever would win.
    for edited_name in ["node-3-edited-copy", "n"] {
        let (mut cluster, gone) = four_peers_one_crashed();
        let held = cluster.peer(0).state().observed.get(gone).cloned();
        let held = held.expect("peers keep a crashed node's record");
        let mut state = cluster.peer(2).persisted(cluster.now()).state;
        state.observed = edited_observed(&state.observed, gone, |record| {
            record.info.name = edited_name.to_owned();
        });
        cluster.restart_from(2, state);
        cluster.run_for(Duration::from_secs(5));
        let expected = held.info.name.as_str();
        for i in 0..3 {
            let record = cluster.peer(i).state().observed.get(gone).cloned();
            let record = record.expect("the record is kept");
            assert_eq!(record.version, held.version, "{edited_name}: peer {i}");
            assert_eq!(record.info.name, expected, "{edited_name}: peer {i}");
        }
    }
}

#[test]
fn a_peers_own_record_edited_under_its_version_is_rewritten_by_that_peer() {
    let mut cluster = Cluster::start(3);
    let owner = cluster.peer(0).node();
    let mut state = cluster.peer(2).persisted(cluster.now()).state;
    // A copy that would win the tie-break against the owner's own record.
    state.observed = edited_observed(&state.observed, owner, |record| {
        record.info.name = "an-impostor-with-a-long-name".to_owned();
    });
    cluster.restart_from(2, state);
    cluster.run_for(Duration::from_secs(5));
    let truth = cluster
        .peer(0)
        .state()
        .observed
        .get(owner)
        .cloned()
        .unwrap();
    assert_eq!(truth.info.name, "node-0", "the owner keeps its own content");
    for i in 1..3 {
        let held = cluster.peer(i).state().observed.get(owner).cloned();
        assert_eq!(held.as_ref(), Some(&truth), "peer {i}");
    }
}
