"""Pull benchmark (issue 4): a multi-layer image of about 200 MB served by Debian's
docker-registry on 127.0.0.1, pulled by each engine with the docker CLI.

The image is uploaded straight over the distribution API (so no engine's push is involved):
one layer of random bytes (incompressible) and one of varied text (compresses about 5:1), each
gzip-compressed, with a Docker v2 schema 2 manifest. Figures per engine (median of the runs):
wall time of `docker pull`, MB/s of compressed bytes fetched, and CPU seconds the engine's own
processes spent per 100 MB fetched.
"""

from __future__ import annotations

import hashlib
import http.client
import io
import json
import os
import random
import socket
import subprocess
import tarfile
import time
import zlib
from pathlib import Path

REGISTRY_BIN = "/usr/bin/docker-registry"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Registry:
    """docker-registry on a free loopback port with its storage under `work`."""

    def __init__(self, work: Path):
        self.work = work
        self.port = free_port()
        self.addr = f"127.0.0.1:{self.port}"
        work.mkdir(parents=True, exist_ok=True)
        cfg = work / "config.yml"
        cfg.write_text(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n"
            f"    rootdirectory: {work / 'data'}\n  delete:\n    enabled: true\n"
            f"http:\n  addr: {self.addr}\n")
        self.proc = subprocess.Popen([REGISTRY_BIN, "serve", str(cfg)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if self._request("GET", "/v2/")[0] == 200:
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("docker-registry did not start")

    def _request(self, method: str, path: str, body=None, headers=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
        conn.close()
        return resp.status, dict(resp.getheaders()), data

    def put_blob(self, repo: str, data: bytes) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        st, hdrs, _ = self._request("POST", f"/v2/{repo}/blobs/uploads/")
        assert st == 202, st
        loc = hdrs["Location"]
        if loc.startswith("http"):
            loc = "/" + loc.split("/", 3)[3]
        sep = "&" if "?" in loc else "?"
        st, _, body = self._request("PUT", f"{loc}{sep}digest={digest}", body=data,
                                    headers={"Content-Type": "application/octet-stream"})
        assert st == 201, (st, body[:200])
        return digest

    def put_manifest(self, repo: str, tag: str, manifest: dict):
        st, _, body = self._request(
            "PUT", f"/v2/{repo}/manifests/{tag}", body=json.dumps(manifest).encode(),
            headers={"Content-Type": "application/vnd.docker.distribution.manifest.v2+json"})
        assert st == 201, (st, body[:200])

    def stop(self):
        try:
            os.killpg(self.proc.pid, 9)
        except ProcessLookupError:
            pass
        self.proc.wait()


def layer_tar(name: str, payload: bytes) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        info = tarfile.TarInfo(name)
        info.size, info.mtime, info.mode = len(payload), 1_700_000_000, 0o644
        tf.addfile(info, io.BytesIO(payload))
    return buf.getvalue()


def text_payload(size: int) -> bytes:
    rng = random.Random(7)
    words = [bytes(rng.choice(b"abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(3, 9)))
             for _ in range(5000)]
    out = bytearray()
    while len(out) < size:
        out += b" ".join(rng.choice(words) for _ in range(12)) + b"\n"
    return bytes(out[:size])


def gzip_bytes(data: bytes) -> bytes:
    c = zlib.compressobj(1, zlib.DEFLATED, 31)
    return c.compress(data) + c.flush()


def upload_image(reg: Registry, repo: str, total_mb: int, rootfs_tar: bytes) -> int:
    """Upload busybox + a random and a text layer; returns the compressed bytes of the image."""
    half = total_mb * 1_000_000 // 2
    tars = [rootfs_tar, layer_tar("random.bin", os.urandom(half)), layer_tar("text.txt", text_payload(half))]
    layers, diff_ids = [], []
    for t in tars:
        gz = gzip_bytes(t)
        diff_ids.append("sha256:" + hashlib.sha256(t).hexdigest())
        layers.append({"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                       "size": len(gz), "digest": reg.put_blob(repo, gz)})
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(os.uname().machine, os.uname().machine)
    config = json.dumps({
        "architecture": arch, "os": "linux",
        "config": {"Cmd": ["sh"], "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created": "2026-01-01T00:00:00Z", "created_by": f"layer {i}"} for i in range(3)],
    }).encode()
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                   "size": len(config), "digest": reg.put_blob(repo, config)},
        "layers": layers,
    }
    reg.put_manifest(repo, "latest", manifest)
    return sum(layer["size"] for layer in layers)


def rootfs_from_image_tar(image_tar: Path) -> bytes:
    """The single layer of the busybox test image (the `docker import` input is a plain tar)."""
    return image_tar.read_bytes()


def cpu_seconds(pids: list[int]) -> dict[int, float]:
    out = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # utime, stime, cutime, cstime (fields 14-17 of stat; after the comm they start at 11)
        out[pid] = sum(int(x) for x in fields[11:15]) / CLK_TCK
    return out


def pull_figures(eng, cli, sock: str, ref: str, compressed: int, runs: int) -> dict:
    """Pull `ref` `runs` times (removing it in between); medians of wall time, MB/s, CPU."""
    walls, cpus = [], []
    for _ in range(runs):
        cli(sock, "rmi", "-f", ref, check=False)
        before = cpu_seconds(eng.own_pids())
        t0 = time.perf_counter()
        cli(sock, "pull", "-q", ref)
        wall = time.perf_counter() - t0
        after = cpu_seconds(eng.own_pids())
        cpu = sum(v - before.get(pid, 0.0) for pid, v in after.items())
        walls.append(wall)
        cpus.append(cpu)
        out = cli(sock, "run", "--rm", "--network", "none", ref, "sh", "-c", "wc -c < /random.bin")
        assert int(out.strip()) > 0, out
    walls.sort()
    cpus.sort()
    wall = walls[len(walls) // 2]
    cpu = cpus[len(cpus) // 2]
    mb = compressed / 1_000_000
    return {"wall": wall * 1000, "mbps": mb / wall, "cpu": cpu / mb * 100}
