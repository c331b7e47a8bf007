//! `shoal get nodes|rc|pods|svc|images|events [NAME] [-o json|yaml|wide]`: tables like kubectl's.

use std::io::Write;

use anyhow::Context;
use clap::{Args, ValueEnum};
use serde::Serialize;

use super::client::{self, Client, ClientArgs, segment};
use super::human;
use super::table::{self, Table};
use crate::shell::api::models::{
    ImageJson, NodeDetail, NodeJson, PodJson, RcDetail, RcJson, ServiceDetail, ServiceJson,
};

/// The kinds of objects, with kubectl's spellings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Node,
    Rc,
    Pod,
    Service,
    Image,
    Event,
}

impl Kind {
    pub fn parse(word: &str) -> anyhow::Result<Kind> {
        match word.to_ascii_lowercase().as_str() {
            "node" | "nodes" | "no" => Ok(Kind::Node),
            "rc" | "rcs" | "replicationcontroller" | "replicationcontrollers" => Ok(Kind::Rc),
            "pod" | "pods" | "po" => Ok(Kind::Pod),
            "svc" | "service" | "services" => Ok(Kind::Service),
            "image" | "images" => Ok(Kind::Image),
            "event" | "events" | "ev" => Ok(Kind::Event),
            _ => {
                anyhow::bail!(
                    "unknown resource type {word:?}; use nodes, rc, pods, svc, images or events"
                )
            }
        }
    }

    /// The API collection: `/nodes`, `/rcs`, `/pods`.
    pub fn path(self) -> &'static str {
        match self {
            Kind::Node => "/nodes",
            Kind::Rc => "/rcs",
            Kind::Pod => "/pods",
            Kind::Service => "/services",
            Kind::Image => "/images",
            Kind::Event => "/events",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GetFormat {
    Json,
    Yaml,
    /// The table with more columns.
    Wide,
}

#[derive(Debug, Args)]
pub struct GetArgs {
    /// nodes, rc, pods, svc, images or events.
    #[arg(value_name = "KIND")]
    pub kind: String,
    /// Show only this one.
    pub name: Option<String>,
    #[arg(short = 'o', long = "output", value_enum)]
    pub output: Option<GetFormat>,
    /// Events: keep printing new and repeated ones.
    #[arg(short = 'w', long)]
    pub watch: bool,
    /// Events about one object only: rc/NAME (with its pods), pod/NAME, node/NAME.
    #[arg(long = "for", value_name = "KIND/NAME")]
    pub for_object: Option<String>,
    #[command(flatten)]
    pub client: ClientArgs,
}

pub fn run(args: &GetArgs, out: &mut impl Write) -> anyhow::Result<bool> {
    let kind = Kind::parse(&args.kind)?;
    let client = Client::new(&args.client)?;
    if kind == Kind::Event {
        anyhow::ensure!(
            args.name.is_none(),
            "get events takes no name; use --for rc/NAME, pod/NAME or node/NAME"
        );
        let target = args.for_object.as_deref();
        client::block_on(super::events::get(
            &client,
            target,
            args.output,
            args.watch,
            out,
        ))??;
        return Ok(true);
    }
    anyhow::ensure!(
        !args.watch && args.for_object.is_none(),
        "-w and --for are for `get events`"
    );
    client::block_on(get(&client, kind, args, out))??;
    Ok(true)
}

async fn get(
    client: &Client,
    kind: Kind,
    args: &GetArgs,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let wide = args.output == Some(GetFormat::Wide);
    let one = args
        .name
        .as_deref()
        .map(|n| format!("{}/{}", kind.path(), segment(n)));
    match (kind, &one) {
        (Kind::Rc, None) => {
            let rows: Vec<RcJson> = client.get(kind.path()).await?;
            emit(args.output, &rows, out, |out| rc_table(&rows, wide, out))
        }
        (Kind::Rc, Some(path)) => {
            let rc: RcDetail = client.get(path).await?;
            emit(args.output, &rc, out, |out| {
                rc_table(std::slice::from_ref(&rc.rc), wide, out)
            })
        }
        (Kind::Node, None) => {
            let rows: Vec<NodeJson> = client.get(kind.path()).await?;
            emit(args.output, &rows, out, |out| node_table(&rows, wide, out))
        }
        (Kind::Node, Some(path)) => {
            let node: NodeDetail = client.get(path).await?;
            emit(args.output, &node, out, |out| {
                node_table(std::slice::from_ref(&node.node), wide, out)
            })
        }
        (Kind::Pod, None) => {
            let rows: Vec<PodJson> = client.get(kind.path()).await?;
            emit(args.output, &rows, out, |out| pod_table(&rows, wide, out))
        }
        (Kind::Service, None) => {
            let rows: Vec<ServiceJson> = client.get(kind.path()).await?;
            emit(args.output, &rows, out, |out| {
                service_table(&rows, wide, out)
            })
        }
        (Kind::Service, Some(path)) => {
            let svc: ServiceDetail = client.get(path).await?;
            emit(args.output, &svc, out, |out| {
                service_table(std::slice::from_ref(&svc.service), wide, out)
            })
        }
        (Kind::Image, name) => {
            let mut rows: Vec<ImageJson> = client.get(kind.path()).await?;
            if let Some(name) = name.as_ref().and(args.name.as_deref()) {
                rows.retain(|r| r.image == name);
                anyhow::ensure!(!rows.is_empty(), "no RC uses image {name:?}");
            }
            emit(args.output, &rows, out, |out| image_table(&rows, wide, out))
        }
        (Kind::Event, _) => unreachable!("get events is answered by `events::get`"),
        (Kind::Pod, Some(path)) => {
            let pod: PodJson = client.get(path).await?;
            emit(args.output, &pod, out, |out| {
                pod_table(std::slice::from_ref(&pod), wide, out)
            })
        }
    }
}

/// JSON or YAML of the API's own answer, or the table.
fn emit<T: Serialize, W: Write>(
    format: Option<GetFormat>,
    value: &T,
    out: &mut W,
    table: impl FnOnce(&mut W) -> std::io::Result<()>,
) -> anyhow::Result<()> {
    match format {
        Some(GetFormat::Json) => {
            let text = serde_json::to_string_pretty(value).context("writing JSON")?;
            writeln!(out, "{text}")?;
        }
        Some(GetFormat::Yaml) => {
            let text = serde_saphyr::to_string(value).context("writing YAML")?;
            write!(out, "{text}")?;
        }
        None | Some(GetFormat::Wide) => table(out)?,
    }
    out.flush()?;
    Ok(())
}

/// kubectl's columns: NAME DESIRED CURRENT READY AGE; `-o wide` adds the
/// first container's IMAGE and the SELECTOR.
pub fn rc_table(rows: &[RcJson], wide: bool, out: &mut impl Write) -> std::io::Result<()> {
    let mut headers = vec!["NAME", "DESIRED", "CURRENT", "READY", "AGE"];
    if wide {
        headers.extend(["IMAGE", "SELECTOR"]);
    }
    let now = human::now_ms();
    let mut t = Table::new(&headers);
    for rc in rows {
        let mut row = vec![
            rc.name.clone(),
            rc.replicas.to_string(),
            rc.running.to_string(),
            rc.ready.to_string(),
            human::age(rc.created_ms, now),
        ];
        if wide {
            row.extend([rc.image.clone(), table::labels(&rc.selector)]);
        }
        t.row(row);
    }
    t.write(out)
}

/// NAME STATUS, then RUNTIME and AGE (where kubectl has ROLES and AGE), then
/// the pod count and allocatable resources, memory in binary units. RUNTIME
/// is `Unknown` for a node that is not Alive: its last report is not current.
pub fn node_table(rows: &[NodeJson], wide: bool, out: &mut impl Write) -> std::io::Result<()> {
    let mut headers = vec!["NAME", "STATUS", "RUNTIME", "AGE", "PODS", "CPU", "MEMORY"];
    let now = human::now_ms();
    if wide {
        headers.extend(["ADDRESS", "API", "ID", "LABELS"]);
    }
    let mut t = Table::new(&headers);
    for node in rows {
        // kubectl's wording for a cordoned node.
        let status = if node.cordoned {
            format!("{},SchedulingDisabled", node.state)
        } else {
            node.state.clone()
        };
        let mut row = vec![
            node.name.clone(),
            status,
            node.runtime_word().to_owned(),
            human::age(node.started_ms, now),
            node.pods.to_string(),
            node.cpu.clone(),
            human::memory_quantity(&node.memory),
        ];
        if wide {
            row.extend([
                node.address.clone(),
                node.api_address.clone(),
                node.id.clone(),
                table::labels(&node.labels),
            ]);
        }
        t.row(row);
    }
    t.write(out)
}

/// kubectl's NAME READY STATUS RESTARTS AGE, then NODE and PORTS; `-o wide`
/// adds IP, IMAGE and LAST ERROR. AGE counts from when the node started the
/// pod's current template (restarts keep it).
pub fn pod_table(rows: &[PodJson], wide: bool, out: &mut impl Write) -> std::io::Result<()> {
    pod_table_at(rows, wide, human::now_ms(), out)
}

/// [`pod_table`] with AGE counted to `now_ms`.
pub fn pod_table_at(
    rows: &[PodJson],
    wide: bool,
    now_ms: u64,
    out: &mut impl Write,
) -> std::io::Result<()> {
    let mut headers = vec![
        "NAME", "READY", "STATUS", "RESTARTS", "AGE", "NODE", "PORTS",
    ];
    if wide {
        headers.extend(["IP", "IMAGE", "LAST ERROR"]);
    }
    let mut t = Table::new(&headers);
    for pod in rows {
        let ports = if pod.ports.is_empty() {
            "<none>".to_owned()
        } else {
            pod.ports
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(",")
        };
        let mut row = vec![
            pod.name.clone(),
            pod.ready_column(),
            // As kubectl shows a waiting reason (`ContainerCreating`).
            match (&pod.preparing, pod.phase.as_str()) {
                (Some(what), "Pending") => what.clone(),
                _ => pod.phase.clone(),
            },
            pod.restarts.to_string(),
            human::age(pod.started_ms.unwrap_or(0), now_ms),
            pod.node.clone(),
            ports,
        ];
        if wide {
            row.extend([
                pod.ip.clone(),
                pod.image.clone(),
                pod.last_error
                    .clone()
                    .unwrap_or_else(|| "<none>".to_owned()),
            ]);
        }
        t.row(row);
    }
    t.write(out)
}

pub fn service_table(
    rows: &[ServiceJson],
    wide: bool,
    out: &mut impl Write,
) -> std::io::Result<()> {
    // kubectl's NAME TYPE ... PORT(S) AGE; no cluster IP here, the
    // selector and endpoint counts say more.
    let mut headers = vec!["NAME", "TYPE", "SELECTOR", "PORT(S)", "ENDPOINTS", "AGE"];
    if wide {
        headers.extend(["TARGETS", "CONFLICTS"]);
    }
    let now = human::now_ms();
    let mut t = Table::new(&headers);
    for svc in rows {
        let ports: Vec<String> = svc.ports.iter().map(ToString::to_string).collect();
        let mut row = vec![
            svc.name.clone(),
            svc.service_type.clone(),
            table::labels(&svc.selector),
            if ports.is_empty() {
                "<none>".to_owned()
            } else {
                ports.join(",")
            },
            format!("{}/{}", svc.endpoints_ready, svc.endpoints_total),
            human::age(svc.created_ms, now),
        ];
        if wide {
            let targets: Vec<String> = svc.ports.iter().map(|p| p.target_port.clone()).collect();
            row.push(targets.join(","));
            row.push(if svc.conflicts.is_empty() {
                "<none>".to_owned()
            } else {
                svc.conflicts.join("; ")
            });
        }
        t.row(row);
    }
    t.write(out)
}

/// IMAGE, ID (shortened; `mixed` when nodes hold different ones), NODES
/// (holders of the live ones), TRANSFERS (in flight: this peer's live,
/// other nodes' as their pods last reported); `-o wide` adds the names of
/// the nodes that hold it and lack it.
pub fn image_table(rows: &[ImageJson], wide: bool, out: &mut impl Write) -> std::io::Result<()> {
    let mut header = vec!["IMAGE", "ID", "HOLDERS", "TRANSFERS"];
    if wide {
        header.extend(["NODES", "MISSING"]);
    }
    let mut t = Table::new(&header);
    for row in rows {
        let mut ids: Vec<&String> = row.holders.values().collect();
        ids.sort();
        ids.dedup();
        let id = match ids.as_slice() {
            [] => "<none>".to_owned(),
            [one] => short_id(one),
            _ => "mixed".to_owned(),
        };
        let total = row.holders.len() + row.missing.len();
        let mut cells = vec![
            row.image.clone(),
            id,
            format!("{}/{total}", row.holders.len()),
            transfers_cell(row),
        ];
        if wide {
            let names = |v: Vec<&String>| {
                if v.is_empty() {
                    "<none>".to_owned()
                } else {
                    v.into_iter().cloned().collect::<Vec<_>>().join(",")
                }
            };
            cells.push(names(row.holders.keys().collect()));
            cells.push(names(row.missing.iter().collect()));
        }
        t.row(cells);
    }
    t.write(out)
}

/// `node1<-node0 40.1 of 90.2 MB, 44%, 12.3 MB/s; node2<-node0 (3.1 MB, …)`.
fn transfers_cell(row: &ImageJson) -> String {
    let here = row.transfers.iter().map(|t| {
        format!(
            "{}<-{} {}",
            t.node,
            t.from,
            crate::shell::images::transfers::summary(t)
        )
    });
    let elsewhere = row.transferring_elsewhere.iter().map(|(node, what)| {
        let what = what.strip_prefix("ImageTransferring from ").unwrap_or(what);
        format!("{node}<-{what}")
    });
    let all: Vec<String> = here.chain(elsewhere).collect();
    if all.is_empty() {
        "<none>".to_owned()
    } else {
        all.join("; ")
    }
}

/// `sha256:0123456789ab…` → `0123456789ab`, as `docker images` shows IDs.
fn short_id(id: &str) -> String {
    id.strip_prefix("sha256:")
        .unwrap_or(id)
        .chars()
        .take(12)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, phase: &str, started_ms: Option<u64>) -> PodJson {
        PodJson {
            name: name.to_owned(),
            rc: "hello".to_owned(),
            node: "node-a".to_owned(),
            ip: "127.0.0.1".to_owned(),
            image: "hello:1".to_owned(),
            phase: phase.to_owned(),
            ready: phase == "Running",
            containers: 1,
            restarts: 0,
            ports: Vec::new(),
            last_error: None,
            preparing: None,
            template_hash: "0".to_owned(),
            current: true,
            started_ms,
        }
    }

    fn node(name: &str, state: &str, ready: bool, runtime: &str) -> NodeJson {
        NodeJson {
            name: name.to_owned(),
            id: "0000000000000001".to_owned(),
            address: "127.0.0.1:7946".to_owned(),
            api_address: "127.0.0.1:7070".to_owned(),
            state: state.to_owned(),
            cordoned: false,
            ready,
            runtime: runtime.to_owned(),
            pods: 0,
            labels: BTreeMap::new(),
            cpu: "2".to_owned(),
            memory: "4Gi".to_owned(),
            started_ms: 0,
            images: BTreeMap::new(),
        }
    }

    use std::collections::BTreeMap;

    fn lines(out: Vec<u8>) -> Vec<Vec<String>> {
        String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| l.split_whitespace().map(str::to_owned).collect())
            .collect()
    }

    #[test]
    fn pods_show_their_age_in_kubectl_order() {
        let now = 1_800_000_000_000;
        let rows = [
            pod("hello-0", "Running", Some(now - 45_000)),
            pod("hello-1", "Running", Some(now - 3 * 60_000)),
            pod("hello-2", "Running", Some(now - 5 * 3_600_000)),
            pod("hello-3", "Running", Some(now - 5 * 86_400_000)),
            pod("hello-4", "Pending", None),
        ];
        let mut out = Vec::new();
        pod_table_at(&rows, false, now, &mut out).unwrap();
        let table = lines(out);
        assert_eq!(
            table[0],
            [
                "NAME", "READY", "STATUS", "RESTARTS", "AGE", "NODE", "PORTS"
            ]
        );
        let ages: Vec<&str> = table[1..].iter().map(|r| r[4].as_str()).collect();
        assert_eq!(ages, ["45s", "3m", "5h", "5d", "<unknown>"]);
        let ready: Vec<&str> = table[1..].iter().map(|r| r[1].as_str()).collect();
        assert_eq!(ready, ["1/1", "1/1", "1/1", "1/1", "0/1"]);

        let mut out = Vec::new();
        pod_table_at(&rows[..1], true, now, &mut out).unwrap();
        let table = lines(out);
        assert_eq!(
            table[0][..8],
            [
                "NAME", "READY", "STATUS", "RESTARTS", "AGE", "NODE", "PORTS", "IP"
            ]
        );
        assert_eq!(
            table[1][..6],
            ["hello-0", "1/1", "Running", "0", "45s", "node-a"]
        );
    }

    #[test]
    fn ready_counts_every_container_of_the_pod() {
        let two = |ready| PodJson {
            containers: 2,
            ready,
            ..pod("web-0", "Running", None)
        };
        assert_eq!(two(true).ready_column(), "2/2");
        assert_eq!(two(false).ready_column(), "0/2");
    }

    #[test]
    fn a_node_not_alive_shows_its_runtime_unknown() {
        let rows = [
            node("a", "Alive", true, "Ready"),
            node("b", "Alive", false, "NotReady"),
            node("c", "Down", false, "Unknown"),
            node("d", "Suspect", false, "Unknown"),
            // An older peer: no RUNTIME word, `ready` as its node last said.
            node("e", "Down", true, ""),
            node("f", "Alive", true, ""),
        ];
        let mut out = Vec::new();
        node_table(&rows, false, &mut out).unwrap();
        let runtime: Vec<(String, String)> = lines(out)[1..]
            .iter()
            .map(|r| (r[0].clone(), r[2].clone()))
            .collect();
        let want = [
            ("a", "Ready"),
            ("b", "NotReady"),
            ("c", "Unknown"),
            ("d", "Unknown"),
            ("e", "Unknown"),
            ("f", "Ready"),
        ];
        assert_eq!(
            runtime,
            want.map(|(n, r)| (n.to_owned(), r.to_owned())).to_vec()
        );
    }
}
