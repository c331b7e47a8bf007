#!/usr/bin/env bash
# Whole-site power cycle in the simulator (scenario `full-restart`, both
# engine variants): prints the "#### Full restart" Markdown subsection of
# the peer-core section. scripts/bench-peers.sh calls it; it runs alone too.
# Figures are printed, not asserted.
#
#   scripts/bench-restart.sh
#   SEEDS=5 RESTART_PEERS="20" JOBS=2 scripts/bench-restart.sh
#
# Knobs (environment): SEEDS (seeds per size and variant, default 20),
# RESTART_PEERS (sizes, default "100 10"; the first gets a table per seed,
# the others a summary), RESTART_REPLICAS (replicas per RC, 10; the
# workload has one RC per peer, so 10 replicas per peer), JOBS (parallel
# runs, 1).
set -euo pipefail
cd "$(dirname "$0")/.."

SEEDS=${SEEDS:-20}
RESTART_PEERS=${RESTART_PEERS:-100 10}
RESTART_REPLICAS=${RESTART_REPLICAS:-10}
JOBS=${JOBS:-1}

cargo build --release -q -p shoal-sim >&2
BIN=${CARGO_TARGET_DIR:-target}/release/shoal-sim
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT

for peers in $RESTART_PEERS; do
  for engines in survive die; do
    for seed in $(seq 1 "$SEEDS"); do
      echo "$peers $engines $seed"
    done
  done
done | xargs -r -P "$JOBS" -L 1 sh -c \
  "$BIN --scenario full-restart --peers \$0 --rcs \$0 --replicas $RESTART_REPLICAS --engines \$1 --seed \$2 --json \
     > $OUT/restart-\$0-\$1-\$2.json || true"

python3 - "$OUT" "$SEEDS" "$RESTART_REPLICAS" $RESTART_PEERS <<'PY'
import glob, json, statistics, sys
out, seeds, replicas, *sizes = sys.argv[1:]
def load(path):
    try:
        with open(path) as f:
            return json.loads(f.read().strip().splitlines()[-1])
    except Exception:
        return None
def runs(peers, engines):
    rs = [load(p) for p in glob.glob(f"{out}/restart-{peers}-{engines}-*.json")]
    return sorted((r for r in rs if r), key=lambda r: r["seed"])
def t(v):
    return "-" if v is None else f"{v/1000:.2f} s"
print("#### Full restart: a whole site power-cycles\n")
print("Every peer crashes within 1 s, then restarts from what it persisted")
print("(`Peer::resume`: its last 1 s snapshot before the crash, desired state as of")
print("the crash; next incarnation; **no `--join` seed**) at a random moment within")
print("30 s, in random order. *survive*: only the peer processes restart, containers")
print("keep running and must be adopted; *die*: every container dies with the power.")
print("Copies are counted from the fake engines, including those of peers still down.")
print("Times are from the last restart, at 10 ms resolution; duplicates are replicas")
print("running more than once at one instant; a duplicate start *over a down engine*")
print("is a copy started while the only other copy ran on a peer that had not")
print("restarted yet. *converged*: at the end exactly N run, every peer agreeing and")
print("seeing every other, and at no time did a handover stop a replica before its")
print("successor ran it.\n")
print(f"Workload: one RC per peer x {replicas} replicas.\n")
print("| peers | engines | runs | converged | peak duplicates (max / median) | longest duplicate (max) | peak missing (max) | after the last start: peak duplicates / missing (max) | all see all (max) | exactly N (max / median) | graces ended with members missing (median) | handover breaks (max) | wall per run |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for peers in sizes:
    for engines in ["survive", "die"]:
        rs = runs(peers, engines)
        if not rs:
            print(f"| {peers} | {engines} | 0 | | | | | | | | | | |"); continue
        conv = sum(1 for r in rs if r["rc_converged"])
        bad = [r["seed"] for r in rs if not r["rc_converged"]]
        col = lambda k: [r[k] for r in rs if r.get(k) is not None]
        med = lambda k: statistics.median(col(k)) if col(k) else None
        mx = lambda k: max(col(k)) if col(k) else None
        exact_missing = sum(1 for r in rs if r.get("exact_ms") is None)
        print(f"| {peers} | {engines} | {len(rs)} | {conv}/{len(rs)}{' (not: seeds '+str(bad)+')' if bad else ''} | "
              f"{mx('peak_duplicates')} / {med('peak_duplicates'):.0f} | {t(mx('longest_duplicate_ms'))} | {mx('peak_missing')} | "
              f"{mx('peak_duplicates_after_last_start')} / {mx('peak_missing_after_last_start')} | {t(mx('all_see_all_ms'))} | "
              f"{t(mx('exact_ms'))} / {t(med('exact_ms'))}{' ('+str(exact_missing)+' never)' if exact_missing else ''} | "
              f"{med('grace_ended_missing'):.0f} of {peers} | {mx('handover_breaks')} | "
              f"{sum(r['wall_ms'] for r in rs)/len(rs)/1000:.1f} s |")
print(f"\nCommand: `scripts/bench-restart.sh` (each run: `target/release/shoal-sim --scenario full-restart "
      f"--engines survive|die --peers P --rcs P --replicas {replicas} --seed N --json`)\n")
big = sizes[0]
for engines in ["survive", "die"]:
    rs = runs(big, engines)
    print(f"##### {big} peers, engines {engines}\n")
    print("| seed | converged | peak duplicates (live peers) | longest duplicate | duplicate replica-s | peak missing | after the last start: peak duplicates / missing | all see all after last start | exactly N after last start | graces ended with members missing | duplicate starts (over a down engine) | container starts | handover breaks |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rs:
        print(f"| {r['seed']} | {r['rc_converged']} | {r['peak_duplicates']} ({r['peak_duplicates_live']}) | "
              f"{t(r['longest_duplicate_ms'])} | {r['duplicate_replica_s']:.0f} | {r['peak_missing']} | "
              f"{r['peak_duplicates_after_last_start']} / {r['peak_missing_after_last_start']} | {t(r['all_see_all_ms'])} | "
              f"{t(r['exact_ms'])} | {r['grace_ended_missing']} | {r['duplicate_starts']} ({r['duplicate_starts_over_down']}) | "
              f"{r['container_starts']} | {r['handover_breaks']} |")
    print()
PY
