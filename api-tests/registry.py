"""Registry fixtures: Debian's docker-registry (distribution 2.8) on a free 127.0.0.1 port with
filesystem storage in a temporary folder, plain or behind htpasswd (bcrypt) auth, and a small
uploader that puts images straight into it over the registry HTTP API (push is tested elsewhere).

Loopback registries are insecure by default for Docker and berth alike: plain HTTP works.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import http.client
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

import pytest

from helpers import BuiltImage, make_image, tar_bytes

REGISTRY_BIN = shutil.which("docker-registry") or "/usr/bin/docker-registry"
ZSTD_BIN = shutil.which("zstd") or "/usr/bin/zstd"

MT_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MT_DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MT_DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
MT_DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
MT_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MT_OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"


def host_arch() -> str:
    m = os.uname().machine
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(m, m)


def other_arch() -> str:
    return "arm64" if host_arch() != "arm64" else "amd64"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bcrypt_hash(password: str) -> str:
    """An htpasswd bcrypt line value: the `bcrypt` package if present, else libcrypt's $2b$."""
    try:
        import bcrypt  # type: ignore
        return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=5)).decode()
    except ImportError:
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            import crypt  # deprecated in 3.11, still in Debian 12's Python
        return crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=1 << 5))


def compress(raw: bytes, how: str) -> bytes:
    if how == "gzip":
        return gzip.compress(raw, mtime=0)
    if how == "zstd":
        return subprocess.run([ZSTD_BIN, "-q", "-c", "-3"], input=raw, capture_output=True,
                              check=True).stdout
    if how == "none":
        return raw
    raise ValueError(how)


def layer_media_type(how: str, oci: bool) -> str:
    if not oci:
        if how != "gzip":
            raise ValueError("Docker schema 2 layers are gzip")
        return MT_DOCKER_LAYER
    return MT_OCI_LAYER + {"gzip": "+gzip", "zstd": "+zstd", "none": ""}[how]


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class Pushed:
    """What the uploader put in the registry for one tag."""
    repo: str                 # e.g. 127.0.0.1:5000/x
    tag: str
    digest: str               # manifest (or index) digest
    media_type: str
    images: dict              # arch -> BuiltImage
    layer_digests: list       # blob digests of the (host) image's layers

    @property
    def ref(self) -> str:
        return f"{self.repo}:{self.tag}"


class Registry:
    def __init__(self, auth: tuple[str, str] | None = None, ip: str = "127.0.0.1",
                 tls: dict | None = None):
        # tls: {"certificate", "key", "ca"[, "clientcas", "client_cert", "client_key"]} paths;
        # the registry then speaks HTTPS only (and with clientcas demands a client certificate).
        self.tls = tls
        self.dir = Path(tempfile.mkdtemp(prefix="berth-registry-"))
        self.port = free_port()
        self.ip = ip
        self.host = f"{ip}:{self.port}"
        self.auth = auth
        self.proc: subprocess.Popen | None = None

    # -- lifecycle
    def start(self):
        cfg = {
            "version": 0.1,
            "log": {"level": "error", "accesslog": {"disabled": True}},
            "storage": {"filesystem": {"rootdirectory": str(self.dir / "data")},
                        "delete": {"enabled": True}},
            "http": {"addr": self.host},
        }
        if self.auth:
            user, pw = self.auth
            (self.dir / "htpasswd").write_text(f"{user}:{bcrypt_hash(pw)}\n")
            cfg["auth"] = {"htpasswd": {"realm": "berth-test", "path": str(self.dir / "htpasswd")}}
        if self.tls:
            cfg["http"]["tls"] = {"certificate": self.tls["certificate"], "key": self.tls["key"]}
            if self.tls.get("clientcas"):
                cfg["http"]["tls"]["clientcas"] = [self.tls["clientcas"]]
        # YAML is a superset of JSON.
        (self.dir / "config.yml").write_text(json.dumps(cfg))
        log = open(self.dir / "registry.log", "wb")
        self.proc = subprocess.Popen([REGISTRY_BIN, "serve", str(self.dir / "config.yml")],
                                     stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("docker-registry exited:\n" + self.log())
            try:
                status, _, _ = self.http("GET", "/v2/", auth=False)
                if status in (200, 401):
                    return self
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("docker-registry did not answer:\n" + self.log())

    def stop(self):
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        shutil.rmtree(self.dir, ignore_errors=True)

    def log(self) -> str:
        try:
            return (self.dir / "registry.log").read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    # -- raw HTTP
    def http(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
             auth: bool = True) -> tuple[int, dict, bytes]:
        h = dict(headers or {})
        if auth and self.auth:
            h["Authorization"] = "Basic " + base64.b64encode(":".join(self.auth).encode()).decode()
        if self.tls:
            ctx = ssl.create_default_context(cafile=self.tls["ca"])
            if self.tls.get("client_cert"):
                ctx.load_cert_chain(self.tls["client_cert"], self.tls["client_key"])
            conn = http.client.HTTPSConnection(self.ip, self.port, timeout=60, context=ctx)
        else:
            conn = http.client.HTTPConnection(self.ip, self.port, timeout=60)
        try:
            conn.request(method, path, body=body, headers=h)
            r = conn.getresponse()
            data = r.read()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, data
        finally:
            conn.close()

    def put_blob(self, name: str, data: bytes) -> str:
        dg = digest_of(data)
        status, _, _ = self.http("HEAD", f"/v2/{name}/blobs/{dg}")
        if status == 200:
            return dg
        status, h, body = self.http("POST", f"/v2/{name}/blobs/uploads/")
        assert status == 202, (status, body)
        loc = urllib.parse.urlsplit(h["location"])
        q = loc.query + ("&" if loc.query else "") + "digest=" + urllib.parse.quote(dg)
        status, _, body = self.http("PUT", f"{loc.path}?{q}", body=data,
                                    headers={"Content-Type": "application/octet-stream"})
        assert status == 201, (status, body)
        return dg

    def put_manifest(self, name: str, ref: str, data: bytes, media_type: str) -> str:
        status, h, body = self.http("PUT", f"/v2/{name}/manifests/{ref}", body=data,
                                    headers={"Content-Type": media_type})
        assert status == 201, (status, body)
        return h.get("docker-content-digest", digest_of(data))

    # -- images
    def upload_image(self, name: str, tag: str, img: BuiltImage, how: str = "gzip",
                     oci: bool = False, tag_it: bool = True) -> tuple[str, bytes, list[str]]:
        """Blobs and manifest of one image; returns (manifest digest, manifest bytes, layer digests)."""
        layer_descs, digests = [], []
        for raw in img.layers:
            blob = compress(raw, how)
            dg = self.put_blob(name, blob)
            digests.append(dg)
            layer_descs.append({"mediaType": layer_media_type(how, oci), "size": len(blob), "digest": dg})
        cfg_dg = self.put_blob(name, img.config)
        manifest = {
            "schemaVersion": 2,
            "mediaType": MT_OCI_MANIFEST if oci else MT_DOCKER_MANIFEST,
            "config": {"mediaType": MT_OCI_CONFIG if oci else MT_DOCKER_CONFIG,
                       "size": len(img.config), "digest": cfg_dg},
            "layers": layer_descs,
        }
        data = json.dumps(manifest, indent=3).encode()
        mt = manifest["mediaType"]
        dg = self.put_manifest(name, tag if tag_it else digest_of(data), data, mt)
        return dg, data, digests

    def repo(self, name: str) -> str:
        return f"{self.host}/{name}"


def busybox_image(busybox_tar: Path, marker: str, arch: str | None = None) -> BuiltImage:
    """busybox-static as the base layer plus a small layer with /marker holding `marker`."""
    base = busybox_tar.read_bytes()
    top = tar_bytes([{"name": "marker", "data": marker + "\n"}])
    img = make_image([base, top])
    if arch:
        cfg = json.loads(img.config)
        cfg["architecture"] = arch
        if arch == "arm64":
            cfg["variant"] = "v8"
        img = BuiltImage(json.dumps(cfg, separators=(",", ":")).encode(), img.layers, [])
    return img


class Uploader:
    """Puts test images into a Registry."""

    def __init__(self, reg: Registry, busybox_tar: Path):
        self.reg = reg
        self.busybox_tar = busybox_tar

    def image(self, name: str, tag: str = "latest", how: str = "gzip", oci: bool = False,
              marker: str | None = None) -> Pushed:
        img = busybox_image(self.busybox_tar, marker or f"{name}:{tag}:{how}")
        dg, _, digests = self.reg.upload_image(name, tag, img, how=how, oci=oci)
        return Pushed(self.reg.repo(name), tag, dg, MT_OCI_MANIFEST if oci else MT_DOCKER_MANIFEST,
                      {host_arch(): img}, digests)

    def multi_platform(self, name: str, tag: str = "latest", oci: bool = True) -> Pushed:
        """An index with the host's platform and one other, each with its own marker."""
        images, entries, host_digests = {}, [], []
        for arch in (host_arch(), other_arch()):
            img = busybox_image(self.busybox_tar, f"{name}:{tag}:{arch}", arch=arch)
            dg, data, digests = self.reg.upload_image(name, tag, img, how="gzip", oci=oci, tag_it=False)
            platform = {"architecture": arch, "os": "linux"}
            if arch == "arm64":
                platform["variant"] = "v8"
            entries.append({"mediaType": MT_OCI_MANIFEST if oci else MT_DOCKER_MANIFEST,
                            "size": len(data), "digest": dg, "platform": platform})
            images[arch] = img
            if arch == host_arch():
                host_digests = digests
        mt = MT_OCI_INDEX if oci else MT_DOCKER_LIST
        index = json.dumps({"schemaVersion": 2, "mediaType": mt, "manifests": entries}).encode()
        dg = self.reg.put_manifest(name, tag, index, mt)
        return Pushed(self.reg.repo(name), tag, dg, mt, images, host_digests)


def non_loopback_ip() -> str | None:
    """An address of this host that is not loopback (where Docker would insist on TLS)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("192.0.2.1", 9))  # no packet is sent; this only picks a source address
            ip = s.getsockname()[0]
    except OSError:
        return None
    return None if ip.startswith("127.") else ip


def start_registry(auth=None, ip: str = "127.0.0.1", tls: dict | None = None) -> Registry:
    if not Path(REGISTRY_BIN).exists():
        pytest.skip("docker-registry not installed (apt-get install docker-registry)")
    reg = Registry(auth=auth, ip=ip, tls=tls)
    try:
        return reg.start()
    except BaseException:
        reg.stop()
        raise


@pytest.fixture(scope="session")
def registry():
    """A plain (no auth) registry for the whole session."""
    reg = start_registry()
    yield reg
    reg.stop()


@pytest.fixture(scope="session")
def auth_registry():
    """A registry behind htpasswd auth: user `tester`, password `s3cret-pw`."""
    reg = start_registry(auth=("tester", "s3cret-pw"))
    yield reg
    reg.stop()


@pytest.fixture(scope="session")
def uploader(registry, busybox_tar) -> Uploader:
    return Uploader(registry, busybox_tar)


@pytest.fixture(scope="session")
def auth_uploader(auth_registry, busybox_tar) -> Uploader:
    return Uploader(auth_registry, busybox_tar)
