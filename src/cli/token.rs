//! `shoal token create|list|revoke`: scoped API tokens, replicated to every
//! peer (any peer accepts a token created at any other). Only an admin
//! token (the peer's `--api-token`, or one created with `--role admin`)
//! may manage them.
//!
//! `shoal token rotate` is about the *join* token instead (the secret peers
//! join with): see `shell::join_rotation`.

use std::io::Write;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use reqwest::Method;

use super::client::{self, Client, ClientArgs, segment};
use super::rolling_update::parse_duration;
use super::table::Table;
use crate::shell::api::models::{
    CommandResponse, JoinRotateRequest, JoinRotated, TokenCreateRequest, TokenCreated, TokenRow,
};

#[derive(Debug, Args)]
pub struct TokenArgs {
    #[command(subcommand)]
    pub command: TokenCommand,
}

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Role {
    /// Everything.
    Admin,
    /// Reads only (get, describe, logs, events, watch, metrics); writes get 403.
    ReadOnly,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token; its secret is printed once, on stdout (keep it: it
    /// cannot be shown again, only revoked).
    Create {
        #[arg(long, value_enum)]
        role: Role,
        /// Lifetime (`30d`, `12h`); by default the token never expires.
        #[arg(long, value_parser = parse_duration)]
        expires: Option<Duration>,
        /// Its name, for `list` and `revoke` (lowercase letters, digits,
        /// `-`); by default `token-` and 8 random hex digits.
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List tokens: name, role, created, expires, status (never a secret).
    List {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Revoke a token at every peer, for good (its name is not reused).
    Revoke {
        name: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Rotate the *join* token (not an API token): prints the new one once,
    /// on stdout. Members switch to it without restarting; the old one
    /// still admits new peers for `--grace`, then is refused.
    Rotate {
        /// How long the old join token still admits peers (`1h`, `30m`, `3s`).
        #[arg(long, value_parser = parse_duration, default_value = "1h")]
        grace: Duration,
        #[command(flatten)]
        client: ClientArgs,
    },
}

pub fn run(args: &TokenArgs, out: &mut impl Write, err: &mut impl Write) -> anyhow::Result<bool> {
    match &args.command {
        TokenCommand::Create {
            role,
            expires,
            name,
            client,
        } => {
            if expires.is_some_and(|e| e < Duration::from_secs(1)) {
                anyhow::bail!("--expires must be at least 1s");
            }
            let client = Client::new(client)?;
            let request = TokenCreateRequest {
                role: match role {
                    Role::Admin => "admin",
                    Role::ReadOnly => "read-only",
                }
                .to_owned(),
                name: name.clone(),
                expires_in_secs: expires.map(|e| e.as_secs()),
            };
            let created: TokenCreated =
                client::block_on(client.send_json(Method::POST, "/tokens", &request))??;
            writeln!(
                err,
                "token/{} created: role {}, expires {}; the secret below is shown only now",
                created.name,
                created.role,
                created.expires.as_deref().unwrap_or("never")
            )?;
            writeln!(out, "{}", created.secret)?;
        }
        TokenCommand::List { client } => {
            let client = Client::new(client)?;
            let rows: Vec<TokenRow> = client::block_on(client.get("/tokens"))??;
            let mut table = Table::new(&["NAME", "ROLE", "CREATED", "EXPIRES", "STATUS"]);
            for row in rows {
                table.row(vec![
                    row.name,
                    row.role,
                    row.created,
                    row.expires.unwrap_or_else(|| "never".to_owned()),
                    row.status,
                ]);
            }
            table.write(out)?;
        }
        TokenCommand::Rotate { grace, client } => {
            let client = Client::new(client)?;
            let request = JoinRotateRequest {
                grace_secs: grace.as_secs(),
            };
            let rotated: JoinRotated =
                client::block_on(client.send_json(Method::POST, "/tokens/join/rotate", &request))??;
            writeln!(
                err,
                "join token rotated (cluster id {}); the previous one admits new peers until {}; \
                 the token below is shown only now: give it to peers that join from now on",
                rotated.cluster_id, rotated.previous_until
            )?;
            writeln!(out, "{}", rotated.token)?;
        }
        TokenCommand::Revoke { name, client } => {
            let client = Client::new(client)?;
            let path = format!("/tokens/{}", segment(name));
            let response: CommandResponse = client::block_on(client.delete(&path))??;
            writeln!(out, "token/{} {}", response.name, response.outcome)?;
        }
    }
    Ok(true)
}
