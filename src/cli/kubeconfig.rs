//! `shoal kubeconfig`: a kubeconfig that points kubectl at the peer this CLI
//! talks to (`--server`), with its API token. Any peer answers for the
//! whole cluster, so one kubeconfig per peer is all a user needs.
//!
//! kubectl (client-go) sends a kubeconfig's token only over TLS: a peer
//! that requires an API token is usable from kubectl once its API serves
//! `https://` (`shoal up --api-tls`, or any bind off loopback). For such a
//! peer the kubeconfig carries the cluster CA as `certificate-authority-data`,
//! fetched from the peer's `GET /api/v1/ca` over the connection the CLI has
//! just verified with `--ca-file`; over `http://` it has no CA, and the
//! command warns when it would carry a token kubectl will not send.
//!
//! ```text
//! shoal kubeconfig --server https://10.0.0.5:7070 --ca-file cluster-ca.pem > ~/.kube/shoal.yaml
//! KUBECONFIG=~/.kube/shoal.yaml kubectl get pods
//! ```

use std::io::Write;
use std::path::PathBuf;

use clap::Args;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use super::client::{self, Client, ClientArgs};
use crate::shell::api::kube::PREFIX;
use crate::shell::api::models::Health;

/// A CA certificate in PEM is about 1 KiB; anything far larger is not one.
const MAX_CA_PEM_BYTES: usize = 64 * 1024;

#[derive(Debug, Args)]
pub struct KubeconfigArgs {
    /// Name of the cluster, user and context in the kubeconfig; the
    /// cluster's own name (from the peer) when not given.
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// CA certificate (PEM) the peer's API certificate is signed by, written
    /// as a path (kubectl reads it where it is) instead of the CA the peer
    /// serves, which is written inline by default for an `https://` --server.
    #[arg(long, value_name = "FILE")]
    pub certificate_authority: Option<PathBuf>,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// How the kubeconfig tells kubectl to trust the peer's certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Authority {
    /// Plain `http://`: nothing to trust.
    None,
    /// `certificate-authority`: a PEM file kubectl reads.
    File(String),
    /// `certificate-authority-data`: the PEM itself (base64 in the file).
    Data(String),
    /// `insecure-skip-tls-verify`: what the CLI itself was told to do.
    Insecure,
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
    let https = client.base().starts_with("https://");
    let authority = if let Some(path) = &args.certificate_authority {
        let path = std::fs::canonicalize(path)
            .map_err(|e| anyhow::anyhow!("--certificate-authority {}: {e}", path.display()))?;
        Authority::File(path.display().to_string())
    } else if !https {
        Authority::None
    } else if args.client.insecure_skip_tls_verify {
        // Without verification the CA the peer serves proves nothing, so it
        // is not written as if it did.
        writeln!(
            err,
            "warning: the peer was not verified (--insecure-skip-tls-verify), so the kubeconfig \
             tells kubectl to skip verification too; pass --ca-file (what `shoal ca print` \
             prints on a member) to write the cluster CA instead"
        )?;
        Authority::Insecure
    } else {
        // Client::new verified the peer against --ca-file (it refuses
        // https:// otherwise), so what this peer serves can be trusted.
        let pem = client::block_on(client.get_text("/ca", MAX_CA_PEM_BYTES))??;
        check_ca_pem(&pem)
            .map_err(|e| anyhow::anyhow!("the CA {}/api/v1/ca served: {e}", client.base()))?;
        Authority::Data(pem)
    };
    let token = client::token_of(&args.client)?;
    if token.is_some() && !https {
        // client-go applies a kubeconfig's credentials only to TLS servers.
        writeln!(
            err,
            "warning: kubectl sends the token only to an https:// server; against this \
             http:// peer its requests go without it and are refused (401). Serve the API \
             over TLS (`shoal up --api-tls`) and run this again with --server https://... \
             --ca-file FILE."
        )?;
    }
    out.write_all(render(client.base(), &name, token.as_deref(), &authority).as_bytes())?;
    Ok(true)
}

/// `pem` holds at least one certificate and nothing unreadable.
fn check_ca_pem(pem: &str) -> anyhow::Result<()> {
    let mut count = 0;
    for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
        cert.map_err(|e| anyhow::anyhow!("not a PEM certificate ({e})"))?;
        count += 1;
    }
    if count == 0 {
        anyhow::bail!("no `-----BEGIN CERTIFICATE-----` in it");
    }
    Ok(())
}

/// The kubeconfig text. Values are written as JSON strings, which YAML
/// reads as the same strings whatever they contain.
pub fn render(base: &str, name: &str, token: Option<&str>, authority: &Authority) -> String {
    let q = |s: &str| serde_json::Value::from(s).to_string();
    let server = format!("{}{PREFIX}", base.trim_end_matches('/'));
    let mut text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: {n}\n  cluster:\n    server: {s}\n",
        n = q(name),
        s = q(&server)
    );
    match authority {
        Authority::None => {}
        Authority::File(path) => {
            text.push_str(&format!("    certificate-authority: {}\n", q(path)));
        }
        Authority::Data(pem) => {
            // ByteString serializes as the base64 string kubeconfigs use.
            let data = serde_json::to_string(&k8s_openapi::ByteString(pem.as_bytes().to_vec()))
                .expect("a byte string serializes");
            text.push_str(&format!("    certificate-authority-data: {data}\n"));
        }
        Authority::Insecure => text.push_str("    insecure-skip-tls-verify: true\n"),
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
            &Authority::None,
        );
        assert!(
            text.contains("server: \"http://127.0.0.1:7070/kube\""),
            "{text}"
        );
        assert!(text.contains("token: \"s3\\\"cret\""), "{text}");
        assert!(text.contains("current-context: \"shoal-lab\""), "{text}");
        assert!(!text.contains("certificate-authority"), "{text}");
        assert!(!text.contains("insecure"), "{text}");
        let text = render(
            "https://10.0.0.5:7070",
            "x",
            None,
            &Authority::File("/etc/shoal/ca.pem".into()),
        );
        assert!(
            text.contains("certificate-authority: \"/etc/shoal/ca.pem\""),
            "{text}"
        );
        assert!(text.contains("user: {}"), "{text}");
    }

    #[test]
    fn the_ca_is_written_inline_as_base64() {
        let text = render(
            "https://10.0.0.5:7070",
            "x",
            Some("t"),
            &Authority::Data("-----BEGIN CERTIFICATE-----\nAB\n".into()),
        );
        // base64 of the PEM text, as kubectl decodes it.
        assert!(
            text.contains(
                "    certificate-authority-data: \"LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCkFCCg==\"\n"
            ),
            "{text}"
        );
        let text = render("https://h:1", "x", None, &Authority::Insecure);
        assert!(
            text.contains("    insecure-skip-tls-verify: true\n"),
            "{text}"
        );
    }

    #[test]
    fn a_served_ca_must_hold_a_certificate() {
        assert!(check_ca_pem("hello").is_err());
        assert!(check_ca_pem("").is_err());
        let issuer = shoal_gossip::quic::ClusterIssuer::from_token(
            &shoal_gossip::quic::JoinToken::from_seed([49; 32]),
        )
        .unwrap();
        check_ca_pem(issuer.ca_pem()).unwrap();
    }
}
