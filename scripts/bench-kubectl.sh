#!/usr/bin/env bash
# kubectl against a Shoal cluster, timed against Shoal's own CLI in the same
# run: `kubectl get pods` vs `shoal get pods` with PODS pods (default 1,000:
# real containers of the test image, spread by placement over PEERS peers,
# default 3, that share the machine's engine), the fixed cost of a kubectl
# call (`kubectl get svc` with no services), and `kubectl apply -f` of 50 RCs
# (0 replicas each: the write path, not container starts). Medians of ROUNDS
# runs (default 7), warm discovery cache. Prints one Markdown section
# ("### kubectl") to stdout; progress goes to stderr. Figures are printed,
# not asserted. PROFILE=debug skips the release build.
#
#   scripts/bench-kubectl.sh > /tmp/kubectl.md
set -euo pipefail
cd "$(dirname "$0")/.."
PODS=${PODS:-1000}
PEERS=${PEERS:-3}
ROUNDS=${ROUNDS:-7}
PROFILE=${PROFILE:-release}
# Peer i listens on 127.0.43.(250+i), its service address and DNS there
# too (port 5350): no contention for the engine's bridge address.
BASE=250
TARGET=${CARGO_TARGET_DIR:-target}
BIN=$TARGET/$PROFILE/shoal
command -v kubectl >/dev/null || { echo "bench-kubectl: needs kubectl (apt-get install kubernetes-client)" >&2; exit 1; }
if [ "$PROFILE" = release ]; then cargo build --release -q --bin shoal >&2; fi
bash scripts/test-images.sh >&2

TMP=$(mktemp -d)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  local cluster
  cluster=$(sed -n 's/.*"token": *"shoal1\.\([0-9a-f]*\)\..*/\1/p' "$TMP/peer0/node.json" 2>/dev/null || true)
  if [ -n "$cluster" ]; then
    docker ps -aq --filter "label=io.shoal.cluster=$cluster" | xargs -r docker rm -f >/dev/null
  fi
  rm -rf "$TMP"
}
trap cleanup EXIT

ip() { echo "127.0.43.$((BASE + $1))"; }
# The first peer creates the cluster; the others join it with its token.
for i in $(seq 0 $((PEERS - 1))); do
  join=()
  if [ "$i" -gt 0 ]; then
    token=$(sed -n 's/.*"token": *"\([^"]*\)".*/\1/p' "$TMP/peer0/node.json")
    join=(--join "$(ip 0):7946" --join-token "$token")
  fi
  SHOAL_LOG=warn "$BIN" up --listen "$(ip "$i"):7946" --api "$(ip "$i"):7070" \
    --data-dir "$TMP/peer$i" --name "node$i" --memory 16Gi --cpu 32 "${join[@]}" \
    --service-address "$(ip "$i")" --dns-port 5350 \
    >"$TMP/peer$i.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 150); do
    SHOAL_SERVER=http://$(ip "$i"):7070 "$BIN" get nodes >/dev/null 2>&1 && [ -s "$TMP/peer$i/node.json" ] && break
    sleep 0.2
  done
done
export SHOAL_SERVER=http://$(ip 0):7070
for _ in $(seq 150); do
  [ "$("$BIN" get nodes -o json | python3 -c 'import json,sys; print(sum(n["state"] == "Alive" for n in json.load(sys.stdin)))')" -ge "$PEERS" ] && break
  sleep 0.2
done
"$BIN" kubeconfig >"$TMP/kubeconfig"
export KUBECONFIG=$TMP/kubeconfig HOME=$TMP

rc() { # name replicas
  cat <<YAML
apiVersion: v1
kind: ReplicationController
metadata:
  name: $1
spec:
  replicas: $2
  selector:
    app: $1
  template:
    metadata:
      labels:
        app: $1
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: web
        image: shoal-test/hello:1.0
        resources:
          requests:
            cpu: 10m
            memory: 8Mi
YAML
}

echo "bench-kubectl: starting $PODS pods on $PEERS peers" >&2
rc many "$PODS" >"$TMP/many.yaml"
"$BIN" apply -f "$TMP/many.yaml" >&2
started=$(date +%s)
running=0
for _ in $(seq 1800); do
  running=$("$BIN" get pods -o json | python3 -c 'import json,sys; print(sum(p["phase"] == "Running" for p in json.load(sys.stdin)))')
  [ "$running" -ge "$PODS" ] && break
  sleep 2
done
[ "$running" -ge "$PODS" ] || { echo "bench-kubectl: only $running of $PODS pods running" >&2; exit 1; }
echo "bench-kubectl: $running pods running after $(($(date +%s) - started)) s" >&2
spread=$("$BIN" get pods -o json | python3 -c '
import collections, json, sys
print(", ".join(f"{n}: {c}" for n, c in sorted(collections.Counter(p["node"] for p in json.load(sys.stdin)).items())))')
for i in $(seq 50); do rc "batch-$i" 0; echo "---"; done >"$TMP/batch.yaml"

kubectl get pods >/dev/null # fills the discovery cache
python3 - "$BIN" "$ROUNDS" "$PODS" "$TMP/batch.yaml" "$PEERS" "$spread" <<'PY'
import statistics, subprocess, sys, time
shoal, rounds, pods, batch, peers, spread = sys.argv[1:7]
rounds = int(rounds)
def median_ms(cmd):
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, check=True)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)
def once_ms(cmd):
    start = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return (time.perf_counter() - start) * 1000, out
kubectl_pods = median_ms(["kubectl", "get", "pods"])
shoal_pods = median_ms([shoal, "get", "pods"])
kubectl_empty = median_ms(["kubectl", "get", "svc"])
rows = [
    (f"`kubectl get pods` ({pods} pods)", kubectl_pods),
    (f"`shoal get pods` ({pods} pods), same run", shoal_pods),
    (f"`kubectl get pods -o json` ({pods} pods)", median_ms(["kubectl", "get", "pods", "-o", "json"])),
    ("`kubectl get svc` (empty: a kubectl call's fixed cost)", kubectl_empty),
    ("`shoal get svc` (empty)", median_ms([shoal, "get", "svc"])),
]
created, out = once_ms(["kubectl", "apply", "-f", batch])
assert out.count(" created") == 50, out
rows.append(("`kubectl apply -f` of 50 RCs (created, one run)", created))
again, out = once_ms(["kubectl", "apply", "-f", batch])
rows.append(("`kubectl apply -f` of the same 50 RCs again (one run)", again))
unchanged = out.count(" unchanged")
print("### kubectl\n")
print(f"`scripts/bench-kubectl.sh`: {peers} peers sharing the machine's engine, "
      f"{pods} running pods (containers of the test image; per node: {spread}), "
      f"medians of {rounds} runs with a warm discovery cache.\n")
print("| command | wall time (ms) |\n|---|---:|")
for name, ms in rows:
    print(f"| {name} | {ms:.0f} |")
print(f"\n`kubectl get pods` took {kubectl_pods / shoal_pods:.1f}x `shoal get pods`; "
      f"{kubectl_empty:.0f} ms of its {kubectl_pods:.0f} ms is what any kubectl call costs "
      f"(an empty list). The second apply of the same 50 RCs reported {unchanged} of 50 unchanged.")
PY
