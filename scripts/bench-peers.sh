#!/usr/bin/env bash
# Peer-core benchmarks in the simulator: prints a Markdown section
# ("### Peer core (simulated)") to stdout. Figures are printed, not asserted.
#
#   scripts/bench-peers.sh                 # defaults below
#   SEEDS=20 SWEEP_PEERS=100 BIG_PEERS=300 BIG_RCS=300 scripts/bench-peers.sh
#
# Knobs (environment): SEEDS (sweep seeds per scenario, default 20),
# SWEEP_PEERS (100), SWEEP_RCS (100), SWEEP_REPLICAS (10), BIG_PEERS (1000),
# BIG_RCS (1000), BIG_REPLICAS (10), BIG_TIMEOUT (seconds per big run, 1800),
# JOBS (parallel sweep runs, 2), ROLLOUT_SEEDS (20). The rollout subsection
# comes from scripts/bench-rollouts.sh (the four rollout scenarios at
# SWEEP_PEERS x SWEEP_RCS x SWEEP_REPLICAS, ROLLOUT_SEEDS seeds), the
# full-restart one from scripts/bench-restart.sh (at SWEEP_PEERS and 10
# peers, SEEDS seeds).
set -euo pipefail
cd "$(dirname "$0")/.."

SEEDS=${SEEDS:-20}
SWEEP_PEERS=${SWEEP_PEERS:-100}
SWEEP_RCS=${SWEEP_RCS:-100}
SWEEP_REPLICAS=${SWEEP_REPLICAS:-10}
BIG_PEERS=${BIG_PEERS:-1000}
BIG_RCS=${BIG_RCS:-1000}
BIG_REPLICAS=${BIG_REPLICAS:-10}
BIG_TIMEOUT=${BIG_TIMEOUT:-1800}
JOBS=${JOBS:-2}
SCENARIOS="apply failover scale rc-partition-heal rc-join"

cargo build --release -q -p shoal-sim >&2
BIN=${CARGO_TARGET_DIR:-target}/release/shoal-sim
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT

# IO stays opt-in: the simulator's normal dependencies hold no tokio/quinn/bollard.
if cargo tree -p shoal-sim -e normal 2>/dev/null | grep -Eq '\b(tokio|quinn|bollard|axum) v'; then
  DEPS="**FAIL**: tokio, quinn, bollard or axum in \`cargo tree -p shoal-sim -e normal\`"
else
  DEPS="\`cargo tree -p shoal-sim -e normal\`: no tokio, quinn, bollard or axum"
fi

args_for() { # scenario peers rcs replicas
  if [ "$1" = scale ]; then echo "--peers $2 --rcs 1 --replicas $(( $3 * $4 ))"; else echo "--peers $2 --rcs $3 --replicas $4"; fi
}

# 20-seed sweep at SWEEP_PEERS.
for s in $SCENARIOS; do
  for seed in $(seq 1 "$SEEDS"); do
    echo "$s $seed $(args_for "$s" "$SWEEP_PEERS" "$SWEEP_RCS" "$SWEEP_REPLICAS")"
  done
done | xargs -r -P "$JOBS" -L 1 sh -c \
  "$BIN --scenario \$0 --seed \$1 \$2 \$3 \$4 \$5 \$6 \$7 --json > $OUT/sweep-\$0-\$1.json || true"

# The big run (bounded by BIG_TIMEOUT per scenario).
for s in apply failover; do
  timeout "$BIG_TIMEOUT" $BIN --scenario $s --seed 1 $(args_for $s "$BIG_PEERS" "$BIG_RCS" "$BIG_REPLICAS") --json \
    > "$OUT/big-$s.json" 2>/dev/null || true
done

python3 - "$OUT" "$SEEDS" "$SWEEP_PEERS" "$SWEEP_RCS" "$SWEEP_REPLICAS" "$BIG_PEERS" "$BIG_RCS" "$BIG_REPLICAS" "$BIG_TIMEOUT" "$DEPS" <<'PY'
import glob, json, os, sys
out, seeds, sp, srcs, srep, bp, brcs, brep, btime, deps = sys.argv[1:]
def load(path):
    try:
        with open(path) as f:
            return json.loads(f.read().strip().splitlines()[-1])
    except Exception:
        return None
def f(v, unit=""):
    return "-" if v is None else (f"{v:.0f}{unit}" if unit == " ms" else f"{v:.3g}{unit}")
print("### Peer core (simulated)\n")
print("Whole peer cores (real foca, CRDT state, placement, reconcile) with a fake")
print("container runtime (start latency 200 ms), LAN network preset (1-5 ms,")
print("1% loss). Ground truth = pods in the fake engines of live nodes.\n")
print(f"- {deps}\n")
print(f"#### Large run: {bp} peers, {brcs} RCs x {brep} replicas\n")
print("| scenario | converged | apply->running p99 | failover p99 | duplicates | missing | moved/ideal | placement | wall |")
print("|---|---|---|---|---|---|---|---|---|")
for s in ["apply", "failover"]:
    r = load(f"{out}/big-{s}.json")
    if r is None:
        print(f"| {s} | did not finish within {btime} s | | | | | | | |")
        continue
    print(f"| {s} | {r['rc_converged']} | {f(r['apply_to_running_p99_ms'],' ms')} | {f(r['failover_p99_ms'],' ms')} | "
          f"{r['max_duplicates_at_quiescence']} | {r['missing_at_quiescence']} | {f(r['moved_ratio'])} | "
          f"{f(r['placement_ms'])} ms | {r['wall_ms']/1000:.0f} s |")
print(f"\nCommand: `target/release/shoal-sim --scenario apply|failover --peers {bp} --rcs {brcs} --replicas {brep} --seed 1 --json`\n")
print(f"#### {seeds}-seed sweep at {sp} peers ({srcs} RCs x {srep} replicas; scale: 1 RC 2 -> {int(srcs)*int(srep)} -> 2)\n")
print("| scenario | runs | converged | max duplicates | max missing | handover breaks | apply p99 (worst seed) | failover p99 (worst seed) | moved/ideal (worst) | placement ms (max) | wall per run |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for s in ["apply", "failover", "scale", "rc-partition-heal", "rc-join"]:
    rs = [load(p) for p in sorted(glob.glob(f"{out}/sweep-{s}-*.json"))]
    ok = [r for r in rs if r]
    if not ok:
        print(f"| {s} | 0 | | | | | | | | | |"); continue
    mx = lambda k: max((r[k] for r in ok if r[k] is not None), default=None)
    conv = sum(1 for r in ok if r["rc_converged"])
    bad = [r["seed"] for r in ok if not r["rc_converged"]]
    print(f"| {s} | {len(ok)} | {conv}/{len(ok)}{' (failed seeds '+str(bad)+')' if bad else ''} | {mx('max_duplicates_at_quiescence')} | "
          f"{mx('missing_at_quiescence')} | {mx('handover_breaks')} | {f(mx('apply_to_running_p99_ms'),' ms')} | "
          f"{f(mx('failover_p99_ms'),' ms')} | {f(mx('moved_ratio'))} | {f(mx('placement_ms'))} | "
          f"{sum(r['wall_ms'] for r in ok)/len(ok)/1000:.1f} s |")
print(f"\nCommand: `scripts/bench-peers.sh` (each run: `target/release/shoal-sim --scenario NAME --peers {sp} --rcs {srcs} --replicas {srep} --seed N --json`)\n")
print("#### Failover against the anchors' defaults\n")
print("| system | node failure -> replacement running (defaults) |")
print("|---|---|")
fo = [load(p) for p in glob.glob(f"{out}/sweep-failover-*.json")]
fo = [r["failover_p99_ms"] for r in fo if r and r["failover_p99_ms"] is not None]
big = load(f"{out}/big-failover.json")
if big and big.get("failover_p99_ms"):
    print(f"| Shoal (simulated, {bp} peers, p99) | {big['failover_p99_ms']/1000:.1f} s |")
if fo:
    print(f"| Shoal (simulated, {sp} peers, worst p99 over {len(fo)} seeds) | {max(fo)/1000:.1f} s |")
print("| Kubernetes (node-monitor-grace-period 40 s + pod eviction 5 min) | ~5 min 50 s |")
print("| Nomad (heartbeat TTL + reschedule) | ~20 s |")
print("| Docker Swarm (dispatcher heartbeat x grace) | ~15-20 s |")
PY

echo
ROLLOUT_SEEDS=${ROLLOUT_SEEDS:-20} SWEEP_PEERS=$SWEEP_PEERS SWEEP_RCS=$SWEEP_RCS SWEEP_REPLICAS=$SWEEP_REPLICAS \
  JOBS=$JOBS bash scripts/bench-rollouts.sh
echo
SEEDS=$SEEDS JOBS=$JOBS RESTART_PEERS="$SWEEP_PEERS 10" RESTART_REPLICAS=$SWEEP_REPLICAS bash scripts/bench-restart.sh
