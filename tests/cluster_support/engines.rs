//! One Docker engine per simulated machine, so that a machine that dies
//! takes its containers with it, and a machine can lack an image.
//!
//! Each engine is a `dockerd` of its own next to the machine's engine (see
//! DESIGN.md, "Known pitfalls"), everything named after its tag
//! `shoal-e2e-SUBNET-PID-nI`:
//!
//! - `--config-file` an empty JSON object: the machine's daemon.json sets the
//!   shared data root;
//! - `--data-root DIR/data` outlives a power cut; `--exec-root`, `--pidfile`
//!   and the `-H unix://` socket live in `DIR/run`, which stands for `/run`
//!   and is wiped by a power cut, as a reboot would;
//! - its own Linux bridge `shoalSUBNETnI` (alias: the tag) with
//!   `10.SUBNET.I.1/24`, and `--iptables=false`: ports are published by the
//!   userland proxy (`docker-proxy` listens on the node's 127.0.X.Y), and the
//!   engine writes no iptables rule that could clash with the machine's
//!   engine. (`--bridge=none` is no option: containers then have no network
//!   and no published port.)
//! - `--cgroup-parent /TAG`: every container process of the engine is found
//!   there whoever its parent is, and dies with the machine;
//! - storage driver `overlay2` unless `SHOAL_TEST_STORAGE_DRIVER` says
//!   otherwise (`vfs` works on any file system but copies the image for every
//!   container; `fuse-overlayfs` runs a FUSE process per container);
//! - no `--live-restore`: an engine back from a power cut shows the
//!   containers that ran as `Exited (255)`, as a rebooted machine does.
//!
//! `scripts/node-engines.sh` starts engines the same way for benchmarks and
//! demos; keep the two in step.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::host;

/// Overrides the storage driver of node engines.
pub const STORAGE_DRIVER_ENV: &str = "SHOAL_TEST_STORAGE_DRIVER";
const DEFAULT_STORAGE_DRIVER: &str = "overlay2";

/// Programs an engine is made of (`/proc/PID/comm`, cut at 15 bytes); their
/// command lines name the engine's directory. Container processes are found
/// through the cgroup instead.
const ENGINE_PROGRAMS: [&str; 5] = [
    "dockerd",
    "containerd", // and containerd-shim-runc-v2
    "docker-proxy",
    "fuse-overlayfs",
    "runc",
];

/// Where containerd shims listen; the socket file outlives a killed shim.
const SHIM_SOCKETS: &str = "/run/containerd/s/";

pub fn storage_driver() -> String {
    std::env::var(STORAGE_DRIVER_ENV)
        .ok()
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| DEFAULT_STORAGE_DRIVER.to_owned())
}

/// The bridge of machine `index` of the cluster on 127.0.`subnet`.0/24.
pub fn bridge_name(subnet: u8, index: usize) -> String {
    format!("shoal{subnet}n{index}")
}

/// The Docker engine of one simulated machine.
#[derive(Debug)]
pub struct NodeEngine {
    /// `CLUSTER_DIR/engineI`: `data/` (kept over a power cut), `run/`
    /// (wiped), `daemon.json`, `dockerd.log`.
    dir: PathBuf,
    /// Names what lives outside `dir`: the bridge's alias, the cgroup parent.
    tag: String,
    bridge: String,
    /// Address of the bridge, the containers' gateway.
    cidr: String,
    driver: String,
    /// The running dockerd, `None` while the machine is off.
    dockerd: Option<Child>,
    /// Set once everything outside `dir` and the engine's state are removed.
    torn_down: bool,
}

impl NodeEngine {
    /// Sets up machine `index`'s engine under `cluster_dir` (its bridge,
    /// config and directories) and starts its dockerd without waiting for it
    /// ([`NodeEngine::wait_ready`]).
    pub fn launch(cluster_dir: &Path, subnet: u8, index: usize) -> NodeEngine {
        let mut engine = NodeEngine::at(cluster_dir, subnet, index);
        engine.make_bridge();
        std::fs::create_dir_all(engine.dir.join("data")).expect("create engine data root");
        std::fs::write(engine.dir.join("daemon.json"), "{}\n").expect("write engine config");
        engine.spawn_dockerd();
        engine
    }

    /// The engine that machine `index` has, or had, under `cluster_dir`.
    fn at(cluster_dir: &Path, subnet: u8, index: usize) -> NodeEngine {
        let cluster = cluster_dir
            .file_name()
            .and_then(|n| n.to_str())
            .expect("cluster dir has a name");
        NodeEngine {
            dir: cluster_dir.join(format!("engine{index}")),
            tag: format!("{cluster}-n{index}"),
            bridge: bridge_name(subnet, index),
            cidr: format!("10.{subnet}.{index}.1/24"),
            driver: storage_driver(),
            dockerd: None,
            torn_down: false,
        }
    }

    /// `unix://` address of the engine, for `DOCKER_HOST` or `docker -H`.
    pub fn host(&self) -> String {
        format!("unix://{}", self.socket().display())
    }

    /// A `docker` command against this engine.
    pub fn docker(&self) -> Command {
        let mut cmd = Command::new("docker");
        cmd.arg("-H").arg(self.host());
        cmd
    }

    pub fn bridge(&self) -> &str {
        &self.bridge
    }

    pub fn storage_driver(&self) -> &str {
        &self.driver
    }

    pub fn is_on(&self) -> bool {
        self.dockerd.is_some()
    }

    fn socket(&self) -> PathBuf {
        self.run_dir().join("docker.sock")
    }

    fn run_dir(&self) -> PathBuf {
        self.dir.join("run")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("dockerd.log")
    }

    fn make_bridge(&self) {
        if let Some(alias) = host::link_alias(&self.bridge) {
            assert!(
                is_stale_tag(&alias),
                "interface {} exists and is not a left-over of these tests (alias {alias:?}): \
                 remove it or run the test on another subnet",
                self.bridge
            );
            host::delete_link_if_alias(&self.bridge, &alias);
        }
        let overlaps = host::overlapping_routes(&self.cidr);
        assert!(
            overlaps.is_empty(),
            "the bridge network {} of {} overlaps routes of this machine: {overlaps:?}",
            self.cidr,
            self.tag
        );
        host::create_bridge(&self.bridge, &self.tag, &self.cidr);
    }

    fn spawn_dockerd(&mut self) {
        assert!(self.dockerd.is_none(), "engine {} already runs", self.tag);
        let run = self.run_dir();
        // A left-over pidfile makes dockerd refuse to start.
        let _ = std::fs::remove_dir_all(&run);
        std::fs::create_dir_all(&run).expect("create engine run dir");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("open dockerd.log");
        let child = Command::new("dockerd")
            .arg("--config-file")
            .arg(self.dir.join("daemon.json"))
            .arg("--data-root")
            .arg(self.dir.join("data"))
            .arg("--exec-root")
            .arg(run.join("exec"))
            .arg("--pidfile")
            .arg(run.join("docker.pid"))
            .arg("--host")
            .arg(self.host())
            .arg("--storage-driver")
            .arg(&self.driver)
            .arg("--bridge")
            .arg(&self.bridge)
            .args(["--iptables=false", "--ip-masq=false"])
            .arg("--cgroup-parent")
            .arg(format!("/{}", self.tag))
            .env_remove("DOCKER_HOST")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup dockerd.log"))
            .stderr(log)
            .spawn()
            .expect("spawn dockerd (is docker.io installed?)");
        self.dockerd = Some(child);
    }

    /// Waits until the engine answers `/_ping`; panics with its log if it
    /// exits or does not answer within `timeout`.
    pub fn wait_ready(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if self.ping() {
                return;
            }
            let exited = self
                .dockerd
                .as_mut()
                .map_or(Ok(None), Child::try_wait)
                .ok()
                .flatten();
            assert!(
                exited.is_none() && Instant::now() < deadline,
                "the engine {} ({} storage driver; {STORAGE_DRIVER_ENV}=vfs works on any file system) \
                 did not come up ({exited:?}); dockerd.log:\n{}",
                self.tag,
                self.driver,
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn ping(&self) -> bool {
        let Ok(mut stream) = UnixStream::connect(self.socket()) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
        if stream
            .write_all(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            .is_err()
        {
            return false;
        }
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        answer.starts_with("HTTP/1.") && answer.ends_with("OK")
    }

    /// Starts `docker load` of `tar` into this engine; the caller waits.
    pub fn spawn_load(&self, tar: &Path) -> Child {
        self.docker()
            .arg("load")
            .arg("--quiet")
            .arg("--input")
            .arg(tar)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn docker load")
    }

    /// A power cut: dockerd, containerd, the shims, the port proxies and
    /// every container process are SIGKILLed at once; the mounts go, and so
    /// does `run/` (it stands for /run). `data/` stays, as a disk would.
    pub fn power_off(&mut self) {
        let mut shim_sockets = BTreeSet::new();
        for _ in 0..100 {
            let procs = host::processes();
            let pids = self.pids_in(&procs);
            if pids.is_empty() {
                break;
            }
            for p in procs.iter().filter(|p| pids.contains(&p.pid)) {
                if p.comm.starts_with("containerd-shim") {
                    shim_sockets.extend(
                        host::unix_socket_paths(p.pid)
                            .into_iter()
                            .filter(|s| s.starts_with(SHIM_SOCKETS)),
                    );
                }
            }
            host::kill9(&pids);
            std::thread::sleep(Duration::from_millis(20));
        }
        if let Some(mut child) = self.dockerd.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        for socket in shim_sockets {
            let _ = std::fs::remove_file(socket);
        }
        host::unmount_all_under(&self.dir);
        host::remove_cgroups(&self.tag, true);
        let _ = std::fs::remove_dir_all(self.run_dir());
    }

    /// Processes of this engine still alive: its programs, their children
    /// and every process of its containers. Empty once the machine is off.
    pub fn processes(&self) -> BTreeSet<u32> {
        self.pids_in(&host::processes())
    }

    fn pids_in(&self, procs: &[host::Proc]) -> BTreeSet<u32> {
        let marker = format!("{}/", self.dir.display());
        // A port proxy whose dockerd died before it names only its container.
        let network = self.cidr.rsplit_once('.').map_or("", |(net, _)| net);
        let proxied = format!("-container-ip {network}.");
        let roots = procs
            .iter()
            .filter(|p| {
                (ENGINE_PROGRAMS.iter().any(|e| p.comm.starts_with(e))
                    && p.cmdline.contains(&marker))
                    || (p.comm == "docker-proxy" && p.cmdline.contains(&proxied))
            })
            .map(|p| p.pid);
        let mut pids = host::with_descendants(procs, roots);
        pids.extend(host::cgroup_pids(&self.tag));
        pids.remove(&std::process::id());
        pids
    }

    /// An orderly shutdown: dockerd is asked to stop (it stops its
    /// containers first), then whatever is left goes as in a power cut.
    pub fn shut_down(&mut self) {
        if let Some(child) = self.dockerd.as_mut() {
            host::signal(child.id(), "TERM");
            let deadline = Instant::now() + Duration::from_secs(30);
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        self.power_off();
    }

    /// Boots the engine again on the same data root and waits for it.
    pub fn power_on(&mut self) {
        self.spawn_dockerd();
        self.wait_ready(Duration::from_secs(60));
    }

    /// Removes everything of this engine: processes, mounts, cgroups, the
    /// bridge and the engine's state; only `dockerd.log` stays.
    pub fn tear_down(&mut self) {
        if self.torn_down {
            return;
        }
        self.torn_down = true;
        self.power_off();
        host::remove_cgroups(&self.tag, false);
        host::delete_link_if_alias(&self.bridge, &self.tag);
        let _ = std::fs::remove_dir_all(self.dir.join("data"));
    }

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for NodeEngine {
    fn drop(&mut self) {
        self.tear_down();
    }
}

/// Saves the test images of the machine's engine (label `io.shoal.test=1`,
/// from `scripts/test-images.sh`) to `dir/test-images.tar`, for
/// [`NodeEngine::spawn_load`]. Save and load keep image ids.
pub fn save_test_images(dir: &Path) -> PathBuf {
    let listed = Command::new("docker")
        .args([
            "images",
            "--filter",
            "label=io.shoal.test=1",
            "--format",
            "{{.Repository}}:{{.Tag}}",
        ])
        .output()
        .expect("docker images");
    let refs: Vec<String> = String::from_utf8_lossy(&listed.stdout)
        .lines()
        .filter(|r| !r.contains("<none>"))
        .map(str::to_owned)
        .collect();
    assert!(
        !refs.is_empty(),
        "no test image: run scripts/test-images.sh"
    );
    let tar = dir.join("test-images.tar");
    let out = Command::new("docker")
        .arg("save")
        .arg("--output")
        .arg(&tar)
        .args(&refs)
        .output()
        .expect("docker save");
    assert!(
        out.status.success(),
        "docker save {refs:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    tar
}

/// Starts the engines of machines `0..n` of a cluster in `cluster_dir`, all
/// at once, waits until each answers, and starts loading the test images
/// into each; [`ImageLoads::wait`] waits for the loads (peers can start
/// meanwhile).
pub fn launch_all(cluster_dir: &Path, subnet: u8, n: usize) -> (Vec<NodeEngine>, ImageLoads) {
    let started = Instant::now();
    reap_stale(subnet);
    let tar = save_test_images(cluster_dir);
    let mut engines: Vec<NodeEngine> = (0..n)
        .map(|i| NodeEngine::launch(cluster_dir, subnet, i))
        .collect();
    for engine in &mut engines {
        engine.wait_ready(Duration::from_secs(60));
    }
    let answering = started.elapsed();
    let loads = engines
        .iter()
        .map(|e| (e.tag.clone(), e.spawn_load(&tar)))
        .collect();
    let loads = ImageLoads {
        loads,
        tar,
        started,
        answering,
    };
    (engines, loads)
}

/// `docker load` of the test images into each engine of a cluster, running.
#[derive(Debug)]
pub struct ImageLoads {
    /// Engine tag and its `docker load`.
    loads: Vec<(String, Child)>,
    tar: PathBuf,
    started: Instant,
    /// When every engine answered.
    answering: Duration,
}

impl ImageLoads {
    /// Waits for every load; panics if one failed.
    pub fn wait(self) {
        let n = self.loads.len();
        for (tag, load) in self.loads {
            let out = load.wait_with_output().expect("wait for docker load");
            assert!(
                out.status.success(),
                "docker load into {tag} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let _ = std::fs::remove_file(&self.tar);
        eprintln!(
            "{n} node engines ({}) answered after {:.2?}, held the test images after {:.2?}",
            storage_driver(),
            self.answering,
            self.started.elapsed()
        );
    }
}

/// Whether `tag` (`shoal-e2e-SUBNET-PID-nI`) names an engine of a test
/// process that is gone.
fn is_stale_tag(tag: &str) -> bool {
    let Some(rest) = tag.strip_prefix("shoal-e2e-") else {
        return false;
    };
    let parts: Vec<&str> = rest.split('-').collect();
    match parts.as_slice() {
        [_subnet, pid, node] if node.starts_with('n') => {
            pid.parse::<u32>().is_ok_and(|pid| !host::pid_alive(pid))
        }
        _ => false,
    }
}

/// Removes what a test process on `subnet` that died without cleaning up
/// (SIGKILL, a timeout) left running: its peers, its engines with their
/// containers, bridges, mounts and cgroups. Its logs stay.
fn reap_stale(subnet: u8) {
    let prefix = format!("shoal-e2e-{subnet}-");
    let entries = std::fs::read_dir(std::env::temp_dir())
        .into_iter()
        .flatten();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(&prefix)
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if host::pid_alive(pid) {
            continue;
        }
        let dir = entry.path();
        let marker = format!("{}/", dir.display());
        let procs = host::processes();
        let peers = procs
            .iter()
            .filter(|p| p.comm == "shoal" && p.cmdline.contains(&marker))
            .map(|p| p.pid);
        host::kill9(&peers.collect());
        for index in 0..64 {
            let engine = dir.join(format!("engine{index}"));
            if engine.join("data").exists() || engine.join("run").exists() {
                eprintln!("removing engine {index} left by test process {pid} in {dir:?}");
                // Dropping it powers it off and removes its bridge, cgroups and state.
                drop(NodeEngine::at(&dir, subnet, index));
            }
        }
        // The logs stay, as those of a test that failed do.
        host::unmount_all_under(&dir);
    }
    // Cgroups of engines whose directory is gone.
    for name in host::top_cgroups() {
        if is_stale_tag(&name) && name.starts_with(&prefix) {
            host::kill9(&host::cgroup_pids(&name));
            host::remove_cgroups(&name, false);
        }
    }
}
