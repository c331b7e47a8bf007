#!/usr/bin/env bash
# kubectl against a Shoal peer, timed against Shoal's own CLI in the same
# run: `kubectl get pods` vs `shoal get pods` with PODS pods (default 200,
# the test image, on one peer sharing the machine's engine), the fixed cost
# of a kubectl call (`kubectl get svc` with no services), and `kubectl
# apply -f` of 50 RCs (0 replicas each: the write path, not container
# starts). Medians of ROUNDS runs (default 7), warm discovery cache. Prints
# one Markdown section ("### kubectl") to stdout; progress goes to stderr.
# Figures are printed, not asserted. PROFILE=debug skips the release build.
#
#   scripts/bench-kubectl.sh > /tmp/kubectl.md
set -euo pipefail
cd "$(dirname "$0")/.."
PODS=${PODS:-200}
ROUNDS=${ROUNDS:-7}
PROFILE=${PROFILE:-release}
IP=127.0.43.250
TARGET=${CARGO_TARGET_DIR:-target}
BIN=$TARGET/$PROFILE/shoal
command -v kubectl >/dev/null || { echo "bench-kubectl: needs kubectl (apt-get install kubernetes-client)" >&2; exit 1; }
if [ "$PROFILE" = release ]; then cargo build --release -q --bin shoal >&2; fi
bash scripts/test-images.sh >&2

TMP=$(mktemp -d)
PEER=""
cleanup() {
  if [ -n "$PEER" ]; then
    kill "$PEER" 2>/dev/null || true
    wait "$PEER" 2>/dev/null || true
  fi
  local cluster
  cluster=$(sed -n 's/.*"token": *"shoal1\.\([0-9a-f]*\)\..*/\1/p' "$TMP/data/node.json" 2>/dev/null || true)
  if [ -n "$cluster" ]; then
    docker ps -aq --filter "label=io.shoal.cluster=$cluster" | xargs -r docker rm -f >/dev/null
  fi
  rm -rf "$TMP"
}
trap cleanup EXIT
export SHOAL_SERVER=http://$IP:7070
SHOAL_LOG=warn "$BIN" up --listen $IP:7946 --api $IP:7070 --data-dir "$TMP/data" \
  --memory 16Gi --cpu 64 >"$TMP/peer.log" 2>&1 &
PEER=$!
for _ in $(seq 100); do "$BIN" get nodes >/dev/null 2>&1 && break; sleep 0.2; done
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

echo "bench-kubectl: starting $PODS pods" >&2
rc many "$PODS" >"$TMP/many.yaml"
"$BIN" apply -f "$TMP/many.yaml" >&2
for _ in $(seq 600); do
  n=$("$BIN" get pods -o json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
  [ "$n" -ge "$PODS" ] && break
  sleep 1
done
for i in $(seq 50); do rc "batch-$i" 0; echo "---"; done >"$TMP/batch.yaml"

kubectl get pods >/dev/null # fills the discovery cache
python3 - "$BIN" "$ROUNDS" "$PODS" "$TMP/batch.yaml" <<'PY'
import statistics, subprocess, sys, time
shoal, rounds, pods, batch = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
def median_ms(cmd):
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, check=True)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)
rows = [
    (f"`kubectl get pods` ({pods} pods)", median_ms(["kubectl", "get", "pods"])),
    (f"`shoal get pods` ({pods} pods), same run", median_ms([shoal, "get", "pods"])),
    (f"`kubectl get pods -o json` ({pods} pods)", median_ms(["kubectl", "get", "pods", "-o", "json"])),
    ("`kubectl get svc` (empty: a kubectl call's fixed cost)", median_ms(["kubectl", "get", "svc"])),
    ("`shoal get svc` (empty)", median_ms([shoal, "get", "svc"])),
]
start = time.perf_counter()
subprocess.run(["kubectl", "apply", "-f", batch], stdout=subprocess.DEVNULL, check=True)
rows.append(("`kubectl apply -f` of 50 RCs (created, one run)", (time.perf_counter() - start) * 1000))
start = time.perf_counter()
subprocess.run(["kubectl", "apply", "-f", batch], stdout=subprocess.DEVNULL, check=True)
rows.append(("`kubectl apply -f` of the same 50 RCs again (one run)", (time.perf_counter() - start) * 1000))
print("### kubectl\n")
print("`scripts/bench-kubectl.sh`: one peer, the machine's engine, medians of "
      f"{rounds} runs with a warm discovery cache.\n")
print("| command | wall time (ms) |\n|---|---:|")
for name, ms in rows:
    print(f"| {name} | {ms:.0f} |")
PY
