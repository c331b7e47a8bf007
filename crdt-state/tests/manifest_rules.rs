//! Each validation rule, named by the field path it reports.

use shoal_crdt_state::manifest::validate::MAX_REPLICAS;
use shoal_crdt_state::manifest::{Diagnostic, ManifestError, ParsedManifests, parse_manifests};
use shoal_crdt_state::spec::{Allowance, PartitionPolicy, ProbeAction, Protocol, RestartPolicy};

/// A valid v1 RC; `pod` is spliced in as the pod spec's extra lines (6 spaces
/// of indent) and `container` as the first container's (10 spaces).
fn rc(top: &str, pod: &str, container: &str) -> String {
    format!(
        "apiVersion: v1
kind: ReplicationController
metadata:
  name: web
{top}spec:
  replicas: 2
  template:
    metadata:
      labels: {{app: web}}
    spec:
{pod}      containers:
        - name: web
          image: shoal-test/hello:1.0
{container}"
    )
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

/// The input is rejected with a problem at `path` whose message contains `needle`.
fn rejects(text: &str, path: &str, needle: &str) {
    let e = err(text);
    let found = e
        .problems
        .iter()
        .any(|p| p.0.path == path && p.0.message.contains(needle));
    assert!(found, "no problem at {path} containing {needle:?}:\n{e}");
}

fn warns(text: &str, path: &str) {
    let parsed = ok(text);
    assert!(
        parsed.warnings.iter().any(|w| w.0.path == path),
        "no warning at {path}: {:?}",
        parsed.warnings
    );
}

const C: &str = "spec.template.spec.containers[0]";

#[test]
fn the_base_manifest_is_valid_with_kubernetes_defaults() {
    let spec = ok(&rc("", "", "")).specs.remove(0);
    assert_eq!(
        spec.selector, spec.template.labels,
        "selector defaults to template labels"
    );
    assert_eq!(spec.template.restart_policy, RestartPolicy::Always);
    assert_eq!(spec.template.termination_grace_period_secs, 30);
    assert_eq!(spec.update_strategy.max_surge, Allowance::Percent(25));
    assert_eq!(spec.update_strategy.max_unavailable, Allowance::Percent(25));
    assert_eq!(spec.update_strategy.progress_deadline_secs, 600);
    assert_eq!(spec.update_strategy.resolve(4), (1, 1));
    assert_eq!(
        spec.update_strategy.resolve(10),
        (3, 2),
        "surge rounds up, unavailable down"
    );
    assert_eq!(spec.update_strategy.resolve(1), (1, 0));
}

#[test]
fn replicas_default_to_one_and_are_bounded() {
    let text = rc("", "", "").replace("  replicas: 2\n", "");
    assert_eq!(ok(&text).specs[0].replicas, 1);
    let text = rc("", "", "").replace("replicas: 2", "replicas: -1");
    rejects(&text, "spec.replicas", "out of range");
    let over = format!("replicas: {}", MAX_REPLICAS + 1);
    let text = rc("", "", "").replace("replicas: 2", &over);
    rejects(
        &text,
        "spec.replicas",
        &format!("between 0 and {MAX_REPLICAS}"),
    );
    let text = rc("", "", "").replace("replicas: 2", "replicas: \"2\"");
    rejects(&text, "spec.replicas", "must be an integer");
}

#[test]
fn names_must_be_dns1123_labels() {
    let text = rc("", "", "").replace("name: web\nspec", "name: WebApp\nspec");
    rejects(&text, "metadata.name", "DNS-1123");
    let text = rc("", "", "").replace("- name: web", "- name: Web_1");
    rejects(&text, &format!("{C}.name"), "DNS-1123");
}

#[test]
fn a_pod_needs_containers_with_distinct_names_and_an_image() {
    let text = rc("", "", "").replace(
        "      containers:\n        - name: web\n          image: shoal-test/hello:1.0\n",
        "      containers: []\n",
    );
    rejects(
        &text,
        "spec.template.spec.containers",
        "at least one container",
    );
    let text = rc("", "", "        - name: web\n          image: other\n");
    rejects(
        &text,
        "spec.template.spec.containers[1].name",
        "duplicate container name",
    );
    let text = rc("", "", "").replace("image: shoal-test/hello:1.0", "image: \"\"");
    rejects(&text, &format!("{C}.image"), "empty");
    let text = rc("", "", "").replace("          image: shoal-test/hello:1.0\n", "");
    rejects(&text, &format!("{C}.image"), "missing");
}

/// The one problem of a rejected input, with its field path and line.
fn only_problem(text: &str) -> Diagnostic {
    let e = err(text);
    assert_eq!(e.problems.len(), 1, "{e}");
    e.problems[0].0.clone()
}

#[test]
fn an_invalid_image_reference_is_an_error_at_its_field_and_line_in_both_forms() {
    const V1BETA1: &str = include_str!("../../examples/hello-v1beta1.json");
    let v1beta1_image = "desiredState.podTemplate.desiredState.manifest.containers[0].image";
    let cases = [
        ("UPPER/Case:1", "must be lowercase: use \"upper/case:1\""),
        ("foo:::bar", "tag \"::bar\" is not valid"),
        ("NOT a valid image!!", "character ' ' (position 4)"),
        ("shoal-test//hello", "empty path component"),
    ];
    for (image, reason) in cases {
        let v1 =
            rc("", "", "").replace("image: shoal-test/hello:1.0", &format!("image: {image:?}"));
        let p = only_problem(&v1);
        assert_eq!(p.path, format!("{C}.image"), "{image}");
        assert_eq!(p.line, Some(13), "{image}");
        assert!(
            p.message
                .contains(&format!("image {image:?} is not a valid image reference")),
            "{}",
            p.message
        );
        assert!(p.message.contains(reason), "{image}: {}", p.message);

        let v1beta1 = V1BETA1.replace("quay.io/kelseyhightower/hello", image);
        let p = only_problem(&v1beta1);
        assert_eq!(p.path, v1beta1_image, "{image}");
        assert_eq!(p.line, Some(15), "{image}");
        assert!(p.message.contains(reason), "{image}: {}", p.message);
    }
}

#[test]
fn ports_are_checked_for_range_and_collisions() {
    let bad = "          ports:\n            - containerPort: 0\n            - containerPort: 80\n              hostPort: 65536\n";
    let e = err(&rc("", "", bad));
    assert!(
        e.has_problem_at(&format!("{C}.ports[0].containerPort")),
        "{e}"
    );
    assert!(e.has_problem_at(&format!("{C}.ports[1].hostPort")), "{e}");

    let twice =
        "          ports:\n            - containerPort: 80\n            - containerPort: 80\n";
    rejects(
        &rc("", "", twice),
        &format!("{C}.ports[1].containerPort"),
        "duplicate port",
    );

    let udp = "          ports:\n            - containerPort: 53\n              protocol: UDP\n            - containerPort: 53\n              hostPort: 0\n";
    let spec = ok(&rc("", "", udp)).specs.remove(0);
    let ports = &spec.template.containers[0].ports;
    assert_eq!(ports[0].protocol, Protocol::Udp);
    assert_eq!(ports[1].host_port, None, "hostPort 0 means none");

    let sctp = "          ports:\n            - containerPort: 53\n              protocol: SCTP\n";
    rejects(
        &rc("", "", sctp),
        &format!("{C}.ports[0].protocol"),
        "TCP or UDP",
    );
}

#[test]
fn resource_requests_use_kubernetes_quantities() {
    let res = "          resources:\n            requests: {cpu: 0.5, memory: 1Gi}\n";
    let spec = ok(&rc("", "", res)).specs.remove(0);
    assert_eq!(spec.template.containers[0].resources.cpu_millis, 500);
    assert_eq!(spec.template.containers[0].resources.memory_bytes, 1 << 30);

    let bad = "          resources:\n            requests: {cpu: lots, memory: 12Q}\n";
    let e = err(&rc("", "", bad));
    assert!(
        e.has_problem_at(&format!("{C}.resources.requests.cpu")),
        "{e}"
    );
    assert!(
        e.has_problem_at(&format!("{C}.resources.requests.memory")),
        "{e}"
    );

    let gpu = "          resources:\n            requests: {nvidia.com/gpu: 1}\n";
    rejects(
        &rc("", "", gpu),
        &format!("{C}.resources.requests.nvidia.com/gpu"),
        "not supported",
    );

    let limits = "          resources:\n            limits: {memory: 1Gi}\n";
    warns(&rc("", "", limits), &format!("{C}.resources.limits"));
}

#[test]
fn readiness_probes_take_kubernetes_defaults_and_named_ports() {
    let probe = "          ports:\n            - {containerPort: 8080, name: http}\n          readinessProbe:\n            httpGet: {port: http}\n";
    let spec = ok(&rc("", "", probe)).specs.remove(0);
    let p = spec.template.containers[0].readiness_probe.clone().unwrap();
    assert_eq!(
        p.action,
        ProbeAction::HttpGet {
            path: "/".into(),
            port: 8080
        }
    );
    assert_eq!(
        (
            p.initial_delay_secs,
            p.period_secs,
            p.timeout_secs,
            p.failure_threshold
        ),
        (0, 10, 1, 3)
    );

    let unknown = "          readinessProbe:\n            tcpSocket: {port: metrics}\n";
    rejects(
        &rc("", "", unknown),
        &format!("{C}.readinessProbe.tcpSocket.port"),
        "named port",
    );

    let two = "          readinessProbe:\n            tcpSocket: {port: 80}\n            exec: {command: [true]}\n";
    rejects(
        &rc("", "", two),
        &format!("{C}.readinessProbe"),
        "exactly one",
    );

    let exec = "          readinessProbe:\n            exec: {command: [cat, /tmp/ready]}\n            periodSeconds: 0\n";
    rejects(
        &rc("", "", exec),
        &format!("{C}.readinessProbe.periodSeconds"),
        "periodSeconds must be between 1 and",
    );

    let liveness = "          livenessProbe:\n            tcpSocket: {port: 80}\n";
    rejects(
        &rc("", "", liveness),
        &format!("{C}.livenessProbe.tcpSocket.port"),
        "not supported",
    );
}

#[test]
fn fields_that_would_change_behaviour_are_not_supported() {
    for (pod, path) in [
        (
            "      volumes:\n        - name: data\n",
            "spec.template.spec.volumes",
        ),
        (
            "      hostNetwork: true\n",
            "spec.template.spec.hostNetwork",
        ),
        (
            "      initContainers:\n        - {name: init, image: x}\n",
            "spec.template.spec.initContainers",
        ),
        (
            "      affinity:\n        nodeAffinity: {x: 1}\n",
            "spec.template.spec.affinity.nodeAffinity.x",
        ),
        (
            "      tolerations:\n        - {key: k}\n",
            "spec.template.spec.tolerations",
        ),
    ] {
        rejects(&rc("", pod, ""), path, "not supported");
    }
    let privileged = "          securityContext:\n            privileged: true\n";
    rejects(
        &rc("", "", privileged),
        &format!("{C}.securityContext.privileged"),
        "not supported",
    );
    // Set to what asks for nothing, they are fine.
    ok(&rc("", "      hostNetwork: false\n      volumes: []\n", ""));
}

#[test]
fn harmless_unknown_fields_are_warnings_with_their_path() {
    warns(
        &rc("  creationTimestamp: null\n", "", ""),
        "metadata.creationTimestamp",
    );
    warns(
        &rc(
            "",
            "",
            "          terminationMessagePath: /dev/termination-log\n",
        ),
        &format!("{C}.terminationMessagePath"),
    );
    warns(
        &format!("{}status:\n  replicas: 0\n", rc("", "", "")),
        "status",
    );
    warns(
        &rc("", "      dnsPolicy: ClusterFirst\n", ""),
        "spec.template.spec.dnsPolicy",
    );
}

#[test]
fn other_kinds_and_versions_are_errors_naming_them() {
    let text = rc("", "", "").replace("kind: ReplicationController", "kind: Deployment");
    rejects(&text, "kind", "\"Deployment\"");
    let text = rc("", "", "").replace("apiVersion: v1", "apiVersion: apps/v1");
    rejects(&text, "apiVersion", "apps/v1");
    rejects("just a string\n", "", "must be a mapping");
}

#[test]
fn selector_rules_follow_kubernetes() {
    let text = rc("", "", "").replace(
        "  replicas: 2\n",
        "  replicas: 2\n  selector: {app: web, tier: fe}\n",
    );
    rejects(&text, "spec.selector", "(missing {tier: fe})");
    let text = rc("", "", "").replace(
        "  replicas: 2\n",
        "  replicas: 2\n  selector: {matchLabels: {app: web}}\n",
    );
    rejects(&text, "spec.selector", "plain label map");
    let text = rc("", "", "").replace("labels: {app: web}", "labels: {}");
    rejects(&text, "spec.selector", "empty");
    let text = rc("", "", "").replace("labels: {app: web}", "labels: {app: web, version: 1}");
    rejects(&text, "spec.template.metadata.labels.version", "quotes");
}

#[test]
fn shoal_annotations_set_the_rollout_budget_and_partition_policy() {
    let top = "  annotations:\n    shoal.io/max-surge: \"0\"\n    shoal.io/max-unavailable: 2\n    shoal.io/partition-policy: at-most-declared\n    other.io/x: y\n";
    let spec = ok(&rc(top, "", "")).specs.remove(0);
    assert_eq!(spec.update_strategy.max_surge, Allowance::Count(0));
    assert_eq!(spec.update_strategy.max_unavailable, Allowance::Count(2));
    assert_eq!(spec.partition_policy, PartitionPolicy::AtMostDeclared);

    let percent =
        "  annotations:\n    shoal.io/max-surge: 50%\n    shoal.io/auto-rollback: \"true\"\n";
    let spec = ok(&rc(percent, "", "")).specs.remove(0);
    assert_eq!(spec.update_strategy.max_surge, Allowance::Percent(50));
    assert!(spec.update_strategy.auto_rollback);
    let over = "  annotations:\n    shoal.io/max-surge: 150%\n";
    rejects(
        &rc(over, "", ""),
        "metadata.annotations.shoal.io/max-surge",
        "between 0% and 100%",
    );

    let both_zero =
        "  annotations:\n    shoal.io/max-surge: \"0\"\n    shoal.io/max-unavailable: \"0\"\n";
    rejects(
        &rc(both_zero, "", ""),
        "metadata.annotations",
        "never make progress",
    );
    let policy = "  annotations:\n    shoal.io/partition-policy: quorum\n";
    rejects(
        &rc(policy, "", ""),
        "metadata.annotations.shoal.io/partition-policy",
        "available",
    );
    warns(
        &rc("  annotations:\n    shoal.io/max-surg: \"1\"\n", "", ""),
        "metadata.annotations.shoal.io/max-surg",
    );
}

#[test]
fn pod_settings_are_read() {
    let pod = "      nodeSelector: {disk: ssd}\n      restartPolicy: OnFailure\n      terminationGracePeriodSeconds: 5\n";
    let container = "          command: [/bin/hello]\n          args: [--port, \"80\"]\n          env:\n            - {name: MODE, value: fast}\n            - {name: EMPTY}\n";
    let spec = ok(&rc("", pod, container)).specs.remove(0);
    let t = &spec.template;
    assert_eq!(t.node_selector.get("disk").map(String::as_str), Some("ssd"));
    assert_eq!(t.restart_policy, RestartPolicy::OnFailure);
    assert_eq!(t.termination_grace_period_secs, 5);
    assert_eq!(t.containers[0].command, ["/bin/hello"]);
    assert_eq!(t.containers[0].args, ["--port", "80"]);
    assert_eq!(t.containers[0].env[1].value, "");
    let text = rc("", "", "          args: [--port, 80]\n");
    rejects(&text, &format!("{C}.args[1]"), "quotes");
    let text = rc("", "      restartPolicy: Sometimes\n", "");
    rejects(
        &text,
        "spec.template.spec.restartPolicy",
        "Always, OnFailure, Never",
    );
}

#[test]
fn all_problems_of_a_document_are_collected() {
    let text = rc(
        "",
        "      hostNetwork: true\n",
        "          ports:\n            - containerPort: 99999\n",
    )
    .replace("name: web\nspec", "name: Bad\nspec")
    .replace("image: shoal-test/hello:1.0", "image: \"\"");
    let e = err(&text);
    assert_eq!(e.problems.len(), 4, "{e}");
    let lines: Vec<_> = e.problems.iter().map(|p| p.0.line.unwrap()).collect();
    let mut sorted = lines.clone();
    sorted.sort();
    assert_eq!(lines, sorted, "reported top to bottom");
}

#[test]
fn v1beta1_containers_carry_cpu_memory_and_command() {
    let text = r#"{"id": "web", "kind": "ReplicationController", "apiVersion": "v1beta1",
      "desiredState": {"replicas": 1, "replicaSelector": {"name": "web"},
        "podTemplate": {"labels": {"name": "web"}, "desiredState": {"manifest": {
          "version": "v1beta1", "id": "web", "restartPolicy": {"never": {}},
          "containers": [{"name": "web", "image": "img", "cpu": 250, "memory": 64000000,
                          "command": ["serve", "--fast"]}]}}}}}"#;
    let spec = ok(text).specs.remove(0);
    let c = &spec.template.containers[0];
    assert_eq!(c.resources.cpu_millis, 250);
    assert_eq!(c.resources.memory_bytes, 64_000_000);
    assert_eq!(
        c.args,
        ["serve", "--fast"],
        "v1beta1 command replaced the image's CMD"
    );
    assert!(c.command.is_empty());
    assert_eq!(spec.template.restart_policy, RestartPolicy::Never);
    let bad = text.replace(
        "\"replicaSelector\": {\"name\": \"web\"}",
        "\"replicaSelector\": {\"name\": \"api\"}",
    );
    rejects(&bad, "desiredState.replicaSelector", "does not match");
    let volumes = text.replace(
        "\"version\": \"v1beta1\",",
        "\"version\": \"v1beta1\", \"volumes\": [{\"name\": \"v\"}],",
    );
    rejects(
        &volumes,
        "desiredState.podTemplate.desiredState.manifest.volumes",
        "not supported",
    );
}

#[test]
fn list_items_are_named_by_their_index() {
    let text = "apiVersion: v1\nkind: List\nitems:\n  - apiVersion: v1\n    kind: Deployment\n";
    rejects(text, "items[0].kind", "\"Deployment\"");
}

#[test]
fn a_deployment_style_strategy_sets_the_rollout_and_wins_over_annotations() {
    let spec_fields = "  replicas: 2\n  minReadySeconds: 5\n  progressDeadlineSeconds: 30\n  strategy:\n    type: RollingUpdate\n    rollingUpdate:\n      maxSurge: 50%\n      maxUnavailable: 0\n";
    let top = "  annotations:\n    shoal.io/max-surge: \"3\"\n";
    let text = rc(top, "", "").replace("  replicas: 2\n", spec_fields);
    let s = ok(&text).specs.remove(0).update_strategy;
    assert_eq!(s.max_surge, Allowance::Percent(50));
    assert_eq!(s.max_unavailable, Allowance::Count(0));
    assert_eq!((s.min_ready_secs, s.progress_deadline_secs), (5, 30));

    let recreate = rc("", "", "").replace(
        "  replicas: 2\n",
        "  replicas: 2\n  strategy:\n    type: Recreate\n",
    );
    rejects(&recreate, "spec.strategy.type", "RollingUpdate");
    let bad = rc("", "", "").replace(
        "  replicas: 2\n",
        "  replicas: 2\n  strategy:\n    rollingUpdate:\n      maxSurge: lots\n",
    );
    rejects(&bad, "spec.strategy.rollingUpdate.maxSurge", "percentage");
}
