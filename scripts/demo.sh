#!/usr/bin/env bash
# The lab demo: an emulated VPC with two nodes and two tenants, real pods through the real CNI
# binary, connectivity measured with real packets. Everything stays in the lab's namespaces.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
  echo "the lab builds network namespaces: run as root" >&2
  exit 1
fi
scripts/install-deps.sh
cargo build --release --workspace --bins
exec target/release/tandem-lab demo "$@"
