#!/usr/bin/env bash
# Build ironvault and run its main job on the embedded default, a local
# repository: init, back up a directory, list snapshots, restore, verify.
#   scripts/quickstart.sh [DIRECTORY_TO_BACK_UP]   (default: /usr/share/doc)
set -euo pipefail
cd "$(dirname "$0")/.."
src=$(realpath "${1:-/usr/share/doc}")
work=${QUICKSTART_DIR:-$PWD/quickstart}
cargo build --release -q -p ironvault
target=${CARGO_TARGET_DIR:-$PWD/target}
[[ $target = /* ]] || target=$PWD/$target
iv=$target/release/ironvault
rm -rf "$work" && mkdir -p "$work"
export IRONVAULT_REPO="$work/repo"
export IRONVAULT_PASSWORD=${IRONVAULT_PASSWORD:-quickstart-demo-password}
echo "== init $IRONVAULT_REPO"
"$iv" init
echo "== backup $src"
"$iv" backup "$src"
echo "== backup again (incremental: unchanged files are not read)"
"$iv" backup "$src"
echo "== snapshots"
"$iv" snapshots
echo "== check --read-data"
"$iv" check --read-data
echo "== restore latest"
"$iv" restore latest --target "$work/restore"
echo "== verify"
diff -r --no-dereference "$src" "$work/restore/$(basename "$src")" && echo "restored tree is identical to $src"
