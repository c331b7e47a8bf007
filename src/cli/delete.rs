//! `shoal delete rc NAME`, `shoal delete svc NAME` or `shoal delete -f
//! FILE`: remove RCs (their pods are stopped by the nodes that run them)
//! and services.

use std::io::{Read, Write};
use std::path::PathBuf;

use clap::Args;
use shoal_crdt_state::manifest;

use super::Io;
use super::apply::read_manifest;
use super::client::{self, AckArgs, ApiRefusal, Client, ClientArgs, segment};
use super::get::Kind;
use super::node::NodeTarget;
use super::scale::rc_name;
use crate::shell::api::models::CommandResponse;

#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// `rc NAME` (or `NAME`), `svc NAME`, `node NAME`; or none with `-f`.
    #[arg(value_name = "[rc] NAME", num_args = 0..=2)]
    pub target: Vec<String>,
    /// Delete every RC and service this manifest declares; `-` reads standard input.
    #[arg(
        short = 'f',
        long = "filename",
        value_name = "FILE",
        conflicts_with = "target"
    )]
    pub file: Option<PathBuf>,
    #[command(flatten)]
    pub ack: AckArgs,
    #[command(flatten)]
    pub client: ClientArgs,
}

pub fn run<R: Read, O: Write, E: Write>(
    args: &DeleteArgs,
    io: &mut Io<'_, R, O, E>,
) -> anyhow::Result<bool> {
    let names: Vec<(Kind, String)> = match &args.file {
        Some(file) => {
            let text = read_manifest(file, io.stdin)?;
            match manifest::parse_manifests(&text) {
                Ok(parsed) => {
                    let rcs = parsed.specs.into_iter().map(|s| (Kind::Rc, s.name));
                    let services = parsed.services.into_iter().map(|s| (Kind::Service, s.name));
                    rcs.chain(services).collect()
                }
                Err(err) => {
                    writeln!(io.stderr, "{err}")?;
                    writeln!(
                        io.stderr,
                        "{}: cannot tell what to delete; nothing was deleted",
                        file.display()
                    )?;
                    return Ok(false);
                }
            }
        }
        None if args.target.is_empty() => {
            anyhow::bail!(
                "say what to delete: `shoal delete rc NAME`, `shoal delete svc NAME` or `shoal delete -f FILE`"
            )
        }
        None => {
            if let [kind, name] = args.target.as_slice()
                && Kind::parse(kind)? == Kind::Node
            {
                let target = NodeTarget {
                    node: name.clone(),
                    ack: args.ack,
                    client: args.client.clone(),
                };
                return super::node::delete(&target, io.stdout);
            }
            if let [kind, name] = args.target.as_slice()
                && Kind::parse(kind)? == Kind::Service
            {
                vec![(Kind::Service, name.clone())]
            } else {
                vec![(Kind::Rc, rc_name(&args.target)?.to_owned())]
            }
        }
    };
    let client = Client::new(&args.client)?;
    let mut ok = true;
    for (kind, name) in names {
        let path = format!("{}/{}{}", kind.path(), segment(&name), args.ack.query());
        let word = match kind {
            Kind::Service => "service",
            _ => "replicationcontroller",
        };
        match client::block_on(client.delete::<CommandResponse>(&path))? {
            Ok(response) => writeln!(io.stdout, "{word}/{} {}", response.name, response.outcome)?,
            Err(err) if args.file.is_some() && err.is::<ApiRefusal>() => {
                // Keep going through the file, as kubectl does; report each miss.
                writeln!(io.stderr, "error: {err:#}")?;
                ok = false;
            }
            Err(err) => return Err(err),
        }
    }
    Ok(ok)
}
