//! Port clashes refused through the real `kubectl apply`, as through
//! `shoal apply`: two services on one port, a service's nodePort that an
//! RC binds as hostPort, and an RC whose hostPort is a service's nodePort.
//! Each refusal names both objects and changes nothing. Skipped, with a
//! message, when kubectl is absent.

mod cluster_support;
mod up_support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use cluster_support::{Cluster, ok};
use up_support::kubectl_present;

/// Our loopback range: 127.0.91.x.
const SUBNET: u8 = 91;

fn kubectl(config: &Path, cache: &Path, args: &[&str]) -> Output {
    Command::new("kubectl")
        .args(args)
        .arg("--cache-dir")
        .arg(cache)
        .env("KUBECONFIG", config)
        .env("HOME", cache)
        .env_remove("KUBERNETES_SERVICE_HOST")
        .output()
        .expect("run kubectl")
}

fn service(name: &str, port: u16, node_port: Option<u16>) -> String {
    let (kind, node_port) = match node_port {
        Some(p) => ("NodePort", format!("\n    nodePort: {p}")),
        None => ("ClusterIP", String::new()),
    };
    format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\nspec:\n  type: {kind}\n  selector:\n    app: {name}\n  ports:\n  - port: {port}\n    targetPort: 80{node_port}\n"
    )
}

fn rc(name: &str, host_port: u16) -> String {
    format!(
        "apiVersion: v1\nkind: ReplicationController\nmetadata:\n  name: {name}\nspec:\n  replicas: 1\n  selector:\n    app: {name}\n  template:\n    metadata:\n      labels:\n        app: {name}\n    spec:\n      containers:\n      - name: web\n        image: shoal-test/hello:1.0\n        ports:\n        - containerPort: 80\n          hostPort: {host_port}\n"
    )
}

#[test]
fn kubectl_apply_refuses_port_clashes_naming_both() {
    if !kubectl_present() {
        eprintln!("SKIPPED: no kubectl on PATH (.ci/run installs Debian's kubernetes-client)");
        return;
    }
    let cluster = Cluster::start(SUBNET, 1);
    let config = cluster.manifest(
        "kubeconfig",
        &ok(&cluster.cli(0, &["kubeconfig", "--name", "shoal-test"])),
    );
    let cache: PathBuf = cluster.dir.join("kubectl-cache");
    std::fs::create_dir_all(&cache).unwrap();
    let apply = |name: &str, text: &str| {
        let file = cluster.manifest(name, text);
        kubectl(&config, &cache, &["apply", "-f", file.to_str().unwrap()])
    };
    let applied = |name: &str, text: &str| {
        let out = apply(name, text);
        assert!(
            out.status.success(),
            "kubectl apply {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let refused = |name: &str, text: &str, both: [&str; 2]| {
        let out = apply(name, text);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "kubectl apply {name} was accepted");
        for n in both {
            assert!(
                stderr.contains(&format!("\"{n}\"")),
                "{n:?} not named by kubectl apply {name}: {stderr}"
            );
        }
    };

    // Two services on one port.
    applied("web.yaml", &service("web", 8092, None));
    refused("api.yaml", &service("api", 8092, None), ["api", "web"]);
    // A service's nodePort that an RC binds as hostPort, and the converse.
    applied("pinned.yaml", &rc("pinned", 30112));
    refused(
        "edge.yaml",
        &service("edge", 8093, Some(30112)),
        ["edge", "pinned"],
    );
    applied("front.yaml", &service("front", 8094, Some(30113)));
    refused("late.yaml", &rc("late", 30113), ["late", "front"]);

    // Nothing refused was written.
    let names = |what: &str| -> Vec<String> {
        let out = kubectl(&config, &cache, &["get", what, "-o", "name"]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(
        names("services"),
        ["service/front", "service/web"],
        "services after the refusals"
    );
    assert_eq!(
        names("replicationcontrollers"),
        ["replicationcontroller/pinned"],
        "RCs after the refusals"
    );
}
