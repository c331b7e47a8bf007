//! Applying a manifest: its RCs, then its services (`POST /rcs`, `POST
//! /services` and `PUT /services/{name}` all land here).
//!
//! Services, and RCs that bind host ports, are checked against what this
//! peer knows before anything is written, so that a manifest whose service
//! clashes with another one (or whose RC binds a service's port) changes
//! nothing; the peer core checks each again when it writes it (the
//! state may have moved in between). RCs come first so that a service's
//! named target port finds the containers of an RC in the same manifest.

use axum::Json;
use axum::http::StatusCode;
use shoal_crdt_state::manifest::{self, ParsedManifests};
use shoal_crdt_state::{LastApplied, service_checks};

use super::ApiState;
use super::error::ApiError;
use super::models::{AppliedJson, ApplyResponse};
use crate::peer::{Command, CommandError, CommandOutcome};
use crate::shell::handle::Ack;

/// Manifest text (YAML or JSON) read into specs, or the 400/422 saying why not.
pub(super) fn parse(body: &[u8]) -> Result<ParsedManifests, ApiError> {
    let text = std::str::from_utf8(body).map_err(|e| {
        ApiError::bad_request(format!(
            "the manifest is not UTF-8 text (byte {}); send YAML or JSON",
            e.valid_up_to()
        ))
    })?;
    manifest::parse_manifests(text).map_err(|e| ApiError::manifest(&e))
}

/// Applies every object of `parsed`; 201 when something was created.
/// Stored last-applied texts stay as they are.
pub(super) async fn apply(
    state: &ApiState,
    parsed: ParsedManifests,
    ack: Ack,
) -> Result<(StatusCode, Json<ApplyResponse>), ApiError> {
    apply_with(state, parsed, ack, LastApplied::Keep).await
}

/// [`apply`], with what becomes of each object's last-applied text (the
/// Kubernetes API sets the annotation the object carries).
pub(super) async fn apply_with(
    state: &ApiState,
    parsed: ParsedManifests,
    ack: Ack,
    last_applied: LastApplied,
) -> Result<(StatusCode, Json<ApplyResponse>), ApiError> {
    precheck(state, &parsed).await?;
    let mut applied = Vec::with_capacity(parsed.specs.len() + parsed.services.len());
    let mut created = false;
    for spec in parsed.specs {
        let name = spec.name.clone();
        let command = match &last_applied {
            LastApplied::Keep => Command::Apply(spec),
            LastApplied::Set(text) => Command::KubeApply {
                spec,
                last_applied: text.clone(),
            },
        };
        let outcome = state.handle.command_with(command, ack).await?;
        created |= outcome == CommandOutcome::Created;
        applied.push(applied_json("replicationcontroller", name, outcome));
    }
    for spec in parsed.services {
        let name = spec.name.clone();
        let command = match &last_applied {
            LastApplied::Keep => Command::ApplyService(spec),
            LastApplied::Set(text) => Command::KubeApplyService {
                spec,
                last_applied: text.clone(),
            },
        };
        let outcome = state.handle.command_with(command, ack).await?;
        created |= outcome == CommandOutcome::Created;
        applied.push(applied_json("service", name, outcome));
    }
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(ApplyResponse {
            applied,
            warnings: parsed.warnings.iter().map(ToString::to_string).collect(),
        }),
    ))
}

fn applied_json(kind: &str, name: String, outcome: CommandOutcome) -> AppliedJson {
    AppliedJson {
        kind: kind.to_owned(),
        name,
        outcome: outcome.as_str().to_owned(),
    }
}

/// The manifest's RCs and services against the services and RCs this peer
/// knows (the manifest's own replacing theirs): every clash, or nothing.
async fn precheck(state: &ApiState, parsed: &ParsedManifests) -> Result<(), ApiError> {
    let binds_host_ports = parsed
        .specs
        .iter()
        .any(|rc| rc.template.host_ports().next().is_some());
    if parsed.services.is_empty() && !binds_host_ports {
        return Ok(());
    }
    let snapshot = state.handle.snapshot().await?;
    let desired = &snapshot.state.desired;
    // Against the services as they are: RCs are written first, so the
    // peer core checks them so too. The manifest's own services are
    // checked against its RCs below.
    let mut clashes = Vec::new();
    for rc in &parsed.specs {
        let known = desired.live_services().map(|s| (s.name, s.body));
        clashes.extend(service_checks::service_port_clashes(
            &rc.name,
            &rc.template,
            known,
        ));
    }
    if !clashes.is_empty() {
        return Err(CommandError::RcRejected(clashes).into());
    }
    let mut problems = Vec::new();
    for spec in &parsed.services {
        let others = desired.live_services().map(|s| (s.name, s.body));
        problems.extend(service_checks::port_clashes(&spec.name, &spec.body, others));
        let manifest_rcs = parsed
            .specs
            .iter()
            .map(|rc| (rc.name.as_str(), &rc.template));
        let known_rcs = desired
            .live_rcs()
            .filter(|rc| !parsed.specs.iter().any(|s| s.name == rc.name))
            .map(|rc| (rc.name, &rc.body.template));
        let rcs: Vec<_> = manifest_rcs.chain(known_rcs).collect();
        problems.extend(service_checks::host_port_clashes(
            &spec.name,
            &spec.body,
            rcs.iter().copied(),
        ));
        problems.extend(service_checks::missing_target_ports(
            &spec.name,
            &spec.body,
            rcs.iter().copied(),
        ));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(CommandError::ServiceRejected(problems).into())
    }
}
