#!/bin/bash
# Run every test: cargo build, cargo test, then the black-box API tests (api-tests/) against
# the debug binary, started behind systemd-socket-activate on a temporary socket.
#
#   scripts/test.sh [pytest args...]        e.g. scripts/test.sh -k images -x
#
# Needs root (layers are mounted with overlayfs), systemd-socket-activate, the docker CLI at
# /usr/local/bin/docker and the python packages in api-tests/requirements.txt.
# BERTH_TEST_DOCKER_HOST=unix:///path runs the API tests against another engine instead.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
    echo "scripts/test.sh: warning: not root; tests that mount layers will fail" >&2
fi

echo "==> openapi/berth.yaml matches the routes and validates"
python3 openapi/generate.py --check
echo "==> cargo build"
cargo build --locked
echo "==> cargo test"
cargo test --locked
echo "==> api-tests"
export BERTH_BIN="${BERTH_BIN:-$PWD/target/debug/berth}"
python3 -m pytest api-tests -q "$@"
