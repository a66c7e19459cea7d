#!/usr/bin/env bash
# The torture run (docs/reliability.md): the real binary under kill -9,
# random corruptions, S3 faults and concurrent writers with prune, printed
# as one table (trials, faults injected, detected, repaired, data lost,
# panics) with every failed trial and the command that replays it.
#
#   scripts/torture.sh [full|ci]     full sizes by default (hours on 2 cores)
#
# It builds once, starts its own Garage server (scripts/s3-server.sh; set
# IRONVAULT_S3_PORT / IRONVAULT_S3_STATE to keep it apart from another), runs
# crates/cli/tests/torture and writes the table to target/torture/report.md
# and report.json, the trials' log to target/torture/trials.log (or under
# IRONVAULT_TORTURE_OUT). IRONVAULT_TORTURE_SEED, _PARTS, _TRIAL and the size
# variables (_KILLS, _CORRUPTIONS, _S3_FAULTS, _CONCURRENT_SECS) pass through.
# The exit status is the test's: non-zero when any trial failed.
set -euo pipefail
cd "$(dirname "$0")/.."

size="${1:-full}"
case "$size" in
full | ci) ;;
*)
    echo "usage: $0 [full|ci]" >&2
    exit 2
    ;;
esac

need=()
command -v setfacl >/dev/null || need+=(acl)
command -v mkfifo >/dev/null || need+=(coreutils)
command -v curl >/dev/null || need+=(curl)
if [ ${#need[@]} -gt 0 ]; then
    echo "installing tools the trials use: ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q "${need[@]}" >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q "${need[@]}" >/dev/null; }
fi

out="${IRONVAULT_TORTURE_OUT:-target/torture}"
mkdir -p "$out"
out="$(cd "$out" && pwd)" # the test runs in crates/cli: hand it absolute paths
rm -f "$out/report.md" "$out/report.json"

echo "== build"
cargo test -p ironvault --features ironvault/failpoints --test torture --no-run
echo "== S3 test server (Garage)"
scripts/s3-server.sh start
trap 'scripts/s3-server.sh stop' EXIT
# shellcheck disable=SC1090
. "$(scripts/s3-server.sh env)"

echo "== torture ($size sizes); trials are logged to $out/trials.log"
status=0
IRONVAULT_TORTURE="$size" \
    IRONVAULT_TORTURE_REPORT="$out/report.md" \
    IRONVAULT_TORTURE_JSON="$out/report.json" \
    cargo test -p ironvault --features ironvault/failpoints --test torture \
    -- --nocapture --test-threads=1 >"$out/trials.log" 2>&1 || status=$?

if [ -f "$out/report.md" ]; then
    cat "$out/report.md"
else
    tail -n 40 "$out/trials.log"
    echo "the run ended before printing its table; see $out/trials.log" >&2
fi
exit "$status"
