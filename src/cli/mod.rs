//! The `shoal` command line: one clap derive tree, one module per verb.
//!
//! Verbs are siblings in [`Command`]; a new one (up, apply, get, scale, ...)
//! adds a variant and a module with its `Args` struct and `run`. Everything
//! here returns `anyhow::Result`: this is the binary's edge, where library
//! errors become messages for a person.

pub mod validate;

use std::io::{Read, Write};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// A container orchestrator with no master.
#[derive(Debug, Parser)]
#[command(name = "shoal", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Parse and check manifests without a running peer; print them normalized.
    Validate(validate::ValidateArgs),
}

/// How a command prints objects (`-o`), as kubectl does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum OutputFormat {
    #[default]
    Yaml,
    Json,
}

/// Standard streams, passed in so commands can be driven from tests.
#[derive(Debug)]
pub struct Io<'a, R: Read, O: Write, E: Write> {
    pub stdin: &'a mut R,
    pub stdout: &'a mut O,
    pub stderr: &'a mut E,
}

/// Runs `cli` with the process's own streams; the exit code tells success.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let (mut stdin, mut stdout, mut stderr) = (
        std::io::stdin().lock(),
        std::io::stdout().lock(),
        std::io::stderr().lock(),
    );
    let mut io = Io {
        stdin: &mut stdin,
        stdout: &mut stdout,
        stderr: &mut stderr,
    };
    let ok = match cli.command {
        Command::Validate(args) => validate::run(&args, &mut io)?,
    };
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
