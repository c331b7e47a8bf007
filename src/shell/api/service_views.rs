//! Snapshot → service models: what `get svc` and `describe svc` show, from
//! the snapshot's service table and the service objects behind it.

use shoal_crdt_state::service::ServiceView;

use super::models::{EndpointJson, ServiceDetail, ServiceJson, ServicePortJson};
use crate::services::ServiceEntry;
use crate::services::endpoints::port_conflicts;
use crate::shell::handle::Snapshot;

/// Every live service, in name order.
pub fn services(snapshot: &Snapshot) -> Vec<ServiceJson> {
    let conflicts = port_conflicts(&snapshot.state.desired);
    snapshot
        .state
        .desired
        .live_services()
        .map(|service| {
            let lost = conflicts.get(service.name);
            row(snapshot, service, lost)
        })
        .collect()
}

/// The service called `name` with each endpoint.
pub fn service_detail(snapshot: &Snapshot, name: &str) -> Option<ServiceDetail> {
    let service = snapshot.state.desired.service(name)?;
    let conflicts = port_conflicts(&snapshot.state.desired);
    let row = row(snapshot, service, conflicts.get(name));
    let endpoints = entry(snapshot, name)
        .map(|entry| {
            entry
                .endpoints
                .iter()
                .map(|e| EndpointJson {
                    pod: e.pod.clone(),
                    node: e.node.clone(),
                    addresses: entry
                        .ports
                        .iter()
                        .filter_map(|p| e.targets.get(&p.port))
                        .map(ToString::to_string)
                        .collect(),
                    ready: e.ready,
                })
                .collect()
        })
        .unwrap_or_default();
    let removed = snapshot.state.desired.nodes().removed();
    let listener_problems = snapshot
        .state
        .observed
        .nodes()
        .filter(|(node, _)| !removed.contains(node))
        .flat_map(|(_, record)| {
            let node = &record.info.name;
            let problems = record.info.listener_problems.get(name);
            problems
                .into_iter()
                .flatten()
                .map(move |why| format!("{node}: {why}"))
        })
        .collect();
    Some(ServiceDetail {
        service: row,
        endpoints,
        listener_problems,
    })
}

fn entry<'a>(snapshot: &'a Snapshot, name: &str) -> Option<&'a ServiceEntry> {
    snapshot.services().services.get(name)
}

fn row(
    snapshot: &Snapshot,
    service: ServiceView<'_>,
    lost: Option<&std::collections::BTreeMap<u16, String>>,
) -> ServiceJson {
    let endpoints = entry(snapshot, service.name).map_or(&[][..], |e| &e.endpoints[..]);
    ServiceJson {
        name: service.name.to_owned(),
        service_type: service.body.service_type.as_str().to_owned(),
        selector: service.body.selector.clone(),
        ports: service
            .body
            .ports
            .iter()
            .map(|p| ServicePortJson {
                name: p.name.clone(),
                port: p.port,
                target_port: p.target_port.to_string(),
                node_port: p.node_port,
                protocol: "TCP".to_owned(),
            })
            .collect(),
        proxy_protocol: service.body.proxy_protocol.as_str().map(str::to_owned),
        endpoints_ready: endpoints.iter().filter(|e| e.ready).count(),
        endpoints_total: endpoints.len(),
        conflicts: lost
            .into_iter()
            .flatten()
            .map(|(port, by)| {
                format!(
                    "port {port} is held by service {by:?} (written first); re-apply this service with another port"
                )
            })
            .collect(),
        created_ms: service.created.map_or(0, |stamp| stamp.physical_ms),
    }
}
