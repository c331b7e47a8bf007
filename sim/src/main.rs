//! `shoal-sim`: run one scenario and print its report.
//!
//! `cargo run --release -p shoal-sim -- --peers 1000 --scenario crash --seed 1 [--json]`

use clap::Parser;
use shoal_gossip::Preset;
use shoal_sim::scenarios::{self, NAMES, Options};

#[derive(Debug, Parser)]
#[command(about = "Simulate Shoal membership at scale with a seeded, deterministic run")]
struct Args {
    /// Number of peers.
    #[arg(long, default_value_t = 50)]
    peers: usize,
    /// One of: join, crash, partition-heal, loss, churn (membership only),
    /// or apply, failover, scale, rc-partition-heal, rc-join, host-port,
    /// full-restart, rollout, rollout-crash, rollout-scale, rollout-partition,
    /// rollout-partition-undo, rollout-undo, rollout-twice
    /// (peer cores).
    #[arg(long, default_value = "join")]
    scenario: String,
    /// RNG seed: same seed, same trace hash.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Print one JSON object instead of the text report.
    #[arg(long)]
    json: bool,
    /// SWIM timings: lan or wan.
    #[arg(long, default_value = "lan")]
    preset: String,
    /// Baseline datagram loss probability (0..1).
    #[arg(long)]
    loss: Option<f64>,
    /// Peer scenarios: number of RCs in the workload.
    #[arg(long, default_value_t = 10)]
    rcs: usize,
    /// Peer scenarios: replicas per RC (the target of `scale`).
    #[arg(long, default_value_t = 3)]
    replicas: u32,
    /// Peer scenarios: fake container start latency, ms.
    #[arg(long, default_value_t = 200)]
    start_latency_ms: u64,
    /// full-restart: whether the container engines survive the power cut
    /// (survive) or lose every container (die).
    #[arg(long, default_value = "survive")]
    engines: String,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let mut options = Options::new(args.peers, args.seed);
    options.preset = match args.preset.as_str() {
        "lan" => Preset::Lan,
        "wan" => Preset::Wan,
        other => {
            eprintln!("unknown preset {other:?}: use lan or wan");
            return std::process::ExitCode::from(2);
        }
    };
    if let Some(loss) = args.loss {
        if !(0.0..=1.0).contains(&loss) {
            eprintln!("--loss must be between 0 and 1");
            return std::process::ExitCode::from(2);
        }
        options.net.loss = loss;
    }
    if args.peers < 2 {
        eprintln!("--peers must be at least 2");
        return std::process::ExitCode::from(2);
    }
    if scenarios::peer::NAMES.contains(&args.scenario.as_str()) {
        let mut peer = scenarios::peer::PeerOptions::new(args.peers, args.seed);
        peer.preset = options.preset;
        peer.net = options.net.clone();
        peer.rcs = args.rcs;
        peer.replicas = args.replicas;
        peer.start_latency_ms = args.start_latency_ms;
        peer.engines = match args.engines.parse() {
            Ok(e) => e,
            Err(e) => {
                eprintln!("{e}");
                return std::process::ExitCode::from(2);
            }
        };
        let report = match scenarios::peer::run(&args.scenario, &peer) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("{e}");
                return std::process::ExitCode::from(2);
            }
        };
        return print_report(&report, args.json, report.base.converged);
    }
    let report = match scenarios::run(&args.scenario, &options) {
        Ok(r) => r,
        Err(e) => {
            eprintln!(
                "{e} (known: {}, {})",
                NAMES.join(", "),
                scenarios::peer::NAMES.join(", ")
            );
            return std::process::ExitCode::from(2);
        }
    };
    print_report(&report, args.json, report.converged)
}

/// Prints the text report or one JSON line; the exit code says whether the
/// invariants held.
fn print_report(
    report: &(impl serde::Serialize + std::fmt::Display),
    json: bool,
    converged: bool,
) -> std::process::ExitCode {
    if json {
        match serde_json::to_string(report) {
            Ok(line) => println!("{line}"),
            Err(e) => {
                eprintln!("could not encode the report: {e}");
                return std::process::ExitCode::FAILURE;
            }
        }
    } else {
        print!("{report}");
    }
    if converged {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    }
}
