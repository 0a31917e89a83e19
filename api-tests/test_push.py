"""`docker push` (POST /images/{name}/push) and `docker search` (GET /images/search) against a
real docker-registry on loopback (registry.py). What the registry holds afterwards is checked
over its own HTTP API: manifest bytes and digest, config blob = image ID, gzip layers that
decompress to the image's diff IDs.
"""

from __future__ import annotations

import base64
import gzip
import json
import re
import tempfile
import time
import urllib.parse
import uuid
from pathlib import Path

import pytest

from helpers import docker_archive, make_image, simple_layer
from registry import MT_DOCKER_CONFIG, MT_DOCKER_LAYER, MT_DOCKER_MANIFEST, digest_of, free_port

DIGEST_LINE = re.compile(r"^(\S+): digest: (sha256:[0-9a-f]{64}) size: (\d+)$")


def uniq(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def short(digest: str) -> str:
    return digest.split(":", 1)[1][:12]


def inspect(eng, ref: str) -> dict:
    return json.loads(eng.docker("image", "inspect", ref)[1])[0]


def digest_lines(out: str) -> dict[str, tuple[str, int]]:
    found = {}
    for line in out.splitlines():
        m = DIGEST_LINE.match(line)
        if m:
            found[m.group(1)] = (m.group(2), int(m.group(3)))
    return found


def assert_registry_holds(reg, name: str, tag: str, image: dict, digest: str, size: int):
    """The registry serves `name:tag` as the schema 2 manifest berth announced, and its blobs."""
    status, h, body = reg.http("GET", f"/v2/{name}/manifests/{tag}",
                               headers={"Accept": MT_DOCKER_MANIFEST})
    assert status == 200, body
    assert h["content-type"] == MT_DOCKER_MANIFEST
    assert digest_of(body) == digest
    assert len(body) == size
    assert h["docker-content-digest"] == digest
    m = json.loads(body)
    assert m["schemaVersion"] == 2 and m["mediaType"] == MT_DOCKER_MANIFEST
    # Docker's own bytes: three-space indentation, descriptor fields mediaType, size, digest.
    assert body == json.dumps(m, indent=3).encode()
    assert m["config"]["mediaType"] == MT_DOCKER_CONFIG
    assert m["config"]["digest"] == image["Id"]
    status, _, cfg = reg.http("GET", f"/v2/{name}/blobs/{image['Id']}")
    assert status == 200
    assert digest_of(cfg) == image["Id"] and len(cfg) == m["config"]["size"]
    assert len(m["layers"]) == len(image["RootFS"]["Layers"])
    for desc, diff_id in zip(m["layers"], image["RootFS"]["Layers"]):
        assert desc["mediaType"] == MT_DOCKER_LAYER
        status, _, blob = reg.http("GET", f"/v2/{name}/blobs/{desc['digest']}")
        assert status == 200
        assert digest_of(blob) == desc["digest"] and len(blob) == desc["size"]
        assert digest_of(gzip.decompress(blob)) == diff_id


def tagged(engine, src: str, ref: str) -> dict:
    engine.docker("tag", src, ref)
    return inspect(engine, ref)


@pytest.fixture
def own_config():
    """A docker CLI config folder of its own, so logins do not leak into other tests."""
    d = Path(tempfile.mkdtemp(prefix="berth-push-cfg-"))
    (d / "config.json").write_text("{}\n")
    yield {"DOCKER_CONFIG": str(d)}
    for f in d.iterdir():
        f.unlink()
    d.rmdir()


def test_push_then_again_then_to_another_repository(engine, registry):
    name = uniq("push/one")
    ref = f"{registry.host}/{name}:v1"
    # A layer of its own: a layer pulled or pushed before would be mounted, not pushed.
    built = make_image([simple_layer("one", {"one.bin": uuid.uuid4().bytes * 1000})], [ref])
    engine.docker("load", input=docker_archive([built]))
    img = inspect(engine, ref)
    (diff_id,) = img["RootFS"]["Layers"]
    _, out, _ = engine.docker("push", ref)
    lines = out.splitlines()
    assert lines[0] == f"The push refers to repository [{registry.host}/{name}]"
    assert lines[1:3] == [f"{short(diff_id)}: Preparing", f"{short(diff_id)}: Pushed"]
    digest, size = digest_lines(out)["v1"]
    assert lines[-1] == f"v1: digest: {digest} size: {size}"
    assert_registry_holds(registry, name, "v1", img, digest, size)
    assert f"{registry.host}/{name}@{digest}" in inspect(engine, ref)["RepoDigests"]

    # Again: the registry has the layer; the manifest is the same.
    _, out, _ = engine.docker("push", ref)
    assert f"{short(diff_id)}: Layer already exists" in out.splitlines()
    assert "Pushed" not in out
    assert digest_lines(out)["v1"] == (digest, size)

    # Another repository on the same registry: the layer is mounted, not sent.
    other = uniq("push/two")
    ref2 = f"{registry.host}/{other}:v1"
    engine.docker("tag", ref, ref2)
    _, out, _ = engine.docker("push", ref2)
    assert f"{short(diff_id)}: Mounted from {name}" in out.splitlines()
    assert digest_lines(out)["v1"] == (digest, size)
    assert_registry_holds(registry, other, "v1", img, digest, size)
    engine.docker("rmi", ref, ref2)


def test_pushed_image_pulls_back_and_runs(engine, registry, busybox):
    name = uniq("push/back")
    ref = f"{registry.host}/{name}:latest"
    img = tagged(engine, "busybox:latest", ref)
    _, out, _ = engine.docker("push", f"{registry.host}/{name}")
    assert out.splitlines()[0] == "Using default tag: latest"
    digest, _ = digest_lines(out)["latest"]
    engine.docker("rmi", ref)
    _, out, _ = engine.docker("pull", ref)
    assert f"Digest: {digest}" in out
    back = inspect(engine, ref)
    assert back["Id"] == img["Id"]
    assert back["RootFS"]["Layers"] == img["RootFS"]["Layers"]
    _, out, _ = engine.docker("run", "--rm", ref, "echo", "pushed and back")
    assert out == "pushed and back\n"
    engine.docker("rmi", ref)


def test_many_layers_go_five_at_a_time(engine, registry):
    name = uniq("push/layers")
    ref = f"{registry.host}/{name}:v1"
    salt = uuid.uuid4().bytes
    layers = [simple_layer(f"l{i}", {f"data/l{i}.bin": salt + bytes([i]) * (50_000 + i * 1000)})
              for i in range(7)]
    built = make_image(layers, [ref])
    engine.docker("load", input=docker_archive([built]))
    img = inspect(engine, ref)
    assert img["RootFS"]["Layers"] == built.diff_ids
    _, out, _ = engine.docker("push", ref)
    lines = out.splitlines()
    shorts = [short(d) for d in reversed(built.diff_ids)]  # moby lists the top layer first
    assert lines[1:8] == [f"{s}: Preparing" for s in shorts]
    # The upload manager starts five; the other two wait for a slot.
    assert [l for l in lines if l.endswith(": Waiting")] == [f"{s}: Waiting" for s in shorts[5:]]
    for s in shorts:
        assert f"{s}: Pushed" in lines
    digest, size = digest_lines(out)["v1"]
    assert_registry_holds(registry, name, "v1", img, digest, size)
    engine.docker("rmi", ref)


def test_all_tags(engine, registry, busybox):
    name = uniq("push/all")
    repo = f"{registry.host}/{name}"
    built = make_image([simple_layer("alltags")], [f"{repo}:b"])
    engine.docker("load", input=docker_archive([built]))
    img_a = tagged(engine, "busybox:latest", f"{repo}:a")
    img_b = inspect(engine, f"{repo}:b")
    rc, _, err = engine.docker("push", f"{repo}:a", "--all-tags", check=False)
    assert rc != 0 and "tag can't be used with --all-tags/-a" in err
    _, out, _ = engine.docker("push", "--all-tags", repo)
    found = digest_lines(out)
    assert list(found) == ["a", "b"]  # lexical order, as moby's reference store lists them
    assert_registry_holds(registry, name, "a", img_a, *found["a"])
    assert_registry_holds(registry, name, "b", img_b, *found["b"])
    status, _, body = registry.http("GET", f"/v2/{name}/tags/list")
    assert sorted(json.loads(body)["tags"]) == ["a", "b"]
    engine.docker("rmi", f"{repo}:a", f"{repo}:b")


def test_docker_py_push_stream(engine, registry):
    name = uniq("push/py")
    repo = f"{registry.host}/{name}"
    # A layer no repository of the registry has yet, so that it is really sent.
    built = make_image([simple_layer("py", {"data/py.bin": uuid.uuid4().bytes * 40_000})],
                       [f"{repo}:v3"])
    engine.docker("load", input=docker_archive([built]))
    img = inspect(engine, f"{repo}:v3")
    sid = short(img["RootFS"]["Layers"][0])
    c = engine.client()
    try:
        msgs = list(c.images.push(repo, tag="v3", stream=True, decode=True))
    finally:
        c.close()
    assert msgs[0] == {"status": f"The push refers to repository [{repo}]"}
    assert {"status": "Preparing", "progressDetail": {}, "id": sid} in msgs
    pushing = [m for m in msgs if m.get("status") == "Pushing"]
    assert pushing and all(m["id"] == sid and m["progressDetail"]["current"] > 0 for m in pushing)
    assert all(m["progressDetail"]["total"] == pushing[0]["progressDetail"]["total"] for m in pushing)
    assert {"status": "Pushed", "progressDetail": {}, "id": sid} in msgs
    aux = msgs[-1]
    assert set(aux) == {"progressDetail", "aux"}
    digest, size = aux["aux"]["Digest"], aux["aux"]["Size"]
    assert aux["aux"]["Tag"] == "v3"
    assert msgs[-2] == {"status": f"v3: digest: {digest} size: {size}"}
    assert_registry_holds(registry, name, "v3", img, digest, size)
    engine.docker("rmi", f"{repo}:v3")


def test_push_wire_format_and_event(engine, registry, busybox):
    name = uniq("push/wire")
    repo = f"{registry.host}/{name}"
    img = tagged(engine, "busybox:latest", f"{repo}:w")
    since = int(time.time())
    r = engine.api("POST", f"/images/{repo}/push?tag=w", headers={"X-Registry-Auth": "e30="},
                   timeout=120)
    assert r.status == 200
    assert r.headers["content-type"] == "application/json"
    assert r.headers.get("transfer-encoding") == "chunked"
    assert r.body.endswith(b"\r\n")
    lines = r.json_lines()
    assert lines[-1]["aux"]["Tag"] == "w"
    filters = urllib.parse.quote(json.dumps({"type": ["image"], "event": ["push"]}))
    ev = engine.api("GET", f"/events?since={since}&until={int(time.time()) + 1}&filters={filters}")
    evs = [e for e in ev.json_lines() if e["Actor"]["ID"] == f"{repo}:w"]
    assert len(evs) == 1, ev.body
    assert evs[0]["Action"] == "push" and evs[0]["Type"] == "image"
    assert evs[0]["Actor"]["Attributes"]["name"] == repo
    assert img["Id"]
    engine.docker("rmi", f"{repo}:w")


def test_missing_image_and_tag(engine, registry, busybox):
    name = uniq("push/missing")
    repo = f"{registry.host}/{name}"
    rc, out, err = engine.docker("push", f"{repo}:v1", check=False)
    assert rc == 1
    assert out.splitlines() == [f"The push refers to repository [{repo}]"]
    assert err.strip() == f"An image does not exist locally with the tag: {repo}"
    engine.docker("tag", "busybox:latest", f"{repo}:v1")
    rc, out, err = engine.docker("push", f"{repo}:v2", check=False)
    assert rc == 1
    assert err.strip() == f"tag does not exist: {repo}:v2"
    # Nothing reached the registry.
    status, _, _ = registry.http("GET", f"/v2/{name}/tags/list")
    assert status == 404
    # Docker 20.10 (API 1.41) answered 500 for bad names and tags; Docker 28 says 400.
    invalid = 500 if engine.server_api_version() == "1.41" else 400
    r = engine.api("POST", "/images/UPPER/push?tag=x", headers={"X-Registry-Auth": "e30="})
    assert r.status == invalid
    r = engine.api("POST", f"/images/{repo}/push?tag=no%20good", headers={"X-Registry-Auth": "e30="})
    assert (r.status, r.json()["message"]) == (invalid, "invalid tag format")
    engine.docker("rmi", f"{repo}:v1")


def test_unreachable_registry(engine, busybox):
    host = f"127.0.0.1:{free_port()}"
    engine.docker("tag", "busybox:latest", f"{host}/x:v1")
    rc, out, err = engine.docker("push", f"{host}/x:v1", check=False)
    assert rc == 1
    assert out.splitlines() == [f"The push refers to repository [{host}/x]"]
    assert err.strip() == (f'Get "http://{host}/v2/": dial tcp {host}: connect: connection refused')
    engine.docker("rmi", f"{host}/x:v1")


def test_auth_registry(engine, auth_registry, busybox, own_config):
    name = uniq("push/auth")
    repo = f"{auth_registry.host}/{name}"
    img = tagged(engine, "busybox:latest", f"{repo}:v1")
    rc, out, err = engine.docker("push", f"{repo}:v1", check=False, env=own_config)
    assert rc == 1
    assert err.strip() == "no basic auth credentials"
    assert f"{short(img['RootFS']['Layers'][0])}: Preparing" in out
    engine.docker("login", "-u", "tester", "--password-stdin", auth_registry.host,
                  input="s3cret-pw\n", env=own_config)
    _, out, _ = engine.docker("push", f"{repo}:v1", env=own_config)
    digest, size = digest_lines(out)["v1"]
    assert_registry_holds(auth_registry, name, "v1", img, digest, size)
    # Credentials the registry refuses.
    cfg = json.loads((Path(own_config["DOCKER_CONFIG"]) / "config.json").read_text())
    cfg["auths"][auth_registry.host]["auth"] = base64.b64encode(b"tester:wrong").decode()
    (Path(own_config["DOCKER_CONFIG"]) / "config.json").write_text(json.dumps(cfg))
    engine.docker("tag", f"{repo}:v1", f"{repo}-x:v1")
    rc, _, err = engine.docker("push", f"{repo}-x:v1", check=False, env=own_config)
    assert rc == 1
    assert err.strip() == "unauthorized: authentication required"
    engine.docker("rmi", f"{repo}:v1", f"{repo}-x:v1")


def test_search(engine, registry):
    rc, _, err = engine.docker("search", f"{registry.host}/busybox", check=False)
    assert rc == 1
    assert err.strip() == "Error response from daemon: Unexpected status code 404"
    r = engine.api("GET", f"/images/search?term={registry.host}/busybox")
    assert (r.status, r.json()) == (500, {"message": "Unexpected status code 404"})
    rc, _, err = engine.docker("search", "--filter", "color=red", "busybox", check=False)
    # (Docker 20.10 wrote "Invalid filter".)
    assert rc == 1 and "invalid filter 'color'" in err.lower()
    r = engine.api("GET", "/images/search?term=busybox&limit=abc")
    if engine.server_api_version() == "1.41":  # Docker 20.10 passed the bare error on as a 500
        assert (r.status, r.json()["message"]) == (500, 'strconv.Atoi: parsing "abc": invalid syntax')
    else:
        assert (r.status, r.json()["message"]) == (
            400, 'invalid limit specified: strconv.Atoi: parsing "abc": invalid syntax')
    if engine.server_api_version() == "1.41":
        return  # Docker 20.10's texts for the rest differ; these are Docker 28's
    r = engine.api("GET", "/images/search?term=http://x/y")
    assert (r.status, r.json()["message"]) == (
        400, "invalid repository name: repository name (http://x/y) should not have a scheme")
    r = engine.api("GET", f"/images/search?term={registry.host}/busybox&limit=101")
    assert (r.status, r.json()["message"]) == (400, "limit 101 is outside the range of [1, 100]")
    # Asking for automated images finds none without asking any registry.
    filters = urllib.parse.quote(json.dumps({"is-automated": {"true": True}}))
    r = engine.api("GET", f"/images/search?term={registry.host}/x&filters={filters}")
    assert (r.status, r.json()) == (200, [])


class FlakyProxy:
    """A proxy in front of the registry that answers the first blob PATCH with a 500 and hands
    out upload locations as relative paths (both allowed by the distribution spec)."""

    def __init__(self, reg):
        import http.server
        import threading
        self.reg = reg
        self.failed = 0
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    out = b""
                    while True:
                        size = int(self.rfile.readline().split(b";")[0], 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass
                            return out
                        out += self.rfile.read(size)
                        self.rfile.readline()
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def answer(self, status: int, headers: dict, data: bytes):
                self.send_response(status)
                for k, v in headers.items():
                    if k not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            def forward(self):
                data = self.body()
                if self.command == "PATCH" and proxy.failed == 0:
                    proxy.failed += 1
                    err = json.dumps({"errors": [{"code": "UNKNOWN", "message": "injected"}]})
                    return self.answer(500, {"content-type": "application/json"}, err.encode())
                hdrs = {k: v for k, v in self.headers.items()
                        if k.lower() not in ("host", "transfer-encoding", "content-length")}
                status, h, out = proxy.reg.http(self.command, self.path, body=data or None,
                                                headers=hdrs)
                if "location" in h:
                    u = urllib.parse.urlsplit(h["location"])
                    h["location"] = u.path + ("?" + u.query if u.query else "")
                if self.command == "HEAD":
                    self.send_response(status)
                    for k, v in h.items():
                        if k not in ("transfer-encoding", "connection"):
                            self.send_header(k, v)
                    self.end_headers()
                    return
                self.answer(status, h, out)

            do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = forward

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_failed_upload_is_retried_and_relative_locations_work(engine, registry):
    proxy = FlakyProxy(registry)
    try:
        name = uniq("push/retry")
        repo = f"{proxy.host}/{name}"
        built = make_image([simple_layer("retry", {"data/r.bin": uuid.uuid4().bytes * 5000})],
                           [f"{repo}:v1"])
        engine.docker("load", input=docker_archive([built]))
        img = inspect(engine, f"{repo}:v1")
        sid = short(built.diff_ids[0])
        _, out, _ = engine.docker("push", f"{repo}:v1")
        lines = out.splitlines()
        assert proxy.failed == 1
        countdown = [l for l in lines if "Retrying in" in l]
        assert countdown == [f"{sid}: Retrying in {n} second{'s' if n > 1 else ''}"
                             for n in range(5, 0, -1)]
        assert lines.index(countdown[-1]) < lines.index(f"{sid}: Pushed")
        digest, size = digest_lines(out)["v1"]
        assert_registry_holds(registry, name, "v1", img, digest, size)
        engine.docker("rmi", f"{repo}:v1")
    finally:
        proxy.close()


class FakeIndex:
    """A registry index that still offers Docker's v1 search, on plain HTTP."""

    RESULTS = [
        {"name": "library/alpha", "description": "official", "star_count": 10,
         "is_official": True, "is_automated": False},
        {"name": "someone/beta", "description": "automated", "star_count": 3,
         "is_official": False, "is_automated": True},
        {"name": "someone/gamma", "description": "", "star_count": 0,
         "is_official": False, "is_automated": False},
    ]

    def __init__(self):
        import http.server
        import threading
        self.seen: list[tuple[str, dict]] = []
        index = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                u = urllib.parse.urlsplit(self.path)
                if u.path == "/v1/_ping":
                    body = b"{}"
                elif u.path == "/v1/search":
                    index.seen.append((u.query, dict(self.headers)))
                    q = urllib.parse.parse_qs(u.query)
                    body = json.dumps({"query": q["q"][0], "num_results": 3,
                                       "results": FakeIndex.RESULTS}).encode()
                else:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_search_results_and_filters(engine):
    idx = FakeIndex()
    try:
        r = engine.api("GET", f"/images/search?term={idx.host}/some%20thing&limit=2")
        assert r.status == 200, r.body
        assert r.headers["content-type"] == "application/json"
        # Docker's field order; is_automated is always reported false now.
        assert r.body.startswith(b'[{"star_count":10,"is_official":true,"name":"library/alpha",'
                                 b'"is_automated":false,"description":"official"}')
        if engine.server_api_version() != "1.41":  # Docker 20.10 passed is_automated on
            assert r.json() == [dict(x, is_automated=False) for x in FakeIndex.RESULTS]
        query, _ = idx.seen[-1]
        assert urllib.parse.parse_qs(query) == {"q": ["some thing"], "n": ["2"]}

        def names(filters: dict) -> list[str]:
            f = urllib.parse.quote(json.dumps(filters))
            r = engine.api("GET", f"/images/search?term={idx.host}/x&filters={f}")
            assert r.status == 200, r.body
            return [x["name"] for x in r.json()]

        assert names({"is-official": {"true": True}}) == ["library/alpha"]
        assert names({"is-official": {"false": True}}) == ["someone/beta", "someone/gamma"]
        assert names({"stars": {"3": True}}) == ["library/alpha", "someone/beta"]
        assert names({"stars": {"1": True, "5": True}}) == ["library/alpha"]
        f = urllib.parse.quote(json.dumps({"is-official": {"maybe": True}}))
        r = engine.api("GET", f"/images/search?term={idx.host}/x&filters={f}")
        old = engine.server_api_version() == "1.41"  # Docker 20.10 wrote "Invalid filter"

        def message(r) -> str:
            m = r.json()["message"]
            return m[0].lower() + m[1:] if old else m

        assert (r.status, message(r)) == (400, "invalid filter 'is-official=[maybe]'")
        f = urllib.parse.quote(json.dumps({"stars": {"many": True}}))
        r = engine.api("GET", f"/images/search?term={idx.host}/x&filters={f}")
        assert r.status == 400
        assert message(r).startswith("invalid filter 'stars=many'")
        assert idx.seen[-1][1].get("Authorization") is None

        _, out, _ = engine.docker("search", "--format", "{{.Name}} {{.StarCount}}",
                                  "--filter", "stars=1", f"{idx.host}/x")
        assert out.splitlines() == ["library/alpha 10", "someone/beta 3"]
        query, _ = idx.seen[-1]
        assert urllib.parse.parse_qs(query) == {"q": ["x"], "n": ["25"]}
    finally:
        idx.close()


def test_repeated_layer_is_sent_once(engine, registry):
    name = uniq("push/dup")
    ref = f"{registry.host}/{name}:v1"
    a = simple_layer("a", {"a.txt": uuid.uuid4().hex})
    b = simple_layer("b", {"b.txt": uuid.uuid4().hex})
    built = make_image([a, b, a], [ref])
    engine.docker("load", input=docker_archive([built]))
    img = inspect(engine, ref)
    assert len(img["RootFS"]["Layers"]) == 3
    _, out, _ = engine.docker("push", ref)
    lines = out.splitlines()
    sa, sb = short(built.diff_ids[0]), short(built.diff_ids[1])
    assert lines[1:4] == [f"{sa}: Preparing", f"{sb}: Preparing", f"{sa}: Preparing"]
    assert lines.count(f"{sa}: Pushed") == 1 and lines.count(f"{sb}: Pushed") == 1
    digest, size = digest_lines(out)["v1"]
    assert_registry_holds(registry, name, "v1", img, digest, size)
    engine.docker("rmi", ref)


def test_push_platform(engine, registry, busybox):
    from registry import host_arch, other_arch
    if tuple(map(int, engine.server_api_version().split("."))) < (1, 46):
        pytest.skip("push --platform needs API 1.46")
    name = uniq("push/plat")
    ref = f"{registry.host}/{name}:v1"
    engine.docker("tag", "busybox:latest", ref)
    rc, _, err = engine.docker("push", "--platform", f"linux/{other_arch()}", ref, check=False)
    assert rc == 1
    assert err.strip().endswith(
        f"Error response from daemon: image with reference {ref} was found but its platform "
        f"(linux/{host_arch()}) does not match the specified platform (linux/{other_arch()})")
    status, _, _ = registry.http("GET", f"/v2/{name}/tags/list")
    assert status == 404
    _, out, _ = engine.docker("push", "--platform", f"linux/{host_arch()}", ref)
    assert "v1" in digest_lines(out)
    r = engine.api("POST", f"/images/{registry.host}/{name}/push?tag=v1&platform=%7B%7D",
                   headers={"X-Registry-Auth": "e30="})
    assert (r.status, r.json()["message"]) == (400, "both OS and Architecture must be provided")
    # Before API 1.46 the parameter is ignored.
    r = engine.api("POST", f"/v1.45/images/{registry.host}/{name}/push?tag=v1&platform=%7B%7D",
                   headers={"X-Registry-Auth": "e30="}, timeout=120)
    assert r.status == 200 and "aux" in r.json_lines()[-1]
    engine.docker("rmi", ref)
