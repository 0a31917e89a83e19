"""`docker pull` from a registry that lies.

The registry here is a small Python HTTP server (plain HTTP on a free 127.0.0.1 port, which
berth and Docker treat as insecure-by-default) that serves `/v2/`, manifests and blobs from
per-test tables, records every path it was asked for, and can misbehave on purpose: digests
that are paths or junk, a blob that trickles one byte per second forever, a layer whose tar
claims a 2 GiB PAX header. The engine must refuse the lies before they name a file or a URL,
stop a download whose client went away, and stay small and responsive throughout.
"""

from __future__ import annotations

import gzip
import http.server
import json
import os
import re
import select
import socket
import subprocess
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

import docker
import pytest

from helpers import DOCKER_CLI, make_image, serve_pids, tar_bytes, wait_until
from registry import (MT_DOCKER_CONFIG, MT_DOCKER_LAYER, MT_DOCKER_LIST, MT_DOCKER_MANIFEST,
                      digest_of, free_port, host_arch)

VALID_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


# --------------------------------------------------------------------------- the lying registry


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = False  # server_close() joins the handlers: nothing outlives the test
    block_on_close = True


class LyingRegistry:
    """Serves `manifests[(repo, ref)] = (media_type, body)` and `blobs[digest] = bytes | callable`.

    A callable blob is called as `fn(handler, send_body)` and answers by itself. Every request
    is recorded in `seen` as (method, path)."""

    def __init__(self):
        self.manifests: dict[tuple[str, str], tuple[str, bytes]] = {}
        self.blobs: dict[str, object] = {}
        self.seen: list[tuple[str, str]] = []
        self.stopping = threading.Event()
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        liar = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def setup(self):
                super().setup()
                with liar._lock:
                    liar._conns.add(self.connection)

            def finish(self):
                try:
                    super().finish()
                except OSError:
                    pass
                with liar._lock:
                    liar._conns.discard(self.connection)

            def do_GET(self):
                liar._answer(self, True)

            def do_HEAD(self):
                liar._answer(self, False)

        self.server = _Server(("127.0.0.1", free_port()), Handler)
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.stopping.set()
        self.server.shutdown()
        with self._lock:
            conns = list(self._conns)
        for c in conns:  # unblock handlers waiting for a next request on a kept-alive connection
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.server.server_close()
        self.thread.join(timeout=10)

    # -- tables
    def put_manifest(self, repo: str, tag: str, media_type: str, body: bytes) -> str:
        dg = digest_of(body)
        self.manifests[(repo, tag)] = (media_type, body)
        self.manifests[(repo, dg)] = (media_type, body)
        return dg

    def allowed_paths(self, repo: str) -> set[str]:
        """What an engine may ask for: `/v2/`, the manifests, and the blobs with valid digests."""
        paths = {"/v2/"}
        paths |= {f"/v2/{r}/manifests/{ref}" for (r, ref) in self.manifests}
        paths |= {f"/v2/{repo}/blobs/{d}" for d in self.blobs if VALID_DIGEST.fullmatch(d)}
        return paths

    def blob_requests(self) -> list[str]:
        return [p for _, p in self.seen if "/blobs/" in p]

    # -- HTTP
    @staticmethod
    def _send(h, status: int, body: bytes, send_body: bool, headers: dict | None = None):
        h.send_response(status)
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        if send_body:
            h.wfile.write(body)

    @staticmethod
    def _error(code: str, message: str) -> bytes:
        return json.dumps({"errors": [{"code": code, "message": message}]}).encode()

    def _answer(self, h, send_body: bool):
        path = urllib.parse.unquote(urllib.parse.urlsplit(h.path).path)
        self.seen.append((h.command, path))
        api = {"Docker-Distribution-API-Version": "registry/2.0"}
        if path == "/v2/":
            return self._send(h, 200, b"{}", send_body, {**api, "Content-Type": "application/json"})
        m = re.fullmatch(r"/v2/(.+)/manifests/([^/]+)", path)
        if m:
            found = self.manifests.get((m[1], m[2]))
            if found is None:
                return self._send(h, 404, self._error("MANIFEST_UNKNOWN", "manifest unknown"),
                                  send_body, {**api, "Content-Type": "application/json"})
            mt, body = found
            return self._send(h, 200, body, send_body,
                              {**api, "Content-Type": mt, "Docker-Content-Digest": digest_of(body)})
        m = re.fullmatch(r"/v2/(.+?)/blobs/(.+)", path)
        if m:
            blob = self.blobs.get(m[2])
            if callable(blob):
                return blob(h, send_body)
            if blob is not None:
                return self._send(h, 200, blob, send_body,
                                  {**api, "Content-Type": "application/octet-stream",
                                   "Docker-Content-Digest": m[2]})
            return self._send(h, 404, self._error("BLOB_UNKNOWN", "blob unknown to registry"),
                              send_body, {**api, "Content-Type": "application/json"})
        return self._send(h, 404, self._error("NOT_FOUND", "not found"), send_body, api)


class Trickle:
    """A blob answered with a large Content-Length, then one byte per second until the test ends
    or the engine closes the connection (which is recorded in `ended`)."""

    def __init__(self, liar: LyingRegistry, size: int):
        self.liar, self.size = liar, size
        self.started = threading.Event()
        self.closed_by_peer = threading.Event()
        self.ended: list[str] = []
        self.sent = 0

    def __call__(self, h, send_body: bool):
        h.send_response(200)
        h.send_header("Content-Type", "application/octet-stream")
        h.send_header("Content-Length", str(self.size))
        h.end_headers()
        h.close_connection = True
        if not send_body:
            return
        self.started.set()
        conn = h.connection
        while not self.liar.stopping.is_set():
            try:
                h.wfile.write(b"\0")
                h.wfile.flush()
                self.sent += 1
                readable, _, _ = select.select([conn], [], [], 0)
                if readable and conn.recv(1, socket.MSG_PEEK) == b"":
                    raise ConnectionAbortedError("EOF from the engine")
            except OSError as e:
                if not self.liar.stopping.is_set():
                    self.ended.append(f"after {self.sent} bytes: {e!r}")
                    self.closed_by_peer.set()
                return
            self.liar.stopping.wait(1)
        self.ended.append("stopped by the test")


@pytest.fixture
def liar():
    reg = LyingRegistry()
    yield reg
    reg.stop()


# --------------------------------------------------------------------------- images


@dataclass
class Served:
    ref: str
    repo: str
    config: bytes
    diff_ids: list[str]
    layer_digests: list[str] = field(default_factory=list)


def serve_image(liar: LyingRegistry, repo: str, tag: str, layers: list[bytes], *,
                layer_digests: dict[int, str] | None = None, config_digest: str | None = None) -> Served:
    """A schema 2 image of gzip layers (`layers` are uncompressed tars). `layer_digests` and
    `config_digest` replace what the manifest claims; the blob is served under the claimed
    digest anyway, so an engine that does ask for it gets an answer."""
    img = make_image(layers)
    descs = []
    for i, raw in enumerate(layers):
        blob = gzip.compress(raw, mtime=0)
        dg = (layer_digests or {}).get(i) or digest_of(blob)
        liar.blobs[dg] = blob
        descs.append({"mediaType": MT_DOCKER_LAYER, "size": len(blob), "digest": dg})
    cfg_dg = config_digest or digest_of(img.config)
    liar.blobs[cfg_dg] = img.config
    manifest = {"schemaVersion": 2, "mediaType": MT_DOCKER_MANIFEST,
                "config": {"mediaType": MT_DOCKER_CONFIG, "size": len(img.config), "digest": cfg_dg},
                "layers": descs}
    liar.put_manifest(repo, tag, MT_DOCKER_MANIFEST, json.dumps(manifest, indent=3).encode())
    return Served(f"{liar.host}/{repo}:{tag}", f"{liar.host}/{repo}", img.config, img.diff_ids,
                  [d["digest"] for d in descs])


def small_layer(text: str) -> bytes:
    return tar_bytes([{"name": "lying.txt", "data": text + "\n"}])


def pad_digest(prefix: str) -> str:
    """`sha256:` + `prefix` padded with `a` to exactly 64 characters."""
    assert len(prefix) <= 64
    return "sha256:" + prefix + "a" * (64 - len(prefix))


# --------------------------------------------------------------------------- checks


def pulled_repos(eng) -> list[str]:
    _, out, _ = eng.docker("images", "--format", "{{.Repository}}:{{.Tag}}")
    return out.split()


def assert_not_listed(eng, repo: str):
    listed = [r for r in pulled_repos(eng) if r.startswith(repo + ":")]
    assert not listed, f"docker images lists {listed}"


def assert_answers(eng):
    r = eng.api("GET", "/_ping", timeout=20)
    assert r.status == 200, (r.status, r.body, eng.log_tail())


def cli_pull_fails(eng, ref: str) -> str:
    rc, out, err = eng.docker("pull", ref, check=False, timeout=120)
    assert rc != 0, f"docker pull {ref} succeeded:\n{out}"
    return err + out


def py_pull_error(eng, repo: str, tag: str) -> str:
    """docker-py's pull: the error is an HTTP error, or the last `error` of the stream."""
    c = eng.client()
    try:
        try:
            events = list(c.api.pull(repo, tag=tag, stream=True, decode=True))
        except docker.errors.APIError as e:
            return str(e.explanation or e)
        errors = [ev["error"] for ev in events if "error" in ev]
        assert errors, f"docker-py pull of {repo}:{tag} reported no error: {events[-3:]}"
        return errors[-1]
    finally:
        c.close()


def blob_files(eng) -> list[str]:
    root = eng.data_root / "blobs"
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


def layer_folders(eng) -> list[str]:
    root = eng.data_root / "layers"
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


def serve_hwm_kib(eng) -> dict[int, int]:
    """Peak resident size (VmHWM, KiB) of each `berth serve` of this engine."""
    out = {}
    for pid in serve_pids(eng.data_root):
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    out[pid] = int(line.split()[1])
        except OSError:
            pass
    return out


# --------------------------------------------------------------------------- tests


def test_fake_registry_serves_an_honest_image(engine, liar):
    """Control: the fake registry, telling the truth, is pulled like any registry (so a failure
    below is the lie, not the fake)."""
    nonce = os.urandom(4).hex()
    served = serve_image(liar, "lying/honest", "v1", [small_layer(f"honest {nonce}")])
    _, out, _ = engine.docker("pull", served.ref)
    assert f"Status: Downloaded newer image for {served.ref}" in out
    _, ids, _ = engine.docker("image", "inspect", "-f", "{{json .RootFS.Layers}}", served.ref)
    assert json.loads(ids) == served.diff_ids
    assert set(p for _, p in liar.seen) <= liar.allowed_paths("lying/honest")
    engine.docker("rmi", served.ref)
    assert_answers(engine)


@pytest.mark.parametrize("kind", ["relative", "absolute"])
def test_layer_digest_that_is_a_path_is_refused(engine, liar, kind):
    """A manifest whose layer digest is a path (`sha256:../../…/x`, or `sha256:/tmp/…`) is refused
    with moby's text before the engine asks for that blob or touches the path; nothing is
    listed afterwards (checked with the docker CLI and with docker-py)."""
    nonce = os.urandom(4).hex()
    if kind == "relative":
        bad = "sha256:" + "../" * 21 + "x"
    else:
        bad = pad_digest(f"/tmp/berth-lying-{nonce}-")
    assert len(bad) == len("sha256:") + 64
    sentinel_glob = (Path("/tmp"), f"berth-lying-{nonce}*")
    # Where a careless engine would write it: <data-root>/blobs/sha256/<hex>[.<rand>.partial].
    escaped = None
    if engine.data_root is not None:
        escaped = Path(os.path.normpath(engine.data_root / "blobs" / "sha256" / bad.split(":", 1)[1]))
        existed_before = escaped.exists()
    repo = f"lying/path-{kind}"
    served = serve_image(liar, repo, "v1", [small_layer(f"path {nonce}")], layer_digests={0: bad})

    err = cli_pull_fails(engine, served.ref)
    assert "could not validate layer digest" in err, err
    assert "invalid checksum digest format" in err, err
    assert f'"{bad}"' in err, err
    msg = py_pull_error(engine, served.repo, "v1")
    assert "could not validate layer digest" in msg and "invalid checksum digest format" in msg, msg

    assert not any(bad in p for p in liar.blob_requests()), liar.seen
    unexpected = [p for _, p in liar.seen if p not in liar.allowed_paths(repo)]
    assert not unexpected, f"the engine asked for {unexpected}"
    assert not list(sentinel_glob[0].glob(sentinel_glob[1])), "a file was written outside the data root"
    if escaped is not None:
        assert existed_before or not escaped.exists(), escaped
        assert not list(escaped.parent.glob(escaped.name + ".*.partial")), escaped
    assert_not_listed(engine, served.repo)
    assert_answers(engine)


MALFORMED = {
    # kind: (where the lie is, the digest, the expected texts)
    "non-hex": ("layer", "sha256:" + "z" * 64, ["could not validate layer digest",
                                                "invalid checksum digest format"]),
    "upper-case": ("layer", "sha256:" + "AB" * 32, ["could not validate layer digest",
                                                    "invalid checksum digest format"]),
    "too-short": ("layer", "sha256:abc123", ["could not validate layer digest",
                                             "invalid checksum digest length"]),
    "config-junk": ("config", "sha256:/etc/passwd", ["could not validate config digest"]),
    "index-entry-junk": ("index", "sha256:ZZ", ["could not validate manifest digest"]),
}


@pytest.mark.parametrize("kind", list(MALFORMED))
def test_malformed_digest_is_refused(engine, liar, kind):
    """A layer, config or manifest-list entry digest that is not `sha256:<64 lower-case hex>` fails
    the pull with moby's `could not validate … digest` text, and nothing is fetched under it."""
    where, bad, texts = MALFORMED[kind]
    nonce = os.urandom(4).hex()
    repo = f"lying/{kind}"
    layers = [small_layer(f"{kind} {nonce}")]
    if where == "layer":
        served = serve_image(liar, repo, "v1", layers, layer_digests={0: bad})
    elif where == "config":
        served = serve_image(liar, repo, "v1", layers, config_digest=bad)
    else:
        # A real image behind the list, and an entry for this platform that points nowhere.
        inner = serve_image(liar, repo, "inner", layers)
        liar.manifests.pop((repo, "inner"))
        entry = {"mediaType": MT_DOCKER_MANIFEST, "size": 100, "digest": bad,
                 "platform": {"architecture": host_arch(), "os": "linux"}}
        index = json.dumps({"schemaVersion": 2, "mediaType": MT_DOCKER_LIST,
                            "manifests": [entry]}).encode()
        liar.put_manifest(repo, "v1", MT_DOCKER_LIST, index)
        served = Served(f"{liar.host}/{repo}:v1", inner.repo, inner.config, inner.diff_ids)

    err = cli_pull_fails(engine, served.ref)
    for text in texts:
        assert text in err, err
    if kind in ("non-hex", "index-entry-junk"):
        msg = py_pull_error(engine, served.repo, "v1")
        for text in texts:
            assert text in msg, msg
    assert not any(bad in p for p in liar.blob_requests() + [p for _, p in liar.seen]), liar.seen
    unexpected = [p for _, p in liar.seen if p not in liar.allowed_paths(repo)]
    assert not unexpected, f"the engine asked for {unexpected}"
    assert_not_listed(engine, served.repo)
    assert_answers(engine)


def _docker_env(eng) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
    env.update({"DOCKER_HOST": eng.host, "DOCKER_CONFIG": str(eng.docker_config),
                "DOCKER_CLI_HINTS": "false"})
    return env


@pytest.mark.berth_only
def test_trickling_blob_is_abandoned_when_the_client_leaves(fresh_engine, liar):
    """A blob that trickles one byte a second keeps `docker pull` waiting, but not the engine: it
    answers meanwhile, and once the CLI is killed it closes the registry connection, leaves no
    partial download and goes idle (`berth serve` exits after its idle timeout)."""
    eng = fresh_engine
    nonce = os.urandom(4).hex()
    # What a normal pull leaves under <data-root>/blobs.
    honest = serve_image(liar, "lying/before", "v1", [small_layer(f"before {nonce}")])
    eng.docker("pull", honest.ref)
    after_normal = blob_files(eng)
    assert not [f for f in after_normal if f.endswith(".partial")], after_normal

    trickle = Trickle(liar, size=100 << 20)
    slow_digest = digest_of(os.urandom(32))  # well formed; the bytes never add up to it
    served = serve_image(liar, "lying/trickle", "v1", [small_layer(f"slow {nonce}")])
    manifest = json.loads(liar.manifests[("lying/trickle", "v1")][1])
    manifest["layers"][0].update(digest=slow_digest, size=100 << 20)
    liar.blobs[slow_digest] = trickle
    liar.put_manifest("lying/trickle", "v1", MT_DOCKER_MANIFEST, json.dumps(manifest).encode())

    p = subprocess.Popen([DOCKER_CLI, "pull", served.ref], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, env=_docker_env(eng), start_new_session=True)
    try:
        assert trickle.started.wait(30), (liar.seen, eng.log_tail())
        time.sleep(2)
        assert p.poll() is None, p.communicate()[0]
        # Busy with the pull, the engine still answers.
        assert_answers(eng)
        _, out, _ = eng.docker("images", "--format", "{{.Repository}}", timeout=20)
        assert honest.repo in out.split()
        during = blob_files(eng)
        assert any(f.endswith(".partial") for f in during), during  # the download is under way
        p.kill()
        p.wait(timeout=10)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(timeout=10)
        p.stdout.close()
    killed_at = time.monotonic()
    assert trickle.closed_by_peer.wait(15), \
        f"the engine kept reading the blob 15 s after the client left: {trickle.ended}\n{eng.log_tail()}"
    print(f"registry connection closed {time.monotonic() - killed_at:.1f} s after the kill: "
          f"{trickle.ended}")
    assert wait_until(lambda: not [f for f in blob_files(eng) if f.endswith(".partial")], 5), \
        blob_files(eng)
    assert blob_files(eng) == after_normal
    assert wait_until(lambda: not serve_pids(eng.data_root), 15), \
        f"berth serve still busy: {serve_pids(eng.data_root)}\n{eng.log_tail()}"
    assert_not_listed(eng, served.repo)
    assert_answers(eng)


def pax_bomb_layer(size: int = 2 << 30) -> bytes:
    """An uncompressed tar that starts with a PAX extended header ('x', ustar magic, valid
    checksum) claiming `size` bytes of records, followed by a few KiB and no end."""
    hdr = bytearray(512)

    def put(off: int, val: bytes):
        hdr[off:off + len(val)] = val

    put(0, b"PaxHeaders.0/bomb")
    put(100, b"0000644\0")
    put(108, b"0000000\0")
    put(116, b"0000000\0")
    put(124, b"%011o\0" % size)
    put(136, b"%011o\0" % 1700000000)
    put(148, b" " * 8)
    put(156, b"x")
    put(257, b"ustar\0")
    put(263, b"00")
    put(148, b"%06o\0 " % sum(hdr))
    record = b"path=" + b"a" * 90 + b"\n"
    record = b"%d " % (len(record) + 4) + record
    return bytes(hdr) + record * 40


@pytest.mark.berth_only
def test_pax_header_claiming_2gib_is_refused(fresh_engine, liar):
    """A small gzip layer whose tar starts with a PAX header claiming 2 GiB fails the pull with Go's
    `archive/tar: header field too long`; berth serve stays small and answers, and no image or
    layer is left behind."""
    eng = fresh_engine
    raw = pax_bomb_layer()
    blob = gzip.compress(raw, mtime=0)
    assert len(blob) < 64 << 10
    layers_before = layer_folders(eng)
    served = serve_image(liar, "lying/pax", "v1", [raw])
    assert served.diff_ids == [digest_of(raw)]  # the config tells the truth about these bytes

    err = cli_pull_fails(eng, served.ref)
    assert "archive/tar: header field too long" in err, err
    hwm = serve_hwm_kib(eng)
    assert hwm, "no berth serve to measure"
    assert max(hwm.values()) < 256 << 10, f"berth serve peaked at {hwm} KiB"
    assert_answers(eng)
    assert_not_listed(eng, served.repo)
    assert layer_folders(eng) == layers_before
    scratch = eng.data_root / "tmp"
    assert not (scratch.exists() and list(scratch.iterdir())), list(scratch.iterdir())
    assert not [f for f in blob_files(eng) if f.endswith(".partial")], blob_files(eng)
    assert_answers(eng)
