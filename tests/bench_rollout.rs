//! Rolling-update benchmark (issue #12's target): 10 replicas of
//! shoal-test/hello moved from 1.0 to 1.1 one at a time, measured in one
//! run for
//!
//! 1. Docker Swarm: `docker service update --image … --update-parallelism 1`
//!    (stop-first, delay 0) on a dedicated engine that
//!    `scripts/bench-rollout.sh` starts, a health check every second;
//! 2. Shoal with surge and readiness: maxSurge 1 / maxUnavailable 0, an
//!    httpGet readiness probe every second, behind a NodePort Service;
//! 3. Shoal in place: maxSurge 0 / maxUnavailable 1, the same probe.
//!
//! Shoal runs 3 peers on 127.0.108.11..13, each machine with its own Docker
//! engine. A rollout is timed from the `rolling-update` (`service update`)
//! command to the moment `GET /rcs/NAME/rollout` (what `rollout status`
//! reads) says complete, or, for Swarm, to all 10 containers healthy on the
//! new image and to the CLI's return. Meanwhile a client sends 100 GETs a
//! second through peer 0's node port (Swarm: the published port, if its
//! routing mesh answers) and the ready count is sampled every 100 ms.
//! Figures are printed, never asserted.
//!
//! ```text
//! scripts/bench-rollout.sh     # with Swarm: starts and removes its engine
//! cargo test -p shoal --test bench_rollout -- --ignored --nocapture   # Shoal rows only
//! ```
//!
//! The Markdown section is printed and, when `SHOAL_BENCH_OUT` names a
//! file, written there.

mod bench_support;
mod cluster_support;
mod rollout_bench_support;

use std::thread::sleep;
use std::time::{Duration, Instant};

use bench_support::{loadavg, machine, met};
use cluster_support::{Cluster, hello_rc_probed, http, ok, wait_until};
use rollout_bench_support::dns_client::{self, DnsClient};
use rollout_bench_support::swarm::{self, Endpoint, Swarm};
use rollout_bench_support::{LoadClient, Range, Tally};
use serde_json::Value;

/// 127.0.108.0/24 (and engine bridges 10.108.I.0/24): this benchmark's own.
const SUBNET: u8 = 108;
const PEERS: usize = 3;
const REPLICAS: u32 = 10;
const OLD_IMAGE: &str = "shoal-test/hello:1.0";
const NEW_IMAGE: &str = "shoal-test/hello:1.1";
const OLD_PAGE: &str = "hello from 1.0";
const NEW_PAGE: &str = "hello from 1.1";
/// The client's rate, and its bound (5 minutes' worth).
const REQUESTS_PER_SECOND: u32 = 100;
const MAX_REQUESTS: u64 = 30_000;
/// Client time before the update starts and after it is done.
const QUIET: Duration = Duration::from_secs(2);
const SAMPLE_EVERY: Duration = Duration::from_millis(100);
/// A rollout not done by then is reported as not done.
const ROLLOUT_TIMEOUT: Duration = Duration::from_secs(240);
const SETTLE_TIMEOUT: Duration = Duration::from_secs(180);
const API_TIMEOUT: Duration = Duration::from_secs(2);
/// Swarm's published port (inside its engine's own network namespace).
const SWARM_PORT: u16 = 8080;
/// Issue #12: Shoal with surge at most half of Swarm's time.
const TARGET_RATIO: f64 = 0.5;

/// One rollout's figures.
struct Row {
    what: String,
    /// From the update command to done; `None` if not done in time.
    done: Option<Duration>,
    /// Swarm only: when `docker service update` returned, and Swarm's own
    /// UpdateStatus start-to-completion.
    cli_returned: Option<Duration>,
    swarm_status: Option<(String, Option<f64>)>,
    /// `None` when no client could run (why in `client_note`).
    tally: Option<Tally>,
    client_note: String,
    /// Ready replicas (all templates) as sampled.
    ready: Range,
    /// Shoal: ready endpoints of the Service at the client's peer.
    endpoints: Range,
    /// Pods (Swarm: running containers) of the RC/service.
    pods: Range,
}

#[test]
#[ignore = "benchmark: scripts/bench-rollout.sh"]
fn rolling_update_figures() {
    let load_before = loadavg();
    let swarm_rows = match Swarm::from_env() {
        Ok(Some(mut swarm)) => Ok(vec![
            swarm_rollout(
                &mut swarm,
                "hello",
                &Endpoint::RoutingMesh { port: SWARM_PORT },
                "Docker Swarm, routing mesh (`--publish`)",
            ),
            swarm_rollout(
                &mut swarm,
                "hello-dnsrr",
                &Endpoint::DnsRoundRobin {
                    network: "rolloutbench".to_owned(),
                },
                "Docker Swarm, DNS round robin (`--endpoint-mode dnsrr`)",
            ),
        ]),
        Ok(None) => Err(
            "the test ran without its engine (`scripts/bench-rollout.sh` starts one)".to_owned(),
        ),
        Err(reason) => Err(reason),
    };
    let load_between = loadavg();
    let cluster = Cluster::builder(SUBNET, PEERS)
        .engine_per_node()
        .log("info")
        // The samplers ask 10 times a second, above a client's default rate.
        .args(&["--api-rate-limit", "0"])
        .start();
    let surge = shoal_rollout(&cluster, "surge", 1, 0, 31081);
    let in_place = shoal_rollout(&cluster, "inplace", 0, 1, 31082);
    drop(cluster);
    let markdown = render(
        &[load_before, load_between, loadavg()],
        &surge,
        &in_place,
        &swarm_rows,
    );
    println!("{markdown}");
    if let Ok(path) = std::env::var("SHOAL_BENCH_OUT") {
        std::fs::write(&path, &markdown).expect("write SHOAL_BENCH_OUT");
    }
}

// ------------------------------------------------------------------ Shoal

fn manifest(name: &str, surge: u32, unavailable: u32, node_port: u16) -> String {
    let replicas = format!("spec:\n  replicas: {REPLICAS}\n");
    let rc = hello_rc_probed(name, REPLICAS, OLD_IMAGE).replace(
        &replicas,
        &format!(
            "{replicas}  strategy:\n    rollingUpdate:\n      maxSurge: {surge}\n      maxUnavailable: {unavailable}\n"
        ),
    );
    format!(
        "{rc}---
apiVersion: v1
kind: Service
metadata:
  name: {name}
spec:
  type: NodePort
  selector:
    app: {name}
  ports:
    - port: 8080
      targetPort: 80
      nodePort: {node_port}
"
    )
}

/// `GET PATH` at peer `i`'s API: the JSON of a 200 answer.
fn api_json(cluster: &Cluster, i: usize, path: &str) -> Option<Value> {
    let (status, body) = http(&cluster.peers[i].api_addr(), "GET", path, None, API_TIMEOUT)?;
    (status == 200).then(|| serde_json::from_str(&body).ok())?
}

/// `GET /rcs/NAME/rollout` at peer `i`, what `shoal rollout status` reads.
fn rollout_status(cluster: &Cluster, i: usize, name: &str) -> Option<Value> {
    api_json(cluster, i, &format!("/api/v1/rcs/{name}/rollout"))
}

fn ready_endpoints(cluster: &Cluster, i: usize, name: &str) -> Option<u64> {
    api_json(cluster, i, &format!("/api/v1/services/{name}"))?["endpoints_ready"].as_u64()
}

/// Applies RC + Service `name` at 1.0, waits until all 10 serve through
/// peer 0's node port, then rolls to 1.1 from peer 1 under the client.
fn shoal_rollout(
    cluster: &Cluster,
    name: &str,
    surge: u32,
    unavailable: u32,
    node_port: u16,
) -> Row {
    let path = cluster.manifest(
        &format!("{name}.yaml"),
        &manifest(name, surge, unavailable, node_port),
    );
    ok(&cluster.cli(0, &["apply", "-f", path.to_str().unwrap()]));
    let addr = format!("{}:{node_port}", cluster.peers[0].ip);
    let settled = wait_until(SETTLE_TIMEOUT, || {
        rollout_status(cluster, 1, name).is_some_and(|s| s["complete"] == true)
            && ready_endpoints(cluster, 0, name) == Some(u64::from(REPLICAS))
            && http(&addr, "GET", "/", None, API_TIMEOUT).is_some_and(|(s, _)| s == 200)
    });
    assert!(
        settled,
        "{name}: 10 replicas of 1.0 did not serve: {:?}\n{}",
        rollout_status(cluster, 1, name),
        cluster.every_log_tail()
    );
    let old_hash = rollout_status(cluster, 1, name).unwrap()["template_hash"].clone();

    let client = LoadClient::start(addr, REQUESTS_PER_SECOND, MAX_REQUESTS);
    sleep(QUIET);
    let started = Instant::now();
    ok(&cluster.cli(1, &["rolling-update", name, "--image", NEW_IMAGE]));
    let (mut ready, mut endpoints, mut pods) =
        (Range::default(), Range::default(), Range::default());
    let mut done = None;
    while started.elapsed() < ROLLOUT_TIMEOUT {
        if let Some(status) = rollout_status(cluster, 1, name) {
            ready.add(status["ready"].as_u64().unwrap_or(0));
            pods.add(status["total_pods"].as_u64().unwrap_or(0));
            if status["template_hash"] != old_hash && status["complete"] == true {
                done = Some(started.elapsed());
                break;
            }
        }
        if let Some(n) = ready_endpoints(cluster, 0, name) {
            endpoints.add(n);
        }
        sleep(SAMPLE_EVERY);
    }
    if done.is_some() {
        // The CLI agrees: `rollout status` exits 0 once the rollout is complete.
        let said = ok(&cluster.cli(1, &["rollout", "status", name]));
        assert!(said.contains("successfully rolled out"), "{said}");
    }
    sleep(QUIET);
    let tally = client.stop(started);
    ok(&cluster.cli(0, &["delete", "rc", name]));
    ok(&cluster.cli(0, &["delete", "svc", name]));
    // The next rollout starts on engines without these pods.
    wait_until(Duration::from_secs(60), || {
        cluster.ground_truth().pods(name).is_empty()
    });
    Row {
        what: format!(
            "Shoal, {}: maxSurge {surge} / maxUnavailable {unavailable}",
            if surge > 0 { "surge" } else { "in place" }
        ),
        done,
        cli_returned: None,
        swarm_status: None,
        tally: Some(tally),
        client_note: String::new(),
        ready,
        endpoints,
        pods,
    }
}

// ------------------------------------------------------------------ Swarm

/// Whether a GET at `addr` answers within 10 s.
fn answers(addr: &str) -> bool {
    wait_until(Duration::from_secs(10), || {
        http(addr, "GET", "/", None, API_TIMEOUT).is_some_and(|(s, _)| s == 200)
    })
}

/// The client of a Swarm rollout, or why there is none.
enum SwarmClient {
    /// From this process to the published port.
    Host(LoadClient),
    /// In a container on the service's network.
    Dns(DnsClient),
    Missing(String),
}

fn start_swarm_client(swarm: &mut Swarm, name: &str, endpoint: &Endpoint) -> SwarmClient {
    match endpoint {
        Endpoint::RoutingMesh { port } => {
            let addr = format!("{}:{port}", swarm.addr);
            if answers(&addr) {
                SwarmClient::Host(LoadClient::start(addr, REQUESTS_PER_SECOND, MAX_REQUESTS))
            } else if !swarm::kernel_has_ipvs() {
                SwarmClient::Missing(format!(
                    "the published port {addr} answers nothing; this kernel has no IPVS \
                     (/proc/net/ip_vs is missing), which the routing mesh is built on"
                ))
            } else {
                SwarmClient::Missing(format!("the published port {addr} answers nothing"))
            }
        }
        Endpoint::DnsRoundRobin { network } => {
            let started = DnsClient::start(
                swarm,
                network,
                name,
                OLD_IMAGE,
                REQUESTS_PER_SECOND,
                MAX_REQUESTS,
            );
            match started {
                Ok(client) if wait_until(Duration::from_secs(10), || client.answered(swarm)) => {
                    SwarmClient::Dns(client)
                }
                Ok(_) => SwarmClient::Missing(format!(
                    "the client container on {network} got no answer from http://{name}/"
                )),
                Err(e) => SwarmClient::Missing(e),
            }
        }
    }
}

/// Service `name` of 10 healthy tasks of 1.0 reached through `endpoint`,
/// then `docker service update` to 1.1 under the client; the service is
/// removed afterwards.
fn swarm_rollout(swarm: &mut Swarm, name: &str, endpoint: &Endpoint, what: &str) -> Row {
    swarm
        .create_service(name, REPLICAS, OLD_IMAGE, endpoint)
        .expect("docker service create");
    let settled = wait_until(SETTLE_TIMEOUT, || {
        swarm
            .containers(name)
            .is_some_and(|c| c.len() == REPLICAS as usize && c.iter().all(|(_, healthy)| *healthy))
    });
    assert!(
        settled,
        "Swarm: 10 healthy tasks of 1.0 not reached: {:?}",
        swarm.containers(name)
    );
    let client = start_swarm_client(swarm, name, endpoint);
    if !matches!(client, SwarmClient::Missing(_)) {
        sleep(QUIET);
    }
    let started = Instant::now();
    let started_uptime = dns_client::uptime();
    let mut update = swarm.spawn_update(name, NEW_IMAGE);
    let (mut ready, mut pods) = (Range::default(), Range::default());
    let (mut done, mut cli_returned) = (None, None);
    while started.elapsed() < ROLLOUT_TIMEOUT {
        if let Some(containers) = swarm.containers(name) {
            let healthy = containers.iter().filter(|(_, h)| *h).count();
            let new_healthy = containers
                .iter()
                .filter(|(image, h)| *h && is_image(image, NEW_IMAGE))
                .count();
            ready.add(healthy as u64);
            pods.add(containers.len() as u64);
            if done.is_none()
                && new_healthy == REPLICAS as usize
                && containers.len() == REPLICAS as usize
            {
                done = Some(started.elapsed());
            }
        }
        if cli_returned.is_none()
            && update
                .try_wait()
                .expect("wait for docker service update")
                .is_some()
        {
            cli_returned = Some(started.elapsed());
        }
        if done.is_some() && cli_returned.is_some() {
            break;
        }
        sleep(SAMPLE_EVERY);
    }
    let _ = update.kill();
    let out = update.wait_with_output().expect("docker service update");
    assert!(
        out.status.success() || cli_returned.is_none(),
        "docker service update failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (tally, client_note) = match client {
        SwarmClient::Host(c) => {
            sleep(QUIET);
            (Some(c.stop(started)), String::new())
        }
        SwarmClient::Dns(c) => {
            sleep(QUIET);
            match c.stop(swarm, started_uptime) {
                Ok(tally) => (Some(tally), String::new()),
                Err(e) => (None, e),
            }
        }
        SwarmClient::Missing(why) => (None, why),
    };
    let swarm_status = swarm.update_status(name);
    swarm.remove_service(name);
    Row {
        what: what.to_owned(),
        done,
        cli_returned,
        swarm_status,
        tally,
        client_note,
        ready,
        endpoints: Range::default(),
        pods,
    }
}

/// Whether a container's image field names `image` (with or without a
/// digest after it).
fn is_image(field: &str, image: &str) -> bool {
    field == image
        || field
            .strip_prefix(image)
            .is_some_and(|rest| rest.starts_with('@'))
}

// ------------------------------------------------------------------ report

fn secs(d: Option<Duration>) -> String {
    d.map_or_else(
        || "not done".to_owned(),
        |d| format!("{:.1} s", d.as_secs_f64()),
    )
}

fn range(r: &Range) -> String {
    match (r.min, r.max) {
        (Some(min), Some(max)) => format!("{min} – {max}"),
        _ => "–".to_owned(),
    }
}

fn row_line(row: &Row) -> String {
    let (requests, failed, pages) = match &row.tally {
        Some(t) => (
            format!(
                "{} ({:.0}/s)",
                t.requests,
                t.requests as f64 / t.seconds.max(f64::EPSILON)
            ),
            t.failed().to_string(),
            format!(
                "{} / {}{}",
                t.count(OLD_PAGE),
                t.count(NEW_PAGE),
                match t.unexpected(&[OLD_PAGE, NEW_PAGE]) {
                    0 => String::new(),
                    n => format!(" (+{n} other)"),
                }
            ),
        ),
        None => ("–".to_owned(), "not measured".to_owned(), "–".to_owned()),
    };
    let ready = if row.endpoints.samples > 0 {
        format!(
            "{} (endpoints at peer 0: {})",
            range(&row.ready),
            range(&row.endpoints)
        )
    } else {
        range(&row.ready)
    };
    format!(
        "| {} | {} | {requests} | {failed} | {pages} | {ready} | {} |",
        row.what,
        secs(row.done),
        range(&row.pods)
    )
}

fn failures_line(row: &Row) -> Option<String> {
    let t = row.tally.as_ref()?;
    if t.failed() == 0 {
        return None;
    }
    let shown: Vec<String> = t
        .failures_at
        .iter()
        .take(10)
        .map(|d| format!("{:.2} s", d.as_secs_f64()))
        .collect();
    Some(format!(
        "- {}: failed requests began at {}{} after the update began.",
        row.what,
        shown.join(", "),
        if t.failed() > shown.len() {
            ", …"
        } else {
            ""
        }
    ))
}

fn render(
    loads: &[String; 3],
    surge: &Row,
    in_place: &Row,
    swarm: &Result<Vec<Row>, String>,
) -> String {
    let build = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    let mut md = String::new();
    md.push_str("### Rolling update: Shoal against Docker Swarm\n\n");
    md.push_str(&format!(
        "10 replicas of `{OLD_IMAGE}` (busybox httpd) moved to `{NEW_IMAGE}` one at a time, \
         in one run ({}; Swarm first, then Shoal).\n\n\
         - Shoal ({build} build of `shoal`): 3 peers on 127.0.108.11–13, each machine with its \
         own Docker engine; an RC with an httpGet readiness probe every second behind a NodePort \
         Service; `shoal rolling-update NAME --image {NEW_IMAGE}` at peer 1, timed until \
         `GET /rcs/NAME/rollout` at peer 1 (what `rollout status` reads, polled every 100 ms) \
         says complete; then `shoal rollout status NAME` confirmed it. The client goes through \
         peer 0's node port.\n\
         - Swarm: a single-node swarm on a dedicated engine (Docker 20.10; its own data root, \
         socket and network namespace, started by `scripts/bench-rollout.sh`), a service with a \
         health check every second; `docker service update --image {NEW_IMAGE} \
         --update-parallelism 1` with Swarm's other defaults (stop-first, delay 0, monitor 5 s), \
         timed until all 10 containers are healthy on 1.1. Twice: published through the routing \
         mesh (the client at the engine's address), and in DNS round-robin mode on an overlay \
         network, where the client is a busybox `wget` loop in a container on that network \
         (each request resolves the service's name with Swarm's DNS; it forks `nslookup`, \
         `timeout` and `wget` per request and may fall short of the rate: the requests column \
         gives the rate reached).\n\
         - The client: {REQUESTS_PER_SECOND} GETs a second on a fixed schedule, one at a time, \
         3 s timeout, from {}s before the update to {}s after it is done; ready replicas \
         (Swarm: healthy containers) sampled every 100 ms.\n\
         - Load average before: {}; after Swarm: {}; at the end: {}.\n\n",
        machine(),
        QUIET.as_secs(),
        QUIET.as_secs(),
        loads[0],
        loads[1],
        loads[2]
    ));
    md.push_str(
        "| rollout (10 replicas, 1.0 → 1.1) | done after | requests | failed | answers 1.0 / 1.1 | ready (min – max) | pods (min – max) |\n\
         |---|---:|---:|---:|---:|---|---:|\n",
    );
    let swarm_rows: &[Row] = swarm.as_deref().unwrap_or_default();
    for row in [surge, in_place].into_iter().chain(swarm_rows) {
        md.push_str(&row_line(row));
        md.push('\n');
    }
    md.push('\n');
    if let Err(reason) = swarm {
        md.push_str(&format!("Docker Swarm not measured: {reason}.\n\n"));
    }
    for row in swarm_rows {
        let status = match &row.swarm_status {
            Some((state, Some(took))) => format!("its UpdateStatus says {state} after {took:.1} s"),
            Some((state, None)) => format!("its UpdateStatus says {state}"),
            None => "its UpdateStatus could not be read".to_owned(),
        };
        md.push_str(&format!(
            "- {}: `docker service update` returned after {} (it waits out the 5 s monitor \
             period after the last task), {status}.\n",
            row.what,
            secs(row.cli_returned),
        ));
    }
    for row in [surge, in_place].into_iter().chain(swarm_rows) {
        if let Some(line) = failures_line(row) {
            md.push_str(&line);
            md.push('\n');
        }
    }
    md.push_str("\nTargets (issue #12):\n\n");
    let swarm_default = swarm_rows.first();
    match (surge.done, swarm_default.and_then(|r| r.done)) {
        (Some(shoal), Some(swarm)) => {
            let ratio = shoal.as_secs_f64() / swarm.as_secs_f64();
            let cli = swarm_default
                .and_then(|r| r.cli_returned)
                .map(|c| {
                    format!(
                        "; against the CLI's return: {:.2}×",
                        shoal.as_secs_f64() / c.as_secs_f64()
                    )
                })
                .unwrap_or_default();
            md.push_str(&format!(
                "- Shoal with surge ≤ {TARGET_RATIO}× Swarm (routing-mesh service): **{ratio:.2}×** \
                 ({:.1} s against {:.1} s until all 10 containers are healthy on 1.1{cli}): \
                 met: {}\n",
                shoal.as_secs_f64(),
                swarm.as_secs_f64(),
                met(ratio <= TARGET_RATIO)
            ));
        }
        _ => md.push_str(&format!(
            "- Shoal with surge ≤ {TARGET_RATIO}× Swarm: not measured (a rollout did not \
             finish, or Swarm did not run)\n"
        )),
    }
    match &surge.tally {
        Some(t) => md.push_str(&format!(
            "- 0 failed requests through the Service (Shoal with surge): **{}** of {}: met: {}\n",
            t.failed(),
            t.requests,
            met(t.failed() == 0 && surge.done.is_some())
        )),
        None => md.push_str("- 0 failed requests: not measured\n"),
    }
    for row in swarm_rows {
        match &row.tally {
            Some(t) => md.push_str(&format!(
                "- {}: {} failed requests of {}\n",
                row.what,
                t.failed(),
                t.requests
            )),
            None => md.push_str(&format!(
                "- {}: failed requests not measured ({})\n",
                row.what, row.client_note
            )),
        }
    }
    md
}
