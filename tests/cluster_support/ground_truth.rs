//! What the engines of a cluster really run, read from the engines rather
//! than from the peers: ground truth, including copies no peer reports.

use std::process::{Command, Stdio};

/// The engines of one cluster, as `docker` addresses. Cheap to clone, for
/// a watcher thread that does not hold the cluster.
#[derive(Debug, Clone)]
pub struct GroundTruth {
    cluster_id: String,
    /// `None` is the machine's engine (`docker` as the environment sets it);
    /// otherwise the `-H` address of a node engine.
    hosts: Vec<Option<String>>,
}

impl GroundTruth {
    pub fn new(cluster_id: &str, hosts: Vec<Option<String>>) -> GroundTruth {
        GroundTruth {
            cluster_id: cluster_id.to_owned(),
            hosts,
        }
    }

    /// `(replica, node id)` of every running container of `rc` on every
    /// engine, sorted. An engine that is down runs nothing.
    pub fn copies(&self, rc: &str) -> Vec<(String, String)> {
        let mut copies: Vec<(String, String)> = self
            .first_containers(
                rc,
                "{{.Label \"io.shoal.replica\"}} {{.Label \"io.shoal.node\"}}",
            )
            .iter()
            .filter_map(|l| l.split_once(' '))
            .map(|(r, n)| (r.to_owned(), n.to_owned()))
            .collect();
        copies.sort();
        copies
    }

    /// `(replica, node id, image)` of every running pod of `rc` on every
    /// engine, sorted.
    pub fn images(&self, rc: &str) -> Vec<(String, String, String)> {
        let mut rows: Vec<(String, String, String)> = self
            .first_containers(
                rc,
                "{{.Label \"io.shoal.replica\"}} {{.Label \"io.shoal.node\"}} {{.Image}}",
            )
            .iter()
            .filter_map(|l| {
                let mut cols = l.split(' ');
                Some((
                    cols.next()?.to_owned(),
                    cols.next()?.to_owned(),
                    cols.next()?.to_owned(),
                ))
            })
            .collect();
        rows.sort();
        rows
    }

    /// Replica index of every running pod of `rc` on every engine, sorted.
    pub fn pods(&self, rc: &str) -> Vec<String> {
        let mut replicas = self.first_containers(rc, "{{.Label \"io.shoal.replica\"}}");
        replicas.sort();
        replicas
    }

    /// `format` of the running first container of each pod of `rc`.
    fn first_containers(&self, rc: &str, format: &str) -> Vec<String> {
        let filters = [
            format!("label=io.shoal.cluster={}", self.cluster_id),
            format!("label=io.shoal.rc={rc}"),
            "label=io.shoal.container-index=0".to_owned(),
        ];
        self.hosts
            .iter()
            .flat_map(|host| ps(host.as_deref(), &filters, format, false))
            .collect()
    }
}

/// `docker ps` lines (`-a` when `all`) of the containers matching every
/// filter on engine `host`; nothing when the engine does not answer.
pub fn ps(host: Option<&str>, filters: &[String], format: &str, all: bool) -> Vec<String> {
    let mut cmd = Command::new("docker");
    if let Some(host) = host {
        cmd.arg("-H").arg(host);
    }
    cmd.arg("ps");
    if all {
        cmd.arg("-a");
    }
    for f in filters {
        cmd.arg("--filter").arg(f);
    }
    let out = cmd
        .arg("--format")
        .arg(format)
        .stderr(Stdio::null())
        .output()
        .expect("run docker ps");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// `docker rm -f` every container matching all `filters` on the machine's engine.
pub fn remove_containers(filters: &[String]) {
    let ids = ps(None, filters, "{{.ID}}", true);
    if !ids.is_empty() {
        let _ = Command::new("docker")
            .args(["rm", "-f"])
            .args(&ids)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}
