//! Docker Swarm on a dedicated engine that `scripts/bench-rollout.sh`
//! starts (its own data root, socket and network namespace), driven with
//! the `docker` CLI as a user would; its containers are read through the
//! engine's API on the unix socket (no CLI process per sample).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

/// `unix://` address of the dedicated engine.
pub const HOST_ENV: &str = "SHOAL_BENCH_SWARM_HOST";
/// The engine's address reachable from this process (advertised by the
/// swarm; its published ports answer there if the routing mesh works).
pub const ADDR_ENV: &str = "SHOAL_BENCH_SWARM_ADDR";
/// Why the script could not start the engine.
pub const SKIP_ENV: &str = "SHOAL_BENCH_SWARM_SKIP";

/// Label on the service and its containers.
const LABEL: &str = "shoal.test=rolloutbench";

/// A swarm of one manager on the dedicated engine; left (service removed,
/// `swarm leave --force`) on drop.
pub struct Swarm {
    host: String,
    socket: PathBuf,
    pub addr: String,
    services: Vec<String>,
    networks: Vec<String>,
    /// Client containers (`docker run`), removed on drop.
    containers: Vec<String>,
}

/// How a client reaches a service.
pub enum Endpoint {
    /// Published on `port` of every node through the routing mesh (IPVS).
    RoutingMesh { port: u16 },
    /// `--endpoint-mode dnsrr` on an overlay network: the service's name
    /// resolves to its tasks' addresses, for clients on that network.
    DnsRoundRobin { network: String },
}

impl Swarm {
    /// The engine the script started: `Ok(None)` when the test runs without
    /// it, `Err` with the script's reason when it could not start it.
    pub fn from_env() -> Result<Option<Swarm>, String> {
        if let Ok(reason) = std::env::var(SKIP_ENV) {
            return Err(reason);
        }
        let (Ok(host), Ok(addr)) = (std::env::var(HOST_ENV), std::env::var(ADDR_ENV)) else {
            return Ok(None);
        };
        let socket = host
            .strip_prefix("unix://")
            .map(PathBuf::from)
            .ok_or_else(|| format!("{HOST_ENV} must be unix://PATH, not {host:?}"))?;
        // Init before the value exists: its drop leaves the swarm, which
        // must never happen to an engine this code did not make join one.
        run_docker(&host, &["swarm", "init", "--advertise-addr", &addr])?;
        Ok(Some(Swarm {
            host,
            socket,
            addr,
            services: Vec::new(),
            networks: Vec::new(),
            containers: Vec::new(),
        }))
    }

    fn docker(&self) -> Command {
        docker_at(&self.host)
    }

    /// Runs `docker ARGS` against the engine; its stdout, or why it failed.
    fn run(&self, args: &[&str]) -> Result<String, String> {
        run_docker(&self.host, args)
    }

    /// A service of `replicas` tasks of `image` with a health check every
    /// second (the counterpart of Shoal's readiness probe), reached as
    /// `endpoint` says. The image is the engine's own (`--no-resolve-image`:
    /// no registry is asked for its digest).
    pub fn create_service(
        &mut self,
        name: &str,
        replicas: u32,
        image: &str,
        endpoint: &Endpoint,
    ) -> Result<(), String> {
        let replicas = replicas.to_string();
        let endpoint_args = match endpoint {
            Endpoint::RoutingMesh { port } => {
                vec![
                    "--publish".to_owned(),
                    format!("published={port},target=80"),
                ]
            }
            Endpoint::DnsRoundRobin { network } => {
                self.create_network(network)?;
                vec![
                    "--network".to_owned(),
                    network.clone(),
                    "--endpoint-mode".to_owned(),
                    "dnsrr".to_owned(),
                ]
            }
        };
        let mut args = vec![
            "service",
            "create",
            "--detach",
            "--name",
            name,
            "--label",
            LABEL,
            "--container-label",
            LABEL,
            "--replicas",
            &replicas,
            "--no-resolve-image",
            "--health-cmd",
            "wget -q -O /dev/null http://127.0.0.1/ || exit 1",
            "--health-interval",
            "1s",
            "--health-timeout",
            "2s",
            "--stop-grace-period",
            "2s",
        ];
        args.extend(endpoint_args.iter().map(String::as_str));
        args.push(image);
        self.run(&args)?;
        self.services.push(name.to_owned());
        Ok(())
    }

    /// An attachable overlay network, for a service and a client container.
    fn create_network(&mut self, network: &str) -> Result<(), String> {
        self.run(&[
            "network",
            "create",
            "--driver",
            "overlay",
            "--attachable",
            "--label",
            LABEL,
            network,
        ])?;
        self.networks.push(network.to_owned());
        Ok(())
    }

    /// Starts container `name` of `image` on `network` running `script`
    /// with `sh -c`; removed on drop.
    pub fn run_container(
        &mut self,
        name: &str,
        network: &str,
        image: &str,
        script: &str,
    ) -> Result<(), String> {
        self.run(&[
            "run",
            "--detach",
            "--name",
            name,
            "--network",
            network,
            "--label",
            LABEL,
            image,
            "sh",
            "-c",
            script,
        ])?;
        self.containers.push(name.to_owned());
        Ok(())
    }

    /// `docker exec CONTAINER ARGS`.
    pub fn exec(&self, container: &str, args: &[&str]) -> Result<String, String> {
        let mut all = vec!["exec", container];
        all.extend_from_slice(args);
        self.run(&all)
    }

    /// What container `name` printed to stdout.
    pub fn logs(&self, name: &str) -> Result<String, String> {
        self.run(&["logs", name])
    }

    /// Removes service `name` and waits until its containers are gone.
    pub fn remove_service(&mut self, name: &str) {
        let _ = self.run(&["service", "rm", name]);
        self.services.retain(|s| s != name);
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while self.containers(name).is_some_and(|c| !c.is_empty())
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// `docker service update --image IMAGE --update-parallelism 1`, Swarm's
    /// other update settings at their defaults (stop-first, delay 0, monitor
    /// 5 s); the CLI waits until Swarm says the service converged.
    pub fn spawn_update(&self, name: &str, image: &str) -> Child {
        self.docker()
            .args([
                "service",
                "update",
                "--image",
                image,
                "--update-parallelism",
                "1",
                "--no-resolve-image",
                name,
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn docker service update")
    }

    /// Running containers of service `name`: `(image, healthy)` each, or
    /// `None` when the engine does not answer.
    pub fn containers(&self, name: &str) -> Option<Vec<(String, bool)>> {
        let filters = format!(r#"{{"label":["com.docker.swarm.service.name={name}"]}}"#);
        let path = format!("/containers/json?filters={}", percent_encode(&filters));
        let listed: Value = serde_json::from_str(&self.api_get(&path)?).ok()?;
        let containers = listed.as_array()?;
        Some(
            containers
                .iter()
                .map(|c| {
                    let image = c["Image"].as_str().unwrap_or_default().to_owned();
                    let healthy = c["Status"]
                        .as_str()
                        .is_some_and(|s| s.contains("(healthy)"));
                    (image, healthy)
                })
                .collect(),
        )
    }

    /// Swarm's own account of the last update: `(state, seconds from its
    /// start to its completion)`.
    pub fn update_status(&self, name: &str) -> Option<(String, Option<f64>)> {
        let text = self
            .run(&[
                "service",
                "inspect",
                "--format",
                "{{json .UpdateStatus}}",
                name,
            ])
            .ok()?;
        let status: Value = serde_json::from_str(text.trim()).ok()?;
        let state = status["State"].as_str()?.to_owned();
        let at = |key: &str| {
            status[key]
                .as_str()
                .and_then(|t| t.parse::<jiff::Timestamp>().ok())
        };
        let took = match (at("StartedAt"), at("CompletedAt")) {
            (Some(start), Some(end)) => Some(end.duration_since(start).as_secs_f64()),
            _ => None,
        };
        Some((state, took))
    }

    /// One HTTP/1.0 GET on the engine's socket: the body, or `None`.
    fn api_get(&self, path: &str) -> Option<String> {
        let mut stream = UnixStream::connect(&self.socket).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        write!(stream, "GET {path} HTTP/1.0\r\nHost: docker\r\n\r\n").ok()?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer).ok()?;
        let (head, body) = answer.split_once("\r\n\r\n")?;
        let status = head.split_whitespace().nth(1)?;
        (status == "200").then(|| body.to_owned())
    }
}

impl Drop for Swarm {
    fn drop(&mut self) {
        for name in &self.containers {
            let _ = self.run(&["rm", "--force", name]);
        }
        for name in &self.services {
            let _ = self.run(&["service", "rm", name]);
        }
        for name in &self.networks {
            let _ = self.run(&["network", "rm", name]);
        }
        let _ = self.run(&["swarm", "leave", "--force"]);
    }
}

fn docker_at(host: &str) -> Command {
    let mut cmd = Command::new("docker");
    cmd.arg("-H").arg(host);
    cmd
}

/// Runs `docker ARGS` against the engine at `host`; its stdout, or why it
/// failed.
fn run_docker(host: &str, args: &[&str]) -> Result<String, String> {
    let out = docker_at(host)
        .args(args)
        .output()
        .map_err(|e| format!("docker {args:?}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "docker {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Query-string encoding of everything but unreserved characters.
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Whether the kernel has IPVS, which Swarm's routing mesh and virtual IPs
/// are built on.
pub fn kernel_has_ipvs() -> bool {
    std::path::Path::new("/proc/net/ip_vs").exists()
}
