//! Rules a service must satisfy against the rest of the cluster when it is
//! applied, and node-port allocation. Used by manifest validation (against
//! the other documents) and by the peer that applies a service (against
//! its desired state), so both say the same thing.
//!
//! **Ports are cluster-wide.** Every peer's load balancer listens on every
//! service's port and node port, so no two services may share one (a port
//! of one may not be the node port of another either), and none may be a
//! TCP `hostPort` an RC's pods bind on their nodes.
//!
//! **Node-port allocation** is deterministic: the first free port of
//! [`NODE_PORT_RANGE`] probing from a hash of `(service name, port index)`,
//! free meaning no service known at apply time listens on it. Two peers
//! applying different services concurrently may therefore pick the same
//! port; such a clash (like two explicit ports written concurrently) is
//! settled at read time, the same way on every peer: the service whose
//! body was written first keeps the port, the other is shown with the
//! conflict (`describe svc`) and is not served on it until re-applied
//! (re-applying allocates again, now seeing the winner).

use std::collections::BTreeMap;

use crate::service::{NODE_PORT_RANGE, ServiceBody, ServiceSpec, ServiceType, TargetPort};
use crate::spec::{PodTemplate, Protocol};

/// The ports `body` listens on that a service of `others` already uses:
/// one message per clash, naming both services.
pub fn port_clashes<'a>(
    name: &str,
    body: &ServiceBody,
    others: impl IntoIterator<Item = (&'a str, &'a ServiceBody)>,
) -> Vec<String> {
    let mut used: BTreeMap<u16, &str> = BTreeMap::new();
    for (other, other_body) in others {
        if other == name {
            continue;
        }
        for port in other_body.listen_ports() {
            used.entry(port).or_insert(other);
        }
    }
    body.listen_ports()
        .filter_map(|port| {
            let other = used.get(&port)?;
            Some(format!(
                "port {port} of service {name:?} is already used by service {other:?}; \
                 every peer listens on it for one service only: pick another port"
            ))
        })
        .collect()
}

/// The ports `body` listens on that a pod of an RC binds on every node
/// that runs it (a TCP `hostPort`): the peer's listener and the container
/// could not both have it.
pub fn host_port_clashes<'a>(
    name: &str,
    body: &ServiceBody,
    rcs: impl IntoIterator<Item = (&'a str, &'a PodTemplate)>,
) -> Vec<String> {
    let held = held_host_ports(rcs);
    body.listen_ports()
        .filter_map(|port| {
            let rc = held.get(&port)?;
            Some(format!(
                "port {port} of service {name:?} is the hostPort of replicationcontroller {rc:?}, \
                 which its pods bind on their nodes: pick another port"
            ))
        })
        .collect()
}

/// The TCP host ports of RC `rc`'s `template` that a service listens on
/// (its port or node port, on every peer): one message per clash, naming
/// both. The converse of [`host_port_clashes`], for an RC applied after
/// the service.
pub fn service_port_clashes<'a>(
    rc: &str,
    template: &PodTemplate,
    services: impl IntoIterator<Item = (&'a str, &'a ServiceBody)>,
) -> Vec<String> {
    let mut held: BTreeMap<u16, (&str, &'static str)> = BTreeMap::new();
    for (name, body) in services {
        for p in &body.ports {
            held.entry(p.port).or_insert((name, "port"));
            if let Some(node_port) = p.node_port {
                held.entry(node_port).or_insert((name, "nodePort"));
            }
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    template
        .host_ports()
        .filter(|&(port, protocol)| protocol == Protocol::Tcp && seen.insert(port))
        .filter_map(|(port, _)| {
            let (service, kind) = held.get(&port)?;
            Some(format!(
                "hostPort {port} of replicationcontroller {rc:?} is the {kind} of service {service:?}, \
                 on which every peer's load balancer listens: pick another hostPort (or leave it out: \
                 the service reaches the pods without one)"
            ))
        })
        .collect()
}

/// TCP host ports RCs bind, each with the first RC (by name) binding it.
fn held_host_ports<'a>(
    rcs: impl IntoIterator<Item = (&'a str, &'a PodTemplate)>,
) -> BTreeMap<u16, &'a str> {
    let mut held = BTreeMap::new();
    for (rc, template) in rcs {
        for (port, protocol) in template.host_ports() {
            if protocol == Protocol::Tcp {
                held.entry(port).or_insert(rc);
            }
        }
    }
    held
}

/// Named target ports that no container of an RC matching the selector
/// declares. Nothing when no RC matches (endpoints come later).
pub fn missing_target_ports<'a>(
    name: &str,
    body: &ServiceBody,
    rcs: impl IntoIterator<Item = (&'a str, &'a PodTemplate)>,
) -> Vec<String> {
    let matching: Vec<(&str, &PodTemplate)> = rcs
        .into_iter()
        .filter(|(_, template)| body.selects(&template.labels))
        .collect();
    let mut out = Vec::new();
    for p in &body.ports {
        let TargetPort::Name(port_name) = &p.target_port else {
            continue;
        };
        for (rc, template) in &matching {
            if template.named_port(port_name).is_none() {
                out.push(format!(
                    "targetPort {port_name:?} of service {name:?}: no container of replicationcontroller \
                     {rc:?} (which the selector matches) declares a port named {port_name:?}; \
                     name the container port or give the number"
                ));
            }
        }
    }
    out
}

/// Gives every port of a NodePort service without a node port a free one:
/// not a port other services listen on, nor a host port `rcs` bind.
/// Fails only when the whole range is taken.
pub fn allocate_node_ports<'a>(
    spec: &mut ServiceSpec,
    others: impl IntoIterator<Item = (&'a str, &'a ServiceBody)>,
    rcs: impl IntoIterator<Item = (&'a str, &'a PodTemplate)>,
) -> Result<(), String> {
    if spec.body.service_type != ServiceType::NodePort {
        return Ok(());
    }
    let mut taken: std::collections::BTreeSet<u16> = others
        .into_iter()
        .filter(|(other, _)| *other != spec.name)
        .flat_map(|(_, body)| body.listen_ports())
        .collect();
    taken.extend(held_host_ports(rcs).into_keys());
    taken.extend(spec.body.listen_ports());
    let (lo, hi) = (*NODE_PORT_RANGE.start(), *NODE_PORT_RANGE.end());
    let size = u32::from(hi - lo) + 1;
    for (i, port) in spec.body.ports.iter_mut().enumerate() {
        if port.node_port.is_some() {
            continue;
        }
        let seed = xxhash_rust::xxh3::xxh3_64(format!("{}/{i}", spec.name).as_bytes());
        let start = (seed % u64::from(size)) as u32;
        let free = (0..size)
            .map(|k| lo + ((start + k) % size) as u16)
            .find(|p| !taken.contains(p))
            .ok_or_else(|| {
                format!(
                    "no free node port left in {lo}-{hi} for service {:?}",
                    spec.name
                )
            })?;
        taken.insert(free);
        port.node_port = Some(free);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::ServicePort;
    use crate::spec::{ContainerSpec, Labels, PortName, PortSpec, RestartPolicy};

    fn body(ports: &[(u16, Option<u16>)], target: TargetPort) -> ServiceBody {
        ServiceBody {
            selector: Labels::from([("app".into(), "hello".into())]),
            ports: ports
                .iter()
                .map(|&(port, node_port)| ServicePort {
                    name: None,
                    port,
                    target_port: target.clone(),
                    protocol: Protocol::Tcp,
                    node_port,
                })
                .collect(),
            service_type: ServiceType::NodePort,
            proxy_protocol: Default::default(),
            last_applied: None,
        }
    }

    fn template(port_name: Option<&str>) -> PodTemplate {
        let mut c = ContainerSpec::new("web", "img");
        c.ports.push(PortSpec {
            container_port: 8080,
            host_port: None,
            protocol: Protocol::Tcp,
            name: port_name.and_then(PortName::new),
        });
        PodTemplate {
            labels: Labels::from([("app".into(), "hello".into())]),
            containers: vec![c],
            node_selector: Labels::new(),
            restart_policy: RestartPolicy::Always,
            termination_grace_period_secs: 30,
        }
    }

    #[test]
    fn a_port_or_node_port_used_by_another_service_is_refused_naming_both() {
        let web = body(&[(8080, Some(30080))], TargetPort::Number(80));
        let clash = body(&[(9090, Some(30080))], TargetPort::Number(80));
        let errors = port_clashes("api", &clash, [("web", &web)]);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].contains("\"api\"") && errors[0].contains("\"web\""));
        assert!(
            port_clashes("web", &web, [("web", &web)]).is_empty(),
            "itself"
        );
        let cross = body(&[(30080, None)], TargetPort::Number(80));
        assert_eq!(port_clashes("x", &cross, [("web", &web)]).len(), 1);
    }

    #[test]
    fn a_named_target_port_must_exist_in_a_matching_rc_only() {
        let svc = body(&[(8080, None)], TargetPort::Name("http".into()));
        let named = template(Some("http"));
        let unnamed = template(None);
        assert!(missing_target_ports("s", &svc, [("a", &named)]).is_empty());
        assert_eq!(missing_target_ports("s", &svc, [("b", &unnamed)]).len(), 1);
        let mut other = template(None);
        other.labels = Labels::from([("app".into(), "other".into())]);
        assert!(missing_target_ports("s", &svc, [("c", &other)]).is_empty());
    }

    #[test]
    fn node_ports_are_allocated_deterministically_and_skip_taken_ones() {
        let spec = |name: &str| ServiceSpec {
            name: name.into(),
            body: body(&[(8080, None), (8081, None)], TargetPort::Number(80)),
        };
        let mut a = spec("hello");
        allocate_node_ports(&mut a, [], []).unwrap();
        let mut again = spec("hello");
        allocate_node_ports(&mut again, [], []).unwrap();
        assert_eq!(a, again, "same name, same ports");
        let ports: Vec<u16> = a.body.ports.iter().filter_map(|p| p.node_port).collect();
        assert_eq!(ports.len(), 2);
        assert_ne!(ports[0], ports[1]);
        assert!(ports.iter().all(|p| NODE_PORT_RANGE.contains(p)));
        // Another service already holding the first choice pushes it along.
        let holder = body(&[(ports[0], None)], TargetPort::Number(80));
        let mut b = spec("hello");
        allocate_node_ports(&mut b, [("other", &holder)], []).unwrap();
        assert_ne!(b.body.ports[0].node_port, Some(ports[0]));
        // So does an RC binding it as a host port.
        let mut bound = template(None);
        bound.containers[0].ports[0].host_port = Some(ports[0]);
        let mut c = spec("hello");
        allocate_node_ports(&mut c, [], [("web", &bound)]).unwrap();
        assert_ne!(c.body.ports[0].node_port, Some(ports[0]));
    }

    #[test]
    fn an_rc_whose_host_port_a_service_listens_on_is_refused() {
        let mut bound = template(Some("http"));
        bound.containers[0].ports[0].host_port = Some(30080);
        let svc = body(&[(8080, Some(30080))], TargetPort::Number(80));
        let errors = service_port_clashes("web", &bound, [("hello", &svc)]);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].contains("\"web\""), "{errors:?}");
        assert!(
            errors[0].contains("nodePort of service \"hello\""),
            "{errors:?}"
        );
        bound.containers[0].ports[0].host_port = Some(8080);
        let errors = service_port_clashes("web", &bound, [("hello", &svc)]);
        assert!(errors[0].contains("is the port of service"), "{errors:?}");
        bound.containers[0].ports[0].host_port = Some(9090);
        assert!(service_port_clashes("web", &bound, [("hello", &svc)]).is_empty());
    }

    #[test]
    fn a_port_an_rc_binds_as_host_port_is_refused() {
        let mut bound = template(None);
        bound.containers[0].ports[0].host_port = Some(30080);
        let svc = body(&[(8080, Some(30080))], TargetPort::Number(80));
        let errors = host_port_clashes("hello", &svc, [("web", &bound)]);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].contains("replicationcontroller \"web\""),
            "{errors:?}"
        );
        let free = body(&[(8080, Some(30081))], TargetPort::Number(80));
        assert!(host_port_clashes("hello", &free, [("web", &bound)]).is_empty());
    }
}
