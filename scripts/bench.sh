#!/usr/bin/env bash
# Measures everything and rewrites BENCHMARKS.md. Figures are printed, never
# asserted; timings that depend on this noisy machine are compared against a
# baseline measured in the same run. The 1,000-peer simulations dominate the
# run time (tens of minutes on 2 cores).
#
#   scripts/bench.sh            # everything
#   SECTIONS="state placement" scripts/bench.sh   # remeasure some sections;
#                               # the others keep their last figures
#   SECTIONS=none scripts/bench.sh  # only reassemble BENCHMARKS.md
set -euo pipefail
cd "$(dirname "$0")/.."
ALL="state placement membership peers runtime cluster real-restart snapshots images services rollout kubectl api-tls big-join observe identity fuzz"
SECTIONS=${SECTIONS:-$ALL}
DIR=benchmarks   # one Markdown file per section, assembled into BENCHMARKS.md
mkdir -p "$DIR"

if [ "$SECTIONS" != none ]; then
  bash scripts/test-images.sh >&2
  cargo build --release -q --workspace --all-features --examples >&2
fi

section() {
  case "$1" in
    state) cargo run --release -q -p shoal-crdt-state --example bench_state ;;
    placement) cargo run --release -q -p shoal --example bench_placement ;;
    membership) bash scripts/bench-membership.sh ;;
    peers) bash scripts/bench-peers.sh ;;
    runtime) cargo run --release -q -p shoal-runtime --features docker --example bench_runtime ;;
    cluster) bash scripts/bench-cluster.sh ;;
    real-restart) bash scripts/bench-real-restart.sh ;;
    snapshots) bash scripts/bench-snapshots.sh ;;
    images) bash scripts/bench-images.sh ;;
    services) bash scripts/bench-services.sh ;;
    rollout) bash scripts/bench-rollout.sh ;;
    kubectl) bash scripts/bench-kubectl.sh ;;
    api-tls) bash scripts/bench-api-tls.sh ;;
    big-join) bash scripts/bench-big-join.sh ;;
    observe) bash scripts/bench-observe.sh ;;
    identity) bash scripts/bench-identity.sh ;;
    fuzz) bash scripts/bench-fuzz.sh ;;
    *) echo "unknown section $1" >&2; return 1 ;;
  esac
}

[ "$SECTIONS" = none ] && SECTIONS=""
for s in $SECTIONS; do
  echo "bench: measuring $s" >&2
  tmp=$(mktemp)
  {
    section "$s"
    echo
    echo "_Measured $(date -u +%Y-%m-%d) at commit $(git rev-parse --short HEAD) on $(nproc) cores" \
         "($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), load average $(cut -d' ' -f1-3 /proc/loadavg) when it ended._"
  } >"$tmp"
  mv "$tmp" "$DIR/$s.md"
done

{
  echo "# Benchmarks"
  echo
  echo "Written by \`scripts/bench.sh\` (one section per benchmark, kept in \`$DIR/\`;"
  echo "remeasure some with \`SECTIONS=\"name ...\" scripts/bench.sh\`). Figures are printed,"
  echo "never asserted; where the machine is noisy, a baseline measured in the same run is given."
  for s in $ALL; do
    [ -f "$DIR/$s.md" ] || continue
    echo
    cat "$DIR/$s.md"
  done
} >BENCHMARKS.md
echo "bench: wrote BENCHMARKS.md" >&2
