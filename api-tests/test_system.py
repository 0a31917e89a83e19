"""System endpoints: /_ping, /version, /info, /system/df, routing, versions, stubs."""

from __future__ import annotations

import json
import os
import platform

import pytest

from helpers import API_VERSION, MIN_API_VERSION


def vtuple(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in v.split("."))


@pytest.fixture(scope="module")
def server_version(engine) -> str:
    """The API version the engine advertises (1.50 for berth; checked in test_version_api)."""
    return engine.server_api_version()


def expect_json_error(resp, status: int, message: str | None = None):
    assert resp.status == status, (resp.status, resp.body)
    assert resp.headers.get("content-type") == "application/json", resp.headers
    body = resp.json()
    assert set(body) == {"message"}, body
    if message is not None:
        assert body["message"] == message
    return body["message"]


# --------------------------------------------------------------------------- ping


@pytest.mark.parametrize("path", ["/_ping", "/v1.24/_ping", "/v1.41/_ping"])
def test_ping_get(engine, server_version, path):
    r = engine.api("GET", path)
    assert r.status == 200
    assert r.body == b"OK"
    assert r.headers["api-version"] == server_version
    assert r.headers["ostype"] == "linux"
    assert r.headers["docker-experimental"] == "false"
    assert "no-cache" in r.headers["cache-control"]
    assert r.headers["content-type"].startswith("text/plain")
    assert "server" in r.headers


def test_ping_head(engine, server_version):
    r = engine.api("HEAD", "/_ping")
    assert r.status == 200
    assert r.body == b""
    assert r.headers["api-version"] == server_version
    assert r.headers["ostype"] == "linux"
    assert r.headers["docker-experimental"] == "false"
    assert r.headers.get("content-length", "0") == "0"


@pytest.mark.berth_only
def test_ping_headers_are_docker_28s(engine):
    r = engine.api("GET", "/_ping")
    assert r.headers["api-version"] == API_VERSION
    assert r.headers["builder-version"] == "1"  # no BuildKit: the CLI must use the legacy builder
    assert r.headers["content-type"] == "text/plain; charset=utf-8"
    assert r.headers.get("swarm") == "inactive"


# --------------------------------------------------------------------------- version


def test_version_api(engine, server_version):
    r = engine.api("GET", "/version")
    assert r.status == 200
    assert r.headers["content-type"] == "application/json"
    v = r.json()
    assert v["ApiVersion"] == server_version
    assert v["Os"] == "linux"
    assert v["Arch"] == {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    assert v["KernelVersion"] == os.uname().release
    assert isinstance(v["Components"], list) and v["Components"]
    assert all({"Name", "Version"} <= set(c) for c in v["Components"])
    if not engine.external:
        assert v["ApiVersion"] == API_VERSION
        assert v["MinAPIVersion"] == MIN_API_VERSION
        names = [c["Name"] for c in v["Components"]] + [v.get("Platform", {}).get("Name", "")]
        assert any("berth" in n.lower() for n in names), v


def test_docker_version_cli(engine):
    _, out, err = engine.docker("version")
    assert "Server:" in out
    assert "Client:" in out
    if not engine.external:
        assert f"API version:      {API_VERSION} (minimum version {MIN_API_VERSION})" in out, out
        assert "downgraded" not in out
        assert "berth" in out.lower()


def test_docker_version_format_json(engine, server_version):
    _, out, _ = engine.docker("version", "--format", "{{json .Server}}")
    server = json.loads(out)
    assert server["ApiVersion"] == server_version
    assert server["KernelVersion"] == os.uname().release


def test_every_response_has_api_version_and_server(engine, server_version):
    for method, path in [("GET", "/version"), ("GET", "/info"), ("GET", "/images/nope-no-such/json")]:
        r = engine.api(method, path)
        assert r.headers.get("api-version") == server_version, (path, r.headers)
        assert r.headers.get("server"), (path, r.headers)


@pytest.mark.berth_only
def test_unknown_route_has_api_version_and_server(engine):
    # dockerd 20.10 answers unmatched routes outside its middleware (no headers); berth's
    # design asks for them on every response, which no client minds.
    r = engine.api("GET", "/nope")
    assert r.headers.get("api-version") == API_VERSION
    assert r.headers.get("server")


# --------------------------------------------------------------------------- versions in paths


@pytest.mark.parametrize("version", ["1.24", "1.25", "1.30", "1.40", "1.41", "1.44", "1.45", "1.50"])
def test_versioned_paths(engine, server_version, version):
    if vtuple(version) > vtuple(server_version):
        pytest.skip(f"engine advertises {server_version}")
    r = engine.api("GET", f"/v{version}/version")
    assert r.status == 200, r.body
    assert r.json()["ApiVersion"] == server_version
    assert engine.api("GET", f"/v{version}/images/json").status == 200


def test_version_too_new(engine, server_version):
    major, minor = vtuple(server_version)
    too_new = f"{major}.{minor + 1}"
    r = engine.api("GET", f"/v{too_new}/version")
    expect_json_error(r, 400, f"client version {too_new} is too new. "
                              f"Maximum supported API version is {server_version}")


@pytest.mark.berth_only
def test_version_1_51_too_new(engine):
    r = engine.api("GET", "/v1.51/version")
    expect_json_error(r, 400, "client version 1.51 is too new. Maximum supported API version is 1.50")


@pytest.mark.berth_only
def test_version_too_old(engine):
    r = engine.api("GET", "/v1.23/version")
    expect_json_error(r, 400, "client version 1.23 is too old. Minimum supported API version is 1.24, "
                              "please upgrade your client to a newer version")


# --------------------------------------------------------------------------- routing


@pytest.mark.parametrize("method,path", [
    ("GET", "/nope"),
    ("GET", "/v1.41/nope"),
    ("POST", "/images/json/extra/segments"),
    ("GET", "/containers"),
])
def test_unknown_route_404(engine, method, path):
    r = engine.api(method, path)
    assert r.status == 404
    assert r.headers["content-type"] == "application/json"
    assert r.body.strip() == b'{"message":"page not found"}'


SWARM_MANAGER = ('This node is not a swarm manager. Use "docker swarm init" or "docker swarm join" '
                 'to connect this node to swarm and try again.')


@pytest.mark.parametrize("path", ["/swarm", "/nodes", "/services", "/tasks", "/secrets", "/configs"])
def test_swarm_routes_503(engine, path):
    expect_json_error(engine.api("GET", path), 503, SWARM_MANAGER)


def test_swarm_leave_503(engine):
    expect_json_error(engine.api("POST", "/swarm/leave?force=1"), 503, "This node is not part of a swarm")


def test_plugins_empty(engine):
    r = engine.api("GET", "/plugins")
    assert r.status == 200
    assert r.headers["content-type"] == "application/json"
    assert r.json() == []


def test_plugin_inspect_404(engine):
    expect_json_error(engine.api("GET", "/plugins/nope/json"), 404, 'plugin "nope" not found')


# --------------------------------------------------------------------------- info / df


def _meminfo_total() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no MemTotal")


def test_info_fields(engine):
    r = engine.api("GET", "/info")
    assert r.status == 200
    info = r.json()
    assert info["OSType"] == "linux"
    assert info["KernelVersion"] == os.uname().release
    assert info["NCPU"] == os.cpu_count()
    assert abs(info["MemTotal"] - _meminfo_total()) <= 64 * 1024 * 1024
    assert info["Swarm"]["LocalNodeState"] == "inactive"
    assert info["CgroupDriver"] in ("cgroupfs", "systemd")
    assert info["CgroupVersion"] in ("1", "2")
    assert info["ID"] and info["Name"]
    assert info["Runtimes"] and info["DefaultRuntime"] in info["Runtimes"]
    for key in ("Containers", "ContainersRunning", "ContainersPaused", "ContainersStopped", "Images"):
        assert isinstance(info[key], int), key
    assert info["Containers"] == info["ContainersRunning"] + info["ContainersPaused"] + info["ContainersStopped"]
    if not engine.external:
        assert info["Driver"] == "overlay2"
        assert info["DockerRootDir"] == str(engine.data_root)


def test_info_counts_images(fresh_engine, busybox_tar):
    eng = fresh_engine

    def images_count():
        _, out, _ = eng.docker("info", "--format", "{{.Images}}")
        return int(out.strip())

    before = images_count()
    if not eng.external:
        assert before == 0
        _, out, _ = eng.docker("info", "--format", "{{.Containers}} {{.ContainersRunning}}")
        assert out.split() == ["0", "0"]
    eng.docker("import", str(busybox_tar), "info-count-a:1")
    assert images_count() == before + 1
    eng.docker("tag", "info-count-a:1", "info-count-a:2")  # a tag is not an image
    assert images_count() == before + 1
    eng.docker("import", "-c", "LABEL x=y", str(busybox_tar), "info-count-b:1")
    assert images_count() == before + 2
    eng.docker("rmi", "info-count-a:1", "info-count-a:2", "info-count-b:1")
    assert images_count() == before


def test_docker_info_cli(engine):
    _, out, err = engine.docker("info")
    assert "Server:" in out
    assert "Images:" in out
    assert "Kernel Version: " + os.uname().release in out
    assert "ERROR" not in out + err


def test_system_df(engine, busybox):
    r = engine.api("GET", "/system/df")
    assert r.status == 200
    df = r.json()
    for key in ("LayersSize", "Images", "Containers", "Volumes", "BuildCache"):
        assert key in df, key
    ids = [i["Id"] for i in df["Images"]]
    assert busybox in ids
    _, out, _ = engine.docker("system", "df")
    assert out.splitlines()[0].split() == ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]


# --------------------------------------------------------------------------- docker-py


def test_dockerpy_ping_version_info(client, server_version):
    assert client.ping() is True
    v = client.version()
    assert v["ApiVersion"] == server_version
    assert client.api.api_version == server_version
    info = client.info()
    assert info["OSType"] == "linux"
    assert isinstance(info["Images"], int)
