//! The real `kubectl` (whichever is on PATH) against a 3-peer cluster: each
//! call goes to a different peer through a kubeconfig that `shoal
//! kubeconfig` printed, and its output is parsed and checked. No call may
//! print a discovery or OpenAPI warning.
//!
//! Skipped, with a message, when kubectl is absent (`.ci/run` installs
//! Debian's `kubernetes-client` where none is present).

mod cluster_support;
mod up_support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use cluster_support::{Cluster, ok, wait_until};
use serde_json::Value;
use up_support::kubectl_present;

/// Our loopback range: 127.0.48.x.
const SUBNET: u8 = 48;
const PEERS: usize = 3;

/// kubectl pointed at peer `i` with a kubeconfig `shoal kubeconfig` wrote,
/// and a discovery cache of its own (never the user's ~/.kube).
struct Kubectl {
    configs: Vec<PathBuf>,
    /// kubectl before 1.27 validates `apply`/`create` against OpenAPI v2,
    /// which Shoal does not serve: such a client (only) gets --validate=false.
    old_client: bool,
    cache: PathBuf,
    home: PathBuf,
}

impl Kubectl {
    fn new(cluster: &Cluster) -> Kubectl {
        let configs = (0..PEERS)
            .map(|i| {
                let text = ok(&cluster.cli(i, &["kubeconfig", "--name", "shoal-test"]));
                assert!(
                    text.contains(&format!("{}/kube", cluster.peers[i].server())),
                    "{text}"
                );
                cluster.manifest(&format!("kubeconfig-{i}"), &text)
            })
            .collect();
        let home = cluster.dir.join("kubectl-home");
        std::fs::create_dir_all(&home).unwrap();
        let client = Command::new("kubectl")
            .args(["version", "--client", "-o", "json"])
            .output()
            .unwrap();
        let client: Value = serde_json::from_slice(&client.stdout).unwrap_or_default();
        let minor = client["clientVersion"]["minor"]
            .as_str()
            .and_then(|m| m.trim_end_matches('+').parse::<u32>().ok())
            .unwrap_or(99);
        Kubectl {
            configs,
            old_client: minor < 27,
            cache: cluster.dir.join("kubectl-cache"),
            home,
        }
    }

    fn command(&self, i: usize, args: &[&str]) -> Command {
        let mut cmd = Command::new("kubectl");
        cmd.args(args);
        if self.old_client && matches!(args.first(), Some(&"apply" | &"create")) {
            cmd.arg("--validate=false");
        }
        cmd.arg("--cache-dir")
            .arg(&self.cache)
            .env("KUBECONFIG", &self.configs[i])
            .env("HOME", &self.home)
            .env_remove("KUBERNETES_SERVICE_HOST")
            .env_remove("KUBECTL_EXTERNAL_DIFF");
        cmd
    }

    fn output(&self, i: usize, args: &[&str]) -> Output {
        let out = self.command(i, args).output().expect("run kubectl");
        assert_quiet(args, &out);
        out
    }

    /// Runs kubectl at peer `i`; it must succeed; its stdout.
    fn run(&self, i: usize, args: &[&str]) -> String {
        let out = self.output(i, args);
        assert!(
            out.status.success(),
            "kubectl {} at peer {i} failed:\n{}\n{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn json(&self, i: usize, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        let text = self.run(i, &all);
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
    }
}

/// No discovery, OpenAPI or deprecation warning on stderr.
fn assert_quiet(args: &[&str], out: &Output) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    for line in stderr.lines() {
        let lower = line.to_lowercase();
        let noisy = [
            "warning",
            "memcache",
            "openapi",
            "discovery",
            "couldn't get",
        ]
        .iter()
        .any(|w| lower.contains(w));
        assert!(
            !noisy,
            "kubectl {} printed: {line}\n{stderr}",
            args.join(" ")
        );
    }
}

fn rc_manifest(replicas: u32, image: &str) -> String {
    format!(
        "apiVersion: v1
kind: ReplicationController
metadata:
  name: hello
spec:
  replicas: {replicas}
  selector:
    app: hello
  template:
    metadata:
      labels:
        app: hello
    spec:
      terminationGracePeriodSeconds: 2
      containers:
      - name: web
        image: {image}
        command: [\"/bin/sh\", \"-c\", \"echo first line; echo second line; trap 'exit 0' TERM INT; httpd -f -p 80 -h /www & wait\"]
        ports:
        - containerPort: 80
        resources:
          requests:
            cpu: 10m
            memory: 8Mi
"
    )
}

const SERVICE: &str = "apiVersion: v1
kind: Service
metadata:
  name: hello
spec:
  selector:
    app: hello
  ports:
  - port: 8043
    targetPort: 80
";

/// Pods of `hello` that are Running and ready, by the JSON kubectl got.
fn ready_pods(k: &Kubectl, i: usize) -> Vec<Value> {
    let list = k.json(i, &["get", "pods", "-l", "app=hello"]);
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| {
            p["status"]["phase"] == "Running"
                && p["status"]["containerStatuses"][0]["ready"] == true
        })
        .cloned()
        .collect()
}

/// Splits a table kubectl printed into rows of whitespace-separated cells.
fn table(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split_whitespace().map(str::to_owned).collect())
        .collect()
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[test]
fn kubectl_manages_a_three_peer_cluster_through_any_peer() {
    if !kubectl_present() {
        eprintln!("SKIPPED: no kubectl on PATH (.ci/run installs Debian's kubernetes-client)");
        return;
    }
    let cluster = Cluster::start(SUBNET, PEERS);
    let k = Kubectl::new(&cluster);
    let dir = cluster.dir.clone();

    // version: the server's minor is the one k8s-openapi's types are of.
    let version = k.json(0, &["version"]);
    assert_eq!(version["serverVersion"]["major"], "1", "{version}");
    assert_eq!(version["serverVersion"]["minor"], "33", "{version}");

    // api-resources: names, short names, namespaced, kinds.
    let resources = table(&k.run(1, &["api-resources"]));
    let row = |name: &str| {
        resources
            .iter()
            .find(|r| r[0] == name)
            .unwrap_or_else(|| panic!("no {name} in {resources:?}"))
            .clone()
    };
    assert_eq!(
        row("replicationcontrollers"),
        [
            "replicationcontrollers",
            "rc",
            "v1",
            "true",
            "ReplicationController"
        ]
    );
    assert_eq!(row("pods"), ["pods", "po", "v1", "true", "Pod"]);
    assert_eq!(row("nodes"), ["nodes", "no", "v1", "false", "Node"]);
    assert_eq!(
        row("services"),
        ["services", "svc", "v1", "true", "Service"]
    );
    assert_eq!(row("events"), ["events", "ev", "v1", "true", "Event"]);

    // apply -f creates (through peer 0)...
    let v1 = write(
        &dir,
        "hello-1.0.yaml",
        &rc_manifest(2, "shoal-test/hello:1.0"),
    );
    let out = k.run(0, &["apply", "-f", &v1]);
    assert_eq!(out.trim(), "replicationcontroller/hello created");
    // The same file again, through another peer: kubectl's three-way patch
    // against the text it sent (kept as sent) is empty.
    let out = k.run(1, &["apply", "-f", &v1]);
    assert_eq!(out.trim(), "replicationcontroller/hello unchanged");
    // ...and peer 1 sees both pods run, owned by the RC.
    assert!(
        wait_until(Duration::from_secs(120), || ready_pods(&k, 1).len() == 2),
        "two hello pods never ran: {}",
        k.run(1, &["get", "pods", "-o", "wide"])
    );
    let rc = k.json(2, &["get", "rc", "hello"]);
    assert_eq!(rc["spec"]["replicas"], 2);
    assert_eq!(rc["metadata"]["namespace"], "default");
    assert!(
        rc["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
            .is_string()
    );
    // It is kubectl's text, not Shoal's spec with its defaults.
    let applied: Value = serde_json::from_str(
        rc["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    let pod_spec = &applied["spec"]["template"]["spec"];
    assert_eq!(
        pod_spec["containers"][0]["resources"]["requests"]["cpu"],
        "10m"
    );
    assert!(pod_spec.get("restartPolicy").is_none(), "{applied}");
    for pod in ready_pods(&k, 2) {
        let owner = &pod["metadata"]["ownerReferences"][0];
        assert_eq!(owner["kind"], "ReplicationController");
        assert_eq!(owner["name"], "hello");
        assert_eq!(owner["uid"], rc["metadata"]["uid"]);
        assert_eq!(owner["controller"], true);
    }

    // A service, applied server-side.
    let svc = write(&dir, "hello-svc.yaml", SERVICE);
    let out = k.run(1, &["apply", "--server-side", "-f", &svc]);
    assert_eq!(out.trim(), "service/hello serverside-applied");
    check_cluster_ips(&k);
    check_endpoints(&k, &cluster);

    // get rc,pods,nodes,svc -o wide: Kubernetes' columns.
    let wide = k.run(2, &["get", "rc,pods,nodes,svc", "-o", "wide"]);
    let rows = table(&wide);
    let header = |first: &str| {
        rows.iter()
            .find(|r| r[0] == first && r.len() > 3 && r[1] != "hello")
            .unwrap_or_else(|| panic!("no {first} header in\n{wide}"))
            .clone()
    };
    let rc_header = rows
        .iter()
        .find(|r| r.contains(&"DESIRED".to_owned()))
        .unwrap();
    assert_eq!(
        rc_header,
        &[
            "NAME",
            "DESIRED",
            "CURRENT",
            "READY",
            "AGE",
            "CONTAINERS",
            "IMAGES",
            "SELECTOR"
        ]
    );
    let pod_header = rows
        .iter()
        .find(|r| r.contains(&"RESTARTS".to_owned()))
        .unwrap();
    assert_eq!(
        &pod_header[..7],
        &["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE"]
    );
    let rc_row = rows
        .iter()
        .find(|r| r[0] == "replicationcontroller/hello")
        .unwrap_or_else(|| panic!("no rc row in\n{wide}"));
    assert_eq!(&rc_row[1..4], &["2", "2", "2"], "{wide}");
    assert_eq!(rc_row[6], "shoal-test/hello:1.0");
    assert_eq!(rc_row[7], "app=hello");
    let pod_rows: Vec<_> = rows
        .iter()
        .filter(|r| r[0].starts_with("pod/hello-"))
        .collect();
    assert_eq!(pod_rows.len(), 2, "{wide}");
    for r in &pod_rows {
        assert_eq!(&r[1..3], &["1/1", "Running"], "{wide}");
        assert!(r[5].starts_with(&format!("127.0.{SUBNET}.")), "{wide}");
        assert!(r[6].starts_with("node"), "{wide}");
    }
    let _ = header;
    let nodes: Vec<_> = rows.iter().filter(|r| r[0].starts_with("node/")).collect();
    assert_eq!(nodes.len(), PEERS, "{wide}");
    assert!(nodes.iter().all(|r| r[1] == "Ready"), "{wide}");
    let svc_row = rows
        .iter()
        .find(|r| r[0] == "service/hello")
        .unwrap_or_else(|| panic!("no service row in\n{wide}"));
    assert_eq!(svc_row[1], "ClusterIP");
    assert_eq!(svc_row[4], "8043/TCP");

    // -o yaml parses into the same objects as -o json.
    let yaml = k.run(0, &["get", "rc,svc", "-o", "yaml"]);
    let parsed: Value = serde_saphyr::from_str(&yaml).unwrap();
    let kinds: Vec<&str> = parsed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["ReplicationController", "Service"]);
    let nodes = k.json(1, &["get", "nodes"]);
    assert_eq!(nodes["items"].as_array().unwrap().len(), PEERS);

    // get pods -w at peer 2 sees the scale made at peer 0.
    let watch_out = dir.join("watch.out");
    let mut watch: Child = k
        .command(2, &["get", "pods", "-w", "-l", "app=hello"])
        .stdout(std::fs::File::create(&watch_out).unwrap())
        .stderr(std::fs::File::create(dir.join("watch.err")).unwrap())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let out = k.run(0, &["scale", "rc", "hello", "--replicas=5"]);
    assert_eq!(out.trim(), "replicationcontroller/hello scaled");
    let seen = wait_until(Duration::from_secs(120), || {
        let text = std::fs::read_to_string(&watch_out).unwrap_or_default();
        table(&text)
            .iter()
            .any(|r| r[0] == "hello-4" && r[2] == "Running")
    });
    let _ = watch.kill();
    let _ = watch.wait();
    let watched = std::fs::read_to_string(&watch_out).unwrap_or_default();
    assert!(seen, "the watch never showed hello-4 running:\n{watched}");
    assert_eq!(table(&watched)[0][..3], ["NAME", "READY", "STATUS"]);
    let stderr = std::fs::read_to_string(dir.join("watch.err")).unwrap_or_default();
    assert!(!stderr.to_lowercase().contains("warning"), "{stderr}");
    assert_eq!(k.json(1, &["get", "rc", "hello"])["spec"]["replicas"], 5);

    // apply -f again: the image change rolls out, the count is a scale.
    let v11 = write(
        &dir,
        "hello-1.1.yaml",
        &rc_manifest(3, "shoal-test/hello:1.1"),
    );
    let out = k.run(1, &["apply", "-f", &v11]);
    assert_eq!(out.trim(), "replicationcontroller/hello configured");
    // Done means 3 ready pods of 1.1 and no other pod left: the old ones
    // drain for a while after their successors are ready (surge, drain).
    let rolled = wait_until(Duration::from_secs(180), || {
        let pods = ready_pods(&k, 2);
        let all = k.json(2, &["get", "pods", "-l", "app=hello"]);
        pods.len() == 3
            && all["items"].as_array().is_some_and(|a| a.len() == 3)
            && pods
                .iter()
                .all(|p| p["spec"]["containers"][0]["image"] == "shoal-test/hello:1.1")
    });
    assert!(rolled, "{}", k.run(2, &["get", "pods", "-o", "wide"]));
    let rc = k.json(0, &["get", "rc", "hello"]);
    assert_eq!(rc["spec"]["replicas"], 3);
    assert_eq!(
        rc["spec"]["template"]["spec"]["containers"][0]["image"],
        "shoal-test/hello:1.1"
    );
    // Each pod's age is its own: started by the rollout, after its RC.
    check_pod_starts(&k, &rc);
    // Applying the same file again changes nothing, and kubectl says so.
    let uid = rc["metadata"]["uid"].clone();
    let out = k.run(2, &["apply", "-f", &v11]);
    assert!(out.starts_with("replicationcontroller/hello "), "{out}");
    assert_eq!(out.trim(), "replicationcontroller/hello unchanged");
    let again = k.json(0, &["get", "rc", "hello"]);
    assert_eq!(again["spec"], rc["spec"]);
    assert_eq!(again["metadata"]["uid"], uid);

    // describe rc counts the pods it owns (once the rollout's last old pod
    // has stopped: the wait above sees the new ones ready before).
    let mut described = String::new();
    wait_until(Duration::from_secs(60), || {
        described = k.run(0, &["describe", "rc", "hello"]);
        described.contains("Replicas:     3 current")
    });
    assert!(
        described.contains("Replicas:     3 current / 3 desired"),
        "{described}"
    );
    assert!(
        described.contains("Pods Status:  3 Running / 0 Waiting / 0 Succeeded / 0 Failed"),
        "{described}"
    );
    assert!(described.contains("shoal-test/hello:1.1"), "{described}");
    // ... and lists its events, gathered from every peer: the scale kubectl
    // asked of peer 0 above (describe selects them by involvedObject.uid).
    let events = events_section(&described);
    assert!(
        events.iter().any(|r| r.len() > 2
            && r[..2] == ["Normal", "Scaled"]
            && r.join(" ").ends_with("Scaled from 2 to 5 replicas")),
        "{described}"
    );
    check_events(&k, &uid);

    // describe node lists the pods placed there (selected by spec.nodeName).
    let pod = k.json(1, &["get", "pod", "hello-0"]);
    let node = pod["spec"]["nodeName"].as_str().unwrap().to_owned();
    let described = k.run(2, &["describe", "node", &node]);
    assert!(described.contains("Non-terminated Pods:"), "{described}");
    assert!(described.contains("hello-0"), "{described}");
    // ... and its events: the others saw it come up.
    let events = events_section(&described);
    assert!(
        events.iter().any(|r| r.len() > 2
            && r[..2] == ["Normal", "NodeUp"]
            && r.join(" ").ends_with(&format!("Node {node} is up"))),
        "{described}"
    );

    // logs, from whichever peer: the pod's own output.
    let logs = k.run(1, &["logs", "hello-0"]);
    assert_eq!(logs, "first line\nsecond line\n");
    let tail = k.run(2, &["logs", "hello-1", "--tail=1", "--timestamps"]);
    let (stamp, line) = tail.trim_end().split_once(' ').unwrap();
    assert_eq!(line, "second line", "{tail}");
    assert!(stamp.contains('T') && stamp.ends_with('Z'), "{tail}");
    let mut follow = k
        .command(0, &["logs", "-f", "hello-2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut first = String::new();
    {
        use std::io::BufRead;
        let stdout = follow.stdout.take().unwrap();
        std::io::BufReader::new(stdout)
            .read_line(&mut first)
            .unwrap();
    }
    assert_eq!(first, "first line\n");
    assert!(follow.try_wait().unwrap().is_none(), "logs -f ended early");
    let _ = follow.kill();
    let _ = follow.wait();

    // edit, scripted: the editor changes replicas to 2.
    let editor = write(
        &dir,
        "editor.sh",
        "#!/bin/sh\nsed -i 's/^  replicas: 3$/  replicas: 2/' \"$1\"\n",
    );
    ok(&Command::new("chmod")
        .args(["+x", &editor])
        .output()
        .unwrap());
    let out = k
        .command(1, &["edit", "rc", "hello"])
        .env("KUBE_EDITOR", &editor)
        .output()
        .unwrap();
    assert_quiet(&["edit"], &out);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "replicationcontroller/hello edited",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(k.json(2, &["get", "rc", "hello"])["spec"]["replicas"], 2);

    // kubectl's default --validate=strict: an unknown field is refused.
    let bogus = write(
        &dir,
        "bogus.yaml",
        &rc_manifest(2, "shoal-test/hello:1.1")
            .replace("  replicas: 2\n", "  replicas: 2\n  bogus: 1\n"),
    );
    let out = k.output(0, &["apply", "-f", &bogus]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("strict decoding error: unknown field \"spec.bogus\""),
        "{stderr}"
    );
    assert_eq!(k.json(2, &["get", "rc", "hello"])["spec"]["replicas"], 2);

    // Another namespace is a clear error.
    let out = k.output(0, &["get", "pods", "-n", "elsewhere"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("one namespace, \"default\""), "{stderr}");

    // get events -w: a new scale shows up on a watch at another peer.
    watch_sees_a_scale(&k);

    // A field removed from the file is removed from the object.
    apply_removes_what_the_file_drops(&k, &dir);

    // delete returns once the RC is gone, everywhere it is asked.
    let out = k.run(2, &["delete", "rc", "hello"]);
    assert_eq!(out.trim(), "replicationcontroller \"hello\" deleted");
    let out = k.output(0, &["get", "rc", "hello"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("replicationcontrollers \"hello\" not found"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = k.run(1, &["delete", "-f", &svc]);
    assert_eq!(out.trim(), "service \"hello\" deleted");
    assert!(
        wait_until(Duration::from_secs(60), || {
            k.json(1, &["get", "pods"])["items"]
                .as_array()
                .unwrap()
                .is_empty()
        }),
        "the pods of a deleted RC never went away"
    );
}

/// The rows of `describe`'s Events section, below its header and dashes.
fn events_section(described: &str) -> Vec<Vec<String>> {
    let after = described
        .split_once("\nEvents:")
        .unwrap_or_else(|| panic!("no Events section: {described}"))
        .1;
    table(after)
        .into_iter()
        .filter(|r| !r.is_empty() && r[0] != "Type" && !r[0].starts_with("--"))
        .collect()
}

/// `get events` as kubectl prints it and as JSON: the RC's scale and its
/// pods' starts, about the objects kubectl knows (same uid), selectable
/// by field.
fn check_events(k: &Kubectl, rc_uid: &Value) {
    let rows = table(&k.run(1, &["get", "events"]));
    assert_eq!(
        rows[0],
        ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"],
        "{rows:?}"
    );
    let has = |reason: &str, object: &str| {
        rows.iter().any(|r| {
            r.windows(2)
                .any(|w| w[0] == reason && w[1].starts_with(object))
        })
    };
    assert!(has("Scaled", "replicationcontroller/hello"), "{rows:?}");
    assert!(has("Started", "pod/hello-"), "{rows:?}");

    let nodes = k.json(0, &["get", "nodes"]);
    let node_names: Vec<&str> = nodes["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["metadata"]["name"].as_str().unwrap())
        .collect();
    let list = k.json(2, &["get", "events"]);
    let items = list["items"].as_array().unwrap();
    let names: std::collections::BTreeSet<&str> = items
        .iter()
        .map(|e| e["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), items.len(), "event names are not unique");
    let scaled = items
        .iter()
        .find(|e| e["reason"] == "Scaled" && e["involvedObject"]["name"] == "hello")
        .unwrap_or_else(|| panic!("no Scaled event: {list}"));
    assert_eq!(scaled["kind"], "Event");
    assert_eq!(scaled["type"], "Normal");
    assert_eq!(scaled["involvedObject"]["kind"], "ReplicationController");
    assert_eq!(scaled["involvedObject"]["namespace"], "default");
    assert_eq!(&scaled["involvedObject"]["uid"], rc_uid, "{scaled}");
    assert!(scaled["count"].as_i64().unwrap() >= 1, "{scaled}");
    for stamp in ["firstTimestamp", "lastTimestamp"] {
        assert!(scaled[stamp].as_str().unwrap().ends_with('Z'), "{scaled}");
    }
    let host = scaled["source"]["host"].as_str().unwrap();
    assert!(node_names.contains(&host), "{host} not in {node_names:?}");

    // The same event under the same name from another peer, and by name.
    let again = k.json(0, &["get", "events"]);
    let same = again["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["metadata"]["name"] == scaled["metadata"]["name"])
        .unwrap_or_else(|| panic!("{} is gone at peer 0: {again}", scaled["metadata"]["name"]));
    assert_eq!(same["reason"], "Scaled");
    let name = scaled["metadata"]["name"].as_str().unwrap();
    assert_eq!(k.json(1, &["get", "event", name])["reason"], "Scaled");

    // describe's selectors: by involved object; and by reason.
    let started = k.json(
        0,
        &[
            "get",
            "events",
            "--field-selector",
            "involvedObject.kind=Pod,reason=Started",
        ],
    );
    let started = started["items"].as_array().unwrap();
    let pods = k.json(0, &["get", "pods"]);
    let pod_uids: std::collections::BTreeMap<&str, &Value> = pods["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["metadata"]["name"].as_str().unwrap(),
                &p["metadata"]["uid"],
            )
        })
        .collect();
    // Pods scaled away since have no uid; those still there have theirs.
    let mut of_live_pods = 0;
    for e in started {
        assert_eq!(e["reason"], "Started", "{e}");
        assert_eq!(e["involvedObject"]["kind"], "Pod", "{e}");
        let name = e["involvedObject"]["name"].as_str().unwrap();
        if let Some(uid) = pod_uids.get(name) {
            assert_eq!(&e["involvedObject"]["uid"], *uid, "{e}");
            of_live_pods += 1;
        }
    }
    assert!(
        of_live_pods >= 1,
        "no Started event of a live pod: {started:?}"
    );
}

/// `kubectl get events -w` at peer 2 prints the Scaled event of a scale
/// asked of peer 0.
fn watch_sees_a_scale(k: &Kubectl) {
    let mut watch = k
        .command(
            2,
            &[
                "get",
                "events",
                "-w",
                "--field-selector",
                "reason=Scaled",
                "-o",
                "jsonpath={.message}{\"\\n\"}",
            ],
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = watch.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    // The watch lists what is there first: wait for it, then scale.
    let first = rx.recv_timeout(Duration::from_secs(60));
    let scaled = k.run(0, &["scale", "rc", "hello", "--replicas=1"]);
    assert_eq!(scaled.trim(), "replicationcontroller/hello scaled");
    let mut seen = vec![format!("{first:?}")];
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut found = false;
    while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(line) => {
                found = line == "Scaled from 2 to 1 replicas";
                seen.push(line);
                if found {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    let _ = watch.kill();
    let _ = watch.wait();
    let _ = reader.join();
    assert!(found, "the watch printed {seen:?}");
}

/// An RC of no pods (no rollout to wait for): a label and the grace period
/// dropped from its file are gone after the next `apply -f`, because
/// kubectl's patch deletes what its last applied text had and the new one
/// has not.
fn apply_removes_what_the_file_drops(k: &Kubectl, dir: &Path) {
    let manifest = |extra_label: &str, grace: &str| {
        format!(
            "apiVersion: v1
kind: ReplicationController
metadata:
  name: other
spec:
  replicas: 0
  selector:
    app: other
  template:
    metadata:
      labels:
        app: other
{extra_label}    spec:
{grace}      containers:
      - name: web
        image: shoal-test/hello:1.0
"
        )
    };
    let full = write(
        dir,
        "other-full.yaml",
        &manifest(
            "        tier: web\n",
            "      terminationGracePeriodSeconds: 7\n",
        ),
    );
    let out = k.run(0, &["apply", "-f", &full]);
    assert_eq!(out.trim(), "replicationcontroller/other created");
    let rc = k.json(1, &["get", "rc", "other"]);
    assert_eq!(rc["spec"]["template"]["metadata"]["labels"]["tier"], "web");
    assert_eq!(
        rc["spec"]["template"]["spec"]["terminationGracePeriodSeconds"],
        7
    );
    let out = k.run(2, &["apply", "-f", &full]);
    assert_eq!(out.trim(), "replicationcontroller/other unchanged");

    let trimmed = write(dir, "other-trimmed.yaml", &manifest("", ""));
    let out = k.run(1, &["apply", "-f", &trimmed]);
    assert_eq!(out.trim(), "replicationcontroller/other configured");
    let rc = k.json(2, &["get", "rc", "other"]);
    let labels = &rc["spec"]["template"]["metadata"]["labels"];
    assert_eq!(labels, &serde_json::json!({ "app": "other" }), "{rc}");
    assert_eq!(
        rc["metadata"]["labels"],
        serde_json::json!({ "app": "other" })
    );
    // Back to Kubernetes' default.
    assert_eq!(
        rc["spec"]["template"]["spec"]["terminationGracePeriodSeconds"], 30,
        "{rc}"
    );
    let out = k.run(0, &["apply", "-f", &trimmed]);
    assert_eq!(out.trim(), "replicationcontroller/other unchanged");
    let out = k.run(0, &["delete", "rc", "other"]);
    assert_eq!(out.trim(), "replicationcontroller \"other\" deleted");
}

/// Every peer's `spec.clusterIP` of `hello` is where that peer's DNS
/// answers for services, and gives that address first for `hello`; or
/// `None` with the reason in an annotation.
fn check_cluster_ips(k: &Kubectl) {
    for i in 0..PEERS {
        let svc = k.json(i, &["get", "svc", "hello"]);
        let ip = svc["spec"]["clusterIP"].as_str().unwrap().to_owned();
        if ip == "None" {
            let why = &svc["metadata"]["annotations"]["shoal.io/no-cluster-ip"];
            assert!(why.as_str().is_some_and(|w| !w.is_empty()), "{svc}");
            continue;
        }
        ip.parse::<std::net::IpAddr>()
            .unwrap_or_else(|e| panic!("clusterIP {ip:?} of peer {i}: {e}"));
        assert_eq!(svc["spec"]["clusterIPs"], serde_json::json!([ip]), "{svc}");
        // The DNS server follows the peer's state a moment after its API
        // does (the service feed, 50-250 ms): asked until it answers.
        let mut answer = String::new();
        wait_until(Duration::from_secs(10), || {
            let dig = Command::new("dig")
                .args([&format!("@{ip}"), "hello.svc.shoal", "A", "+short"])
                .args(["+time=5", "+tries=2"])
                .output()
                .expect("dig runs (Debian package bind9-dnsutils)");
            answer = String::from_utf8_lossy(&dig.stdout).into_owned();
            answer.lines().next() == Some(ip.as_str())
        });
        assert_eq!(
            answer.lines().next(),
            Some(ip.as_str()),
            "peer {i}'s DNS at its clusterIP {ip} answered:\n{answer}"
        );
        let described = k.run(i, &["describe", "svc", "hello"]);
        let line = described
            .lines()
            .find(|l| l.starts_with("IP:"))
            .unwrap_or_else(|| panic!("{described}"));
        assert_eq!(
            line.split_whitespace().nth(1),
            Some(ip.as_str()),
            "{described}"
        );
    }
}

/// kubectl's Endpoints of `hello` are the ready endpoints `shoal describe
/// svc` lists (pod and address), at any peer; `get endpoints` and
/// `describe svc` print them.
fn check_endpoints(k: &Kubectl, cluster: &Cluster) {
    type Set = std::collections::BTreeSet<(String, String)>;
    let of_kubectl = || -> Set {
        let ep = k.json(2, &["get", "endpoints", "hello"]);
        let mut set = Set::new();
        for subset in ep["subsets"].as_array().into_iter().flatten() {
            let port = subset["ports"][0]["port"].as_i64().unwrap();
            for a in subset["addresses"].as_array().into_iter().flatten() {
                set.insert((
                    a["targetRef"]["name"].as_str().unwrap().to_owned(),
                    format!("{}:{port}", a["ip"].as_str().unwrap()),
                ));
            }
        }
        set
    };
    let of_shoal = || -> Set {
        let text = ok(&cluster.cli(0, &["describe", "svc", "hello"]));
        let rows = table(text.split_once("POD").map_or("", |(_, t)| t));
        rows.iter()
            .skip(1)
            .filter(|r| r.len() == 4 && r[3] == "true")
            .map(|r| (r[0].clone(), r[2].clone()))
            .collect()
    };
    let mut seen = (Set::new(), Set::new());
    let same = wait_until(Duration::from_secs(60), || {
        seen = (of_kubectl(), of_shoal());
        seen.0.len() == 2 && seen.0 == seen.1
    });
    assert!(
        same,
        "kubectl's endpoints {:?}, shoal's {:?}",
        seen.0, seen.1
    );
    let addresses: Vec<&String> = seen.0.iter().map(|(_, a)| a).collect();
    let rows = table(&k.run(1, &["get", "endpoints", "hello"]));
    assert_eq!(rows[0], ["NAME", "ENDPOINTS", "AGE"], "{rows:?}");
    assert_eq!(rows[1][0], "hello", "{rows:?}");
    for a in &addresses {
        assert!(rows[1][1].contains(a.as_str()), "{rows:?} lacks {a}");
    }
    let described = k.run(0, &["describe", "svc", "hello"]);
    let line = described
        .lines()
        .find(|l| l.starts_with("Endpoints:"))
        .unwrap_or_else(|| panic!("{described}"));
    for a in &addresses {
        assert!(line.contains(a.as_str()), "{described}");
    }
}

/// Each pod of `rc` was created (and started) by its node after the RC
/// was created: the pod's own start, not its RC's creation.
fn check_pod_starts(k: &Kubectl, rc: &Value) {
    let rc_created = rc["metadata"]["creationTimestamp"].as_str().unwrap();
    let pods = k.json(1, &["get", "pods", "-l", "app=hello"]);
    let pods = pods["items"].as_array().unwrap();
    assert!(!pods.is_empty());
    for pod in pods {
        let created = pod["metadata"]["creationTimestamp"].as_str().unwrap();
        // RFC 3339 in UTC with whole seconds: they order as text.
        assert!(
            created > rc_created,
            "pod {created}, rc {rc_created}: {pod}"
        );
        assert_eq!(pod["status"]["startTime"], created, "{pod}");
    }
}
