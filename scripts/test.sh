#!/usr/bin/env bash
# The whole test suite: installs the tools the tests use, then format, lint,
# unit, property, end-to-end and crash tests (with failpoints compiled in).
# Tests that need root (owners, device nodes, tmpfs for the full-disk test,
# running as another user) expect root, as CI runs; they fail, never skip.
# The S3 tests run against a real Garage server on 127.0.0.1, which
# scripts/s3-server.sh builds once into ~/.cache/ironvault-tools (7-17
# minutes the first time), starts here and stops at the end; the Object Lock
# tests against SeaweedFS, which scripts/s3-lock-server.sh installs from PyPI.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v setfacl >/dev/null || need+=(acl)
command -v strace >/dev/null || need+=(strace)
command -v setpriv >/dev/null || need+=(util-linux)
command -v mkfifo >/dev/null || need+=(coreutils)
command -v curl >/dev/null || need+=(curl)
command -v pgrep >/dev/null || need+=(procps)
[ -e /usr/share/zoneinfo/Europe/Berlin ] || need+=(tzdata)   # the DST schedule test
command -v socat >/dev/null || need+=(socat)
python3 -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)   # SeaweedFS from PyPI (Object Lock)
command -v openssl >/dev/null || need+=(openssl)
command -v restic >/dev/null || need+=(restic)   # forget is checked against restic's
[ -e /usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1 ] || need+=(faketime)   # hosts with wrong clocks (locks)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing test tools: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q "${need[@]}" >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q "${need[@]}" >/dev/null; }
fi

echo "== cargo fmt --check"
cargo fmt --all --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --features ironvault/failpoints -- -D warnings
echo "== S3 test server (Garage)"
scripts/s3-server.sh start
trap 'scripts/s3-server.sh stop' EXIT
# shellcheck disable=SC1090
. "$(scripts/s3-server.sh env)"
echo "== S3 test server with Object Lock (SeaweedFS)"
scripts/s3-lock-server.sh start
trap 'scripts/s3-server.sh stop; scripts/s3-lock-server.sh stop' EXIT
# shellcheck disable=SC1090
. "$(scripts/s3-lock-server.sh env)"
echo "== cargo test (with failpoints)"
cargo test --workspace --features ironvault/failpoints "$@"
echo "== all tests passed"
