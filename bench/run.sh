#!/bin/bash
# Benchmark berth against dockerd and podman (whichever are installed) in one run and print
# a table with ratios. Run by hand as root on an otherwise idle machine:
#
#   bench/run.sh [--pings 200] [--images 500] [--repeat 20] [--engines berth,dockerd,podman]
#
# Uses target/release/berth (override with BERTH_BIN or --berth). dockerd and podman are
# started privately on temporary sockets and data roots and stopped afterwards (dockerd's
# iptables and docker0 changes are undone). Nothing is installed.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "bench/run.sh: run as root" >&2; exit 1; }
command -v systemd-socket-activate >/dev/null || { echo "bench/run.sh: needs systemd-socket-activate" >&2; exit 1; }
exec python3 bench/bench.py "$@"
