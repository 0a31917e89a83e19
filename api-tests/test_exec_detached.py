"""Detached execs outlive `berth serve`; attached ones do not stay "running" after it is gone.

With Accept=yes every request is its own `berth serve`, which exits as soon as its connection
closes: a `docker exec -d` must keep running after that, and its exit code must still be
recorded (inspect and the `exec_die` event). The same when every `berth serve` is killed -9.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import time
import uuid

import pytest

from conftest import import_busybox
from helpers import serve_pids, wait_until

pytestmark = pytest.mark.berth_only


def exec_inspect(eng, eid: str) -> dict:
    r = eng.api("GET", f"/exec/{eid}/json")
    assert r.status == 200, r.body
    return r.json()


def exec_events(eng, container: str) -> list[dict]:
    until = str(int(time.time()) + 1)
    _, out, _ = eng.docker("events", "--since", "0", "--until", until, "--filter",
                           f"container={container}", "--format", "{{json .}}")
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def last_exec_id(eng, container: str) -> str:
    """The exec the docker CLI just created (the CLI does not print it): its exec_create event."""
    created = [e for e in exec_events(eng, container) if e["Action"].startswith("exec_create")]
    assert created, "no exec_create event"
    return created[-1]["Actor"]["Attributes"]["execID"]


def cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def supervisors(eng) -> list[int]:
    """`berth internal exec-wait` processes of this engine."""
    return [int(p) for p in os.listdir("/proc") if p.isdigit()
            and "exec-wait" in cmdline(int(p)) and str(eng.run_root) in cmdline(int(p))]


def check_detached_exec_runs_to_its_end(eng, name: str, kill_serve: bool = False):
    started = time.monotonic()
    eng.docker("exec", "-d", name, "sh", "-c", "sleep 3; exit 7")
    eid = last_exec_id(eng, name)
    if kill_serve:
        for pid in serve_pids(eng.data_root):
            os.kill(pid, signal.SIGKILL)
        assert wait_until(lambda: not serve_pids(eng.data_root), 5)
    else:
        # Accept=yes: every serve has exited with its connection; the exec is on its own.
        assert wait_until(lambda: not serve_pids(eng.data_root), 5), serve_pids(eng.data_root)
    info = exec_inspect(eng, eid)
    assert time.monotonic() - started < 3, "too slow to see the exec running"
    assert (info["Running"], info["ExitCode"]) == (True, None)
    assert info["Pid"] > 0 and "sleep 3" in cmdline(info["Pid"])
    if kill_serve:
        for pid in serve_pids(eng.data_root):
            os.kill(pid, signal.SIGKILL)
    assert wait_until(lambda: not exec_inspect(eng, eid)["Running"], 15)
    info = exec_inspect(eng, eid)
    assert (info["Running"], info["ExitCode"], info["Pid"]) == (False, 7, 0)
    dies = [e for e in exec_events(eng, name) if e["Action"] == "exec_die"
            and e["Actor"]["Attributes"].get("execID") == eid]
    assert len(dies) == 1
    assert dies[0]["Actor"]["Attributes"]["exitCode"] == "7"
    # Its supervisor is gone once the exit is recorded.
    assert wait_until(lambda: not supervisors(eng), 5), supervisors(eng)


def test_detached_exec_outlives_accept_yes_serve(engine_factory, busybox_tar):
    eng = engine_factory("accept")
    import_busybox(eng, busybox_tar)
    name = f"xd-{uuid.uuid4().hex[:8]}"
    eng.docker("run", "-d", "--name", name, "busybox", "sleep", "300")
    try:
        check_detached_exec_runs_to_its_end(eng, name)
    finally:
        eng.docker("rm", "-f", name, check=False)


@pytest.fixture
def running(engine, busybox):
    n = f"xd-{uuid.uuid4().hex[:8]}"
    engine.docker("run", "-d", "--name", n, "busybox", "sleep", "300")
    yield n
    engine.docker("rm", "-f", n, check=False)


def test_detached_exec_outlives_killed_serve(engine, running):
    check_detached_exec_runs_to_its_end(engine, running, kill_serve=True)


def test_detached_exec_start_failure(engine, running):
    rc, out, err = engine.docker("exec", "-d", running, "nosuch", check=False)
    assert rc != 0
    assert "executable file not found" in err
    eid = last_exec_id(engine, running)
    info = exec_inspect(engine, eid)
    assert (info["Running"], info["ExitCode"]) == (False, 126)
    assert wait_until(lambda: not supervisors(engine), 5), supervisors(engine)


def hijacked_start(eng, eid: str) -> socket.socket:
    """POST /exec/{id}/start with Upgrade: tcp; returns the socket after the 101."""
    s = socket.socket(socket.AF_UNIX)
    s.connect(eng.sock)
    body = b'{"Detach":false,"Tty":false}'
    s.sendall(b"POST /exec/" + eid.encode() + b"/start HTTP/1.1\r\nHost: x\r\n"
              b"Content-Type: application/json\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n"
              b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    s.settimeout(10)
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(4096)
        assert chunk, head
        head += chunk
    assert head.startswith(b"HTTP/1.1 101"), head
    return s


def test_attached_exec_is_not_running_forever_after_serve_killed(engine, running):
    r = engine.api("POST", f"/containers/{running}/exec",
                   body=json.dumps({"Cmd": ["sleep", "2"], "AttachStdout": True}),
                   headers={"Content-Type": "application/json"})
    eid = r.json()["Id"]
    s = hijacked_start(engine, eid)
    try:
        assert exec_inspect(engine, eid)["Running"] is True
        for pid in serve_pids(engine.data_root):
            os.kill(pid, signal.SIGKILL)
        # The next request (a new serve) tells the truth: running while the process lives...
        assert exec_inspect(engine, eid)["Running"] is True
        # ...and not running once it is gone; nobody saw its exit code.
        assert wait_until(lambda: not exec_inspect(engine, eid)["Running"], 10)
        info = exec_inspect(engine, eid)
        assert (info["Running"], info["ExitCode"], info["Pid"]) == (False, 255, 0)
    finally:
        s.close()


def test_attached_exec_still_records_its_exit(engine, running):
    """The attached path is unchanged: exit code recorded before the stream ends."""
    rc, _, _ = engine.docker("exec", running, "sh", "-c", "exit 9", check=False)
    assert rc == 9
    eid = last_exec_id(engine, running)
    info = exec_inspect(engine, eid)
    assert (info["Running"], info["ExitCode"]) == (False, 9)


def test_removing_the_container_ends_its_detached_exec(engine, busybox):
    name = f"xd-{uuid.uuid4().hex[:8]}"
    engine.docker("run", "-d", "--name", name, "busybox", "sleep", "300")
    _, cid, _ = engine.docker("inspect", "--format", "{{.Id}}", name)
    try:
        engine.docker("exec", "-d", name, "sleep", "100")
        assert supervisors(engine)
    finally:
        engine.docker("rm", "-f", name)
    assert wait_until(lambda: not supervisors(engine), 10), supervisors(engine)
    # Its supervisor did not bring the removed container's run dir back.
    assert not (engine.run_root / "containers" / cid.strip()[:16]).exists()
