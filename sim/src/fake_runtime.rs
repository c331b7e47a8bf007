//! A fake container runtime, one per simulated node: the ground truth of
//! what runs where.
//!
//! It speaks the real vocabulary (`PodAction` in, `PodObservation` out) with
//! the timing of an engine: a start is `Created` at once, then
//! `Running { ports }` and `Ready(true)` after the start latency; a stop is
//! `Removed` after the stop delay. A pod can be crashed (`Exited { 137 }`).
//! Like Docker, it binds a pod's `hostPort`s for as long as the container
//! exists, and refuses to start a pod whose host port another pod has
//! ("port is already allocated"); ports the engine would pick are not modelled.
//! Delayed steps are returned as [`RuntimeStep`]s for the node to schedule
//! as timers, so the runtime itself owns no clock.

use std::collections::BTreeMap;

use shoal_crdt_state::pod::{PodId, PublishedPort};
use shoal_crdt_state::spec::TemplateHash;
use shoal_runtime::vocabulary::{ExistingPod, PodAction, PodEvent, PodObservation};

use crate::queue::Micros;

/// Timings of the fake engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuntimeConfig {
    /// From `Start` to `Running` (image present, container up).
    pub start_latency: Micros,
    /// From `Stop` to `Removed` (a container that honours SIGTERM).
    pub stop_delay: Micros,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            start_latency: 200_000,
            stop_delay: 50_000,
        }
    }
}

/// Where a pod of the fake engine is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FakePhase {
    Created,
    Running,
    /// Asked to stop; still running until removed.
    Stopping,
    Exited,
}

/// One pod of the fake engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakePod {
    pub template_hash: TemplateHash,
    pub phase: FakePhase,
    /// Bumped at every start, so a step scheduled for an older start of the
    /// same replica is recognised as stale.
    pub generation: u64,
    /// The template's host ports, bound while the container exists.
    pub ports: Vec<PublishedPort>,
}

/// A delayed step the node must schedule and hand back with
/// [`FakeRuntime::handle_step`] at `at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeStep {
    pub at: Micros,
    pub pod: PodId,
    pub generation: u64,
    pub kind: StepKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepKind {
    Run,
    Remove,
}

/// What happened in the engine, for the scenario's trackers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuntimeChange {
    Running(PodId),
    Stopped(PodId),
}

/// The fake engine of one node.
#[derive(Debug, Clone, Default)]
pub struct FakeRuntime {
    pub config: RuntimeConfig,
    pods: BTreeMap<PodId, FakePod>,
    next_generation: u64,
    /// Starts and stops the engine carried out (counters for the report).
    pub starts: u64,
    pub stops: u64,
}

impl FakeRuntime {
    pub fn new(config: RuntimeConfig) -> Self {
        FakeRuntime {
            config,
            ..FakeRuntime::default()
        }
    }

    /// Carries out one action; returns the observations due now and the
    /// steps to schedule.
    pub fn handle_action(
        &mut self,
        now: Micros,
        action: &PodAction,
    ) -> (Vec<PodObservation>, Option<RuntimeStep>) {
        match action {
            PodAction::Start { pod, template } => {
                let template_hash = template.hash();
                if let Some(existing) = self.pods.get(pod)
                    && existing.phase == FakePhase::Running
                    && existing.template_hash == template_hash
                {
                    // Like Docker's executor: starting a pod that runs
                    // takes it over (adoption after a peer restart).
                    let obs = [
                        PodEvent::Running { ports: Vec::new() },
                        PodEvent::Ready(true),
                    ];
                    let obs = obs
                        .into_iter()
                        .map(|e| observe(pod, template_hash, e))
                        .collect();
                    return (obs, None);
                }
                if let Some(existing) = self.pods.get(pod)
                    && existing.phase != FakePhase::Exited
                {
                    // Docker refuses a second container of the same name.
                    let obs = observe(
                        pod,
                        template_hash,
                        PodEvent::StartError("container name already in use".into()),
                    );
                    return (vec![obs], None);
                }
                let ports = template.host_port_bindings();
                if let Some(taken) = self.taken(pod, &ports) {
                    let message = format!(
                        "Bind for 0.0.0.0:{} failed: port is already allocated",
                        taken.host_port
                    );
                    let obs = observe(pod, template_hash, PodEvent::StartError(message));
                    return (vec![obs], None);
                }
                self.starts += 1;
                self.next_generation += 1;
                let generation = self.next_generation;
                self.pods.insert(
                    pod.clone(),
                    FakePod {
                        template_hash,
                        phase: FakePhase::Created,
                        generation,
                        ports,
                    },
                );
                let step = RuntimeStep {
                    at: now + self.config.start_latency,
                    pod: pod.clone(),
                    generation,
                    kind: StepKind::Run,
                };
                (
                    vec![observe(pod, template_hash, PodEvent::Created)],
                    Some(step),
                )
            }
            // Each simulated node has its own engine: no other node's pods
            // are ever on it.
            PodAction::StopOrphan { .. } => (Vec::new(), None),
            PodAction::Stop {
                pod, template_hash, ..
            } => {
                let Some(existing) = self.pods.get_mut(pod) else {
                    // Nothing to stop: the engine reports it gone.
                    return (vec![observe(pod, *template_hash, PodEvent::Removed)], None);
                };
                existing.phase = FakePhase::Stopping;
                let step = RuntimeStep {
                    at: now + self.config.stop_delay,
                    pod: pod.clone(),
                    generation: existing.generation,
                    kind: StepKind::Remove,
                };
                (Vec::new(), Some(step))
            }
        }
    }

    /// A scheduled step came due. Stale steps (a newer start, or a stop
    /// that overtook a start) do nothing.
    pub fn handle_step(
        &mut self,
        step: &RuntimeStep,
    ) -> (Vec<PodObservation>, Option<RuntimeChange>) {
        let Some(pod) = self.pods.get_mut(&step.pod) else {
            return (Vec::new(), None);
        };
        if pod.generation != step.generation {
            return (Vec::new(), None);
        }
        let hash = pod.template_hash;
        match step.kind {
            StepKind::Run if pod.phase == FakePhase::Created => {
                pod.phase = FakePhase::Running;
                let ports = pod.ports.clone();
                (
                    vec![
                        observe(&step.pod, hash, PodEvent::Running { ports }),
                        observe(&step.pod, hash, PodEvent::Ready(true)),
                    ],
                    Some(RuntimeChange::Running(step.pod.clone())),
                )
            }
            StepKind::Run => (Vec::new(), None),
            StepKind::Remove => {
                let was_running = pod.phase == FakePhase::Stopping;
                self.pods.remove(&step.pod);
                self.stops += 1;
                (
                    vec![observe(&step.pod, hash, PodEvent::Removed)],
                    was_running.then(|| RuntimeChange::Stopped(step.pod.clone())),
                )
            }
        }
    }

    /// Crash injection: the pod's process is killed (SIGKILL, exit 137).
    /// Only the unit tests kill a pod; no scenario injects it yet.
    #[cfg(test)]
    pub fn kill(&mut self, pod: &PodId) -> Option<PodObservation> {
        let p = self.pods.get_mut(pod)?;
        if !matches!(p.phase, FakePhase::Running | FakePhase::Created) {
            return None;
        }
        p.phase = FakePhase::Exited;
        Some(observe(
            pod,
            p.template_hash,
            PodEvent::Exited {
                code: 137,
                oom_killed: false,
            },
        ))
    }

    /// Pods that count as running copies (stopping ones still serve).
    pub fn running(&self) -> impl Iterator<Item = (&PodId, &FakePod)> + '_ {
        self.pods
            .iter()
            .filter(|(_, p)| matches!(p.phase, FakePhase::Running | FakePhase::Stopping))
    }

    pub fn get(&self, pod: &PodId) -> Option<&FakePod> {
        self.pods.get(pod)
    }

    pub fn len(&self) -> usize {
        self.pods.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pods.is_empty()
    }

    /// The engine's listing after a peer restart (adoption). Pods caught
    /// mid-start or mid-stop settle first: a restarted engine has no
    /// pending work, so they are running or gone.
    pub fn settle_for_restart(&mut self) -> Vec<ExistingPod> {
        self.pods.retain(|_, p| p.phase != FakePhase::Stopping);
        for p in self.pods.values_mut() {
            if p.phase == FakePhase::Created {
                p.phase = FakePhase::Running;
            }
            // Steps of the old process's timers are void after a restart.
            self.next_generation += 1;
            p.generation = self.next_generation;
        }
        self.pods
            .iter()
            .map(|(pod, p)| ExistingPod {
                pod: pod.clone(),
                template_hash: p.template_hash,
                running: p.phase == FakePhase::Running,
                ports: p.ports.clone(),
            })
            .collect()
    }

    /// The first of `ports` that another pod's container has bound.
    fn taken(&self, pod: &PodId, ports: &[PublishedPort]) -> Option<PublishedPort> {
        let bound = self
            .pods
            .iter()
            .filter(|(id, p)| *id != pod && p.phase != FakePhase::Exited)
            .flat_map(|(_, p)| &p.ports);
        for b in bound {
            if let Some(p) = ports
                .iter()
                .find(|p| p.host_port == b.host_port && p.protocol == b.protocol)
            {
                return Some(*p);
            }
        }
        None
    }
}

fn observe(pod: &PodId, template_hash: TemplateHash, event: PodEvent) -> PodObservation {
    PodObservation {
        pod: pod.clone(),
        template_hash,
        event,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_crdt_state::spec::{ContainerSpec, PodTemplate, PortSpec, Protocol, RestartPolicy};

    fn template() -> PodTemplate {
        PodTemplate {
            labels: Default::default(),
            containers: Vec::new(),
            node_selector: Default::default(),
            restart_policy: RestartPolicy::Always,
            termination_grace_period_secs: 1,
        }
    }

    fn pod(i: u32) -> PodId {
        PodId {
            rc: "web".into(),
            index: i,
        }
    }

    #[test]
    fn a_start_runs_after_the_latency_and_a_stop_removes_it() {
        let mut rt = FakeRuntime::new(RuntimeConfig::default());
        let (obs, step) = rt.handle_action(
            0,
            &PodAction::Start {
                pod: pod(0),
                template: template(),
            },
        );
        assert_eq!(obs[0].event, PodEvent::Created);
        let step = step.unwrap();
        assert_eq!(step.at, 200_000);
        assert_eq!(rt.running().count(), 0);
        let (obs, change) = rt.handle_step(&step);
        assert!(matches!(obs[0].event, PodEvent::Running { .. }));
        assert_eq!(change, Some(RuntimeChange::Running(pod(0))));
        assert_eq!(rt.running().count(), 1);
        let (_, stop) = rt.handle_action(
            300_000,
            &PodAction::Stop {
                pod: pod(0),
                template_hash: template().hash(),
                grace: std::time::Duration::from_secs(1),
            },
        );
        let (obs, _) = rt.handle_step(&stop.unwrap());
        assert_eq!(obs[0].event, PodEvent::Removed);
        assert!(rt.is_empty());
    }

    #[test]
    fn a_killed_pod_exits_137_and_a_stale_run_step_does_nothing() {
        let mut rt = FakeRuntime::new(RuntimeConfig::default());
        let start = PodAction::Start {
            pod: pod(1),
            template: template(),
        };
        let (_, first) = rt.handle_action(0, &start);
        let killed = rt.kill(&pod(1)).unwrap();
        assert!(matches!(killed.event, PodEvent::Exited { code: 137, .. }));
        let (_, second) = rt.handle_action(10, &start);
        assert!(rt.handle_step(&first.unwrap()).0.is_empty());
        assert_eq!(rt.handle_step(&second.unwrap()).0.len(), 2);
    }

    #[test]
    fn a_host_port_bound_by_another_pod_refuses_the_start_until_it_is_removed() {
        let mut rt = FakeRuntime::new(RuntimeConfig::default());
        let mut on_port = template();
        let mut main = ContainerSpec::new("main", "img:1");
        main.ports.push(PortSpec {
            container_port: 80,
            host_port: Some(18080),
            protocol: Protocol::Tcp,
            name: None,
        });
        on_port.containers.push(main);
        let start = |i| PodAction::Start {
            pod: pod(i),
            template: on_port.clone(),
        };
        let (_, run) = rt.handle_action(0, &start(0));
        let (obs, _) = rt.handle_step(&run.unwrap());
        assert!(
            matches!(&obs[0].event, PodEvent::Running { ports } if ports[0].host_port == 18080)
        );

        let (obs, step) = rt.handle_action(10, &start(1));
        assert!(step.is_none());
        assert!(
            matches!(&obs[0].event, PodEvent::StartError(m) if m.contains("port is already allocated"))
        );

        let (_, remove) = rt.handle_action(
            20,
            &PodAction::Stop {
                pod: pod(0),
                template_hash: on_port.hash(),
                grace: std::time::Duration::from_secs(1),
            },
        );
        assert!(
            rt.handle_action(30, &start(1)).1.is_none(),
            "stopping still binds"
        );
        rt.handle_step(&remove.unwrap());
        assert!(rt.handle_action(40, &start(1)).1.is_some());
    }
}
