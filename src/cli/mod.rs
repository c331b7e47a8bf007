//! The `shoal` command line: one clap derive tree, one module per verb.
//!
//! Verbs are siblings in [`Command`]; a new one (up, apply, get, scale, ...)
//! adds a variant and a module with its `Args` struct and `run`. Everything
//! here returns `anyhow::Result`: this is the binary's edge, where library
//! errors become messages for a person.

#[cfg(feature = "shell")]
pub mod peer_logs;
#[cfg(feature = "shell")]
pub mod up;
#[cfg(feature = "shell")]
pub mod up_config;
pub mod validate;

// Client verbs: they talk to a peer's HTTP API, so they need the shell.
#[cfg(feature = "shell")]
pub mod apply;
#[cfg(feature = "shell")]
pub mod ca;
#[cfg(feature = "shell")]
pub mod client;
#[cfg(feature = "shell")]
pub mod delete;
#[cfg(feature = "shell")]
pub mod describe;
#[cfg(feature = "shell")]
pub mod events;
#[cfg(feature = "shell")]
pub mod get;
#[cfg(feature = "shell")]
pub mod human;
#[cfg(feature = "shell")]
pub mod image;
#[cfg(feature = "shell")]
pub mod kubeconfig;
#[cfg(feature = "shell")]
pub mod logs;
#[cfg(feature = "shell")]
pub mod logs_multi;
#[cfg(feature = "shell")]
pub mod node;
#[cfg(feature = "shell")]
pub mod rolling_update;
#[cfg(feature = "shell")]
pub mod rollout;
#[cfg(feature = "shell")]
pub mod scale;
#[cfg(feature = "shell")]
pub mod secrets;
#[cfg(feature = "shell")]
pub mod service;
#[cfg(feature = "shell")]
pub mod table;
#[cfg(feature = "shell")]
pub mod tls;
#[cfg(feature = "shell")]
pub mod token;

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
    /// Run a peer in the foreground: create a cluster, or --join one.
    #[cfg(feature = "shell")]
    Up(Box<up::UpArgs>),
    /// Create or update the ReplicationControllers and Services of a manifest.
    #[cfg(feature = "shell")]
    Apply(apply::ApplyArgs),
    /// List nodes, rc, pods, svc or events (`get KIND [NAME] [-o json|yaml|wide]`, `get events [-w] [--for rc/NAME]`).
    #[cfg(feature = "shell")]
    Get(get::GetArgs),
    /// Show everything about one rc, pod, node or svc.
    #[cfg(feature = "shell")]
    Describe(describe::DescribeArgs),
    /// Change an RC's replica count (`scale [rc] NAME --replicas N`).
    #[cfg(feature = "shell")]
    Scale(scale::ScaleArgs),
    /// Move an RC to a new image, one replica at a time.
    #[cfg(feature = "shell")]
    RollingUpdate(rolling_update::RollingUpdateArgs),
    /// Follow, list, undo, pause, resume or restart an RC's rollout (`rollout status NAME`).
    #[cfg(feature = "shell")]
    Rollout(rollout::RolloutArgs),
    /// Delete an RC (`delete rc NAME`), a service (`delete svc NAME`) or what a manifest declares (`delete -f FILE`).
    #[cfg(feature = "shell")]
    Delete(delete::DeleteArgs),
    /// Seed images: `image load -i FILE.tar` (or `-i -`) loads a `docker save` archive through a peer.
    #[cfg(feature = "shell")]
    Image(image::ImageArgs),
    /// Print a kubeconfig pointing kubectl at this peer (`--server`), with its API token.
    #[cfg(feature = "shell")]
    Kubeconfig(kubeconfig::KubeconfigArgs),
    /// Print a pod's output, from whichever node runs it (`-l app=hello` or `rc/NAME`: every matching pod's, merged).
    #[cfg(feature = "shell")]
    Logs(logs::LogsArgs),
    /// Keep new replicas off a node (its running ones move elsewhere).
    #[cfg(feature = "shell")]
    Cordon(node::NodeTarget),
    /// Let placement use a cordoned node again.
    #[cfg(feature = "shell")]
    Uncordon(node::NodeTarget),
    /// Cordon a node, then wait until every replica it ran runs elsewhere.
    #[cfg(feature = "shell")]
    Drain(node::DrainArgs),
    /// Node operations (`node delete NAME`).
    #[cfg(feature = "shell")]
    Node(node::NodeArgs),
    /// The cluster CA that clients verify a peer's HTTPS API with (`ca print`).
    #[cfg(feature = "shell")]
    Ca(ca::CaArgs),
    /// Scoped API tokens: `token create --role admin|read-only [--expires 30d] [--name N]`, `token list`, `token revoke NAME`.
    #[cfg(feature = "shell")]
    Token(token::TokenArgs),
    /// Start the peer at boot: write the systemd unit and /etc/shoal/shoal.yaml, enable it.
    #[cfg(feature = "shell")]
    InstallService(Box<service::InstallArgs>),
    /// Stop the peer, disable and remove the unit (the config and data dir stay).
    #[cfg(feature = "shell")]
    UninstallService(service::UninstallArgs),
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
    // A peer logs to stderr from many threads: never hold the stream locks for it.
    #[cfg(feature = "shell")]
    if let Command::Up(args) = &cli.command {
        up::run(args)?;
        return Ok(ExitCode::SUCCESS);
    }
    let (mut stdin, mut stdout, mut stderr) = (
        std::io::stdin().lock(),
        ReaderAware::new(std::io::stdout().lock()),
        std::io::stderr().lock(),
    );
    #[cfg(feature = "shell")]
    if !matches!(cli.command, Command::Validate(_))
        && let Some(warning) = secrets::retired_env_warning()
    {
        let _ = writeln!(stderr, "{warning}");
    }
    let mut io = Io {
        stdin: &mut stdin,
        stdout: &mut stdout,
        stderr: &mut stderr,
    };
    let outcome = dispatch(cli.command, &mut io);
    if stdout.reader_gone {
        // `shoal get pods | head -1`: the reader has what it wanted.
        return Ok(ExitCode::SUCCESS);
    }
    Ok(if outcome? {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Runs one client or offline verb; returns whether it succeeded.
fn dispatch<R: Read, O: Write, E: Write>(
    command: Command,
    io: &mut Io<'_, R, O, E>,
) -> anyhow::Result<bool> {
    Ok(match command {
        Command::Validate(args) => validate::run(&args, io)?,
        #[cfg(feature = "shell")]
        Command::Up(_) => unreachable!("handled before the streams are locked"),
        #[cfg(feature = "shell")]
        Command::Apply(args) => apply::run(&args, io)?,
        #[cfg(feature = "shell")]
        Command::Get(args) => get::run(&args, io.stdout)?,
        #[cfg(feature = "shell")]
        Command::Describe(args) => describe::run(&args, io.stdout)?,
        #[cfg(feature = "shell")]
        Command::Scale(args) => scale::run(&args, io.stdout)?,
        #[cfg(feature = "shell")]
        Command::RollingUpdate(args) => rolling_update::run(&args, io.stdout)?,
        #[cfg(feature = "shell")]
        Command::Rollout(args) => rollout::run(&args, io.stdout)?,
        #[cfg(feature = "shell")]
        Command::Delete(args) => delete::run(&args, io)?,
        #[cfg(feature = "shell")]
        Command::Image(args) => image::run(&args, io)?,
        #[cfg(feature = "shell")]
        Command::Logs(args) => logs::run(&args, io.stdout)?,
        #[cfg(feature = "shell")]
        Command::Kubeconfig(args) => kubeconfig::run(&args, io.stdout, io.stderr)?,
        #[cfg(feature = "shell")]
        Command::Cordon(args) => node::cordon(&args, true, io.stdout)?,
        #[cfg(feature = "shell")]
        Command::Uncordon(args) => node::cordon(&args, false, io.stdout)?,
        #[cfg(feature = "shell")]
        Command::Drain(args) => node::drain(&args, io.stdout)?,
        #[cfg(feature = "shell")]
        Command::Node(node::NodeArgs {
            command: node::NodeCommand::Delete(args),
        }) => node::delete(&args, io.stdout)?,
        #[cfg(feature = "shell")]
        Command::Ca(args) => ca::run(&args, io.stdout)?,
        #[cfg(feature = "shell")]
        Command::Token(args) => token::run(&args, io.stdout, io.stderr)?,
        #[cfg(feature = "shell")]
        Command::InstallService(args) => service::install(&args, io.stdout)?,
        #[cfg(feature = "shell")]
        Command::UninstallService(args) => service::uninstall(&args, io.stdout)?,
    })
}

/// Standard output that notices when its reader has gone away (a closed
/// pipe). The write still fails, which ends the command (a `logs -f` must
/// not stream into nothing), and [`run`] then exits quietly with success,
/// as `ls | head` does, instead of printing `error: Broken pipe`.
#[derive(Debug)]
struct ReaderAware<W: Write> {
    inner: W,
    reader_gone: bool,
}

impl<W: Write> ReaderAware<W> {
    fn new(inner: W) -> Self {
        ReaderAware {
            inner,
            reader_gone: false,
        }
    }

    fn note<T>(&mut self, result: std::io::Result<T>) -> std::io::Result<T> {
        if let Err(e) = &result
            && e.kind() == std::io::ErrorKind::BrokenPipe
        {
            self.reader_gone = true;
        }
        result
    }
}

impl<W: Write> Write for ReaderAware<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let result = self.inner.write(buf);
        self.note(result)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let result = self.inner.flush();
        self.note(result)
    }
}
