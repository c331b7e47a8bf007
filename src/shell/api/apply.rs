//! Applying a manifest: its RCs, then its services (`POST /rcs`, `POST
//! /services` and `PUT /services/{name}` all land here).
//!
//! Services are checked against what this peer knows before anything is
//! written, so that a manifest whose service clashes with another one
//! changes nothing; the peer core checks each again when it writes it (the
//! state may have moved in between). RCs come first so that a service's
//! named target port finds the containers of an RC in the same manifest.

use axum::Json;
use axum::http::StatusCode;
use shoal_crdt_state::manifest::{self, ParsedManifests};
use shoal_crdt_state::service_checks;

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
pub(super) async fn apply(
    state: &ApiState,
    parsed: ParsedManifests,
    ack: Ack,
) -> Result<(StatusCode, Json<ApplyResponse>), ApiError> {
    precheck_services(state, &parsed).await?;
    let mut applied = Vec::with_capacity(parsed.specs.len() + parsed.services.len());
    let mut created = false;
    for spec in parsed.specs {
        let name = spec.name.clone();
        let outcome = state.handle.command_with(Command::Apply(spec), ack).await?;
        created |= outcome == CommandOutcome::Created;
        applied.push(applied_json("replicationcontroller", name, outcome));
    }
    for spec in parsed.services {
        let name = spec.name.clone();
        let outcome = state
            .handle
            .command_with(Command::ApplyService(spec), ack)
            .await?;
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

/// The manifest's services against the services and RCs this peer knows
/// (the manifest's own RCs replacing theirs): every clash, or nothing.
async fn precheck_services(state: &ApiState, parsed: &ParsedManifests) -> Result<(), ApiError> {
    if parsed.services.is_empty() {
        return Ok(());
    }
    let snapshot = state.handle.snapshot().await?;
    let desired = &snapshot.state.desired;
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
