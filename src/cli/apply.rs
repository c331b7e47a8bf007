//! `shoal apply -f FILE|-`: send manifests to a peer; it creates or updates
//! every RC and service in them (or none, if any is invalid) and the
//! cluster follows.

use std::io::{Read, Write};
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use super::Io;
use super::client::{self, AckArgs, ApiRefusal, Client, ClientArgs};
use crate::shell::api::models::ApplyResponse;

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// Manifest file (YAML, multi-document, or JSON); `-` reads standard input.
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    pub file: PathBuf,
    #[command(flatten)]
    pub ack: AckArgs,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Returns whether everything was applied.
pub fn run<R: Read, O: Write, E: Write>(
    args: &ApplyArgs,
    io: &mut Io<'_, R, O, E>,
) -> anyhow::Result<bool> {
    let text = read_manifest(&args.file, io.stdin)?;
    let client = Client::new(&args.client)?;
    let result = client::block_on(
        client.post_text::<ApplyResponse>(&format!("/rcs{}", args.ack.query()), text),
    )?;
    match result {
        Ok(response) => {
            for warning in &response.warnings {
                writeln!(io.stderr, "{warning}")?;
            }
            for applied in &response.applied {
                writeln!(
                    io.stdout,
                    "{}/{} {}",
                    applied.kind, applied.name, applied.outcome
                )?;
            }
            Ok(true)
        }
        Err(err) => print_manifest_refusal(err, io.stderr),
    }
}

/// A manifest the peer rejected: its problems one per line (they carry
/// their own `error:` prefix) and `Ok(false)`; any other error goes up.
pub fn print_manifest_refusal(err: anyhow::Error, stderr: &mut impl Write) -> anyhow::Result<bool> {
    match err.downcast::<ApiRefusal>() {
        Ok(refusal) if !refusal.body.problems.is_empty() => {
            for warning in &refusal.body.warnings {
                writeln!(stderr, "{warning}")?;
            }
            writeln!(stderr, "{}", refusal.body.error)?;
            Ok(false)
        }
        Ok(refusal) => Err(refusal.into()),
        Err(other) => Err(other),
    }
}

/// The whole manifest: a file, or standard input for `-`.
pub fn read_manifest<R: Read>(file: &PathBuf, stdin: &mut R) -> anyhow::Result<String> {
    let mut text = String::new();
    if file.as_os_str() == "-" {
        stdin
            .read_to_string(&mut text)
            .context("reading the manifest from standard input")?;
    } else {
        text =
            std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    }
    Ok(text)
}
