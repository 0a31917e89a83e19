#!/bin/bash
# Set up berth on this machine (Debian 12). Safe to run again: every step checks first.
#
#   sudo scripts/setup.sh
#
#  1. installs runc, busybox-static, netavark + aardvark-dns (bridge networks) and systemd's
#     socket tools from Debian;
#  2. builds the release binaries and installs them as /usr/local/bin/berth and berth-monitor;
#  3. creates the group `berth` (members may use /run/berth.sock) and installs the units;
#  4. starts the socket: `systemctl enable --now berth.socket` where systemd is PID 1 (and
#     enables berth-restart.service, which runs `berth boot` at every boot), otherwise
#     systemd-socket-activate in the background (pid in /run/berth-activate.pid), running the
#     ExecStart of berth.service exactly as systemd would;
#  5. makes busybox:latest from the host's static busybox, so there is an image to run
#     without any registry;
#  6. prints the DOCKER_HOST to export.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
sock=/run/berth.sock
pidfile=/run/berth-activate.pid
logfile=/var/log/berth-activate.log
libexec=/usr/local/lib/berth
unitdir=/etc/systemd/system

say() { printf '==> %s\n' "$*"; }
die() { printf 'setup.sh: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "run as root (sudo scripts/setup.sh)"

# --- 1. packages -----------------------------------------------------------------------
need=()
for pkg in runc busybox-static systemd curl netavark aardvark-dns iptables; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
    say "installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    apt-get install -y --no-install-recommends "${need[@]}"
else
    say "packages present (runc, busybox-static, systemd, curl, netavark, aardvark-dns, iptables)"
fi

# --- 2. build and install ----------------------------------------------------------------
say "building berth (cargo build --release)"
if command -v cargo >/dev/null; then
    (cd "$repo" && cargo build --release --locked)
elif [ -n "${SUDO_USER:-}" ] && sudo -u "$SUDO_USER" -H bash -lc 'command -v cargo' >/dev/null; then
    # sudo drops the user's PATH; build as that user with their toolchain
    sudo -u "$SUDO_USER" -H bash -lc "cd '$repo' && cargo build --release --locked"
else
    die "cargo not found: install Rust (https://rustup.rs) and run again"
fi
# berth finds its per-container monitor beside itself.
for bin in berth-monitor berth; do
    install -D -m 0755 "$repo/target/release/$bin" "/usr/local/bin/$bin.new"
    mv -f "/usr/local/bin/$bin.new" "/usr/local/bin/$bin"
done
install -D -m 0755 "$repo/scripts/activate-loop.sh" "$libexec/activate-loop"
install -D -m 0644 "$repo/README.md" /usr/local/share/doc/berth/README.md

# --- 3. group and units ------------------------------------------------------------------
getent group berth >/dev/null || { say "creating group berth"; groupadd --system berth; }
for unit in berth.socket berth.service berth-accept.socket berth-accept@.service \
    berth-restart.service; do
    install -D -m 0644 "$repo/systemd/$unit" "$unitdir/$unit"
done
mkdir -p /var/lib/berth /run/berth
chmod 0711 /var/lib/berth

# --- 4. the socket -----------------------------------------------------------------------
systemd_is_pid1() { [ -d /run/systemd/system ] && [ "$(ps -p 1 -o comm= 2>/dev/null)" = systemd ]; }

activator_running() {
    [ -f "$pidfile" ] || return 1
    pid=$(cat "$pidfile")
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null &&
        tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -e systemd-socket-activate -e activate-loop
}

if systemd_is_pid1; then
    say "systemd is PID 1: enabling berth.socket"
    systemctl daemon-reload
    systemctl enable --now berth.socket
    # At every boot: containers of the previous boot marked exited, restart policies applied.
    # Not started now: it would also start `always` containers someone stopped.
    systemctl enable berth-restart.service
else
    if activator_running; then
        say "socket activator already running (pid $(cat "$pidfile"))"
    else
        say "systemd is not PID 1: starting systemd-socket-activate on $sock"
        # the unit's own ExecStart, so what runs here is what systemd would run
        read -r -a exec_start <<<"$(sed -n 's/^ExecStart=//p' "$unitdir/berth.service")"
        [ "${exec_start[0]}" = /usr/local/bin/berth ] || die "unexpected ExecStart in berth.service"
        if [ -S "$sock" ] && curl -s --max-time 2 --unix-socket "$sock" http://localhost/_ping >/dev/null; then
            die "$sock is served by something else; stop it first"
        fi
        rm -f "$sock"
        # Accept=no that re-arms: the outer activator binds the socket once; activate-loop
        # starts berth serve for each burst of connections (see scripts/activate-loop.sh).
        setsid nohup systemd-socket-activate -l "$sock" -E PATH -E RUST_LOG \
            "$libexec/activate-loop" -E RUST_LOG "${exec_start[@]}" \
            >>"$logfile" 2>&1 </dev/null &
        echo $! >"$pidfile"
        for _ in $(seq 50); do [ -S "$sock" ] && break; sleep 0.1; done
        [ -S "$sock" ] || die "the socket did not appear; see $logfile"
    fi
    # what SocketMode=0660 and SocketGroup=berth do under systemd
    chgrp berth "$sock"
    chmod 0660 "$sock"
    say "without systemd nothing runs /usr/local/bin/berth boot at boot: run it after a reboot"
fi

# --- 5. busybox:latest ---------------------------------------------------------------------
api() { curl -s --max-time 60 --unix-socket "$sock" "$@"; }
code=$(api -o /dev/null -w '%{http_code}' http://localhost/_ping || true)
[ "$code" = 200 ] || die "berth does not answer on $sock (HTTP '$code'); see $logfile"
if [ "$(api -o /dev/null -w '%{http_code}' http://localhost/images/busybox:latest/json)" = 200 ]; then
    say "busybox:latest is present"
else
    say "making busybox:latest from $(readlink -f /bin/busybox)"
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    "$repo/scripts/make-busybox-image.sh" "$tmp/busybox.tar"
    if [ -x /usr/local/bin/docker ] || command -v docker >/dev/null; then
        docker_cli=$( [ -x /usr/local/bin/docker ] && echo /usr/local/bin/docker || command -v docker )
        DOCKER_HOST="unix://$sock" "$docker_cli" import -c 'CMD ["sh"]' "$tmp/busybox.tar" busybox:latest
    else
        api -X POST -H 'Content-Type: application/x-tar' --data-binary "@$tmp/busybox.tar" \
            'http://localhost/images/create?fromSrc=-&repo=busybox&tag=latest&changes=CMD%20%5B%22sh%22%5D'
        echo
    fi
fi

# --- 6. done -------------------------------------------------------------------------------
echo
echo "berth is ready. Use it with:"
echo
echo "    export DOCKER_HOST=unix://$sock"
echo
if [ -n "${SUDO_USER:-}" ] && ! id -nG "$SUDO_USER" | tr ' ' '\n' | grep -qx berth; then
    echo "(to use it without sudo: usermod -aG berth $SUDO_USER, then log in again)"
fi
