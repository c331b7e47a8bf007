//! Every metric a peer exports: name, kind and help, in one place.
//!
//! Names follow Prometheus conventions: `shoal_` prefix, `_total` on
//! counters, base units in the name (`_seconds`, `_bytes`). Labels take a
//! bounded set of values (route templates, not paths; RC names, which the
//! cluster bounds).

use metrics::{describe_counter, describe_gauge, describe_histogram};

// Membership (SWIM).
pub const MEMBERS: &str = "shoal_members";
pub const SWIM_PROBES: &str = "shoal_swim_probes_total";
pub const SWIM_SUSPICIONS: &str = "shoal_swim_suspicions_total";
pub const SWIM_REFUTATIONS: &str = "shoal_swim_refutations_total";
pub const MEMBER_DOWNS: &str = "shoal_member_downs_total";

// State sync.
pub const SYNC_MESSAGES: &str = "shoal_sync_messages_total";
pub const SYNC_BYTES: &str = "shoal_sync_bytes_total";
pub const SYNC_ROUNDS: &str = "shoal_sync_anti_entropy_rounds_total";
pub const SYNC_HOLDER_ASKS: &str = "shoal_sync_holder_asks_total";
pub const SYNC_MERGES: &str = "shoal_sync_merges_total";
pub const SYNC_DROPPED: &str = "shoal_sync_messages_dropped_total";
pub const MESSAGES_REJECTED: &str = "shoal_messages_rejected_total";
pub const RECORDS_REJECTED: &str = "shoal_records_rejected_total";
pub const STATE_RECORDS: &str = "shoal_state_records";

// Reconcile and placement.
pub const RC_DESIRED: &str = "shoal_rc_replicas_desired";
pub const RC_RUNNING: &str = "shoal_rc_replicas_running";
pub const RC_READY: &str = "shoal_rc_replicas_ready";
pub const RC_UNPLACED: &str = "shoal_rc_replicas_unplaced";
pub const RC_RESTARTS: &str = "shoal_rc_pod_restarts";
pub const POD_ACTIONS: &str = "shoal_pod_actions_total";
pub const POD_START_SECONDS: &str = "shoal_pod_start_seconds";
pub const POD_START_FAILURES: &str = "shoal_pod_start_failures_total";
pub const PLACEMENTS: &str = "shoal_placements_total";
pub const PLACEMENT_SECONDS: &str = "shoal_placement_seconds";

// HTTP API.
pub const API_REQUESTS: &str = "shoal_api_requests_total";
pub const API_SECONDS: &str = "shoal_api_request_duration_seconds";

// Services load balancer.
pub const LB_REFUSED: &str = "shoal_lb_connections_refused_total";

// Event watches (one fan-in per peer, `shell/events/hub.rs`).
pub const EVENT_FANINS: &str = "shoal_event_fanins_started_total";
pub const EVENT_GATHERS: &str = "shoal_event_fanin_gathers_total";
pub const EVENT_WATCHERS: &str = "shoal_event_watchers";

// Container runtime and images.
pub const ENGINE_REACHABLE: &str = "shoal_engine_reachable";
/// Counted by name in `runtime/src/docker/pod_ops.rs`.
pub const IMAGE_PULLS: &str = "shoal_image_pulls_total";
pub const IMAGE_TRANSFERS: &str = "shoal_image_transfers_total";
pub const IMAGE_TRANSFER_BYTES: &str = "shoal_image_transfer_bytes_total";

// QUIC transport.
pub const CONNECTIONS: &str = "shoal_transport_connections";
pub const CONNECTIONS_OPENED: &str = "shoal_transport_connections_opened_total";
pub const HANDSHAKE_FAILURES: &str = "shoal_transport_handshake_failures_total";
pub const IDENTITY_REFUSALS: &str = "shoal_transport_identity_refusals_total";
pub const DATAGRAMS: &str = "shoal_transport_datagrams_total";
pub const DATAGRAM_BYTES: &str = "shoal_transport_datagram_bytes_total";
pub const DATAGRAMS_DROPPED: &str = "shoal_transport_datagrams_dropped_total";
pub const STREAMS_DROPPED: &str = "shoal_transport_streams_dropped_total";
pub const STREAM_BYTES: &str = "shoal_transport_stream_bytes_total";
pub const REQUESTS: &str = "shoal_transport_requests_total";

// Process.
pub const RSS: &str = "shoal_process_resident_memory_bytes";
/// Written as text by `process.rs` (fractional seconds), not the registry.
pub const CPU: &str = "shoal_process_cpu_seconds_total";
pub const OPEN_FDS: &str = "shoal_process_open_fds";
pub const THREADS: &str = "shoal_process_threads";
pub const START_TIME: &str = "shoal_process_start_time_seconds";
pub const BUILD_INFO: &str = "shoal_build_info";

/// Gives the recorder every metric's help text (the `# HELP` lines).
pub fn describe() {
    describe_gauge!(
        MEMBERS,
        "Members in this peer's SWIM view by state (alive, suspect, down), itself included"
    );
    describe_counter!(
        SWIM_PROBES,
        "SWIM probes of a random member this peer started"
    );
    describe_counter!(
        SWIM_SUSPICIONS,
        "Members this peer's failed probes made suspect"
    );
    describe_counter!(
        SWIM_REFUTATIONS,
        "Suspicions of this peer it refuted on a prober's direct notice"
    );
    describe_counter!(
        MEMBER_DOWNS,
        "Members this peer learned were declared down (or left)"
    );

    describe_counter!(
        SYNC_MESSAGES,
        "State sync messages by direction (sent, received) and kind (hello, pull, push)"
    );
    describe_counter!(SYNC_BYTES, "Encoded bytes of those sync messages");
    describe_counter!(SYNC_ROUNDS, "Anti-entropy rounds this peer started");
    describe_counter!(
        SYNC_HOLDER_ASKS,
        "Members asked for their digest while a pod of this node drained"
    );
    describe_counter!(
        SYNC_MERGES,
        "Records merged from peers that changed this peer's state"
    );
    describe_counter!(
        SYNC_DROPPED,
        "Sync messages not delivered, by reason (in_flight_limit, undelivered)"
    );
    describe_counter!(
        MESSAGES_REJECTED,
        "Messages from peers rejected as malformed, by kind (datagram, sync, broadcast)"
    );
    describe_counter!(
        RECORDS_REJECTED,
        "Records from peers not merged, by reason (forged: not signed by the node's bound \
         key; unbound: the node's key binding not here yet; binding: another key claiming \
         an established node id; impersonation: a SWIM or sync message naming a sender other \
         than the node its connection authenticated)"
    );
    describe_gauge!(
        STATE_RECORDS,
        "Records in this peer's replica of the cluster state, by kind"
    );

    describe_gauge!(RC_DESIRED, "Replicas an RC declares");
    describe_gauge!(
        RC_RUNNING,
        "Replicas of an RC running on nodes alive in this peer's view"
    );
    describe_gauge!(RC_READY, "Of those, the ones passing readiness");
    describe_gauge!(RC_UNPLACED, "Replicas of an RC that fit on no node");
    describe_gauge!(
        RC_RESTARTS,
        "Restarts of an RC's current pods, summed (drops when pods go away)"
    );
    describe_counter!(
        POD_ACTIONS,
        "Pod actions this peer's reconciler issued to its engine, by action (start, stop)"
    );
    describe_histogram!(
        POD_START_SECONDS,
        metrics::Unit::Seconds,
        "From this peer's start of a pod to the engine reporting it running (image fetch included)"
    );
    describe_counter!(
        POD_START_FAILURES,
        "Pod starts that failed, by reason (image, start)"
    );
    describe_counter!(PLACEMENTS, "Placement computations of this peer");
    describe_counter!(
        EVENT_FANINS,
        "Event fan-in tasks started (one serves every event watcher of this peer)"
    );
    describe_counter!(
        EVENT_GATHERS,
        "Cluster-wide event gathers made by the event fan-in"
    );
    describe_gauge!(
        EVENT_WATCHERS,
        "Event watchers this peer served at the fan-in's last round"
    );
    describe_histogram!(
        PLACEMENT_SECONDS,
        metrics::Unit::Seconds,
        "Time of a core step that recomputed placement (assignment and the reconcile plan)"
    );

    describe_counter!(
        API_REQUESTS,
        "HTTP API requests by route template, method and status"
    );
    describe_histogram!(
        API_SECONDS,
        metrics::Unit::Seconds,
        "HTTP API latency to the response head, by route template and method"
    );

    describe_counter!(
        LB_REFUSED,
        "Connections to service and node ports this peer's load balancer reset at once, by \
         reason (connections: the client IP holds --lb-max-connections-per-client; rate: over \
         --lb-connection-rate and --lb-connection-burst)"
    );

    describe_gauge!(
        ENGINE_REACHABLE,
        "1 when this peer's container engine answers, else 0"
    );
    describe_counter!(
        IMAGE_PULLS,
        "Image pulls from a registry, by outcome (ok, failed; fallback_local, fallback_peer: imagePullPolicy Always ran another copy after a failed pull)"
    );
    describe_counter!(
        IMAGE_TRANSFERS,
        "Image transfers between peers, by direction (received, sent) and outcome (ok, failed, busy)"
    );
    describe_counter!(
        IMAGE_TRANSFER_BYTES,
        "Image archive bytes moved between peers, by direction"
    );

    describe_gauge!(CONNECTIONS, "Live QUIC connections to peers");
    describe_counter!(
        CONNECTIONS_OPENED,
        "QUIC connections established, by side (dialled, accepted)"
    );
    describe_counter!(
        HANDSHAKE_FAILURES,
        "Failed QUIC handshakes either way (wrong join token, timeout, refused)"
    );
    describe_counter!(
        IDENTITY_REFUSALS,
        "QUIC handshakes refused because the peer's certificate names a node id bound to another key"
    );
    describe_counter!(DATAGRAMS, "QUIC datagrams (SWIM) by direction");
    describe_counter!(DATAGRAM_BYTES, "Payload bytes of those datagrams");
    describe_counter!(
        DATAGRAMS_DROPPED,
        "Datagrams dropped, by reason (send: queue full, connect failed or too large; inbound_full)"
    );
    describe_counter!(
        STREAMS_DROPPED,
        "Incoming requests and pushes dropped (channel full, too large, unreadable)"
    );
    describe_counter!(STREAM_BYTES, "QUIC stream payload bytes by direction");
    describe_counter!(
        REQUESTS,
        "Requests this peer made to others, by outcome (completed, failed)"
    );

    describe_gauge!(RSS, "Resident memory of this process");
    describe_gauge!(OPEN_FDS, "Open file descriptors of this process");
    describe_gauge!(THREADS, "Threads of this process");
    describe_gauge!(
        START_TIME,
        "Start of this process, seconds since the UNIX epoch"
    );
    describe_gauge!(
        BUILD_INFO,
        "1, labelled with this peer's version and node name"
    );
}
