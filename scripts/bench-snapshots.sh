#!/usr/bin/env bash
# API reads at 10,000 RCs × 3 replicas and 10 nodes' records: what they cost
# the task that owns the peer core, this tree against a baseline built from
# BASE in the same session (default: the commit before records were shared,
# i.e. before issue 15's snapshots, found by the change that introduced
# them). The baseline is this tree's
# benchmark (tests/bench_snapshots.rs, tests/snapshot_bench/) compiled in a
# temporary worktree of BASE with `--cfg shoal_baseline`, which swaps in the
# way BASE serves reads (a copy of the state per request, on the driver).
# Runs alternate, ROUNDS times each (default 2): the machine is shared. Prints one Markdown section
# ("### API reads at 10,000 RCs") to stdout; cargo and progress go to stderr.
# Figures are printed, not asserted. Takes ~5 min plus the first build.
#
#   scripts/bench-snapshots.sh > /tmp/snapshots.md
#   BASE=<commit> ROUNDS=3 scripts/bench-snapshots.sh
set -euo pipefail
cd "$(dirname "$0")/.."
FIRST=$(git log --reverse --format=%H -S'Arc::make_mut' -- crdt-state/src/summarized.rs | head -1)
BASE=${BASE:-$FIRST^}
ROUNDS=${ROUNDS:-2}
TMP=$(mktemp -d)
cleanup() {
  git worktree remove --force "$TMP/base" >/dev/null 2>&1 || true
  rm -rf "$TMP"
}
trap cleanup EXIT

git worktree add --detach -q "$TMP/base" "$BASE"
cp tests/bench_snapshots.rs "$TMP/base/tests/"
rm -rf "$TMP/base/tests/snapshot_bench" "$TMP/base/tests/bench_support"
cp -r tests/snapshot_bench tests/bench_support "$TMP/base/tests/"

# Builds the benchmark in $1 (extra rustc flags after it) and prints its path.
# Both trees share the target dir: their packages have different paths, so
# their artifacts do not collide, and dependencies are built once.
build() {
  local dir=$1
  shift
  (cd "$dir" && cargo rustc --release -q -p shoal --test bench_snapshots \
    --message-format=json-render-diagnostics -- "$@") |
    sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -1
}
HERE=$(build .)
THERE=$(build "$TMP/base" --cfg shoal_baseline)
[ -x "$HERE" ] && [ -x "$THERE" ] || { echo "bench-snapshots: build failed" >&2; exit 1; }

ROWS=$TMP/rows.md
: >"$ROWS"
for round in $(seq "$ROUNDS"); do
  for exe in "$THERE" "$HERE"; do
    echo "bench-snapshots: round $round, $exe" >&2
    SHOAL_BENCH_OUT=$TMP/out.md "$exe" --ignored --nocapture --test-threads 1 >&2
    grep '^|' "$TMP/out.md" >>"$ROWS"
    grep '^_' "$TMP/out.md" >>"$TMP/notes.md"
  done
done

cat <<EOF
### API reads at 10,000 RCs

One peer core with 10,000 RCs × 3 replicas declared and 10 nodes' records
(30,000 pod statuses), behind the real axum router, on a driver task shaped
like \`shell/driver.rs\`; the other 9 nodes are stand-ins (real peer cores
with an empty state, see \`tests/snapshot_bench/\`) that answer its SWIM and
push their records when one of their pods changes (every 100 ms, one pod's
readiness flips somewhere). \`main\` is a baseline built from
$(git rev-parse --short "$BASE") in the same session; runs alternate, $ROUNDS of each.
Each way is measured for 10 s without readers, then for 20 s while one client
sends \`GET /api/v1/pods\` (30,000 pods, ~7 MB of JSON) 50 times a second, each
after the previous answer. *Driver* figures are peer 0's task: time it spent
serving snapshot requests (per request, and all snapshot work per second of
wall time), and how late a 10 ms tick in its select fired (loop latency) and
how late the peer's own timers (SWIM probes, sync, reconcile) fired. Besides
snapshots, this branch builds list views on a blocking thread
(\`api/render.rs\`), where main builds them on the runtime's workers: both
show in the loop latency with readers.

| serving | readers | snapshot requests reaching the driver (/s) | driver time per request p50 / p99 | snapshots built (/s) | driver time on snapshots (ms per s) | loop latency p50 / p99 · max | peer timers late p99 · max | GET /pods p50 / p99 (achieved rate) | members declared down |
|---|---|---:|---:|---:|---:|---:|---:|---:|---:|
EOF
cat "$ROWS"
echo
sort -u "$TMP/notes.md"
echo
echo "Command: \`scripts/bench-snapshots.sh\` (\`tests/bench_snapshots.rs\`, ROUNDS=$ROUNDS)."
