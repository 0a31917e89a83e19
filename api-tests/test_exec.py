"""docker exec: create, start (hijacked, plain, detached), inspect, resize."""

from __future__ import annotations

import json
import threading
import time
import uuid

import pytest

from helpers import wait_until

pytestmark = pytest.mark.usefixtures("busybox")


@pytest.fixture
def running(engine):
    n = f"exec-{uuid.uuid4().hex[:8]}"
    engine.docker("run", "-d", "--name", n, "busybox", "sleep", "300")
    yield n
    engine.docker("rm", "-f", n, check=False)


def test_exec_echo(engine, running):
    rc, out, err = engine.docker("exec", running, "echo", "hi")
    assert (rc, out) == (0, "hi\n"), err


def test_exec_exit_code(engine, running):
    rc, _, _ = engine.docker("exec", running, "sh", "-c", "exit 5", check=False)
    assert rc == 5


def test_exec_stdin(engine, running):
    rc, out, err = engine.docker("exec", "-i", running, "cat", input="data")
    assert (rc, out) == (0, "data"), err


def test_exec_detached(engine, running):
    engine.docker("exec", "-d", running, "sh", "-c", "echo x > /tmp/f")
    assert wait_until(
        lambda: engine.docker("exec", running, "cat", "/tmp/f", check=False)[1] == "x\n", 10)


def test_exec_env_and_workdir(engine, running):
    _, out, _ = engine.docker("exec", "-e", "A=1", "-w", "/tmp", running, "sh", "-c", "echo $A; pwd")
    assert out == "1\n/tmp\n"


def test_exec_user(engine, running):
    _, out, _ = engine.docker("exec", "-u", "nobody", running, "id", "-u")
    assert out == "65534\n"


def test_exec_tty(engine, running):
    rc, out, err = engine.docker("exec", "-t", running, "sh", "-c", "stty size", check=False)
    assert rc == 0, err
    parts = out.strip().split()
    assert len(parts) == 2 and all(p.isdigit() for p in parts), out


def test_exec_stopped_container(engine):
    n = f"exec-stopped-{uuid.uuid4().hex[:8]}"
    engine.docker("create", "--name", n, "busybox", "true")
    try:
        rc, _, err = engine.docker("exec", n, "true", check=False)
        assert rc != 0
        assert "is not running" in err
    finally:
        engine.docker("rm", "-f", n, check=False)


def post(engine, path, body):
    return engine.api("POST", path, body=json.dumps(body),
                      headers={"Content-Type": "application/json"})


def test_exec_inspect_and_errors(engine, running):
    r = post(engine, f"/containers/{running}/exec", {"Cmd": []})
    assert r.status == 400
    assert json.loads(r.body)["message"] == "No exec command specified"
    r = engine.api("GET", "/exec/" + "0" * 64 + "/json")
    assert r.status == 404
    assert json.loads(r.body)["message"] == "No such exec instance: " + "0" * 64
    r = post(engine, f"/containers/{running}/exec",
             {"Cmd": ["sh", "-c", "exit 3"], "AttachStdout": True})
    assert r.status == 201
    eid = json.loads(r.body)["Id"]
    info = json.loads(engine.api("GET", f"/exec/{eid}/json").body)
    assert (info["ID"], info["Running"], info["ExitCode"]) == (eid, False, None)
    assert info["ProcessConfig"]["entrypoint"] == "sh"
    r = post(engine, f"/exec/{eid}/start", {"Detach": True})
    assert r.status == 200
    assert wait_until(
        lambda: json.loads(engine.api("GET", f"/exec/{eid}/json").body)["ExitCode"] == 3, 10)
    r = post(engine, f"/exec/{eid}/start", {"Detach": True})
    assert r.status == 409


def test_docker_py_exec_run(client, running):
    c = client.containers.get(running)
    assert tuple(c.exec_run("echo py")) == (0, b"py\n")
    rc, (out, err) = c.exec_run(["sh", "-c", "echo o; echo e >&2"], demux=True)
    assert (rc, out, err) == (0, b"o\n", b"e\n")


def test_exec_start_failures_are_126(engine, running):
    rc, out, err = engine.docker("exec", running, "nosuch", check=False)
    assert rc == 126
    assert "executable file not found" in out + err
    rc, out, err = engine.docker("exec", "-u", "nouser", running, "true", check=False)
    assert rc == 126
    assert "unable to find user nouser" in out + err


def test_exec_privileged_caps(engine, running):
    _, plain, _ = engine.docker("exec", running, "sh", "-c", "grep CapEff /proc/self/status")
    _, priv, _ = engine.docker("exec", "--privileged", running, "sh", "-c",
                               "grep CapEff /proc/self/status")
    assert int(priv.split()[1], 16) > int(plain.split()[1], 16)


def test_exec_tty_resize(engine, running):
    r = post(engine, f"/containers/{running}/exec",
             {"Cmd": ["sh", "-c", "sleep 1; stty size"], "Tty": True, "AttachStdout": True})
    eid = json.loads(r.body)["Id"]
    res = {}
    t = threading.Thread(target=lambda: res.update(
        r=post(engine, f"/exec/{eid}/start", {"Tty": True})))
    t.start()
    time.sleep(0.3)
    assert engine.api("POST", f"/exec/{eid}/resize?h=33&w=99").status == 200
    t.join()
    assert res["r"].body == b"33 99\r\n"
    info = json.loads(engine.api("GET", f"/exec/{eid}/json").body)
    assert (info["Running"], info["ExitCode"]) == (False, 0)


def test_exec_events(engine, running):
    engine.docker("exec", running, "true")
    until = str(int(time.time()) + 1)
    _, out, _ = engine.docker("events", "--since", "0", "--until", until, "--filter",
                              f"container={running}", "--format", "{{.Action}}")
    actions = out.split("\n")
    assert "exec_create: true" in actions and "exec_start: true" in actions
    assert "exec_die" in actions


def read_all(sock, timeout=10) -> bytes:
    sock.settimeout(timeout)
    data = b""
    while True:
        d = sock.recv(4096)
        if not d:
            return data
        data += d


def test_exec_interactive_tty(client, running):
    c = client.containers.get(running)
    eid = client.api.exec_create(c.id, "sh", stdin=True, tty=True)["Id"]
    sock = client.api.exec_start(eid, tty=True, socket=True)._sock
    sock.sendall(b"echo hel''lo\nexit 7\n")
    data = read_all(sock)
    # Typed-ahead input is echoed by the container's tty and again by ash's line editor.
    assert b"hello\r\n" in data
    assert client.api.exec_inspect(eid)["ExitCode"] == 7


def test_exec_tty_detach_keys(client, running):
    c = client.containers.get(running)
    eid = client.api.exec_create(c.id, "sh", stdin=True, tty=True)["Id"]
    sock = client.api.exec_start(eid, tty=True, socket=True)._sock
    sock.sendall(b"sleep 100\n\x10\x11")
    read_all(sock)
    info = client.api.exec_inspect(eid)
    assert info["Running"] is True and info["ExitCode"] is None
