#!/usr/bin/env bash
# The test command: build the local test images (no registry), then every test.
# Tests where a machine dies start one dockerd per simulated machine (root,
# docker.io and iproute2; SHOAL_TEST_STORAGE_DRIVER picks their storage driver,
# overlay2 by default; see README).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/test-images.sh
cargo test --workspace --all-features "$@"
