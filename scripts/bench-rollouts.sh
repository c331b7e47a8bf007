#!/usr/bin/env bash
# The simulated rollout sweep (issue #12): every RC rolled to a new image
# (25% surge / 25% unavailable), alone, under a crash, a scale, a
# partition, undone mid-rollout (with and without a partition), and
# rolled to a third image mid-rollout by one peer, the bounds checked
# after every instant. Prints the "#### Rollouts"
# Markdown subsection of the peer-core section. scripts/bench-peers.sh calls
# it; it runs alone too. Figures are printed, not asserted.
#
#   scripts/bench-rollouts.sh
#   ROLLOUT_SEEDS=5 JOBS=1 ROLLOUT_OUT=/tmp/rollouts scripts/bench-rollouts.sh
#
# Knobs (environment): ROLLOUT_SEEDS (seeds 1..N per scenario, default 20),
# SWEEP_PEERS (100), SWEEP_RCS (100), SWEEP_REPLICAS (10), JOBS (parallel
# runs, 2), ROLLOUT_TIMEOUT (seconds per run, 1800), ROLLOUT_OUT (keep the
# per-run JSON there and skip the runs it holds already, so a sweep cut
# short can be resumed; default a temporary directory). Runs go seed by
# seed, the six scenarios each, so a sweep cut short covers all six.
set -euo pipefail
cd "$(dirname "$0")/.."

ROLLOUT_SEEDS=${ROLLOUT_SEEDS:-20}
SWEEP_PEERS=${SWEEP_PEERS:-100}
SWEEP_RCS=${SWEEP_RCS:-100}
SWEEP_REPLICAS=${SWEEP_REPLICAS:-10}
JOBS=${JOBS:-2}
ROLLOUT_TIMEOUT=${ROLLOUT_TIMEOUT:-1800}
SCENARIOS="rollout rollout-scale rollout-crash rollout-partition rollout-undo rollout-partition-undo rollout-twice"

cargo build --release -q -p shoal-sim >&2
BIN=${CARGO_TARGET_DIR:-target}/release/shoal-sim
if [ -n "${ROLLOUT_OUT:-}" ]; then
  OUT=$ROLLOUT_OUT
  mkdir -p "$OUT"
else
  OUT=$(mktemp -d)
  trap 'rm -rf "$OUT"' EXIT
fi

for seed in $(seq 1 "$ROLLOUT_SEEDS"); do
  for s in $SCENARIOS; do
    # A finished run ends with its JSON line; anything else is run again.
    grep -q '"trace_hash"' "$OUT/rollout-$s-$seed.json" 2>/dev/null || echo "$s $seed"
  done
done | xargs -r -P "$JOBS" -L 1 sh -c \
  "timeout $ROLLOUT_TIMEOUT $BIN --scenario \$0 --seed \$1 --peers $SWEEP_PEERS --rcs $SWEEP_RCS \
     --replicas $SWEEP_REPLICAS --json > $OUT/rollout-\$0-\$1.json 2>/dev/null || true"

python3 - "$OUT" "$ROLLOUT_SEEDS" "$SWEEP_PEERS" "$SWEEP_RCS" "$SWEEP_REPLICAS" "$ROLLOUT_TIMEOUT" $SCENARIOS <<'PY'
import json, statistics, sys
out, seeds, peers, rcs, replicas, timeout, *scenarios = sys.argv[1:]
seeds, replicas = int(seeds), int(replicas)
# Kubernetes' default budget, as `UpdateStrategy::resolve` rounds it:
# surge up, unavailable down.
floor = replicas - replicas * 25 // 100
def load(path):
    try:
        with open(path) as f:
            return json.loads(f.read().strip().splitlines()[-1])
    except Exception:
        return None
print("#### Rollouts (surge, bounds checked at every instant)\n")
print(f"Every RC rolled to a new image with Kubernetes' default budget (25% surge,")
print(f"25% unavailable), {peers} peers, {rcs} RCs x {replicas} replicas, seeds 1-{seeds};")
print(f"`min ready` is the lowest count of pods serving (running, ready, not")
print(f"draining) of any RC at any instant over all seeds, against the floor")
print(f"`replicas - maxUnavailable` = {floor} (under a crash, lowered by the ready")
print(f"pods the crashed peer held); `margin` the lowest `ready - floor`.\n")
print("| scenario | runs finished / seeds | rolled out / every check held | rollout p50 / max (simulated) | min ready / floor (margin) | bound breaches | wall per run (mean / max) |")
print("|---|---|---|---|---|---|---|")
for s in scenarios:
    rs = [(n, load(f"{out}/rollout-{s}-{n}.json")) for n in range(1, seeds + 1)]
    ok = [(n, r) for n, r in rs if r]
    if not ok:
        print(f"| {s} | 0 / {seeds} | | | | | |")
        continue
    ex = lambda r, k: r["extra"].get(k)
    rolled = [ex(r, "rollout_ms") for _, r in ok if ex(r, "rollout_ms") is not None and ex(r, "rollout_ms") >= 0]
    failed = [n for n, r in ok if not r["rc_converged"]]
    breaches = [(n, v) for n, r in ok for v in r["violations"]
                if v.startswith("at ") and ("below the floor" in v or "above the ceiling" in v)]
    breach_seeds = sorted({n for n, _ in breaches})
    min_ready = min(ex(r, "min_ready") for _, r in ok)
    margin = min(ex(r, "min_ready_margin") for _, r in ok)
    walls = [r["wall_ms"] / 1000 for _, r in ok]
    t = (f"{statistics.median(rolled)/1000:.2f} s / {max(rolled)/1000:.2f} s" if rolled else "-")
    heal = [ex(r, "heal_to_ceiling_ms") for _, r in ok if ex(r, "heal_to_ceiling_ms") is not None]
    if heal:
        t += f"; heal -> ceiling max {max(heal)/1000:.2f} s"
    agree = [ex(r, "heal_views_agree_ms") for _, r in ok if ex(r, "heal_views_agree_ms") is not None]
    above = [ex(r, "heal_above_ceiling_ms") for _, r in ok if ex(r, "heal_above_ceiling_ms") is not None]
    if agree and above:
        t += (f" (views agree max {max(agree)/1000:.2f} s; above the ceiling after the heal "
              f"max {max(above)/1000:.2f} s, p50 {statistics.median(above)/1000:.2f} s)")
    floors = sum(1 for _, v in breaches if "below the floor" in v)
    b = (f"{len(breach_seeds)} runs: {floors} below the floor, {len(breaches) - floors} above the ceiling "
         f"(seeds {breach_seeds})" if breaches else "0")
    r_out = f"{len(rolled)} / {len(ok) - len(failed)}"
    print(f"| {s} | {len(ok)} / {seeds} | {r_out} | {t} | {min_ready:.0f} / {floor} ({margin:+.0f}) | {b} | "
          f"{statistics.mean(walls):.1f} s / {max(walls):.1f} s |")
print(f"\nCommand: `scripts/bench-rollouts.sh` (each run: `target/release/shoal-sim --scenario NAME "
      f"--peers {peers} --rcs {rcs} --replicas {replicas} --seed N --json`, at most {timeout} s each; "
      f"a run that did not finish counts in `seeds`, not in `runs finished`; every check: no breach, "
      f"rolled out within 600 s, the state invariants at the end). Bound breaches: "
      f"instants x RCs, of the first 10 a run reports (one line each).")
PY
