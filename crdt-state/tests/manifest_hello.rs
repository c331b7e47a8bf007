//! The 2014 "hello" example, in both forms, and the input shapes around it.

use shoal_crdt_state::manifest::{parse_manifests, render};
use shoal_crdt_state::spec::{
    Allowance, ContainerSpec, PartitionPolicy, PodTemplate, PortSpec, ProbeAction, Protocol,
    PullPolicy, RcSpec, Resources, RestartPolicy, UpdateStrategy,
};

const HELLO_V1BETA1: &str = include_str!("../../examples/hello-v1beta1.json");
const HELLO_V1: &str = include_str!("../../examples/hello-rc.yaml");
const HELLO_LOCAL: &str = include_str!("../../examples/hello-local.yaml");
const BAD_SELECTOR: &str = include_str!("../../examples/bad-selector.yaml");

fn labels(pairs: &[(&str, &str)]) -> std::collections::BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// What the article declared: 2 copies of the hello pod on host port 8080.
fn expected_hello() -> RcSpec {
    RcSpec {
        name: "hello-controller".into(),
        replicas: 2,
        selector: labels(&[("name", "hello")]),
        template: PodTemplate {
            labels: labels(&[("name", "hello")]),
            containers: vec![ContainerSpec {
                name: "hello".into(),
                image: "quay.io/kelseyhightower/hello".into(),
                command: vec![],
                args: vec![],
                env: vec![],
                ports: vec![PortSpec {
                    container_port: 80,
                    host_port: Some(8080),
                    protocol: Protocol::Tcp,
                    name: None,
                }],
                resources: Resources::default(),
                readiness_probe: None,
                // No tag: Kubernetes' default for an untagged image.
                image_pull_policy: PullPolicy::Always,
            }],
            node_selector: labels(&[]),
            restart_policy: RestartPolicy::Always,
            termination_grace_period_secs: 30,
        },
        update_strategy: UpdateStrategy::default(),
        partition_policy: PartitionPolicy::Available,
        paused: false,
    }
}

#[test]
fn the_2014_example_normalizes_to_the_hello_controller() {
    let parsed = parse_manifests(HELLO_V1BETA1).unwrap();
    assert_eq!(parsed.specs, vec![expected_hello()]);
    let renamed: Vec<_> = parsed
        .warnings
        .iter()
        .filter(|w| w.0.path == "id")
        .collect();
    assert_eq!(renamed.len(), 1, "{:?}", parsed.warnings);
    assert!(renamed[0].to_string().contains("\"hello-controller\""));
    assert_eq!(renamed[0].0.line, Some(2));
}

#[test]
fn both_forms_of_hello_give_the_same_spec() {
    let old = parse_manifests(HELLO_V1BETA1).unwrap().specs;
    let new = parse_manifests(HELLO_V1).unwrap();
    assert_eq!(old, new.specs);
    assert!(new.warnings.is_empty(), "{:?}", new.warnings);
    assert_eq!(old[0].template.hash(), new.specs[0].template.hash());
}

#[test]
fn the_quickstart_manifest_is_valid() {
    let parsed = parse_manifests(HELLO_LOCAL).unwrap();
    assert!(parsed.warnings.is_empty(), "{:?}", parsed.warnings);
    let spec = &parsed.specs[0];
    assert_eq!(spec.name, "hello");
    assert_eq!(spec.replicas, 2);
    let c = &spec.template.containers[0];
    assert_eq!(c.image, "shoal-test/hello:1.0");
    assert_eq!(c.ports[0].host_port, None);
    assert_eq!(c.resources.cpu_millis, 50);
    assert_eq!(c.resources.memory_bytes, 16 << 20);
    let probe = c.readiness_probe.as_ref().unwrap();
    assert_eq!(
        probe.action,
        ProbeAction::HttpGet {
            path: "/".into(),
            port: 80
        }
    );
    assert_eq!(
        (
            probe.period_secs,
            probe.timeout_secs,
            probe.failure_threshold
        ),
        (2, 1, 3)
    );
}

#[test]
fn bad_selector_example_is_rejected_naming_the_selector() {
    let err = parse_manifests(BAD_SELECTOR).unwrap_err();
    assert_eq!(err.problems.len(), 1, "{err}");
    let p = &err.problems[0].0;
    assert_eq!(p.path, "spec.selector");
    assert_eq!(p.document, 1);
    assert_eq!(p.line, Some(11));
    let text = err.to_string();
    assert!(
        text.starts_with("error: doc 1 spec.selector (line 11): selector {app: web} does not match template labels {app: api}"),
        "{text}"
    );
    assert!(text.contains("spec.template.metadata.labels"), "{text}");
}

#[test]
fn several_yaml_documents_give_several_specs_in_order() {
    let text = format!("{HELLO_V1}---\n{HELLO_LOCAL}");
    let parsed = parse_manifests(&text).unwrap();
    let names: Vec<&str> = parsed.specs.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["hello-controller", "hello"]);
}

#[test]
fn problems_in_several_documents_are_all_reported_with_their_document() {
    let text = format!("{BAD_SELECTOR}---\n{HELLO_LOCAL}---\n{BAD_SELECTOR}");
    let err = parse_manifests(&text).unwrap_err();
    let docs: Vec<usize> = err.problems.iter().map(|p| p.0.document).collect();
    // Docs 1 and 3 each fail on their selector. A failed document yields no
    // spec, so their shared name is not reported as a duplicate on top.
    assert_eq!(docs, [1, 3], "{err}");
}

#[test]
fn the_same_name_twice_is_rejected() {
    let text = format!("{HELLO_LOCAL}---\n{HELLO_LOCAL}");
    let err = parse_manifests(&text).unwrap_err();
    assert_eq!(err.problems.len(), 1, "{err}");
    assert_eq!(err.problems[0].0.document, 2);
    assert_eq!(err.problems[0].0.path, "metadata.name");
    assert!(err.to_string().contains("declared twice"));
}

#[test]
fn json_v1_and_a_kind_list_are_accepted() {
    let json = render::to_json(&[expected_hello()]).unwrap();
    assert_eq!(
        parse_manifests(&json).unwrap().specs,
        vec![expected_hello()]
    );

    let local = parse_manifests(HELLO_LOCAL).unwrap().specs.remove(0);
    let list = render::to_json(&[expected_hello(), local.clone()]).unwrap();
    assert!(list.contains("\"kind\": \"List\""));
    let parsed = parse_manifests(&list).unwrap();
    assert_eq!(parsed.specs, vec![expected_hello(), local]);
}

#[test]
fn normalized_yaml_reads_back_as_the_same_specs() {
    let mut specs = parse_manifests(HELLO_LOCAL).unwrap().specs;
    specs.push(expected_hello());
    let mut odd = expected_hello();
    odd.name = "odd".into();
    odd.template.labels.insert("version".into(), "1.0".into());
    odd.template.labels.insert("flag".into(), "true".into());
    odd.template.node_selector = labels(&[("zone", "0123")]);
    odd.template.containers[0].args = vec!["--port".into(), "80".into(), "yes".into()];
    odd.template.containers[0].env = vec![shoal_crdt_state::spec::EnvVar {
        name: "EMPTY".into(),
        value: String::new(),
    }];
    odd.template.containers[0].resources = Resources {
        cpu_millis: 1500,
        memory_bytes: 1_000_000,
    };
    odd.template.restart_policy = RestartPolicy::OnFailure;
    odd.update_strategy = UpdateStrategy {
        max_surge: Allowance::Count(0),
        max_unavailable: Allowance::Percent(40),
        min_ready_secs: 5,
        progress_deadline_secs: 30,
        auto_rollback: true,
    };
    odd.partition_policy = PartitionPolicy::AtMostDeclared;
    specs.push(odd);
    let yaml = render::to_yaml(&specs).unwrap();
    let back = parse_manifests(&yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
    assert_eq!(back.specs, specs, "{yaml}");
    assert!(back.warnings.is_empty(), "{:?}", back.warnings);
}

#[test]
fn malformed_yaml_reports_the_line() {
    let text = "apiVersion: v1\nkind: ReplicationController\nmetadata:\n  name: [web\nspec: {}\n";
    let err = parse_manifests(text).unwrap_err();
    assert_eq!(err.problems.len(), 1);
    let p = &err.problems[0].0;
    assert!(p.line.is_some_and(|l| (4..=6).contains(&l)), "{err}");
    assert!(p.message.starts_with("invalid YAML"), "{err}");
}

#[test]
fn malformed_json_reports_line_and_column() {
    let text = "{\n  \"id\": \"hello\",\n  \"kind\": \"ReplicationController\"\n  \"apiVersion\": \"v1beta1\"\n}\n";
    let err = parse_manifests(text).unwrap_err();
    let p = &err.problems[0].0;
    assert_eq!(p.line, Some(4), "{err}");
    assert!(p.message.contains("column"), "{err}");
}

#[test]
fn empty_input_is_an_error() {
    let err = parse_manifests("# nothing here\n").unwrap_err();
    assert!(err.to_string().contains("empty"), "{err}");
}
