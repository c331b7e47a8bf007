//! `shoal up`: run a peer in the foreground until Ctrl-C or SIGTERM.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use shoal_crdt_state::manifest::quantity::{parse_cpu_millis, parse_memory_bytes};
use shoal_gossip::Preset;

use super::peer_logs::{self, LogFormat};
use super::secrets;
use crate::shell::addresses::{self, AdvertiseAddr, Chosen, PeerAddresses};
use crate::shell::api::limits::{ClientConn, ClientLimits, LimitSettings, LimitedListener};
use crate::shell::api_tls::{ApiTls, ClusterCa, api_needs_tls, serve_https};
use crate::shell::up::{Running, UpConfig, open, start};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum NetworkPreset {
    Lan,
    Wan,
}

#[derive(Debug, Args)]
pub struct UpArgs {
    /// Read these flags from a YAML or TOML file (keys are the flag names:
    /// `listen`, `data-dir`, `join`, ...); flags given here override it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// UDP address for peer traffic (QUIC: gossip and sync on one port)
    /// [default: 0.0.0.0:7946, all interfaces].
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: Option<SocketAddr>,
    /// Address other peers reach this one on, IP or IP:PORT [default: the
    /// --listen IP if it names one, else the IP of the interface that holds
    /// the default route].
    #[arg(long, value_name = "IP[:PORT]")]
    pub advertise: Option<AdvertiseAddr>,
    /// HTTP API address (the CLI's --server). Off loopback it needs --api-token.
    #[arg(long, default_value = "127.0.0.1:7070")]
    pub api: SocketAddr,
    /// Where this node keeps its identity and the cluster state.
    #[arg(long, default_value = "./shoal-data")]
    pub data_dir: PathBuf,
    /// Join the cluster of this peer (any member works); repeatable.
    #[arg(long)]
    pub join: Vec<SocketAddr>,
    /// The cluster's join token (printed by the first peer); needed to join.
    /// A secret between peers: never use it as an API token.
    #[arg(
        long,
        env = "SHOAL_JOIN_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub join_token: Option<String>,
    /// Deprecated spelling of --join-token.
    #[arg(long = "token", value_name = "TOKEN", hide = true)]
    pub deprecated_token: Option<String>,
    /// Node name shown by `get nodes` (default: hostname plus a suffix).
    #[arg(long)]
    pub name: Option<String>,
    /// Node label KEY=VALUE, matched by nodeSelector; repeatable.
    #[arg(long = "label", value_parser = parse_label)]
    pub labels: Vec<(String, String)>,
    /// CPU this node offers (e.g. 2, 1500m); default: all cores.
    #[arg(long, value_parser = checked(parse_cpu_millis))]
    pub cpu: Option<String>,
    /// Memory this node offers (e.g. 4Gi); default: all of it.
    #[arg(long, value_parser = checked(parse_memory_bytes))]
    pub memory: Option<String>,
    /// IP that pod ports are published on (default: the advertised IP).
    #[arg(long)]
    pub publish_ip: Option<IpAddr>,
    /// Bearer token the HTTP API requires (clients: --api-token or
    /// SHOAL_API_TOKEN). Its own secret, never the join token.
    #[arg(
        long,
        env = "SHOAL_API_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub api_token: Option<String>,
    /// Requests per second one client (source IP) may sustain on the API;
    /// beyond, 429 with Retry-After. 0: no limit.
    #[arg(long, default_value_t = LimitSettings::API_DEFAULT.rate_per_sec, value_name = "N")]
    pub api_rate_limit: u32,
    /// Requests one client may send at once above --api-rate-limit.
    #[arg(long, default_value_t = LimitSettings::API_DEFAULT.burst, value_name = "N")]
    pub api_burst: u32,
    /// Connections one client may hold open to the API; more get 429. 0: no limit.
    #[arg(long, default_value_t = LimitSettings::API_DEFAULT.max_connections, value_name = "N")]
    pub api_max_connections: u32,
    /// Connections one client (source IP) may hold open through this
    /// peer's load balancer, all service and node ports together; more are
    /// reset at once. 0: no limit.
    #[arg(long, default_value_t = LimitSettings::LB_DEFAULT.max_connections, value_name = "N")]
    pub lb_max_connections_per_client: u32,
    /// New connections per second one client may open through the load
    /// balancer; beyond, they are reset at once. 0: no limit.
    #[arg(long, default_value_t = LimitSettings::LB_DEFAULT.rate_per_sec, value_name = "N")]
    pub lb_connection_rate: u32,
    /// New connections one client may open at once above --lb-connection-rate.
    #[arg(long, default_value_t = LimitSettings::LB_DEFAULT.burst, value_name = "N")]
    pub lb_connection_burst: u32,
    /// Serve the API over HTTPS also on loopback (off loopback it always is,
    /// with a certificate from the cluster CA; `shoal ca print` gives the CA).
    #[arg(long)]
    pub api_tls: bool,
    /// Lifetime of this node's certificates (peer QUIC and API HTTPS); each
    /// is renewed when half of it is left, without dropping connections.
    #[arg(long, default_value = "24h", value_parser = super::rolling_update::parse_duration)]
    pub cert_validity: std::time::Duration,
    /// Failure-detection timing: lan (fast) or wan (tolerant).
    #[arg(long, value_enum, default_value = "lan")]
    pub network: NetworkPreset,
    /// Acknowledge writes without waiting for the disk. For benchmarks
    /// only: an acknowledged write can then be lost in a crash.
    #[arg(long, hide = true)]
    pub unsafe_no_fsync: bool,
    /// A new peer whose --join seeds never answer exits with an error
    /// after this long (`30s`, `2m`). A restarted peer keeps trying the
    /// members it remembers instead.
    #[arg(long, default_value = "30s", value_parser = super::rolling_update::parse_duration)]
    pub join_timeout: std::time::Duration,
    /// If no --join seed answers, keep running as a one-node cluster (and
    /// keep trying the seeds) instead of exiting.
    #[arg(long)]
    pub start_alone: bool,
    /// Forget a node (everywhere: its record, its pods, its containers left
    /// on this engine) once it has been down this long (`24h`, `90m`).
    #[arg(long, default_value = "24h", value_parser = super::rolling_update::parse_duration)]
    pub forget_down_after: std::time::Duration,
    /// Tombstones of deleted RCs and services (and forgotten nodes) are
    /// collected once this old and held by every known node (`10m`).
    #[arg(long, default_value = "10m", value_parser = super::rolling_update::parse_duration)]
    pub gc_grace: std::time::Duration,
    /// Where pods reach services (`NAME:port`) and this peer's DNS server
    /// (default: the gateway of the Docker engine's default bridge, else
    /// the advertised address).
    #[arg(long, value_name = "IP")]
    pub service_address: Option<IpAddr>,
    /// Port of the DNS server for services, at the service address and at
    /// the advertised address. Pods get it as their resolver only on 53.
    #[arg(long, default_value_t = 53)]
    pub dns_port: u16,
    /// How the peer logs on stderr: text (for a person) or json (one object
    /// a line, for a collector); every line names this node (`SHOAL_LOG`
    /// sets the levels).
    #[arg(long, value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

/// Keeps the text but refuses it at parse time (so a config file's line is named).
fn checked(
    parse: fn(&str) -> Result<u64, String>,
) -> impl Fn(&str) -> Result<String, String> + Clone + Send + Sync + 'static {
    move |text| parse(text).map(|_| text.to_owned())
}

fn parse_label(text: &str) -> Result<(String, String), String> {
    let (k, v) = text
        .split_once('=')
        .ok_or_else(|| format!("label {text:?} must be KEY=VALUE"))?;
    if k.is_empty() {
        return Err(format!("label {text:?} has an empty key"));
    }
    Ok((k.to_owned(), v.to_owned()))
}

impl UpArgs {
    /// What the user should change, before anything else is said or done.
    fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        if self.deprecated_token.is_some() {
            warnings.push(
                "warning: --token is deprecated; use --join-token (or SHOAL_JOIN_TOKEN) for \
                 the cluster's join token"
                    .to_owned(),
            );
        }
        warnings.extend(secrets::retired_env_warning());
        warnings
    }

    /// --join-token, or its deprecated spelling --token.
    fn join_token(&self) -> anyhow::Result<Option<String>> {
        match (&self.join_token, &self.deprecated_token) {
            (Some(new), Some(old)) if new != old => bail!(
                "--token and --join-token (or SHOAL_JOIN_TOKEN) give different join tokens; \
                 pass only --join-token"
            ),
            (new, old) => Ok(new.clone().or_else(|| old.clone())),
        }
    }

    /// The settings of the peer, and how its advertised address was chosen.
    fn to_config(&self) -> anyhow::Result<(UpConfig, Chosen)> {
        if let Some(token) = &self.api_token {
            secrets::check_server_api_token(token)?;
        }
        if !self.api.ip().is_loopback() && self.api_token.is_none() {
            bail!(
                "the API on {} would be reachable from other machines: pass --api-token \
                 (or SHOAL_API_TOKEN), or bind it to 127.0.0.1",
                self.api
            );
        }
        if let Some(ip) = self.service_address.filter(|ip| ip.is_unspecified()) {
            bail!(
                "--service-address {ip} is not an address pods can reach; pass one address \
                 of this machine, such as the Docker bridge's gateway (172.17.0.1 by default)"
            );
        }
        let cpu_millis = self
            .cpu
            .as_deref()
            .map(parse_cpu_millis)
            .transpose()
            .map_err(|e| anyhow::anyhow!("--cpu: {e}"))?;
        let memory_bytes = self
            .memory
            .as_deref()
            .map(parse_memory_bytes)
            .transpose()
            .map_err(|e| anyhow::anyhow!("--memory: {e}"))?;
        let PeerAddresses {
            listen,
            advertise,
            chosen,
        } = addresses::resolve(self.listen, self.advertise)?;
        addresses::check_join(advertise, &self.join)?;
        let config = UpConfig {
            listen,
            advertise,
            api: self.api,
            data_dir: self.data_dir.clone(),
            join: self.join.clone(),
            join_token: self.join_token()?,
            name: self.name.clone(),
            labels: self.labels.iter().cloned().collect::<BTreeMap<_, _>>(),
            cpu_millis,
            memory_bytes,
            publish_ip: self.publish_ip,
            api_token: self.api_token.clone(),
            api_limits: LimitSettings {
                rate_per_sec: self.api_rate_limit,
                burst: self.api_burst,
                max_connections: self.api_max_connections,
            },
            lb_limits: LimitSettings {
                rate_per_sec: self.lb_connection_rate,
                burst: self.lb_connection_burst,
                max_connections: self.lb_max_connections_per_client,
            },
            api_tls: self.api_tls,
            cert_validity: self.cert_validity,
            preset: match self.network {
                NetworkPreset::Lan => Preset::Lan,
                NetworkPreset::Wan => Preset::Wan,
            },
            fsync: !self.unsafe_no_fsync,
            join_timeout: self.join_timeout,
            start_alone: self.start_alone,
            forget_down_after: self.forget_down_after,
            gc_grace: self.gc_grace,
            service_address: self.service_address,
            dns_port: self.dns_port,
        };
        Ok((config, chosen))
    }
}

/// Runs the peer until a signal; returns once it has left the cluster.
pub fn run(args: &UpArgs) -> anyhow::Result<()> {
    let from_file;
    let args = match &args.config {
        Some(path) => {
            // The flags after `up`, to tell which ones override the file.
            let argv: Vec<_> = std::env::args_os()
                .skip(1)
                .skip_while(|a| a != "up")
                .skip(1)
                .collect();
            from_file = super::up_config::load(path, &argv)?;
            &from_file
        }
        None => args,
    };
    for warning in args.warnings() {
        eprintln!("{warning}");
    }
    let (config, chosen) = args.to_config()?;
    let opened = open(&config)?;
    peer_logs::init(args.log_format);
    let span = peer_logs::peer_span(&opened.identity.name, opened.identity.node_id);
    let runtime = peer_logs::runtime_in(&span).context("cannot start the async runtime")?;
    let _in_peer = span.enter();
    runtime.block_on(async move {
        let running = start(&config, opened).await?;
        let api_tls = api_needs_tls(config.api, config.api_tls)
            .then(|| {
                ApiTls::start(
                    &running.cluster,
                    config.api,
                    running.advertise.ip(),
                    config.cert_validity,
                )
            })
            .transpose()
            .context("cannot set up TLS for the API")?;
        let api_task = serve_api(&config, &running, api_tls.as_ref()).await?;

        // A peer whose stdout is gone (`shoal up | head`) keeps running.
        let _ = print_banner(&mut std::io::stdout().lock(), &running, &config, &chosen);

        let Running {
            shutdown,
            mut driver,
            fatal,
            ..
        } = running;
        let (fatal, driver_ended) = tokio::select! {
            () = wait_for_signal() => (None, false),
            Ok(why) = fatal => (Some(why), false),
            // A driver that ends on its own (a panic) would leave a peer that
            // answers its API from a frozen snapshot and never gossips again:
            // exit instead, so a supervisor restarts it.
            ended = &mut driver => (Some(driver_ended_why(ended)), true),
        };
        let _ = shutdown.send(true);
        if !driver_ended {
            let _ = driver.await;
        }
        let _ = api_task.await;
        drop(api_tls);
        match fatal {
            Some(why) => Err(anyhow::anyhow!(why)),
            None => Ok(()),
        }
    })
}

/// Why the peer stops when its driver task ended before shutdown.
fn driver_ended_why(ended: Result<(), tokio::task::JoinError>) -> String {
    match ended {
        Err(e) if e.is_panic() => {
            let payload = e.into_panic();
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "no message".to_owned());
            format!("the peer's driver panicked ({message}); stopping the peer")
        }
        _ => "the peer's driver stopped unexpectedly; stopping the peer".to_owned(),
    }
}

/// Starts serving the API: HTTPS when `tls` is given, else plain HTTP
/// (loopback only); the task ends after the peer's shutdown signal.
async fn serve_api(
    config: &UpConfig,
    running: &Running,
    tls: Option<&ApiTls>,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let api = tokio::net::TcpListener::bind(config.api)
        .await
        .with_context(|| format!("cannot serve the API on {}", config.api))?;
    let limits = ClientLimits::new(config.api_limits);
    let app = crate::shell::api::router(crate::shell::api::ApiState {
        handle: running.handle.clone(),
        runtime: Some(running.runtime.clone()),
        api_token: config.api_token.clone(),
        cluster_ca: Some(Arc::new(ClusterCa::of(&running.cluster)?)),
        limits: limits.clone(),
        service_dns: running.services.dns_address(),
        transfers: running.transfers.clone(),
    });
    let mut api_shutdown = running.shutdown.subscribe();
    Ok(match tls {
        Some(tls) => tokio::spawn(serve_https(
            api,
            app,
            tls.server.clone(),
            limits,
            api_shutdown,
        )),
        None => tokio::spawn(async move {
            let stop = async move {
                let _ = api_shutdown.changed().await;
            };
            let listener = LimitedListener { inner: api, limits };
            let app = app.into_make_service_with_connect_info::<ClientConn>();
            if let Err(e) = axum::serve(listener, app)
                .with_graceful_shutdown(stop)
                .await
            {
                tracing::warn!(error = %e, "the API stopped");
            }
        }),
    })
}

/// Who this peer is, and how another machine joins it: the join line works
/// as printed there (that machine then advertises its own default route).
fn print_banner(
    out: &mut impl Write,
    running: &Running,
    config: &UpConfig,
    chosen: &Chosen,
) -> std::io::Result<()> {
    let id = &running.identity;
    let advertise = running.advertise;
    let why = match chosen {
        Chosen::AdvertiseFlag => "--advertise".to_owned(),
        Chosen::ListenFlag => "--listen".to_owned(),
        Chosen::DefaultRoute { interface } => {
            format!("{interface}, the default route; --advertise to change")
        }
        Chosen::OnlyAddress { interface } => {
            format!("{interface}, the only address; --advertise to change")
        }
        Chosen::LoopbackOnly => "no other address on this machine".to_owned(),
    };
    writeln!(out, "shoal peer {} ({:016x}) is up", id.name, id.node_id)?;
    writeln!(out, "  peers reach it on  {advertise} (QUIC/UDP; {why})")?;
    writeln!(out, "  listening on       {}", config.listen)?;
    let api_scope = if config.api.ip().is_loopback() {
        " (this machine only)"
    } else {
        " (TLS; clients verify it with `shoal ca print`)"
    };
    let scheme = if api_needs_tls(config.api, config.api_tls) {
        "https"
    } else {
        "http"
    };
    writeln!(
        out,
        "  API                {scheme}://{}{api_scope}",
        config.api
    )?;
    writeln!(out, "  data dir           {}", config.data_dir.display())?;
    let dns: Vec<String> = running
        .services
        .dns
        .iter()
        .flat_map(|d| d.addrs())
        .map(ToString::to_string)
        .collect();
    writeln!(
        out,
        "  services DNS       {}",
        if dns.is_empty() {
            "none (see the log)".to_owned()
        } else {
            dns.join(", ")
        }
    )?;
    // The token admitting members now (a rotated one after `shoal token
    // rotate`), not necessarily the one this node started with.
    let join_token = &running.join_token;
    writeln!(out, "  join token         {join_token}")?;
    if advertise.ip().is_loopback() {
        writeln!(
            out,
            "it advertises a loopback address, so only peers on this machine can join \
             (start it without --listen, or with --advertise IP, for other machines);\n\
             join another peer on this machine with:\n  \
             SHOAL_JOIN_TOKEN={join_token} shoal up --listen <ANOTHER-127.0.0.x>:{} --join {advertise}",
            advertise.port()
        )?;
    } else {
        writeln!(
            out,
            "join another machine with:\n  SHOAL_JOIN_TOKEN={join_token} shoal up --join {advertise}"
        )?;
    }
    out.flush()
}

async fn wait_for_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing a SIGTERM handler cannot fail at start-up");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

#[cfg(test)]
mod tests {
    use super::driver_ended_why;

    #[test]
    fn a_panicked_driver_is_reported_with_its_message() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let ended =
            runtime.block_on(async { tokio::spawn(async { panic!("merge exploded") }).await });
        let why = driver_ended_why(ended);
        assert!(why.contains("panicked (merge exploded)"), "{why}");
        let ended = runtime.block_on(async { tokio::spawn(async {}).await });
        assert!(driver_ended_why(ended).contains("stopped unexpectedly"));
    }
}
