#!/usr/bin/env bash
# Builds shoal_VERSION_ARCH.deb: /usr/bin/shoal, the systemd unit
# (/usr/lib/systemd/system/shoal.service) and a default
# /etc/shoal/shoal.yaml (a conffile: an edited one survives upgrades).
# Needs only dpkg-deb; the binary is one already built.
#
#   scripts/build-deb.sh [--binary PATH] [--out DIR] [--fast]
#
#   --binary PATH  the shoal binary to package [default: target/release/shoal,
#                  built with `cargo build --release` if missing]
#   --out DIR      where the .deb goes [default: target/debian]
#   --fast         gzip -1 instead of xz (tests: seconds, a larger file)
#
# Install: dpkg -i shoal_*.deb, then set /etc/shoal/shoal.yaml and
# `systemctl enable --now shoal`. Remove: dpkg -r shoal (dpkg -P also
# drops /etc/shoal and /var/lib/shoal, the node's identity and state).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

binary="" out="$root/target/debian" compress=(-Zxz)
while [ $# -gt 0 ]; do
  case "$1" in
    --binary) binary=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --fast) compress=(-Zgzip -z1); shift ;;
    *) echo "build-deb.sh: unknown argument $1 (see the top of $0)" >&2; exit 2 ;;
  esac
done
if [ -z "$binary" ]; then
  binary="${CARGO_TARGET_DIR:-$root/target}/release/shoal"
  [ -x "$binary" ] || (cd "$root" && cargo build --release --bin shoal)
fi
[ -x "$binary" ] || { echo "build-deb.sh: $binary is not an executable shoal binary" >&2; exit 1; }
command -v dpkg-deb >/dev/null || { echo "build-deb.sh: needs dpkg-deb (Debian's dpkg)" >&2; exit 1; }

# The version the binary reports is the version packaged ("shoal 0.1.0").
version=$("$binary" --version | awk '{print $2}')
arch=$(dpkg --print-architecture)
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
chmod 0755 "$stage" # the package's ./ (mktemp makes it owner-only)

install -D -m 0755 "$binary" "$stage/usr/bin/shoal"
# Debug info is most of a build's size; the package does without.
if command -v strip >/dev/null; then strip --strip-debug "$stage/usr/bin/shoal"; fi
install -D -m 0644 "$root/packaging/shoal.service" "$stage/usr/lib/systemd/system/shoal.service"
# Owner-only: it is where the join token goes.
install -D -m 0600 "$root/packaging/shoal.yaml" "$stage/etc/shoal/shoal.yaml"
install -D -m 0644 "$root/README.md" "$stage/usr/share/doc/shoal/README.md"

mkdir -p "$stage/DEBIAN"
cat >"$stage/DEBIAN/control" <<EOF
Package: shoal
Version: $version
Architecture: $arch
Maintainer: Shoal developers <shoal@example.invalid>
Depends: libc6, libgcc-s1
Recommends: docker.io | docker-ce
Section: admin
Priority: optional
Installed-Size: $(du -sk "$stage" | cut -f1)
Description: container orchestrator with no master
 Every machine runs the same peer: SWIM gossip for membership, CRDT
 desired state over QUIC, deterministic placement, containers on the
 local Docker engine. Settings: /etc/shoal/shoal.yaml; start at boot
 with: systemctl enable --now shoal
EOF
echo /etc/shoal/shoal.yaml >"$stage/DEBIAN/conffiles"

# systemd learns of the unit (only where systemd runs: not in a container
# or a chroot); the peer is started by the admin once the config is set.
cat >"$stage/DEBIAN/postinst" <<'EOF'
#!/bin/sh
set -e
if [ "$1" = configure ] && [ -d /run/systemd/system ]; then
  systemctl daemon-reload || true
  echo "shoal: set /etc/shoal/shoal.yaml, then: systemctl enable --now shoal"
fi
EOF
cat >"$stage/DEBIAN/prerm" <<'EOF'
#!/bin/sh
set -e
if [ "$1" = remove ] && [ -d /run/systemd/system ]; then
  systemctl disable --now shoal.service || true
fi
EOF
cat >"$stage/DEBIAN/postrm" <<'EOF'
#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload || true
fi
if [ "$1" = purge ]; then
  rm -rf /var/lib/shoal
  rmdir /etc/shoal 2>/dev/null || true
fi
EOF
chmod 0755 "$stage/DEBIAN/postinst" "$stage/DEBIAN/prerm" "$stage/DEBIAN/postrm"

mkdir -p "$out"
deb="$out/shoal_${version}_${arch}.deb"
dpkg-deb --root-owner-group "${compress[@]}" --build "$stage" "$deb" >/dev/null
echo "$deb"
