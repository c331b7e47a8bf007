//! `kind: Service` manifests: both forms, beside RCs, and each rule by the
//! field path it reports.

use shoal_crdt_state::manifest::{ManifestError, ParsedManifests, parse_manifests};
use shoal_crdt_state::service::{ServiceType, TargetPort};

const RC: &str = "apiVersion: v1
kind: ReplicationController
metadata: {name: hello}
spec:
  replicas: 3
  template:
    metadata:
      labels: {app: hello}
    spec:
      containers:
        - name: hello
          image: shoal-test/hello:1.0
          ports:
            - {name: http, containerPort: 8080}
";

fn service(spec: &str) -> String {
    format!("apiVersion: v1\nkind: Service\nmetadata:\n  name: hello\nspec:\n{spec}")
}

fn ok(text: &str) -> ParsedManifests {
    parse_manifests(text).unwrap_or_else(|e| panic!("{e}\n---\n{text}"))
}

fn err(text: &str) -> ManifestError {
    match parse_manifests(text) {
        Ok(parsed) => panic!("accepted: {parsed:?}\n---\n{text}"),
        Err(e) => e,
    }
}

fn rejects(text: &str, path: &str, needle: &str) {
    let e = err(text);
    let found = e
        .problems
        .iter()
        .any(|p| p.0.path == path && p.0.message.contains(needle));
    assert!(found, "no problem at {path} containing {needle:?}:\n{e}");
}

#[test]
fn an_rc_and_its_service_share_one_multi_document_manifest() {
    let text = format!(
        "{RC}---\n{}",
        service(
            "  type: NodePort\n  selector: {app: hello}\n  ports:\n    - {name: http, port: 8080, targetPort: http, nodePort: 30080}\n"
        )
    );
    let parsed = ok(&text);
    assert_eq!(parsed.specs.len(), 1);
    let svc = &parsed.services[0];
    assert_eq!(svc.name, "hello");
    assert_eq!(svc.body.service_type, ServiceType::NodePort);
    let port = &svc.body.ports[0];
    assert_eq!((port.port, port.node_port), (8080, Some(30080)));
    assert_eq!(port.target_port, TargetPort::Name("http".into()));
    // The RC's container port kept its name, for the service to find.
    assert_eq!(parsed.specs[0].template.named_port("http"), Some(8080));
}

#[test]
fn target_port_defaults_to_the_port_and_the_type_to_cluster_ip() {
    let parsed = ok(&service(
        "  selector: {app: hello}\n  ports:\n    - port: 80\n",
    ));
    let body = &parsed.services[0].body;
    assert_eq!(body.service_type, ServiceType::ClusterIP);
    assert_eq!(body.ports[0].target_port, TargetPort::Number(80));
    assert_eq!(body.ports[0].node_port, None);
}

#[test]
fn the_2014_v1beta1_form_is_normalized() {
    let text = r#"{"id": "helloService", "kind": "Service", "apiVersion": "v1beta1",
  "port": 8080, "containerPort": 8080, "selector": {"name": "hello"}}"#;
    let parsed = ok(text);
    let svc = &parsed.services[0];
    assert_eq!(svc.name, "hello-service");
    assert_eq!(svc.body.ports[0].port, 8080);
    assert_eq!(svc.body.ports[0].target_port, TargetPort::Number(8080));
    assert_eq!(svc.body.selector["name"], "hello");
    assert!(parsed.warnings.iter().any(|w| w.0.path == "id"));
}

#[test]
fn a_protocol_other_than_tcp_is_refused() {
    rejects(
        &service("  selector: {app: hello}\n  ports:\n    - {port: 53, protocol: UDP}\n"),
        "spec.ports[0].protocol",
        "TCP only",
    );
}

#[test]
fn a_node_port_outside_the_range_or_without_node_port_type_is_refused() {
    rejects(
        &service(
            "  type: NodePort\n  selector: {app: hello}\n  ports:\n    - {port: 80, nodePort: 8080}\n",
        ),
        "spec.ports[0].nodePort",
        "30000 to 32767",
    );
    rejects(
        &service("  selector: {app: hello}\n  ports:\n    - {port: 80, nodePort: 30080}\n"),
        "spec.ports[0].nodePort",
        "type: NodePort",
    );
}

#[test]
fn unsupported_types_and_missing_ports_say_what_to_do() {
    let e = err(&service("  type: LoadBalancer\n  selector: {app: hello}\n"));
    assert!(e.has_problem_at("spec.type"), "{e}");
    assert!(e.has_problem_at("spec.ports"), "{e}");
    let line = e
        .problems
        .iter()
        .find(|p| p.0.path == "spec.type")
        .unwrap()
        .0
        .line;
    assert_eq!(line, Some(6));
}

#[test]
fn two_services_with_one_port_are_refused_naming_both() {
    let other = service("  selector: {app: hello}\n  ports:\n    - port: 8080\n")
        .replace("name: hello", "name: hello-two");
    let text = format!(
        "{}---\n{other}",
        service("  selector: {app: hello}\n  ports:\n    - port: 8080\n")
    );
    let e = err(&text);
    let msg = &e.problems[0].0.message;
    assert!(
        msg.contains("\"hello-two\"") && msg.contains("\"hello\""),
        "{e}"
    );
    assert_eq!(e.problems[0].0.document, 2);
}

#[test]
fn a_target_port_name_no_container_of_a_matching_rc_declares_is_refused() {
    let text = format!(
        "{RC}---\n{}",
        service("  selector: {app: hello}\n  ports:\n    - {port: 8080, targetPort: web}\n")
    );
    rejects(
        &text,
        "spec.ports",
        "no container of replicationcontroller \"hello\"",
    );
    // No matching RC yet: accepted (it has no endpoints until one comes).
    ok(&service(
        "  selector: {app: other}\n  ports:\n    - {port: 8080, targetPort: web}\n",
    ));
}

#[test]
fn several_ports_need_names_and_distinct_numbers() {
    let text = service(
        "  selector: {app: hello}\n  ports:\n    - {port: 80}\n    - {name: b, port: 80}\n",
    );
    let e = err(&text);
    assert!(e.has_problem_at("spec.ports[0].name"), "{e}");
    assert!(e.has_problem_at("spec.ports[1].port"), "{e}");
}

#[test]
fn a_service_without_selector_is_accepted_with_a_warning() {
    let parsed = ok(&service("  ports:\n    - port: 80\n"));
    assert!(parsed.services[0].body.selector.is_empty());
    assert!(parsed.warnings.iter().any(|w| w.0.path == "spec.selector"));
}

#[test]
fn a_rendered_service_reads_back_as_the_same_spec() {
    use shoal_crdt_state::manifest::render;
    let text = format!(
        "{RC}---\n{}",
        service(
            "  type: NodePort\n  selector: {app: hello}\n  ports:\n    - {name: http, port: 8080, targetPort: http, nodePort: 30080}\n    - {name: admin, port: 9090, targetPort: 81}\n"
        )
    );
    let parsed = ok(&text);
    let yaml = render::manifests_to_yaml(&parsed.specs, &parsed.services).unwrap();
    let again = ok(&yaml);
    assert_eq!(again.specs, parsed.specs);
    assert_eq!(again.services, parsed.services);
    let json = render::manifests_to_json(&parsed.specs, &parsed.services).unwrap();
    assert_eq!(ok(&json).services, parsed.services);
}

#[test]
fn a_port_the_rc_binds_as_host_port_is_refused() {
    let rc = RC.replace(
        "{name: http, containerPort: 8080}",
        "{name: http, containerPort: 8080, hostPort: 30080}",
    );
    let text = format!(
        "{rc}---\n{}",
        service(
            "  type: NodePort\n  selector: {app: hello}\n  ports:\n    - {port: 8080, nodePort: 30080}\n"
        )
    );
    rejects(
        &text,
        "spec.ports",
        "hostPort of replicationcontroller \"hello\"",
    );
}
