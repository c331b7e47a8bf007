#!/usr/bin/env bash
# Runs the 1,000-peer membership scenarios in the simulator (release build)
# and prints a Markdown section for BENCHMARKS.md on stdout.
# Usage: scripts/bench-membership.sh [PEERS] [SEED]
set -euo pipefail
cd "$(dirname "$0")/.."
PEERS="${1:-1000}"
SEED="${2:-1}"
cargo build --release -q -p shoal-sim >&2
BIN=target/release/shoal-sim
field() { python3 -c 'import json,sys; d=json.loads(sys.argv[1]); v=d
for k in sys.argv[2].split("."): v=v.get(k) if isinstance(v,dict) else None
print("-" if v is None else str(v).lower() if isinstance(v,bool) else (round(v) if isinstance(v,float) else v))' "$1" "$2"; }
echo "### Membership (simulated)"
echo
echo "LAN preset, ${PEERS} peers, 1–5 ms latency, 1% loss (the loss scenario sets its own), seed ${SEED}; one core; \`converged\` = every live peer's view equals the true alive set at the end."
echo
echo "| scenario | converged | join p50 / p99 / max (ms) | detect p50 / p99 / max (ms, 99.9% of peers) | false suspicions / downs | bytes/node/s | msgs/node/s | simulated (ms) | wall (ms) | command |"
echo "|---|---|---|---|---|---|---|---|---|---|"
for s in join crash partition-heal loss churn; do
  cmd="cargo run --release -p shoal-sim -- --peers ${PEERS} --scenario ${s} --seed ${SEED} --json"
  out=$("$BIN" --peers "$PEERS" --scenario "$s" --seed "$SEED" --json || true)
  fd="$(field "$out" false_suspicions) / $(field "$out" false_downs)"
  if [ "$s" = loss ]; then
    fd="5%: $(field "$out" extra.false_suspicions_5pct) / $(field "$out" extra.false_downs_5pct); 20%: $(field "$out" extra.false_suspicions_20pct) / $(field "$out" extra.false_downs_20pct)"
  fi
  echo "| ${s} | $(field "$out" converged) | $(field "$out" join_p50_ms) / $(field "$out" join_p99_ms) / $(field "$out" join_max_ms) | $(field "$out" detect_p50_ms) / $(field "$out" detect_p99_ms) / $(field "$out" detect_max_ms) | ${fd} | $(field "$out" bytes_per_node_per_s) | $(field "$out" msgs_per_node_per_s) | $(field "$out" sim_ms) | $(field "$out" wall_ms) | \`${cmd}\` |"
done
echo
echo "For comparison: memberlist (HashiCorp) publishes an estimate of about 2 s for an update to reach 99.9% of a 1,000-node cluster; the detect column above also includes probing, the suspicion window and dissemination of the down."
