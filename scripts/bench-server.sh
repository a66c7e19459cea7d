#!/usr/bin/env bash
# Backup and restore of the bench corpus through 'ironvault serve' on loopback,
# against the local backend and the S3 backend (Garage): wall time, throughput
# and peak RSS of the client and of the server. Not part of the test suite.
#
#   scripts/bench-server.sh                     # corpus of BENCH_SERVER_MB (300) MiB of /usr
#   BENCH_SERVER_MB=50 scripts/bench-server.sh  # quick run
#
# Environment:
#   BENCH_DIR        work dir (default <repo>/bench-work); the corpus is BENCH_CORPUS
#                    (default $BENCH_DIR/corpus, shared with bench.sh and bench-s3.sh).
#   IRONVAULT_BIN    the binary to measure (default: cargo build --release, target/release).
#   BENCH_S3=0       skip the S3 backend (otherwise Garage on BENCH_S3_PORT, default 4100,
#                    started and stopped with scripts/s3-server.sh).
#   BENCH_SERVE_PORT port of the server (default 4190).
# The server serves HTTPS with a CA made here by the openssl CLI, as a real one would.
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_DIR=${BENCH_DIR:-$REPO_ROOT/bench-work}
CORPUS=${BENCH_CORPUS:-$BENCH_DIR/corpus}
MB=${BENCH_SERVER_MB:-300}
S3PORT=${BENCH_S3_PORT:-4100}
PORT=${BENCH_SERVE_PORT:-4190}
WORK=$BENCH_DIR/server-work
OUT=$BENCH_DIR/results-server.md
export IRONVAULT_PASSWORD=${IRONVAULT_PASSWORD:-ironvault-bench-password}
unset IRONVAULT_REPO IRONVAULT_PASSWORD_FILE IRONVAULT_PASSWORD_COMMAND IRONVAULT_TOKEN IRONVAULT_TOKEN_FILE
export LC_ALL=C

say() { printf '\n==> %s\n' "$*"; }
die() { printf '\nerror: %s\n' "$*" >&2; exit 1; }
[ -x /usr/bin/time ] || die "GNU time is needed (apt-get install time)"
command -v openssl >/dev/null || die "the openssl CLI is needed (apt-get install openssl)"

mkdir -p "$BENCH_DIR"
if [ ! -d "$CORPUS" ]; then
    say "no corpus at $CORPUS: copying ~$MB MiB of /usr"
    mkdir -p "$CORPUS"
    python3 - "$CORPUS" "$MB" <<'PY'
import os, shutil, sys
dst, budget = sys.argv[1], int(sys.argv[2]) << 20
total = 0
for root, dirs, files in os.walk("/usr"):
    dirs.sort()
    for f in sorted(files):
        p = os.path.join(root, f)
        try:
            if os.path.islink(p) or not os.path.isfile(p) or os.path.getsize(p) > 4 << 20:
                continue
            t = os.path.join(dst, os.path.relpath(p, "/"))
            os.makedirs(os.path.dirname(t), exist_ok=True)
            shutil.copy2(p, t)
            total += os.path.getsize(p)
        except OSError:
            pass
        if total >= budget:
            sys.exit(0)
PY
fi
CORPUS_BYTES=$(du -sb "$CORPUS" | cut -f1)

if [ -z "${IRONVAULT_BIN:-}" ]; then
    say "building ironvault (release)"
    (cd "$REPO_ROOT" && cargo build --release -q -p ironvault)
    IRONVAULT_BIN=${CARGO_TARGET_DIR:-$REPO_ROOT/target}/release/ironvault
fi
IV=$IRONVAULT_BIN

rm -rf "$WORK"
mkdir -p "$WORK/root"
cd "$WORK"
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >ext.cnf
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj '/CN=bench CA' -keyout ca.key -out ca.pem 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=localhost \
    -keyout server.key -out server.csr 2>/dev/null
openssl x509 -req -days 2 -CAcreateserial -in server.csr -CA ca.pem -CAkey ca.key \
    -extfile ext.cnf -out server.pem 2>/dev/null
"$IV" serve token add --tokens tokens.json bench --role admin | tail -1 >token
export IRONVAULT_CACHE_DIR=$WORK/cache IRONVAULT_STATE_DIR=$WORK/state

SERVER_PID=
S3_STARTED=0
cleanup() {
    [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null || true
    if [ "$S3_STARTED" = 1 ]; then
        IRONVAULT_S3_STATE=$WORK/garage IRONVAULT_S3_PORT=$S3PORT "$REPO_ROOT/scripts/s3-server.sh" stop || true
    fi
}
trap cleanup EXIT

start_server() {
    "$IV" serve --root "$WORK/root" --listen "127.0.0.1:$PORT" --tls-cert server.pem \
        --tls-key server.key --tokens tokens.json >server.out 2>server.err &
    SERVER_PID=$!
    for _ in $(seq 50); do grep -q serving server.out 2>/dev/null && return; sleep 0.1; done
    die "ironvault serve did not start: $(cat server.err)"
}
# Stop the server; SERVER_RSS = its peak RSS since it started, in MiB.
stop_server() {
    SERVER_RSS=$(( $(awk '/VmHWM/ {print $2}' "/proc/$SERVER_PID/status") / 1024 ))
    kill "$SERVER_PID"
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=
}

drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true; }
ROWS=()
# run LABEL STEP REPO ARGS...: time one command, record wall, MiB/s, client RSS.
run() {
    local label=$1 step=$2 repo=$3; shift 3
    drop_caches
    /usr/bin/time -f '%e %M' -o time.txt "$IV" --repo "$repo" --cacert ca.pem --token-file token "$@" >step.log 2>&1 \
        || die "$label $step failed: $(tail -3 step.log)"
    read -r wall rss <time.txt
    local mbs
    mbs=$(python3 -c "print(f'{$CORPUS_BYTES/1048576/max($wall,0.01):.1f}')")
    LAST="$wall $mbs $((rss / 1024))"
}

measure() {
    local label=$1 repo=$2 serve=$3
    local srv_b=- srv_r=-
    if [ "$serve" = 1 ]; then start_server; fi
    "$IV" --repo "$repo" --cacert ca.pem --token-file token init >/dev/null
    run "$label" backup "$repo" backup "$CORPUS"; local b=$LAST
    if [ "$serve" = 1 ]; then stop_server; srv_b=$SERVER_RSS; start_server; fi
    rm -rf "$WORK/restore"
    run "$label" restore "$repo" restore latest --target "$WORK/restore"; local r=$LAST
    if [ "$serve" = 1 ]; then stop_server; srv_r=$SERVER_RSS; fi
    diff -rq "$CORPUS" "$WORK/restore/$(basename "$CORPUS")" >/dev/null || die "$label: restored tree differs"
    rm -rf "$WORK/restore"
    read -r bw bm brss <<<"$b"; read -r rw rm_ rrss <<<"$r"
    ROWS+=("| $label | $bw s | $bm MiB/s | $brss MiB | $srv_b MiB | $rw s | $rm_ MiB/s | $rrss MiB | $srv_r MiB |")
    printf '%s\n' "${ROWS[-1]}"
}

say "corpus: $((CORPUS_BYTES / 1048576)) MiB in $(find "$CORPUS" -type f | wc -l) files; binary $IV"
measure "local directory" "$WORK/local-repo" 0
measure "serve (HTTPS, loopback) on a directory" "rest:https://localhost:$PORT/bench" 1
if [ "${BENCH_S3:-1}" != 0 ]; then
    say "starting Garage on 127.0.0.1:$S3PORT"
    IRONVAULT_S3_STATE=$WORK/garage IRONVAULT_S3_PORT=$S3PORT "$REPO_ROOT/scripts/s3-server.sh" start >/dev/null
    S3_STARTED=1
    # shellcheck disable=SC1091
    . "$(IRONVAULT_S3_STATE=$WORK/garage IRONVAULT_S3_PORT=$S3PORT "$REPO_ROOT/scripts/s3-server.sh" env)"
    measure "S3 (Garage, loopback)" "s3:http://127.0.0.1:$S3PORT/ironvault-test/bench-$$" 0
fi

{
    echo "# ironvault serve vs local vs S3 ($((CORPUS_BYTES / 1048576)) MiB, $(date -u +%F))"
    echo
    echo "| backend | backup | backup rate | client RSS | server RSS | restore | restore rate | client RSS | server RSS |"
    echo "|---|---|---|---|---|---|---|---|---|"
    printf '%s\n' "${ROWS[@]}"
} | tee "$OUT"
