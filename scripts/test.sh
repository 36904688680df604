#!/usr/bin/env bash
# Every test: formatting, lints, unit tests and the root-only lab tests in netns-tests/.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
  echo "the lab tests build network namespaces: run as root" >&2
  exit 1
fi
scripts/install-deps.sh

cargo fmt --all --check
cargo clippy --workspace --all-targets -- -D warnings
cargo build --workspace --all-targets
# One test at a time: the lab tests measure timings (policy updates within 100 ms, burst
# latencies) and share two cores; run side by side they would measure each other.
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast --test-threads 1
else
  cargo test --workspace --no-fail-fast -- --test-threads 1
fi
# Nothing may be left behind by the lab tests.
leftover=$(ip netns list | awk '{print $1}' | grep -E '^tl[0-9a-z]+-' || true)
if [ -n "$leftover" ]; then
  echo "tests left namespaces behind: $leftover" >&2
  exit 1
fi
mounts=$(awk '$3 == "bpf" && $2 ~ /^\/run\/tandem/ {print $2}' /proc/mounts)
if [ -n "$mounts" ]; then
  echo "tests left bpffs mounts behind: $mounts" >&2
  exit 1
fi
