"""Socket activation: processes come with connections and go when idle."""

from __future__ import annotations

import json
import os
import socket
import time

import pytest

from helpers import UnixHTTPConnection, serve_pids, wait_until

pytestmark = pytest.mark.berth_only


def ping(eng):
    r = eng.api("GET", "/_ping", timeout=10)
    assert r.status == 200 and r.body == b"OK", (r.status, r.body, eng.log_tail())


def held_connection(eng, timeout: float = 10) -> UnixHTTPConnection:
    """A keep-alive connection that has answered one ping."""
    conn = UnixHTTPConnection(eng.sock, timeout=timeout)
    conn.request("GET", "/_ping")
    resp = conn.getresponse()
    assert resp.status == 200 and resp.read() == b"OK"
    return conn


# --------------------------------------------------------------------------- Accept=yes


def test_accept_yes_nothing_runs_before_a_connection(engine_factory):
    eng = engine_factory("accept")
    time.sleep(0.3)
    assert serve_pids(eng.data_root) == []


def test_accept_yes_no_process_left_after_client(engine_factory, busybox_tar):
    eng = engine_factory("accept")
    eng.docker("version")
    eng.docker("import", str(busybox_tar), "busybox:latest")
    _, out, _ = eng.docker("images", "--format", "{{.Repository}}:{{.Tag}}")
    assert out == "busybox:latest\n"
    ping(eng)
    left = wait_until(lambda: not serve_pids(eng.data_root), 5)
    assert left, f"berth serve still running: {serve_pids(eng.data_root)}\n{eng.log_tail()}"


def test_accept_yes_one_process_per_connection(engine_factory):
    eng = engine_factory("accept")
    c1 = held_connection(eng)
    c2 = held_connection(eng)
    try:
        pids = wait_until(lambda: len(serve_pids(eng.data_root)) == 2, 5)
        assert pids, serve_pids(eng.data_root)
        # a connection is served for as long as the client keeps it (keep-alive)
        c1.request("GET", "/version")
        resp = c1.getresponse()
        assert resp.status == 200 and json.loads(resp.read())["ApiVersion"]
    finally:
        c1.close()
    assert wait_until(lambda: len(serve_pids(eng.data_root)) == 1, 5), serve_pids(eng.data_root)
    c2.close()
    assert wait_until(lambda: not serve_pids(eng.data_root), 5), serve_pids(eng.data_root)


def test_accept_yes_client_vanishing_mid_request(engine_factory):
    eng = engine_factory("accept")
    s = socket.socket(socket.AF_UNIX)
    s.connect(eng.sock)
    s.sendall(b"POST /images/load HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\npartial")
    wait_until(lambda: serve_pids(eng.data_root), 3)
    s.close()
    assert wait_until(lambda: not serve_pids(eng.data_root), 5), serve_pids(eng.data_root)
    ping(eng)


# --------------------------------------------------------------------------- Accept=no


def test_accept_no_exits_after_idle_timeout_and_reactivates(engine_factory):
    eng = engine_factory("listen", idle_timeout=1)
    time.sleep(0.3)
    assert serve_pids(eng.data_root) == [], "nothing may run before the first connection"
    ping(eng)
    first = wait_until(lambda: serve_pids(eng.data_root), 3)
    assert len(first) == 1, first
    for _ in range(5):  # one process serves the listening socket for all of these
        ping(eng)
    assert serve_pids(eng.data_root) == first
    last_request = time.monotonic()
    assert wait_until(lambda: not serve_pids(eng.data_root), 8), \
        f"still running after the idle timeout: {serve_pids(eng.data_root)}"
    assert time.monotonic() - last_request >= 0.9, "exited before its idle timeout"
    # the socket stays bound and the next connection starts a new process
    ping(eng)
    second = serve_pids(eng.data_root)
    assert second and second != first
    assert wait_until(lambda: not serve_pids(eng.data_root), 8)


def test_accept_no_keeps_running_while_busy(engine_factory):
    eng = engine_factory("listen", idle_timeout=1)
    ping(eng)
    first = serve_pids(eng.data_root)
    t_end = time.monotonic() + 2.5
    while time.monotonic() < t_end:  # requests every 0.3 s: never idle for 1 s
        ping(eng)
        time.sleep(0.3)
    assert serve_pids(eng.data_root) == first


def test_accept_no_no_request_lost_across_idle_exit(engine_factory):
    """Connections arriving around an idle exit wait in the backlog and are all answered."""
    eng = engine_factory("listen", idle_timeout=1)
    failures = []
    for i in range(10):
        try:
            ping(eng)
        except Exception as e:  # noqa: BLE001 - collect every failure
            failures.append(f"{i}: {e!r}")
        time.sleep(0.8 + (i % 5) * 0.1)  # 0.8-1.2 s apart: some land right around the idle exit
    assert not failures, failures


def test_idle_connection_exits_with_status_zero(engine_factory):
    eng = engine_factory("once", idle_timeout=1)
    ping(eng)
    rc = eng.proc.wait(timeout=10)
    assert rc == 0, eng.log_tail()


def test_inherited_fds_are_cloexec(engine_factory):
    eng = engine_factory("listen", idle_timeout=5)
    conn = held_connection(eng)
    try:
        pids = serve_pids(eng.data_root)
        assert len(pids) == 1
        pid = pids[0]
        fds = os.listdir(f"/proc/{pid}/fd")
        socks = [fd for fd in fds if os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:")]
        assert socks
        for fd in socks:
            flags = next(line for line in open(f"/proc/{pid}/fdinfo/{fd}") if line.startswith("flags:"))
            assert int(flags.split()[1], 8) & 0o2000000, f"fd {fd} of berth serve lacks O_CLOEXEC"
    finally:
        conn.close()


# --------------------------------------------------------------------------- streams


def test_events_stream_keeps_process_alive(engine_factory, busybox_tar):
    eng = engine_factory("listen", idle_timeout=1)
    conn = UnixHTTPConnection(eng.sock, timeout=15)
    conn.request("GET", "/events")
    resp = conn.getresponse()  # Docker flushes the headers at once
    if resp.status == 404:
        conn.close()
        pytest.xfail("GET /events is not implemented yet")
    try:
        assert resp.status == 200
        assert resp.getheader("Content-Type") == "application/json"
        pids = serve_pids(eng.data_root)
        assert len(pids) == 1
        time.sleep(3)  # three idle timeouts with nothing but the open stream
        assert serve_pids(eng.data_root) == pids, "the process exited under an open /events stream"
        # the stream still delivers: an import in another connection shows up
        eng.docker("import", str(busybox_tar), "events-probe:1")
        line = resp.readline()
        event = json.loads(line)
        assert event["Type"] == "image", event
        assert event["Action"] in ("import", "tag"), event
    finally:
        conn.close()
    assert wait_until(lambda: not serve_pids(eng.data_root), 6), \
        "berth serve did not exit after the stream closed"
