#!/usr/bin/env bash
# Observing a cluster of PODS pods (default 1,000): the dashboard in
# headless Chromium (first paint, time until the pods table is complete),
# a `/metrics` scrape, `shoal logs -l` over LOG_PODS pods (default 30)
# against `docker logs` of one of them in the same run, and the idle CPU and
# RSS of the peers (metrics are always on) with 5 and with PODS pods.
#
# PEERS real peers (default 3, release build) on 127.0.61.11.., sharing the
# machine's Docker engine by default, as scripts/bench-kubectl.sh runs its
# 1,000 pods (each peer's service address and DNS on its own loopback
# address, port 5350, so they do not contend for the bridge address).
# ENGINES=node gives each peer its own engine (scripts/node-engines.sh: its
# own dockerd and bridge, at most 250 pods a node): on 2 December, 5 debug
# peers with 5 engines starved each other on this 2-core machine while
# 1,000 containers started, and thrashed. The pods are real containers of
# the test image (busybox), labelled with the cluster's id; everything this
# run started is removed at the end (by that label, or with the engines).
#
# Prints one Markdown section ("### Dashboard, metrics and logs") to
# stdout; progress goes to stderr. Figures are printed, not asserted.
# PROFILE=debug skips the release build.
#
#   scripts/bench-observe.sh > /tmp/observe.md
set -euo pipefail
cd "$(dirname "$0")/.."
PODS=${PODS:-1000}
PEERS=${PEERS:-3}
ENGINES=${ENGINES:-shared}
LOG_PODS=${LOG_PODS:-30}
LOG_LINES=${LOG_LINES:-20000}
LOADS=${LOADS:-5}
SCRAPES=${SCRAPES:-20}
PROFILE=${PROFILE:-release}
TARGET=${CARGO_TARGET_DIR:-target}
BIN=$TARGET/$PROFILE/shoal
SUBNET=127.0.61
# Debian's python3, which python3-selenium is installed for.
PY=/usr/bin/python3
export SHOAL_ENGINES_DIR=${SHOAL_ENGINES_DIR:-/tmp/shoal-bench-observe-engines}
case "$ENGINES" in
  shared | node) ;;
  *) echo "bench-observe: ENGINES must be shared or node, not '$ENGINES'" >&2; exit 1 ;;
esac
for tool in chromium chromedriver curl docker; do
  command -v $tool >/dev/null || { echo "bench-observe: needs $tool (chromium, chromium-driver, curl, docker)" >&2; exit 1; }
done
"$PY" -c 'import selenium' 2>/dev/null || { echo "bench-observe: needs python3-selenium" >&2; exit 1; }
if [ "$PROFILE" = release ]; then cargo build --release -q --bin shoal >&2; fi
[ "$ENGINES" = shared ] && bash scripts/test-images.sh >&2

TMP=$(mktemp -d)
PIDS=()
# This run's containers on the shared engine: Shoal labels each with its cluster.
cluster_id() {
  sed -n 's/.*"token": *"shoal1\.\([0-9a-f]*\)\..*/\1/p' "$TMP/peer0/node.json" 2>/dev/null || true
}
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ "$ENGINES" = node ]; then
    bash scripts/node-engines.sh down >&2 || true
  else
    local cluster
    cluster=$(cluster_id)
    if [ -n "$cluster" ]; then
      # In parallel: one `docker rm` of 1,000 containers takes minutes.
      docker ps -aq --filter "label=io.shoal.cluster=$cluster" | xargs -r -n 20 -P 4 docker rm -f >/dev/null
    fi
  fi
  rm -rf "$TMP"
}
trap cleanup EXIT
LOAD_START=$(cut -d" " -f1-3 /proc/loadavg)
if [ "$ENGINES" = node ]; then
  echo "bench-observe: starting $PEERS engines" >&2
  bash scripts/node-engines.sh up "$PEERS" >&2
fi
# Peer i's engine: its own, or the machine's (DOCKER_HOST as given).
engine_env() {
  if [ "$ENGINES" = node ]; then
    echo "DOCKER_HOST=$(bash scripts/node-engines.sh host "$1")"
  else
    echo "DOCKER_HOST=${DOCKER_HOST:-unix:///var/run/docker.sock}"
  fi
}
# A node engine's bridge is a /24: 25 CPUs at 100m a pod, at most 250 pods
# on a node. The machine's engine has no such bound.
if [ "$ENGINES" = node ]; then CPU=25 REQUEST=100m; else CPU=32 REQUEST=10m; fi

export SHOAL_SERVER=http://$SUBNET.11:7070
TOKEN=""
for i in $(seq 0 $((PEERS - 1))); do
  ip=$SUBNET.$((11 + i))
  join=()
  [ "$i" -gt 0 ] && join=(--join "$SUBNET.11:7946" --join-token "$TOKEN")
  service=()
  [ "$ENGINES" = shared ] && service=(--service-address "$ip" --dns-port 5350)
  env "$(engine_env "$i")" SHOAL_LOG=warn "$BIN" up \
    --listen "$ip:7946" --api "$ip:7070" --data-dir "$TMP/peer$i" --name "node$i" \
    --cpu "$CPU" --memory 64Gi "${service[@]}" "${join[@]}" >"$TMP/peer$i.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 150); do
    SHOAL_SERVER=http://$ip:7070 "$BIN" get nodes >/dev/null 2>&1 && [ -s "$TMP/peer$i/node.json" ] && break
    sleep 0.2
  done
  if [ "$i" = 0 ]; then
    TOKEN=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["identity"]["token"])' "$TMP/peer0/node.json")
  fi
done

count() { # jq-free: how many pods of RC $1 are Running, as peer 0 sees it
  "$BIN" get pods -o json 2>/dev/null | "$PY" -c '
import json, sys
print(sum(1 for p in json.load(sys.stdin) if p["rc"] == sys.argv[1] and p["phase"] == "Running"))' "$1" || echo 0
}
wait_running() { # rc n timeout-seconds
  local start=$SECONDS n=0
  while [ $((SECONDS - start)) -lt "$3" ]; do
    n=$(count "$1")
    [ "$n" -ge "$2" ] && return 0
    [ $(( (SECONDS - start) % 30 )) -lt 2 ] && echo "bench-observe: $n of $2 pods of $1 running" >&2
    sleep 2
  done
  echo "bench-observe: only $n of $2 pods of $1 running after $3 s" >&2
  return 1
}
rc() { # name replicas [command]
  local command=""
  [ -n "${3:-}" ] && command="        command: [\"sh\", \"-c\", \"$3\"]"
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
      - name: main
        image: shoal-test/hello:1.0
$command
        resources:
          requests:
            cpu: $REQUEST
            memory: 8Mi
YAML
}

for _ in $(seq 150); do
  alive=$("$BIN" get nodes -o json | "$PY" -c 'import json,sys; print(sum(n["state"] == "Alive" for n in json.load(sys.stdin)))')
  [ "$alive" = "$PEERS" ] && break
  sleep 0.2
done

# Idle CPU and RSS of every peer over 20 s, nothing polling: "mean · max".
idle() {
  "$PY" - "${PIDS[@]}" <<'PY'
import os, sys, time
pids = sys.argv[1:]
tick = os.sysconf("SC_CLK_TCK")
def cpu(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / tick
def rss_mb(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
before = {p: cpu(p) for p in pids}
start = time.monotonic()
time.sleep(20)
wall = time.monotonic() - start
cpus = [100 * (cpu(p) - before[p]) / wall for p in pids]
rss = [rss_mb(p) for p in pids]
print(f"RSS mean {sum(rss)/len(rss):.1f} MB · max {max(rss):.1f} MB; CPU mean {sum(cpus)/len(cpus):.2f} % · max {max(cpus):.2f} %")
PY
}

echo "bench-observe: 5 pods, then idle" >&2
rc few 5 >"$TMP/few.yaml"
"$BIN" apply -f "$TMP/few.yaml" >&2
wait_running few 5 300
sleep 10
IDLE_FEW=$(idle)
echo "bench-observe: $IDLE_FEW" >&2

echo "bench-observe: starting $PODS pods" >&2
rc many "$PODS" >"$TMP/many.yaml"
started=$SECONDS
"$BIN" apply -f "$TMP/many.yaml" >&2
wait_running many "$PODS" 3600
START_ALL=$((SECONDS - started))
sleep 10
IDLE_MANY=$(idle)
echo "bench-observe: $IDLE_MANY" >&2
TOTAL=$("$BIN" get pods -o json | "$PY" -c 'import json,sys; print(len(json.load(sys.stdin)))')
SPREAD=$("$BIN" get pods -o json | "$PY" -c '
import collections, json, sys
print(", ".join(f"{n}: {c}" for n, c in sorted(collections.Counter(p["node"] for p in json.load(sys.stdin)).items())))')
LOAD_MANY=$(cut -d" " -f1-3 /proc/loadavg)

echo "bench-observe: /metrics and /api/v1/pods" >&2
SCRAPE=$("$PY" - "$SUBNET.11" "$SCRAPES" <<'PY'
import statistics, sys, time, urllib.request
host, rounds = sys.argv[1], int(sys.argv[2])
def timed(path):
    times, body = [], b""
    for _ in range(rounds):
        start = time.perf_counter()
        body = urllib.request.urlopen(f"http://{host}:7070{path}").read()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), max(times), body
m50, mmax, metrics = timed("/metrics")
samples = sum(1 for line in metrics.decode().splitlines() if line and not line.startswith("#"))
p50, pmax, pods = timed("/api/v1/pods")
print(f"| `/metrics` scrape at peer 0 ({rounds} scrapes) | p50 {m50:.1f} ms · max {mmax:.1f} ms; {len(metrics)/1024:.0f} KiB, {samples} samples |")
print(f"| baseline, same run: `GET /api/v1/pods` ({rounds} reads) | p50 {p50:.1f} ms · max {pmax:.1f} ms; {len(pods)/1024:.0f} KiB |")
PY
)
echo "$SCRAPE" >&2

echo "bench-observe: the dashboard in Chromium" >&2
PAGE=$("$PY" - "http://$SUBNET.11:7070/ui" "$TOTAL" "$LOADS" <<'PY'
import statistics, sys, time
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
url, total, loads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
options = webdriver.ChromeOptions()
options.binary_location = "/usr/bin/chromium"
for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1280,900"):
    options.add_argument(flag)
options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
driver.set_script_timeout(60)
paint, complete, refresh = [], [], []
try:
    for _ in range(loads):
        driver.get("about:blank")
        driver.get(url)
        # Polled from the page's own clock (performance.now(), ms since navigation).
        deadline = time.monotonic() + 120
        done = None
        while time.monotonic() < deadline:
            now, rows = driver.execute_script(
                "return [performance.now(), document.querySelectorAll('#pods tbody tr[data-name]').length];")
            if rows >= total:
                done = now
                break
            time.sleep(0.02)
        if done is None:
            sys.exit(f"the pods table never reached {total} rows")
        complete.append(done)
        fcp = driver.execute_script(
            "const e = performance.getEntriesByName('first-contentful-paint')[0]; return e ? e.startTime : null;")
        paint.append(fcp)
        # One refresh of the full page, timed inside it.
        refresh.append(driver.execute_async_script(
            "const done = arguments[arguments.length - 1]; const t = performance.now();"
            "refresh().then(() => done(performance.now() - t));"))
    errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
finally:
    driver.quit()
if errors:
    sys.exit(f"JavaScript errors: {errors}")
med = statistics.median
print(f"| dashboard first contentful paint (Chromium, {loads} loads) | p50 {med(paint):.0f} ms · max {max(paint):.0f} ms |")
print(f"| dashboard load → pods table complete ({total} rows) | p50 {med(complete):.0f} ms · max {max(complete):.0f} ms |")
print(f"| one refresh of the whole page (5 API reads + render) | p50 {med(refresh):.0f} ms · max {max(refresh):.0f} ms |")
PY
)
echo "$PAGE" >&2

echo "bench-observe: logs of $LOG_PODS pods" >&2
# A Linux bridge takes at most 1024 ports (BR_MAX_PORTS): on the machine's
# docker0, 1,000 pods plus 5 left the 30 log pods 18 places on 3 December
# (the rest failed "exchange full"). Make room by scaling `many` down.
MANY_FOR_LOGS=$PODS
if [ "$ENGINES" = shared ]; then
  on_bridge=$(docker ps -q --filter network=bridge | wc -l)
  over=$((on_bridge + LOG_PODS + 10 - 1024))
  if [ "$over" -gt 0 ]; then
    MANY_FOR_LOGS=$((PODS - over))
    echo "bench-observe: $on_bridge containers on docker0; many scaled to $MANY_FOR_LOGS for the log pods" >&2
    "$BIN" scale many --replicas "$MANY_FOR_LOGS" >&2
    for _ in $(seq 300); do
      [ "$(docker ps -q --filter network=bridge | wc -l)" -le $((1024 - LOG_PODS - 10)) ] && break
      sleep 1
    done
  fi
fi
rc spew "$LOG_PODS" "trap 'exit 0' TERM; seq 1 $LOG_LINES; sleep 3600 & wait" >"$TMP/spew.yaml"
"$BIN" apply -f "$TMP/spew.yaml" >&2
wait_running spew "$LOG_PODS" 900
# Every pod has printed its last line.
for _ in $(seq 300); do
  last=$("$BIN" logs -l app=spew --tail 1 2>/dev/null | grep -c " $LOG_LINES\$" || true)
  [ "$last" = "$LOG_PODS" ] && break
  sleep 1
done
LOGS=$("$PY" - "$BIN" "$LOG_PODS" "$LOG_LINES" "$PEERS" "$ENGINES" "$SHOAL_ENGINES_DIR" "$(cluster_id)" <<'PY'
import json, os, subprocess, sys, time
shoal, pods, lines, peers = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
engines, engines_dir, cluster = sys.argv[5], sys.argv[6], sys.argv[7]
# One spew container of this cluster, on whichever engine holds it.
if engines == "node":
    hosts = [f"unix://{engines_dir}/engine{i}/run/docker.sock" for i in range(peers)]
else:
    hosts = [os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")]
container = None
for host in hosts:
    ids = subprocess.run(["docker", "-H", host, "ps", "-q", "--filter", "label=io.shoal.rc=spew",
                          "--filter", f"label=io.shoal.cluster={cluster}"],
                         capture_output=True, text=True, check=True).stdout.split()
    if ids:
        container = (host, ids[0])
        break
if container is None:
    sys.exit(f"no running spew container of cluster {cluster} on {hosts}")
start = time.perf_counter()
direct = subprocess.run(["docker", "-H", container[0], "logs", container[1]], capture_output=True, check=True).stdout
direct_s = time.perf_counter() - start
start = time.perf_counter()
merged = subprocess.run([shoal, "logs", "-l", "app=spew"], capture_output=True, check=True).stdout
merged_s = time.perf_counter() - start
got, want, one = merged.count(b"\n"), pods * lines, direct.count(b"\n")
if got != want or one != lines:
    sys.exit(f"logs -l gave {got} lines (want {want}); docker logs {one} (want {lines})")
print(f"| `shoal logs -l app=spew` at peer 0: {pods} pods × {lines} lines, from {peers} nodes | {want / merged_s:,.0f} lines/s ({merged_s:.2f} s) |")
where = "its node's own engine" if engines == "node" else "the machine's engine"
print(f"| baseline, same run: `docker logs` of one of them ({lines} lines, {where}) | {lines / direct_s:,.0f} lines/s ({direct_s:.2f} s) |")
PY
)
echo "$LOGS" >&2

if [ "$ENGINES" = node ]; then
  ENGINE_WORDS="each with its own Docker engine (\`scripts/node-engines.sh\`)"
else
  ENGINE_WORDS="sharing the machine's Docker engine"
fi
LOAD_END=$(cut -d" " -f1-3 /proc/loadavg)

cat <<EOF
### Dashboard, metrics and logs

\`scripts/bench-observe.sh\`: $PEERS peers ($PROFILE build, \`SHOAL_LOG=warn\`) on $SUBNET.11–$((10 + PEERS)), $ENGINE_WORDS, running $TOTAL pods: real containers of the test image (busybox), $PODS of one RC plus 5 of another (per node: $SPREAD); the $PODS started in ${START_ALL} s. The dashboard is read from peer 0 in headless Chromium (selenium); times come from the page's own clock (\`performance.now()\`, polled every 20 ms).

| measure | result |
|---|---|
$PAGE
$SCRAPE
$LOGS
| idle peers, 5 pods in the cluster (20 s, nothing polling; metrics recorder on) | $IDLE_FEW |
| idle peers, $TOTAL pods in the cluster | $IDLE_MANY |

The logs row ran with $MANY_FOR_LOGS pods of \`many\` (docker0 holds at most 1,024 interfaces); every other row with $PODS.

Earlier figure for comparison (Real cluster section): an idle peer of 10, with 5 pods running, 13.2 MB RSS mean and 0.37 % CPU mean.

Load average (1, 5, 15 min): $LOAD_START at the start, $LOAD_MANY once the $TOTAL pods ran, $LOAD_END at the end.
EOF
