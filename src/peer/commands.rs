//! User commands: each is a local write stamped by our clock, spread at once.

use std::time::Duration;

use shoal_crdt_state::manifest::validate;
use shoal_crdt_state::service::ServiceSpec;
use shoal_crdt_state::{LastApplied, StateError, image_ref, service_checks};

use super::events::{self, EventRecord, EventType};
use super::io::{Command, CommandError, CommandOutcome};
use super::{Peer, ms};

impl Peer {
    /// Applies a user's command to the desired state. On error nothing changed.
    pub fn handle_command(
        &mut self,
        now: Duration,
        command: Command,
    ) -> Result<CommandOutcome, CommandError> {
        let stamp = self.clock.tick(ms(now));
        let told = self.command_event(ms(now), &command);
        let (delta, outcome) = match command {
            Command::Apply(spec) => self.apply_rc(&spec, &LastApplied::Keep, stamp)?,
            Command::KubeApply { spec, last_applied } => {
                self.apply_rc(&spec, &LastApplied::Set(last_applied), stamp)?
            }
            Command::Scale { name, replicas } => {
                validate::replicas(replicas).map_err(CommandError::Invalid)?;
                let delta = self
                    .state
                    .desired
                    .scale(&name, replicas, stamp)
                    .map_err(|e| not_found(e, &name))?;
                (delta, CommandOutcome::Scaled)
            }
            Command::RollingUpdate {
                name,
                image,
                container,
            } => {
                if let Err(reason) = image_ref::parse(&image) {
                    return Err(CommandError::InvalidImage { image, reason });
                }
                let view = self
                    .state
                    .desired
                    .get(&name)
                    .ok_or_else(|| CommandError::NotFound(name.clone()))?;
                let mut template = view.template().clone();
                let target = match &container {
                    Some(c) => template.containers.iter_mut().find(|x| &x.name == c),
                    None => template.containers.first_mut(),
                };
                let Some(target) = target else {
                    return Err(CommandError::NoSuchContainer {
                        rc: name,
                        container: container.unwrap_or_default(),
                    });
                };
                if target.image == image {
                    return Ok(CommandOutcome::Unchanged);
                }
                target.image = image;
                let delta = self
                    .state
                    .desired
                    .set_template(&name, template, stamp)
                    .map_err(|e| not_found(e, &name))?;
                (delta, CommandOutcome::RollingUpdate)
            }
            Command::Undo { name, to_revision } => {
                let undo = self
                    .state
                    .desired
                    .undo(&name, to_revision, stamp)
                    .map_err(|e| not_found(e, &name))?;
                (undo.delta, CommandOutcome::RolledBack)
            }
            Command::Restart { name, at } => {
                let delta = self
                    .state
                    .desired
                    .restart(&name, &at, stamp)
                    .map_err(|e| not_found(e, &name))?;
                (delta, CommandOutcome::Restarted)
            }
            Command::Pause { name, paused } => {
                let delta = self
                    .state
                    .desired
                    .set_paused(&name, paused, stamp)
                    .map_err(|e| not_found(e, &name))?;
                let outcome = if paused {
                    CommandOutcome::Paused
                } else {
                    CommandOutcome::Resumed
                };
                (delta, outcome)
            }
            Command::Cordon { node, on } => {
                if self.state.observed.get(node).is_none() {
                    return Err(CommandError::NoSuchNode(node));
                }
                let delta = self.state.desired.cordon(node, on, stamp);
                let outcome = match (on, delta.is_empty()) {
                    (_, true) => CommandOutcome::Unchanged,
                    (true, false) => CommandOutcome::Cordoned,
                    (false, false) => CommandOutcome::Uncordoned,
                };
                (delta, outcome)
            }
            Command::RemoveNode { node } => {
                let Some(record) = self.state.observed.get(node) else {
                    return Err(CommandError::NoSuchNode(node));
                };
                if node == self.config.node || self.members.contains_key(&node) {
                    return Err(CommandError::NodeAlive {
                        node,
                        name: record.info.name.clone(),
                    });
                }
                let delta = self.state.remove_node(node, true, stamp);
                (delta, CommandOutcome::Deleted)
            }
            Command::ApplyService(spec) => self.apply_service(spec, &LastApplied::Keep, stamp)?,
            Command::KubeApplyService { spec, last_applied } => {
                self.apply_service(spec, &LastApplied::Set(last_applied), stamp)?
            }
            Command::DeleteService { name } => {
                let delta = self
                    .state
                    .desired
                    .delete_service(&name, stamp)
                    .map_err(|_| CommandError::ServiceNotFound(name.clone()))?;
                (delta, CommandOutcome::Deleted)
            }
            Command::Delete { name } => {
                let delta = self
                    .state
                    .desired
                    .delete(&name, stamp)
                    .map_err(|e| not_found(e, &name))?;
                (delta, CommandOutcome::Deleted)
            }
            Command::CreateToken { name, grant } => {
                let delta = self
                    .state
                    .desired
                    .create_token(&name, grant, stamp)
                    .map_err(CommandError::Token)?;
                (delta, CommandOutcome::Created)
            }
            Command::RotateJoinToken { new, grace_ms } => {
                let delta = self.state.desired.rotate_join_token(
                    &self.config.first_join_token,
                    new,
                    stamp.physical_ms,
                    grace_ms,
                    stamp,
                );
                (delta, CommandOutcome::Created)
            }
            Command::RevokeToken { name } => {
                let delta = self
                    .state
                    .desired
                    .revoke_token(&name, stamp)
                    .map_err(CommandError::Token)?;
                let outcome = if delta.is_empty() {
                    CommandOutcome::Unchanged
                } else {
                    CommandOutcome::Revoked
                };
                (delta, outcome)
            }
        };
        if !delta.is_empty()
            && let Some(record) = told
        {
            self.record(record);
        }
        if !delta.is_empty() {
            // Services change neither placement nor what a node runs.
            if !delta.rcs.is_empty() || !delta.nodes.is_empty() {
                self.rcs_dirty = true;
                self.placement_dirty = true;
            }
            let decided = !delta.nodes.is_empty();
            self.outputs
                .push_back(super::Output::Persist(delta.clone().into()));
            self.spread(now, delta.into());
            if decided {
                self.follow_node_decisions(now);
            }
            self.request_reconcile(now);
        }
        Ok(outcome)
    }
}

impl Peer {
    /// What a command does, told on its object if it changes anything.
    fn command_event(&self, at: u64, command: &Command) -> Option<EventRecord> {
        let normal = |reason, object, message| {
            Some(EventRecord::new(
                at,
                EventType::Normal,
                reason,
                object,
                message,
            ))
        };
        match command {
            Command::Scale { name, replicas } => {
                let was = self.state.desired.get(name)?.replicas;
                normal(
                    "Scaled",
                    events::rc(name),
                    format!("Scaled from {was} to {replicas} replicas"),
                )
            }
            Command::RollingUpdate { name, image, .. } => normal(
                "RollingUpdate",
                events::rc(name),
                format!("Rolling update to image {image} started"),
            ),
            Command::Cordon { node, on } => {
                let name = self.node_name(*node);
                let (reason, message) = if *on {
                    (
                        "NodeNotSchedulable",
                        format!(
                            "Node {name} cordoned: no new replicas; its replicas move away (drain)"
                        ),
                    )
                } else {
                    ("NodeSchedulable", format!("Node {name} uncordoned"))
                };
                normal(reason, events::node(&name), message)
            }
            Command::Apply(spec) | Command::KubeApply { spec, .. } => normal(
                "Applied",
                events::rc(&spec.name),
                format!(
                    "Declared {} replicas of image {}",
                    spec.replicas,
                    spec.template.primary_image()
                ),
            ),
            Command::Delete { name } => {
                normal("Deleted", events::rc(name), "Deleted; its pods stop".into())
            }
            Command::RemoveNode { node } => {
                let name = self.node_name(*node);
                normal(
                    "NodeRemoved",
                    events::node(&name),
                    format!("Node {name} deleted from the cluster"),
                )
            }
            Command::ApplyService(spec) | Command::KubeApplyService { spec, .. } => normal(
                "Applied",
                events::service(&spec.name),
                "Service declared; every peer serves it".into(),
            ),
            Command::DeleteService { name } => {
                normal("Deleted", events::service(name), "Service deleted".into())
            }
            Command::Undo { name, to_revision } => normal(
                "RollbackStarted",
                events::rc(name),
                match to_revision {
                    Some(n) => format!("Rolling back to revision {n}"),
                    None => "Rolling back to the previous revision".into(),
                },
            ),
            Command::Restart { name, .. } => normal(
                "RolloutRestart",
                events::rc(name),
                "Restart: every pod is replaced, same images".into(),
            ),
            Command::Pause { name, paused } => normal(
                if *paused {
                    "RolloutPaused"
                } else {
                    "RolloutResumed"
                },
                events::rc(name),
                if *paused {
                    "Rollout paused: no running pod moves to the new template".into()
                } else {
                    "Rollout resumed".into()
                },
            ),
            // Tokens are no object `get events` shows; `token list` shows them.
            Command::CreateToken { .. }
            | Command::RevokeToken { .. }
            | Command::RotateJoinToken { .. } => None,
        }
    }

    /// Checks a service against every other live service and RC (the same
    /// rules a manifest is checked with), allocates its missing node ports
    /// (keeping the ones it already has), and writes it.
    fn apply_rc(
        &mut self,
        spec: &shoal_crdt_state::spec::RcSpec,
        last_applied: &LastApplied,
        stamp: shoal_crdt_state::Hlc,
    ) -> Result<(shoal_crdt_state::DesiredDelta, CommandOutcome), CommandError> {
        let services = self.state.desired.live_services();
        let clashes = service_checks::service_port_clashes(
            &spec.name,
            &spec.template,
            services.map(|s| (s.name, s.body)),
        );
        if !clashes.is_empty() {
            return Err(CommandError::RcRejected(clashes));
        }
        let existed = self.state.desired.get(&spec.name).is_some();
        let delta = self.state.desired.apply_with(spec, last_applied, stamp);
        let outcome = match (existed, delta.is_empty()) {
            (_, true) => CommandOutcome::Unchanged,
            (false, false) => CommandOutcome::Created,
            (true, false) => CommandOutcome::Configured,
        };
        Ok((delta, outcome))
    }

    fn apply_service(
        &mut self,
        mut spec: ServiceSpec,
        last_applied: &LastApplied,
        stamp: shoal_crdt_state::Hlc,
    ) -> Result<(shoal_crdt_state::DesiredDelta, CommandOutcome), CommandError> {
        let desired = &self.state.desired;
        let existing = desired.service(&spec.name);
        if let Some(current) = existing {
            for port in spec.body.ports.iter_mut().filter(|p| p.node_port.is_none()) {
                port.node_port = current
                    .body
                    .ports
                    .iter()
                    .find(|p| p.port == port.port)
                    .and_then(|p| p.node_port);
            }
        }
        let others = || desired.live_services().map(|s| (s.name, s.body));
        let templates = || desired.live_rcs().map(|rc| (rc.name, &rc.body.template));
        let mut problems = service_checks::port_clashes(&spec.name, &spec.body, others());
        problems.extend(service_checks::host_port_clashes(
            &spec.name,
            &spec.body,
            templates(),
        ));
        problems.extend(service_checks::missing_target_ports(
            &spec.name,
            &spec.body,
            templates(),
        ));
        if problems.is_empty()
            && let Err(full) = service_checks::allocate_node_ports(&mut spec, others(), templates())
        {
            problems.push(full);
        }
        if !problems.is_empty() {
            return Err(CommandError::ServiceRejected(problems));
        }
        let existed = existing.is_some();
        let delta = self
            .state
            .desired
            .apply_service_with(&spec, last_applied, stamp);
        let outcome = match (existed, delta.is_empty()) {
            (_, true) => CommandOutcome::Unchanged,
            (false, false) => CommandOutcome::Created,
            (true, false) => CommandOutcome::Configured,
        };
        Ok((delta, outcome))
    }
}

fn not_found(error: StateError, name: &str) -> CommandError {
    match error {
        StateError::UnknownRc { .. } | StateError::DeletedRc { .. } => {
            CommandError::NotFound(name.to_owned())
        }
        StateError::UnknownRevision { .. }
        | StateError::NoEarlierRevision { .. }
        | StateError::AlreadyAtRevision { .. }
        | StateError::AlreadyPaused { .. }
        | StateError::NotPaused { .. } => CommandError::Rollout(error),
        other => CommandError::Invalid(other.to_string()),
    }
}
