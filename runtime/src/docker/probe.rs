//! Readiness: the template's readinessProbe, run periodically against the
//! running pod, reported as `Ready(bool)` only when the answer changes.
//!
//! httpGet and tcpSocket go to the pod's published host port for that
//! container port (or the container's own address when the port is not
//! published); exec runs in the container through the engine. A pod without
//! any probe is ready as soon as it runs. Semantics follow Kubernetes: not
//! ready until the first success, unready after `failureThreshold`
//! consecutive failures. `Exited`/`Removed` imply unready; no separate
//! `Ready(false)` is sent for them.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bollard::exec::StartExecResults;
use bollard::models::ExecConfig;
use futures_util::StreamExt;
use shoal_crdt_state::pod::PublishedPort;
use shoal_crdt_state::spec::{PodTemplate, Probe, ProbeAction, Protocol};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::Inner;
use super::naming::PodKey;
use crate::vocabulary::PodEvent;

/// One container's probe and its running tally.
struct ProbeState {
    container_id: String,
    probe: Probe,
    ok: bool,
    failures: u32,
}

impl Inner {
    /// Runs for the life of a running pod; aborted when the pod stops or dies.
    pub(crate) async fn probe_loop(
        self: Arc<Self>,
        key: PodKey,
        template: PodTemplate,
        ids: Vec<String>,
        ports: Vec<PublishedPort>,
    ) {
        let mut probes: Vec<ProbeState> = template
            .containers
            .iter()
            .zip(&ids)
            .filter_map(|(spec, id)| {
                spec.readiness_probe.clone().map(|probe| ProbeState {
                    container_id: id.clone(),
                    probe,
                    ok: false,
                    failures: 0,
                })
            })
            .collect();
        if probes.is_empty() {
            self.observe(&key, PodEvent::Ready(true)).await;
            return;
        }
        let period = probes
            .iter()
            .map(|p| secs_or(p.probe.period_secs, 10))
            .min()
            .unwrap_or(Duration::from_secs(10));
        let delay = probes
            .iter()
            .map(|p| Duration::from_secs(u64::from(p.probe.initial_delay_secs)))
            .min()
            .unwrap_or_default();
        tokio::time::sleep(delay).await;
        let container_ip = self.container_ip(&ids[0]).await;
        let mut reported = false;
        let mut ticker = tokio::time::interval(period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            for p in &mut probes {
                let timeout = secs_or(p.probe.timeout_secs, 1);
                let success = tokio::time::timeout(
                    timeout,
                    self.probe_once(&p.probe.action, &p.container_id, &ports, container_ip),
                )
                .await
                .unwrap_or(false);
                if success {
                    p.ok = true;
                    p.failures = 0;
                } else {
                    p.failures += 1;
                    if p.failures >= p.probe.failure_threshold.max(1) {
                        p.ok = false;
                    }
                }
            }
            let ready = probes.iter().all(|p| p.ok);
            if ready != reported {
                reported = ready;
                self.observe(&key, PodEvent::Ready(ready)).await;
            }
        }
    }

    async fn probe_once(
        &self,
        action: &ProbeAction,
        container_id: &str,
        ports: &[PublishedPort],
        container_ip: Option<IpAddr>,
    ) -> bool {
        match action {
            ProbeAction::HttpGet { path, port } => match self.target(*port, ports, container_ip) {
                Some(addr) => http_get_ok(addr, path).await,
                None => false,
            },
            ProbeAction::TcpSocket { port } => match self.target(*port, ports, container_ip) {
                Some(addr) => TcpStream::connect(addr).await.is_ok(),
                None => false,
            },
            ProbeAction::Exec { command } => self.exec_ok(container_id, command).await,
        }
    }

    /// Where a probe of `container_port` connects: the published host port
    /// on our publish address (loopback when publishing on all addresses),
    /// else the container's own address.
    fn target(
        &self,
        container_port: u16,
        ports: &[PublishedPort],
        container_ip: Option<IpAddr>,
    ) -> Option<SocketAddr> {
        let published = ports
            .iter()
            .find(|p| p.container_port == container_port && p.protocol == Protocol::Tcp);
        match published {
            Some(p) => {
                let ip = if self.publish_ip.is_unspecified() {
                    IpAddr::V4(Ipv4Addr::LOCALHOST)
                } else {
                    self.publish_ip
                };
                Some(SocketAddr::new(ip, p.host_port))
            }
            None => container_ip.map(|ip| SocketAddr::new(ip, container_port)),
        }
    }

    async fn container_ip(&self, id: &str) -> Option<IpAddr> {
        let inspect = self.docker().ok()?.inspect_container(id, None).await.ok()?;
        let networks = inspect.network_settings?.networks?;
        networks
            .values()
            .filter_map(|n| n.ip_address.as_deref())
            .find_map(|ip| ip.parse().ok())
    }

    async fn exec_ok(&self, container_id: &str, command: &[String]) -> bool {
        let config = ExecConfig {
            cmd: Some(command.to_vec()),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            ..Default::default()
        };
        let Ok(docker) = self.docker() else {
            return false;
        };
        let Ok(exec) = docker.create_exec(container_id, config).await else {
            return false;
        };
        if let Ok(StartExecResults::Attached { mut output, .. }) =
            docker.start_exec(&exec.id, None).await
        {
            while output.next().await.is_some() {}
        }
        matches!(
            docker.inspect_exec(&exec.id).await,
            Ok(inspect) if inspect.exit_code == Some(0)
        )
    }
}

/// A 2xx or 3xx answer to `GET path`, as Kubernetes counts success.
async fn http_get_ok(addr: SocketAddr, path: &str) -> bool {
    let Ok(mut stream) = TcpStream::connect(addr).await else {
        return false;
    };
    let path = if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/{path}")
    };
    let request = format!(
        "GET {path} HTTP/1.0\r\nHost: {addr}\r\nUser-Agent: shoal-probe\r\nConnection: close\r\n\r\n"
    );
    if stream.write_all(request.as_bytes()).await.is_err() {
        return false;
    }
    let mut head = [0u8; 64];
    let mut len = 0;
    while len < head.len() {
        match stream.read(&mut head[len..]).await {
            Ok(0) | Err(_) => break,
            Ok(n) => len += n,
        }
        if head[..len].contains(&b'\n') {
            break;
        }
    }
    status_is_success(&head[..len])
}

/// Parses `HTTP/1.x NNN ...` and accepts 200..=399.
fn status_is_success(head: &[u8]) -> bool {
    let line = String::from_utf8_lossy(head);
    line.split_whitespace()
        .nth(1)
        .and_then(|code| code.parse::<u16>().ok())
        .is_some_and(|code| (200..400).contains(&code))
}

fn secs_or(secs: u32, default: u64) -> Duration {
    Duration::from_secs(if secs == 0 { default } else { u64::from(secs) })
}

#[cfg(test)]
mod tests {
    use super::status_is_success;

    #[test]
    fn two_and_three_hundreds_are_ready_others_are_not() {
        assert!(status_is_success(b"HTTP/1.0 200 OK\r\n"));
        assert!(status_is_success(b"HTTP/1.1 302 Found\r\n"));
        assert!(!status_is_success(b"HTTP/1.0 404 Not Found\r\n"));
        assert!(!status_is_success(b"HTTP/1.0 500 Oops\r\n"));
        assert!(!status_is_success(b"garbage"));
        assert!(!status_is_success(b""));
    }
}
