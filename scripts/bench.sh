#!/usr/bin/env bash
# Measures everything and rewrites BENCHMARKS.md. Figures are printed, never
# asserted; timings that depend on this noisy machine are compared against a
# baseline measured in the same run. The 1,000-peer simulations dominate the
# run time (tens of minutes on 2 cores).
#
#   scripts/bench.sh            # everything
#   SECTIONS="state placement" scripts/bench.sh   # some sections only
set -euo pipefail
cd "$(dirname "$0")/.."
SECTIONS=${SECTIONS:-"state placement membership peers runtime cluster"}

bash scripts/test-images.sh >&2
cargo build --release -q --workspace --all-features --examples >&2

section() {
  case "$1" in
    state) cargo run --release -q -p shoal-crdt-state --example bench_state ;;
    placement) cargo run --release -q -p shoal --example bench_placement ;;
    membership) bash scripts/bench-membership.sh ;;
    peers) bash scripts/bench-peers.sh ;;
    runtime) cargo run --release -q -p shoal-runtime --features docker --example bench_runtime ;;
    cluster) bash scripts/bench-cluster.sh ;;
    *) echo "unknown section $1" >&2; return 1 ;;
  esac
}

tmp=$(mktemp)
{
  echo "# Benchmarks"
  echo
  echo "Written by \`scripts/bench.sh\` on $(date -u +%Y-%m-%d) on $(nproc) cores" \
       "($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $(free -g | awk '/Mem:/{print $2}') GiB."
  echo "Each section names the command that produced it; rerun one with \`SECTIONS=name scripts/bench.sh\`."
  for s in $SECTIONS; do
    echo
    section "$s"
  done
} >"$tmp"
mv "$tmp" BENCHMARKS.md
echo "wrote BENCHMARKS.md" >&2
