//! `shoal validate` as a user runs it: the real binary on the shipped examples.

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn shoal(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_shoal"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the shoal binary runs");
    let mut pipe = child.stdin.take().expect("stdin is piped");
    pipe.write_all(stdin.unwrap_or("").as_bytes())
        .expect("writing stdin");
    drop(pipe);
    child.wait_with_output().expect("shoal exits")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn the_2014_hello_example_validates_under_its_normalized_name() {
    let out = shoal(&["validate", "-f", "examples/hello-v1beta1.json"], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("name: hello-controller"), "{stdout}");
    assert!(stdout.contains("replicas: 2"), "{stdout}");
    assert!(stdout.contains("hostPort: 8080"), "{stdout}");
    let stderr = text(&out.stderr);
    assert!(stderr.contains("warning: doc 1 id"), "{stderr}");
    assert!(stderr.contains("\"hello-controller\""), "{stderr}");
}

#[test]
fn the_v1_hello_example_prints_the_same_normalized_manifest() {
    let old = shoal(&["validate", "-f", "examples/hello-v1beta1.json"], None);
    let new = shoal(&["validate", "-f", "examples/hello-rc.yaml"], None);
    assert!(new.status.success(), "{}", text(&new.stderr));
    assert_eq!(text(&old.stdout), text(&new.stdout));
    assert_eq!(text(&new.stderr), "", "no warnings for the v1 form");
}

#[test]
fn a_selector_that_misses_the_pods_is_rejected() {
    let out = shoal(&["validate", "-f", "examples/bad-selector.yaml"], None);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stdout), "", "nothing printed as valid");
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("error: doc 1 spec.selector (line 11)"),
        "{stderr}"
    );
    assert!(
        stderr.contains("does not match template labels"),
        "{stderr}"
    );
}

#[test]
fn stdin_is_read_with_dash() {
    let manifest = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/hello-local.yaml"),
    )
    .unwrap();
    let out = shoal(&["validate", "-f", "-"], Some(&manifest));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("image: shoal-test/hello:1.0"));
}

#[test]
fn json_output_parses_and_carries_the_spec() {
    let out = shoal(
        &["validate", "-f", "examples/hello-local.yaml", "-o", "json"],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    assert_eq!(value["kind"], "ReplicationController");
    assert_eq!(value["metadata"]["name"], "hello");
    assert_eq!(value["spec"]["replicas"], 2);
    let container = &value["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["readinessProbe"]["httpGet"]["port"], 80);
    assert_eq!(container["resources"]["requests"]["cpu"], "50m");
}

#[test]
fn every_error_of_a_bad_file_is_listed_and_a_malformed_one_gives_its_line() {
    let manifest = "apiVersion: v1\nkind: ReplicationController\nmetadata:\n  name: Bad_Name\nspec:\n  replicas: -1\n  template:\n    metadata: {labels: {app: x}}\n    spec:\n      containers:\n        - name: x\n          image: \"\"\n";
    let out = shoal(&["validate", "-f", "-"], Some(manifest));
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    for needle in [
        "metadata.name (line 4)",
        "spec.replicas (line 6)",
        "containers[0].image (line 12)",
        "3 errors",
    ] {
        assert!(stderr.contains(needle), "{needle} missing in:\n{stderr}");
    }

    let out = shoal(&["validate", "-f", "-"], Some("kind: [oops\n"));
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("line"), "{}", text(&out.stderr));
}

#[test]
fn an_invalid_image_reference_is_rejected_with_the_fix() {
    let manifest = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/hello-rc.yaml"
    ))
    .unwrap()
    .replace("quay.io/kelseyhightower/hello", "UPPER/Case:1");
    let out = shoal(&["validate", "-f", "-"], Some(&manifest));
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stdout), "", "nothing printed as valid");
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("error: doc 1 spec.template.spec.containers[0].image (line 20): image \"UPPER/Case:1\" is not a valid image reference: repository name must be lowercase: use \"upper/case:1\""),
        "{stderr}"
    );
}

#[test]
fn a_missing_file_is_an_error_naming_it() {
    let out = shoal(&["validate", "-f", "examples/no-such-file.yaml"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("no-such-file.yaml"));
}

#[test]
fn validate_into_a_pipe_whose_reader_has_gone_ends_quietly() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_shoal"))
        .args(["validate", "-f", "examples/hello-rc.yaml"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the shoal binary runs");
    // `| head -0`: the reader closes before the first line is written.
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("shoal exits");
    assert_eq!(text(&out.stderr), "", "no `Broken pipe` error");
    assert!(out.status.success(), "{:?}", out.status);
}
