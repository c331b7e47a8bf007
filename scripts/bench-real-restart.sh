#!/usr/bin/env bash
# Whole-site restarts of 10 real peers and apply throughput with durable
# acknowledgement (tests/bench_restart.rs). Prints one Markdown section to
# stdout; cargo's output and the progress go to stderr. Takes ~3-5 min.
#
#   scripts/bench-real-restart.sh > /tmp/real-restart.md
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release -q -p shoal >&2
OUT=$(mktemp)
trap 'rm -f "$OUT"' EXIT
SHOAL_BENCH_OUT="$OUT" cargo test --release -q -p shoal --all-features --test bench_real_restart -- \
  --ignored --nocapture --test-threads 1 >&2
[ -s "$OUT" ] || { echo "bench-real-restart: the benchmark wrote no figures" >&2; exit 1; }
cat "$OUT"
