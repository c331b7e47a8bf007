#!/usr/bin/env bash
# Cost of signed node records (issue 16): prints a Markdown section
# ("### Node identity") to stdout. Figures are printed, not asserted.
#
#   scripts/bench-identity.sh
#   SEEDS=5 PEERS=100 BASE=main scripts/bench-identity.sh
#
# 1. CPU per record to sign and to verify (ed25519, ring) and the bytes a
#    signature adds, from `examples/bench_identity.rs`.
# 2. Traffic against the tree before signing, in the same run: the
#    simulator (real peer cores) at PEERS peers, SEEDS seeds of SCENARIO,
#    built once from this tree and once from BASE (a commit; default: the
#    merge base with main), exported with `git archive` into a temporary
#    directory (no worktree of the repository is touched). BASE_TARGET
#    keeps the base build between runs.
set -euo pipefail
cd "$(dirname "$0")/.."

SEEDS=${SEEDS:-3}
PEERS=${PEERS:-100}
SCENARIO=${SCENARIO:-failover}
BASE=${BASE:-$(git merge-base HEAD main)}
BASE_TARGET=${BASE_TARGET:-/tmp/shoal-identity-base-target}
HERE_TARGET=${CARGO_TARGET_DIR:-target}

cargo build --release -q -p shoal --example bench_identity >&2
cargo build --release -q -p shoal-sim >&2
SRC=$(mktemp -d)
OUT=$(mktemp -d)
trap 'rm -rf "$SRC" "$OUT"' EXIT
git archive "$BASE" | tar -x -C "$SRC"
(cd "$SRC" && CARGO_TARGET_DIR="$BASE_TARGET" cargo build --release -q -p shoal-sim >&2)

for seed in $(seq 1 "$SEEDS"); do
  "$HERE_TARGET/release/shoal-sim" --scenario "$SCENARIO" --peers "$PEERS" --seed "$seed" --json \
    > "$OUT/signed-$seed.json" 2>/dev/null || true
  "$BASE_TARGET/release/shoal-sim" --scenario "$SCENARIO" --peers "$PEERS" --seed "$seed" --json \
    > "$OUT/base-$seed.json" 2>/dev/null || true
done

echo "### Node identity (signed node records)"
echo
echo "Per record, \`cargo run --release -p shoal --example bench_identity\`:"
echo
"$HERE_TARGET/release/examples/bench_identity"
echo
python3 - "$OUT" "$SEEDS" "$PEERS" "$SCENARIO" "$(git rev-parse --short "$BASE")" <<'PY'
import json, sys
out, seeds, peers, scenario, base = sys.argv[1:]
def load(kind, seed):
    try:
        with open(f"{out}/{kind}-{seed}.json") as f:
            return json.load(f)
    except Exception:
        return None
def find(obj, key):
    """The first value named `key` anywhere in the report."""
    if isinstance(obj, dict):
        if key in obj:
            return obj[key]
        for v in obj.values():
            r = find(v, key)
            if r is not None:
                return r
    if isinstance(obj, list):
        for v in obj:
            r = find(v, key)
            if r is not None:
                return r
    return None
keys = ["bytes_per_node_per_s", "msgs_per_node_per_s", "sync_bytes_per_node_per_s", "wall_ms"]
print(f"Simulator, `{scenario}` at {peers} peers, seeds 1..{seeds}, this tree against {base} "
      "(before signing) in the same run: means over the seeds.")
print()
print("| tree | " + " | ".join(keys) + " | runs |")
print("|---|" + "---|" * (len(keys) + 1))
for kind, label in [("base", f"{base} (unsigned)"), ("signed", "signed records")]:
    runs = [r for r in (load(kind, s) for s in range(1, int(seeds) + 1)) if r]
    cells = []
    for k in keys:
        vals = [find(r, k) for r in runs]
        vals = [v for v in vals if isinstance(v, (int, float))]
        cells.append(f"{sum(vals) / len(vals):.0f}" if vals else "n/a")
    print(f"| {label} | " + " | ".join(cells) + f" | {len(runs)} |")
PY
