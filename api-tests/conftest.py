"""Fixtures for berth's black-box API tests.

Engine selection:
  * BERTH_TEST_DOCKER_HOST=unix:///path (or DOCKER_HOST with BERTH_EXTERNAL=1): run against
    that engine as it is (e.g. a real dockerd, to check the tests themselves). Tests marked
    `berth_only` are skipped and version-specific assertions follow the engine's API version.
  * otherwise: berth ($BERTH_BIN, default target/debug/berth) is started on a temporary
    socket with temporary data and run roots, behind `systemd-socket-activate`:
      - "listen" (Accept=no): `systemd-socket-activate -l SOCK scripts/activate-loop.sh
        berth serve ...`; the outer activator binds SOCK once, the loop re-arms an inner
        systemd-socket-activate after every idle exit;
      - "accept" (Accept=yes): `systemd-socket-activate -a -l SOCK berth serve ...`;
      - "once": one `systemd-socket-activate -l SOCK berth serve ...`, as systemd runs
        berth.service once per activation.
    Each engine runs in its own process group; teardown kills the group, unmounts what is
    mounted under its temporary folder, removes it and fails if a `berth serve` process
    with its data root survives.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

import pytest

from helpers import (MAKE_BUSYBOX, SOCKET_ACTIVATE, Engine, berth_bin, new_workdir)

# Registry fixtures (docker-registry on loopback) live in registry.py.
pytest_plugins = ["registry"]


def external_host() -> str | None:
    host = os.environ.get("BERTH_TEST_DOCKER_HOST")
    if host:
        return host
    if os.environ.get("BERTH_EXTERNAL") == "1" and os.environ.get("DOCKER_HOST"):
        return os.environ["DOCKER_HOST"]
    return None


EXTERNAL = external_host()


def pytest_report_header(config):
    if EXTERNAL:
        return f"engine: external {EXTERNAL}"
    return f"engine: berth {berth_bin()} under {SOCKET_ACTIVATE}"


def pytest_collection_modifyitems(config, items):
    if not EXTERNAL:
        return
    skip = pytest.mark.skip(reason="needs berth itself (external engine under test)")
    for item in items:
        if "berth_only" in item.keywords:
            item.add_marker(skip)


def _check_prerequisites():
    if EXTERNAL:
        return
    if not berth_bin().exists():
        pytest.exit(f"berth binary {berth_bin()} not found: run `cargo build` or set BERTH_BIN", 2)
    if not Path(SOCKET_ACTIVATE).exists():
        pytest.exit("systemd-socket-activate not found (apt-get install systemd)", 2)


@pytest.fixture(scope="session")
def docker_config():
    d = Path(tempfile.mkdtemp(prefix="berth-dockercfg-"))
    (d / "config.json").write_text("{}\n")
    yield d
    subprocess.run(["rm", "-rf", str(d)], check=False)


def _start(mode: str, docker_config: Path, idle_timeout: int = 5, serve_args=None,
           check: bool = False) -> Engine:
    wd = new_workdir()
    eng = Engine(f"unix://{wd}/berth.sock", mode=mode, workdir=wd, docker_config=docker_config)
    try:
        eng.start(idle_timeout=idle_timeout, serve_args=serve_args)
        if check:
            _check_answers(eng)
    except BaseException:
        eng.stop()
        raise
    return eng


def _check_answers(eng: Engine):
    """Fail fast (instead of a timeout per test) when berth does not answer at all."""
    try:
        r = eng.api("GET", "/_ping", timeout=10)
    except OSError as e:
        raise RuntimeError(f"berth did not answer GET /_ping: {e!r}\n{eng.log_tail()}") from None
    if r.status != 200:
        raise RuntimeError(f"berth answered GET /_ping with {r.status}: {r.body[:200]!r}\n{eng.log_tail()}")


def _finish(eng: Engine):
    problems = eng.stop()
    if problems:
        pytest.fail("engine teardown: " + "; ".join(problems), pytrace=False)


@pytest.fixture(scope="session")
def engine(docker_config):
    """The engine shared by the whole session (Accept=no berth, or the external engine)."""
    _check_prerequisites()
    if EXTERNAL:
        eng = Engine(EXTERNAL, mode="external", docker_config=docker_config)
        yield eng
        eng.stop()
        return
    eng = _start("listen", docker_config, check=True)
    yield eng
    _finish(eng)


@pytest.fixture
def fresh_engine(engine, docker_config):
    """A berth engine with empty data and run roots (the external engine is reused as is)."""
    if engine.external:
        yield engine
        return
    eng = _start("listen", docker_config, check=True)
    yield eng
    _finish(eng)


@pytest.fixture
def engine_factory(engine, docker_config):
    """start(mode="listen"|"accept"|"once", idle_timeout=5, serve_args=None) -> Engine."""
    if EXTERNAL:
        pytest.skip("starts berth itself")
    started: list[Engine] = []

    def start(mode: str = "listen", idle_timeout: int = 5, serve_args=None) -> Engine:
        eng = _start(mode, docker_config, idle_timeout=idle_timeout, serve_args=serve_args)
        started.append(eng)
        return eng

    yield start
    problems = []
    for eng in started:
        problems += eng.stop()
    if problems:
        pytest.fail("engine teardown: " + "; ".join(problems), pytrace=False)


@pytest.fixture(scope="session")
def busybox_tar(tmp_path_factory) -> Path:
    """The reproducible busybox rootfs tar (scripts/make-busybox-image.sh)."""
    out = tmp_path_factory.mktemp("busybox") / "busybox-rootfs.tar"
    subprocess.run([str(MAKE_BUSYBOX), str(out)], check=True)
    return out


def import_busybox(eng: Engine, busybox_tar: Path, ref: str = "busybox:latest") -> str:
    _, out, _ = eng.docker("import", "-c", 'CMD ["sh"]', str(busybox_tar), ref)
    return out.strip()


@pytest.fixture
def busybox(engine, busybox_tar) -> str:
    """`busybox:latest` present on the shared engine; returns its image ID."""
    rc, out, _ = engine.docker("image", "inspect", "--format", "{{.Id}}", "busybox:latest", check=False)
    if rc == 0:
        return out.strip()
    return import_busybox(engine, busybox_tar)


@pytest.fixture
def docker_cli(engine):
    """docker(*args, input=None, check=True) -> (rc, stdout, stderr) on the shared engine."""
    return engine.docker


@pytest.fixture
def client(engine):
    """docker-py client on the shared engine."""
    c = engine.client()
    yield c
    c.close()
