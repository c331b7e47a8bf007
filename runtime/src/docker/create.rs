//! Translating a pod template into engine container definitions, and reading
//! the bound host ports back.
//!
//! A pod's containers share one network namespace, the first container's
//! (Kubernetes uses a pause container; we have no image to spare for it). So
//! every port of every container is published on the first container, and the
//! others join it with `network_mode: container:<first>`.

use std::collections::HashMap;
use std::net::IpAddr;

use bollard::models::{ContainerCreateBody, HostConfig, PortBinding, PortMap};
use shoal_crdt_state::pod::PublishedPort;
use shoal_crdt_state::spec::{ContainerSpec, PodTemplate, Protocol};

use super::PodDns;
use super::naming::{Owner, PodKey};
use crate::vocabulary::labels;

/// The engine definition of container `index` of the pod. `first_id` is the
/// id of container 0 and must be given for every later container. `dns`:
/// the resolver the pod uses, set on container 0 (the others share its
/// network namespace, and with it its resolv.conf).
pub(crate) fn container_body(
    owner: &Owner,
    key: &PodKey,
    template: &PodTemplate,
    index: usize,
    first_id: Option<&str>,
    publish_ip: IpAddr,
    dns: Option<&PodDns>,
) -> ContainerCreateBody {
    let spec = &template.containers[index];
    let mut container_labels: HashMap<String, String> = template
        .labels
        .iter()
        .filter(|(k, _)| !k.starts_with("io.shoal."))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    container_labels.extend(owner.container_labels(
        key,
        &spec.name,
        index,
        template.containers.len(),
    ));

    let mut host_config = HostConfig {
        memory: positive_i64(spec.resources.memory_bytes),
        nano_cpus: positive_i64(spec.resources.cpu_millis.saturating_mul(1_000_000)),
        ..Default::default()
    };
    let mut exposed_ports = None;
    match first_id {
        None => {
            let (exposed, bindings) = port_bindings(template, publish_ip);
            if !exposed.is_empty() {
                exposed_ports = Some(exposed);
                host_config.port_bindings = Some(bindings);
            }
            if let Some(dns) = dns {
                host_config.dns = Some(dns.servers.iter().map(IpAddr::to_string).collect());
                host_config.dns_search = Some(dns.search.clone());
            }
        }
        Some(first) => host_config.network_mode = Some(format!("container:{first}")),
    }

    ContainerCreateBody {
        image: Some(spec.image.clone()),
        entrypoint: non_empty(&spec.command),
        cmd: non_empty(&spec.args),
        env: Some(env_of(spec)),
        labels: Some(container_labels),
        exposed_ports,
        // Kubernetes' default; `Stop` passes the pod's grace explicitly anyway.
        stop_timeout: Some(i64::from(template.termination_grace_period_secs)),
        host_config: Some(host_config),
        ..Default::default()
    }
}

/// Every container port of the pod, published on the configured address:
/// on `hostPort` when given, otherwise on a port the engine picks.
fn port_bindings(template: &PodTemplate, publish_ip: IpAddr) -> (Vec<String>, PortMap) {
    let mut exposed = Vec::new();
    let mut bindings = PortMap::new();
    for port in template.containers.iter().flat_map(|c| &c.ports) {
        let key = format!("{}/{}", port.container_port, port.protocol.as_str());
        exposed.push(key.clone());
        bindings.insert(
            key,
            Some(vec![PortBinding {
                host_ip: Some(publish_ip.to_string()),
                host_port: Some(port.host_port.map(|p| p.to_string()).unwrap_or_default()),
            }]),
        );
    }
    exposed.sort();
    exposed.dedup();
    (exposed, bindings)
}

/// Host ports the engine actually bound, from an inspect of the first
/// container; sorted, one entry per container port (IPv4 and IPv6 bindings of
/// the same port collapse).
pub(crate) fn published_ports(ports: Option<&PortMap>) -> Vec<PublishedPort> {
    let mut out: Vec<PublishedPort> = ports
        .into_iter()
        .flatten()
        .filter_map(|(key, bindings)| {
            let (port, proto) = key.split_once('/')?;
            let container_port = port.parse().ok()?;
            let protocol = match proto {
                "tcp" => Protocol::Tcp,
                "udp" => Protocol::Udp,
                _ => return None,
            };
            let host_port = bindings
                .as_ref()?
                .iter()
                .find_map(|b| b.host_port.as_deref()?.parse().ok())?;
            Some(PublishedPort {
                container_port,
                host_port,
                protocol,
            })
        })
        .collect();
    out.sort_by_key(|p| (p.container_port, p.protocol, p.host_port));
    out.dedup_by_key(|p| (p.container_port, p.protocol));
    out
}

fn env_of(spec: &ContainerSpec) -> Vec<String> {
    spec.env
        .iter()
        .map(|e| format!("{}={}", e.name, e.value))
        .collect()
}

fn non_empty(v: &[String]) -> Option<Vec<String>> {
    (!v.is_empty()).then(|| v.to_vec())
}

fn positive_i64(v: u64) -> Option<i64> {
    (v > 0).then(|| i64::try_from(v).unwrap_or(i64::MAX))
}

/// True when `labels_of` marks container 0 of its pod (the one holding the network).
pub(crate) fn is_first(labels_of: &HashMap<String, String>) -> bool {
    labels_of.get(labels::CONTAINER_INDEX).map(String::as_str) == Some("0")
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use shoal_crdt_state::node::NodeId;
    use shoal_crdt_state::pod::PodId;
    use shoal_crdt_state::spec::{PortSpec, PullPolicy, Resources, RestartPolicy, TemplateHash};

    use super::*;

    fn container(name: &str, ports: Vec<PortSpec>) -> ContainerSpec {
        ContainerSpec {
            name: name.into(),
            image: "shoal-test/hello:1.0".into(),
            command: vec![],
            args: vec![],
            env: vec![],
            ports,
            resources: Resources::default(),
            readiness_probe: None,
            image_pull_policy: PullPolicy::IfNotPresent,
        }
    }

    fn two_container_template() -> PodTemplate {
        PodTemplate {
            labels: BTreeMap::from([("app".into(), "hello".into())]),
            containers: vec![
                container(
                    "web",
                    vec![PortSpec {
                        container_port: 80,
                        host_port: None,
                        protocol: Protocol::Tcp,
                        name: None,
                    }],
                ),
                container(
                    "side",
                    vec![PortSpec {
                        container_port: 9000,
                        host_port: Some(19000),
                        protocol: Protocol::Udp,
                        name: None,
                    }],
                ),
            ],
            node_selector: BTreeMap::new(),
            restart_policy: RestartPolicy::Always,
            termination_grace_period_secs: 30,
        }
    }

    fn owner_key() -> (Owner, PodKey) {
        (
            Owner {
                cluster: "c".into(),
                node: NodeId(1),
            },
            (
                PodId {
                    rc: "hello".into(),
                    index: 0,
                },
                TemplateHash(7),
            ),
        )
    }

    #[test]
    fn all_ports_of_a_pod_are_published_on_its_first_container() {
        let (owner, key) = owner_key();
        let t = two_container_template();
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let first = container_body(&owner, &key, &t, 0, None, ip, None);
        let host = first.host_config.unwrap();
        let bindings = host.port_bindings.unwrap();
        assert_eq!(
            first.exposed_ports.unwrap(),
            vec!["80/tcp".to_string(), "9000/udp".to_string()]
        );
        let web = bindings["80/tcp"].as_ref().unwrap()[0].clone();
        assert_eq!(web.host_ip.as_deref(), Some("127.0.0.1"));
        assert_eq!(web.host_port.as_deref(), Some(""));
        let side = bindings["9000/udp"].as_ref().unwrap()[0].clone();
        assert_eq!(side.host_port.as_deref(), Some("19000"));
        assert!(is_first(first.labels.as_ref().unwrap()));
        assert_eq!(first.labels.unwrap()["app"], "hello");

        let second = container_body(&owner, &key, &t, 1, Some("abc"), ip, None);
        let host = second.host_config.unwrap();
        assert_eq!(host.network_mode.as_deref(), Some("container:abc"));
        assert!(host.port_bindings.is_none());
        assert!(second.exposed_ports.is_none());
    }

    #[test]
    fn the_pod_resolves_through_the_peer_dns_set_on_its_first_container() {
        let (owner, key) = owner_key();
        let t = two_container_template();
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let dns = PodDns {
            servers: vec!["10.40.1.1".parse().unwrap()],
            search: vec!["svc.shoal".to_owned()],
        };
        let first = container_body(&owner, &key, &t, 0, None, ip, Some(&dns));
        let host = first.host_config.unwrap();
        assert_eq!(host.dns, Some(vec!["10.40.1.1".to_owned()]));
        assert_eq!(host.dns_search, Some(vec!["svc.shoal".to_owned()]));
        // The engine refuses DNS options on a container sharing a namespace.
        let second = container_body(&owner, &key, &t, 1, Some("abc"), ip, Some(&dns));
        let host = second.host_config.unwrap();
        assert!(host.dns.is_none() && host.dns_search.is_none());
        let plain = container_body(&owner, &key, &t, 0, None, ip, None);
        assert!(plain.host_config.unwrap().dns.is_none());
    }

    #[test]
    fn bound_ports_are_read_back_once_per_container_port() {
        let map = PortMap::from([
            (
                "80/tcp".to_string(),
                Some(vec![
                    PortBinding {
                        host_ip: Some("0.0.0.0".into()),
                        host_port: Some("49153".into()),
                    },
                    PortBinding {
                        host_ip: Some("::".into()),
                        host_port: Some("49153".into()),
                    },
                ]),
            ),
            ("443/tcp".to_string(), None),
        ]);
        assert_eq!(
            published_ports(Some(&map)),
            vec![PublishedPort {
                container_port: 80,
                host_port: 49153,
                protocol: Protocol::Tcp
            }]
        );
    }
}
