#!/usr/bin/env bash
# The `fuzz` section of BENCHMARKS.md: every decoder's fuzz target
# (src/fuzzing.rs) under AFL++ for FUZZ_SECONDS each (default 180), one at a
# time and niced, from the seed corpora the targets make themselves.
# Prints per target the executions, their rate, the corpus AFL++ grew, the
# edges covered and the crashes and hangs found; crash inputs stay under
# $FUZZ_DIR/out/TARGET/default/crashes (fix each, then copy it to
# fuzz/regressions/TARGET/ so that `cargo test` replays it).
#
#   FUZZ_SECONDS=600 scripts/bench-fuzz.sh          # the issue's 10 minutes
#   FUZZ_TARGETS="manifest kube_body" scripts/bench-fuzz.sh
#
# Needs cargo-afl (`cargo install cargo-afl`, which builds AFL++ from its
# bundled source on the stable toolchain).
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${FUZZ_SECONDS:-180}
WORK=${FUZZ_DIR:-/tmp/shoal-fuzz}
# Instrumented: its own target directory, so the normal build stays as is.
export CARGO_TARGET_DIR=${FUZZ_TARGET_DIR:-$PWD/target/afl}
command -v cargo-afl >/dev/null || cargo install cargo-afl >&2
cargo afl build -q -p shoal-fuzz --bin fuzz >&2
BIN=$CARGO_TARGET_DIR/debug/fuzz
TARGETS=${FUZZ_TARGETS:-$({ "$BIN" 2>&1 || true; } | sed -n "s/.*targets: //p" | tr -d ,)}

rm -rf "$WORK" && mkdir -p "$WORK/out"
"$BIN" seeds "$WORK/seeds" >&2

# No core dumps to wait for, no CPU to pin (the machine is shared), no UI.
export AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_NO_AFFINITY=1 AFL_NO_UI=1

stat() { sed -n "s/^$1 *: *//p" "$2"; }

echo "## Fuzzing"
echo
echo "Every decoder of outside bytes has a target in \`src/fuzzing.rs\`, fed to the real code"
echo "path (a peer core for datagrams and sync messages, the data-dir loader, the API's"
echo "manifest and patch readers); \`shoal-fuzz\` fails any input that panics or holds more"
echo "than 32 MiB + 64 x its length at its peak, and no single allocation may pass 256 MiB."
echo "AFL++ (cargo-afl $(cargo afl --version 2>/dev/null | awk '{print $2}'), stable toolchain, debug build with"
echo "coverage instrumentation), ${SECS} s per target, one at a time, \`nice -n 19\`, from the"
echo "seeds the targets make (\`scripts/bench-fuzz.sh\`). \`cargo test -p shoal-fuzz\` replays"
echo "the seeds, every crash kept in \`fuzz/regressions/\` and 300 mutations per target."
echo
echo "| target | executions | per second | corpus (seeds) | edges covered | crashes | hangs |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
for t in $TARGETS; do
  echo "bench-fuzz: $t for ${SECS}s" >&2
  seeds=$(find "$WORK/seeds/$t" -type f | wc -l)
  nice -n 19 cargo afl fuzz -i "$WORK/seeds/$t" -o "$WORK/out/$t" -V "$SECS" -- "$BIN" "$t" \
    >"$WORK/$t.log" 2>&1 || { echo "bench-fuzz: afl-fuzz failed on $t, see $WORK/$t.log" >&2; tail -20 "$WORK/$t.log" >&2; }
  s=$WORK/out/$t/default/fuzzer_stats
  if [ -f "$s" ]; then
    echo "| $t | $(stat execs_done "$s") | $(stat execs_per_sec "$s") | $(stat corpus_count "$s") ($seeds) |" \
         "$(stat edges_found "$s") of $(stat total_edges "$s") | $(stat saved_crashes "$s") | $(stat saved_hangs "$s") |"
  else
    echo "| $t | did not run | | | | | |"
  fi
done
