#!/usr/bin/env bash
# Image transfers between real peers, one Docker engine per machine
# (tests/bench_images.rs). Builds shoal-bench/big:1.0 (the hello test image
# plus ~200 MB of random data) on the machine's engine if missing. Prints one
# Markdown section to stdout; cargo's output and progress go to stderr.
# Takes ~3-6 min; needs what the tests need (root, docker.io, iproute2).
#
#   scripts/bench-images.sh > /tmp/images.md
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/test-images.sh >&2
BIG=shoal-bench/big:1.0
if ! docker image inspect "$BIG" >/dev/null 2>&1; then
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  cid=$(docker create shoal-test/hello:1.0)
  docker export "$cid" >"$work/rootfs.tar"
  docker rm "$cid" >/dev/null
  mkdir -p "$work/extra/data"
  head -c 200000000 /dev/urandom >"$work/extra/data/blob"
  tar -rf "$work/rootfs.tar" -C "$work/extra" data
  # No io.shoal.test label: the test harness loads those into every engine.
  docker import --change 'CMD ["/init"]' --change 'EXPOSE 80/tcp' --change 'ENV PATH=/bin' \
    --change 'LABEL io.shoal.bench=1' "$work/rootfs.tar" "$BIG" >/dev/null
  rm -rf "$work"
  trap - EXIT
  echo "bench-images: built $BIG" >&2
fi

cargo build --release -q -p shoal >&2
OUT=$(mktemp)
trap 'rm -f "$OUT"' EXIT
SHOAL_BENCH_OUT="$OUT" cargo test --release -q -p shoal --all-features --test bench_images -- image_transfer_figures \
  --ignored --nocapture --test-threads 1 >&2
[ -s "$OUT" ] || { echo "bench-images: the benchmark wrote no figures" >&2; exit 1; }
cat "$OUT"
