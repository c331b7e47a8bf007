//! Bare `shoal up` processes on a test's own 127.0.N.x subnet, for tests
//! that need real peers with flags of their own (TLS, tokens) but no
//! containers, so none of `cluster_support`'s engines, images or iptables.
//!
//! Each peer `n` gossips on 127.0.N.n:7946, keeps its data in `peerN/` and
//! logs to `peerN.log` in the test's temp dir; every other flag (API
//! address, TLS, tokens, DNS port) is the test's. The processes are
//! stopped on drop, and the temp dir removed unless the test failed (then
//! its logs say why a peer never served).
#![allow(dead_code)] // each test binary uses a different part

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The `shoal up` processes of one test, stopped and cleaned up on drop.
pub struct UpProcs {
    pub dir: PathBuf,
    children: Vec<Child>,
    subnet: u8,
    /// Peer `n` is named `{name}-{n}`, which is what `get nodes` shows.
    name: String,
}

impl UpProcs {
    /// An empty set of peers on 127.0.`subnet`.x, named `{name}-{n}`,
    /// in the temp dir `shoal-{dir_tag}-{pid}` (emptied first).
    pub fn new(subnet: u8, name: &str, dir_tag: &str) -> UpProcs {
        let dir = std::env::temp_dir().join(format!("shoal-{dir_tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        UpProcs {
            dir,
            children: Vec::new(),
            subnet,
            name: name.to_owned(),
        }
    }

    /// Peer `n`'s address: 127.0.`subnet`.`n`.
    pub fn ip(&self, n: u8) -> String {
        format!("127.0.{}.{n}", self.subnet)
    }

    /// Starts `shoal up` for peer `n` with `args` after the common flags
    /// (listen, data dir, service address, name); its data dir. Join and
    /// API tokens come only from `args`, never from the environment.
    pub fn up(&mut self, n: u8, args: &[&str]) -> PathBuf {
        let ip = self.ip(n);
        let data = self.dir.join(format!("peer{n}"));
        let log = std::fs::File::create(self.dir.join(format!("peer{n}.log"))).unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_shoal"));
        command
            .args(["up", "--listen", &format!("{ip}:7946")])
            .args(["--data-dir", data.to_str().unwrap()])
            .args(["--service-address", &ip])
            .args(["--name", &format!("{}-{n}", self.name)])
            .args(args)
            .env_remove("SHOAL_JOIN_TOKEN")
            .env_remove("SHOAL_API_TOKEN")
            .env("SHOAL_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log);
        self.children.push(command.spawn().expect("start shoal up"));
        data
    }

    /// How many peers were started.
    pub fn len(&self) -> usize {
        self.children.len()
    }

    /// Peer `n`'s log so far (empty if it has none yet).
    pub fn log(&self, n: u8) -> String {
        std::fs::read_to_string(self.dir.join(format!("peer{n}.log"))).unwrap_or_default()
    }

    /// `name` inside the test's temp dir.
    pub fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    /// Writes `text` to `name` inside the test's temp dir; its path.
    pub fn write(&self, name: &str, text: &str) -> String {
        let path = self.path(name);
        std::fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for UpProcs {
    /// SIGTERM to all first so they leave together, then up to 20 s each
    /// to exit before SIGKILL.
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = Command::new("kill").arg(child.id().to_string()).status();
        }
        for child in &mut self.children {
            let deadline = Instant::now() + Duration::from_secs(20);
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// The CLI with `token` as its API token (none if `None`) and no server or
/// TLS settings from the environment.
pub fn shoal_cli(token: Option<&str>, args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_shoal"));
    command.args(args);
    match token {
        Some(token) => command.env("SHOAL_API_TOKEN", token),
        None => command.env_remove("SHOAL_API_TOKEN"),
    };
    command
        .env_remove("SHOAL_CA_FILE")
        .env_remove("SHOAL_INSECURE_SKIP_TLS_VERIFY")
        .env_remove("SHOAL_SERVER")
        .output()
        .expect("run shoal")
}

/// Stdout then stderr, as one text for messages and `contains` checks.
pub fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Retries `check` every 250 ms until it holds or `within` passes.
pub fn wait_until(within: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if check() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The peer's join token, from the `node.json` in its data dir.
pub fn join_token(data: &std::path::Path) -> String {
    let text = std::fs::read_to_string(data.join("node.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    json["identity"]["token"].as_str().unwrap().to_owned()
}

/// Whether a `kubectl` client is on PATH; tests that need it skip without.
pub fn kubectl_present() -> bool {
    Command::new("kubectl")
        .args(["version", "--client"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}
