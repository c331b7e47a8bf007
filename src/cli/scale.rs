//! `shoal scale [rc] NAME --replicas N`: change the declared count.

use std::io::Write;

use clap::Args;
use reqwest::Method;

use super::client::{self, AckArgs, Client, ClientArgs, segment};
use super::get::Kind;
use crate::shell::api::models::{CommandResponse, ScaleRequest};

#[derive(Debug, Args)]
pub struct ScaleArgs {
    /// `rc NAME`, or just `NAME`.
    #[arg(value_name = "[rc] NAME", num_args = 1..=2, required = true)]
    pub target: Vec<String>,
    #[arg(long)]
    pub replicas: u32,
    #[command(flatten)]
    pub ack: AckArgs,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// The RC name of `[rc] NAME`; only RCs can be named.
pub fn rc_name(target: &[String]) -> anyhow::Result<&str> {
    match target {
        [name] => Ok(name),
        [kind, name] => match Kind::parse(kind)? {
            Kind::Rc => Ok(name),
            _ => anyhow::bail!("only replication controllers can be changed; use `rc {name}`"),
        },
        _ => anyhow::bail!("give the RC as `rc NAME` or `NAME`"),
    }
}

pub fn run(args: &ScaleArgs, out: &mut impl Write) -> anyhow::Result<bool> {
    let name = rc_name(&args.target)?;
    let client = Client::new(&args.client)?;
    let request = ScaleRequest {
        replicas: args.replicas,
    };
    let path = format!("/rcs/{}/scale{}", segment(name), args.ack.query());
    let response: CommandResponse =
        client::block_on(client.send_json(Method::PUT, &path, &request))??;
    writeln!(
        out,
        "replicationcontroller/{} {}",
        response.name, response.outcome
    )?;
    Ok(true)
}
