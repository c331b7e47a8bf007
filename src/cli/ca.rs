//! `shoal ca print`: the cluster CA certificate (PEM), read from a peer's
//! data dir on its own machine, for clients of an HTTPS API (`--ca-file`,
//! `SHOAL_CA_FILE`, a kubeconfig's certificate authority).

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, Subcommand};

#[derive(Debug, Args)]
pub struct CaArgs {
    #[command(subcommand)]
    pub command: CaCommand,
}

#[derive(Debug, Subcommand)]
pub enum CaCommand {
    /// Print the cluster CA certificate (PEM; public, holds no key), e.g.
    /// `shoal ca print > cluster-ca.pem`, then `--ca-file cluster-ca.pem`.
    Print {
        /// The data dir of a peer of the cluster (as given to `shoal up`).
        #[arg(long, default_value = "./shoal-data")]
        data_dir: PathBuf,
    },
}

pub fn run(args: &CaArgs, out: &mut impl Write) -> anyhow::Result<bool> {
    match &args.command {
        CaCommand::Print { data_dir } => {
            let pem = crate::shell::api_tls::ca_pem_from_data_dir(data_dir)?;
            out.write_all(pem.as_bytes())?;
        }
    }
    Ok(true)
}
