#!/usr/bin/env bash
# A peer joins a cluster whose state is far beyond one network message:
# for each size in SIZES (RCs of about 4 KB each, replicas 0), one real
# `shoal up` seed is loaded through its API, then a fresh peer joins it;
# prints the time until the joiner lists every RC and its peak RSS
# (tests/cluster_big_join.rs, release build). Prints one Markdown section
# to stdout; cargo and progress go to stderr. Figures are printed, not
# asserted. Loading dominates: about 15 ms per RC (each write is durable).
#
#   scripts/bench-big-join.sh > /tmp/big-join.md
#   SIZES="2500 5000" scripts/bench-big-join.sh
set -euo pipefail
cd "$(dirname "$0")/.."
SIZES=${SIZES:-"1250 2500 5000 10000"}

rows=""
for n in $SIZES; do
  echo "bench-big-join: $n RCs" >&2
  out=$(SHOAL_BIG_JOIN_RCS=$n cargo test --release -q -p shoal --features shell \
    --test cluster_big_join -- --nocapture 2>&1) || { echo "$out" >&2; exit 1; }
  state=$(sed -n 's/.*seed state file \([0-9.]*\) MiB.*/\1/p' <<<"$out")
  join=$(sed -n 's/.*RCs \([0-9.]*\) s after it started.*/\1/p' <<<"$out")
  rss=$(sed -n 's/.*peak RSS \([0-9]*\) MiB.*/\1/p' <<<"$out")
  rows+="| $n | $state MiB | $join s | $rss MiB |"$'\n'
done

cat <<MD
### A peer joins a large cluster (real peers)

One seed \`shoal up\` on 127.0.46.11 holds N RCs of about 4 KB each
(replicas 0: the state, not the pods, is measured); a fresh peer joins it.
The state moves as pieces of about 1 MiB on one QUIC stream (one network
limit: 8 MiB per message). *Join* is from spawning the joiner until its API
lists all N RCs; *peak RSS* is the joiner's \`VmHWM\`.
(\`scripts/bench-big-join.sh\`, \`tests/cluster_big_join.rs\`.)

| RCs | seed state file | join (time to a complete state) | joiner peak RSS |
|---|---|---|---|
$rows
MD
