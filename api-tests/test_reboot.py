"""After a reboot: containers of the previous boot are exited, `berth boot` restarts per policy.

A reboot is simulated on a private engine: every berth process and container of it is killed
(-9, `runc delete --force`), its run root is emptied as a new tmpfs would be, and the boot id
the engine reads (BERTH_BOOT_ID_FILE) changes. The overlay mounts in the data root are left
for berth to clean, as they would be after a crash-restart of a host with a persistent /run.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import uuid
from pathlib import Path

import pytest

from conftest import import_busybox
from helpers import unmount_all_under, berth_bin, mounts_under, serve_pids, wait_until

pytestmark = pytest.mark.berth_only

REPO = Path(__file__).resolve().parent.parent
NEVER = "0001-01-01T00:00:00Z"


def pids_with(word: str, also: str) -> list[int]:
    out = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{p}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if word in cmd and also in cmd:
            out.append(int(p))
    return out


def simulate_reboot(eng, boot_file: Path):
    for pid in serve_pids(eng.data_root) + pids_with("berth-monitor", str(eng.run_root)):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    runc = ["runc", "--root", str(eng.run_root / "runc")]
    listed = subprocess.run([*runc, "list", "-q"], capture_output=True, text=True, check=False)
    for cid in listed.stdout.split():
        subprocess.run([*runc, "delete", "--force", cid], capture_output=True, check=False)
    # What a reboot takes with it besides tmpfs: the containers' namespaces, veths, rules and
    # the DNS server (netavark's own teardown stands in for the kernel forgetting them).
    netavark = next((p for p in ("/usr/lib/podman/netavark", "/usr/libexec/podman/netavark")
                     if os.path.exists(p)), None)
    for opts in eng.run_root.glob("containers/*/net/*.json"):
        ns = eng.run_root / "netns" / opts.parent.parent.name
        if netavark:
            subprocess.run([netavark, "--config", str(eng.run_root / "netavark"), "teardown",
                            str(ns)], stdin=opts.open("rb"), capture_output=True, check=False)
    for pid in pids_with("aardvark-dns", str(eng.run_root)):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    unmount_all_under(eng.run_root)
    for child in eng.run_root.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()
    boot_file.write_text(f"{uuid.uuid4()}\n")


def berth_boot(eng, boot_file: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "BERTH_BOOT_ID_FILE": str(boot_file)}
    for var in ("BERTH_DATA_ROOT", "BERTH_RUN_ROOT", "LISTEN_FDS", "LISTEN_PID"):
        env.pop(var, None)
    return subprocess.run([str(berth_bin()), "boot", "--data-root", str(eng.data_root),
                           "--run-root", str(eng.run_root)],
                          capture_output=True, text=True, env=env, timeout=120)


def state(eng, name: str) -> dict:
    _, out, _ = eng.docker("inspect", "--format", "{{json .State}}", name)
    return json.loads(out)


def merged_mounted(eng, name: str) -> bool:
    _, cid, _ = eng.docker("inspect", "--format", "{{.Id}}", name)
    return any(m.endswith(f"/containers/{cid.strip()}/merged") for m in mounts_under(eng.data_root))


@pytest.fixture
def rebootable(engine_factory, busybox_tar, tmp_path):
    boot_file = tmp_path / "boot_id"
    boot_file.write_text(f"{uuid.uuid4()}\n")
    eng = engine_factory("listen", serve_args=lambda e: [
        "/usr/bin/env", f"BERTH_BOOT_ID_FILE={boot_file}", *e.serve_args()])
    import_busybox(eng, busybox_tar)
    return eng, boot_file


def test_reboot_marks_exited_and_berth_boot_restarts_per_policy(rebootable):
    eng, boot_file = rebootable
    run = ["run", "-d", "busybox", "sleep", "300"]
    eng.docker(*run[:2], "--name", "always", "--restart", "always", *run[2:])
    eng.docker(*run[:2], "--name", "unless", "--restart", "unless-stopped", *run[2:])
    eng.docker(*run[:2], "--name", "unless-stopped-by-user", "--restart", "unless-stopped",
               *run[2:])
    eng.docker(*run[:2], "--name", "always-stopped-by-user", "--restart", "always", *run[2:])
    eng.docker(*run[:2], "--name", "onfail", "--restart", "on-failure", *run[2:])
    eng.docker(*run[:2], "--name", "plain", *run[2:])
    eng.docker(*run[:2], "--name", "autorm", "--rm", *run[2:])
    eng.docker("create", "--name", "never-started", "--restart", "always", "busybox", "true")
    eng.docker("stop", "-t", "0", "unless-stopped-by-user", "always-stopped-by-user")
    before = {n: state(eng, n) for n in ("always", "unless", "onfail", "plain")}

    simulate_reboot(eng, boot_file)

    # The first request's serve reconciles: exited 255 with FinishedAt, like dockerd after a
    # restart without live-restore; `--rm` ones are gone; stale mounts are cleaned.
    _, out, _ = eng.docker("ps", "-a", "--format", "{{.Names}} {{.State}}")
    states = dict(line.split() for line in out.splitlines())
    assert "autorm" not in states
    assert states["never-started"] == "created"
    for name in ("always", "unless", "onfail", "plain"):
        s = state(eng, name)
        assert (s["Status"], s["Running"], s["ExitCode"], s["Pid"]) == ("exited", False, 255, 0)
        assert s["FinishedAt"] != NEVER and s["FinishedAt"] > before[name]["StartedAt"]
        assert not merged_mounted(eng, name)
    _, out, _ = eng.docker("ps", "-q")
    assert out.strip() == ""

    p = berth_boot(eng, boot_file)
    assert p.returncode == 0, p.stderr
    started = {line.split(": ", 1)[1] for line in p.stdout.splitlines()
               if line.startswith("started: ")}
    assert started == {"always", "unless", "always-stopped-by-user"}

    _, out, _ = eng.docker("ps", "-a", "--format", "{{.Names}} {{.State}}")
    states = dict(line.split() for line in out.splitlines())
    assert states == {
        "always": "running",
        "unless": "running",
        "always-stopped-by-user": "running",
        "unless-stopped-by-user": "exited",
        "onfail": "exited",
        "plain": "exited",
        "never-started": "created",
    }
    _, out, _ = eng.docker("exec", "always", "echo", "alive")
    assert out == "alive\n"
    assert state(eng, "onfail")["ExitCode"] == 255

    # Once per boot: running it again starts nothing and changes nothing.
    p = berth_boot(eng, boot_file)
    assert p.returncode == 0, p.stderr
    assert "started:" not in p.stdout
    _, out, _ = eng.docker("ps", "--format", "{{.Names}}")
    assert set(out.split()) == {"always", "unless", "always-stopped-by-user"}


def test_serve_alone_reconciles_once(rebootable):
    """Without `berth boot`: serves reconcile (once) and start nothing."""
    eng, boot_file = rebootable
    eng.docker("run", "-d", "--name", "alw", "--restart", "always", "busybox", "sleep", "300")
    simulate_reboot(eng, boot_file)
    s = state(eng, "alw")
    assert (s["Status"], s["ExitCode"]) == ("exited", 255)
    first = s["FinishedAt"]
    # Later serves (the old one is killed; a new one starts) leave the record alone.
    for pid in serve_pids(eng.data_root):
        os.kill(pid, signal.SIGKILL)
    assert wait_until(lambda: not serve_pids(eng.data_root), 5)
    assert state(eng, "alw")["FinishedAt"] == first
    assert (eng.run_root / "boot_id").read_text().strip() == boot_file.read_text().strip()
    # A container started after the reconciliation is not touched by later serves.
    eng.docker("start", "alw")
    for pid in serve_pids(eng.data_root):
        os.kill(pid, signal.SIGKILL)
    assert state(eng, "alw")["Running"] is True


def test_restart_unit_file():
    unit = (REPO / "systemd" / "berth-restart.service").read_text()
    assert "Type=oneshot" in unit
    assert "After=berth.socket" in unit
    assert "WantedBy=multi-user.target" in unit
    assert "ExecStart=/usr/local/bin/berth boot" in unit
    setup = (REPO / "scripts" / "setup.sh").read_text()
    assert "berth-restart.service" in setup
