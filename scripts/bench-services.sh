#!/usr/bin/env bash
# The services data plane, measured with clients nobody here wrote: wrk
# (Debian package wrk) through one peer's load balancer (its nodePort),
# straight to the container's published port (through the engine's
# userland proxy, docker-proxy) and straight to the container's own
# address on the engine's bridge; 64 connections (throughput) and 1
# (added latency), the test image's busybox httpd as the endpoint; runs
# alternate, ROUNDS times each (default 2), DURATION seconds each (default
# 10). The 1-connection (latency) runs come first, before any 64-connection
# run has left thousands of TIME_WAIT sockets and busy httpd children
# behind, and alternate in ROUNDS1 short rounds (default 5, DURATION1 s
# each, default 4): the added latency is taken per round (same minute, same
# machine load) and its median reported. Then the idle cost of a peer serving 100 services (RSS, CPU over
# 20 s). Prints one Markdown section ("### Services") to stdout; progress
# goes to stderr. DNS is measured with dnsperf (Debian package dnsperf).
# Figures are printed, not asserted. Takes ~3.5 min after the release build.
#
#   scripts/bench-services.sh > /tmp/services.md
#   IP=127.0.91.1 PROFILE=debug scripts/bench-services.sh   # relative figures
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-2}
DURATION=${DURATION:-10}
ROUNDS1=${ROUNDS1:-5}
DURATION1=${DURATION1:-4}
IP=${IP:-127.0.96.1}
NODE_PORT=${NODE_PORT:-30960}
DNS_PORT=${DNS_PORT:-5353}
PROFILE=${PROFILE:-release}
TARGET=${CARGO_TARGET_DIR:-target}
BIN=$TARGET/$PROFILE/shoal
command -v wrk >/dev/null || { echo "bench-services: needs wrk (apt-get install wrk)" >&2; exit 1; }
command -v dnsperf >/dev/null || { echo "bench-services: needs dnsperf (apt-get install dnsperf)" >&2; exit 1; }
if [ "$PROFILE" = release ]; then
  cargo build --release -q --bin shoal >&2
else
  cargo build -q --all-features --bin shoal >&2
fi
bash scripts/test-images.sh >&2

TMP=$(mktemp -d)
PEER=""
cleanup() {
  if [ -n "$PEER" ]; then
    kill "$PEER" 2>/dev/null || true
    wait "$PEER" 2>/dev/null || true
  fi
  # Only this run's containers: labelled with its cluster id.
  local cluster
  cluster=$(sed -n 's/.*"token": *"shoal1\.\([0-9a-f]*\)\..*/\1/p' "$TMP/data/node.json" 2>/dev/null || true)
  if [ -n "$cluster" ]; then
    docker ps -aq --filter "label=io.shoal.cluster=$cluster" | xargs -r docker rm -f >/dev/null
  fi
  rm -rf "$TMP"
}
trap cleanup EXIT
export SHOAL_SERVER=http://$IP:7070
# A private service address and DNS port: nothing of the machine's is taken.
SHOAL_LOG=warn "$BIN" up --listen $IP:7946 --api $IP:7070 --data-dir "$TMP/data" \
  --service-address $IP --dns-port "$DNS_PORT" >"$TMP/peer.log" 2>&1 &
PEER=$!
for _ in $(seq 100); do "$BIN" get nodes >/dev/null 2>&1 && break; sleep 0.2; done

cat >"$TMP/hello.yaml" <<YAML
apiVersion: v1
kind: ReplicationController
metadata:
  name: hello
spec:
  replicas: 1
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
        image: shoal-test/hello:1.0
        ports:
        - containerPort: 80
---
apiVersion: v1
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
    targetPort: 80
    nodePort: $NODE_PORT
YAML
"$BIN" apply -f "$TMP/hello.yaml" >&2
endpoint() {
  "$BIN" get svc hello -o json 2>/dev/null |
    python3 -c 'import json,sys; e=[x for x in json.load(sys.stdin)["endpoints"] if x["ready"]]; print(e[0]["addresses"][0] if e else "")' 2>/dev/null || true
}
DIRECT=""
for _ in $(seq 150); do DIRECT=$(endpoint); [ -n "$DIRECT" ] && break; sleep 0.2; done
[ -n "$DIRECT" ] || { echo "bench-services: no ready endpoint; peer log:" >&2; tail -20 "$TMP/peer.log" >&2; exit 1; }
# The container's own address: its IP on the engine's bridge, port 80.
CLUSTER_ID=$(sed -n 's/.*"token": *"shoal1\.\([0-9a-f]*\)\..*/\1/p' "$TMP/data/node.json")
CONTAINER=$(docker ps -q --filter "label=io.shoal.cluster=$CLUSTER_ID" | head -1)
BRIDGE=$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$CONTAINER"):80

run_wrk() {
  wrk -t"$(( $2 < 2 ? 1 : 2 ))" -c"$2" -d"${3}s" --latency "http://$1/" | awk '
    function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v }
    /^Requests\/sec/ { rps = $2 }
    $1 == "50%" { p50 = ms($2) }
    $1 == "99%" { p99 = ms($2) }
    END { printf "%.0f %.3f %.3f\n", rps, p50, p99 }'
}
# One wrk run at $1 with $2 connections for $3 s: "requests/s p50_ms p99_ms".
: >"$TMP/direct" ; : >"$TMP/bridge" ; : >"$TMP/lb" ; : >"$TMP/direct1" ; : >"$TMP/bridge1" ; : >"$TMP/lb1"
LOAD1=$(cut -d' ' -f1-3 /proc/loadavg)
for round in $(seq "$ROUNDS1"); do
  echo "bench-services: 1-connection round $round" >&2
  run_wrk "$BRIDGE" 1 "$DURATION1" >>"$TMP/bridge1"
  run_wrk "$IP:$NODE_PORT" 1 "$DURATION1" >>"$TMP/lb1"
  run_wrk "$DIRECT" 1 "$DURATION1" >>"$TMP/direct1"
done
for round in $(seq "$ROUNDS"); do
  echo "bench-services: 64-connection round $round" >&2
  run_wrk "$DIRECT" 64 "$DURATION" >>"$TMP/direct"
  run_wrk "$IP:$NODE_PORT" 64 "$DURATION" >>"$TMP/lb"
  run_wrk "$BRIDGE" 64 "$DURATION" >>"$TMP/bridge"
done
avg() { awk -v c="$2" '{ s += $c; n++ } END { printf "%.'"${3:-0}"'f", s / n }' "$1"; }
D_RPS=$(avg "$TMP/direct" 1); L_RPS=$(avg "$TMP/lb" 1)
D_P50=$(avg "$TMP/direct" 2 3); L_P50=$(avg "$TMP/lb" 2 3)
D_P99=$(avg "$TMP/direct" 3 2); L_P99=$(avg "$TMP/lb" 3 2)
B_RPS=$(avg "$TMP/bridge" 1); B_P50=$(avg "$TMP/bridge" 2 3); B_P99=$(avg "$TMP/bridge" 3 2)
B1_RPS=$(avg "$TMP/bridge1" 1); B1_P50=$(avg "$TMP/bridge1" 2 3); B1_P99=$(avg "$TMP/bridge1" 3 2)
D1_RPS=$(avg "$TMP/direct1" 1); L1_RPS=$(avg "$TMP/lb1" 1)
D1_P50=$(avg "$TMP/direct1" 2 3); L1_P50=$(avg "$TMP/lb1" 2 3)
D1_P99=$(avg "$TMP/direct1" 3 2); L1_P99=$(avg "$TMP/lb1" 3 2)
RATIO=$(awk -v a="$L_RPS" -v b="$D_RPS" 'BEGIN { printf "%.2f", a / b }')
RATIO_BRIDGE=$(awk -v a="$L_RPS" -v b="$B_RPS" 'BEGIN { printf "%.2f", a / b }')
# Median over rounds of (a's p50 - b's p50) in the same round: $1 a, $2 b.
added() {
  paste -d' ' "$1" "$2" | awk '{ print $2 - $5 }' | sort -g |
    awk '{ v[NR] = $1 } END { m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; printf "%.3f", m }'
}
ADDED=$(added "$TMP/lb1" "$TMP/direct1")
ADDED_BRIDGE=$(added "$TMP/lb1" "$TMP/bridge1")
ADDED_PROXY=$(added "$TMP/direct1" "$TMP/bridge1")
ROUNDS_LB=$(paste -d' ' "$TMP/lb1" "$TMP/bridge1" | awk '{ sep = (NR == 1) ? "" : ", "; printf "%s%.3f", sep, $2 - $5 }')

# DNS at the peer (its port $DNS_PORT on $IP): A and SRV questions for the
# service, dnsperf's clients keeping 100 queries outstanding. dnsperf -v
# prints each answer's latency, from which the p99 comes.
printf 'hello.svc.shoal A\nhello A\n_http._tcp.hello.svc.shoal SRV\n' >"$TMP/queries"
dnsperf -s "$IP" -p "$DNS_PORT" -d "$TMP/queries" -c 4 -q 100 -l "$DURATION" -v >"$TMP/dnsperf" 2>&1 || true
DNS_QPS=$(awk '/Queries per second:/ { printf "%.0f", $4 }' "$TMP/dnsperf")
DNS_LOST=$(awk '/Queries lost:/ { print $3 }' "$TMP/dnsperf")
DNS_AVG=$(awk '/Average Latency/ { printf "%.3f", $4 * 1000 }' "$TMP/dnsperf")
DNS_P99=$(awk '$1 == ">" { print $NF * 1000 }' "$TMP/dnsperf" | sort -n |
  awk '{ v[NR] = $1 } END { if (NR) { i = int(NR * 0.99); if (i < 1) i = 1; printf "%.3f", v[i] } }')

# Idle cost: 100 services (no endpoints), nothing connecting.
"$BIN" delete rc hello >&2
for i in $(seq 1 100); do
  cat <<YAML
---
apiVersion: v1
kind: Service
metadata:
  name: idle-$i
spec:
  selector:
    app: idle-$i
  ports:
  - port: $((20000 + i))
    targetPort: 80
YAML
done >"$TMP/idle.yaml"
"$BIN" apply -f "$TMP/idle.yaml" >/dev/null
sleep 3
rss() { awk '/^VmRSS/ { printf "%.1f", $2 / 1024 }' "/proc/$PEER/status"; }
ticks() { awk '{ print $14 + $15 }' "/proc/$PEER/stat"; }
LISTENERS=$(ss -ltn "src $IP" | grep -c LISTEN || true)
T0=$(ticks); sleep 20; T1=$(ticks)
CPU=$(awk -v t=$((T1 - T0)) -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.1f", 100 * t / hz / 20 }')
RSS=$(rss)

cat <<MD
### Services

One peer ($PROFILE build) with the machine's engine; the endpoint is one
pod of the test image (busybox httpd, a process per connection), published
on $IP. \`wrk\` with 64 connections (2 threads) and with 1, for ${DURATION} s:
to the container's published port (what a client without Shoal uses: the
engine's userland proxy, docker-proxy, copies every byte to the container),
through the peer's load balancer (its nodePort on the same address; the
endpoint is on this node, so the load balancer connects to the container's
own address), and to the container's own address on the engine's bridge
(nothing in between: the ceiling). At 1 connection: $ROUNDS1 alternating
rounds of ${DURATION1} s each, first (load average $LOAD1 when they began);
at 64: $ROUNDS rounds of ${DURATION} s. Averaged.

| path | connections | requests/s | latency p50 | latency p99 |
|---|---:|---:|---:|---:|
| to the published port (docker-proxy) | 64 | $D_RPS | ${D_P50} ms | ${D_P99} ms |
| through the peer's load balancer | 64 | $L_RPS | ${L_P50} ms | ${L_P99} ms |
| to the container's own address | 64 | $B_RPS | ${B_P50} ms | ${B_P99} ms |
| to the published port (docker-proxy) | 1 | $D1_RPS | ${D1_P50} ms | ${D1_P99} ms |
| through the peer's load balancer | 1 | $L1_RPS | ${L1_P50} ms | ${L1_P99} ms |
| to the container's own address | 1 | $B1_RPS | ${B1_P50} ms | ${B1_P99} ms |

Throughput through the load balancer at 64 connections: **${RATIO}×** the
published port's (target ≥ 0.7× direct), **${RATIO_BRIDGE}×** the container's
own address's. Added p50 latency at 1 connection (an unloaded endpoint;
median over rounds of the difference within a round): **${ADDED_BRIDGE} ms**
over the container's own address (target < 0.3 ms; by round: ${ROUNDS_LB}),
**${ADDED} ms** over the published port; docker-proxy itself adds
**${ADDED_PROXY} ms**. busybox httpd closes every connection after one answer:
wrk's latency leaves out its own connect, but through a proxy it includes the
proxy's connect to the container (one handshake on the bridge) as well as
the two extra copies. At 64 connections httpd is saturated and latency is
its queue.

DNS at the peer (\`dnsperf\`, 4 clients, 100 queries outstanding, ${DURATION} s,
A and SRV questions for the service): **${DNS_QPS} queries/s**, latency
average ${DNS_AVG} ms, p99 **${DNS_P99} ms** (from dnsperf's per-answer
latencies), ${DNS_LOST:-?} queries lost.

Idle cost with 100 services and no traffic: RSS **${RSS} MB**, CPU
**${CPU}%** of one core over 20 s, $LISTENERS TCP listeners on $IP.
MD
