#!/usr/bin/env bash
# The test command: build the local test images (no registry), then every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/test-images.sh
cargo test --workspace --all-features "$@"
