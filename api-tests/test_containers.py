"""Containers under per-container monitors: run, logs, wait, stop, kill, attach, restart policies."""

from __future__ import annotations

import json
import os
import signal
import time
import uuid

import pytest

from helpers import serve_pids, wait_until

pytestmark = pytest.mark.usefixtures("busybox")


def name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def inspect(engine, cid: str) -> dict:
    _, out, _ = engine.docker("inspect", cid)
    return json.loads(out)[0]


def test_run_rm_echo(engine):
    n = name("echo")
    rc, out, err = engine.docker("run", "--rm", "--name", n, "busybox", "echo", "hello")
    assert (rc, out) == (0, "hello\n"), err
    # --rm: the server removes it after the exit.
    assert wait_until(lambda: engine.docker("inspect", n, check=False)[0] == 1, 10)


def test_run_exit_code_and_state(engine):
    n = name("exit3")
    rc, _, _ = engine.docker("run", "--name", n, "busybox", "sh", "-c", "exit 3", check=False)
    assert rc == 3
    st = inspect(engine, n)["State"]
    assert (st["Status"], st["Running"], st["ExitCode"]) == ("exited", False, 3)
    assert st["StartedAt"] != "0001-01-01T00:00:00Z" and st["FinishedAt"] != "0001-01-01T00:00:00Z"
    _, out, _ = engine.docker("ps", "-a", "--filter", f"name=^{n}$", "--format", "{{.Status}}")
    assert out.startswith("Exited (3) ")
    _, out, _ = engine.docker("ps", "-a", "--filter", "exited=3", "--format", "{{.Names}}")
    assert n in out.split()
    engine.docker("rm", n)


def test_stdout_and_stderr_are_separate(engine, client):
    n = name("streams")
    engine.docker("run", "--name", n, "busybox", "sh", "-c", "echo out; echo err >&2")
    c = client.containers.get(n)
    assert c.logs(stdout=True, stderr=False) == b"out\n"
    assert c.logs(stdout=False, stderr=True) == b"err\n"
    rc, out, err = engine.docker("logs", n)
    assert (out, err) == ("out\n", "err\n")
    c.remove()


def test_stdin_through_attach(engine):
    rc, out, err = engine.docker("run", "--rm", "-i", "busybox", "cat", input=b"hi\nthere\n")
    assert (rc, out) == (0, "hi\nthere\n"), err


def test_detached_lifecycle(engine):
    n = name("web")
    _, cid, _ = engine.docker("run", "-d", "--name", n, "busybox", "sh", "-c",
                              "echo started; trap 'echo bye; exit 0' TERM; while true; do sleep 0.1; done")
    cid = cid.strip()
    assert len(cid) == 64
    assert wait_until(lambda: "started" in engine.docker("logs", n)[1], 10)
    _, out, _ = engine.docker("ps", "--format", "{{.ID}} {{.Names}} {{.Status}}")
    assert any(line.startswith(cid[:12]) and " Up " in f" {line.split(' ', 2)[2]}" for line in out.splitlines()), out
    st = inspect(engine, n)["State"]
    assert st["Running"] and st["Pid"] > 0
    # A second start of a running container is a no-op (304), the CLI prints the name.
    rc, out, _ = engine.docker("start", n)
    assert (rc, out.strip()) == (0, n)
    # rm without force refuses.
    rc, _, err = engine.docker("rm", n, check=False)
    assert rc == 1
    assert (f'cannot remove container "/{n}": container is running: stop the container '
            "before removing or force remove") in err
    # stop: SIGTERM reaches the trap; exit 0.
    engine.docker("stop", n)
    st = inspect(engine, n)["State"]
    assert (st["Status"], st["ExitCode"]) == ("exited", 0)
    assert "bye" in engine.docker("logs", n)[1]
    # start again, then kill: 137.
    engine.docker("start", n)
    assert inspect(engine, n)["State"]["Running"]
    engine.docker("kill", n)
    st = inspect(engine, n)["State"]
    assert (st["Status"], st["ExitCode"]) == ("exited", 137)
    rc, _, err = engine.docker("kill", n, check=False)
    assert rc == 1 and "is not running" in err
    engine.docker("rm", n)
    rc, _, err = engine.docker("inspect", n, check=False)
    assert rc == 1


def test_stop_kills_after_timeout(engine):
    n = name("stubborn")
    # sh as PID 1 ignores SIGTERM without a trap: stop must fall back to SIGKILL.
    engine.docker("run", "-d", "--name", n, "busybox", "sh", "-c", "while true; do sleep 0.1; done")
    t0 = time.monotonic()
    engine.docker("stop", "-t", "1", n)
    assert time.monotonic() - t0 >= 0.9
    assert inspect(engine, n)["State"]["ExitCode"] == 137
    rc, out, err = engine.docker("stop", n)  # already stopped: 304, still success
    assert rc == 0
    engine.docker("rm", n)


def test_wait_and_remove_force(engine):
    n = name("waiter")
    engine.docker("run", "-d", "--name", n, "busybox", "sh", "-c", "sleep 0.5; exit 7")
    rc, out, _ = engine.docker("wait", n)
    assert out.strip() == "7"
    engine.docker("run", "-d", "--name", n + "-2", "busybox", "sleep", "300")
    engine.docker("rm", "-f", n, n + "-2")
    assert engine.docker("inspect", n + "-2", check=False)[0] == 1


def test_names_conflicts_and_unknown(engine):
    n = name("dup")
    engine.docker("create", "--name", n, "busybox", "true")
    rc, _, err = engine.docker("create", "--name", n, "busybox", "true", check=False)
    assert rc != 0
    assert f'Conflict. The container name "/{n}" is already in use by container' in err
    rc, _, err = engine.docker("start", "nope-" + n, check=False)
    assert rc == 1 and f"No such container: nope-{n}" in err
    engine.docker("rename", n, n + "-renamed")
    assert inspect(engine, n + "-renamed")["Name"] == f"/{n}-renamed"
    rc, _, err = engine.docker("rename", n + "-renamed", n + "-renamed", check=False)
    assert rc == 1 and "Renaming a container with the same name as its current name" in err
    engine.docker("rm", n + "-renamed")


def test_restart_on_failure_counts(engine):
    n = name("flaky")
    engine.docker("run", "-d", "--name", n, "--restart", "on-failure:2", "busybox", "sh", "-c", "exit 1")

    def done():
        st = inspect(engine, n)["State"]
        return st["Status"] == "exited" and inspect(engine, n)["RestartCount"] == 2

    assert wait_until(done, 20), inspect(engine, n)
    assert inspect(engine, n)["State"]["ExitCode"] == 1
    engine.docker("rm", n)


def test_restart_always_comes_back_after_a_kill(engine):
    n = name("phoenix")
    engine.docker("run", "-d", "--name", n, "--restart", "always", "busybox", "sleep", "300")
    pid = inspect(engine, n)["State"]["Pid"]
    os.kill(pid, signal.SIGKILL)
    assert wait_until(lambda: inspect(engine, n)["RestartCount"] >= 1
                      and inspect(engine, n)["State"]["Running"], 15), inspect(engine, n)
    assert inspect(engine, n)["State"]["Pid"] != pid
    # docker stop is not a failure: no restart afterwards.
    engine.docker("stop", "-t", "1", n)
    time.sleep(1)
    assert inspect(engine, n)["State"]["Status"] == "exited"
    engine.docker("rm", n)


def test_container_survives_serve_being_killed(engine):
    if engine.external:
        pytest.skip("kills berth serve processes")
    n = name("survivor")
    engine.docker("run", "-d", "--name", n, "busybox", "sh", "-c",
                  "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done")
    for pid in serve_pids(engine.data_root):
        os.kill(pid, signal.SIGKILL)
    time.sleep(1)
    st = inspect(engine, n)["State"]
    assert st["Running"], st
    before = engine.docker("logs", n)[1].count("tick")
    time.sleep(1)
    assert engine.docker("logs", n)[1].count("tick") > before
    engine.docker("rm", "-f", n)


def test_events_for_a_run(engine):
    since = time.time()
    n = name("evented")
    engine.docker("run", "--rm", "--name", n, "busybox", "true")
    until = time.time() + 1
    _, out, _ = engine.docker("events", "--since", f"{since:.3f}", "--until", f"{until:.3f}",
                              "--filter", f"container={n}", "--format", "{{.Action}}")
    actions = out.split()
    for a in ("create", "attach", "start", "die", "destroy"):
        assert a in actions, actions


def test_docker_restart_stops_starts_and_tells(engine):
    n = name("restarted")
    engine.docker("run", "-d", "--name", n, "busybox", "sleep", "300")
    try:
        first = inspect(engine, n)["State"]
        since = time.time()
        engine.docker("restart", "-t", "1", n)
        st = inspect(engine, n)["State"]
        assert st["Running"] and st["Pid"] != first["Pid"], (first, st)
        assert st["StartedAt"] != first["StartedAt"]
        until = time.time() + 1
        _, out, _ = engine.docker("events", "--since", f"{since:.3f}", "--until", f"{until:.3f}",
                                  "--filter", f"container={n}", "--format", "{{.Action}}")
        actions = out.split()
        assert actions.index("kill") < actions.index("start") < actions.index("restart"), actions
    finally:
        engine.docker("rm", "-f", n, check=False)


def test_docker_py_containers(client):
    out = client.containers.run("busybox", ["sh", "-c", "echo py"], remove=True)
    assert out == b"py\n"
    c = client.containers.run("busybox", ["sh", "-c", "echo a; sleep 0.2; exit 4"], detach=True)
    assert c.wait()["StatusCode"] == 4
    assert c.logs() == b"a\n"
    c.reload()
    assert c.status == "exited"
    c.remove()
    with pytest.raises(Exception) as e:
        client.containers.get(c.id)
    assert "No such container" in str(e.value)


def test_start_of_missing_command_fails_with_127(engine):
    n = name("nocmd")
    rc, _, err = engine.docker("run", "--name", n, "busybox", "definitely-not-here", check=False)
    assert rc == 127, err
    assert "executable file not found" in err
    engine.docker("rm", n, check=False)


def test_idle_exit_after_run_detached(engine_factory, busybox_tar):
    """`docker run -d` leaves a wait behind; berth serve must still exit when idle."""
    from conftest import import_busybox

    eng = engine_factory("listen", idle_timeout=1)
    import_busybox(eng, busybox_tar)
    n = name("idler")
    eng.docker("run", "-d", "--name", n, "busybox", "sleep", "300")
    assert wait_until(lambda: not serve_pids(eng.data_root), 10), serve_pids(eng.data_root)
    # The container kept running without any berth serve.
    assert inspect(eng, n)["State"]["Running"]
    eng.docker("rm", "-f", n)


def test_run_interactive_tty_in_a_terminal(engine):
    """`docker run -it` under a real pseudo-terminal (script(1)): size, output, exit code."""
    import shutil
    import subprocess

    if not shutil.which("script"):
        pytest.skip("script(1) is not installed")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
    env.update({"DOCKER_HOST": engine.host, "DOCKER_CONFIG": str(engine.docker_config)})
    cmd = "stty rows 30 cols 100; docker run --rm -it busybox sh -c 'stty size; echo TTY-OK; exit 4'"
    p = subprocess.run(["script", "-qec", cmd, "/dev/null"], env=env, capture_output=True,
                       stdin=subprocess.DEVNULL, timeout=60)
    out = p.stdout.decode(errors="replace")
    assert "30 100" in out, out
    assert "TTY-OK\r\n" in out, out
    assert p.returncode == 4, out


def test_detach_keys_and_reattach_in_a_terminal(engine):
    """ctrl-p ctrl-q leaves the container running; `docker attach` comes back to it."""
    import shutil
    import subprocess

    if not shutil.which("script"):
        pytest.skip("script(1) is not installed")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
    env.update({"DOCKER_HOST": engine.host, "DOCKER_CONFIG": str(engine.docker_config)})
    n = name("detach")

    def in_terminal(cmd: str, keys: list[tuple[float, bytes]]) -> subprocess.CompletedProcess:
        p = subprocess.Popen(["script", "-qec", cmd, "/dev/null"], env=env, stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for delay, data in keys:
            time.sleep(delay)
            p.stdin.write(data)
            p.stdin.flush()
        out, err = p.communicate(timeout=30)
        return subprocess.CompletedProcess(p.args, p.returncode, out, err)

    r = in_terminal(f"docker run -it --name {n} busybox sh",
                    [(1.5, b"echo hi-there\r"), (0.5, b"\x10\x11"), (1.0, b"")])
    assert b"hi-there\r\n" in r.stdout, r.stdout
    assert r.returncode == 0, r
    assert inspect(engine, n)["State"]["Running"]
    r = in_terminal(f"docker attach {n}", [(1.0, b"exit 3\r"), (1.0, b"")])
    assert r.returncode == 3, r
    st = inspect(engine, n)["State"]
    assert (st["Status"], st["ExitCode"]) == ("exited", 3)
    engine.docker("rm", n)
