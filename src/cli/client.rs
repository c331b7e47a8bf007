//! The CLI's side of the HTTP API: where the peer is, the token, and turning
//! every failure into a sentence (unreachable peer, the API's own message).

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, anyhow};
use clap::Args;
use reqwest::{Method, RequestBuilder, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::secrets::client_api_token;
use super::tls::{Trust, client_config, explain, is_loopback_url};
use crate::shell::api::{ErrorBody, MAX_BODY_BYTES};

/// How much of a non-Shoal error body is shown (a proxy's HTML page can be long).
const FOREIGN_BODY_CHARS: usize = 400;

/// Where the peer's API is; flattened into every client verb.
#[derive(Debug, Clone, Args)]
pub struct ClientArgs {
    /// URL of a peer's HTTP API (any peer answers for the whole cluster).
    #[arg(
        long,
        env = "SHOAL_SERVER",
        default_value = "http://127.0.0.1:7070",
        value_name = "URL"
    )]
    pub server: String,
    /// The peer's API token (its `shoal up --api-token`), when it requires one.
    /// Never the join token: the CLI refuses to send that. Empty means none.
    #[arg(
        long,
        env = "SHOAL_API_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub api_token: Option<String>,
    /// PEM file of the cluster CA that an `https://` --server is verified
    /// against (`shoal ca print` on a member writes it).
    #[arg(long, env = "SHOAL_CA_FILE", value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    /// Accept any certificate from an `https://` --server (first contact,
    /// tests): the connection is encrypted but anyone in between can pose as
    /// the peer and read the API token.
    #[arg(
        long,
        env = "SHOAL_INSECURE_SKIP_TLS_VERIFY",
        action = clap::ArgAction::SetTrue,
        value_parser = clap::builder::FalseyValueParser::new()
    )]
    pub insecure_skip_tls_verify: bool,
    /// The retired spelling, which also named the join token: refused with
    /// directions rather than guessed at.
    #[arg(long = "token", value_name = "TOKEN", hide = true)]
    pub retired_token: Option<String>,
}

/// When a write is answered; flattened into the verbs that write.
#[derive(Debug, Clone, Copy, Default, Args)]
pub struct AckArgs {
    /// Answer only once another live peer has the write on its disk too
    /// (by default the answer comes once it is on this peer's disk).
    #[arg(long)]
    pub replicated: bool,
}

impl AckArgs {
    /// The query string of a write's path.
    pub fn query(&self) -> &'static str {
        if self.replicated {
            "?wait=replicated"
        } else {
            ""
        }
    }
}

/// The API token `args` names (flag or environment), checked as every
/// client verb checks it: never the join token.
pub fn token_of(args: &ClientArgs) -> anyhow::Result<Option<String>> {
    client_api_token(args.api_token.as_deref())
}

/// Runs one verb's async body on a small runtime: only client verbs pay for it.
pub fn block_on<F: Future>(future: F) -> anyhow::Result<F::Output> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    Ok(runtime.block_on(future))
}

/// A refusal by the API: its status and its message, kept apart so a verb
/// can print manifest problems line by line.
#[derive(Debug, thiserror::Error)]
#[error("{}", body.error)]
pub struct ApiRefusal {
    pub body: ErrorBody,
}

/// An HTTP client bound to one peer.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
    ca_file: Option<PathBuf>,
}

impl Client {
    pub fn new(args: &ClientArgs) -> anyhow::Result<Client> {
        if args.retired_token.is_some() {
            anyhow::bail!(
                "--token is no longer accepted by client commands: pass the peer's API token \
                 with --api-token (or SHOAL_API_TOKEN); the join token is never sent to the API"
            );
        }
        let base = args.server.trim_end_matches('/').to_owned();
        if !base.starts_with("http://") && !base.starts_with("https://") {
            anyhow::bail!(
                "--server {base:?} is not a URL; give it as http://HOST:PORT (e.g. http://127.0.0.1:7070)"
            );
        }
        let token = client_api_token(args.api_token.as_deref())?;
        // A peer is addressed directly: proxies from the environment would
        // only get in the way of loopback and LAN addresses.
        let mut http = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(Duration::from_secs(5));
        if base.starts_with("https://") {
            let trust = match (&args.ca_file, args.insecure_skip_tls_verify) {
                (_, true) => Trust::Insecure,
                (Some(path), false) => Trust::CaFile(path),
                (None, false) => anyhow::bail!(
                    "--server {base} speaks TLS and needs the cluster CA to verify it: pass \
                     --ca-file FILE (or SHOAL_CA_FILE), where FILE is what `shoal ca print` \
                     prints on a member; --insecure-skip-tls-verify (or \
                     SHOAL_INSECURE_SKIP_TLS_VERIFY=1) skips the check"
                ),
            };
            http = http.use_preconfigured_tls(client_config(trust)?);
        } else if token.is_some() && !is_loopback_url(&base) {
            anyhow::bail!(
                "refusing to send the API token in clear text to {base}: a peer off loopback \
                 serves HTTPS, so use https://{}",
                base.trim_start_matches("http://")
            );
        }
        let http = http.build().context("building the HTTP client")?;
        Ok(Client {
            http,
            base,
            token,
            ca_file: args.ca_file.clone(),
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let request = self
            .http
            .request(method, format!("{}/api/v1{path}", self.base));
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    /// Sends, and turns a refused connection or an error status into a message.
    pub async fn send(&self, request: RequestBuilder) -> anyhow::Result<Response> {
        let response = request.send().await.map_err(|e| self.transport_error(e))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let text = response.text().await.unwrap_or_default();
        match serde_json::from_str::<ErrorBody>(&text) {
            Ok(body) => Err(ApiRefusal { body }.into()),
            Err(_) => Err(self.foreign_error(status, &text)),
        }
    }

    /// An error answer that is not a Shoal error body (a proxy, another
    /// server): its own text, shortened, so the user sees what it said.
    fn foreign_error(&self, status: reqwest::StatusCode, text: &str) -> anyhow::Error {
        let words = text.split_whitespace().collect::<Vec<_>>().join(" ");
        let mut said: String = words.chars().take(FOREIGN_BODY_CHARS).collect();
        if said.len() < words.len() {
            said.push_str(" ...");
        }
        let said = if said.is_empty() {
            "(no message)".to_owned()
        } else {
            said
        };
        anyhow!(
            "the server at {} answered {status}: {said}\n(not a shoal error body: is --server a \
             shoal peer, or is a proxy in between?)",
            self.base
        )
    }

    fn transport_error(&self, e: reqwest::Error) -> anyhow::Error {
        if let Some(why) = explain(&e, &self.base, self.ca_file.as_deref()) {
            anyhow!(why)
        } else if e.is_connect() {
            anyhow!(
                "cannot reach the shoal peer at {}: is `shoal up` running? (set --server or SHOAL_SERVER)",
                self.base
            )
        } else if e.is_timeout() {
            anyhow!("the shoal peer at {} did not answer in time", self.base)
        } else {
            anyhow!("talking to the shoal peer at {}: {e}", self.base)
        }
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        let response = self.send(self.request(Method::GET, path)).await?;
        self.decode(response).await
    }

    /// A GET whose answer is text (the CA's PEM), at most `limit` bytes.
    pub async fn get_text(&self, path: &str, limit: usize) -> anyhow::Result<String> {
        let response = self.send(self.request(Method::GET, path)).await?;
        let body = response
            .bytes()
            .await
            .map_err(|e| self.transport_error(e))?;
        if body.len() > limit {
            anyhow::bail!(
                "the answer of {}/api/v1{path} is {} bytes, more than the {limit} expected",
                self.base,
                body.len()
            );
        }
        String::from_utf8(body.to_vec())
            .map_err(|_| anyhow!("the answer of {}/api/v1{path} is not text", self.base))
    }

    pub async fn send_json<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: &B,
    ) -> anyhow::Result<T> {
        let response = self.send(self.request(method, path).json(body)).await?;
        self.decode(response).await
    }

    pub async fn delete<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        let response = self.send(self.request(Method::DELETE, path)).await?;
        self.decode(response).await
    }

    /// Posts manifest text as it is (YAML or JSON).
    pub async fn post_text<T: DeserializeOwned>(
        &self,
        path: &str,
        text: String,
    ) -> anyhow::Result<T> {
        let size = text.len();
        let request = self
            .request(Method::POST, path)
            .header(reqwest::header::CONTENT_TYPE, "application/yaml")
            .body(text);
        let response = self.send(request).await.map_err(|e| {
            // A peer that refuses a body cuts it off; when the connection
            // breaks before its answer arrives, say the likely reason.
            if size > MAX_BODY_BYTES && e.downcast_ref::<ApiRefusal>().is_none() {
                e.context(format!(
                    "the manifest is {:.1} MiB and a peer accepts at most {} MiB; split it into several files",
                    size as f64 / (1024.0 * 1024.0),
                    MAX_BODY_BYTES / (1024 * 1024)
                ))
            } else {
                e
            }
        })?;
        self.decode(response).await
    }

    /// Posts a body as it streams (an image archive); no size limit here,
    /// the peer states its own.
    pub async fn post_stream<T: DeserializeOwned>(
        &self,
        path: &str,
        body: reqwest::Body,
    ) -> anyhow::Result<T> {
        let request = self
            .request(Method::POST, path)
            .header(reqwest::header::CONTENT_TYPE, "application/x-tar")
            .body(body);
        let response = self.send(request).await?;
        self.decode(response).await
    }

    /// A streaming GET (logs); the caller reads the body as it comes.
    pub async fn stream(&self, path: &str, query: &[(&str, String)]) -> anyhow::Result<Response> {
        self.send(self.request(Method::GET, path).query(query))
            .await
    }

    async fn decode<T: DeserializeOwned>(&self, response: Response) -> anyhow::Result<T> {
        response.json().await.with_context(|| {
            format!(
                "the answer of {} is not what this shoal version expects; are the CLI and the peer the same version?",
                self.base
            )
        })
    }
}

/// `name` as one URL path segment: anything but unreserved characters is
/// percent-encoded, so a name can never change the route.
pub fn segment(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for byte in name.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}
