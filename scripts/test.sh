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
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast
else
  cargo test --workspace --no-fail-fast
fi
# Nothing may be left behind by the lab tests.
leftover=$(ip netns list | awk '{print $1}' | grep -E '^tl[0-9a-z]+-' || true)
if [ -n "$leftover" ]; then
  echo "tests left namespaces behind: $leftover" >&2
  exit 1
fi
