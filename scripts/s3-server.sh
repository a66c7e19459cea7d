#!/usr/bin/env bash
# A real S3-compatible server for the tests and benchmarks: Garage, single
# node, on 127.0.0.1, with one key and one bucket.
#
#   scripts/s3-server.sh install   build Garage once into the tools cache
#   scripts/s3-server.sh start     start it (installs first if needed) and write the env file
#   scripts/s3-server.sh restart   start it again on the data of the last start (after a kill)
#   scripts/s3-server.sh stop      stop it and remove its data
#   scripts/s3-server.sh env       print the env file's path
#
# The env file exports IRONVAULT_TEST_S3 (an s3: repository location prefix
# inside the test bucket), the AWS_* credentials and GARAGE_* for the admin
# CLI. Source it:  . "$(scripts/s3-server.sh env)"
#
# Why Garage: it is a real distributed object store (the kind ironvault is
# meant to run on), open source, and installs from crates.io, which this
# project's machines can reach. A cold build takes 7-17 minutes on two
# cores, so it is built once into IRONVAULT_TOOLS_DIR (default
# ~/.cache/ironvault-tools) and reused.
set -euo pipefail

GARAGE_VERSION=2.5.0
TOOLS="${IRONVAULT_TOOLS_DIR:-$HOME/.cache/ironvault-tools}"
GARAGE_BIN="$TOOLS/garage-$GARAGE_VERSION/bin/garage"
STATE="${IRONVAULT_S3_STATE:-${TMPDIR:-/tmp}/ironvault-garage}"
PORT="${IRONVAULT_S3_PORT:-3900}"
RPC_PORT=$((PORT + 1))
ADMIN_PORT=$((PORT + 3))
BUCKET=ironvault-test
# Fixed test credentials: the server only listens on 127.0.0.1 and holds test data.
KEY_ID=GK0123456789abcdef01234567
SECRET=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef

install() {
    if [ -x "$GARAGE_BIN" ]; then
        return
    fi
    echo "building Garage $GARAGE_VERSION into $TOOLS (once; about 7-17 minutes on 2 cores)" >&2
    # Release without LTO and at opt-level 1: a test server, built in half the time.
    CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
        CARGO_PROFILE_RELEASE_OPT_LEVEL=1 CARGO_PROFILE_RELEASE_DEBUG=0 \
        CARGO_TARGET_DIR="$TOOLS/garage-build" \
        cargo install garage --version "$GARAGE_VERSION" --locked \
        --no-default-features --features bundled-libs,sqlite \
        --root "$TOOLS/garage-$GARAGE_VERSION" >&2
    rm -rf "$TOOLS/garage-build"
}

garage() {
    "$GARAGE_BIN" -c "$STATE/garage.toml" "$@"
}

start() {
    install
    stop_quietly
    mkdir -p "$STATE/meta" "$STATE/data"
    cat >"$STATE/garage.toml" <<EOF
metadata_dir = "$STATE/meta"
data_dir = "$STATE/data"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:$RPC_PORT"
rpc_public_addr = "127.0.0.1:$RPC_PORT"
rpc_secret = "$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"

[s3_api]
s3_region = "us-east-1"
api_bind_addr = "127.0.0.1:$PORT"
root_domain = ".localhost"

[admin]
api_bind_addr = "127.0.0.1:$ADMIN_PORT"
EOF
    chmod 600 "$STATE/garage.toml"
    launch
    node=$(garage node id -q | cut -d@ -f1)
    garage layout assign -z dc1 -c 10G "$node" >/dev/null
    garage layout apply --version 1 >/dev/null
    garage key import -n ironvault-test --yes "$KEY_ID" "$SECRET" >/dev/null
    garage bucket create "$BUCKET" >/dev/null
    garage bucket allow --read --write --owner "$BUCKET" --key ironvault-test >/dev/null
    cat >"$STATE/env" <<EOF
export IRONVAULT_TEST_S3=s3:http://127.0.0.1:$PORT/$BUCKET
export IRONVAULT_TEST_S3_ENDPOINT=127.0.0.1:$PORT
export IRONVAULT_TEST_S3_PID_FILE=$STATE/pid
export AWS_ACCESS_KEY_ID=$KEY_ID
export AWS_SECRET_ACCESS_KEY=$SECRET
export AWS_REGION=us-east-1
export GARAGE_CONFIG_FILE=$STATE/garage.toml
export IRONVAULT_GARAGE_BIN=$GARAGE_BIN
EOF
    wait_s3
    echo "Garage $GARAGE_VERSION serving S3 on 127.0.0.1:$PORT, bucket $BUCKET; env in $STATE/env" >&2
}

launch() {
    "$GARAGE_BIN" -c "$STATE/garage.toml" server >>"$STATE/server.log" 2>&1 &
    echo $! >"$STATE/pid"
    for _ in $(seq 100); do
        if garage status >/dev/null 2>&1; then break; fi
        sleep 0.1
    done
}

# Wait until the S3 API answers (any HTTP status means it is up).
wait_s3() {
    for _ in $(seq 100); do
        if curl -s -o /dev/null "http://127.0.0.1:$PORT/"; then return; fi
        sleep 0.1
    done
    echo "Garage did not answer on 127.0.0.1:$PORT; see $STATE/server.log" >&2
    exit 1
}

# Start the server again on the data of an earlier start (after a kill).
restart() {
    launch
    wait_s3
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
restart) restart ;;
stop) stop_quietly ;;
env) echo "$STATE/env" ;;
*)
    echo "usage: $0 install|start|stop|env" >&2
    exit 2
    ;;
esac
