#!/usr/bin/env bash
# One Docker engine per simulated machine, for benchmarks and demos: the
# same engines the multi-peer tests start (tests/cluster_support/engines.rs
# documents each flag; keep the two in step). Needs root.
#
#   scripts/node-engines.sh up N      start engines 0..N-1 with the test images
#   scripts/node-engines.sh host I    print engine I's address (for DOCKER_HOST)
#   scripts/node-engines.sh kill I    power cut: engine I and its containers die
#   scripts/node-engines.sh boot I    engine I comes back on the same data root
#   scripts/node-engines.sh down      remove every engine, bridge, mount and cgroup
#
# A peer on machine I:
#   DOCKER_HOST=$(scripts/node-engines.sh host I) shoal up --listen 127.0.0.1I:7946 ...
#
# Engine I: dockerd with an empty --config-file, data root $DIR/engineI/data,
# exec root, pidfile and socket in $DIR/engineI/run, bridge shoalengI
# (10.200.I.1/24, alias shoal-engines-nI), --iptables=false (ports go through
# the userland proxy), cgroup parent /shoal-engines-nI, storage driver
# $SHOAL_TEST_STORAGE_DRIVER (default overlay2), no live restore.
set -euo pipefail
cd "$(dirname "$0")/.."

DIR=${SHOAL_ENGINES_DIR:-/tmp/shoal-engines}
DRIVER=${SHOAL_TEST_STORAGE_DRIVER:-overlay2}

die() { echo "node-engines: $*" >&2; exit 1; }
tag() { echo "shoal-engines-n$1"; }
bridge() { echo "shoaleng$1"; }
host() { echo "unix://$DIR/engine$1/run/docker.sock"; }

start_dockerd() {
  local i=$1 d="$DIR/engine$1"
  rm -rf "$d/run" && mkdir -p "$d/run" "$d/data"
  [ -f "$d/daemon.json" ] || echo '{}' >"$d/daemon.json"
  setsid dockerd --config-file "$d/daemon.json" --data-root "$d/data" \
    --exec-root "$d/run/exec" --pidfile "$d/run/docker.pid" --host "$(host "$i")" \
    --storage-driver "$DRIVER" --bridge "$(bridge "$i")" --iptables=false --ip-masq=false \
    --cgroup-parent "/$(tag "$i")" </dev/null >>"$d/dockerd.log" 2>&1 &
  disown
}

wait_ready() {
  local i=$1
  for _ in $(seq 1 600); do
    docker -H "$(host "$i")" version >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  tail -20 "$DIR/engine$i/dockerd.log" >&2
  die "engine $i did not come up ($DRIVER storage driver; SHOAL_TEST_STORAGE_DRIVER=vfs works on any file system)"
}

make_bridge() {
  local i=$1 br
  br=$(bridge "$i")
  if [ -e "/sys/class/net/$br" ]; then
    [ "$(cat "/sys/class/net/$br/ifalias")" = "$(tag "$i")" ] ||
      die "interface $br exists and is not ours"
    return 0
  fi
  ip link add "$br" type bridge
  ip link set dev "$br" alias "$(tag "$i")"
  ip addr add "10.200.$i.1/24" dev "$br"
  ip link set dev "$br" up
}

# Pids of engine I: its programs (their command lines name its directory),
# everything below them, and every process in its cgroup. Zombies left out.
engine_pids() {
  local i=$1 cg
  {
    ps -eo pid=,ppid=,stat=,comm=,args= | awk -v d="$DIR/engine$i/" '
      $3 ~ /^Z/ { next }
      { parent[$1] = $2
        if ($4 ~ /^(dockerd|containerd|docker-proxy|fuse-overlayfs|runc)/ && index($0, d)) keep[$1] = 1 }
      END {
        do { changed = 0
             for (p in parent) if (!(p in keep) && (parent[p] in keep)) { keep[p] = 1; changed = 1 }
        } while (changed)
        for (p in keep) print p
      }'
    for cg in /sys/fs/cgroup/*/"$(tag "$i")" /sys/fs/cgroup/"$(tag "$i")"; do
      [ -d "$cg" ] && find "$cg" -name cgroup.procs -exec cat {} + 2>/dev/null
    done
  } | grep -E '^[0-9]+$' | sort -u || true
}

power_off() {
  local i=$1 d="$DIR/engine$1" pids pid args
  for _ in $(seq 1 100); do
    pids=$(engine_pids "$i")
    [ -z "$pids" ] && break
    for pid in $pids; do
      # A shim's socket (/run/containerd/s/sha256(address/namespace/id)) outlives it.
      args=$(tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null || true)
      if grep -q '^/usr/bin/containerd-shim\|^containerd-shim' <<<"$args"; then
        local id address ns
        id=$(grep -A1 -x -- -id <<<"$args" | tail -1)
        address=$(grep -A1 -x -- -address <<<"$args" | tail -1)
        ns=$(grep -A1 -x -- -namespace <<<"$args" | tail -1)
        rm -f "/run/containerd/s/$(printf '%s' "$address/$ns/$id" | sha256sum | cut -c1-64)"
      fi
    done
    kill -KILL $pids 2>/dev/null || true
    sleep 0.05
  done
  grep -F " $d/" /proc/mounts | awk '{print $2}' | sort -r | while read -r m; do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
  done
  for cg in /sys/fs/cgroup/*/"$(tag "$i")" /sys/fs/cgroup/"$(tag "$i")"; do
    [ -d "$cg" ] && find "$cg" -mindepth 1 -depth -type d -exec rmdir {} + 2>/dev/null || true
  done
  rm -rf "$d/run"
}

cmd_up() {
  local n=${1:?usage: node-engines.sh up N} i
  [ "$(id -u)" = 0 ] || die "needs root (bridges, dockerd)"
  bash scripts/test-images.sh >/dev/null
  mkdir -p "$DIR"
  local tar="$DIR/test-images.tar"
  docker save -o "$tar" $(docker images --filter label=io.shoal.test=1 --format '{{.Repository}}:{{.Tag}}')
  for i in $(seq 0 $((n - 1))); do
    make_bridge "$i"
    [ -S "$DIR/engine$i/run/docker.sock" ] && docker -H "$(host "$i")" version >/dev/null 2>&1 && continue
    start_dockerd "$i"
  done
  for i in $(seq 0 $((n - 1))); do wait_ready "$i"; done
  local loads=()
  for i in $(seq 0 $((n - 1))); do
    docker -H "$(host "$i")" load -q -i "$tar" >/dev/null &
    loads+=($!)
  done
  for i in "${loads[@]}"; do wait "$i" || die "docker load failed"; done
  rm -f "$tar"
  for i in $(seq 0 $((n - 1))); do
    echo "engine$i $(host "$i") bridge $(bridge "$i") 10.200.$i.1/24 $DRIVER"
  done
}

cmd_down() {
  local d i
  for d in "$DIR"/engine*; do
    [ -d "$d" ] || continue
    i=${d##*engine}
    power_off "$i"
    for cg in /sys/fs/cgroup/*/"$(tag "$i")" /sys/fs/cgroup/"$(tag "$i")"; do
      [ -d "$cg" ] && rmdir "$cg" 2>/dev/null || true
    done
    [ -e "/sys/class/net/$(bridge "$i")" ] &&
      [ "$(cat "/sys/class/net/$(bridge "$i")/ifalias")" = "$(tag "$i")" ] &&
      ip link del "$(bridge "$i")"
  done
  rm -rf "$DIR"
}

case "${1:-}" in
  up) cmd_up "${2:-}" ;;
  down) cmd_down ;;
  host) host "${2:?usage: node-engines.sh host I}" ;;
  kill) power_off "${2:?usage: node-engines.sh kill I}" ;;
  boot)
    i=${2:?usage: node-engines.sh boot I}
    [ -d "$DIR/engine$i" ] || die "no engine $i (node-engines.sh up N first)"
    make_bridge "$i" && start_dockerd "$i" && wait_ready "$i" && host "$i"
    ;;
  *) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
