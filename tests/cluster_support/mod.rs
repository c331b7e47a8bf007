//! Real clusters for end-to-end tests: `shoal up` processes on 127.0.X.Y,
//! real Docker engines, partitions made with iptables.
//!
//! A cluster's machines either share the machine's one Docker engine
//! (`Engines::Shared`, the fastest: a killed peer's containers outlive it)
//! or each run an engine of their own (`Engines::PerNode`, see
//! [`engines`]): then a machine that dies takes its containers with it.
//!
//! Each test takes its own 127.0.X.0/24 subnet so tests can run in
//! parallel. Everything a cluster creates (processes, engines, containers
//! labelled with its cluster id, bridges, mounts, cgroups, its iptables
//! chain, its temp dir) is removed on drop, also when the test fails; a
//! failed test leaves only its logs in its temp dir.
#![allow(dead_code)]

mod builder;
mod engines;
mod ground_truth;
mod host;
pub mod images;
mod machines;

pub use engines::NodeEngine;
pub use ground_truth::GroundTruth;
use ground_truth::remove_containers;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// One pod that echoes what it receives on port 80.
pub const ECHO_RC: &str = "apiVersion: v1
kind: ReplicationController
metadata:
  name: echo
spec:
  replicas: 1
  selector:
    app: echo
  template:
    metadata:
      labels:
        app: echo
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: echo
        image: shoal-test/hello:1.0
        command: [\"/bin/nc\", \"-ll\", \"-p\", \"80\", \"-e\", \"/bin/cat\"]
        ports:
        - containerPort: 80
        resources:
          requests:
            cpu: 50m
            memory: 16Mi
";

pub const PEER_PORT: u16 = 7946;
pub const API_PORT: u16 = 7070;

/// Builds the local test images once (no registry involved).
pub fn ensure_test_images() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let status = Command::new("bash")
        .arg(root.join("scripts/test-images.sh"))
        .stdout(Stdio::null())
        .status()
        .expect("run scripts/test-images.sh");
    assert!(status.success(), "scripts/test-images.sh failed");
}

pub fn shoal_bin() -> &'static str {
    env!("CARGO_BIN_EXE_shoal")
}

/// One `shoal up` process.
#[derive(Debug)]
pub struct PeerProc {
    pub ip: Ipv4Addr,
    pub data_dir: PathBuf,
    pub log: PathBuf,
    child: Option<Child>,
}

impl PeerProc {
    pub fn server(&self) -> String {
        format!("http://{}:{}", self.ip, API_PORT)
    }

    pub fn peer_addr(&self) -> String {
        format!("{}:{}", self.ip, PEER_PORT)
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// `IP:PORT` of the HTTP API, for [`http`].
    pub fn api_addr(&self) -> String {
        format!("{}:{}", self.ip, API_PORT)
    }

    /// OS process id while the peer runs (for /proc readings).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }
}

#[derive(Debug)]
pub struct Cluster {
    pub subnet: u8,
    pub dir: PathBuf,
    pub peers: Vec<PeerProc>,
    pub token: String,
    pub cluster_id: String,
    chain: Option<String>,
    /// `SHOAL_LOG` of every peer this cluster (re)starts.
    log_filter: String,
    /// More `shoal up` flags for every peer.
    extra_args: Vec<String>,
    /// Engine of machine `i` at `i`; empty when the machines share the
    /// machine's engine.
    engines: Vec<NodeEngine>,
    /// Peer `i` runs with `--label machine=I`.
    machine_labels: bool,
    /// (peer, key, value): more environment for one peer (test hooks).
    peer_env: Vec<(usize, String, String)>,
}

impl Cluster {
    /// Starts `n` peers on 127.0.`subnet`.11.. sharing the machine's engine:
    /// the first creates the cluster, the others join through it. Waits until
    /// every peer sees all.
    pub fn start(subnet: u8, n: usize) -> Cluster {
        Cluster::builder(subnet, n).start()
    }

    /// Like [`Cluster::start`], each machine with its own Docker engine.
    pub fn start_machines(subnet: u8, n: usize) -> Cluster {
        Cluster::builder(subnet, n).engine_per_node().start()
    }

    /// Like [`Cluster::start`], with peers logging at `log_filter` (`SHOAL_LOG`).
    pub fn start_with_log(subnet: u8, n: usize, log_filter: &str) -> Cluster {
        Cluster::builder(subnet, n).log(log_filter).start()
    }

    /// Like [`Cluster::start`], with more `shoal up` flags for every peer.
    pub fn start_with_args(subnet: u8, n: usize, args: &[&str]) -> Cluster {
        Cluster::builder(subnet, n).args(args).start()
    }

    pub fn start_with(subnet: u8, n: usize, log_filter: &str, args: &[&str]) -> Cluster {
        Cluster::builder(subnet, n)
            .log(log_filter)
            .args(args)
            .start()
    }

    fn start_peers(&mut self, n: usize) {
        let cluster = self;
        for i in 0..n {
            let ip = Ipv4Addr::new(127, 0, cluster.subnet, 11 + i as u8);
            let data_dir = cluster.dir.join(format!("peer{i}"));
            let log = cluster.dir.join(format!("peer{i}.log"));
            cluster.peers.push(PeerProc {
                ip,
                data_dir,
                log,
                child: None,
            });
            cluster.spawn(i);
            if i == 0 {
                cluster.read_token();
            }
        }
        cluster.wait_for_all_alive(n, Duration::from_secs(60));
    }

    fn read_token(&mut self) {
        let path = self.peers[0].data_dir.join("node.json");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let parsed = std::fs::read_to_string(&path)
                .ok()
                .and_then(|text| serde_json::from_str::<Value>(&text).ok());
            if let Some(v) = parsed {
                self.token = v["identity"]["token"].as_str().unwrap().to_owned();
                self.cluster_id = self.token.split('.').nth(1).unwrap().to_owned();
                return;
            }
            assert!(Instant::now() < deadline, "peer 0 wrote no node.json");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// (Re)starts peer `i` with its data dir; joins through peer 0 (or 1 for peer 0).
    pub fn spawn(&mut self, i: usize) {
        let peer = &self.peers[i];
        let mut cmd = Command::new(shoal_bin());
        cmd.arg("up")
            .arg("--listen")
            .arg(peer.peer_addr())
            .arg("--api")
            .arg(format!("{}:{}", peer.ip, API_PORT))
            .arg("--data-dir")
            .arg(&peer.data_dir)
            .arg("--name")
            .arg(format!("node{i}"))
            .arg("--memory")
            .arg("4Gi")
            .args(&self.extra_args)
            .env("SHOAL_LOG", &self.log_filter);
        for (_, key, value) in self.peer_env.iter().filter(|(p, _, _)| *p == i) {
            cmd.env(key, value);
        }
        if self.machine_labels {
            cmd.arg("--label").arg(format!("machine={i}"));
        }
        if let Some(engine) = self.engines.get(i) {
            cmd.env("DOCKER_HOST", engine.host());
        }
        if !self.token.is_empty() {
            let seed = if i == 0 { 1 } else { 0 };
            if self.peers.len() > 1 || i != 0 {
                cmd.arg("--join").arg(self.peers[seed].peer_addr());
            }
            cmd.arg("--join-token").arg(&self.token);
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&peer.log)
            .unwrap();
        cmd.stdout(log.try_clone().unwrap()).stderr(log);
        let child = cmd.spawn().expect("spawn shoal up");
        self.peers[i].child = Some(child);
        self.wait_for_api(i, Duration::from_secs(30));
    }

    fn wait_for_api(&self, i: usize, timeout: Duration) {
        let ok = wait_until(timeout, || {
            self.cli(i, &["get", "nodes", "-o", "json"])
                .status
                .success()
        });
        assert!(
            ok,
            "peer {i} API did not come up; log:\n{}",
            self.log_tail(i)
        );
    }

    /// Runs the CLI against peer `i`'s API.
    pub fn cli(&self, i: usize, args: &[&str]) -> Output {
        Command::new(shoal_bin())
            .args(args)
            .env("SHOAL_SERVER", self.peers[i].server())
            .output()
            .expect("run shoal CLI")
    }

    /// `get WHAT -o json` at peer `i`, parsed.
    pub fn get_json(&self, i: usize, what: &str) -> Value {
        let out = self.cli(i, &["get", what, "-o", "json"]);
        assert!(
            out.status.success(),
            "get {what} at peer {i} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("get -o json prints JSON")
    }

    /// Like `get_json` but `None` when the peer does not answer.
    pub fn try_get_json(&self, i: usize, what: &str) -> Option<Value> {
        let out = self.cli(i, &["get", what, "-o", "json"]);
        if !out.status.success() {
            return None;
        }
        serde_json::from_slice(&out.stdout).ok()
    }

    /// Number of nodes peer `i` sees in state `state`.
    pub fn count_nodes(&self, i: usize, state: &str) -> usize {
        self.try_get_json(i, "nodes").map_or(0, |v| {
            v.as_array()
                .unwrap()
                .iter()
                .filter(|n| n["state"] == state)
                .count()
        })
    }

    pub fn wait_for_all_alive(&self, n: usize, timeout: Duration) {
        for i in 0..self.peers.len() {
            let ok = wait_until(timeout, || self.count_nodes(i, "Alive") == n);
            assert!(
                ok,
                "peer {i} does not see {n} alive nodes: {:?}\n{}",
                self.try_get_json(i, "nodes"),
                self.every_log_tail()
            );
        }
    }

    /// Running pods of `rc` as the peer `i` reports: (pod name, node name).
    pub fn running_pods(&self, i: usize, rc: &str) -> Vec<(String, String)> {
        let Some(pods) = self.try_get_json(i, "pods") else {
            return Vec::new();
        };
        let mut out: Vec<(String, String)> = pods
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["rc"] == rc && p["phase"] == "Running")
            .map(|p| {
                (
                    p["name"].as_str().unwrap().to_owned(),
                    p["node"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        out.sort();
        out
    }

    /// Applies `rc` (`replicas` copies of `image`) at peer 0 and waits up
    /// to 90 s until peer 0 reports them all running.
    pub fn apply_and_wait_running(&self, rc: &str, replicas: u32, image: &str) {
        let manifest = self.manifest(&format!("{rc}.yaml"), &hello_rc(rc, replicas, image));
        ok(&self.cli(0, &["apply", "-f", manifest.to_str().unwrap()]));
        assert!(
            wait_until(Duration::from_secs(90), || self.running_pods(0, rc).len()
                == replicas as usize),
            "{rc} never ran {replicas} copies: {:?}\n{}",
            self.running_pods(0, rc),
            self.every_log_tail()
        );
    }

    /// The value of the counter `series` (name and labels) in peer `i`'s
    /// `/metrics`; 0 when absent.
    pub fn counter(&self, i: usize, series: &str) -> u64 {
        let out = Command::new("curl")
            .args(["-sf", &format!("{}/metrics", self.peers[i].server())])
            .output()
            .expect("run curl");
        let text = String::from_utf8_lossy(&out.stdout);
        text.lines()
            .find_map(|l| l.strip_prefix(series))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .map_or(0, |v| v as u64)
    }

    /// Running pods of `rc` on the node named `node`, as peer 0 reports.
    pub fn running_pods_on(&self, rc: &str, node: &str) -> Vec<String> {
        self.running_pods(0, rc)
            .into_iter()
            .filter(|(_, on)| on == node)
            .map(|(pod, _)| pod)
            .collect()
    }

    /// Replica index of every running pod of `rc` on the engines, sorted:
    /// ground truth.
    pub fn engine_pods(&self, rc: &str) -> Vec<String> {
        self.ground_truth().pods(rc)
    }

    /// Reads what every engine of this cluster runs.
    pub fn ground_truth(&self) -> GroundTruth {
        let hosts = if self.engines.is_empty() {
            vec![None]
        } else {
            self.engines.iter().map(|e| Some(e.host())).collect()
        };
        GroundTruth::new(&self.cluster_id, hosts)
    }

    /// Stops peer `i` as an operator or a shutdown would (SIGTERM): it
    /// leaves the cluster gracefully and saves its state. Its containers
    /// keep running on the engine.
    pub fn terminate(&mut self, i: usize) {
        if let Some(mut child) = self.peers[i].child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(20);
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERMs every peer of `ids` at once (a site losing power with a
    /// UPS: each leaves and saves its state), then waits for all.
    pub fn terminate_all(&mut self, ids: &[usize]) {
        for &i in ids {
            if let Some(child) = &self.peers[i].child {
                let _ = Command::new("kill")
                    .args(["-TERM", &child.id().to_string()])
                    .status();
            }
        }
        for &i in ids {
            self.terminate(i);
        }
    }

    /// The node id peer `i` chose, as container labels spell it.
    pub fn node_id(&self, i: usize) -> String {
        let text = std::fs::read_to_string(self.peers[i].data_dir.join("node.json"))
            .expect("peer has a node.json");
        let v: Value = serde_json::from_str(&text).expect("node.json is JSON");
        format!("{:016x}", v["identity"]["node_id"].as_u64().unwrap())
    }

    /// `(replica, node id)` of every running container of `rc` on the
    /// engines, sorted: ground truth, including copies a test should not see.
    pub fn engine_copies(&self, rc: &str) -> Vec<(String, String)> {
        self.ground_truth().copies(rc)
    }

    /// `(running, ready)` of RC `rc` as peer `i` counts them.
    pub fn rc_counts(&self, i: usize, rc: &str) -> Option<(u64, u64)> {
        let rcs = self.try_get_json(i, "rc")?;
        let row = rcs.as_array()?.iter().find(|r| r["name"] == rc)?;
        Some((row["running"].as_u64()?, row["ready"].as_u64()?))
    }

    pub fn kill9(&mut self, i: usize) {
        if let Some(mut child) = self.peers[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Cuts every packet between the two groups of peers (both directions).
    pub fn partition(&mut self, a: &[usize], b: &[usize]) {
        let chain = format!("SHOAL{}", self.subnet);
        let _ = iptables(&["-N", &chain]);
        assert!(
            iptables(&["-I", "INPUT", "-j", &chain]),
            "iptables -I INPUT failed"
        );
        for &x in a {
            for &y in b {
                let (ix, iy) = (self.peers[x].ip.to_string(), self.peers[y].ip.to_string());
                assert!(iptables(&[
                    "-A", &chain, "-s", &ix, "-d", &iy, "-j", "DROP"
                ]));
                assert!(iptables(&[
                    "-A", &chain, "-s", &iy, "-d", &ix, "-j", "DROP"
                ]));
            }
        }
        self.chain = Some(chain);
    }

    pub fn heal(&mut self) {
        if let Some(chain) = self.chain.take() {
            while iptables(&["-D", "INPUT", "-j", &chain]) {}
            let _ = iptables(&["-F", &chain]);
            let _ = iptables(&["-X", &chain]);
        }
    }

    /// The log tail of every peer, headed by its number: a cluster that
    /// does not form is explained by the peer that could not join.
    pub fn every_log_tail(&self) -> String {
        (0..self.peers.len())
            .map(|i| format!("log of peer {i}:\n{}\n", self.log_tail(i)))
            .collect()
    }

    pub fn log_tail(&self, i: usize) -> String {
        let text = std::fs::read_to_string(&self.peers[i].log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// Writes `text` to a manifest file in the cluster's dir.
    pub fn manifest(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.heal();
        for i in 0..self.peers.len() {
            self.kill9(i);
        }
        if self.engines.is_empty() && !self.cluster_id.is_empty() {
            remove_containers(&[format!("label=io.shoal.cluster={}", self.cluster_id)]);
        }
        // In parallel: removing an engine's data root takes a while.
        std::thread::scope(|scope| {
            for engine in &mut self.engines {
                scope.spawn(|| engine.tear_down());
            }
        });
        if std::thread::panicking() {
            eprintln!("logs of the failed cluster kept in {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn iptables(args: &[&str]) -> bool {
    Command::new("iptables")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// `GET /` of a pod's page at `addr` (a node port, a service address): the
/// whole answer, head and body, or `None` when nothing answers within 3 s.
pub fn http_get(addr: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    write!(stream, "GET / HTTP/1.0\r\nHost: test\r\n\r\n").ok()?;
    let mut body = String::new();
    stream.read_to_string(&mut body).ok()?;
    Some(body)
}

/// One HTTP/1.0 request over a plain `TcpStream` with short timeouts (no
/// CLI process per call), for polling a peer's API every few milliseconds.
/// Returns the status code and body, or `None` when the peer does not answer.
pub fn http(
    addr: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
    timeout: Duration,
) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let sock: std::net::SocketAddr = addr.parse().ok()?;
    let mut stream = std::net::TcpStream::connect_timeout(&sock, timeout).ok()?;
    stream.set_read_timeout(Some(timeout)).ok()?;
    stream.set_write_timeout(Some(timeout)).ok()?;
    let _ = stream.set_nodelay(true);
    let body = body.unwrap_or("");
    let request = format!(
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Type: application/yaml\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).ok()?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).ok()?;
    let text = String::from_utf8_lossy(&response);
    let (head, rest) = text.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, rest.to_owned()))
}

/// The stdout of a command that must have succeeded (else its output).
pub fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "command failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `script` with `sh -c` on this machine; fails the test, with the
/// script's stderr, if it fails.
pub fn sh(script: &str) {
    let out = Command::new("sh").arg("-c").arg(script).output().unwrap();
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Polls `check` every 200 ms until it holds or `timeout` passes.
pub fn wait_until(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// [`hello_rc`] whose pods are ready only once `GET /` answers (an
/// httpGet readiness probe on port 80, every second).
pub fn hello_rc_probed(name: &str, replicas: u32, image: &str) -> String {
    hello_rc(name, replicas, image).replace(
        "        - containerPort: 80\n",
        "        - containerPort: 80\n        readinessProbe:\n          httpGet:\n            path: /\n            port: 80\n          periodSeconds: 1\n",
    )
}

/// An RC manifest for the local test image.
pub fn hello_rc(name: &str, replicas: u32, image: &str) -> String {
    format!(
        "apiVersion: v1
kind: ReplicationController
metadata:
  name: {name}
spec:
  replicas: {replicas}
  selector:
    app: {name}
  template:
    metadata:
      labels:
        app: {name}
    spec:
      terminationGracePeriodSeconds: 2
      containers:
      - name: web
        image: {image}
        ports:
        - containerPort: 80
        resources:
          requests:
            cpu: 50m
            memory: 16Mi
"
    )
}
