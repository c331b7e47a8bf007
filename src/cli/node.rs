//! Node lifecycle verbs: `cordon`, `uncordon`, `drain`, `node delete`.
//!
//! `drain NODE` cordons the node, then watches it empty: placement moves
//! each of its replicas to another node, which starts it, and only once the
//! new copy runs (and is ready, for pods with a probe) does the drained
//! node stop its own (make-before-break). The command returns when the
//! node runs nothing, printing what is left as it shrinks.

use std::io::Write;
use std::time::Duration;

use clap::{Args, Subcommand};
use reqwest::Method;

use super::client::{self, AckArgs, Client, ClientArgs, segment};
use super::rolling_update::parse_duration;
use crate::shell::api::models::{CommandResponse, NodeDetail};

/// How often `drain` looks at the node.
const POLL_EVERY: Duration = Duration::from_millis(500);

/// One node, by its name (or its 16-digit id).
#[derive(Debug, Args)]
pub struct NodeTarget {
    /// The node's name, as `shoal get nodes` shows it, or its id.
    pub node: String,
    #[command(flatten)]
    pub ack: AckArgs,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct DrainArgs {
    #[command(flatten)]
    pub target: NodeTarget,
    /// Longest wait for the node to empty (`90s`, `5m`).
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    pub timeout: Duration,
}

#[derive(Debug, Args)]
pub struct NodeArgs {
    #[command(subcommand)]
    pub command: NodeCommand,
}

#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    /// Forget a node that will not come back: it leaves `get nodes`, and
    /// its pods' containers left on other engines are stopped. Refused
    /// while it is alive (drain it and stop its peer first).
    Delete(NodeTarget),
}

/// `cordon` (`on`) or `uncordon`.
pub fn cordon(args: &NodeTarget, on: bool, out: &mut impl Write) -> anyhow::Result<bool> {
    let client = Client::new(&args.client)?;
    let response = client::block_on(set_cordon(&client, args, on))??;
    writeln!(out, "node/{} {}", response.name, response.outcome)?;
    Ok(true)
}

async fn set_cordon(
    client: &Client,
    args: &NodeTarget,
    on: bool,
) -> anyhow::Result<CommandResponse> {
    let verb = if on { "cordon" } else { "uncordon" };
    let path = format!("/nodes/{}/{verb}{}", segment(&args.node), args.ack.query());
    client.send_json(Method::POST, &path, &()).await
}

pub fn delete(args: &NodeTarget, out: &mut impl Write) -> anyhow::Result<bool> {
    let client = Client::new(&args.client)?;
    let path = format!("/nodes/{}{}", segment(&args.node), args.ack.query());
    let response: CommandResponse = client::block_on(client.delete(&path))??;
    writeln!(out, "node/{} {}", response.name, response.outcome)?;
    Ok(true)
}

pub fn drain(args: &DrainArgs, out: &mut impl Write) -> anyhow::Result<bool> {
    let client = Client::new(&args.target.client)?;
    client::block_on(drain_node(&client, args, out))??;
    Ok(true)
}

async fn drain_node(client: &Client, args: &DrainArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let target = &args.target;
    let response = set_cordon(client, target, true).await?;
    writeln!(out, "node/{} cordoned", response.name)?;
    out.flush()?;
    let path = format!("/nodes/{}", segment(&target.node));
    let deadline = tokio::time::Instant::now() + args.timeout;
    let mut last: Option<Vec<String>> = None;
    loop {
        let node: NodeDetail = client.get(&path).await?;
        if !matches!(node.node.state.as_str(), "Alive" | "Suspect") {
            writeln!(
                out,
                "node/{} is {}: its replicas are replaced elsewhere like any lost node's",
                target.node,
                node.node.state.to_lowercase()
            )?;
            return Ok(());
        }
        let left: Vec<String> = node.pod_list.iter().map(|p| p.name.clone()).collect();
        if left.is_empty() {
            writeln!(out, "node/{} drained", target.node)?;
            return Ok(());
        }
        if last.as_ref() != Some(&left) {
            writeln!(
                out,
                "waiting for {} pod{} to move: {}",
                left.len(),
                if left.len() == 1 { "" } else { "s" },
                left.join(", ")
            )?;
            out.flush()?;
            last = Some(left.clone());
        }
        if tokio::time::Instant::now() >= deadline {
            anyhow::bail!(
                "node/{} still runs {} after {:?}: {}; a pod stays until its replacement runs \
                 elsewhere (see `shoal get pods -o wide` and `shoal describe rc`); the node \
                 stays cordoned",
                target.node,
                left.len(),
                args.timeout,
                left.join(", ")
            );
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
}
