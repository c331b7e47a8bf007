//! Fuzz targets: every decoder of bytes that come from outside a peer,
//! each behind one `fn(&[u8])` that feeds the bytes to the real code path
//! (the peer core for datagrams and sync messages, the data-dir loader for
//! its files, the API's manifest and patch readers for request bodies).
//!
//! A target returns normally for any input; a panic is a finding. The
//! `shoal-fuzz` crate (`fuzz/`) runs them under AFL++ and checks that no
//! input allocates beyond a bound, and its tests replay [`seeds`] and the
//! crashes found so far on every `cargo test`.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use serde_json::Value;
use shoal_crdt_state::join_secrets::JoinSecrets;
use shoal_crdt_state::node::{NodeId, NodeInfo};
use shoal_crdt_state::spec::Resources;
use shoal_crdt_state::wire;
use shoal_gossip::quic::{ClusterIdentity, JoinToken};

use crate::peer::testing::{Cluster, Recorded};
use crate::peer::{Command, Peer, PeerConfig};
use crate::shell::api::kube;
use crate::shell::images::wire::FetchRequest;
use crate::shell::persist::{self, frame};
use crate::shell::{cluster_identity, join_rotation};

/// A fuzz target: the name `fuzz/` and `scripts/bench-fuzz.sh` know it by,
/// and the function that takes the bytes.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    pub name: &'static str,
    pub run: fn(&[u8]),
}

/// Every target, in the order the benchmark runs them.
pub const TARGETS: &[Target] = &[
    Target {
        name: "swim_datagram",
        run: swim_datagram,
    },
    Target {
        name: "sync_message",
        run: sync_message,
    },
    Target {
        name: "sync_push_stream",
        run: sync_push_stream,
    },
    Target {
        name: "state_file",
        run: state_file,
    },
    Target {
        name: "wal_log",
        run: wal_log,
    },
    Target {
        name: "node_files",
        run: node_files,
    },
    Target {
        name: "manifest",
        run: manifest,
    },
    Target {
        name: "kube_body",
        run: kube_body,
    },
    Target {
        name: "image_request",
        run: image_request,
    },
    Target {
        name: "up_config",
        run: up_config,
    },
    Target {
        name: "cluster_identity_answer",
        run: cluster_identity_answer,
    },
];

pub fn target(name: &str) -> Option<Target> {
    TARGETS.iter().copied().find(|t| t.name == name)
}

const START: Duration = Duration::from_secs(1_700_000_000);

fn addr(i: usize) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 17_800 + i as u16))
}

fn peer_config(i: usize) -> PeerConfig {
    let room = Resources {
        cpu_millis: 4000,
        memory_bytes: 8 << 30,
    };
    let info = NodeInfo {
        peer_addr: addr(i).to_string(),
        ..NodeInfo::healthy(format!("node-{i}"), room)
    };
    PeerConfig::new(NodeId(i as u64 + 1), addr(i), info)
}

/// A started peer that knows peer 1 as its seed, with its outputs drained.
fn fresh_peer() -> Peer {
    let mut peer = Peer::new(peer_config(0));
    peer.start(START, &[addr(1)], &[]);
    while peer.poll_output().is_some() {}
    peer
}

/// Drains a peer after an input, then lets its timers run a while: what
/// the input left behind (a suspicion, a merged record) is acted on too.
fn settle(peer: &mut Peer) {
    let mut now = START;
    for _ in 0..20 {
        while peer.poll_output().is_some() {}
        match peer.poll_timeout() {
            Some(at) if at <= START + Duration::from_secs(30) => {
                now = at.max(now);
                peer.handle_timeout(now);
            }
            _ => break,
        }
    }
    while peer.poll_output().is_some() {}
}

/// One membership datagram (SWIM packet, roster, digest, suspect notice;
/// broadcasts in it carry state deltas) into a peer core.
pub fn swim_datagram(data: &[u8]) {
    let mut peer = fresh_peer();
    peer.handle_datagram(START, addr(1), data);
    settle(&mut peer);
}

/// One state sync message (wire envelope) into a peer core.
pub fn sync_message(data: &[u8]) {
    let mut peer = fresh_peer();
    peer.handle_sync(START, addr(1), data);
    settle(&mut peer);
}

/// A push stream of sync messages (each behind its 4-byte length), read
/// frame by frame by the transport's own reader, each frame into one peer
/// core, until the stream ends or a frame is refused.
pub fn sync_push_stream(data: &[u8]) {
    use futures_util::FutureExt;
    let mut peer = fresh_peer();
    let mut stream = data;
    // A slice never makes a read wait: each read completes at once.
    while let Some(Ok(Some(frame))) =
        shoal_gossip::quic::read_push_frame(&mut stream, wire::MAX_MESSAGE_BYTES).now_or_never()
    {
        peer.handle_sync(START, addr(1), &frame);
        while peer.poll_output().is_some() {}
    }
    settle(&mut peer);
}

/// `state.bin`. Bytes that do not start with its magic are framed first
/// (with a correct checksum), so the fuzzer reaches the payload decoder.
pub fn state_file(data: &[u8]) {
    let framed;
    let bytes = if data.starts_with(b"SHOALST") {
        data
    } else {
        framed = frame::state_file(data);
        &framed
    };
    let _ = persist::decode_files(Some((Path::new("state.bin"), bytes)), None);
}

/// `wal.log`. Bytes that do not start with its magic are one record
/// (framed with a correct checksum), so the fuzzer reaches the deltas.
pub fn wal_log(data: &[u8]) {
    let framed;
    let bytes = if data.starts_with(b"SHOALWL") {
        data
    } else {
        let mut log = frame::header(frame::FileKind::Log);
        log.extend_from_slice(&frame::log_record(data));
        framed = log;
        &framed
    };
    let _ = persist::decode_files(None, Some((Path::new("wal.log"), bytes)));
}

/// `node.json` and `node.key`. A node.json that decodes goes on to what a
/// start reads from it: the cluster identity (its `cluster` field) and the
/// join tokens of its last rotation.
pub fn node_files(data: &[u8]) {
    if let Ok(identity) = persist::decode_identity(Path::new("node.json"), data) {
        let _ = cluster_identity::of_recorded(&identity);
        let _ = join_rotation::admitting_token(&identity, None);
        if let Some(secrets) = &identity.join_secrets {
            let _ = join_rotation::trusted(secrets, UNIX_EPOCH + START);
        }
    }
    let _ = persist::key_seed(data);
}

/// A seed's answer to the cluster identity ask (`SHOALCID`), as a fresh
/// joiner decodes it; and the bare text, as node.json's `cluster` field is
/// parsed.
pub fn cluster_identity_answer(data: &[u8]) {
    let _ = cluster_identity::decode_answer(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = text.parse::<ClusterIdentity>();
    }
}

/// Manifest text as `shoal apply` and `POST /rcs` read it.
pub fn manifest(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = shoal_crdt_state::manifest::parse_manifests(text);
    }
}

/// The patch and object forms of the Kubernetes API's writes. The first
/// byte picks the form and the kind, the rest is the body; patches apply
/// to a valid RC or service.
pub fn kube_body(data: &[u8]) {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    const FORMS: [Option<&str>; 5] = [
        None,
        Some("application/strategic-merge-patch+json"),
        Some("application/merge-patch+json"),
        Some("application/json-patch+json"),
        Some("application/apply-patch+yaml"),
    ];
    let form = FORMS[usize::from(pick) % FORMS.len()];
    let rc = pick & 0x80 == 0;
    let current = if rc { rc_object() } else { service_object() };
    let _ = kube::body_to_manifest(rc, "hello", form, current, body);
}

/// A fetch request as an image holder reads it (the magic is added when
/// missing, so the fuzzer reaches the envelope).
pub fn image_request(data: &[u8]) {
    let _ = FetchRequest::decode(data);
    let mut prefixed = b"SHOALIMG".to_vec();
    prefixed.extend_from_slice(data);
    let _ = FetchRequest::decode(&prefixed);
}

/// `shoal up --config`, as YAML and as TOML.
pub fn up_config(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = crate::cli::up_config::parse(Path::new("shoal.yaml"), text);
        let _ = crate::cli::up_config::parse(Path::new("shoal.toml"), text);
    }
}

const HELLO_RC: &str = include_str!("../examples/hello-local.yaml");
const HELLO_SERVICE: &str = include_str!("../examples/hello-service.yaml");
const HELLO_V1BETA1: &str = include_str!("../examples/hello-v1beta1.json");

fn rc_object() -> Value {
    serde_saphyr::from_str(HELLO_RC).unwrap_or(Value::Null)
}

fn service_object() -> Value {
    serde_saphyr::from_str(HELLO_SERVICE).unwrap_or(Value::Null)
}

/// Three peer cores that formed a cluster and ran an RC and a service for
/// a while, with every datagram, sync message and log record recorded.
fn recorded_cluster() -> Cluster {
    let mut cluster = Cluster::new(START, Duration::from_millis(1));
    cluster.recorded = Some(Vec::new());
    for i in 0..3 {
        let seeds: Vec<SocketAddr> = (i > 0).then(|| addr(0)).into_iter().collect();
        cluster.add(Peer::new(peer_config(i)), &seeds);
    }
    cluster.run_for(Duration::from_secs(3));
    let parsed =
        shoal_crdt_state::manifest::parse_manifests(&format!("{HELLO_RC}\n---\n{HELLO_SERVICE}"))
            .expect("the examples parse");
    for spec in parsed.specs {
        let _ = cluster.command(0, Command::Apply(spec));
    }
    for spec in parsed.services {
        let _ = cluster.command(1, Command::ApplyService(spec));
    }
    cluster.run_for(Duration::from_secs(10));
    cluster
}

/// Valid inputs of every target, the fuzzer's starting corpus: real
/// encodings made by this build, so they follow every wire change.
pub fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let mut out: Vec<(&'static str, Vec<u8>)> = Vec::new();
    let mut cluster = recorded_cluster();
    let traffic = cluster.recorded.take().unwrap_or_default();
    // Distinct shapes only: the first few of each kind and the largest.
    let mut datagrams = 0;
    let mut syncs = 0;
    // Push streams: consecutive sync messages, framed as the sender does.
    let mut stream = Vec::new();
    for bytes in traffic.iter().filter_map(|item| match item {
        Recorded::Sync(bytes) => Some(bytes),
        _ => None,
    }) {
        stream.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        stream.extend_from_slice(bytes);
        if stream.len() > 16 * 1024 {
            out.push(("sync_push_stream", std::mem::take(&mut stream)));
        }
    }
    if !stream.is_empty() {
        out.push(("sync_push_stream", stream));
    }
    for item in &traffic {
        match item {
            Recorded::Datagram(bytes) if datagrams < 24 => {
                datagrams += 1;
                out.push(("swim_datagram", bytes.clone()));
            }
            Recorded::Sync(bytes) if syncs < 24 => {
                syncs += 1;
                out.push(("sync_message", bytes.clone()));
            }
            Recorded::Persist(bytes) => out.push(("wal_log", bytes.clone())),
            _ => {}
        }
    }
    for (kind, name) in [(0u8, "swim_datagram"), (1, "sync_message")] {
        let largest = traffic
            .iter()
            .filter_map(|item| match (kind, item) {
                (0, Recorded::Datagram(b)) | (1, Recorded::Sync(b)) => Some(b),
                _ => None,
            })
            .max_by_key(|b| b.len());
        if let Some(bytes) = largest {
            out.push((name, bytes.clone()));
        }
    }
    let persisted = cluster.peers[0].persisted(cluster.now);
    if let Ok(payload) = wire::encode(&persisted) {
        out.push(("state_file", frame::state_file(&payload)));
        out.push(("state_file", payload));
    }
    let identity = persist::NodeIdentity {
        node_id: 7,
        incarnation: 3,
        name: "node-7".into(),
        token: "shoal1.892668b4060fa7f9.9f0cdf19".into(),
        join_secrets: None,
        cluster: None,
    };
    // A member that joined with a rotated token: node.json records the
    // cluster's identity (not its token's) and the rotation's tokens.
    let creation = JoinToken::from_seed([3; 32]);
    let cluster = ClusterIdentity::of(&creation);
    let rotated = JoinToken::from_seed([4; 32]).to_string();
    let rotated_member = persist::NodeIdentity {
        node_id: 8,
        incarnation: 1,
        name: "node-8".into(),
        token: rotated.clone(),
        cluster: Some(cluster.to_string()),
        join_secrets: Some(JoinSecrets::rotated(
            None,
            &creation.to_string(),
            rotated,
            START.as_millis() as u64,
            60_000,
        )),
    };
    // One folder per call: tests make seeds on several threads at once.
    static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("shoal-fuzz-seed-{}-{call}", std::process::id()));
    if let Ok(data_dir) = persist::DataDir::open(&dir) {
        for identity in [&identity, &rotated_member] {
            if data_dir.save_identity(identity).is_ok()
                && let Ok(bytes) = std::fs::read(dir.join("node.json"))
            {
                out.push(("node_files", bytes));
            }
        }
        if data_dir.node_key().is_ok()
            && let Ok(bytes) = std::fs::read(dir.join("node.key"))
        {
            out.push(("node_files", bytes));
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    let answer = cluster_identity::answer(&cluster);
    out.push(("cluster_identity_answer", answer.to_vec()));
    out.push(("cluster_identity_answer", cluster.to_string().into_bytes()));
    for text in [HELLO_RC, HELLO_SERVICE, HELLO_V1BETA1] {
        out.push(("manifest", text.as_bytes().to_vec()));
    }
    let rc_json = serde_json::to_vec(&rc_object()).unwrap_or_default();
    let service_json = serde_json::to_vec(&service_object()).unwrap_or_default();
    let mut body = |pick: u8, bytes: &[u8]| {
        let mut input = vec![pick];
        input.extend_from_slice(bytes);
        out.push(("kube_body", input));
    };
    body(0, &rc_json);
    body(0x80, &service_json);
    body(1, br#"{"spec":{"replicas":3}}"#);
    body(
        2,
        br#"{"spec":{"template":{"spec":{"containers":[{"name":"hello","image":"x:2"}]}}}}"#,
    );
    body(
        3,
        br#"[{"op":"replace","path":"/spec/replicas","value":4}]"#,
    );
    body(4, HELLO_RC.as_bytes());
    body(
        0x81,
        br#"{"spec":{"ports":[{"port":8080,"targetPort":80,"$patch":"delete"}]}}"#,
    );
    let request = FetchRequest {
        reference: "shoal-test/hello:1.0".into(),
        id: "sha256:0123456789abcdef".into(),
    };
    out.push(("image_request", request.encode().to_vec()));
    out.push((
        "up_config",
        b"data-dir: /var/lib/shoal\njoin: [192.168.1.20:7946]\nlabel: {zone: rack-2}\nstart-alone: true\n"
            .to_vec(),
    ));
    out.push((
        "up_config",
        b"data-dir = \"/var/lib/shoal\"\njoin = [\"192.168.1.20:7946\"]\nstart-alone = true\n[label]\nzone = \"rack-2\"\n"
            .to_vec(),
    ));
    out
}
