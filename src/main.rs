//! The `shoal` binary: parse the command line, run it, turn errors into exit codes.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;
use shoal::cli::{self, Cli};

fn main() -> ExitCode {
    match cli::run(Cli::parse()) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
