#!/usr/bin/env bash
# Real-cluster benchmark: 10 `shoal up` peers (release build) on 127.0.40.x,
# the real Docker engine, iptables counters. Prints one Markdown section
# ("### Real cluster (10 peers on loopback)") to stdout; the cargo output and
# the test's own progress go to stderr. Figures are printed, not asserted.
#
#   scripts/bench-cluster.sh > /tmp/real-cluster.md
#
# Needs: root (iptables), a reachable Docker engine, busybox-static (the test
# images are built by scripts/test-images.sh, never pulled). Takes ~3-5 min.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release -q -p shoal >&2
OUT=$(mktemp)
trap 'rm -f "$OUT"' EXIT
SHOAL_BENCH_OUT="$OUT" cargo test --release -q -p shoal --test bench_cluster -- \
  --ignored --nocapture --test-threads 1 >&2
[ -s "$OUT" ] || { echo "bench-cluster: the benchmark wrote no figures" >&2; exit 1; }
cat "$OUT"
