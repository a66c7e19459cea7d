#!/usr/bin/env bash
# ironvault vs restic: forget + prune after a series of backups. Not part of
# the test suite; scripts/bench.sh runs it at its end unless BENCH_PRUNE=0.
#
#   scripts/bench-prune.sh                          # uses bench-work/corpus (made by scripts/bench.sh)
#   BENCH_PRUNE_ROUNDS=8 BENCH_CHURN_MB=64 scripts/bench-prune.sh
#
# Both tools back up the same two paths BENCH_PRUNE_ROUNDS times: the corpus
# (unchanged) and a churn directory where each round adds a generation of
# BENCH_CHURN_MB MiB (one large file of random bytes, 200 small text files
# with some random lines) and deletes the generation two rounds back. Then
# each runs `forget --keep-last 2 --prune` with its defaults (5% unused
# tolerated: per pack for ironvault, over the whole repository for restic),
# timed with GNU time (wall seconds, peak RSS), and the repository size is
# taken before and after. Both repositories are then checked with
# --read-data and their latest snapshot restored and compared with the
# source. Results go to bench-work/results-prune.md.
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_DIR=${BENCH_DIR:-$REPO_ROOT/bench-work}
CORPUS=${BENCH_CORPUS:-$BENCH_DIR/corpus}
ROUNDS=${BENCH_PRUNE_ROUNDS:-6}
CHURN_MB=${BENCH_CHURN_MB:-48}
export IRONVAULT_PASSWORD=${IRONVAULT_PASSWORD:-ironvault-bench-password}
export RESTIC_PASSWORD=${RESTIC_PASSWORD:-ironvault-bench-password}
unset IRONVAULT_REPO IRONVAULT_PASSWORD_FILE IRONVAULT_PASSWORD_COMMAND \
      RESTIC_REPOSITORY RESTIC_PASSWORD_FILE RESTIC_PASSWORD_COMMAND
export LC_ALL=C
WORK=$BENCH_DIR/prune-work
OUT=$BENCH_DIR/results-prune.md

say() { printf '\n==> %s\n' "$*"; }
die() { printf '\nerror: %s\n' "$*" >&2; exit 1; }

for v in ROUNDS CHURN_MB; do
    [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a whole number (got '${!v}')"
done
(( ROUNDS >= 3 )) || die "BENCH_PRUNE_ROUNDS must be at least 3 (forget keeps 2)"
command -v restic >/dev/null || die "restic is needed (apt-get install restic, or run scripts/bench.sh first)"
[ -x /usr/bin/time ] || die "GNU time is needed (apt-get install time)"
if [ ! -d "$CORPUS" ]; then
    say "no corpus at $CORPUS: copying ~200 MiB of /usr/share"
    mkdir -p "$CORPUS"
    (cd /usr/share && find . -type f -size -1M -print0 | head -z -n 20000 | tar --null -T - -cf - 2>/dev/null) | tar -C "$CORPUS" -xf -
fi

say "building ironvault (release)"
(cd "$REPO_ROOT" && cargo build --release -q -p ironvault)
IV=${CARGO_TARGET_DIR:-$REPO_ROOT/target}/release/ironvault
[[ $IV = /* ]] || IV=$REPO_ROOT/$IV

rm -rf "$WORK"
mkdir -p "$WORK/churn"
CHURN=$WORK/churn
export RESTIC_CACHE_DIR=$WORK/restic-cache
drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true; }

# generation N: deterministic content, different for every N.
generation() {
    python3 - "$CHURN/gen-$1" "$1" "$CHURN_MB" <<'PY'
import os, random, sys
d, n, mb = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(1000 + n)
os.makedirs(d, exist_ok=True)
with open(os.path.join(d, "big.bin"), "wb") as f:
    f.write(rng.randbytes(mb * 1024 * 1024 * 7 // 8))
small = mb * 1024 * 1024 // 8 // 200
for i in range(200):
    with open(os.path.join(d, "note-%03d.txt" % i), "wb") as f:
        f.write(b"generation %d note %d\n" % (n, i) * (small // 40))
        f.write(rng.randbytes(small // 4))
PY
}

RESULTS=()
# timed NAME CMD...: wall seconds and peak RSS.
timed() {
    local name=$1
    shift
    drop_caches
    /usr/bin/time -f '%e %M' -o "$WORK/time" "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" ||
        { cat "$WORK/$name.err" >&2; die "$name failed"; }
    read -r SECS KIB <"$WORK/time"
    printf '    %-32s %7.2f s  %6d MiB peak RSS\n' "$name" "$SECS" "$((KIB / 1024))"
}

say "$ROUNDS backups of $CORPUS + a churn of $CHURN_MB MiB per round, into both tools"
"$IV" -r "$WORK/iv" init -q
restic -r "$WORK/restic" init -q
for ((g = 1; g <= ROUNDS; g++)); do
    generation "$g"
    (( g <= 2 )) || rm -rf "$CHURN/gen-$((g - 2))"
    "$IV" -r "$WORK/iv" backup -q "$CORPUS" "$CHURN"
    restic -r "$WORK/restic" backup -q "$CORPUS" "$CHURN"
    printf '    round %d: ironvault %s MiB, restic %s MiB\n' "$g" \
        "$(( $(du -sb "$WORK/iv" | cut -f1) >> 20 ))" "$(( $(du -sb "$WORK/restic" | cut -f1) >> 20 ))"
done

for tool in ironvault restic; do
    case $tool in
    ironvault) repo=$WORK/iv; cmd=("$IV" -r "$repo" forget --keep-last 2 --prune) ;;
    restic) repo=$WORK/restic; cmd=(restic -r "$repo" forget --keep-last 2 --prune) ;;
    esac
    before=$(du -sb "$repo" | cut -f1)
    say "$tool: forget --keep-last 2 --prune"
    timed "$tool forget+prune" "${cmd[@]}"
    after=$(du -sb "$repo" | cut -f1)
    RESULTS+=("$tool|$SECS|$KIB|$before|$after")
    printf '    repository %d MiB -> %d MiB (%d MiB freed)\n' "$((before >> 20))" "$((after >> 20))" "$(((before - after) >> 20))"
done

say "checking both repositories and restoring their latest snapshot"
"$IV" -r "$WORK/iv" check -q --read-data
restic -r "$WORK/restic" check -q --read-data >/dev/null
"$IV" -r "$WORK/iv" restore -q latest --target "$WORK/r-iv"
diff -rq --no-dereference "$CHURN" "$WORK/r-iv/churn" >/dev/null || die "ironvault's restore after prune differs from the source"
diff -rq --no-dereference "$CORPUS" "$WORK/r-iv/$(basename "$CORPUS")" >/dev/null || die "ironvault's restore after prune differs from the corpus"
restic -r "$WORK/restic" restore -q latest --target "$WORK/r-restic"
diff -rq --no-dereference "$CHURN" "$WORK/r-restic$CHURN" >/dev/null || die "restic's restore after prune differs from the source"
rm -rf "$WORK/r-iv" "$WORK/r-restic"
echo "    both repositories pass check --read-data; both latest snapshots restore identical to the source"

{
    echo "# forget + prune: ironvault vs restic"
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC'); $(nproc) CPUs; $(restic version | cut -d' ' -f1-2); ironvault $(cd "$REPO_ROOT" && git describe --always --dirty)"
    echo "- $ROUNDS backups of the corpus ($(( $(du -sb "$CORPUS" | cut -f1) >> 20 )) MiB, unchanged) and a churn directory ($CHURN_MB MiB added per round, the generation two rounds back deleted); then \`forget --keep-last 2 --prune\` with each tool's defaults"
    echo "- command: \`scripts/bench-prune.sh\` (BENCH_PRUNE_ROUNDS=$ROUNDS BENCH_CHURN_MB=$CHURN_MB); page cache dropped before each timed step"
    echo
    echo "| tool | seconds | peak RSS MiB | repository before MiB | after MiB | freed MiB |"
    echo "|---|---:|---:|---:|---:|---:|"
    for r in "${RESULTS[@]}"; do
        IFS='|' read -r tool secs kib before after <<<"$r"
        echo "| $tool | $secs | $((kib / 1024)) | $((before >> 20)) | $((after >> 20)) | $(((before - after) >> 20)) |"
    done
} >"$OUT"
say "results (also in $OUT)"
cat "$OUT"
