//! `shoal describe rc|pod|node|svc NAME`: everything known about one object, as
//! `Key: value` lines, with its pods and problems.

use std::io::Write;

use clap::Args;

use super::client::{self, Client, ClientArgs, segment};
use super::get::{Kind, pod_table};
use super::{human, table};
use crate::shell::api::models::{NodeDetail, PodJson, RcDetail, ServiceDetail};

#[derive(Debug, Args)]
pub struct DescribeArgs {
    /// rc, pod, node or svc.
    #[arg(value_name = "KIND")]
    pub kind: String,
    pub name: String,
    #[command(flatten)]
    pub client: ClientArgs,
}

pub fn run(args: &DescribeArgs, out: &mut impl Write) -> anyhow::Result<bool> {
    let kind = Kind::parse(&args.kind)?;
    let client = Client::new(&args.client)?;
    let path = format!("{}/{}", kind.path(), segment(&args.name));
    let short = match kind {
        Kind::Rc => {
            rc(&client::block_on(client.get::<RcDetail>(&path))??, out)?;
            "rc"
        }
        Kind::Pod => {
            pod(&client::block_on(client.get::<PodJson>(&path))??, out)?;
            "pod"
        }
        Kind::Node => {
            node(&client::block_on(client.get::<NodeDetail>(&path))??, out)?;
            "node"
        }
        Kind::Service => {
            service(&client::block_on(client.get::<ServiceDetail>(&path))??, out)?;
            "svc"
        }
        Kind::Image => anyhow::bail!(
            "describe does not show images; `shoal get images -o wide` lists which nodes hold each"
        ),
        Kind::Event => anyhow::bail!(
            "describe does not show events; `shoal get events --for KIND/NAME` lists an object's"
        ),
    };
    let target = format!("{short}/{}", args.name);
    client::block_on(super::events::describe_section(&client, &target, out))??;
    out.flush()?;
    Ok(true)
}

fn rc(d: &RcDetail, out: &mut impl Write) -> std::io::Result<()> {
    let now = human::now_ms();
    writeln!(out, "Name:           {}", d.rc.name)?;
    writeln!(
        out,
        "Created:        {}",
        human::local_time(d.rc.created_ms, now)
    )?;
    writeln!(out, "Selector:       {}", table::labels(&d.rc.selector))?;
    writeln!(out, "Images:         {}", d.images.join(", "))?;
    writeln!(
        out,
        "Template:       {} (revision {}{})",
        d.template_hash,
        d.revision,
        if d.paused { ", rollout paused" } else { "" }
    )?;
    writeln!(
        out,
        "Replicas:       {} desired | {} running | {} ready | {} updated and ready",
        d.rc.replicas, d.rc.running, d.rc.ready, d.updated_ready
    )?;
    if let Some(why) = &d.rollout_stopped {
        writeln!(out, "Rollout:        {why}")?;
    }
    if d.unplaced.is_empty() {
        writeln!(out, "Unplaced:       <none>")?;
    } else {
        writeln!(out, "Unplaced:")?;
        for u in &d.unplaced {
            writeln!(out, "  {}: {}", u.pod, u.reason)?;
        }
    }
    if d.history.is_empty() {
        writeln!(out, "History:        <none>")?;
    } else {
        writeln!(out, "History (newest first):")?;
        let mut t = table::Table::new(&["TEMPLATE", "WRITTEN", "REPLACED", "IMAGES"]);
        for rev in &d.history {
            t.row(vec![
                rev.template_hash.clone(),
                human::local_time(rev.written_at_ms, now),
                human::local_time(rev.replaced_at_ms, now),
                rev.images.join(", "),
            ]);
        }
        indented(&t, out)?;
    }
    writeln!(out, "Pods:")?;
    if d.pods.is_empty() {
        writeln!(out, "  <none>")
    } else {
        let mut table = Vec::new();
        pod_table(&d.pods, false, &mut table)?;
        for line in String::from_utf8_lossy(&table).lines() {
            writeln!(out, "  {line}")?;
        }
        Ok(())
    }
}

fn pod(p: &PodJson, out: &mut impl Write) -> std::io::Result<()> {
    writeln!(out, "Name:           {}", p.name)?;
    writeln!(out, "RC:             {}", p.rc)?;
    writeln!(out, "Node:           {} ({})", p.node, p.ip)?;
    writeln!(out, "Image:          {}", p.image)?;
    writeln!(out, "Status:         {}", p.phase)?;
    // kubectl's words: `True`/`False`, with ready containers / containers.
    writeln!(
        out,
        "Ready:          {} ({})",
        if p.ready { "True" } else { "False" },
        p.ready_column()
    )?;
    writeln!(out, "Restarts:       {}", p.restarts)?;
    writeln!(
        out,
        "Template:       {}{}",
        p.template_hash,
        if p.current {
            ""
        } else {
            " (not the RC's current template)"
        }
    )?;
    let ports: Vec<String> = p.ports.iter().map(ToString::to_string).collect();
    writeln!(
        out,
        "Ports:          {}",
        if ports.is_empty() {
            "<none>".to_owned()
        } else {
            ports.join(", ")
        }
    )?;
    if let Some(what) = &p.preparing {
        writeln!(out, "Preparing:      {what}")?;
    }
    writeln!(
        out,
        "Last error:     {}",
        p.last_error.as_deref().unwrap_or("<none>")
    )
}

fn node(d: &NodeDetail, out: &mut impl Write) -> std::io::Result<()> {
    let n = &d.node;
    writeln!(out, "Name:           {}", n.name)?;
    writeln!(out, "ID:             {}", n.id)?;
    writeln!(out, "Address:        {} (API {})", n.address, n.api_address)?;
    writeln!(out, "Status:         {}", n.state)?;
    writeln!(
        out,
        "Started:        {}",
        human::local_time(n.started_ms, human::now_ms())
    )?;
    writeln!(
        out,
        "Runtime:        {}",
        match (n.runtime_word(), &d.runtime_error) {
            ("NotReady", Some(e)) => format!("NotReady: {e}"),
            ("Unknown", _) => format!("Unknown (node is {}: its report is not current)", n.state),
            (word, _) => word.to_owned(),
        }
    )?;
    writeln!(out, "Labels:         {}", table::labels(&n.labels))?;
    writeln!(
        out,
        "Capacity:       cpu {}, memory {}",
        d.capacity_cpu,
        human::memory_quantity(&d.capacity_memory)
    )?;
    writeln!(
        out,
        "Allocatable:    cpu {}, memory {}",
        n.cpu,
        human::memory_quantity(&n.memory)
    )?;
    writeln!(out, "Version:        {}", d.version)?;
    writeln!(out, "Pods:           {}", n.pods)?;
    if !d.pod_list.is_empty() {
        let mut table = Vec::new();
        pod_table(&d.pod_list, false, &mut table)?;
        for line in String::from_utf8_lossy(&table).lines() {
            writeln!(out, "  {line}")?;
        }
    }
    Ok(())
}

fn service(d: &ServiceDetail, out: &mut impl Write) -> std::io::Result<()> {
    let s = &d.service;
    writeln!(out, "Name:           {}", s.name)?;
    writeln!(out, "Type:           {}", s.service_type)?;
    writeln!(out, "Selector:       {}", table::labels(&s.selector))?;
    if let Some(version) = &s.proxy_protocol {
        writeln!(
            out,
            "PROXY protocol: {version} (endpoints get the client's address first)"
        )?;
    }
    writeln!(
        out,
        "Created:        {}",
        human::local_time(s.created_ms, human::now_ms())
    )?;
    for p in &s.ports {
        let name = p.name.as_deref().unwrap_or("<unset>");
        writeln!(
            out,
            "Port:           {name}  {}  -> target {}",
            p, p.target_port
        )?;
    }
    for conflict in &s.conflicts {
        writeln!(out, "Conflict:       {conflict}")?;
    }
    for problem in &d.listener_problems {
        writeln!(out, "Not listening:  {problem}")?;
    }
    writeln!(
        out,
        "Endpoints:      {} ready / {} total",
        s.endpoints_ready, s.endpoints_total
    )?;
    if d.endpoints.is_empty() {
        return writeln!(out, "  selector matches no pods");
    }
    let mut t = table::Table::new(&["POD", "NODE", "ADDRESS", "READY"]);
    for e in &d.endpoints {
        let address = if e.addresses.is_empty() {
            "<none>".to_owned()
        } else {
            e.addresses.join(",")
        };
        t.row(vec![
            e.pod.clone(),
            e.node.clone(),
            address,
            e.ready.to_string(),
        ]);
    }
    indented(&t, out)
}

/// The table, two spaces in, as a section of `describe`.
fn indented(t: &table::Table, out: &mut impl Write) -> std::io::Result<()> {
    let mut text = Vec::new();
    t.write(&mut text)?;
    for line in String::from_utf8_lossy(&text).lines() {
        writeln!(out, "  {line}")?;
    }
    Ok(())
}
