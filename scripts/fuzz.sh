#!/usr/bin/env bash
# Fuzz every parser of stored or user-supplied bytes (fuzz/fuzz_targets),
# one target after the other, each for RUNS executions, and print a table:
# target | executions | exec/s | crashes | corpus size.
#
#   scripts/fuzz.sh [RUNS] [TARGET...]
#
# RUNS defaults to 200000 (a minute or two per target here). Seeds are made
# afresh from tests/fixtures/repo-v1, a repository made by the corpus
# generator and the config examples in docs/; the corpus grows in
# fuzz/corpus/<target>/ across runs (not committed). A crash leaves its
# input in fuzz/artifacts/<target>/; reproduce it with
#   cargo +nightly fuzz run <target> fuzz/artifacts/<target>/<file>
# Needs the nightly toolchain; installs cargo-fuzz if missing. Runs niced,
# one process at a time, so other work on the machine keeps its cores.
# FUZZ_SECONDS=N also ends each target after N seconds (the table says how
# many executions it reached). FUZZ_SANITIZER=none builds without
# AddressSanitizer (faster; the parsers are safe Rust, zstd's C code aside).
set -euo pipefail
cd "$(dirname "$0")/.."

runs=${1:-200000}
shift || true
sanitizer=${FUZZ_SANITIZER:-address}
max_time=()
[ -z "${FUZZ_SECONDS:-}" ] || max_time=(-max_total_time="$FUZZ_SECONDS")

rustup toolchain list | grep -q '^nightly' || {
  echo "error: the nightly toolchain is missing; install it with 'rustup toolchain install nightly'" >&2
  exit 1
}
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cd fuzz && cargo +nightly fuzz list)
fi

echo "== seeds" >&2
nice -n 15 cargo run -q -p ironvault-core --example fuzz_corpus -- fuzz/corpus
# Every TOML block of the config reference is a seed of the agent's config parser.
mkdir -p fuzz/corpus/agent_config
awk -v dir=fuzz/corpus/agent_config '
  /^```toml/ { n++; f = sprintf("%s/docs-%d.toml", dir, n); printf "" > f; inside = 1; next }
  /^```/ { inside = 0; next }
  inside { print >> f }
' docs/config.md

echo "== build ($sanitizer sanitizer)" >&2
(cd fuzz && nice -n 15 cargo +nightly fuzz build --sanitizer "$sanitizer")

log_dir=fuzz/logs
mkdir -p "$log_dir"
table="target|executions|exec/s|crashes|corpus size"
failed=0
for t in "${targets[@]}"; do
  echo "== $t: $runs runs${FUZZ_SECONDS:+ or $FUZZ_SECONDS s}" >&2
  mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
  before=$(find "fuzz/artifacts/$t" -type f | wc -l)
  status=0
  started=$(date +%s%N)
  (cd fuzz && nice -n 15 cargo +nightly fuzz run --sanitizer "$sanitizer" "$t" -- \
      -runs="$runs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 "${max_time[@]}") \
      >"$log_dir/$t.log" 2>&1 || status=$?
  after=$(find "fuzz/artifacts/$t" -type f | wc -l)
  crashes=$((after - before))
  if [ "$status" -ne 0 ] && [ "$crashes" -eq 0 ]; then
    echo "error: $t failed without leaving a crash input; see $log_dir/$t.log" >&2
    crashes="failed"
  fi
  [ "$crashes" = 0 ] || failed=1
  elapsed_ms=$((($(date +%s%N) - started) / 1000000))
  # libFuzzer's final statistics (a crash ends the run before them: then
  # its last progress line); the speed is over the whole run, start-up included.
  execs=$(awk '/stat::number_of_executed_units:/ {print $2}' "$log_dir/$t.log" | tail -1)
  [ -n "$execs" ] || execs=$(sed -n 's/^#\([0-9]*\).*/\1/p' "$log_dir/$t.log" | tail -1)
  speed=$((${execs:-0} * 1000 / (elapsed_ms > 0 ? elapsed_ms : 1)))
  corpus=$(find "fuzz/corpus/$t" -type f | wc -l)
  table+=$'\n'"$t|${execs:-?}|${speed:-?}|$crashes|$corpus"
  [ "$crashes" = 0 ] || { echo "   crash input(s) in fuzz/artifacts/$t; log $log_dir/$t.log" >&2; }
done

echo
column -t -s '|' <<<"$table"
exit "$failed"
