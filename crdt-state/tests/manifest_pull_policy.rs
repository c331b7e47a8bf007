//! `imagePullPolicy`: read in both forms, defaulted as Kubernetes does,
//! refused with its path and line when misspelled, and rendered back.

use shoal_crdt_state::manifest::{ManifestError, parse_manifests, render};
use shoal_crdt_state::spec::PullPolicy;

const V1BETA1: &str = include_str!("../../examples/hello-v1beta1.json");
const V1BETA1_POLICY: &str =
    "desiredState.podTemplate.desiredState.manifest.containers[0].imagePullPolicy";
const V1_POLICY: &str = "spec.template.spec.containers[0].imagePullPolicy";

/// A v1 RC running `image`, with `policy_line` (10 spaces of indent) after it.
fn v1(image: &str, policy_line: &str) -> String {
    format!(
        "apiVersion: v1
kind: ReplicationController
metadata:
  name: web
spec:
  replicas: 1
  template:
    metadata:
      labels: {{app: web}}
    spec:
      containers:
        - name: web
          image: {image}
{policy_line}"
    )
}

/// The 2014 example with `image` and, when given, `"imagePullPolicy": policy`.
fn v1beta1(image: &str, policy: Option<&str>) -> String {
    let image_field = format!("\"image\": \"{image}\"");
    let replacement = match policy {
        Some(p) => format!("{image_field}, \"imagePullPolicy\": \"{p}\""),
        None => image_field,
    };
    V1BETA1.replace("\"image\": \"quay.io/kelseyhightower/hello\"", &replacement)
}

fn policy_of(text: &str) -> PullPolicy {
    let parsed = parse_manifests(text).unwrap_or_else(|e| panic!("{e}\n---\n{text}"));
    // The 2014 example's camel-case id is renamed with a warning: no other.
    assert!(
        parsed.warnings.iter().all(|w| w.0.path == "id"),
        "{:?}",
        parsed.warnings
    );
    parsed.specs[0].template.containers[0].image_pull_policy
}

fn refused(text: &str) -> ManifestError {
    match parse_manifests(text) {
        Ok(parsed) => panic!("accepted: {parsed:?}\n---\n{text}"),
        Err(e) => e,
    }
}

#[test]
fn the_default_follows_kubernetes_latest_or_no_tag_is_always() {
    let digest = format!("shoal-test/hello@sha256:{}", "a".repeat(64));
    let cases = [
        ("shoal-test/hello:1.0", PullPolicy::IfNotPresent),
        ("shoal-test/hello:latest", PullPolicy::Always),
        ("shoal-test/hello", PullPolicy::Always),
        ("registry.local:5000/hello", PullPolicy::Always),
        ("registry.local:5000/hello:2", PullPolicy::IfNotPresent),
        (digest.as_str(), PullPolicy::IfNotPresent),
    ];
    for (image, expected) in cases {
        assert_eq!(policy_of(&v1(image, "")), expected, "v1 {image}");
        assert_eq!(
            policy_of(&v1beta1(image, None)),
            expected,
            "v1beta1 {image}"
        );
        assert_eq!(PullPolicy::default_for(image), expected, "{image}");
    }
}

#[test]
fn each_policy_is_read_in_both_forms_and_overrides_the_default() {
    for (name, expected) in [
        ("Always", PullPolicy::Always),
        ("IfNotPresent", PullPolicy::IfNotPresent),
        ("Never", PullPolicy::Never),
    ] {
        let line = format!("          imagePullPolicy: {name}\n");
        // `:latest` defaults to Always, `:1.0` to IfNotPresent: both overridden.
        for image in ["shoal-test/hello:1.0", "shoal-test/hello:latest"] {
            assert_eq!(policy_of(&v1(image, &line)), expected, "v1 {name} {image}");
            assert_eq!(
                policy_of(&v1beta1(image, Some(name))),
                expected,
                "v1beta1 {name} {image}"
            );
        }
    }
}

#[test]
fn a_bad_policy_is_an_error_at_its_field_and_line_listing_the_three() {
    for bad in ["never", "Sometimes", "\"\""] {
        let e = refused(&v1(
            "shoal-test/hello:1.0",
            &format!("          imagePullPolicy: {bad}\n"),
        ));
        assert_eq!(e.problems.len(), 1, "{e}");
        let p = &e.problems[0].0;
        assert_eq!(p.path, V1_POLICY);
        assert_eq!(p.line, Some(14), "{e}");
        assert!(p.message.contains("Always, IfNotPresent, Never"), "{e}");
    }
    let e = refused(&v1(
        "shoal-test/hello:1.0",
        "          imagePullPolicy: 3\n",
    ));
    assert_eq!(e.problems[0].0.path, V1_POLICY, "{e}");

    let e = refused(&v1beta1("shoal-test/hello:1.0", Some("Nevr")));
    assert_eq!(e.problems.len(), 1, "{e}");
    let p = &e.problems[0].0;
    assert_eq!(p.path, V1BETA1_POLICY);
    assert_eq!(p.line, Some(15), "{e}");
    assert!(p.message.contains("\"Nevr\""), "{e}");
    assert!(p.message.contains("Always, IfNotPresent, Never"), "{e}");
}

#[test]
fn the_policy_is_rendered_and_survives_a_round_trip() {
    for (image, line, expected) in [
        (
            "shoal-test/hello:1.0",
            "          imagePullPolicy: Never\n",
            "Never",
        ),
        ("shoal-test/hello:1.0", "", "IfNotPresent"),
        ("shoal-test/hello", "", "Always"),
        (
            "shoal-test/hello",
            "          imagePullPolicy: IfNotPresent\n",
            "IfNotPresent",
        ),
    ] {
        let specs = parse_manifests(&v1(image, line)).unwrap().specs;
        let yaml = render::to_yaml(&specs).unwrap();
        assert!(
            yaml.contains(&format!("imagePullPolicy: {expected}")),
            "{image}: {yaml}"
        );
        let again = parse_manifests(&yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
        assert_eq!(again.specs, specs, "{yaml}");
        let json = render::to_json(&specs).unwrap();
        assert!(
            json.contains(&format!("\"imagePullPolicy\": \"{expected}\"")),
            "{json}"
        );
        assert_eq!(parse_manifests(&json).unwrap().specs, specs, "{json}");
    }
}
