"""Looking into and adjusting running containers: top, stats, pause/unpause, update."""

from __future__ import annotations

import json
import os
import threading
import time
import uuid

import pytest

pytestmark = pytest.mark.usefixtures("busybox")


def name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def running(engine):
    n = name("ops")
    _, out, _ = engine.docker("run", "-d", "--name", n, "busybox", "sleep", "300")
    cid = out.strip()
    yield n, cid
    engine.docker("unpause", n, check=False)
    engine.docker("rm", "-f", n, check=False)


def cgroup_file(cid: str, ctrl: str, v1: str, v2: str) -> str:
    if os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
        return f"/sys/fs/cgroup/berth/{cid}/{v2}"
    return f"/sys/fs/cgroup/{ctrl}/berth/{cid}/{v1}"


def test_top_shows_the_container_process(engine, running):
    n, _ = running
    _, out, _ = engine.docker("top", n)
    lines = out.splitlines()
    assert "PID" in lines[0].split()
    assert any("sleep 300" in line for line in lines[1:]), out
    # Only the container's processes: no host init.
    assert not any(line.rstrip().endswith("/sbin/init") for line in lines[1:])
    r = engine.api("GET", f"/containers/{n}/top?ps_args=-o%20pid,comm")
    assert r.status == 200, r.body
    v = r.json()
    assert v["Titles"] == ["PID", "COMMAND"]
    assert [p[1] for p in v["Processes"]] == ["sleep"]


def test_stats_cli_and_docker_py(engine, client, running):
    n, cid = running
    _, out, _ = engine.docker("stats", "--no-stream", "--format",
                              "{{.Name}} {{.MemUsage}}", n)
    row = out.strip()
    assert row.startswith(n + " "), out
    assert not row.split(" ", 1)[1].startswith("0B"), out
    s = client.containers.get(n).stats(stream=False)
    assert s["id"] == cid and s["name"] == "/" + n
    assert "total_usage" in s["precpu_stats"]["cpu_usage"]
    assert s["precpu_stats"]["cpu_usage"]["total_usage"] > 0
    assert s["preread"] != "0001-01-01T00:00:00Z"
    assert s["memory_stats"]["usage"] > 0 and s["memory_stats"]["limit"] > 0
    assert s["pids_stats"]["current"] >= 1
    assert s["cpu_stats"]["system_cpu_usage"] > 0 and s["cpu_stats"]["online_cpus"] >= 1
    # one-shot: at once, precpu empty.
    r = engine.api("GET", f"/containers/{n}/stats?stream=0&one-shot=1")
    v = r.json()
    assert r.status == 200 and v["preread"] == "0001-01-01T00:00:00Z"
    assert v["memory_stats"]["usage"] > 0
    r = engine.api("GET", f"/containers/{n}/stats?stream=1&one-shot=1")
    assert r.status == 400
    assert r.json()["message"] == "cannot have stream=true and one-shot=true"


def test_stats_stream_sends_objects_until_the_container_stops(engine, running):
    n, _ = running
    t = threading.Timer(2.5, lambda: engine.docker("kill", n, check=False))
    t.start()
    r = engine.api("GET", f"/containers/{n}/stats", timeout=30)
    t.join()
    objs = r.json_lines()
    assert len(objs) >= 2
    assert objs[-1]["precpu_stats"]["cpu_usage"]["total_usage"] > 0


def test_stats_of_a_stopped_container(engine):
    n = name("stopped")
    _, out, _ = engine.docker("create", "--name", n, "busybox", "true")
    try:
        r = engine.api("GET", f"/containers/{n}/stats?stream=0")
        assert r.status == 200
        v = r.json()
        assert v["name"] == "/" + n and v["id"] == out.strip()
        assert v["read"] == "0001-01-01T00:00:00Z" and v["memory_stats"] == {}
    finally:
        engine.docker("rm", "-f", n)


def test_pause_unpause(engine, running):
    n, cid = running
    engine.docker("pause", n)
    _, out, _ = engine.docker("ps", "--filter", f"name=^{n}$", "--format", "{{.Status}}")
    assert out.strip().endswith("(Paused)"), out
    _, out, _ = engine.docker("inspect", "-f", "{{.State.Status}} {{.State.Paused}}", n)
    assert out.strip() == "paused true"
    state = open(cgroup_file(cid, "freezer", "freezer.state", "cgroup.freeze")).read().strip()
    assert state in ("FROZEN", "1")
    rc, _, err = engine.docker("pause", n, check=False)
    assert rc != 0 and f"Container {cid} is already paused" in err
    rc, _, err = engine.docker("kill", "-s", "TERM", n, check=False)
    assert rc != 0
    assert f"container {cid} is paused. Unpause the container before stopping or killing" in err
    engine.docker("unpause", n)
    _, out, _ = engine.docker("inspect", "-f", "{{.State.Status}}", n)
    assert out.strip() == "running"
    rc, _, err = engine.docker("unpause", n, check=False)
    assert rc != 0 and f"Container {cid} is not paused" in err
    # The process runs again.
    _, out, _ = engine.docker("top", n)
    assert "sleep 300" in out


def test_update_memory(engine, running):
    n, cid = running
    engine.docker("update", "--memory", "64m", "--pids-limit", "50", n)
    _, out, _ = engine.docker("inspect", "-f", "{{.HostConfig.Memory}} {{.HostConfig.PidsLimit}}", n)
    assert out.split() == ["67108864", "50"]
    limit = open(cgroup_file(cid, "memory", "memory.limit_in_bytes", "memory.max")).read()
    assert int(limit) == 67108864
    pids = open(cgroup_file(cid, "pids", "pids.max", "pids.max")).read()
    assert pids.strip() == "50"
    _, out, _ = engine.docker("stats", "--no-stream", "--format", "{{.MemUsage}}", n)
    assert out.strip().endswith("/ 64MiB"), out
    engine.docker("update", "--restart", "on-failure:3", n)
    _, out, _ = engine.docker("inspect", "-f",
                              "{{.HostConfig.RestartPolicy.Name}}:{{.HostConfig.RestartPolicy.MaximumRetryCount}}", n)
    assert out.strip() == "on-failure:3"


def test_update_autoremove_restart_policy(engine):
    n = name("autorm")
    engine.docker("create", "--rm", "--name", n, "busybox", "true")
    try:
        rc, _, err = engine.docker("update", "--restart", "always", n, check=False)
        assert rc != 0
        assert "Restart policy cannot be updated because AutoRemove is enabled for the container" in err
    finally:
        engine.docker("rm", "-f", n)


def test_errors_for_a_stopped_container(engine):
    n = name("stopped")
    _, out, _ = engine.docker("create", "--name", n, "busybox", "sleep", "300")
    cid = out.strip()
    try:
        rc, _, err = engine.docker("top", n, check=False)
        assert rc != 0 and f"container {cid} is not running" in err
        rc, _, err = engine.docker("pause", n, check=False)
        assert rc != 0 and f"Container {cid} is not running" in err
        rc, _, err = engine.docker("unpause", n, check=False)
        assert rc != 0 and f"Container {cid} is not paused" in err
        r = engine.api("POST", f"/containers/{n}/pause")
        assert r.status == 409
        # Update of a stopped container is stored and applied at start.
        engine.docker("update", "--memory", "32m", n)
        _, out, _ = engine.docker("inspect", "-f", "{{.HostConfig.Memory}}", n)
        assert out.strip() == "33554432"
        r = engine.api("GET", "/containers/nonexistent-xyz/top")
        assert r.status == 404
    finally:
        engine.docker("rm", "-f", n)



def test_sigkill_of_a_paused_container(engine):
    n = name("killpaused")
    engine.docker("run", "-d", "--name", n, "busybox", "sleep", "300")
    try:
        engine.docker("pause", n)
        t0 = time.time()
        engine.docker("kill", n)
        assert time.time() - t0 < 10
        _, out, _ = engine.docker("inspect", "-f", "{{.State.Status}} {{.State.Paused}}", n)
        assert out.strip() == "exited false"
    finally:
        engine.docker("rm", "-f", n)


def test_start_after_a_paused_container_was_killed(engine):
    n = name("killpaused")
    engine.docker("run", "-d", "--name", n, "busybox", "sleep", "300")
    try:
        engine.docker("pause", n)
        engine.docker("kill", n)
        rc, _, err = engine.docker("start", n, check=False)
        assert rc == 0, err
    finally:
        engine.docker("rm", "-f", n)


def test_force_remove_and_stop_of_paused_containers(engine):
    """A frozen process cannot die until thawed: rm -f and stop must still end it promptly."""
    n = name("frozen")
    engine.docker("run", "-d", "--name", n, "busybox", "sleep", "300")
    engine.docker("pause", n)
    t0 = time.monotonic()
    engine.docker("rm", "-f", n)
    assert time.monotonic() - t0 < 10
    assert engine.docker("inspect", n, check=False)[0] == 1
    engine.docker("run", "-d", "--name", n, "busybox", "sleep", "300")
    engine.docker("pause", n)
    engine.docker("stop", "-t", "1", n)
    st = json.loads(engine.docker("inspect", n)[1])[0]["State"]
    assert (st["Status"], st["Paused"]) == ("exited", False)
    engine.docker("rm", n)
