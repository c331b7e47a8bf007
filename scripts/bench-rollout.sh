#!/usr/bin/env bash
# Rolling-update benchmark (issue #12): 10 replicas of shoal-test/hello
# 1.0 -> 1.1 one at a time, Shoal (surge with readiness, and in place)
# against Docker Swarm's `service update --update-parallelism 1`, in one
# run, under a 100 requests/s client. tests/bench_rollout.rs measures;
# this script starts and removes Swarm's engine around it. Prints one
# Markdown section ("### Rolling update: ...") to stdout; progress goes to
# stderr. Figures are printed, not asserted. Takes ~5 min after the build.
#
#   scripts/bench-rollout.sh > /tmp/rollout.md
#   PROFILE=release scripts/bench-rollout.sh    # release build (default debug)
#
# Swarm runs on a dedicated dockerd, never the machine's: its own data root,
# socket and cgroup parent under $DIR, in a network namespace of its own
# ($NS), so the iptables rules, bridges and ingress network Swarm makes stay
# there; a veth pair (10.108.250.1/30 here, .2 there) is its only link. The
# namespace has no route out: a task's image pull attempt fails at once and
# the engine's own copy of the test image is used (nothing is pulled).
# Shoal's peers use 127.0.108.x and engines with bridges shoal108nI.
#
# Needs root, docker.io, iproute2, busybox-static (test images).
set -euo pipefail
cd "$(dirname "$0")/.."
PROFILE=${PROFILE:-debug}
# Fixed, not configurable: cleanup (as root) removes it and kills what runs
# from it.
DIR=/tmp/shoal-rolloutbench-swarm
NS=shoal-rolloutbench
CGROUP=shoal-rolloutbench-swarm
VETH=rbswarm0      # host side; rbswarm1 in the namespace
ALIAS=shoal-rolloutbench
HOST_ADDR=10.108.250.1
SWARM_ADDR=10.108.250.2
SWARM_HOST=unix://$DIR/run/docker.sock

die() { echo "bench-rollout: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root (a dockerd and a network namespace for Swarm)"

# Everything of the Swarm engine, also what a killed earlier run left.
stop_swarm_engine() {
  local pid pids m
  pid=$(cat "$DIR/run/docker.pid" 2>/dev/null || true)
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    docker -H "$SWARM_HOST" swarm leave --force >/dev/null 2>&1 || true
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  fi
  # Left-overs: the engine's own programs naming $DIR (dockerd,
  # containerd, shims; not a reader of its log) and every process in the
  # engine's cgroup.
  for _ in $(seq 20); do
    pids=$( { ps -eo pid=,args= | awk -v d="$DIR/" 'index($0, d) && $2 ~ /(dockerd|containerd)/ { print $1 }'
              cat /sys/fs/cgroup/*/"$CGROUP"/cgroup.procs /sys/fs/cgroup/*/"$CGROUP"/*/cgroup.procs 2>/dev/null
            } | grep -vx "$$" | sort -u || true)
    [ -z "$pids" ] && break
    kill -KILL $pids 2>/dev/null || true
    sleep 0.1
  done
  { grep -F " $DIR/" /proc/mounts || true; } | awk '{ print $2 }' | sort -r | while read -r m; do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
  done
  for cg in /sys/fs/cgroup/*/"$CGROUP"; do
    [ -d "$cg" ] && find "$cg" -depth -type d -exec rmdir {} + 2>/dev/null || true
  done
  ip netns del "$NS" 2>/dev/null || true
  # The veth goes with the namespace; only ours (by alias) is removed here.
  if [ -e "/sys/class/net/$VETH" ] && [ "$(cat "/sys/class/net/$VETH/ifalias")" = "$ALIAS" ]; then
    ip link del "$VETH" 2>/dev/null || true
  fi
  rm -rf "$DIR"
}

start_swarm_engine() {
  # Called in a condition, where `set -e` does not hold: each step says.
  [ ! -e "/sys/class/net/$VETH" ] || { echo "interface $VETH exists and is not ours"; return 1; }
  mkdir -p "$DIR/data" "$DIR/run" && echo '{}' >"$DIR/daemon.json" || return 1
  ip netns add "$NS" || return 1
  ip link add "$VETH" type veth peer name rbswarm1 || return 1
  ip link set "$VETH" alias "$ALIAS" || return 1
  ip link set rbswarm1 netns "$NS" || return 1
  ip addr add "$HOST_ADDR/30" dev "$VETH" && ip link set "$VETH" up || return 1
  ip netns exec "$NS" ip addr add "$SWARM_ADDR/30" dev rbswarm1 || return 1
  ip netns exec "$NS" ip link set rbswarm1 up || return 1
  ip netns exec "$NS" ip link set lo up || return 1
  # nsenter --net, not `ip netns exec`: that one remounts /sys, hiding the
  # cgroup mounts dockerd needs. No default bridge (services do not use it).
  setsid nsenter --net="/var/run/netns/$NS" dockerd --config-file "$DIR/daemon.json" \
    --data-root "$DIR/data" --exec-root "$DIR/run/exec" --pidfile "$DIR/run/docker.pid" \
    --host "$SWARM_HOST" --storage-driver "${SHOAL_TEST_STORAGE_DRIVER:-overlay2}" \
    --bridge none --cgroup-parent "/$CGROUP" \
    --containerd-namespace "$NS" --containerd-plugins-namespace "$NS-plugins" </dev/null >>"$DIR/dockerd.log" 2>&1 &
  disown
  for _ in $(seq 300); do docker -H "$SWARM_HOST" version >/dev/null 2>&1 && break; sleep 0.2; done
  docker -H "$SWARM_HOST" version >/dev/null 2>&1 ||
    { tail -5 "$DIR/dockerd.log"; echo "its dockerd did not come up"; return 1; }
  docker save shoal-test/hello:1.0 shoal-test/hello:1.1 | docker -H "$SWARM_HOST" load -q >/dev/null || return 1
}

OUT=$(mktemp)
trap 'stop_swarm_engine; rm -f "$OUT"' EXIT
trap 'exit 130' INT TERM
bash scripts/test-images.sh >&2
stop_swarm_engine
if [ "$PROFILE" = release ]; then
  CARGO_PROFILE=(--release)
else
  CARGO_PROFILE=()
fi
cargo build -q "${CARGO_PROFILE[@]}" -p shoal --bin shoal >&2

SWARM_ENV=(SHOAL_BENCH_SWARM_HOST="$SWARM_HOST" SHOAL_BENCH_SWARM_ADDR="$SWARM_ADDR")
if ! why=$(start_swarm_engine 2>&1); then
  echo "bench-rollout: Swarm's engine did not start: $why" >&2
  SWARM_ENV=(SHOAL_BENCH_SWARM_SKIP="its dedicated engine did not start ($(tail -1 <<<"$why"))")
fi
echo "bench-rollout: load average $(cut -d' ' -f1-3 /proc/loadavg) before" >&2
env "${SWARM_ENV[@]}" SHOAL_BENCH_OUT="$OUT" cargo test -q "${CARGO_PROFILE[@]}" -p shoal \
  --test bench_rollout -- --ignored --nocapture --test-threads 1 >&2
[ -s "$OUT" ] || die "the benchmark wrote no figures"
cat "$OUT"
