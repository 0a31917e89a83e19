"""Starts that fail: the CLI gets the runtime's error and Docker's exit code, never a hang.

Docker removes an AutoRemove container whose start failed, so `docker run --rm`'s
`wait?condition=removed` returns; the CLI then exits 127 (command not found), 126 (not
executable) or 125 (any other start error).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid

import pytest

from helpers import wait_until

pytestmark = pytest.mark.usefixtures("busybox")

# (command line after the image, CLI exit code, text in the error)
FAILURES = [
    (["nosuchcmd"], 127, 'exec: "nosuchcmd": executable file not found in $PATH'),
    (["/etc/passwd"], 126, "permission denied"),
]
MODES = [[], ["--rm"], ["-d"], ["-d", "--rm"], ["-i"], ["-i", "--rm"], ["-d", "-i", "--rm"]]


def name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def exists(engine, n: str) -> bool:
    return engine.docker("inspect", n, check=False)[0] == 0


@pytest.mark.parametrize("mode", MODES, ids=lambda m: " ".join(m) or "attached")
@pytest.mark.parametrize("cmd,code,text", FAILURES, ids=["not-found", "not-executable"])
def test_failing_start_exits_with_dockers_code(engine, mode, cmd, code, text):
    n = name("fail")
    rc, out, err = engine.docker("run", *mode, "--name", n, "busybox", *cmd, check=False,
                                 input=b"", timeout=60)
    assert rc == code, (rc, out, err)
    assert text in err, err
    if "--rm" in mode:
        assert not exists(engine, n), "an AutoRemove container whose start failed is removed"
    else:
        st = engine.client().api.inspect_container(n)["State"]
        assert (st["Status"], st["ExitCode"], st["Running"]) == ("created", code, False), st
        assert text in st["Error"], st
        engine.docker("rm", n)


def test_other_start_error_is_125(engine):
    n = name("nouser")
    rc, _, err = engine.docker("run", "--rm", "--name", n, "--user", "nosuchuser", "busybox",
                               "true", check=False, timeout=60)
    assert rc == 125, err
    assert "nosuchuser" in err, err
    assert not exists(engine, n)


@pytest.mark.parametrize("flags", [["-t", "--rm"], ["-it", "--rm"], ["-it"]])
def test_failing_start_in_a_terminal(engine, flags):
    if not shutil.which("script"):
        pytest.skip("script(1) is not installed")
    n = name("ttyfail")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
    env.update({"DOCKER_HOST": engine.host, "DOCKER_CONFIG": str(engine.docker_config)})
    cmd = f"docker run {' '.join(flags)} --name {n} busybox nosuchcmd"
    p = subprocess.run(["script", "-qec", cmd, "/dev/null"], env=env, capture_output=True,
                       stdin=subprocess.DEVNULL, timeout=60)
    out = p.stdout.decode(errors="replace")
    assert p.returncode == 127, out
    assert "executable file not found" in out, out
    if "--rm" in flags:
        assert not exists(engine, n)
    else:
        engine.docker("rm", n)


def test_docker_py_run_remove_raises(engine):
    import docker

    c = engine.client()
    n = name("pyfail")
    with pytest.raises(docker.errors.APIError) as exc:
        c.containers.run("busybox", "nosuchcmd", name=n, auto_remove=True)
    assert "executable file not found" in str(exc.value)
    assert wait_until(lambda: not exists(engine, n), 10)


def test_wait_returns_when_a_restarting_container_exits(engine):
    """docker-py's test_create_with_restart_policy: wait() returns at the first exit even
    though `always` brings the container back, and rm then refuses a running container."""
    import docker

    api = engine.client().api
    c = api.create_container("busybox", ["sleep", "1"],
                             host_config=api.create_host_config(
                                 restart_policy={"Name": "always", "MaximumRetryCount": 0},
                                 network_mode="none"))
    try:
        api.start(c["Id"])
        res = api.wait(c["Id"], timeout=30)
        assert res["StatusCode"] == 0, res
        with pytest.raises(docker.errors.APIError) as exc:
            api.remove_container(c["Id"])
        assert "stop the container before" in exc.value.explanation.lower()
        assert exc.value.status_code == 409
    finally:
        api.remove_container(c["Id"], force=True)
