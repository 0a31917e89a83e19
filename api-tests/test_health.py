"""Health checks, run by each container's monitor: docker CLI flags, inspect, ps, filters,
events, timeouts, start periods, images' HEALTHCHECK, docker-py, and `berth serve` going away."""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.parse
import uuid

import pytest

from helpers import serve_pids, wait_until

pytestmark = pytest.mark.usefixtures("busybox")

# Keeps the containers alive without output.
LONG = ["busybox", "sleep", "300"]


def api_at_least(engine, version: str) -> bool:
    """For runs against an external (older) engine: Docker 28 is API 1.50."""
    have = tuple(int(x) for x in engine.server_api_version().split("."))
    return have >= tuple(int(x) for x in version.split("."))


def name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def inspect(engine, cid: str) -> dict:
    _, out, _ = engine.docker("inspect", cid)
    return json.loads(out)[0]


def health(engine, cid: str) -> dict | None:
    return inspect(engine, cid)["State"].get("Health")


def wait_status(engine, cid: str, status: str, timeout: float = 20) -> dict:
    ok = wait_until(lambda: (health(engine, cid) or {}).get("Status") == status, timeout, 0.2)
    h = health(engine, cid)
    assert ok, f"health never became {status}: {h}"
    return h


def ps_status(engine, n: str) -> str:
    _, out, _ = engine.docker("ps", "-a", "--filter", f"name=^{n}$", "--format", "{{.Status}}")
    return out.strip()


def ps_names(engine, *filters: str) -> list[str]:
    args = []
    for f in filters:
        args += ["--filter", f]
    _, out, _ = engine.docker("ps", "-a", *args, "--format", "{{.Names}}")
    return out.split()


def events(engine, since: float, *filters: str) -> list[dict]:
    args = []
    for f in filters:
        args += ["--filter", f]
    _, out, _ = engine.docker("events", "--since", f"{since:.3f}", "--until", f"{time.time() + 0.5:.3f}",
                              *args, "--format", "{{json .}}")
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def health_events(engine, since: float, n: str, expected: list[str]) -> list[dict]:
    """The container's health_status events, waiting a little for the expected ones: the
    monitor writes state.json first and runs the event command after."""
    got = []

    def check():
        nonlocal got
        got = events(engine, since, "event=health_status", f"container={n}")
        return [e["Action"] for e in got] == expected

    assert wait_until(check, 5, 0.3), got
    return got


def test_passing_check_becomes_healthy(engine):
    since = time.time()
    n = name("hc-ok")
    engine.docker("run", "-d", "--name", n, "--health-cmd", "true", "--health-interval", "1s", *LONG)
    h = wait_status(engine, n, "healthy", 15)
    assert h["FailingStreak"] == 0
    assert h["Log"] and all(e["ExitCode"] == 0 for e in h["Log"]), h
    entry = h["Log"][-1]
    assert entry["Start"] <= entry["End"] and entry["Start"].endswith("Z"), entry
    assert entry["Output"] == ""
    assert inspect(engine, n)["Config"]["Healthcheck"] == {"Test": ["CMD-SHELL", "true"],
                                                          "Interval": 1_000_000_000}
    status = ps_status(engine, n)
    assert status.startswith("Up ") and status.endswith(" (healthy)"), status
    assert n in ps_names(engine, "health=healthy")
    assert n not in ps_names(engine, "health=unhealthy")
    assert n not in ps_names(engine, "health=none")
    # Only the last five results are kept.
    assert wait_until(lambda: len(health(engine, n)["Log"]) == 5, 15, 0.3), health(engine, n)
    evs = health_events(engine, since, n, ["health_status: healthy"])
    assert evs[0]["Actor"]["Attributes"]["name"] == n
    assert evs[0]["Actor"]["Attributes"]["image"] == "busybox"
    assert evs[0]["status"] == "health_status: healthy" and evs[0]["from"] == "busybox"
    engine.docker("rm", "-f", n)


def test_failing_check_becomes_unhealthy(engine):
    since = time.time()
    n = name("hc-bad")
    engine.docker("run", "-d", "--name", n, "--health-cmd", "echo checking; false",
                  "--health-interval", "1s", "--health-retries", "2", *LONG)
    h = wait_status(engine, n, "unhealthy", 15)
    assert h["FailingStreak"] >= 2, h
    assert len(h["Log"]) >= 2 and all(e["ExitCode"] == 1 for e in h["Log"]), h
    assert h["Log"][-1]["Output"] == "checking\n"
    assert ps_status(engine, n).endswith(" (unhealthy)"), ps_status(engine, n)
    assert n in ps_names(engine, "health=unhealthy")
    assert n not in ps_names(engine, "health=healthy")
    # Still running: an unhealthy container is not stopped.
    assert inspect(engine, n)["State"]["Running"]
    health_events(engine, since, n, ["health_status: unhealthy"])
    # The streak keeps counting.
    streak = h["FailingStreak"]
    assert wait_until(lambda: health(engine, n)["FailingStreak"] > streak, 10, 0.3)
    engine.docker("rm", "-f", n)


def test_health_events_through_the_api(engine):
    since = time.time()
    n = name("hc-api")
    engine.docker("run", "-d", "--name", n, "--health-cmd", "true", "--health-interval", "1s", *LONG)
    wait_status(engine, n, "healthy", 15)
    health_events(engine, since, n, ["health_status: healthy"])
    filters = urllib.parse.quote(json.dumps({"event": ["health_status"], "container": [n]}))
    r = engine.api("GET", f"/events?since={since:.3f}&until={time.time():.3f}&filters={filters}")
    assert r.status == 200
    evs = r.json_lines()
    assert [e["Action"] for e in evs] == ["health_status: healthy"], evs
    assert evs[0]["Type"] == "container" and evs[0]["Actor"]["ID"] == inspect(engine, n)["Id"]
    engine.docker("rm", "-f", n)


def test_slow_probe_is_killed_at_its_timeout(engine):
    n = name("hc-slow")
    _, cid, _ = engine.docker("run", "-d", "--name", n, "--health-cmd", "echo begun; sleep 10",
                              "--health-timeout", "1s", "--health-interval", "1s",
                              "--health-retries", "1", *LONG)
    cid = cid.strip()
    t0 = time.monotonic()
    h = wait_status(engine, n, "unhealthy", 15)
    # Interval 1 s + timeout 1 s, not the probe's 10 s.
    assert time.monotonic() - t0 < 8
    entry = h["Log"][0]
    assert entry["ExitCode"] == -1, entry
    # What the probe wrote before it was killed follows the text since Docker 23 (API 1.42).
    want = "Health check exceeded timeout (1s)" + (": begun\n" if api_at_least(engine, "1.42") else "")
    assert entry["Output"] == want, entry

    def probes_left():
        found = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                argv = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")
                cg = open(f"/proc/{pid}/cgroup").read()
            except OSError:
                continue
            if argv[:2] == [b"sleep", b"10"] and cid in cg:
                found.append(pid)
        return found

    # A killed probe is gone at once; at most the one running now is there.
    assert wait_until(lambda: len(probes_left()) <= 1, 5), probes_left()
    engine.docker("rm", "-f", n)
    assert wait_until(lambda: not probes_left(), 10), probes_left()


def test_start_period_failures_do_not_count(engine):
    if not api_at_least(engine, "1.44"):
        pytest.skip("--health-start-interval needs API 1.44")
    n = name("hc-start")
    engine.docker("run", "-d", "--name", n, "--health-cmd", "false", "--health-interval", "1s",
                  "--health-retries", "1", "--health-start-period", "4s",
                  "--health-start-interval", "1s", *LONG)
    # Failures within the start period are logged but the container is still starting.
    assert wait_until(lambda: len((health(engine, n) or {}).get("Log", [])) >= 2, 10, 0.2)
    h = health(engine, n)
    assert h["Status"] == "starting", h
    assert h["FailingStreak"] == 0, h
    assert "(health: starting)" in ps_status(engine, n)
    assert n in ps_names(engine, "health=starting")
    # The first failure after it counts (retries 1).
    h = wait_status(engine, n, "unhealthy", 15)
    assert h["FailingStreak"] == 1, h
    engine.docker("rm", "-f", n)


def test_stop_and_start_again(engine):
    if not api_at_least(engine, "1.44"):
        pytest.skip("--health-start-interval needs API 1.44")
    n = name("hc-restart")
    # First probe after the 1 s start interval, then every 30 s.
    engine.docker("run", "-d", "--name", n, "--health-cmd", "true", "--health-interval", "30s",
                  "--health-start-period", "60s", "--health-start-interval", "1s", *LONG)
    assert health(engine, n)["Status"] == "starting"
    wait_status(engine, n, "healthy", 15)
    engine.docker("stop", "-t", "0", n)
    # Docker marks a stopped container's checks unhealthy and keeps the log.
    h = health(engine, n)
    assert h["Status"] == "unhealthy" and len(h["Log"]) == 1, h
    assert ps_status(engine, n).startswith("Exited ")
    engine.docker("start", n)
    h = health(engine, n)
    assert h["Status"] == "starting" and h["FailingStreak"] == 0, h
    h = wait_status(engine, n, "healthy", 15)
    assert len(h["Log"]) == 2, h
    engine.docker("rm", "-f", n)


def test_created_container_has_no_health_yet(engine):
    n = name("hc-created")
    engine.docker("create", "--name", n, "--health-cmd", "true", *LONG)
    c = inspect(engine, n)
    assert c["Config"]["Healthcheck"]["Test"] == ["CMD-SHELL", "true"]
    assert "Health" not in c["State"], c["State"]
    assert n in ps_names(engine, "health=none")
    engine.docker("rm", n)


def test_restart_policy_restarts_the_checks(engine):
    since = time.time()
    n = name("hc-policy")
    engine.docker("run", "-d", "--name", n, "--restart", "on-failure:1", "--health-cmd", "true",
                  "--health-interval", "1s", "busybox", "sh", "-c", "sleep 3; exit 1")
    wait_status(engine, n, "healthy", 10)
    # After the automatic restart: starting again, then healthy again (a second event).
    assert wait_until(lambda: inspect(engine, n)["RestartCount"] == 1, 15)
    health_events(engine, since, n, ["health_status: healthy", "health_status: healthy"])
    engine.docker("rm", "-f", n)


def test_probe_runs_as_the_container_process_does(engine):
    # User, working dir and environment are the container's; a tty container's probe has none.
    n = name("hc-ctx")
    engine.docker("run", "-d", "-t", "--name", n, "--user", "1000", "--workdir", "/tmp",
                  "-e", "FOO=bar", "--health-cmd",
                  'test "$(id -u)" = 1000 && test "$PWD" = /tmp && test "$FOO" = bar && ! test -t 1',
                  "--health-interval", "1s", "--health-retries", "1", *LONG)
    h = wait_status(engine, n, "healthy", 15)
    assert h["Log"][0]["ExitCode"] == 0, h
    engine.docker("rm", "-f", n)


def test_image_healthcheck_and_no_healthcheck(engine, busybox_tar):
    ref = f"hc-image:{uuid.uuid4().hex[:8]}"
    engine.docker("import", "-c", 'CMD ["sleep", "300"]',
                  "-c", "HEALTHCHECK --interval=1s --retries=1 CMD false", str(busybox_tar), ref)
    inherited, disabled = name("hc-inherit"), name("hc-none")
    engine.docker("run", "-d", "--name", inherited, ref)
    engine.docker("run", "-d", "--name", disabled, "--no-healthcheck", ref)
    # The image's check is merged into the container's config and runs.
    cfg = inspect(engine, inherited)["Config"]["Healthcheck"]
    # The shell form of the Dockerfile instruction.
    assert cfg["Test"] == ["CMD-SHELL", "false"] and cfg["Interval"] == 1_000_000_000, cfg
    wait_status(engine, inherited, "unhealthy", 15)
    # --no-healthcheck: Test NONE, no Health, never probed.
    c = inspect(engine, disabled)
    assert c["Config"]["Healthcheck"]["Test"] == ["NONE"]
    assert "Health" not in c["State"], c["State"]
    assert disabled in ps_names(engine, "health=none")
    assert disabled not in ps_names(engine, "health=unhealthy")
    assert "(" not in ps_status(engine, disabled)
    # A container without any check is `none` too; its ps status has no health part.
    plain = name("hc-plain")
    engine.docker("run", "-d", "--name", plain, *LONG)
    assert plain in ps_names(engine, "health=none")
    engine.docker("rm", "-f", inherited, disabled, plain)
    engine.docker("rmi", ref)


def test_bad_values_are_refused(engine):
    rc, _, err = engine.docker("ps", "--filter", "health=sick", check=False)
    assert rc != 0
    if api_at_least(engine, "1.50"):
        assert ("invalid filter 'health=sick': invalid value for health (sick): must be one of "
                "none, starting, healthy, unhealthy") in err
    rc, _, err = engine.docker("create", "--health-cmd", "true", "--health-interval", "500us",
                               "busybox", check=False)
    assert rc != 0
    assert "Interval in Healthcheck cannot be less than 1ms" in err


def test_paused_container_is_not_probed(engine):
    n = name("hc-pause")
    engine.docker("run", "-d", "--name", n, "--health-cmd", "true", "--health-interval", "1s",
                  "--health-timeout", "1s", *LONG)
    wait_status(engine, n, "healthy", 15)
    engine.docker("pause", n)
    # Docker stops the checks of a paused container and calls it unhealthy.
    h = wait_status(engine, n, "unhealthy", 10)
    assert ps_status(engine, n).endswith(" (Paused)"), ps_status(engine, n)
    time.sleep(2.5)
    h = health(engine, n)
    assert all(e["ExitCode"] == 0 for e in h["Log"]), h
    engine.docker("unpause", n)
    wait_status(engine, n, "healthy", 10)
    engine.docker("rm", "-f", n)


def test_docker_py_healthcheck(client):
    c = client.containers.run("busybox", ["sleep", "300"], detach=True,
                              healthcheck={"test": ["CMD-SHELL", "exit 3"], "interval": 1_000_000_000,
                                           "timeout": 2_000_000_000, "retries": 1})
    try:
        def state():
            c.reload()
            return c.attrs["State"].get("Health", {})

        assert wait_until(lambda: state().get("Status") == "unhealthy", 15, 0.2), state()
        assert c.health == "unhealthy"
        assert state()["Log"][-1]["ExitCode"] == 3
        assert c.attrs["Config"]["Healthcheck"]["Timeout"] == 2_000_000_000
        assert [x.id for x in client.containers.list(filters={"health": "unhealthy"})].count(c.id) == 1
    finally:
        c.remove(force=True)


def test_health_goes_on_without_berth_serve(engine):
    if engine.external:
        pytest.skip("kills berth serve processes")
    n = name("hc-alone")
    since = time.time()
    # Unhealthy until the container creates /tmp/ok, 3 s in.
    engine.docker("run", "-d", "--name", n, "--health-cmd", "test -e /tmp/ok",
                  "--health-interval", "1s", "--health-retries", "1", "busybox", "sh", "-c",
                  "sleep 3; touch /tmp/ok; sleep 300")
    wait_status(engine, n, "unhealthy", 10)
    killed_at = time.time()
    for pid in serve_pids(engine.data_root):
        os.kill(pid, signal.SIGKILL)
    # No request while the check turns healthy: nothing but the monitor is there to see it.
    time.sleep(7)
    asked_at = time.time()
    h = health(engine, n)
    assert h["Status"] == "healthy", h
    evs = health_events(engine, since, n, ["health_status: unhealthy", "health_status: healthy"])
    # Recorded while no `berth serve` ran.
    assert killed_at < evs[1]["timeNano"] / 1e9 < asked_at, (killed_at, asked_at, evs)
    engine.docker("rm", "-f", n)


def test_oom_kill_is_reported(engine):
    # The monitor reads the memory cgroup's oom_kill counter (v1 memory.oom_control, v2
    # memory.events) at the exit; Docker logs `oom` before `die`.
    since = time.time()
    n = name("oom")
    rc, _, _ = engine.docker("run", "--name", n, "-m", "8m", "--memory-swap", "8m", "busybox",
                             "sh", "-c", "x=aaaaaaaa; while true; do x=$x$x; done", check=False)
    st = inspect(engine, n)["State"]
    assert (rc, st["ExitCode"], st["OOMKilled"]) == (137, 137, True), st
    # `run` returns with the exit code; the monitor's events follow at once.
    actions = []

    def told():
        nonlocal actions
        actions = [e["Action"] for e in events(engine, since, f"container={n}")]
        return "die" in actions

    assert wait_until(told, 5, 0.3), actions
    assert "oom" in actions and actions.index("oom") < actions.index("die"), actions
    engine.docker("rm", n)
    # An ordinary kill is not an OOM kill.
    m = name("not-oom")
    engine.docker("run", "-d", "--name", m, "-m", "64m", *LONG)
    engine.docker("kill", m)
    st = inspect(engine, m)["State"]
    assert (st["ExitCode"], st["OOMKilled"]) == (137, False), st
    engine.docker("rm", m)


def test_oom_kill_of_a_child_is_reported_while_running(engine):
    since = time.time()
    n = name("oom-child")
    # The inner shell outgrows the limit and is killed; the container's init lives on.
    engine.docker("run", "-d", "--name", n, "-m", "8m", "--memory-swap", "8m", "busybox", "sh", "-c",
                  "sh -c 'x=aaaaaaaa; while true; do x=$x$x; done'; echo inner gone; sleep 300")
    assert wait_until(lambda: "inner gone" in engine.docker("logs", n)[1], 20)

    def oom_events():
        return [e for e in events(engine, since, f"container={n}") if e["Action"] == "oom"]

    assert wait_until(lambda: len(oom_events()) == 1, 5), events(engine, since, f"container={n}")
    if not api_at_least(engine, "1.50"):
        engine.docker("rm", "-f", n)
        return
    # As moby 28 does on the OOM event: the run counts as OOM-killed at once.
    assert wait_until(lambda: inspect(engine, n)["State"]["OOMKilled"], 5), inspect(engine, n)["State"]
    assert inspect(engine, n)["State"]["Running"]
    engine.docker("kill", n)
    st = inspect(engine, n)["State"]
    assert (st["ExitCode"], st["OOMKilled"]) == (137, True), st
    # Told once, not again at the exit.
    assert wait_until(lambda: "die" in [e["Action"] for e in events(engine, since, f"container={n}")], 5)
    assert len(oom_events()) == 1
    engine.docker("rm", n)
