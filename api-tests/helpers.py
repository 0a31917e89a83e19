"""Shared machinery for berth's black-box API tests.

Nothing here knows berth's internals beyond its command line, its data-root layout
(`<data-root>/berth.db`) and its process name; everything else goes through the socket.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DOCKER_CLI = os.environ.get("BERTH_TEST_DOCKER_CLI", "/usr/local/bin/docker")
SOCKET_ACTIVATE = shutil.which("systemd-socket-activate") or "/usr/bin/systemd-socket-activate"
ACTIVATE_LOOP = REPO_ROOT / "scripts" / "activate-loop.sh"
MAKE_BUSYBOX = REPO_ROOT / "scripts" / "make-busybox-image.sh"

# What Docker Engine 28 (API 1.50) answers; berth must answer the same.
API_VERSION = "1.50"
MIN_API_VERSION = "1.24"


def berth_bin() -> Path:
    """The berth binary under test: $BERTH_BIN, else target/debug, else target/release."""
    env = os.environ.get("BERTH_BIN")
    if env:
        return Path(env).resolve()
    for profile in ("debug", "release"):
        candidate = REPO_ROOT / "target" / profile / "berth"
        if candidate.exists():
            return candidate
    return REPO_ROOT / "target" / "debug" / "berth"


# --------------------------------------------------------------------------- raw HTTP


class UnixHTTPConnection(http.client.HTTPConnection):
    """http.client over a unix socket (Host header `localhost`, like docker-py)."""

    def __init__(self, path: str, timeout: float = 30.0):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.unix_path)
        self.sock = sock


@dataclass
class Response:
    status: int
    reason: str
    headers: dict  # lower-cased names
    body: bytes
    raw_headers: list = field(default_factory=list)

    def json(self):
        return json.loads(self.body)

    def json_lines(self) -> list:
        """A chunked JSON progress stream: one object per line (or concatenated)."""
        dec = json.JSONDecoder()
        text = self.body.decode()
        out, i = [], 0
        while i < len(text):
            while i < len(text) and text[i] in " \t\r\n":
                i += 1
            if i >= len(text):
                break
            obj, i = dec.raw_decode(text, i)
            out.append(obj)
        return out

    @property
    def content_type(self) -> str | None:
        return self.headers.get("content-type")


def request(sock_path: str, method: str, path: str, body: bytes | str | None = None,
            headers: dict | None = None, timeout: float = 60.0) -> Response:
    """One request on a fresh connection, read to the end."""
    conn = UnixHTTPConnection(sock_path, timeout=timeout)
    try:
        if isinstance(body, str):
            body = body.encode()
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
        hdrs = {k.lower(): v for k, v in resp.getheaders()}
        return Response(resp.status, resp.reason, hdrs, data, resp.getheaders())
    finally:
        conn.close()


def unix_host_path(host: str) -> str:
    if not host.startswith("unix://"):
        raise ValueError(f"only unix:// engines are supported by these tests, not {host!r}")
    return host[len("unix://"):]


# --------------------------------------------------------------------------- processes


def serve_pids(data_root: str | os.PathLike | None = None) -> list[int]:
    """PIDs of `berth serve` processes, optionally only those using `data_root`."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            raw = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        argv = [a.decode(errors="replace") for a in raw.split(b"\0") if a]
        # `berth serve ...`, or `<interpreter> .../berth serve ...` for a scripted stand-in
        idx = next((i for i, a in enumerate(argv[:2]) if os.path.basename(a) == "berth"), None)
        if idx is None or argv[idx + 1:idx + 2] != ["serve"]:
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            if stat.rsplit(")", 1)[1].split()[0] == "Z":
                continue  # a zombie has exited; its parent just has not reaped it yet
        except OSError:
            continue
        if data_root is not None and str(data_root) not in argv:
            continue
        pids.append(int(entry))
    return pids


def wait_until(predicate, timeout: float, interval: float = 0.05):
    """Poll `predicate` until it returns truthy; return its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


def mounts_under(path: str | os.PathLike) -> list[str]:
    root = os.path.realpath(path)
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mnt = line.split()[4].replace("\\040", " ")
            if mnt == root or mnt.startswith(root + "/"):
                found.append(mnt)
    return found


def unmount_all_under(path: str | os.PathLike) -> list[str]:
    """umount -R everything mounted below `path`, deepest first; return what was mounted."""
    found = mounts_under(path)
    for mnt in sorted(found, key=len, reverse=True):
        if mnt in mounts_under(path):
            subprocess.run(["umount", "-R", mnt], check=False, capture_output=True)
    left = mounts_under(path)
    for mnt in sorted(left, key=len, reverse=True):
        subprocess.run(["umount", "-l", mnt], check=False, capture_output=True)
    return found


# --------------------------------------------------------------------------- engines


class Engine:
    """An engine under test reached through a unix socket.

    `mode` is "external" (someone else's engine: BERTH_TEST_DOCKER_HOST), "listen"
    (berth behind systemd-socket-activate + scripts/activate-loop.sh, i.e. Accept=no),
    "accept" (systemd-socket-activate -a, i.e. Accept=yes) or "once" (a single
    systemd-socket-activate run without re-arming, as systemd runs berth.service once).
    """

    def __init__(self, host: str, mode: str = "external", workdir: Path | None = None,
                 docker_config: Path | None = None):
        self.host = host
        self.sock = unix_host_path(host)
        self.mode = mode
        self.workdir = workdir
        self.data_root = workdir / "data" if workdir else None
        self.run_root = workdir / "run" if workdir else None
        self.proc: subprocess.Popen | None = None
        self.log_path = workdir / "berth.log" if workdir else None
        self._own_config = docker_config is None
        self.docker_config = docker_config or Path(tempfile.mkdtemp(prefix="berth-dockercfg-"))
        (self.docker_config / "config.json").write_text("{}\n")

    @property
    def external(self) -> bool:
        return self.mode == "external"

    # -- clients
    def docker(self, *args, input: bytes | str | None = None, check: bool = True,
               timeout: float = 120, env: dict | None = None) -> tuple[int, str, str]:
        """Run the docker CLI against this engine; return (rc, stdout, stderr)."""
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
        full_env.update({"DOCKER_HOST": self.host, "DOCKER_CONFIG": str(self.docker_config),
                         "DOCKER_CLI_HINTS": "false"})
        full_env.update(env or {})
        if isinstance(input, str):
            input = input.encode()
        p = subprocess.run([DOCKER_CLI, *map(str, args)], input=input, capture_output=True,
                           env=full_env, timeout=timeout)
        out, err = p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")
        if check and p.returncode != 0:
            raise AssertionError(f"docker {' '.join(map(str, args))} failed ({p.returncode}):\n"
                                 f"stdout: {out}\nstderr: {err}\n{self.log_tail()}")
        return p.returncode, out, err

    def docker_raw(self, *args, input: bytes | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
        full_env.update({"DOCKER_HOST": self.host, "DOCKER_CONFIG": str(self.docker_config)})
        return subprocess.run([DOCKER_CLI, *map(str, args)], input=input, capture_output=True,
                              env=full_env, timeout=timeout)

    def api(self, method: str, path: str, body=None, headers=None, timeout: float = 60.0) -> Response:
        return request(self.sock, method, path, body=body, headers=headers, timeout=timeout)

    def client(self, **kw):
        import docker
        return docker.DockerClient(base_url=self.host, version="auto", timeout=120, **kw)

    def server_api_version(self) -> str:
        return self.api("GET", "/version").json()["ApiVersion"]

    def log_tail(self, n: int = 40) -> str:
        if not self.log_path or not self.log_path.exists():
            return ""
        lines = self.log_path.read_text(errors="replace").splitlines()[-n:]
        return "--- berth log (tail) ---\n" + "\n".join(lines)

    # -- berth lifecycle
    def serve_args(self, idle_timeout: float | None = 5) -> list[str]:
        args = [str(berth_bin()), "serve", "--data-root", str(self.data_root),
                "--run-root", str(self.run_root)]
        if idle_timeout is not None:
            args += ["--idle-timeout", str(idle_timeout)]
        return args

    def start(self, idle_timeout: int = 5, serve_args: list[str] | None = None):
        assert self.workdir is not None
        self.data_root.mkdir(parents=True, exist_ok=True)
        self.run_root.mkdir(parents=True, exist_ok=True)
        if callable(serve_args):  # built from this engine's roots, e.g. a unit's ExecStart
            serve_args = serve_args(self)
        args = serve_args or self.serve_args(idle_timeout)
        env_flags = ["-E", "RUST_LOG", "-E", "RUST_BACKTRACE"]
        if self.mode == "accept":
            cmd = [SOCKET_ACTIVATE, "-a", "-l", self.sock, *env_flags, *args]
        elif self.mode == "listen":
            cmd = [SOCKET_ACTIVATE, "-l", self.sock, *env_flags, "-E", "PATH",
                   str(ACTIVATE_LOOP), *env_flags, *args]
        elif self.mode == "once":
            cmd = [SOCKET_ACTIVATE, "-l", self.sock, *env_flags, *args]
        else:
            raise ValueError(self.mode)
        env = dict(os.environ)
        env.setdefault("RUST_LOG", "info")
        env.setdefault("RUST_BACKTRACE", "1")
        for var in ("LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", "BERTH_DATA_ROOT", "BERTH_RUN_ROOT"):
            env.pop(var, None)
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                     env=env, start_new_session=True)
        log.close()
        # Listening, not only bound: between systemd-socket-activate's bind and listen a connect
        # is refused (the file already exists). Read from /proc, so no activation is triggered.
        if not wait_until(lambda: unix_listening(self.sock) or self.proc.poll() is not None, 10):
            raise RuntimeError(f"socket {self.sock} did not appear\n{self.log_tail()}")
        if self.proc.poll() is not None:
            raise RuntimeError(f"systemd-socket-activate exited with {self.proc.returncode}\n{self.log_tail()}")
        return self

    def reap_containers(self) -> list[str]:
        """Remove this engine's containers, then make sure no monitor or runtime state is left."""
        problems = []
        notes = []  # what helps to find the test that left something; reported with a problem
        if self.run_root is None:
            return problems
        if self.proc is not None and self.proc.poll() is None:
            # Pods first: their infra containers go only with them.
            pods = request(self.sock, "GET", "/libpod/pods/json", timeout=30)
            if pods.status == 200:
                for p in pods.json() or []:
                    notes.append(f"pod left behind: {p.get('Name')}")
                    request(self.sock, "DELETE", f"/libpod/pods/{p['Id']}?force=true", timeout=120)
            rc, out, _ = self.docker("ps", "-aq", check=False, timeout=30)
            ids = out.split() if rc == 0 else []
            if ids:
                rc_rm, _, err_rm = self.docker("rm", "-f", *ids, check=False, timeout=120)
                if rc_rm != 0:
                    notes.append(f"rm -f of the remaining containers said: {err_rm.strip()}")
        run = str(self.run_root)

        def monitors_left():
            return [pid for pid in _pids_with("berth-monitor") if run in _cmdline(pid)]

        wait_until(lambda: not monitors_left(), 10)
        monitors = monitors_left()
        if monitors:
            problems.append(f"container monitors left behind: {monitors}")
            for pid in monitors:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        runc_root = self.run_root / "runc"
        if runc_root.exists():
            listed = subprocess.run(["runc", "--root", str(runc_root), "list", "-q"],
                                    capture_output=True, text=True, check=False)
            for cid in listed.stdout.split():
                problems.append(f"runtime container left behind: {cid}")
                if self.proc is not None and self.proc.poll() is None:
                    rc_i, out_i, err_i = self.docker(
                        "inspect", "--format", "{{.Name}} {{.State.Status}} {{.Config.Cmd}}", cid,
                        check=False, timeout=30)
                    notes.append(f"{cid[:12]}: {(out_i if rc_i == 0 else err_i).strip()}")
                subprocess.run(["runc", "--root", str(runc_root), "delete", "--force", cid],
                               capture_output=True, check=False)
        if problems:
            problems.extend(notes)
        return problems

    def stop(self) -> list[str]:
        """Stop everything we started; return a list of problems found (empty = clean)."""
        problems = self.reap_containers() if not self.external else []
        if self.proc is not None:
            pgid = self.proc.pid
            for sig, grace in ((signal.SIGTERM, 5), (signal.SIGKILL, 5)):
                try:
                    os.killpg(pgid, sig)
                except ProcessLookupError:
                    break
                try:
                    self.proc.wait(timeout=grace)
                except subprocess.TimeoutExpired:
                    continue
                # the group leader is gone; make sure its children are too
                if not wait_until(lambda: not _group_alive(pgid), grace):
                    continue
                break
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(timeout=5)
        if self.data_root is not None:
            wait_until(lambda: not serve_pids(self.data_root), 3)
            left = serve_pids(self.data_root)
            if left:
                problems.append(f"berth serve processes left behind: {left}")
                for pid in left:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
        if self.workdir is not None and self.workdir.exists():
            unmount_all_under(self.workdir)
            left_mounts = mounts_under(self.workdir)
            if left_mounts:
                problems.append(f"mounts left under {self.workdir}: {left_mounts}")
            shutil.rmtree(self.workdir, ignore_errors=True)
        if self._own_config:
            shutil.rmtree(self.docker_config, ignore_errors=True)
        return problems


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _pids_with(word: str) -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit() and word in _cmdline(int(p))]


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def new_workdir() -> Path:
    base = os.environ.get("BERTH_TEST_TMPDIR", "/tmp")
    return Path(tempfile.mkdtemp(prefix="berth-t-", dir=base))


# --------------------------------------------------------------------------- archives

FIXED_CREATED = "2024-01-02T03:04:05Z"


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def tar_bytes(entries: list[dict], compress: bool = False) -> bytes:
    """A tar from entries: {name, data?, type? ('file'|'dir'|'symlink'|'hardlink'), target?, mode?}."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tf:
        for e in entries:
            kind = e.get("type", "file")
            info = tarfile.TarInfo(e["name"])
            info.mtime = 1700000000
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if kind == "dir":
                info.type = tarfile.DIRTYPE
                info.mode = e.get("mode", 0o755)
                tf.addfile(info)
            elif kind == "symlink":
                info.type = tarfile.SYMTYPE
                info.linkname = e["target"]
                info.mode = 0o777
                tf.addfile(info)
            elif kind == "hardlink":
                info.type = tarfile.LNKTYPE
                info.linkname = e["target"]
                info.mode = e.get("mode", 0o644)
                tf.addfile(info)
            else:
                data = e.get("data", b"")
                if isinstance(data, str):
                    data = data.encode()
                info.size = len(data)
                info.mode = e.get("mode", 0o644)
                tf.addfile(info, io.BytesIO(data))
    raw = buf.getvalue()
    return gzip.compress(raw, mtime=0) if compress else raw


@dataclass
class BuiltImage:
    config: bytes
    layers: list[bytes]          # uncompressed layer tars
    repo_tags: list[str]

    @property
    def id(self) -> str:
        return "sha256:" + sha256_hex(self.config)

    @property
    def diff_ids(self) -> list[str]:
        return ["sha256:" + sha256_hex(layer) for layer in self.layers]

    @property
    def config_json(self) -> dict:
        return json.loads(self.config)


def make_image(layers: list[list[dict]] | list[bytes], repo_tags: list[str] | None = None, *,
               cmd=("sh",), env=None, labels=None, created: str = FIXED_CREATED,
               history: list[dict] | None = None, extra_config: dict | None = None) -> BuiltImage:
    """An image config (Docker's image JSON) for the given layers, serialised once."""
    layer_tars = [layer if isinstance(layer, bytes) else tar_bytes(layer) for layer in layers]
    diff_ids = ["sha256:" + sha256_hex(layer) for layer in layer_tars]
    container_config = {
        "Env": list(env) if env else ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
        "Cmd": list(cmd) if cmd is not None else None,
        "Labels": labels,
    }
    if extra_config:
        container_config.update(extra_config)
    if history is None:
        history = [{"created": created, "created_by": f"/bin/sh -c #(nop) ADD layer {i}"}
                   for i in range(len(layer_tars))]
    config = {
        "architecture": "amd64",
        "config": container_config,
        "created": created,
        "history": history,
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }
    return BuiltImage(json.dumps(config, separators=(",", ":")).encode(), layer_tars, list(repo_tags or []))


def unix_listening(path: str) -> bool:
    """Is a listening unix socket bound at `path` (Flags has __SO_ACCEPTCON)?"""
    try:
        with open("/proc/net/unix") as f:
            next(f)
            for line in f:
                parts = line.split()
                if len(parts) >= 8 and parts[7] == path and int(parts[3], 16) & 0x10000:
                    return True
    except OSError:
        return os.path.exists(path)
    return False


def docker_archive(images: list[BuiltImage], *, layout: str = "docker", gzip_outer: bool = False,
                   gzip_layers: bool = False, extra_entries: list[dict] | None = None) -> bytes:
    """A `docker save` style archive.

    layout="docker": the legacy layout of Docker < 25 (`<id>.json`, `<layer>/layer.tar`,
    `manifest.json`, `repositories`). layout="oci": what Docker 25+ writes: an OCI image
    layout (`oci-layout`, `index.json`, `blobs/sha256/...`) plus a `manifest.json` whose
    paths point into `blobs/`.
    """
    entries: list[dict] = []
    manifest = []
    seen = set()

    def add(name, data):
        if name not in seen:
            seen.add(name)
            entries.append({"name": name, "data": data})

    index_manifests = []
    for img in images:
        cfg_hex = sha256_hex(img.config)
        if layout == "docker":
            add(f"{cfg_hex}.json", img.config)
            layer_paths = []
            for layer in img.layers:
                lid = sha256_hex(layer)
                if lid not in seen:
                    seen.add(lid)
                    entries.append({"name": f"{lid}/", "type": "dir"})
                blob = gzip.compress(layer, mtime=0) if gzip_layers else layer
                add(f"{lid}/VERSION", b"1.0")
                add(f"{lid}/layer.tar", blob)
                layer_paths.append(f"{lid}/layer.tar")
            manifest.append({"Config": f"{cfg_hex}.json", "RepoTags": img.repo_tags or None,
                             "Layers": layer_paths})
        elif layout == "oci":
            add(f"blobs/sha256/{cfg_hex}", img.config)
            layer_descs, layer_paths = [], []
            for layer in img.layers:
                blob = gzip.compress(layer, mtime=0) if gzip_layers else layer
                bhex = sha256_hex(blob)
                add(f"blobs/sha256/{bhex}", blob)
                layer_paths.append(f"blobs/sha256/{bhex}")
                layer_descs.append({
                    "mediaType": "application/vnd.oci.image.layer.v1.tar" + ("+gzip" if gzip_layers else ""),
                    "digest": f"sha256:{bhex}", "size": len(blob)})
            oci_manifest = json.dumps({
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                           "digest": f"sha256:{cfg_hex}", "size": len(img.config)},
                "layers": layer_descs,
            }, separators=(",", ":")).encode()
            mhex = sha256_hex(oci_manifest)
            add(f"blobs/sha256/{mhex}", oci_manifest)
            for tag in img.repo_tags or [None]:
                desc = {"mediaType": "application/vnd.oci.image.manifest.v1+json",
                        "digest": f"sha256:{mhex}", "size": len(oci_manifest)}
                if tag:
                    full = tag if "/" in tag.split(":")[0] else "docker.io/library/" + tag
                    desc["annotations"] = {"io.containerd.image.name": full,
                                           "org.opencontainers.image.ref.name": tag.rsplit(":", 1)[1]}
                index_manifests.append(desc)
            manifest.append({"Config": f"blobs/sha256/{cfg_hex}", "RepoTags": img.repo_tags or None,
                             "Layers": layer_paths})
        else:
            raise ValueError(layout)
    if layout == "oci":
        add("oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
        add("index.json", json.dumps({"schemaVersion": 2,
                                      "mediaType": "application/vnd.oci.image.index.v1+json",
                                      "manifests": index_manifests}).encode())
    add("manifest.json", json.dumps(manifest).encode())
    entries.extend(extra_entries or [])
    # directories first, like Docker's own archives
    entries = [e for e in entries if e.get("type") == "dir"] + [e for e in entries if e.get("type") != "dir"]
    return tar_bytes(entries, compress=gzip_outer)


def simple_layer(tag: str, files: dict[str, bytes | str] | None = None) -> list[dict]:
    files = files or {f"etc/{tag}.txt": f"hello from {tag}\n"}
    entries, dirs = [], set()
    for name in sorted(files):
        parts = name.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            d = "/".join(parts[:i])
            if d not in dirs:
                dirs.add(d)
                entries.append({"name": d + "/", "type": "dir"})
        entries.append({"name": name, "data": files[name]})
    return entries


def layer_size(layer_entries: list[dict]) -> int:
    return sum(len(e.get("data", b"")) for e in layer_entries if e.get("type", "file") == "file")
