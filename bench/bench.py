#!/usr/bin/env python3
"""berth vs dockerd vs podman, side by side, in one run (see bench/run.sh).

Figures (medians):
  cold /_ping   a new connection to a socket-activated engine, process start included:
                berth under `systemd-socket-activate -a` (a process per connection), podman
                started by systemd-socket-activate for each sample; dockerd is resident,
                so its column is the time from starting dockerd to its first answer.
  warm /_ping   a new connection to a running engine (berth: Accept=no, already started).
  images/json   GET /images/json with 500 tags of one imported image.
  docker images the whole `docker images` command (CLI start, ping, list) with 500 tags.
  containers    docker run --rm, docker create, docker exec (medians); 100 x docker create in
                sequence (total); docker ps -a with those 100 containers; the per-container
                helper's VmRSS; the engine's own memory (PSS of its processes: berth serve and
                monitors / dockerd, containerd and shims / podman service and conmons; not the
                containers' processes) when idle with 0 and with 50 running containers.
  network       docker run --rm true on the default bridge vs --network none (the difference
                is what bridge networking costs a container); docker run -d -p until the first
                HTTP answer on 127.0.0.1; MB/s of a 64 MiB download through a published port.
  build         DOCKER_BUILDKIT=0 docker build of a 10-step trivial Dockerfile (bench/build_bench.py):
                without cache (ms per step) and fully cached (ms in all).
  pods          podman --remote against the engine's libpod endpoints (bench/pod_bench.py): pod
                create, run --pod -d, generate kube, play kube, play kube --down (berth and
                podman only: dockerd has no pods).

dockerd and podman are measured only where installed; nothing is installed here.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import build_bench as buildbench
import net as netbench
import pod_bench as podbench
import pull as pullbench

REPO = Path(__file__).resolve().parent.parent
DOCKER_CLI = "/usr/local/bin/docker" if os.path.exists("/usr/local/bin/docker") else shutil.which("docker")


def http(sock: str, method: str, path: str, body: bytes = b"", headers: dict | None = None,
         timeout: float = 60) -> tuple[int, bytes]:
    """One request on a new connection (Connection: close), read to the end."""
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(timeout)
    s.connect(sock)
    hdrs = {"Host": "localhost", "Connection": "close", "Content-Length": str(len(body))}
    hdrs.update(headers or {})
    req = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in hdrs.items()) + "\r\n"
    s.sendall(req.encode() + body)
    chunks = []
    while True:
        d = s.recv(65536)
        if not d:
            break
        chunks.append(d)
    s.close()
    raw = b"".join(chunks)
    status = int(raw.split(b" ", 2)[1]) if raw else 0
    return status, raw


def ok(sock: str, path: str):
    status, raw = http(sock, "GET", path)
    if status != 200:
        raise RuntimeError(f"GET {path}: {raw[:200]!r}")


def timed(fn, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def wait_socket(sock: str, timeout: float = 30, ping: bool = True) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(sock):
            if not ping:
                return True
            try:
                if http(sock, "GET", "/_ping", timeout=2)[0] == 200:
                    return True
            except OSError:
                pass
        time.sleep(0.02)
    return False


def kill_group(p: subprocess.Popen):
    try:
        os.killpg(p.pid, signal.SIGTERM)
        p.wait(timeout=10)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.wait()


def unmount_under(path: Path):
    """Unmount everything mounted at or below `path`, deepest first (engines leave mounts)."""
    prefix = str(path.resolve())
    with open("/proc/mounts", encoding="utf-8") as f:
        points = [line.split()[1] for line in f]
    for m in sorted((m for m in points if m == prefix or m.startswith(prefix + "/")), reverse=True):
        subprocess.run(["umount", "-l", m], capture_output=True, check=False)


def populate(sock: str, tar: Path, n: int):
    st, raw = http(sock, "POST", "/images/create?fromSrc=-&repo=benchbox&tag=latest",
                   tar.read_bytes(), {"Content-Type": "application/x-tar"}, timeout=300)
    assert st == 200, raw[:300]
    for i in range(n):
        st, raw = http(sock, "POST", f"/images/benchbox:latest/tag?repo=bench{i}&tag=v")
        assert st == 201, raw[:300]


def cli(sock: str, *args, check=True) -> str:
    p = subprocess.run([DOCKER_CLI, *args], check=check, capture_output=True, text=True,
                       env={**os.environ, "DOCKER_HOST": f"unix://{sock}"})
    return p.stdout


def monitor_rss_kib(cid: str) -> int | None:
    """VmRSS of the per-container helper (berth-monitor, containerd-shim, conmon) of `cid`."""
    for pid in (p for p in os.listdir("/proc") if p.isdigit()):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            continue
        if cid[:16] in cmd and (comm.startswith(("berth-monitor", "containerd-shim", "conmon"))):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    return None


def pss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def engine_pss_mib(eng) -> float:
    """Summed PSS of the engine's own processes (see each engine's `own_pids`)."""
    return sum(pss_kib(pid) for pid in eng.own_pids()) / 1024


def procs_matching(comms: tuple[str, ...], needle: str) -> list[int]:
    """PIDs whose comm starts with one of `comms` and whose command line mentions `needle`."""
    out = []
    for pid in (p for p in os.listdir("/proc") if p.isdigit()):
        try:
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if comm.startswith(comms) and needle in cmd:
            out.append(int(pid))
    return out


def idle_memory(eng, sock: str, n: int) -> float:
    """Engine memory once idle with `n` running containers (berth's serve exits when idle)."""
    started = [cli(sock, "run", "-d", "--network", "none", "benchbox", "sleep", "3600").strip()
               for _ in range(n)]
    time.sleep(eng.idle_settle)
    mem = engine_pss_mib(eng)
    if started:
        cli(sock, "rm", "-f", *started, check=False)
    return mem


def containers(eng, sock: str, repeat: int) -> dict:
    """docker run --rm, create, exec, ps -a, the monitor's memory and the engine's, on one engine."""
    out = {}
    time.sleep(eng.idle_settle)
    out["mem0"] = engine_pss_mib(eng)
    run = ["run", "--rm", "--network", "none", "benchbox", "true"]
    cli(sock, *run)  # warm up: first start pages things in
    out["run"] = med(timed(lambda: cli(sock, *run), repeat))
    made = []
    out["create"] = med(timed(lambda: made.append(
        cli(sock, "create", "--network", "none", "benchbox", "true").strip()), repeat))
    cid = cli(sock, "run", "-d", "--network", "none", "benchbox", "sleep", "300").strip()
    time.sleep(1)
    out["exec"] = med(timed(lambda: cli(sock, "exec", cid, "true"), repeat))
    out["rss"] = monitor_rss_kib(cid)
    cli(sock, "rm", "-f", cid, *made, check=False)
    hundred = []
    t0 = time.perf_counter()
    for _ in range(100):
        hundred.append(cli(sock, "create", "--network", "none", "benchbox", "true").strip())
    out["create100"] = (time.perf_counter() - t0) * 1000
    out["ps"] = med(timed(lambda: cli(sock, "ps", "-a"), repeat))
    cli(sock, "rm", "-f", *hundred, check=False)
    out["mem50"] = idle_memory(eng, sock, 50)
    return out


def docker_images(sock: str):
    subprocess.run([DOCKER_CLI, "images"], check=True, capture_output=True,
                   env={**os.environ, "DOCKER_HOST": f"unix://{sock}"})


# --------------------------------------------------------------------------- engines


class Berth:
    name = "berth"
    idle_settle = 7  # idle timeout 5 s: serve exits, only monitors remain

    def __init__(self, binary: str, work: Path):
        self.bin, self.work = binary, work
        self.procs: list[subprocess.Popen] = []

    def _activate(self, sock: str, accept: bool, idle: int = 5) -> subprocess.Popen:
        args = [self.bin, "serve", "--data-root", str(self.work / "data"),
                "--run-root", str(self.work / "run"), "--idle-timeout", str(idle)]
        if accept:
            cmd = ["systemd-socket-activate", "-a", "-l", sock, *args]
        else:
            cmd = ["systemd-socket-activate", "-l", sock, "-E", "PATH",
                   str(REPO / "scripts" / "activate-loop.sh"), *args]
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)
        self.procs.append(p)
        wait_socket(sock, ping=False)
        return p

    def cold_ping(self, n: int) -> list[float]:
        sock = str(self.work / "accept.sock")
        p = self._activate(sock, accept=True)
        ok(sock, "/_ping")  # page the binary in once
        out = timed(lambda: ok(sock, "/_ping"), n)
        kill_group(p)
        return out

    def start(self) -> str:
        sock = str(self.work / "berth.sock")
        self._activate(sock, accept=False)
        assert wait_socket(sock)
        return sock

    def own_pids(self) -> list[int]:
        return procs_matching(("berth",), str(self.work))

    def stop(self):
        for p in self.procs:
            kill_group(p)


class Dockerd:
    name = "dockerd"
    idle_settle = 2

    def __init__(self, work: Path):
        self.work = work
        self.proc = None
        self.sock = str(work / "docker.sock")
        policy = subprocess.run(["iptables", "-S", "FORWARD"], capture_output=True, text=True).stdout
        self.forward_policy = "DROP" if "-P FORWARD DROP" in policy else "ACCEPT"

    @staticmethod
    def available() -> bool:
        return bool(shutil.which("dockerd"))

    def _spawn(self) -> subprocess.Popen:
        return subprocess.Popen(
            ["dockerd", "-H", f"unix://{self.sock}", "--data-root", str(self.work / "root"),
             "--exec-root", str(self.work / "exec"), "--pidfile", str(self.work / "dockerd.pid")],
            stdout=subprocess.DEVNULL, stderr=open(self.work / "dockerd.log", "ab"), start_new_session=True)

    def cold_ping(self, n: int) -> list[float]:
        out = []
        for _ in range(n):
            t0 = time.perf_counter()
            p = self._spawn()
            ok = wait_socket(self.sock, 60)
            out.append((time.perf_counter() - t0) * 1000)
            kill_group(p)
            assert ok, "dockerd did not start"
        return out

    def start(self) -> str:
        self.proc = self._spawn()
        assert wait_socket(self.sock, 60), "dockerd did not start"
        return self.sock

    def own_pids(self) -> list[int]:
        return procs_matching(("dockerd", "containerd"), str(self.work))

    def stop(self):
        if self.proc:
            kill_group(self.proc)
        # undo what dockerd did to the host network (see shared/notes/anchors.md): its rules
        # and chains, the FORWARD policy and docker0
        rules = subprocess.run(["iptables-save"], capture_output=True, text=True).stdout
        kept = "".join(line + "\n" for line in rules.splitlines() if "DOCKER" not in line and "docker0" not in line)
        subprocess.run(["iptables-restore"], input=kept, text=True, check=False)
        subprocess.run(["iptables", "-P", "FORWARD", self.forward_policy], check=False)
        subprocess.run(["ip", "link", "del", "docker0"], capture_output=True, check=False)
        unmount_under(self.work)


class Podman:
    name = "podman"
    idle_settle = 2

    def __init__(self, work: Path, registry: str = "localhost:5000"):
        self.work = work
        self.procs = []
        work.mkdir(parents=True, exist_ok=True)
        (work / "containers.conf").write_text(
            '[containers]\ndefault_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]\n'
            '[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\nruntime = "runc"\n'
            '[network]\nnetwork_backend = "cni"\n')
        (work / "storage.conf").write_text(
            f'[storage]\ndriver = "overlay"\nrunroot = "{work}/run"\ngraphroot = "{work}/root"\n')
        (work / "registries.conf").write_text(f'[[registry]]\nlocation = "{registry}"\ninsecure = true\n')
        self.env = {**os.environ, "CONTAINERS_CONF": str(work / "containers.conf"),
                    "CONTAINERS_STORAGE_CONF": str(work / "storage.conf"),
                    "CONTAINERS_REGISTRIES_CONF": str(work / "registries.conf")}

    @staticmethod
    def available() -> bool:
        return bool(shutil.which("podman"))

    def cold_ping(self, n: int) -> list[float]:
        sock = str(self.work / "cold.sock")
        out = []
        for _ in range(n):
            if os.path.exists(sock):
                os.unlink(sock)
            p = subprocess.Popen(
                ["systemd-socket-activate", "-l", sock, "-E", "CONTAINERS_CONF", "-E", "CONTAINERS_STORAGE_CONF",
                 "-E", "CONTAINERS_REGISTRIES_CONF", "-E", "PATH", "podman", "system", "service", "--time=0"],
                env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
            wait_socket(sock, ping=False)
            t0 = time.perf_counter()
            ok(sock, "/_ping")
            out.append((time.perf_counter() - t0) * 1000)
            kill_group(p)
        return out

    def start(self) -> str:
        sock = str(self.work / "podman.sock")
        p = subprocess.Popen(["podman", "system", "service", "--time=0", f"unix://{sock}"], env=self.env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        self.procs.append(p)
        assert wait_socket(sock, 60), "podman service did not start"
        return sock

    def own_pids(self) -> list[int]:
        service = [p.pid for p in self.procs if p.poll() is None]
        # the service process itself (its command line names only the socket) and its conmons
        return service + [p for p in procs_matching(("podman", "conmon"), str(self.work))
                          if p not in service]

    def stop(self):
        for p in self.procs:
            kill_group(p)
        # podman leaves a conmon per exec alive for minutes: end the ones of this run.
        subprocess.run(["pkill", "-9", "-f", f"conmon.*{self.work}"], check=False, capture_output=True)
        unmount_under(self.work)


# --------------------------------------------------------------------------- main


def med(xs: list[float]) -> float | None:
    return statistics.median(xs) if xs else None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--berth", default=os.environ.get("BERTH_BIN", str(REPO / "target/release/berth")))
    ap.add_argument("--pings", type=int, default=200)
    ap.add_argument("--images", type=int, default=500)
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--engines", default="berth,dockerd,podman")
    ap.add_argument("--pull-mb", type=int, default=200, help="size of the pulled image; 0 skips")
    ap.add_argument("--pull-runs", type=int, default=3)
    ap.add_argument("--figures", default="ping,images,containers,network,build,pull,pods",
                    help="which groups of figures to measure")
    args = ap.parse_args()
    groups = set(args.figures.split(","))
    if "pull" not in groups:
        args.pull_mb = 0
    if not os.path.exists(args.berth):
        sys.exit(f"bench: {args.berth} not found (cargo build --release, or --berth PATH)")
    if not DOCKER_CLI:
        sys.exit("bench: the docker CLI is needed for the `docker images` figure")

    root = Path(tempfile.mkdtemp(prefix="berth-bench-"))
    tar = root / "busybox.tar"
    subprocess.run([str(REPO / "scripts/make-busybox-image.sh"), str(tar)], check=True)
    registry, compressed = None, 0
    pull_ref = ""
    if args.pull_mb:
        registry = pullbench.Registry(root / "registry")
        compressed = pullbench.upload_image(registry, "bench/big", args.pull_mb,
                                            pullbench.rootfs_from_image_tar(tar))
        pull_ref = f"{registry.addr}/bench/big:latest"
    wanted = args.engines.split(",")
    engines = []
    if "berth" in wanted:
        engines.append(Berth(args.berth, root / "berth"))
    if "dockerd" in wanted and Dockerd.available():
        engines.append(Dockerd(root / "dockerd"))
    if "podman" in wanted and Podman.available():
        engines.append(Podman(root / "podman", registry.addr if registry else "localhost:5000"))
    rows = {"cold /_ping (ms)": {}, "warm /_ping (ms)": {},
            f"GET /images/json, {args.images} images (ms)": {},
            f"docker images, {args.images} images (ms)": {},
            "docker run --rm busybox true, --network none (ms)": {},
            "docker create (ms)": {},
            "docker exec c true (ms)": {},
            "per-container monitor VmRSS (KiB)": {},
            "100 x docker create in sequence (ms, total)": {},
            "docker ps -a, 100 containers (ms)": {},
            "engine memory idle, 0 containers (MiB PSS)": {},
            "engine memory idle, 50 containers (MiB PSS)": {},
            "docker run --rm true, default bridge (ms)": {},
            "  bridge networking per container (ms, bridge - none)": {},
            "docker run -d -p until first HTTP answer (ms)": {},
            "download through a published port (MB/s)": {},
            "docker build, 10 trivial steps, no cache (ms per step)": {},
            "docker build, 10 trivial steps, all cached (ms, total)": {},
            f"docker pull {args.pull_mb} MB image, local registry (ms)": {},
            "  pull throughput (MB/s compressed)": {},
            "  pull CPU (s per 100 MB)": {},
            "podman --remote pod create (ms)": {},
            "podman --remote run -d --pod (ms)": {},
            "podman --remote generate kube (ms)": {},
            "podman --remote play kube, pod + 1 container (ms)": {},
            "podman --remote play kube --down (ms)": {}}
    keys = list(rows)
    try:
        for eng in engines:
            eng.work.mkdir(parents=True, exist_ok=True)
            print(f"-- {eng.name}", file=sys.stderr)
            n_cold = args.pings if eng.name != "dockerd" else 3
            if eng.name == "podman":
                n_cold = min(args.pings, 20)
            if "ping" in groups:
                rows[keys[0]][eng.name] = med(eng.cold_ping(n_cold))
            sock = eng.start()
            try:
                if "ping" in groups:
                    rows[keys[1]][eng.name] = med(timed(lambda s=sock: ok(s, "/_ping"), args.pings))
                populate(sock, tar, args.images)
                if "images" in groups:
                    rows[keys[2]][eng.name] = med(timed(lambda s=sock: ok(s, "/images/json"), args.repeat))
                    rows[keys[3]][eng.name] = med(timed(lambda s=sock: docker_images(s), args.repeat))
                try:
                    if "containers" not in groups:
                        raise StopIteration
                    c = containers(eng, sock, args.repeat)
                    for k, f in zip(keys[4:], ("run", "create", "exec", "rss", "create100", "ps",
                                               "mem0", "mem50")):
                        rows[k][eng.name] = c[f]
                except (subprocess.CalledProcessError, AssertionError) as e:
                    print(f"bench: containers on {eng.name}: {e}", file=sys.stderr)
                except StopIteration:
                    pass
                try:
                    if "network" not in groups:
                        raise StopIteration
                    nf = netbench.network_figures(cli, timed, sock, args.repeat)
                    for k, f in zip(keys[12:16], ("bridge", "bridge_cost", "first_http", "mbps")):
                        rows[k][eng.name] = nf[f]
                except (subprocess.CalledProcessError, OSError) as e:
                    print(f"bench: network on {eng.name}: {e}", file=sys.stderr)
                except StopIteration:
                    pass
                try:
                    if "build" not in groups:
                        raise StopIteration
                    bf = buildbench.build_figures(sock, args.repeat)
                    rows[keys[16]][eng.name] = bf["per_step"]
                    rows[keys[17]][eng.name] = bf["cached"]
                except subprocess.CalledProcessError as e:
                    print(f"bench: build on {eng.name}: {e} {e.stderr!r}", file=sys.stderr)
                except StopIteration:
                    pass
                if "pods" in groups and eng.name != "dockerd" and podbench.available():
                    try:
                        pf = podbench.pod_figures(sock, max(5, args.repeat // 2))
                        for k, f in zip(keys[21:], ("create", "run", "generate", "play", "down")):
                            rows[k][eng.name] = pf[f]
                    except subprocess.CalledProcessError as e:
                        print(f"bench: pods on {eng.name}: {e} {e.stderr!r}", file=sys.stderr)
                if registry and "pull" in groups:
                    try:
                        p = pullbench.pull_figures(eng, cli, sock, pull_ref, compressed, args.pull_runs)
                        for k, f in zip(keys[18:], ("wall", "mbps", "cpu")):
                            rows[k][eng.name] = p[f]
                    except (subprocess.CalledProcessError, AssertionError, ValueError) as e:
                        print(f"bench: pull on {eng.name}: {e}", file=sys.stderr)
            finally:
                eng.stop()
    finally:
        for eng in engines:
            try:
                eng.stop()
            except Exception as e:  # noqa: BLE001 - report and go on cleaning up
                print(f"bench: stopping {eng.name}: {e}", file=sys.stderr)
        if registry:
            registry.stop()
        subprocess.run(["rm", "-rf", str(root)], check=False)

    names = [e.name for e in engines]
    others = [n for n in names if n != "berth"]
    header = ["figure (median)"] + names + [f"{o}/berth" for o in others]
    table = [header]
    for key, vals in rows.items():
        line = [key] + [f"{vals[n]:.2f}" if vals.get(n) is not None else "-" for n in names]
        for o in others:
            b, v = vals.get("berth"), vals.get(o)
            line.append(f"{v / b:.1f}x" if b and v else "-")
        table.append(line)
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    for i, r in enumerate(table):
        print("  ".join(c.ljust(w) if j == 0 else c.rjust(w) for j, (c, w) in enumerate(zip(r, widths))))
        if i == 0:
            print("  ".join("-" * w for w in widths))
    print("\nRatios are other/berth: above 1 means berth is faster or smaller, except for the "
          "throughputs (pull, published-port download), where below 1 means berth is faster.")
    if "dockerd" in names:
        print("\ndockerd is resident: its cold figure is dockerd start to first /_ping (3 runs).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
