#!/usr/bin/env bash
# ironvault vs restic on S3: backup to a real S3 server on loopback (Garage,
# started here by scripts/s3-server.sh on its own port), restore from it, and
# ironvault's copy of a local repository to S3. Not part of the test suite.
#
#   scripts/bench-s3.sh             # uses bench-work/corpus (made by scripts/bench.sh)
#   BENCH_S3_MB=300 scripts/bench-s3.sh   # makes a corpus of ~300 MiB if there is none
#
# For each step: wall seconds, MiB/s over the corpus, peak RSS (GNU time), and
# the requests the server answered (counted in Garage's own request log, so
# both tools are counted the same way). scripts/bench.sh runs this at its end
# unless BENCH_S3=0. Results go to bench-work/results-s3.md.
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_DIR=${BENCH_DIR:-$REPO_ROOT/bench-work}
CORPUS=${BENCH_CORPUS:-$BENCH_DIR/corpus}
PORT=${BENCH_S3_PORT:-3950}
export IRONVAULT_PASSWORD=${IRONVAULT_PASSWORD:-ironvault-bench-password}
export RESTIC_PASSWORD=${RESTIC_PASSWORD:-ironvault-bench-password}
unset IRONVAULT_REPO IRONVAULT_PASSWORD_FILE IRONVAULT_PASSWORD_COMMAND \
      RESTIC_REPOSITORY RESTIC_PASSWORD_FILE RESTIC_PASSWORD_COMMAND
export LC_ALL=C
S3STATE=$BENCH_DIR/garage
OUT=$BENCH_DIR/results-s3.md
WORK=$BENCH_DIR/s3-work

say() { printf '\n==> %s\n' "$*"; }
die() { printf '\nerror: %s\n' "$*" >&2; exit 1; }

command -v restic >/dev/null || die "restic is needed (apt-get install restic, or run scripts/bench.sh first)"
[ -x /usr/bin/time ] || die "GNU time is needed (apt-get install time)"

mkdir -p "$BENCH_DIR"
if [ ! -d "$CORPUS" ]; then
    say "no corpus at $CORPUS: copying ~${BENCH_S3_MB:-300} MiB of /usr"
    mkdir -p "$CORPUS"
    python3 - "$CORPUS" "${BENCH_S3_MB:-300}" <<'PY'
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

say "building ironvault (release)"
(cd "$REPO_ROOT" && cargo build --release -q -p ironvault)
IV=${CARGO_TARGET_DIR:-$REPO_ROOT/target}/release/ironvault

say "starting Garage on 127.0.0.1:$PORT"
IRONVAULT_S3_STATE=$S3STATE IRONVAULT_S3_PORT=$PORT "$REPO_ROOT/scripts/s3-server.sh" start
trap 'IRONVAULT_S3_STATE=$S3STATE IRONVAULT_S3_PORT=$PORT "$REPO_ROOT/scripts/s3-server.sh" stop' EXIT
# shellcheck disable=SC1091
. "$S3STATE/env"
export AWS_DEFAULT_REGION=$AWS_REGION
BUCKET_URL=http://127.0.0.1:$PORT/ironvault-test
rm -rf "$WORK"
mkdir -p "$WORK"
export IRONVAULT_CACHE_DIR=$WORK/iv-cache
export RESTIC_CACHE_DIR=$WORK/restic-cache

requests() { grep -cE 'generic_server.*(GET|PUT|POST|DELETE|HEAD) /' "$S3STATE/server.log" || true; }
drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true; }

RESULTS=()
# timed NAME TOOL-LABEL CMD...: run, record seconds, peak RSS and requests.
timed() {
    local name=$1
    shift
    drop_caches
    local before
    before=$(requests)
    /usr/bin/time -f '%e %M' -o "$WORK/time" "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" ||
        { cat "$WORK/$name.err" >&2; die "$name failed"; }
    local after secs kib
    after=$(requests)
    read -r secs kib <"$WORK/time"
    RESULTS+=("$name|$secs|$kib|$((after - before))")
    printf '    %-28s %7.2f s  %6.0f MiB RSS  %6d requests\n' "$name" "$secs" "$((kib / 1024))" "$((after - before))"
}

say "backups to S3 ($((CORPUS_BYTES >> 20)) MiB corpus)"
"$IV" -r "s3:$BUCKET_URL/iv" init -q
timed "ironvault backup → S3" "$IV" -r "s3:$BUCKET_URL/iv" backup -q "$CORPUS"
restic -r "s3:$BUCKET_URL/restic" init -q
timed "restic backup → S3" restic -r "s3:$BUCKET_URL/restic" backup -q "$CORPUS"
timed "ironvault no-change → S3" "$IV" -r "s3:$BUCKET_URL/iv" backup -q "$CORPUS"
timed "restic no-change → S3" restic -r "s3:$BUCKET_URL/restic" backup -q "$CORPUS"

say "restores from S3"
timed "ironvault restore ← S3" "$IV" -r "s3:$BUCKET_URL/iv" restore -q latest --target "$WORK/r-iv"
diff -rq --no-dereference "$CORPUS" "$WORK/r-iv/$(basename "$CORPUS")" >/dev/null || die "ironvault's restore differs from the corpus"
rm -rf "$WORK/r-iv"
timed "restic restore ← S3" restic -r "s3:$BUCKET_URL/restic" restore -q latest --target "$WORK/r-restic"
diff -rq --no-dereference "$CORPUS" "$WORK/r-restic$CORPUS" >/dev/null || die "restic's restore differs from the corpus"
rm -rf "$WORK/r-restic"

say "copy local → S3"
"$IV" -r "$WORK/local" init -q
"$IV" -r "$WORK/local" backup -q "$CORPUS"
IRONVAULT_FROM_PASSWORD=$IRONVAULT_PASSWORD "$IV" -r "s3:$BUCKET_URL/copy" init -q --from-repo "$WORK/local"
timed "ironvault copy local → S3" env IRONVAULT_FROM_PASSWORD="$IRONVAULT_PASSWORD" "$IV" -r "s3:$BUCKET_URL/copy" copy -q --from-repo "$WORK/local" --all
timed "ironvault copy again (no-op)" env IRONVAULT_FROM_PASSWORD="$IRONVAULT_PASSWORD" "$IV" -r "s3:$BUCKET_URL/copy" copy -q --from-repo "$WORK/local" --all
"$IV" -r "s3:$BUCKET_URL/copy" check -q --read-data

{
    echo "# ironvault vs restic on S3 (Garage on loopback)"
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC'); $(nproc) CPUs; $(restic version | cut -d' ' -f1-2); ironvault $(cd "$REPO_ROOT" && git describe --always --dirty)"
    echo "- corpus: $CORPUS, $((CORPUS_BYTES >> 20)) MiB; server: Garage $("$IRONVAULT_GARAGE_BIN" --version 2>/dev/null | head -1 | cut -d' ' -f2), single node, sqlite metadata, same machine"
    echo "- command: \`scripts/bench-s3.sh\` (requests = lines in Garage's request log)"
    echo
    echo "| step | seconds | MiB/s | peak RSS MiB | requests |"
    echo "|---|---:|---:|---:|---:|"
    for r in "${RESULTS[@]}"; do
        IFS='|' read -r name secs kib reqs <<<"$r"
        rate=$(python3 -c "print('%.1f' % ($CORPUS_BYTES / 1048576 / max($secs, 0.01)))")
        echo "| $name | $secs | $rate | $((kib / 1024)) | $reqs |"
    done
} >"$OUT"
say "results (also in $OUT)"
cat "$OUT"
