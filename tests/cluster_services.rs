//! Services with real peers and the real engine: a Service applied at one
//! peer shows the same endpoints at every peer, each endpoint answers at
//! the address the table gives, clashes are refused naming both services,
//! and a delete leaves every peer.

mod cluster_support;

use std::time::Duration;

use cluster_support::{Cluster, hello_rc, hello_rc_probed, http_get, ok, wait_until};

/// A NodePort service for the hello RC, its target the container port
/// named `http` (port 80 of the test image).
const SERVICE: &str = "apiVersion: v1
kind: Service
metadata:
  name: hello
spec:
  type: NodePort
  selector:
    app: hello
  ports:
    - name: http
      port: 8080
      targetPort: http
";

/// `(ready, total)` endpoints of service `name` as peer `i` shows them.
fn endpoint_counts(cluster: &Cluster, i: usize, name: &str) -> Option<(u64, u64)> {
    let services = cluster.try_get_json(i, "svc")?;
    let svc = services.as_array()?.iter().find(|s| s["name"] == name)?;
    Some((
        svc["endpoints_ready"].as_u64()?,
        svc["endpoints_total"].as_u64()?,
    ))
}

#[test]
fn three_peers_show_a_service_with_its_endpoints_and_forget_it_when_deleted() {
    let cluster = Cluster::start(43, 3);
    let rc = hello_rc_probed("hello", 3, "shoal-test/hello:1.0").replace(
        "        - containerPort: 80\n",
        "        - containerPort: 80\n          name: http\n",
    );
    let manifest = cluster.manifest("hello.yaml", &format!("{rc}---\n{SERVICE}"));
    let applied = ok(&cluster.cli(0, &["apply", "-f", manifest.to_str().unwrap()]));
    assert!(applied.contains("service/hello created"), "{applied}");

    for i in 0..3 {
        let ready = wait_until(Duration::from_secs(60), || {
            endpoint_counts(&cluster, i, "hello") == Some((3, 3))
        });
        assert!(
            ready,
            "peer {i} shows {:?} endpoints; pods {:?}\n{}",
            endpoint_counts(&cluster, i, "hello"),
            cluster.try_get_json(i, "pods"),
            cluster.log_tail(i)
        );
    }

    // The table, kubectl-style, with the allocated node port.
    let table = ok(&cluster.cli(2, &["get", "svc"]));
    let svc = &cluster.get_json(2, "svc")[0];
    let node_port = svc["ports"][0]["node_port"]
        .as_u64()
        .expect("a node port was allocated");
    assert!((30000..=32767).contains(&node_port));
    assert!(table.contains(&format!("8080:{node_port}/TCP")), "{table}");
    assert!(
        table.contains("3/3") && table.contains("app=hello"),
        "{table}"
    );
    // Every peer agrees on the allocation: it was made once, then replicated.
    for i in 0..2 {
        assert_eq!(cluster.get_json(i, "svc")[0]["ports"], svc["ports"]);
    }

    // Describe lists each endpoint, and each answers where the table says.
    let out = ok(&cluster.cli(1, &["get", "svc", "hello", "-o", "json"]));
    let detail: serde_json::Value = serde_json::from_str(&out).unwrap();
    let endpoints = detail["endpoints"].as_array().unwrap();
    let pods: Vec<&str> = endpoints
        .iter()
        .map(|e| e["pod"].as_str().unwrap())
        .collect();
    assert_eq!(pods, ["hello-0", "hello-1", "hello-2"]);
    for e in endpoints {
        assert_eq!(e["ready"], true);
        let addr = e["addresses"][0].as_str().unwrap();
        // Ready without a probe can come before httpd accepts.
        let mut body = String::new();
        let served = wait_until(Duration::from_secs(10), || {
            body = http_get(addr).unwrap_or_default();
            body.contains("hello from 1.0")
        });
        assert!(served, "{} at {addr}: {body:?}", e["pod"]);
    }
    let text = ok(&cluster.cli(1, &["describe", "svc", "hello"]));
    assert!(
        text.contains("3 ready / 3 total") && text.contains("hello-2"),
        "{text}"
    );

    // A second service on the same port is refused, naming both.
    let clash = cluster.manifest(
        "clash.yaml",
        &SERVICE
            .replace("name: hello\n", "name: other\n")
            .replace("app: hello", "app: nobody"),
    );
    let out = cluster.cli(2, &["apply", "-f", clash.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("\"other\"") && stderr.contains("\"hello\""),
        "{stderr}"
    );

    // An RC applied later that binds the service's node port as a hostPort
    // is refused, naming both, and nothing of its manifest is written.
    let binds = cluster.manifest(
        "binds.yaml",
        &hello_rc("binder", 1, "shoal-test/hello:1.0").replace(
            "        - containerPort: 80\n",
            &format!("        - containerPort: 80\n          hostPort: {node_port}\n"),
        ),
    );
    let out = cluster.cli(0, &["apply", "-f", binds.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("hostPort {node_port}"))
            && stderr.contains("\"binder\"")
            && stderr.contains("nodePort of service \"hello\""),
        "{stderr}"
    );
    let rcs = cluster.get_json(0, "rc");
    assert!(
        rcs.as_array()
            .unwrap()
            .iter()
            .all(|rc| rc["name"] != "binder"),
        "{rcs}"
    );

    // A selector that matches nothing is accepted, with no endpoints.
    let lonely = cluster.manifest(
        "lonely.yaml",
        &SERVICE
            .replace("name: hello\n", "name: lonely\n")
            .replace("app: hello", "app: nobody")
            .replace("port: 8080", "port: 9090")
            .replace("targetPort: http", "targetPort: 80"),
    );
    ok(&cluster.cli(2, &["apply", "-f", lonely.to_str().unwrap()]));
    let text = ok(&cluster.cli(0, &["describe", "svc", "lonely"]));
    assert!(text.contains("selector matches no pods"), "{text}");

    // Deleted at one peer, gone at every peer.
    let out = ok(&cluster.cli(1, &["delete", "svc", "hello"]));
    assert!(out.contains("service/hello deleted"), "{out}");
    for i in 0..3 {
        let gone = wait_until(Duration::from_secs(10), || {
            cluster.try_get_json(i, "svc").is_some_and(|v| {
                v.as_array()
                    .is_some_and(|a| a.iter().all(|s| s["name"] != "hello"))
            })
        });
        assert!(
            gone,
            "peer {i} still shows hello: {:?}",
            cluster.try_get_json(i, "svc")
        );
    }
    let out = cluster.cli(0, &["describe", "svc", "hello"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not found"));
}
