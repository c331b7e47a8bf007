//! User commands fed straight to one peer core: what a refused command
//! leaves behind (nothing) and what an accepted one writes.

mod reconcile_support;

use std::net::SocketAddr;
use std::time::Duration;

use reconcile_support::rc;
use shoal::peer::{Command, CommandError, CommandOutcome, Peer, PeerConfig};
use shoal_crdt_state::image_ref::ImageRefError;
use shoal_crdt_state::node::{NodeId, NodeInfo};
use shoal_crdt_state::spec::Resources;

const NOW: Duration = Duration::from_secs(1_700_000_000);

/// A started single-node peer holding RC `web` (image `shoal-test/hello:1.0`),
/// with every output of the start and the apply drained.
fn peer_with_web() -> Peer {
    let addr: SocketAddr = "127.0.0.1:17100".parse().unwrap();
    let resources = Resources {
        cpu_millis: 2000,
        memory_bytes: 4 << 30,
    };
    let info = NodeInfo {
        peer_addr: addr.to_string(),
        ..NodeInfo::healthy("node-a", resources)
    };
    let mut peer = Peer::new(PeerConfig::new(NodeId(1), addr, info));
    peer.start(NOW, &[], &[]);
    let mut web = rc("web", 2, "shoal-test/hello:1.0");
    web.selector = [("app".to_owned(), "web".to_owned())].into();
    web.template.labels = web.selector.clone();
    let applied = peer.handle_command(NOW, Command::Apply(web));
    assert_eq!(applied, Ok(CommandOutcome::Created));
    while peer.poll_output().is_some() {}
    peer
}

fn rolling_update(image: &str) -> Command {
    Command::RollingUpdate {
        name: "web".into(),
        image: image.into(),
        container: None,
    }
}

#[test]
fn a_rolling_update_to_an_invalid_image_is_refused_and_changes_nothing() {
    let mut peer = peer_with_web();
    let state = peer.state().clone();
    let changes = peer.state_changes();
    let later = NOW + Duration::from_secs(1);

    for image in ["foo:::bar", "NOT a valid image!!", "UPPER/Case:1", ""] {
        let refused = peer.handle_command(later, rolling_update(image));
        let Err(CommandError::InvalidImage {
            image: named,
            reason,
        }) = &refused
        else {
            panic!("{image:?} was not refused as an invalid image: {refused:?}");
        };
        assert_eq!(named, image);
        let message = refused.as_ref().unwrap_err().to_string();
        assert!(message.contains(&reason.to_string()), "{message}");
        assert_eq!(peer.state(), &state, "{image:?} changed the state");
        assert_eq!(peer.state_changes(), changes);
        assert!(
            peer.poll_output().is_none(),
            "a refused command spreads and schedules nothing"
        );
    }
    let refused = peer.handle_command(later, rolling_update("foo:::bar"));
    assert!(matches!(
        refused,
        Err(CommandError::InvalidImage {
            reason: ImageRefError::BadTag { .. },
            ..
        })
    ));
    assert_eq!(
        peer.state()
            .desired
            .get("web")
            .unwrap()
            .template()
            .primary_image(),
        "shoal-test/hello:1.0"
    );
}

#[test]
fn a_rolling_update_to_a_valid_image_changes_the_template() {
    let mut peer = peer_with_web();
    let later = NOW + Duration::from_secs(1);
    let image = "localhost:5000/shoal-test/hello:1.1";
    assert_eq!(
        peer.handle_command(later, rolling_update(image)),
        Ok(CommandOutcome::RollingUpdate)
    );
    assert_eq!(
        peer.state()
            .desired
            .get("web")
            .unwrap()
            .template()
            .primary_image(),
        image
    );
}

/// A NodePort service `name` on `port`, selecting `app: web`, its target
/// the container port named `target`.
fn service_command(name: &str, port: u16, target: &str) -> Command {
    use shoal_crdt_state::service::{
        ServiceBody, ServicePort, ServiceSpec, ServiceType, TargetPort,
    };
    Command::ApplyService(ServiceSpec {
        name: name.to_owned(),
        body: ServiceBody {
            selector: [("app".to_owned(), "web".to_owned())].into(),
            ports: vec![ServicePort {
                name: None,
                port,
                target_port: TargetPort::Name(target.to_owned()),
                protocol: shoal_crdt_state::spec::Protocol::Tcp,
                node_port: None,
            }],
            service_type: ServiceType::NodePort,
            proxy_protocol: Default::default(),
            last_applied: None,
        },
    })
}

#[test]
fn services_are_checked_against_the_cluster_and_keep_their_node_port() {
    let mut peer = peer_with_web();
    // `web`'s container names no port: a named target is refused.
    let refused = peer.handle_command(NOW, service_command("web", 8080, "http"));
    let Err(CommandError::ServiceRejected(problems)) = &refused else {
        panic!("a missing named port was accepted: {refused:?}");
    };
    assert!(
        problems[0].contains("replicationcontroller \"web\""),
        "{problems:?}"
    );
    while peer.poll_output().is_some() {}

    // Give the container port a name; the service is accepted and gets a node port.
    let mut web = rc("web", 2, "shoal-test/hello:1.0");
    web.selector = [("app".to_owned(), "web".to_owned())].into();
    web.template.labels = web.selector.clone();
    web.template.containers[0].ports = vec![shoal_crdt_state::spec::PortSpec {
        container_port: 80,
        host_port: None,
        protocol: shoal_crdt_state::spec::Protocol::Tcp,
        name: shoal_crdt_state::spec::PortName::new("http"),
    }];
    peer.handle_command(NOW, Command::Apply(web)).unwrap();
    let created = peer.handle_command(NOW, service_command("web", 8080, "http"));
    assert_eq!(created, Ok(CommandOutcome::Created));
    let node_port = |peer: &Peer, name: &str| {
        peer.state().desired.service(name).unwrap().body.ports[0].node_port
    };
    let allocated = node_port(&peer, "web").expect("a node port");
    // Re-applying the manifest (still without a node port) changes nothing.
    let again = peer.handle_command(NOW, service_command("web", 8080, "http"));
    assert_eq!(again, Ok(CommandOutcome::Unchanged));
    assert_eq!(node_port(&peer, "web"), Some(allocated));

    // Another service on the same port is refused, naming both.
    let clash = peer.handle_command(NOW, service_command("api", 8080, "http"));
    let message = clash.unwrap_err().to_string();
    assert!(
        message.contains("\"api\"") && message.contains("\"web\""),
        "{message}"
    );
    // On another port it is given another node port.
    peer.handle_command(NOW, service_command("api", 9090, "http"))
        .unwrap();
    assert_ne!(node_port(&peer, "api"), Some(allocated));

    // An RC applied later that binds a service's node port is refused,
    // naming both, and not written.
    let mut binder = rc("binder", 1, "shoal-test/hello:1.0");
    binder.template.containers[0].ports = vec![shoal_crdt_state::spec::PortSpec {
        container_port: 80,
        host_port: Some(allocated),
        protocol: shoal_crdt_state::spec::Protocol::Tcp,
        name: None,
    }];
    let refused = peer.handle_command(NOW, Command::Apply(binder));
    let Err(CommandError::RcRejected(problems)) = &refused else {
        panic!("an RC binding a node port was accepted: {refused:?}");
    };
    assert!(
        problems[0].contains("\"binder\"") && problems[0].contains("service \"web\""),
        "{problems:?}"
    );
    assert!(peer.state().desired.get("binder").is_none());

    let deleted = peer.handle_command(NOW, Command::DeleteService { name: "api".into() });
    assert_eq!(deleted, Ok(CommandOutcome::Deleted));
    let missing = peer.handle_command(NOW, Command::DeleteService { name: "api".into() });
    assert_eq!(missing, Err(CommandError::ServiceNotFound("api".into())));
}
