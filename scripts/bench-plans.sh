#!/usr/bin/env bash
# What a protection plan costs over the plain commands it runs, and what a
# drill measures. Not part of the test suite; scripts/bench.sh runs it at its
# end unless BENCH_PLANS=0.
#
#   scripts/bench-plans.sh            # uses bench-work/corpus (made by scripts/bench.sh)
#
# 1. `ironvault run PLAN` (backup to a local repository, copy to a second,
#    retention) against the same three steps run by hand as plain commands on
#    fresh repositories: the difference is the plan's own overhead (config,
#    history, snapshot listings for the copy).
# 2. `ironvault drill PLAN` (restore --verify into a sandbox, timed as the
#    RTA) against `restore --verify` by hand and against `cp -a` of the
#    corpus (what the disk allows).
# Wall seconds and peak RSS by GNU time; results in bench-work/results-plans.md.
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_DIR=${BENCH_DIR:-$REPO_ROOT/bench-work}
CORPUS=${BENCH_CORPUS:-$BENCH_DIR/corpus}
WORK=$BENCH_DIR/plans-work
OUT=$BENCH_DIR/results-plans.md
IV=$REPO_ROOT/target/release/ironvault
export LC_ALL=C
unset IRONVAULT_REPO IRONVAULT_PASSWORD IRONVAULT_PASSWORD_FILE IRONVAULT_PASSWORD_COMMAND IRONVAULT_CONFIG

die() { printf '\nerror: %s\n' "$*" >&2; exit 1; }
[ -d "$CORPUS" ] || die "no corpus at $CORPUS: run scripts/bench.sh first (or set BENCH_CORPUS)"
command -v /usr/bin/time >/dev/null || die "GNU time is needed (apt-get install time)"
(cd "$REPO_ROOT" && cargo build --release -q)

rm -rf "$WORK"; mkdir -p "$WORK"
echo "ironvault-bench-password" > "$WORK/pass"
P=(--password-file "$WORK/pass")
for set in plan hand; do
    "$IV" -q -r "$WORK/$set-a" "${P[@]}" init
    "$IV" -q -r "$WORK/$set-b" "${P[@]}" init --from-repo "$WORK/$set-a" --from-password-file "$WORK/pass"
done
cat > "$WORK/ironvault.toml" <<TOML
state_dir = "$WORK/state"
listen = "off"
[repository.a]
url = "$WORK/plan-a"
password_file = "$WORK/pass"
[repository.b]
url = "$WORK/plan-b"
password_file = "$WORK/pass"
[plan.bench]
paths = ["$CORPUS"]
copies = ["a", "b"]
keep = { last = 3 }
rto = "1h"
drill = { copy = "b", sandbox = "$WORK/sandbox" }
TOML

# timed LABEL CMD...: wall seconds and peak RSS (MiB) into $WORK/LABEL.time
timed() {
    local label=$1; shift
    /usr/bin/time -f '%e %M' -o "$WORK/$label.time" "$@" > "$WORK/$label.out" 2> "$WORK/$label.err" \
        || { cat "$WORK/$label.err" >&2; die "$label failed"; }
    read -r secs kib < "$WORK/$label.time"
    printf '| %s | %s | %d |\n' "$label" "$secs" $((kib / 1024)) >> "$WORK/rows"
}
sync
: > "$WORK/rows"
timed "run PLAN (backup + copy + retention)" "$IV" --config "$WORK/ironvault.toml" -q run bench
timed "by hand: backup" "$IV" -q -r "$WORK/hand-a" "${P[@]}" backup --host bench --tag plan:bench "$CORPUS"
timed "by hand: copy" "$IV" -q -r "$WORK/hand-b" "${P[@]}" copy --from-repo "$WORK/hand-a" --from-password-file "$WORK/pass"
timed "by hand: forget --keep-last 3" "$IV" -q -r "$WORK/hand-a" "${P[@]}" forget --keep-last 3
sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
timed "drill PLAN (restore --verify, = RTA)" "$IV" --config "$WORK/ironvault.toml" drill bench
sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
timed "by hand: restore --verify" "$IV" -q -r "$WORK/hand-b" "${P[@]}" restore latest --verify --target "$WORK/restored"
sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
timed "cp -a of the corpus (the disk's own speed)" cp -a "$CORPUS" "$WORK/cp-copy"
diff -r --no-dereference "$CORPUS" "$WORK/restored/$(basename "$CORPUS")" > /dev/null || die "restored tree differs from the corpus"
rta=$(python3 -c "import sqlite3; print(sqlite3.connect('$WORK/state/history.sqlite').execute(\"select round(seconds,2) from steps where step='drill' order by id desc limit 1\").fetchone()[0])")
size=$(du -sm "$CORPUS" | cut -f1)
{
    echo "# Protection plans: overhead and drill ($(date -u +%F), corpus ${size} MiB, $(nproc) cores)"
    echo
    echo "| what | seconds | peak RSS MiB |"
    echo "|---|---:|---:|"
    cat "$WORK/rows"
    echo
    echo "RTA recorded in the history by the drill: ${rta} s. Restored tree compared with diff -r: identical."
} > "$OUT"
cat "$OUT"
rm -rf "$WORK/restored" "$WORK/cp-copy"
