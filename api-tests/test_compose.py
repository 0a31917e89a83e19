"""docker-compose 1.29 (Debian's) against berth: a project with a published web service and a
client that reaches it by service name and by alias on the project's network; `down` removes
containers and network."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import urllib.request
import uuid

import pytest

pytestmark = [pytest.mark.usefixtures("busybox"), pytest.mark.berth_only]

COMPOSE = shutil.which("docker-compose")
if COMPOSE and subprocess.run([COMPOSE, "version"], capture_output=True).returncode != 0:
    COMPOSE = None  # installed but broken (e.g. a docker-py it cannot use)

PROJECT = """\
version: "3"
services:
  web:
    image: busybox
    command: sh -c "mkdir -p /www && echo compose-ok > /www/index.html && httpd -f -p 80 -h /www"
    ports: ["{port}:80"]
    stop_signal: SIGKILL
  client:
    image: busybox
    command: sleep 300
    depends_on: [web]
    stop_signal: SIGKILL
    networks:
      default:
        aliases: [cli]
"""


def compose(engine, workdir, *args, check=True):
    env = {**os.environ, "DOCKER_HOST": engine.host, "DOCKER_CONFIG": str(engine.docker_config)}
    p = subprocess.run([COMPOSE, "--no-ansi", *args], cwd=workdir, env=env,
                       capture_output=True, text=True, timeout=180)
    if check and p.returncode != 0:
        raise AssertionError(f"docker-compose {args}: {p.stderr}")
    return p


@pytest.mark.skipif(COMPOSE is None, reason="docker-compose 1.29 is not installed (.ci/run installs it)")
def test_compose_up_reach_down(engine, tmp_path):
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    project = f"p{uuid.uuid4().hex[:8]}"
    work = tmp_path / project
    work.mkdir()
    (work / "docker-compose.yml").write_text(PROJECT.format(port=port))
    try:
        compose(engine, work, "up", "-d")
        deadline = time.monotonic() + 10
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as r:
                    assert r.read() == b"compose-ok\n"
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        p = compose(engine, work, "exec", "-T", "client", "sh", "-c",
                    "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 web 80")
        assert p.stdout.endswith("compose-ok\n"), p.stdout
        p = compose(engine, work, "exec", "-T", "web", "nslookup", "cli")
        assert "Address" in p.stdout.split("Name:")[-1], p.stdout
        p = compose(engine, work, "ps")
        assert f"0.0.0.0:{port}->80/tcp" in p.stdout, p.stdout
    finally:
        compose(engine, work, "down", check=False)
    _, out, _ = engine.docker("network", "ls", "--format", "{{.Name}}")
    assert f"{project}_default" not in out.split()
    _, out, _ = engine.docker("ps", "-aq", "--filter", f"label=com.docker.compose.project={project}")
    assert out.split() == []


@pytest.mark.skipif(COMPOSE is None, reason="docker-compose 1.29 is not installed (.ci/run installs it)")
def test_compose_build(engine, tmp_path):
    work = tmp_path / "cbuild"
    work.mkdir()
    (work / "Dockerfile").write_text('FROM busybox\nRUN echo built-by-compose > /msg\nCMD ["cat", "/msg"]\n')
    (work / "docker-compose.yml").write_text(
        'version: "3"\nservices:\n  app:\n    build: .\n    network_mode: none\n')
    p = compose(engine, work, "-p", "cbuild", "build")
    assert "Successfully tagged cbuild_app:latest" in p.stdout + p.stderr
    try:
        p = compose(engine, work, "-p", "cbuild", "run", "--rm", "app")
        assert p.stdout.strip().endswith("built-by-compose")
    finally:
        compose(engine, work, "-p", "cbuild", "down", "--rmi", "local", check=False)
