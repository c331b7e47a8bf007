//! `shoal kubeconfig`: a kubeconfig that points kubectl at the peer this CLI
//! talks to (`--server`), with its API token. Any peer answers for the
//! whole cluster, so one kubeconfig per peer is all a user needs.
//!
//! kubectl (client-go) sends a kubeconfig's token only over TLS: a peer
//! that requires an API token is usable from kubectl once its API serves
//! `https://`; the command says so when asked for a token over `http://`.
//!
//! ```text
//! shoal kubeconfig --server http://10.0.0.5:7070 > ~/.kube/shoal.yaml
//! KUBECONFIG=~/.kube/shoal.yaml kubectl get pods
//! ```

use std::io::Write;
use std::path::PathBuf;

use clap::Args;

use super::client::{self, Client, ClientArgs};
use crate::shell::api::kube::PREFIX;
use crate::shell::api::models::Health;

#[derive(Debug, Args)]
pub struct KubeconfigArgs {
    /// Name of the cluster, user and context in the kubeconfig; the
    /// cluster's own name (from the peer) when not given.
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// CA certificate (PEM) the peer's API certificate is signed by, for an
    /// `https://` --server. Written as a path, so kubectl reads it where it is.
    #[arg(long, value_name = "FILE")]
    pub certificate_authority: Option<PathBuf>,
    #[command(flatten)]
    pub client: ClientArgs,
}

pub fn run(
    args: &KubeconfigArgs,
    out: &mut impl Write,
    err: &mut impl Write,
) -> anyhow::Result<bool> {
    let client = Client::new(&args.client)?;
    // Asking the peer proves the address and token work before kubectl tries.
    let health: Health = client::block_on(client.get("/healthz"))??;
    let name = args
        .name
        .clone()
        .unwrap_or_else(|| format!("shoal-{}", health.cluster));
    let ca = match &args.certificate_authority {
        Some(path) => {
            let path = std::fs::canonicalize(path)
                .map_err(|e| anyhow::anyhow!("--certificate-authority {}: {e}", path.display()))?;
            Some(path.display().to_string())
        }
        None => None,
    };
    let token = client::token_of(&args.client)?;
    if token.is_some() && client.base().starts_with("http://") {
        // client-go applies a kubeconfig's credentials only to TLS servers.
        writeln!(
            err,
            "warning: kubectl sends the token only to an https:// server; against this \
             http:// peer its requests go without it and are refused (401). Serve the API \
             over TLS and pass --certificate-authority."
        )?;
    }
    out.write_all(render(client.base(), &name, token.as_deref(), ca.as_deref()).as_bytes())?;
    Ok(true)
}

/// The kubeconfig text. Values are written as JSON strings, which YAML
/// reads as the same strings whatever they contain.
pub fn render(base: &str, name: &str, token: Option<&str>, ca: Option<&str>) -> String {
    let q = |s: &str| serde_json::Value::from(s).to_string();
    let server = format!("{}{PREFIX}", base.trim_end_matches('/'));
    let mut text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: {n}\n  cluster:\n    server: {s}\n",
        n = q(name),
        s = q(&server)
    );
    if let Some(ca) = ca {
        text.push_str(&format!("    certificate-authority: {}\n", q(ca)));
    }
    text.push_str(&format!("users:\n- name: {}\n  user:", q(name)));
    match token {
        Some(token) => text.push_str(&format!("\n    token: {}\n", q(token))),
        None => text.push_str(" {}\n"),
    }
    text.push_str(&format!(
        "contexts:\n- name: {n}\n  context:\n    cluster: {n}\n    user: {n}\n    namespace: default\ncurrent-context: {n}\n",
        n = q(name)
    ));
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kubeconfig_names_the_peer_under_the_kube_prefix_with_its_token() {
        let text = render(
            "http://127.0.0.1:7070/",
            "shoal-lab",
            Some("s3\"cret"),
            None,
        );
        assert!(
            text.contains("server: \"http://127.0.0.1:7070/kube\""),
            "{text}"
        );
        assert!(text.contains("token: \"s3\\\"cret\""), "{text}");
        assert!(text.contains("current-context: \"shoal-lab\""), "{text}");
        assert!(!text.contains("certificate-authority"), "{text}");
        let text = render(
            "https://10.0.0.5:7070",
            "x",
            None,
            Some("/etc/shoal/ca.pem"),
        );
        assert!(
            text.contains("certificate-authority: \"/etc/shoal/ca.pem\""),
            "{text}"
        );
        assert!(text.contains("user: {}"), "{text}");
    }
}
