//! The CLI's side of TLS: trusting the cluster CA (`--ca-file`), the
//! `--insecure-skip-tls-verify` escape hatch, refusing to send an API token
//! in clear text off loopback, and saying in a sentence why a handshake
//! failed.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, bail};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};

/// How the CLI trusts an `https://` peer.
#[derive(Debug, Clone)]
pub enum Trust<'a> {
    /// Verify against the CA certificate(s) in this PEM file.
    CaFile(&'a Path),
    /// Accept any certificate (first contact, tests).
    Insecure,
}

/// A rustls client config for `trust`, with the ring provider.
pub fn client_config(trust: Trust<'_>) -> anyhow::Result<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let mut config = match trust {
        Trust::CaFile(path) => builder
            .with_root_certificates(read_roots(path)?)
            .with_no_client_auth(),
        Trust::Insecure => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

fn read_roots(path: &Path) -> anyhow::Result<rustls::RootCertStore> {
    use rustls::pki_types::pem::PemObject;
    let text = std::fs::read(path)
        .with_context(|| format!("cannot read the CA file {}", path.display()))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&text) {
        let cert =
            cert.with_context(|| format!("{} is not a PEM certificate file", path.display()))?;
        roots
            .add(cert)
            .with_context(|| format!("{} holds a certificate rustls cannot use", path.display()))?;
    }
    if roots.is_empty() {
        bail!(
            "{} holds no certificate (expected `-----BEGIN CERTIFICATE-----`; \
             `shoal ca print` on a member writes the cluster CA)",
            path.display()
        );
    }
    Ok(roots)
}

/// Whether `url`'s host is this machine (a loopback address or `localhost`).
pub fn is_loopback_url(url: &str) -> bool {
    let Some(host) = reqwest::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
    else {
        return false;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    match host.parse::<std::net::IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => host.eq_ignore_ascii_case("localhost"),
    }
}

/// A sentence for a TLS failure somewhere in `error`'s causes, if any.
pub fn explain(
    error: &(dyn std::error::Error + 'static),
    base: &str,
    ca_file: Option<&Path>,
) -> Option<String> {
    let tls = tls_cause(error)?;
    let ca = ca_file.map_or_else(|| "the CA file".to_owned(), |p| p.display().to_string());
    Some(match tls {
        rustls::Error::InvalidCertificate(
            CertificateError::UnknownIssuer | CertificateError::BadSignature,
        ) => format!(
            "the peer at {base} presented a certificate that the CA in {ca} did not sign: \
             that CA belongs to another cluster (`shoal ca print` on a member of this one \
             gives the right CA), or something between you and the peer is intercepting; \
             --insecure-skip-tls-verify skips the check"
        ),
        rustls::Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        ) => format!(
            "the certificate of {base} does not name this address (it names the peer's --api \
             and --advertise addresses): connect to one of those"
        ),
        rustls::Error::InvalidCertificate(
            CertificateError::Expired | CertificateError::ExpiredContext { .. },
        ) => format!(
            "the certificate of {base} has expired: check the clocks of both machines (a peer \
             renews its certificate when half its validity is left)"
        ),
        rustls::Error::InvalidMessage(_) => format!(
            "{base} does not speak TLS: an API bound to loopback serves plain HTTP, so use \
             http:// there"
        ),
        other => format!("TLS with {base} failed: {other}"),
    })
}

/// The rustls error among `error`'s causes. `io::Error` hides its inner
/// error from `source()`, so it is unwrapped by hand.
fn tls_cause<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut next = Some(error);
    while let Some(e) = next {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
            && let Some(tls) = tls_cause(inner)
        {
            return Some(tls);
        }
        next = e.source();
    }
    None
}

/// `--insecure-skip-tls-verify`: any certificate is accepted, but the
/// handshake signatures are still checked (the connection is encrypted,
/// just not authenticated).
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_urls_are_told_apart() {
        assert!(is_loopback_url("http://127.0.47.3:7070"));
        assert!(is_loopback_url("http://localhost:7070"));
        assert!(is_loopback_url("http://[::1]:7070"));
        assert!(!is_loopback_url("http://192.0.2.2:7070"));
        assert!(!is_loopback_url("http://peer.example:7070"));
    }

    #[test]
    fn a_file_without_certificates_is_refused_with_its_name() {
        let dir = std::env::temp_dir().join(format!("shoal-ca-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("empty.pem");
        std::fs::write(&path, "not a certificate\n").unwrap();
        let e = client_config(Trust::CaFile(&path)).unwrap_err();
        assert!(format!("{e:#}").contains("empty.pem"), "{e:#}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
