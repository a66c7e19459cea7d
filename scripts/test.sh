#!/usr/bin/env bash
# The whole test suite: installs the tools the tests use, then format, lint,
# unit, property, end-to-end and crash tests (with failpoints compiled in).
# Tests that need root (owners, device nodes, tmpfs for the full-disk test,
# running as another user) expect root, as CI runs; they fail, never skip.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v setfacl >/dev/null || need+=(acl)
command -v strace >/dev/null || need+=(strace)
command -v setpriv >/dev/null || need+=(util-linux)
command -v mkfifo >/dev/null || need+=(coreutils)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing test tools: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q "${need[@]}" >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q "${need[@]}" >/dev/null; }
fi

echo "== cargo fmt --check"
cargo fmt --all --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --features ironvault/failpoints -- -D warnings
echo "== cargo test (with failpoints)"
cargo test --workspace --features ironvault/failpoints "$@"
echo "== all tests passed"
