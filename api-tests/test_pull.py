"""`docker pull` (POST /images/create?fromImage=) against a real docker-registry on loopback.

The registry is Debian's docker-registry (distribution 2.8); images are uploaded to it over its
HTTP API by registry.Uploader (busybox-static base layer + a small marker layer).
"""

from __future__ import annotations

import json
import os
import time
import urllib.parse
from pathlib import Path

import docker
import pytest

from registry import host_arch, other_arch


def statuses(lines: list[dict]) -> list[str]:
    return [m.get("status", "") for m in lines]


def inspect(eng, ref: str) -> dict:
    return json.loads(eng.docker("image", "inspect", ref)[1])[0]


def image_absent(eng, ref: str) -> bool:
    rc, _, err = eng.docker("image", "inspect", ref, check=False)
    return rc != 0 and "No such image" in err


def pull_api(eng, repo: str, tag: str, **headers):
    r = eng.api("POST", f"/images/create?fromImage={repo}&tag={tag}",
                headers={"X-Registry-Auth": "e30=", **headers}, timeout=120)
    return r


def short(digest: str) -> str:
    return digest.split(":", 1)[1][:12]


def test_pull_by_tag_then_run(engine, uploader):
    pushed = uploader.image("pull/bytag", "v1")
    _, out, _ = engine.docker("pull", pushed.ref)
    assert "v1: Pulling from pull/bytag" in out
    base, top = pushed.layer_digests
    # The busybox layer may be there already (other tests import busybox); the marker is new.
    assert f"{short(base)}: Pull complete" in out or f"{short(base)}: Already exists" in out
    assert f"{short(top)}: Pull complete" in out
    assert f"Digest: {pushed.digest}" in out
    assert f"Status: Downloaded newer image for {pushed.ref}" in out
    assert out.strip().endswith(pushed.ref)
    img = inspect(engine, pushed.ref)
    built = pushed.images[host_arch()]
    assert img["Id"] == built.id
    assert img["RepoTags"] == [pushed.ref]
    assert img["RepoDigests"] == [f"{pushed.repo}@{pushed.digest}"]
    assert img["RootFS"]["Layers"] == built.diff_ids
    _, out, _ = engine.docker("run", "--rm", pushed.ref, "cat", "/marker")
    assert out.strip() == "pull/bytag:v1:gzip"
    _, out, _ = engine.docker("run", "--rm", pushed.ref, "echo", "hi")
    assert out == "hi\n"
    engine.docker("rmi", pushed.ref)


def test_second_pull_is_up_to_date(engine, uploader):
    pushed = uploader.image("pull/again", "v1")
    engine.docker("pull", pushed.ref)
    _, out, _ = engine.docker("pull", pushed.ref)
    for dg in pushed.layer_digests:
        assert f"{short(dg)}: Already exists" in out
    assert "Downloading" not in out and "Pull complete" not in out
    assert f"Status: Image is up to date for {pushed.ref}" in out
    engine.docker("rmi", pushed.ref)


@pytest.mark.parametrize("how,oci", [("gzip", False), ("gzip", True), ("zstd", True), ("none", True)])
def test_layer_compressions_and_media_types(engine, uploader, how, oci):
    name = f"pull/comp-{how}-{'oci' if oci else 'docker'}"
    pushed = uploader.image(name, "latest", how=how, oci=oci)
    _, out, _ = engine.docker("pull", pushed.ref)
    assert f"Status: Downloaded newer image for {pushed.ref}" in out
    img = inspect(engine, pushed.ref)
    assert img["RootFS"]["Layers"] == pushed.images[host_arch()].diff_ids
    _, out, _ = engine.docker("run", "--rm", pushed.ref, "cat", "/marker")
    assert out.strip() == f"{name}:latest:{how}"
    engine.docker("rmi", pushed.ref)


def test_pull_by_digest(engine, uploader):
    pushed = uploader.image("pull/bydigest", "v1")
    ref = f"{pushed.repo}@{pushed.digest}"
    _, out, _ = engine.docker("pull", ref)
    assert f"{ref}: Pulling from pull/bydigest" in out
    assert f"Status: Downloaded newer image for {ref}" in out
    img = inspect(engine, ref)
    assert img["Id"] == pushed.images[host_arch()].id
    assert img["RepoTags"] == []
    assert img["RepoDigests"] == [ref]
    engine.docker("rmi", ref)
    # The digest may also come inside fromImage, with no tag.
    lines = pull_api(engine, ref, "").json_lines()
    assert lines[0] == {"status": "Pulling from pull/bydigest", "id": ref}
    assert lines[-1] == {"status": f"Status: Downloaded newer image for {ref}"}
    assert inspect(engine, ref)["Id"] == pushed.images[host_arch()].id
    engine.docker("rmi", ref)


def test_multi_platform_index(engine, uploader):
    pushed = uploader.multi_platform("pull/multi", "latest")
    _, out, _ = engine.docker("pull", pushed.ref)
    assert f"Digest: {pushed.digest}" in out
    img = inspect(engine, pushed.ref)
    assert img["Architecture"] == host_arch()
    assert img["Id"] == pushed.images[host_arch()].id
    assert f"{pushed.repo}@{pushed.digest}" in img["RepoDigests"]

    _, out, _ = engine.docker("pull", "--platform", f"linux/{other_arch()}", pushed.ref)
    assert f"Status: Downloaded newer image for {pushed.ref}" in out
    img = inspect(engine, pushed.ref)
    assert img["Architecture"] == other_arch()
    assert img["Id"] == pushed.images[other_arch()].id

    rc, _, err = engine.docker("pull", "--platform", "linux/s390x", pushed.ref, check=False)
    assert rc != 0
    assert "no matching manifest for linux/s390x in the manifest list entries" in err
    engine.docker("rmi", pushed.ref)
    engine.docker("image", "prune", "-f")


def test_shared_layer_already_exists(engine, uploader):
    a = uploader.image("pull/share-a", "v1")
    b = uploader.image("pull/share-b", "v1")
    base, top = b.layer_digests
    assert a.layer_digests[0] == base  # the busybox layer is the same blob
    engine.docker("pull", a.ref)
    lines = pull_api(engine, b.repo, "v1").json_lines()
    assert {"status": "Already exists", "progressDetail": {}, "id": short(base)} in lines
    assert {"status": "Pull complete", "progressDetail": {}, "id": short(top)} in lines
    assert not any(m.get("id") == short(base) and m["status"] == "Downloading" for m in lines)
    engine.docker("rmi", a.ref, b.ref)


def test_progress_messages_follow_docker(engine, uploader):
    pushed = uploader.image("pull/progress", "v2")
    r = pull_api(engine, pushed.repo, "v2")
    assert r.status == 200
    assert r.headers["content-type"] == "application/json"
    assert r.headers.get("transfer-encoding") == "chunked"
    assert r.body.endswith(b"\r\n")
    lines = r.json_lines()
    assert lines[0] == {"status": "Pulling from pull/progress", "id": "v2"}
    base, top = pushed.layer_digests
    for dg in pushed.layer_digests:
        seq = [m["status"] for m in lines if m.get("id") == short(dg)]
        if dg == base and seq == ["Already exists"]:
            continue  # busybox imported by another test
        assert seq[0] == "Pulling fs layer"
        for a, b in [("Pulling fs layer", "Downloading"), ("Downloading", "Verifying Checksum"),
                     ("Verifying Checksum", "Download complete"), ("Download complete", "Extracting"),
                     ("Extracting", "Pull complete")]:
            assert seq.index(a) < seq.index(b), seq
        assert seq[-1] == "Pull complete"
        dl = [m for m in lines if m.get("id") == short(dg) and m["status"] == "Downloading"]
        assert dl[-1]["progressDetail"]["current"] == dl[-1]["progressDetail"]["total"]
        assert dl[-1]["progress"].startswith("[" + "=" * 50 + ">]")
    assert lines[-2] == {"status": f"Digest: {pushed.digest}"}
    assert lines[-1] == {"status": f"Status: Downloaded newer image for {pushed.ref}"}
    engine.docker("rmi", pushed.ref)


def test_docker_py_pull(engine, uploader):
    pushed = uploader.image("pull/dockerpy", "v1")
    c = engine.client()
    try:
        img = c.images.pull(pushed.repo, tag="v1")
        assert img.id == pushed.images[host_arch()].id
        assert pushed.ref in img.tags
        events = list(c.api.pull(pushed.repo, tag="v1", stream=True, decode=True))
        assert events[0] == {"status": "Pulling from pull/dockerpy", "id": "v1"}
        assert events[-1]["status"] == f"Status: Image is up to date for {pushed.ref}"
        assert "Already exists" in statuses(events)
        c.images.remove(pushed.ref)
        events = list(c.api.pull(pushed.repo, tag="v1", stream=True, decode=True))
        got = set(statuses(events))
        assert {"Pulling fs layer", "Downloading", "Verifying Checksum", "Download complete",
                "Extracting", "Pull complete"} <= got
        assert events[-1]["status"] == f"Status: Downloaded newer image for {pushed.ref}"
        with pytest.raises(docker.errors.NotFound) as e:
            c.images.pull(pushed.repo, tag="missing")
        assert "manifest unknown" in str(e.value)
        c.images.remove(pushed.ref)
    finally:
        c.close()


def test_pull_pull_event(engine, uploader):
    pushed = uploader.image("pull/event", "v1")
    engine.docker("pull", pushed.ref)
    filters = urllib.parse.quote(json.dumps({"type": ["image"], "event": ["pull"]}))
    r = engine.api("GET", f"/events?since=0&until={int(time.time()) + 1}&filters={filters}")
    assert r.status == 200, r.body
    evs = [e for e in r.json_lines() if e["Actor"]["ID"] == pushed.ref]
    assert evs, r.body[-500:]
    assert evs[-1]["Action"] == "pull"
    assert evs[-1]["Type"] == "image"
    assert evs[-1]["Actor"]["Attributes"]["name"] == pushed.repo
    engine.docker("rmi", pushed.ref)


def test_all_tags(engine, uploader):
    a = uploader.image("pull/alltags", "one")
    b = uploader.image("pull/alltags", "two")
    _, out, _ = engine.docker("pull", "-a", a.repo)
    assert "one: Pulling from pull/alltags" in out
    assert "two: Pulling from pull/alltags" in out
    assert f"Status: Downloaded newer image for {a.repo}" in out
    assert inspect(engine, a.ref)["Id"] == a.images[host_arch()].id
    assert inspect(engine, b.ref)["Id"] == b.images[host_arch()].id
    engine.docker("rmi", a.ref, b.ref)


def test_missing_tag_and_repository(engine, uploader, registry):
    pushed = uploader.image("pull/exists", "v1")
    rc, _, err = engine.docker("pull", f"{pushed.repo}:nope", check=False)
    assert rc != 0
    assert (f"Error response from daemon: manifest for {pushed.repo}:nope not found: "
            "manifest unknown: manifest unknown") in err
    r = pull_api(engine, f"{registry.host}/no/such/repo", "latest")
    assert r.status == 404
    assert r.json()["message"] == (f"manifest for {registry.host}/no/such/repo:latest not found: "
                                   "manifest unknown: manifest unknown")


def test_unreachable_registry(engine):
    r = pull_api(engine, "127.0.0.1:1/x", "latest")
    assert r.status == 500
    assert r.json()["message"] == ('Get "http://127.0.0.1:1/v2/": dial tcp 127.0.0.1:1: '
                                   "connect: connection refused")


def test_bad_parameters(engine):
    r = pull_api(engine, "x/UPPER", "latest")
    assert r.status == 400
    assert r.json()["message"] == "invalid reference format: repository name (x/UPPER) must be lowercase"
    r = pull_api(engine, "127.0.0.1:1/x", "bad%20tag")
    assert r.status == 400
    r = engine.api("POST", "/images/create?fromImage=127.0.0.1:1/x&tag=latest&platform=linux//x")
    assert r.status == 400


def test_auth_registry_needs_credentials(engine, auth_uploader, auth_registry):
    pushed = auth_uploader.image("authpull/x", "v1")
    r = pull_api(engine, pushed.repo, "v1")
    assert r.status == 500
    assert r.json()["message"] == (f'Head "http://{auth_registry.host}/v2/authpull/x/manifests/v1": '
                                   "no basic auth credentials")
    import base64
    bad = base64.urlsafe_b64encode(json.dumps({"username": "tester", "password": "wrong",
                                               "serveraddress": auth_registry.host}).encode()).decode()
    r = pull_api(engine, pushed.repo, "v1", **{"X-Registry-Auth": bad})
    assert r.status == 500
    assert r.json()["message"] == "unauthorized: authentication required"
    good = base64.b64encode(json.dumps({"username": "tester", "password": "s3cret-pw"}).encode()).decode()
    r = pull_api(engine, pushed.repo, "v1", **{"X-Registry-Auth": good.rstrip("=")})
    assert r.status == 200
    assert r.json_lines()[-1] == {"status": f"Status: Downloaded newer image for {pushed.ref}"}
    assert inspect(engine, pushed.ref)["Id"] == pushed.images[host_arch()].id
    engine.docker("rmi", pushed.ref)


def blob_path(registry, digest: str) -> Path:
    hexd = digest.split(":", 1)[1]
    return registry.dir / "data" / "docker" / "registry" / "v2" / "blobs" / "sha256" / hexd[:2] / hexd / "data"


def test_digest_mismatch_is_refused_and_leaves_nothing(engine, registry):
    from helpers import make_image, tar_bytes
    nonce = os.urandom(8).hex()
    img = make_image([tar_bytes([{"name": "a", "data": f"first {nonce}\n" * 5000}]),
                      tar_bytes([{"name": "b", "data": f"second {nonce}\n"}])])
    _, _, (first, second) = registry.upload_image("pull/corrupt", "v1", img)
    ref = f"{registry.host}/pull/corrupt:v1"
    path = blob_path(registry, second)
    good = path.read_bytes()
    # Same length, other bytes: the registry serves it as is; the client must notice.
    path.write_bytes(bytes([good[0] ^ 0xFF]) + good[1:])
    try:
        r = pull_api(engine, f"{registry.host}/pull/corrupt", "v1")
        assert r.status == 200  # the stream had begun
        last = r.json_lines()[-1]
        msg = f"filesystem layer verification failed for digest {second}"
        assert last == {"errorDetail": {"message": msg}, "error": msg}
        assert image_absent(engine, ref)
        rc, _, err = engine.docker("pull", ref, check=False)
        assert rc != 0 and msg in err
        assert image_absent(engine, ref)
    finally:
        path.write_bytes(good)
    # Fixed in the registry: the first layer was verified and kept, so it is not fetched again.
    lines = pull_api(engine, f"{registry.host}/pull/corrupt", "v1").json_lines()
    first_seq = [m["status"] for m in lines if m.get("id") == short(first)]
    assert "Downloading" not in first_seq and "Download complete" in first_seq, first_seq
    assert lines[-1]["status"] == f"Status: Downloaded newer image for {ref}"
    assert inspect(engine, ref)["RootFS"]["Layers"] == img.diff_ids
    engine.docker("rmi", ref)


def test_config_diff_ids_must_match_layers(engine, uploader, registry, busybox_tar):
    from registry import busybox_image
    img = busybox_image(busybox_tar, "liar")
    cfg = json.loads(img.config)
    cfg["rootfs"]["diff_ids"][1] = "sha256:" + "0" * 64
    from helpers import BuiltImage
    liar = BuiltImage(json.dumps(cfg).encode(), img.layers, [])
    registry.upload_image("pull/liar", "v1", liar)
    r = pull_api(engine, f"{registry.host}/pull/liar", "v1")
    assert r.json_lines()[-1]["error"] == "layers from manifest don't match image configuration"
    assert image_absent(engine, f"{registry.host}/pull/liar:v1")


def test_distribution_inspect(engine, uploader):
    single = uploader.image("dist/single", "v1")
    multi = uploader.multi_platform("dist/multi", "v1")
    r = engine.api("GET", f"/distribution/{single.ref}/json", headers={"X-Registry-Auth": "e30="})
    assert r.status == 200, r.body
    body = r.json()
    assert body["Descriptor"]["digest"] == single.digest
    assert body["Descriptor"]["mediaType"] == single.media_type
    assert body["Platforms"] == [{"architecture": host_arch(), "os": "linux"}]
    c = engine.client()
    try:
        d = c.api.inspect_distribution(multi.ref)
        assert d["Descriptor"]["digest"] == multi.digest
        archs = sorted(p["architecture"] for p in d["Platforms"])
        assert archs == sorted([host_arch(), other_arch()])
        with pytest.raises(docker.errors.NotFound):
            c.api.inspect_distribution(f"{single.repo}:missing")
    finally:
        c.close()


def test_three_downloads_at_a_time(engine, registry, busybox_tar):
    from helpers import make_image, tar_bytes
    # Five small layers unique to this run, then busybox on top: none is present or cached.
    nonce = os.urandom(8).hex()
    layers = [tar_bytes([{"name": f"f{i}", "data": f"layer {i} {nonce}\n" * 1000}])
              for i in range(5)] + [busybox_tar.read_bytes()]
    img = make_image(layers)
    registry.upload_image("pull/many", "v1", img)
    lines = pull_api(engine, f"{registry.host}/pull/many", "v1").json_lines()
    waiting = [m["id"] for m in lines if m.get("status") == "Waiting"]
    fetched = [m["id"] for m in lines if m.get("status") == "Pulling fs layer"]
    assert len(fetched) == 6
    # Three slots: the layers after the first three wait for one.
    assert waiting == fetched[3:], lines
    assert lines[-1]["status"] == f"Status: Downloaded newer image for {registry.host}/pull/many:v1"
    _, out, _ = engine.docker("run", "--rm", f"{registry.host}/pull/many:v1", "cat", "/f4")
    assert out.startswith(f"layer 4 {nonce}\n")
    engine.docker("rmi", f"{registry.host}/pull/many:v1")


def config_engine(engine_factory, tmp_path, text: str):
    """A berth started with `--config` pointing at a berth.toml holding `text`."""
    cfg = tmp_path / f"berth-{os.urandom(4).hex()}.toml"
    cfg.write_text(text)
    return engine_factory(serve_args=lambda e: e.serve_args() + ["--config", str(cfg)])


@pytest.mark.berth_only
def test_insecure_registries_from_config(engine_factory, tmp_path, busybox_tar):
    from registry import Uploader, non_loopback_ip, start_registry
    ip = non_loopback_ip()
    if ip is None:
        pytest.skip("no non-loopback address on this host")
    reg = start_registry(ip=ip)
    try:
        pushed = Uploader(reg, busybox_tar).image("conf/insecure", "v1")
        # Not loopback and not listed: TLS only, which this plain-HTTP registry cannot speak.
        plain = config_engine(engine_factory, tmp_path, "# nothing\n")
        rc, _, err = plain.docker("pull", pushed.ref, check=False)
        assert rc != 0 and f'"https://{reg.host}/v2/"' in err, err
        listed = config_engine(engine_factory, tmp_path,
                               f'insecure-registries = ["{reg.host}"]\n')
        _, out, _ = listed.docker("pull", pushed.ref)
        assert f"Status: Downloaded newer image for {pushed.ref}" in out
        cidr = config_engine(engine_factory, tmp_path, f'insecure-registries = ["{ip}/32"]\n')
        cidr.docker("pull", pushed.ref)
    finally:
        reg.stop()


@pytest.mark.berth_only
def test_registry_mirror_serves_docker_hub_names(engine_factory, tmp_path, registry, uploader):
    # The mirror holds library/mirrored as Docker Hub would.
    pushed = uploader.image("library/mirrored", "v1")
    eng = config_engine(engine_factory, tmp_path,
                        f'registry-mirrors = ["http://{registry.host}"]\n')
    _, out, _ = eng.docker("pull", "mirrored:v1")
    assert "v1: Pulling from library/mirrored" in out
    assert "Status: Downloaded newer image for mirrored:v1" in out
    img = inspect(eng, "mirrored:v1")
    assert img["RepoTags"] == ["mirrored:v1"]
    assert img["RepoDigests"] == [f"mirrored@{pushed.digest}"]
    _, out, _ = eng.docker("run", "--rm", "mirrored:v1", "cat", "/marker")
    assert out.strip() == "library/mirrored:v1:gzip"


@pytest.mark.berth_only
def test_bad_config_file_stops_serve(engine, tmp_path):
    import subprocess
    from helpers import berth_bin
    cfg = tmp_path / "berth.toml"
    cfg.write_text("registry-mirrors = [not-a-string]\n")
    p = subprocess.run([str(berth_bin()), "serve", "--host", f"unix://{tmp_path}/s.sock",
                        "--data-root", str(tmp_path / "data"), "--run-root", str(tmp_path / "run"),
                        "--config", str(cfg)], capture_output=True, timeout=30)
    assert p.returncode != 0
    assert f"registry configuration {cfg}: line 1" in p.stderr.decode()


def test_run_pulls_a_missing_image(engine, uploader):
    pushed = uploader.image("pull/byrun", "latest")
    rc, out, err = engine.docker("run", "--rm", pushed.repo, "echo", "hi")
    assert out == "hi\n"
    assert f"Unable to find image '{pushed.repo}:latest' locally" in err
    assert f"Status: Downloaded newer image for {pushed.repo}:latest" in err
    engine.docker("rmi", pushed.ref)


def test_single_platform_image_with_other_platform_warns(engine, uploader):
    pushed = uploader.image("pull/single", "v1")
    _, out, _ = engine.docker("pull", "--platform", f"linux/{other_arch()}", pushed.ref)
    assert f"Status: Downloaded newer image for {pushed.ref}" in out
    assert (f"WARNING: image with reference {pushed.ref} was found but its platform "
            f"(linux/{host_arch()}) does not match the specified platform (linux/{other_arch()})") in out
    assert inspect(engine, pushed.ref)["Architecture"] == host_arch()
    engine.docker("rmi", pushed.ref)


def test_concurrent_pulls_of_one_image(engine, uploader):
    from concurrent.futures import ThreadPoolExecutor
    pushed = uploader.image("pull/concurrent", "v1", marker=f"concurrent {os.urandom(4).hex()}")
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: pull_api(engine, pushed.repo, "v1"), range(4)))
    for r in results:
        last = r.json_lines()[-1]
        assert last["status"].startswith("Status: "), last
    assert inspect(engine, pushed.ref)["Id"] == pushed.images[host_arch()].id
    _, out, _ = engine.docker("images", "--format", "{{.Repository}}:{{.Tag}}", pushed.repo)
    assert out.split() == [pushed.ref]
    engine.docker("rmi", pushed.ref)


class CuttingProxy:
    """A plain-HTTP proxy in front of a registry that spoils the first GET of each layer blob
    (the image config is not retried, in moby either):
    `cut` sends half the body and drops the connection, `503` answers Service Unavailable.
    With `ranges=False` it drops `Range` headers (a server answering 200 with the whole blob)."""

    def __init__(self, reg, mode: str, layers: list[str], ranges: bool = True):
        import http.server
        import threading
        from registry import free_port
        self.reg, self.mode, self.ranges, self.layers = reg, mode, ranges, layers
        self.spoiled: set[str] = set()
        self.range_requests: list[str] = []
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def forward(self):
                hdrs = {k: v for k, v in self.headers.items()
                        if k.lower() not in ("host", "content-length")}
                if "range" in {k.lower() for k in hdrs}:
                    proxy.range_requests.append(self.headers["Range"])
                    if not proxy.ranges:
                        hdrs = {k: v for k, v in hdrs.items() if k.lower() != "range"}
                status, h, out = proxy.reg.http(self.command, self.path, headers=hdrs)
                blob = (self.command == "GET" and status == 200
                        and any(self.path.endswith(f"/blobs/{d}") for d in proxy.layers))
                spoil = blob and self.path not in proxy.spoiled and len(out) > 2
                if spoil:
                    proxy.spoiled.add(self.path)
                if spoil and proxy.mode == "503":
                    data = b"upstream unavailable"
                    self.send_response(503)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                self.send_response(status)
                for k, v in h.items():
                    if k not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(k, v)
                self.send_header("Content-Length", h.get("content-length", str(len(out))))
                self.end_headers()
                if self.command == "HEAD":
                    return
                if spoil:
                    self.wfile.write(out[: len(out) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                self.wfile.write(out)

            do_GET = do_HEAD = forward

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.berth_only
@pytest.mark.parametrize("mode,ranges", [("cut", True), ("cut", False), ("503", True)])
def test_failed_blob_download_is_retried(engine_factory, tmp_path, uploader, mode, ranges):
    pushed = uploader.image(f"retry/{mode}-{ranges}".lower(), "v1")
    proxy = CuttingProxy(uploader.reg, mode, pushed.layer_digests, ranges)
    cfg = tmp_path / "berth.toml"
    cfg.write_text("# defaults\n")
    # A hidden test knob shortens moby's one-second countdown tick.
    eng = engine_factory(serve_args=lambda e: ["env", "BERTH_TEST_RETRY_TICK_MS=20",
                                               *e.serve_args(), "--config", str(cfg)])
    try:
        ref = f"{proxy.host}/{pushed.repo.split('/', 1)[1]}:v1"
        _, out, _ = eng.docker("pull", ref)
        assert f"Status: Downloaded newer image for {ref}" in out
        assert "Retrying in 5 seconds" in out, out
        assert "Retrying in 1 second\n" in out, out
        assert "Retrying in 6 seconds" not in out, out  # one failure each: one 5 s countdown
        if mode == "cut":
            # Resumed where the cut happened (the proxy serves the Range or ignores it).
            assert proxy.range_requests, proxy.range_requests
        eng.docker("run", "--rm", ref, "true")
    finally:
        proxy.close()


@pytest.mark.berth_only
def test_registry_mirrors_fall_back_in_order(engine_factory, tmp_path, registry, uploader):
    from registry import free_port, start_registry
    # The first mirror is down, the second lacks the image: the third (the session registry) has it.
    pushed = uploader.image("library/fallback", "v1")
    empty = start_registry()
    try:
        down = f"http://127.0.0.1:{free_port()}"
        eng = config_engine(engine_factory, tmp_path,
                            f'registry-mirrors = ["{down}", "http://{empty.host}", '
                            f'"http://{registry.host}"]\n')
        _, out, _ = eng.docker("pull", "fallback:v1")
        assert "Status: Downloaded newer image for fallback:v1" in out
        _, digests, _ = eng.docker("image", "inspect", "-f", "{{json .RepoDigests}}", "fallback:v1")
        assert pushed.digest in digests
        # Missing from every mirror: the last try is Docker Hub itself (unreachable offline,
        # and without this image online).
        rc, _, err = eng.docker("pull", "fallback:missing", check=False)
        assert rc != 0, err
        log = eng.log_tail(400)
        assert f"mirror http://{empty.host} failed for library/fallback:missing" in log, log
    finally:
        empty.stop()
