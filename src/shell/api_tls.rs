//! TLS on the HTTP API: whenever the API is bound off loopback (or
//! `shoal up --api-tls` asks for it), the peer serves HTTPS only, with a
//! short-lived certificate for its addresses issued by the cluster CA and
//! renewed under running connections ([`shoal_gossip::quic::certs`]).
//!
//! A plain HTTP request on such a port is answered, in clear text, with a
//! 400 that says to use `https://`, and the connection is closed: the
//! request (and any token in it) has already crossed the network, but the
//! client learns why nothing works instead of seeing a reset.
//!
//! [`ca_pem`] and [`ca_pem_from_data_dir`] give the CA certificate that
//! clients verify against (`shoal ca print`, `shoal kubeconfig`).

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use axum::extract::ConnectInfo;
use axum::{Extension, Router};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use rustls::pki_types::CertificateDer;
use shoal_gossip::quic::{CertSlot, ClusterIdentity, ClusterIssuer, LeafRequest, LeafUsage};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use super::api::ErrorBody;
use super::api::limits::ClientLimits;
use super::persist::DataDir;

/// A client has this long to finish its TLS handshake (or send its first
/// byte), so idle sockets cannot pile up.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Most connections served at once; more wait in the listen backlog.
const MAX_CONNECTIONS: usize = 1024;
/// TLS records start with content type 22 (handshake); HTTP with a letter.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// Whether the API on `bind` must speak TLS: always off loopback, and on
/// loopback when forced (`--api-tls`).
pub fn api_needs_tls(bind: SocketAddr, forced: bool) -> bool {
    forced || !bind.ip().is_loopback()
}

/// The API CA certificate (PEM) of the cluster `identity`: what a client
/// verifies a peer's API against. Public, contains no key.
pub fn ca_pem(identity: &ClusterIdentity) -> anyhow::Result<String> {
    Ok(ClusterCa::of(identity)?.pem)
}

/// [`ca_pem`] of the cluster a peer's data dir belongs to (read on the
/// peer's machine: no network, nothing to trust but the local disk).
pub fn ca_pem_from_data_dir(dir: &Path) -> anyhow::Result<String> {
    if !dir.join("node.json").exists() {
        anyhow::bail!(
            "{} is not a peer's data dir (no node.json): pass the --data-dir `shoal up` runs with",
            dir.display()
        );
    }
    let identity = DataDir::open(dir)?
        .load_identity()?
        .with_context(|| format!("{} holds no node identity", dir.display()))?;
    let cluster = super::cluster_identity::of_recorded(&identity)
        .with_context(|| format!("reading the cluster identity in {}", dir.display()))?;
    ca_pem(&cluster)
}

/// The cluster CA certificate, in both encodings.
#[derive(Debug, Clone)]
pub struct ClusterCa {
    /// What rustls verifies against.
    pub der: CertificateDer<'static>,
    /// What clients are given (`--ca-file`, a kubeconfig).
    pub pem: String,
}

impl ClusterCa {
    /// The API CA of the cluster `identity`.
    pub fn of(identity: &ClusterIdentity) -> anyhow::Result<ClusterCa> {
        let issuer = ClusterIssuer::from_identity(identity).context("building the cluster CA")?;
        Ok(ClusterCa {
            der: issuer.ca_der().clone(),
            pem: issuer.ca_pem().to_owned(),
        })
    }
}

/// The API's TLS: its certificate (kept fresh by a background task) and
/// the server config that presents it.
#[derive(Debug)]
pub struct ApiTls {
    pub server: Arc<rustls::ServerConfig>,
    pub cert: Arc<CertSlot>,
    renewal: tokio::task::JoinHandle<()>,
}

impl Drop for ApiTls {
    fn drop(&mut self) {
        self.renewal.abort();
    }
}

impl ApiTls {
    /// Issues the API certificate for `bind` (every address of this machine
    /// when `bind` is unspecified, plus `advertise`) valid for `validity`,
    /// and starts renewing it. Must run inside a tokio runtime.
    pub fn start(
        cluster: &ClusterIdentity,
        bind: SocketAddr,
        advertise: IpAddr,
        validity: Duration,
    ) -> anyhow::Result<ApiTls> {
        let issuer = Arc::new(ClusterIssuer::from_identity(cluster)?);
        let request = LeafRequest {
            common_name: format!("shoal api {bind}"),
            dns_names: vec![cluster.server_name(), "localhost".into()],
            ips: certificate_ips(bind.ip(), advertise),
            usage: LeafUsage::ApiServer,
            validity: validity.max(shoal_gossip::quic::certs::MIN_LEAF_VALIDITY),
            node: None,
        };
        let cert = CertSlot::new(issuer.issue(&request, SystemTime::now())?)?;
        let mut server = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(cert.clone());
        // kubectl speaks HTTP/2, the CLI HTTP/1.1; the server takes both.
        server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let renewal = tokio::spawn(shoal_gossip::quic::certs::renew_forever(
            issuer,
            request,
            cert.clone(),
        ));
        Ok(ApiTls {
            server: Arc::new(server),
            cert,
            renewal,
        })
    }
}

/// The IP SANs: `bind`, or every interface address when it is unspecified,
/// and the advertised address; loopback is always included so the CLI on
/// the machine itself can verify too.
fn certificate_ips(bind: IpAddr, advertise: IpAddr) -> Vec<IpAddr> {
    let mut ips = vec![bind, advertise, IpAddr::from([127, 0, 0, 1])];
    if bind.is_unspecified() {
        match if_addrs::get_if_addrs() {
            Ok(interfaces) => ips.extend(interfaces.into_iter().map(|i| i.ip())),
            Err(e) => {
                tracing::warn!(error = %e, "cannot list this machine's addresses; the API certificate names only --api and --advertise")
            }
        }
    }
    ips.retain(|ip| !ip.is_unspecified());
    ips.sort();
    ips.dedup();
    ips
}

/// Serves `app` over TLS on `listener` until `shutdown` turns true; open
/// connections are then closed. Each connection is counted against its
/// client's cap in `limits` from accept to close (see `api::limits`).
pub async fn serve_https(
    listener: TcpListener,
    app: Router,
    tls: Arc<rustls::ServerConfig>,
    limits: Arc<ClientLimits>,
    mut shutdown: watch::Receiver<bool>,
) {
    let acceptor = TlsAcceptor::from(tls);
    let mut connections = JoinSet::new();
    loop {
        // Reap finished connections so the set stays bounded.
        while connections.try_join_next().is_some() {}
        let accepted = tokio::select! {
            accepted = listener.accept(), if connections.len() < MAX_CONNECTIONS => accepted,
            Some(_) = connections.join_next(), if connections.len() >= MAX_CONNECTIONS => continue,
            _ = shutdown.changed() => break,
        };
        let (stream, from) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and the like: pause, do not spin.
                tracing::warn!(error = %e, "API accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let client = super::api::limits::ClientConn::open(&limits, from);
        connections.spawn(serve_connection(
            stream,
            from,
            acceptor.clone(),
            app.clone().layer(Extension(ConnectInfo(client))),
        ));
    }
    connections.shutdown().await;
}

async fn serve_connection(stream: TcpStream, from: SocketAddr, acceptor: TlsAcceptor, app: Router) {
    // Small answers go out at once rather than waiting on the peer's ACK.
    let _ = stream.set_nodelay(true);
    super::api::limits::keep_alive(&stream);
    let mut first = [0u8; 1];
    let peeked = tokio::time::timeout(HANDSHAKE_TIMEOUT, stream.peek(&mut first)).await;
    match peeked {
        Ok(Ok(1)) if first[0] == TLS_HANDSHAKE_RECORD => {}
        Ok(Ok(1)) => return refuse_plain_http(stream, from).await,
        _ => return,
    }
    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            tracing::debug!(%from, error = %e, "API TLS handshake failed");
            return;
        }
        Err(_) => return,
    };
    let service = TowerToHyperService::new(app);
    if let Err(e) = auto::Builder::new(TokioExecutor::new())
        .serve_connection_with_upgrades(TokioIo::new(tls), service)
        .await
    {
        tracing::debug!(%from, error = %e, "API connection ended with an error");
    }
}

/// Answers a plain HTTP request on the TLS port with directions, then closes.
async fn refuse_plain_http(mut stream: TcpStream, from: SocketAddr) {
    tracing::debug!(%from, "plain HTTP on the TLS API refused");
    let local = stream
        .local_addr()
        .map_or_else(|_| "this address".to_owned(), |a| a.to_string());
    let body = ErrorBody {
        error: format!(
            "this API speaks only HTTPS (so that tokens never cross a network in clear \
             text): use https://{local} and verify it with the cluster CA (`shoal ca print` on a member; CLI: --ca-file or SHOAL_CA_FILE)"
        ),
        status: 400,
        problems: Vec::new(),
        warnings: Vec::new(),
    };
    let body = serde_json::to_vec(&body).unwrap_or_default();
    let head = format!(
        "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    let _ = tokio::time::timeout(HANDSHAKE_TIMEOUT, async {
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(&body).await?;
        stream.shutdown().await
    })
    .await;
}

/// A client for this peer's calls to another peer's API (the logs proxy):
/// HTTPS verified against the cluster CA when `ca` is given.
pub fn peer_api_client(
    ca: Option<&CertificateDer<'static>>,
    connect_timeout: Duration,
) -> anyhow::Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder()
        .no_proxy()
        .connect_timeout(connect_timeout);
    if let Some(ca) = ca {
        builder = builder.use_preconfigured_tls(client_config(ca)?);
    }
    builder.build().context("building the HTTP client")
}

/// A rustls client config trusting only the cluster CA `ca`.
pub fn client_config(ca: &CertificateDer<'static>) -> anyhow::Result<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(ca.clone())
        .context("the cluster CA certificate")?;
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_is_required_off_loopback_and_when_forced() {
        let at = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert!(!api_needs_tls(at("127.0.47.1:7070"), false));
        assert!(!api_needs_tls(at("[::1]:7070"), false));
        assert!(api_needs_tls(at("127.0.47.1:7070"), true));
        assert!(api_needs_tls(at("0.0.0.0:7070"), false));
        assert!(api_needs_tls(at("192.0.2.2:7070"), false));
    }

    #[test]
    fn the_certificate_names_bind_advertise_and_loopback() {
        let ips = certificate_ips("192.0.2.9".parse().unwrap(), "192.0.2.9".parse().unwrap());
        let want: Vec<IpAddr> = vec!["127.0.0.1".parse().unwrap(), "192.0.2.9".parse().unwrap()];
        assert_eq!(ips, want);
        let all = certificate_ips("0.0.0.0".parse().unwrap(), "192.0.2.9".parse().unwrap());
        assert!(all.iter().all(|ip| !ip.is_unspecified()));
        assert!(all.contains(&"192.0.2.9".parse().unwrap()));
    }
}
