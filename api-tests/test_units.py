"""The systemd units in systemd/: their settings, and their ExecStart lines really run berth."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from helpers import REPO_ROOT, berth_bin, serve_pids, wait_until

UNITS = REPO_ROOT / "systemd"


def parse_unit(path: Path) -> dict[str, dict[str, list[str]]]:
    """A systemd unit file as {section: {key: [values...]}} (keys may repeat)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current = None
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"{path}: key outside a section: {line}"
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def one(unit: dict, section: str, key: str) -> str:
    values = unit[section][key]
    assert len(values) == 1, (section, key, values)
    return values[0]


def test_socket_unit_accept_no():
    u = parse_unit(UNITS / "berth.socket")
    assert one(u, "Socket", "ListenStream") == "/run/berth.sock"
    assert one(u, "Socket", "SocketMode") == "0660"
    assert one(u, "Socket", "SocketGroup") == "berth"
    assert one(u, "Socket", "Accept") == "no"
    assert "sockets.target" in one(u, "Install", "WantedBy")


def test_service_unit_accept_no():
    u = parse_unit(UNITS / "berth.service")
    assert one(u, "Unit", "Requires") == "berth.socket"
    assert one(u, "Unit", "After") == "berth.socket"
    assert one(u, "Service", "Type") == "exec"
    assert one(u, "Service", "KillMode") == "process"
    assert one(u, "Service", "Delegate") == "yes"
    argv = shlex.split(one(u, "Service", "ExecStart"))
    assert argv[:2] == ["/usr/local/bin/berth", "serve"]
    assert "--idle-timeout" in argv


def test_socket_unit_accept_yes():
    u = parse_unit(UNITS / "berth-accept.socket")
    assert one(u, "Socket", "ListenStream") == "/run/berth.sock"
    assert one(u, "Socket", "SocketMode") == "0660"
    assert one(u, "Socket", "SocketGroup") == "berth"
    assert one(u, "Socket", "Accept") == "yes"
    assert "berth.socket" in one(u, "Unit", "Conflicts")


def test_service_unit_accept_yes():
    u = parse_unit(UNITS / "berth-accept@.service")
    assert one(u, "Service", "KillMode") == "process"
    assert one(u, "Service", "Delegate") == "yes"
    # the connection must arrive as fd 3 through LISTEN_FDS, not on stdin
    assert "StandardInput" not in u["Service"]
    assert shlex.split(one(u, "Service", "ExecStart"))[:2] == ["/usr/local/bin/berth", "serve"]


@pytest.mark.parametrize("pair", [("berth.socket", "berth.service"),
                                  ("berth-accept.socket", "berth-accept@.service")])
def test_systemd_analyze_verify(tmp_path, pair):
    analyze = shutil.which("systemd-analyze")
    if not analyze:
        pytest.skip("systemd-analyze not installed")
    if not berth_bin().exists():
        pytest.skip("berth not built")
    for name in pair:
        text = (UNITS / name).read_text().replace("/usr/local/bin/berth", str(berth_bin()))
        (tmp_path / name).write_text(text)
    p = subprocess.run([analyze, "verify", "--man=no", *[f"./{n}" for n in pair]],
                       cwd=tmp_path, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert p.stderr.strip() == "", p.stderr


# --------------------------------------------------------------------------- ExecStart under systemd-socket-activate


def exec_start_args(service: str, eng, idle_timeout: str | None = None) -> list[str]:
    """The unit's ExecStart with the test binary, data root and run root."""
    argv = shlex.split(one(parse_unit(UNITS / service), "Service", "ExecStart"))
    assert argv[0] == "/usr/local/bin/berth"
    argv[0] = str(berth_bin())
    if idle_timeout is not None and "--idle-timeout" in argv:
        argv[argv.index("--idle-timeout") + 1] = idle_timeout
    i = argv.index("serve") + 1
    argv[i:i] = ["--data-root", str(eng.data_root), "--run-root", str(eng.run_root)]
    return argv


def socket_mode(socket_unit: str) -> str:
    return "accept" if one(parse_unit(UNITS / socket_unit), "Socket", "Accept") == "yes" else "once"


@pytest.mark.berth_only
def test_berth_service_execstart_runs(engine_factory):
    """berth.socket + berth.service: one activation serves, then exits 0 when idle."""
    mode = socket_mode("berth.socket")
    assert mode == "once"
    eng = engine_factory(mode, serve_args=lambda e: exec_start_args("berth.service", e, idle_timeout="1"))
    r = eng.api("GET", "/_ping", timeout=10)
    assert r.status == 200 and r.body == b"OK", eng.log_tail()
    assert len(serve_pids(eng.data_root)) == 1
    t0 = time.monotonic()
    rc = eng.proc.wait(timeout=15)
    assert rc == 0, eng.log_tail()
    assert time.monotonic() - t0 >= 0.5, "exited before its idle timeout"
    assert not serve_pids(eng.data_root)


@pytest.mark.berth_only
def test_berth_accept_service_execstart_runs(engine_factory):
    """berth-accept.socket + berth-accept@.service: a process per connection, none after."""
    mode = socket_mode("berth-accept.socket")
    assert mode == "accept"
    eng = engine_factory(mode, serve_args=lambda e: exec_start_args("berth-accept@.service", e))
    for _ in range(3):
        r = eng.api("GET", "/_ping", timeout=10)
        assert r.status == 200 and r.body == b"OK", eng.log_tail()
    _, out, _ = eng.docker("version", "--format", "{{.Server.APIVersion}}")
    assert out.strip() == "1.50"
    assert wait_until(lambda: not serve_pids(eng.data_root), 5), serve_pids(eng.data_root)
