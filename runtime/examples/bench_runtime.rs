//! Benchmark of the Docker executor against the engine's own CLI, in the same run.
//!
//!     bash scripts/test-images.sh
//!     cargo run --release -p shoal-runtime --features docker --example bench_runtime [-- --pods 50 --kills 20]
//!
//! Measures (1) starting N pods concurrently vs N sequential `docker run -d`
//! of the same image, (2) container killed → replacement running, with the
//! restart decided as the core would (RestartBackoff, first restart at once),
//! (3) stop + remove of N pods. Prints a Markdown section for BENCHMARKS.md.
//! Removes everything it created (labels `io.shoal.bench` / its cluster id).

use std::collections::{BTreeMap, HashMap};
use std::process::Command;
use std::time::{Duration, Instant};

use bollard::query_parameters::{KillContainerOptions, ListContainersOptions};
use shoal_crdt_state::node::NodeId;
use shoal_crdt_state::pod::PodId;
use shoal_crdt_state::spec::{ContainerSpec, PodTemplate, PortSpec, Protocol, RestartPolicy};
use shoal_runtime::backoff::RestartBackoff;
use shoal_runtime::docker::{DockerRuntime, RuntimeConfig};
use shoal_runtime::vocabulary::{PodAction, PodEvent, PodObservation, labels};
use tokio::sync::mpsc::Receiver;

const IMAGE: &str = "shoal-test/hello:1.0";
const PATIENCE: Duration = Duration::from_secs(120);

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), BoxError> {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str, default: usize| -> usize {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let pods = arg("--pods", 50);
    let kills = arg("--kills", 20).min(pods);
    ensure_image()?;

    let run_id = format!("bench-{}", std::process::id());
    let result = run(&run_id, pods, kills).await;
    cleanup(&run_id);
    let report = result?;
    print!("{report}");
    Ok(())
}

async fn run(run_id: &str, pods: usize, kills: usize) -> Result<String, BoxError> {
    // Baseline: the engine's CLI, one `docker run -d` after another.
    let started = Instant::now();
    for _ in 0..pods {
        let status = Command::new("docker")
            .args(["run", "-d", "--label"])
            .arg(format!("io.shoal.bench={run_id}"))
            .args(["-p", "127.0.0.1::80", IMAGE])
            .output()?;
        if !status.status.success() {
            return Err(format!(
                "docker run failed: {}",
                String::from_utf8_lossy(&status.stderr)
            )
            .into());
        }
    }
    let baseline_start = started.elapsed();
    let ids = cli_ids(&format!("label=io.shoal.bench={run_id}"));
    let started = Instant::now();
    let status = Command::new("docker").arg("stop").args(&ids).output()?;
    let status2 = Command::new("docker").arg("rm").args(&ids).output()?;
    if !status.status.success() || !status2.status.success() {
        return Err("docker stop/rm of the baseline containers failed".into());
    }
    let baseline_stop = started.elapsed();

    // Shoal's executor.
    let (rt, mut rx) = DockerRuntime::connect(RuntimeConfig::new(run_id, NodeId(1))).await?;
    if let Some(err) = rt.health().error() {
        return Err(err.to_string().into());
    }
    let template = template();
    let all: Vec<PodId> = (0..pods as u32)
        .map(|index| PodId {
            rc: "bench".into(),
            index,
        })
        .collect();
    let started = Instant::now();
    for pod in &all {
        rt.execute(PodAction::Start {
            pod: pod.clone(),
            template: template.clone(),
        });
    }
    wait_all(&mut rx, pods, "Running", |e| {
        matches!(e, PodEvent::Running { .. })
    })
    .await?;
    let shoal_start = started.elapsed();

    // Kill → replacement running, one pod at a time.
    let docker = bollard::Docker::connect_with_defaults()?
        .negotiate_version()
        .await?;
    let mut latencies = Vec::with_capacity(kills);
    let backoff = RestartBackoff::default();
    for pod in all.iter().take(kills) {
        let id = container_of(&docker, run_id, pod).await?;
        let started = Instant::now();
        let kill = KillContainerOptions {
            signal: "SIGKILL".into(),
        };
        docker.kill_container(&id, Some(kill)).await?;
        wait_one(&mut rx, pod, |e| matches!(e, PodEvent::Exited { .. })).await?;
        tokio::time::sleep(backoff.delay(1)).await;
        rt.execute(PodAction::Start {
            pod: pod.clone(),
            template: template.clone(),
        });
        wait_one(&mut rx, pod, |e| matches!(e, PodEvent::Running { .. })).await?;
        latencies.push(started.elapsed());
    }
    latencies.sort();

    // Stop + remove everything.
    let started = Instant::now();
    for pod in &all {
        rt.execute(PodAction::Stop {
            pod: pod.clone(),
            template_hash: template.hash(),
            grace: Duration::from_secs(10),
        });
    }
    wait_all(&mut rx, pods, "Removed", |e| *e == PodEvent::Removed).await?;
    let shoal_stop = started.elapsed();
    let leftover = cli_ids(&format!("label={}={run_id}", labels::CLUSTER)).len();

    let pct = |q: f64| latencies[((latencies.len() as f64 - 1.0) * q).round() as usize];
    let secs = |d: Duration| format!("{:.2} s", d.as_secs_f64());
    let ms = |d: Duration| format!("{:.0} ms", d.as_secs_f64() * 1000.0);
    let engine = engine_version();
    let mut out = String::new();
    out.push_str("### Docker runtime\n\n");
    out.push_str(&format!(
        "Engine {engine}, {} CPUs, image `{IMAGE}` (busybox httpd, SIGTERM handled), {pods} pods, {kills} kills.\n\n",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    ));
    out.push_str("| measure | shoal executor | baseline (same run) | ratio | target |\n");
    out.push_str("|---|---|---|---|---|\n");
    out.push_str(&format!(
        "| start {pods} pods (all Running, ports read back) | {} | {} (sequential `docker run -d -p`) | {:.2} | ≤ 0.7 |\n",
        secs(shoal_start),
        secs(baseline_start),
        shoal_start.as_secs_f64() / baseline_start.as_secs_f64()
    ));
    out.push_str(&format!(
        "| container killed → replacement Running, p50 | {} | – | – | < 0.5 s |\n",
        ms(pct(0.5))
    ));
    out.push_str(&format!(
        "| container killed → replacement Running, p90 / max | {} / {} | – | – | – |\n",
        ms(pct(0.9)),
        ms(pct(1.0))
    ));
    out.push_str(&format!(
        "| stop + remove {pods} pods (grace 10 s) | {} | {} (`docker stop` + `docker rm`, all ids) | {:.2} | < 3 s |\n",
        secs(shoal_stop),
        secs(baseline_stop),
        shoal_stop.as_secs_f64() / baseline_stop.as_secs_f64()
    ));
    out.push_str(&format!("\nContainers left after stop: {leftover}.\n\n"));
    out.push_str(
        "Command: `bash scripts/test-images.sh && cargo run --release -p shoal-runtime --features docker --example bench_runtime`\n",
    );
    Ok(out)
}

fn template() -> PodTemplate {
    PodTemplate {
        labels: BTreeMap::from([("app".into(), "bench".into())]),
        containers: vec![ContainerSpec {
            ports: vec![PortSpec {
                container_port: 80,
                host_port: None,
                protocol: Protocol::Tcp,
                name: None,
            }],
            ..ContainerSpec::new("web", IMAGE)
        }],
        node_selector: BTreeMap::new(),
        restart_policy: RestartPolicy::Always,
        termination_grace_period_secs: 10,
    }
}

/// Waits until `n` distinct pods reported an event matching `want`.
async fn wait_all(
    rx: &mut Receiver<PodObservation>,
    n: usize,
    what: &str,
    want: impl Fn(&PodEvent) -> bool,
) -> Result<(), BoxError> {
    let deadline = Instant::now() + PATIENCE;
    let mut done = std::collections::BTreeSet::new();
    while done.len() < n {
        let obs = next(rx, deadline).await?;
        match &obs.event {
            e if want(e) => {
                done.insert(obs.pod);
            }
            PodEvent::ImageError(m) | PodEvent::StartError(m) => {
                return Err(format!("{} failed: {m}", obs.pod).into());
            }
            _ => {}
        }
    }
    let _ = what;
    Ok(())
}

async fn wait_one(
    rx: &mut Receiver<PodObservation>,
    pod: &PodId,
    want: impl Fn(&PodEvent) -> bool,
) -> Result<(), BoxError> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let obs = next(rx, deadline).await?;
        if &obs.pod == pod && want(&obs.event) {
            return Ok(());
        }
    }
}

async fn next(
    rx: &mut Receiver<PodObservation>,
    deadline: Instant,
) -> Result<PodObservation, BoxError> {
    let left = deadline.saturating_duration_since(Instant::now());
    match tokio::time::timeout(left, rx.recv()).await {
        Ok(Some(obs)) => Ok(obs),
        Ok(None) => Err("observation channel closed".into()),
        Err(_) => Err(format!("no observation within {PATIENCE:?}").into()),
    }
}

async fn container_of(
    docker: &bollard::Docker,
    cluster: &str,
    pod: &PodId,
) -> Result<String, BoxError> {
    let filters = HashMap::from([(
        "label".to_string(),
        vec![
            format!("{}={cluster}", labels::CLUSTER),
            format!("{}={}", labels::RC, pod.rc),
            format!("{}={}", labels::REPLICA, pod.index),
        ],
    )]);
    let options = ListContainersOptions {
        filters: Some(filters),
        ..Default::default()
    };
    let list = docker.list_containers(Some(options)).await?;
    list.into_iter()
        .find_map(|c| c.id)
        .ok_or_else(|| format!("no running container for {pod}").into())
}

fn cli_ids(filter: &str) -> Vec<String> {
    Command::new("docker")
        .args(["ps", "-aq", "--filter", filter])
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn cleanup(run_id: &str) {
    for filter in [
        format!("label=io.shoal.bench={run_id}"),
        format!("label={}={run_id}", labels::CLUSTER),
    ] {
        let ids = cli_ids(&filter);
        if !ids.is_empty() {
            let _ = Command::new("docker")
                .arg("rm")
                .arg("-f")
                .args(&ids)
                .output();
        }
    }
}

fn engine_version() -> String {
    Command::new("docker")
        .args([
            "version",
            "--format",
            "{{.Server.Version}} (API {{.Server.APIVersion}})",
        ])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

fn ensure_image() -> Result<(), BoxError> {
    let present = Command::new("docker")
        .args(["image", "inspect", IMAGE])
        .output()
        .is_ok_and(|o| o.status.success());
    if !present {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/test-images.sh");
        let status = Command::new("bash").arg(script).status()?;
        if !status.success() {
            return Err("scripts/test-images.sh failed".into());
        }
    }
    Ok(())
}
