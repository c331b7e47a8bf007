//! Start and stop of one pod version, as a unit of containers.
//!
//! Start is idempotent: a complete, running set of containers is adopted; a
//! complete set with a dead member is restarted as a whole (the first
//! container holds the network namespace, so the others must rejoin it); a
//! partial set is removed and created afresh. Stop sends SIGTERM to every
//! container, SIGKILL after the grace period, then removes them.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bollard::models::{ContainerSummary, ContainerSummaryStateEnum};
use bollard::query_parameters::{
    CreateContainerOptions, KillContainerOptions, RemoveContainerOptions, StopContainerOptions,
};
use futures_util::future::join_all;
use shoal_crdt_state::pod::PublishedPort;
use shoal_crdt_state::spec::PodTemplate;

use super::naming::{PodKey, placement};
use super::order::{Queues, Turn};
use super::{DirectAddresses, Inner, create, engine_message, is_not_found};
use crate::vocabulary::{ExistingPod, PodAction, PodEvent};
use shoal_crdt_state::spec::Protocol;

/// Where a pod version stands, as far as event handling is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// An action is (re)creating it: its containers' deaths are our own doing.
    Starting,
    /// Running as far as we know: a death is reported as `Exited`.
    Up,
    /// Reported `Exited`; waits for the core to start it again.
    Down,
    /// Being stopped by us: deaths and removal are expected.
    Stopping,
}

#[derive(Debug)]
pub(crate) struct Tracked {
    pub phase: Phase,
    /// A container died while we were busy: re-check once the action is done.
    pub died_while_busy: bool,
    /// The readiness task of a running pod.
    pub probe: Option<tokio::task::AbortHandle>,
    /// Container ids in template order, once started: restarts and stops
    /// skip the listing (the engine's slowest call under load).
    pub ids: Vec<String>,
    /// Its published TCP host ports and the container's own address for
    /// each, once started (see [`DirectAddresses`]).
    pub direct: Vec<(u16, SocketAddr)>,
}

/// A started pod, as the engine reports it after the start.
pub(crate) struct Started {
    /// Container ids in template order.
    ids: Vec<String>,
    /// The host ports actually bound.
    ports: Vec<PublishedPort>,
    /// The pod's IP on its network (the first container holds it), if any.
    ip: Option<IpAddr>,
}

/// How a start failed, as the core will see it.
enum StartFailure {
    Image(String),
    Start(String),
}

impl Inner {
    /// The pod version `action` is about.
    pub(crate) fn key_of(action: &PodAction) -> PodKey {
        match action {
            PodAction::Start { pod, template } => (pod.clone(), template.hash()),
            PodAction::Stop {
                pod, template_hash, ..
            }
            | PodAction::StopOrphan {
                pod, template_hash, ..
            } => (pod.clone(), *template_hash),
        }
    }

    /// Runs `action` once every action handed over before it on the same
    /// pod version ended (`turn`, taken when it was handed over).
    pub(crate) async fn run_action(self: Arc<Self>, action: PodAction, mut turn: Turn<PodKey>) {
        let key = Self::key_of(&action);
        Queues::wait(&mut turn).await;
        // Starts (pulls, creates) take a slot; stops don't, so a long grace
        // period never holds up other pods. Stops are bounded by the pods we run.
        let permit = match &action {
            PodAction::Start { .. } => Some(self.actions.acquire().await),
            PodAction::Stop { .. } | PodAction::StopOrphan { .. } => None,
        };
        match action {
            PodAction::Start { template, .. } => self.start_pod(&key, &template).await,
            PodAction::Stop { grace, .. } => self.stop_pod(&key, grace).await,
            PodAction::StopOrphan { node, grace, .. } => self.stop_orphan(node, &key, grace).await,
        }
        drop(permit);
        self.order.end(turn);
    }

    /// Enters `phase`, stopping any readiness probe of the previous one.
    pub(crate) fn set_phase(&self, key: &PodKey, phase: Phase) -> bool {
        let mut pods = self.pods.lock().expect("pods mutex poisoned");
        let tracked = pods.entry(key.clone()).or_insert(Tracked {
            phase,
            died_while_busy: false,
            probe: None,
            ids: Vec::new(),
            direct: Vec::new(),
        });
        if let Some(probe) = tracked.probe.take() {
            probe.abort();
        }
        let died = std::mem::take(&mut tracked.died_while_busy);
        tracked.phase = phase;
        self.publish_direct(&pods);
        died
    }

    /// Republishes the direct addresses of the pods that are up (when
    /// they changed). Called with the pods lock held, after each change.
    pub(crate) fn publish_direct(&self, pods: &BTreeMap<PodKey, Tracked>) {
        let now: DirectAddresses = pods
            .values()
            .filter(|t| t.phase == Phase::Up)
            .flat_map(|t| t.direct.iter().copied())
            .collect();
        self.direct.send_if_modified(|current| {
            let changed = **current != now;
            if changed {
                *current = Arc::new(now);
            }
            changed
        });
    }

    /// The pod's container ids, if we started it and it is in `phase`.
    fn known_ids(&self, key: &PodKey, phases: &[Phase]) -> Option<Vec<String>> {
        let pods = self.pods.lock().expect("pods mutex poisoned");
        pods.get(key)
            .filter(|t| phases.contains(&t.phase) && !t.ids.is_empty())
            .map(|t| t.ids.clone())
    }

    fn remember_started(&self, key: &PodKey, started: &Started) {
        let mut pods = self.pods.lock().expect("pods mutex poisoned");
        if let Some(t) = pods.get_mut(key) {
            t.ids = started.ids.clone();
            t.direct = started.direct();
        }
    }

    pub(crate) fn forget(&self, key: &PodKey) {
        let mut pods = self.pods.lock().expect("pods mutex poisoned");
        if let Some(probe) = pods.remove(key).and_then(|t| t.probe) {
            probe.abort();
        }
        self.publish_direct(&pods);
    }

    pub(crate) fn abort_probes(&self) {
        let pods = self.pods.lock().expect("pods mutex poisoned");
        for probe in pods.values().filter_map(|t| t.probe.as_ref()) {
            probe.abort();
        }
    }

    async fn start_pod(self: &Arc<Self>, key: &PodKey, template: &PodTemplate) {
        if template.containers.is_empty() {
            self.observe(
                key,
                PodEvent::StartError("the pod template has no containers".into()),
            )
            .await;
            return;
        }
        let dead = self.known_ids(key, &[Phase::Down]);
        self.set_phase(key, Phase::Starting);
        match self.bring_up(key, template, dead).await {
            Ok(started) => {
                self.remember_started(key, &started);
                let Started { ids, ports, .. } = started;
                let died = self.set_phase(key, Phase::Up);
                self.observe(
                    key,
                    PodEvent::Running {
                        ports: ports.clone(),
                    },
                )
                .await;
                let probe = tokio::spawn(self.clone().probe_loop(
                    key.clone(),
                    template.clone(),
                    ids,
                    ports,
                ));
                self.attach_probe(key, probe.abort_handle());
                if died {
                    self.recheck(key).await;
                }
            }
            Err(failure) => {
                self.forget(key);
                let event = match failure {
                    StartFailure::Image(msg) => PodEvent::ImageError(msg),
                    StartFailure::Start(msg) => PodEvent::StartError(msg),
                };
                self.observe(key, event).await;
            }
        }
    }

    fn attach_probe(&self, key: &PodKey, probe: tokio::task::AbortHandle) {
        let mut pods = self.pods.lock().expect("pods mutex poisoned");
        match pods.get_mut(key) {
            Some(t) if t.phase == Phase::Up => t.probe = Some(probe),
            _ => probe.abort(),
        }
    }

    /// Makes the pod's containers exist and run; returns their ids (template
    /// order), the bound host ports and the pod's address.
    async fn bring_up(
        &self,
        key: &PodKey,
        template: &PodTemplate,
        dead: Option<Vec<String>>,
    ) -> Result<Started, StartFailure> {
        let fail = |what: &str, e: bollard::errors::Error| {
            StartFailure::Start(format!("{what}: {}", engine_message(&e)))
        };
        let size = template.containers.len();
        // Fast path: a pod we saw die restarts in place, as a unit.
        if let Some(ids) = dead.filter(|ids| ids.len() == size) {
            match self.restart_known(&ids).await {
                Ok(()) => return self.read_ports(ids).await,
                Err(e) if is_not_found(&e) => {} // removed meanwhile: rebuild below
                Err(e) => return Err(fail("restart the pod", e)),
            }
        }
        let existing = self
            .list(self.owner.key_filters(key))
            .await
            .map_err(|e| StartFailure::Start(e.to_string()))?;
        let docker = self.docker().map_err(|e| {
            StartFailure::Start(super::error_for(&self.host, "start", e).to_string())
        })?;
        let mut by_index: BTreeMap<usize, (String, bool)> = BTreeMap::new();
        for c in &existing {
            let Some(p) = c.labels.as_ref().and_then(placement) else {
                continue;
            };
            if p.size == size
                && let Some(id) = &c.id
            {
                let running = c.state == Some(ContainerSummaryStateEnum::RUNNING);
                by_index.insert(p.index, (id.clone(), running));
            }
        }
        let complete = existing.len() == size && by_index.keys().copied().eq(0..size);

        let ids: Vec<String> = if complete {
            let ids: Vec<String> = by_index.values().map(|(id, _)| id.clone()).collect();
            if !by_index.values().all(|(_, running)| *running) {
                // One member died: the pod restarts as a unit.
                for (id, _) in by_index.values().filter(|(_, running)| *running) {
                    let kill = KillContainerOptions {
                        signal: "SIGKILL".into(),
                    };
                    if let Err(e) = docker.kill_container(id, Some(kill)).await
                        && !matches!(
                            &e,
                            bollard::errors::Error::DockerResponseServerError {
                                status_code: 404 | 409,
                                ..
                            }
                        )
                    {
                        return Err(fail("kill the rest of the pod before its restart", e));
                    }
                }
                self.start_in_order(&ids).await?;
            }
            ids
        } else {
            self.remove_all(existing.iter().filter_map(|c| c.id.clone()).collect())
                .await;
            let mut images: Vec<_> = template
                .containers
                .iter()
                .map(|c| (c.image.as_str(), c.image_pull_policy))
                .collect();
            images.sort_unstable();
            images.dedup();
            for (image, policy) in images {
                self.ensure_image(image, policy, self.preparing(key))
                    .await
                    .map_err(StartFailure::Image)?;
                tracing::debug!(pod = %key.0, %image, "image ready");
            }
            let mut ids: Vec<String> = Vec::with_capacity(size);
            for (index, spec) in template.containers.iter().enumerate() {
                let body = create::container_body(
                    &self.owner,
                    key,
                    template,
                    index,
                    ids.first().map(String::as_str),
                    self.publish_ip,
                    self.pod_dns.get(),
                );
                let options = CreateContainerOptions {
                    name: Some(self.owner.container_name(key, &spec.name)),
                    ..Default::default()
                };
                match docker.create_container(Some(options), body).await {
                    Ok(created) => ids.push(created.id),
                    Err(e) => {
                        self.remove_all(ids).await;
                        return Err(fail(&format!("create container {}", spec.name), e));
                    }
                }
            }
            self.observe(key, PodEvent::Created).await;
            if let Err(failure) = self.start_in_order(&ids).await {
                self.remove_all(ids).await;
                return Err(failure);
            }
            ids
        };
        self.read_ports(ids).await
    }

    /// Kills what still runs of a pod, then starts all its containers in order.
    async fn restart_known(&self, ids: &[String]) -> Result<(), bollard::errors::Error> {
        let docker = self.docker()?;
        for id in ids {
            let kill = KillContainerOptions {
                signal: "SIGKILL".into(),
            };
            match docker.kill_container(id, Some(kill)).await {
                Ok(()) => {}
                // 409: not running, which is what we want.
                Err(bollard::errors::Error::DockerResponseServerError {
                    status_code: 409, ..
                }) => {}
                Err(e) => return Err(e),
            }
        }
        for id in ids {
            docker.start_container(id, None).await?;
        }
        Ok(())
    }

    /// The host ports bound for a started pod (all published on its first
    /// container), and its address on its network.
    async fn read_ports(&self, ids: Vec<String>) -> Result<Started, StartFailure> {
        let inspected = match self.docker() {
            Ok(docker) => docker.inspect_container(&ids[0], None).await,
            Err(e) => Err(e),
        };
        let first = inspected.map_err(|e| {
            StartFailure::Start(format!("inspect the started pod: {}", engine_message(&e)))
        })?;
        let network = first.network_settings.as_ref();
        let ports = create::published_ports(network.and_then(|n| n.ports.as_ref()));
        // Every network it is on has one; any of them reaches it from here.
        let ip = network
            .and_then(|n| n.networks.as_ref())
            .and_then(|networks| {
                networks
                    .values()
                    .filter_map(|n| n.ip_address.as_deref())
                    .find_map(|ip| ip.parse().ok())
            });
        Ok(Started { ids, ports, ip })
    }

    async fn start_in_order(&self, ids: &[String]) -> Result<(), StartFailure> {
        let docker = self.docker().map_err(|e| {
            StartFailure::Start(super::error_for(&self.host, "start", e).to_string())
        })?;
        for id in ids {
            docker.start_container(id, None).await.map_err(|e| {
                StartFailure::Start(format!("start container: {}", engine_message(&e)))
            })?;
        }
        Ok(())
    }

    /// Force-removes containers (and their anonymous volumes), tolerating ones already gone.
    async fn remove_all(&self, ids: Vec<String>) {
        let Ok(docker) = self.docker() else {
            return;
        };
        let docker = &docker;
        let removals = ids.iter().map(|id| async move {
            let options = RemoveContainerOptions {
                force: true,
                v: true,
                ..Default::default()
            };
            if let Err(e) = docker.remove_container(id, Some(options)).await
                && !is_not_found(&e)
            {
                tracing::warn!(container = %id, error = %engine_message(&e), "remove failed");
            }
        });
        join_all(removals).await;
    }

    /// Stops and removes a pod that `node` (not us) started: untracked, no
    /// observation (the core lists foreign pods again to see it gone).
    async fn stop_orphan(
        &self,
        node: shoal_crdt_state::node::NodeId,
        key: &PodKey,
        grace: Duration,
    ) {
        let ids: Vec<String> = match self.list(self.owner.foreign_key_filters(node, key)).await {
            Ok(list) => list.into_iter().filter_map(|c| c.id).collect(),
            Err(e) => {
                tracing::warn!(pod = %key.0, %node, error = %e, "orphan stop failed: cannot list it");
                return;
            }
        };
        self.stop_ids(&ids, grace).await;
        self.remove_all(ids).await;
    }

    /// SIGTERM, then SIGKILL after `grace`, for every container of `ids`.
    async fn stop_ids(&self, ids: &[String], grace: Duration) {
        let Ok(docker) = self.docker() else {
            return;
        };
        let docker = &docker;
        // The engine takes whole seconds; round up so the pod gets at least its grace.
        let t = i32::try_from(grace.as_millis().div_ceil(1000)).unwrap_or(i32::MAX);
        let stops = ids.iter().map(|id| async move {
            let options = StopContainerOptions {
                t: Some(t),
                ..Default::default()
            };
            // 304 (already stopped) and 404 (gone) are fine; the removal settles the rest.
            if let Err(e) = docker.stop_container(id, Some(options)).await
                && !is_not_found(&e)
            {
                tracing::debug!(container = %id, error = %engine_message(&e), "stop");
            }
        });
        join_all(stops).await;
    }

    async fn stop_pod(&self, key: &PodKey, grace: Duration) {
        let known = self.known_ids(key, &[Phase::Up, Phase::Down]);
        self.set_phase(key, Phase::Stopping);
        let listed = match known {
            Some(ids) => Ok(ids),
            None => self
                .list(self.owner.key_filters(key))
                .await
                .map(|list| list.into_iter().filter_map(|c| c.id).collect()),
        };
        let ids: Vec<String> = match listed {
            Ok(ids) => ids,
            Err(e) => {
                // Keep tracking it: a later Stop, or the re-list, finishes the job.
                tracing::warn!(pod = %key.0, error = %e, "stop failed: cannot list the pod");
                self.set_phase(key, Phase::Down);
                return;
            }
        };
        if self.docker().is_err() {
            self.set_phase(key, Phase::Down);
            return;
        }
        self.stop_ids(&ids, grace).await;
        self.remove_all(ids).await;
        self.forget(key);
        self.observe(key, PodEvent::Removed).await;
    }
}

impl Started {
    /// Each published TCP host port with the container's own address for it.
    fn direct(&self) -> Vec<(u16, SocketAddr)> {
        let Some(ip) = self.ip else {
            return Vec::new();
        };
        self.ports
            .iter()
            .filter(|p| p.protocol == Protocol::Tcp)
            .map(|p| (p.host_port, SocketAddr::new(ip, p.container_port)))
            .collect()
    }
}

/// Groups listed containers into pod versions; a pod runs when all of its
/// containers are present and running.
pub(crate) fn group_existing(containers: &[ContainerSummary]) -> Vec<ExistingPod> {
    struct Group {
        size: usize,
        running: usize,
        present: usize,
        ports: Vec<PublishedPort>,
    }
    let mut groups: BTreeMap<PodKey, Group> = BTreeMap::new();
    for c in containers {
        let Some(labels_of) = c.labels.as_ref() else {
            continue;
        };
        let Some(p) = placement(labels_of) else {
            continue;
        };
        let g = groups.entry(p.key).or_insert(Group {
            size: p.size,
            running: 0,
            present: 0,
            ports: Vec::new(),
        });
        g.present += 1;
        if c.state == Some(ContainerSummaryStateEnum::RUNNING) {
            g.running += 1;
        }
        if p.index == 0 {
            g.ports = summary_ports(c);
        }
    }
    groups
        .into_iter()
        .map(|(key, g)| ExistingPod {
            pod: key.0,
            template_hash: key.1,
            running: g.present == g.size && g.running == g.size,
            ports: g.ports,
        })
        .collect()
}

fn summary_ports(c: &ContainerSummary) -> Vec<PublishedPort> {
    use bollard::models::{PortBinding, PortSummaryTypeEnum};
    let mut map: HashMap<String, Option<Vec<PortBinding>>> = HashMap::new();
    for p in c.ports.iter().flatten() {
        let proto = match p.typ {
            Some(PortSummaryTypeEnum::UDP) => "udp",
            _ => "tcp",
        };
        if let Some(public) = p.public_port {
            map.entry(format!("{}/{proto}", p.private_port))
                .or_insert_with(|| Some(Vec::new()))
                .get_or_insert_with(Vec::new)
                .push(PortBinding {
                    host_ip: p.ip.clone(),
                    host_port: Some(public.to_string()),
                });
        }
    }
    create::published_ports(Some(&map))
}
