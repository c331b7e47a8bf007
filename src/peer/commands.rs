//! User commands: each is a local write stamped by our clock, spread at once.

use std::time::Duration;

use shoal_crdt_state::manifest::validate::MAX_REPLICAS;
use shoal_crdt_state::{StateError, image_ref};

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
        let (delta, outcome) = match command {
            Command::Apply(spec) => {
                let existed = self.state.desired.get(&spec.name).is_some();
                let delta = self.state.desired.apply(&spec, stamp);
                let outcome = match (existed, delta.is_empty()) {
                    (_, true) => CommandOutcome::Unchanged,
                    (false, false) => CommandOutcome::Created,
                    (true, false) => CommandOutcome::Configured,
                };
                (delta, outcome)
            }
            Command::Scale { name, replicas } => {
                if replicas > MAX_REPLICAS {
                    return Err(CommandError::Invalid(format!(
                        "replicas {replicas} is more than the {MAX_REPLICAS} one RC may declare"
                    )));
                }
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
            Command::Delete { name } => {
                let delta = self
                    .state
                    .desired
                    .delete(&name, stamp)
                    .map_err(|e| not_found(e, &name))?;
                (delta, CommandOutcome::Deleted)
            }
        };
        if !delta.is_empty() {
            self.rcs_dirty = true;
            self.placement_dirty = true;
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

fn not_found(error: StateError, name: &str) -> CommandError {
    match error {
        StateError::UnknownRc { .. } | StateError::DeletedRc { .. } => {
            CommandError::NotFound(name.to_owned())
        }
        other => CommandError::Invalid(other.to_string()),
    }
}
