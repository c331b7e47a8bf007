//! `shoal validate -f FILE|-`: read manifests, check everything, print the
//! normalized ReplicationControllers. Needs no running peer.
//!
//! Exit 0 and the normalized spec(s) on stdout (YAML, or JSON with `-o
//! json`), warnings on stderr; or every error on stderr and exit 1.

use std::io::{Read, Write};
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use shoal_crdt_state::manifest::{self, render};

use super::{Io, OutputFormat};

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Manifest file (YAML, multi-document, or JSON); `-` reads standard input.
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    pub file: PathBuf,
    /// Output format of the normalized manifests.
    #[arg(short = 'o', long = "output", value_enum, default_value_t)]
    pub output: OutputFormat,
}

/// Returns whether the manifests are valid.
pub fn run<R: Read, O: Write, E: Write>(
    args: &ValidateArgs,
    io: &mut Io<'_, R, O, E>,
) -> anyhow::Result<bool> {
    let source = if args.file.as_os_str() == "-" {
        "standard input".to_owned()
    } else {
        args.file.display().to_string()
    };
    let text = read_input(&args.file, io.stdin).with_context(|| format!("reading {source}"))?;
    match manifest::parse_manifests(&text) {
        Ok(parsed) => {
            for warning in &parsed.warnings {
                writeln!(io.stderr, "{warning}")?;
            }
            let rendered = match args.output {
                OutputFormat::Yaml => render::manifests_to_yaml(&parsed.specs, &parsed.services)
                    .context("writing the normalized manifests as YAML")?,
                OutputFormat::Json => {
                    let mut json = render::manifests_to_json(&parsed.specs, &parsed.services)
                        .context("writing the normalized manifests as JSON")?;
                    json.push('\n');
                    json
                }
            };
            io.stdout.write_all(rendered.as_bytes())?;
            io.stdout.flush()?;
            Ok(true)
        }
        Err(err) => {
            for warning in &err.warnings {
                writeln!(io.stderr, "{warning}")?;
            }
            writeln!(io.stderr, "{err}")?;
            let n = err.problems.len();
            let plural = if n == 1 { "" } else { "s" };
            writeln!(
                io.stderr,
                "{source}: {n} error{plural}; nothing is valid until all are fixed"
            )?;
            Ok(false)
        }
    }
}

/// Reads the whole manifest: a file, or standard input for `-`.
fn read_input<R: Read>(file: &PathBuf, stdin: &mut R) -> anyhow::Result<String> {
    let mut text = String::new();
    if file.as_os_str() == "-" {
        stdin.read_to_string(&mut text)?;
    } else {
        text = std::fs::read_to_string(file)?;
    }
    Ok(text)
}
