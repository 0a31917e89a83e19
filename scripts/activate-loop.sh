#!/bin/sh
# Re-arming socket activation for Accept=no, built on systemd-socket-activate.
#
#   systemd-socket-activate -l SOCK [-E VAR...] activate-loop.sh [-E VAR...] CMD [ARGS...]
#
# The outer systemd-socket-activate binds SOCK once and, at the first connection, execs
# this script with the listening socket as fd 3 (LISTEN_FDS=1). Each turn of the loop runs
# an inner systemd-socket-activate that inherits fd 3 through LISTEN_FDS (LISTEN_PID must
# be its own pid, hence the `sh -c` with $$), waits for a connection and execs CMD with the
# socket as fd 3, like systemd does for an Accept=no service. When CMD exits (berth serve's
# idle timeout) the socket stays bound and queued connections wait in its backlog for the
# next turn: nothing is refused between runs, unlike `while :; do systemd-socket-activate
# -l SOCK ...; done`, which unbinds and rebinds the path.
set -u
if [ "${LISTEN_FDS:-0}" -lt 1 ]; then
    echo "activate-loop.sh: no socket passed (LISTEN_FDS unset); run it under systemd-socket-activate" >&2
    exit 2
fi
trap 'exit 0' TERM INT
while :; do
    sh -c 'export LISTEN_PID=$$ LISTEN_FDS=1; unset LISTEN_FDNAMES; exec systemd-socket-activate "$@"' \
        activate-loop "$@"
    rc=$?
    # A service killed by a signal is started again at the next connection, as systemd does;
    # stopping the loop itself is a TERM to it (the trap above).
    if [ "$rc" -ne 0 ]; then
        echo "activate-loop.sh: service exited with status $rc" >&2
        sleep 0.2   # rate-limit a crashing service (systemd's StartLimit does this)
    fi
done
