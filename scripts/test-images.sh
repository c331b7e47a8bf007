#!/usr/bin/env bash
# Builds the test images Shoal's real tests and benchmarks run, without any
# registry: `docker import` of a rootfs made from Debian's busybox-static.
#
#   shoal-test/hello:1.0  busybox httpd on port 80 answering "hello from 1.0"
#   shoal-test/hello:1.1  same, answering "hello from 1.1"
#
# PID 1 is a tiny shell init that traps SIGTERM, so `docker stop` returns at
# once instead of waiting out the grace period (busybox as PID 1 ignores
# SIGTERM). Images carry `io.shoal.test=1` and a content hash label; a run
# whose inputs did not change skips the import, so the script is idempotent
# and quick. It never pulls.
set -euo pipefail

VERSIONS=(1.0 1.1)
REPO=shoal-test/hello

# A static busybox: the rootfs has no libc to link against.
busybox_is_static() {
  [ -x /bin/busybox ] && ! ldd /bin/busybox >/dev/null 2>&1
}
if ! busybox_is_static; then
  echo "test-images: installing busybox-static" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq busybox-static >/dev/null 2>&1 ||
    { apt-get update -qq && apt-get install -y -qq busybox-static >/dev/null; }
fi
busybox_is_static || { echo "test-images: /bin/busybox is not a static binary" >&2; exit 1; }

docker info >/dev/null 2>&1 || { echo "test-images: cannot reach the Docker engine (DOCKER_HOST=${DOCKER_HOST:-default})" >&2; exit 1; }

INIT='#!/bin/sh
# PID 1 of the test image: serve /www, exit 0 on SIGTERM/SIGINT.
trap "exit 0" TERM INT
httpd -f -p 80 -h /www &
wait
'

for version in "${VERSIONS[@]}"; do
  image="$REPO:$version"
  body="hello from $version"
  hash=$( { sha256sum /bin/busybox; printf '%s' "$INIT"; printf '%s' "$body"; echo "layout-v1"; } | sha256sum | cut -c1-32)
  current=$(docker image inspect --format '{{ index .Config.Labels "io.shoal.test.hash" }}' "$image" 2>/dev/null || true)
  if [ "$current" = "$hash" ]; then
    echo "test-images: $image up to date"
    continue
  fi

  root=$(mktemp -d)
  trap 'rm -rf "$root"' EXIT
  mkdir -p "$root/bin" "$root/www" "$root/tmp" "$root/etc"
  cp /bin/busybox "$root/bin/busybox"
  for applet in $("$root/bin/busybox" --list); do
    [ "$applet" = busybox ] || ln -sf busybox "$root/bin/$applet"
  done
  printf '%s' "$INIT" >"$root/init"
  chmod 755 "$root/init"
  printf '%s\n' "$body" >"$root/www/index.html"
  echo 'root:x:0:0:root:/:/bin/sh' >"$root/etc/passwd"
  echo 'root:x:0:' >"$root/etc/group"

  tar -C "$root" -c . | docker import \
    --change 'CMD ["/init"]' \
    --change 'EXPOSE 80/tcp' \
    --change 'ENV PATH=/bin' \
    --change 'LABEL io.shoal.test=1' \
    --change "LABEL io.shoal.test.hash=$hash" \
    - "$image" >/dev/null
  rm -rf "$root"
  trap - EXIT
  echo "test-images: built $image"
done
