#!/usr/bin/env bash
# API request latency over TLS against plain HTTP on loopback, measured with
# curl (a client nobody here wrote): two one-node clusters on 127.0.47.21
# (--api-tls, verified with the cluster CA) and 127.0.47.22 (plain HTTP),
# N requests to /api/v1/healthz each, first with a new connection per
# request (TLS handshake every time), then on one kept-alive connection.
# Runs alternate, ROUNDS times (default 3). Prints one Markdown section
# ("### API over TLS") to stdout; progress to stderr. Figures are printed,
# not asserted. BIN overrides the binary (default: the release build). The
# per-client rate limit is off (--api-rate-limit 0): N requests on one
# connection would exceed it, and the latency is what is measured.
#
#   scripts/bench-api-tls.sh > /tmp/api-tls.md
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-200}
ROUNDS=${ROUNDS:-3}
TARGET=${CARGO_TARGET_DIR:-target}
if [ -z "${BIN:-}" ]; then
  cargo build --release -q --bin shoal >&2
  BIN=$TARGET/release/shoal
fi
command -v curl >/dev/null || { echo "bench-api-tls: needs curl" >&2; exit 1; }
TOKEN=bench-api-tls-token-0123456789
TMP=$(mktemp -d)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$TMP"
}
trap cleanup EXIT

start() { # IP EXTRA...
  local ip=$1; shift
  SHOAL_LOG=warn "$BIN" up --listen "$ip:7946" --api "$ip:7070" --data-dir "$TMP/$ip" \
    --service-address "$ip" --dns-port 5347 --api-token "$TOKEN" --api-rate-limit 0 "$@" >/dev/null 2>"$TMP/$ip.log" &
  PIDS+=($!)
}
start 127.0.47.21 --api-tls
start 127.0.47.22
TLS=https://127.0.47.21:7070/api/v1/healthz
PLAIN=http://127.0.47.22:7070/api/v1/healthz
for _ in $(seq 1 120); do
  if curl -sfk -H "Authorization: Bearer $TOKEN" "$TLS" >/dev/null &&
    curl -sf -H "Authorization: Bearer $TOKEN" "$PLAIN" >/dev/null; then break; fi
  sleep 0.5
done
"$BIN" ca print --data-dir "$TMP/127.0.47.21" >"$TMP/ca.pem"
CURL=(curl -s -o /dev/null -H "Authorization: Bearer $TOKEN" --cacert "$TMP/ca.pem" -w '%{time_total}\n')

# new connection per request: one curl per request
fresh() { for _ in $(seq 1 "$N"); do "${CURL[@]}" "$1"; done; }
# one connection: one curl, N URLs
kept() { local urls=(); for _ in $(seq 1 "$N"); do urls+=(-o /dev/null "$1"); done; "${CURL[@]}" "${urls[@]}"; }

for round in $(seq 1 "$ROUNDS"); do
  echo "round $round/$ROUNDS" >&2
  fresh "$PLAIN" >>"$TMP/fresh-plain"
  fresh "$TLS" >>"$TMP/fresh-tls"
  kept "$PLAIN" >>"$TMP/kept-plain"
  kept "$TLS" >>"$TMP/kept-tls"
done

# p50 and p99 in ms of a file of seconds
pct() { sort -g "$1" | awk -v p="$2" '{a[NR]=$1} END {i=int(NR*p/100); if (i<1) i=1; printf "%.2f", a[i]*1000}'; }
row() { # LABEL PLAIN TLS
  local p50p p50t p99p p99t
  p50p=$(pct "$2" 50); p50t=$(pct "$3" 50); p99p=$(pct "$2" 99); p99t=$(pct "$3" 99)
  printf '| %s | %s | %s | %s | %s | %s |\n' "$1" "$p50p" "$p50t" "$p99p" "$p99t" \
    "$(awk -v a="$p50t" -v b="$p50p" 'BEGIN {printf "%.2fx", a/b}')"
}
echo "### API over TLS"
echo
echo "\`scripts/bench-api-tls.sh\` ($(basename "$BIN") at $BIN; $((N * ROUNDS)) requests per cell to"
echo "\`/api/v1/healthz\` with curl; TLS 1.3, Ed25519 certificate from the cluster CA)."
echo
echo "| connection | plain p50 ms | TLS p50 ms | plain p99 ms | TLS p99 ms | TLS/plain p50 |"
echo "|---|---|---|---|---|---|"
row "new per request (handshake each time)" "$TMP/fresh-plain" "$TMP/fresh-tls"
row "one kept-alive connection" "$TMP/kept-plain" "$TMP/kept-tls"
