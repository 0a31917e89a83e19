"""`docker login` (POST /auth) against docker-registry with htpasswd auth, and pulls that use the
stored credentials."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import docker
import pytest

from registry import host_arch

USER, PASSWORD = "tester", "s3cret-pw"


@pytest.fixture
def own_docker_config():
    """A private DOCKER_CONFIG, so stored credentials do not leak into other tests."""
    d = Path(tempfile.mkdtemp(prefix="berth-login-"))
    (d / "config.json").write_text("{}\n")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_cli_login_success_then_pull(engine, auth_registry, auth_uploader, own_docker_config):
    env = {"DOCKER_CONFIG": str(own_docker_config)}
    _, out, _ = engine.docker("login", "-u", USER, "--password-stdin", auth_registry.host,
                              input=PASSWORD, env=env)
    assert "Login Succeeded" in out
    stored = json.loads((own_docker_config / "config.json").read_text())
    assert auth_registry.host in stored["auths"]
    # The stored credentials go out as X-Registry-Auth on pull.
    pushed = auth_uploader.image("login/x", "v1")
    _, out, _ = engine.docker("pull", pushed.ref, env=env)
    assert f"Status: Downloaded newer image for {pushed.ref}" in out
    _, out, _ = engine.docker("run", "--rm", pushed.ref, "cat", "/marker", env=env)
    assert out.strip() == "login/x:v1:gzip"
    engine.docker("rmi", pushed.ref)
    # Without them the registry refuses.
    rc, _, err = engine.docker("pull", pushed.ref, check=False)
    assert rc != 0
    assert "no basic auth credentials" in err


def test_cli_login_wrong_password(engine, auth_registry, own_docker_config):
    rc, _, err = engine.docker("login", "-u", USER, "--password-stdin", auth_registry.host,
                               input="wrong", check=False, env={"DOCKER_CONFIG": str(own_docker_config)})
    assert rc != 0
    assert (f"Error response from daemon: login attempt to http://{auth_registry.host}/v2/ "
            "failed with status: 401 Unauthorized") in err
    stored = json.loads((own_docker_config / "config.json").read_text())
    assert auth_registry.host not in stored.get("auths", {})


def test_docker_py_login(engine, auth_registry):
    c = engine.client()
    try:
        r = c.login(username=USER, password=PASSWORD, registry=auth_registry.host, reauth=True)
        assert r == {"Status": "Login Succeeded", "IdentityToken": ""}
        with pytest.raises(docker.errors.APIError) as e:
            c.login(username=USER, password="nope", registry=auth_registry.host, reauth=True)
        assert "failed with status: 401 Unauthorized" in str(e.value)
    finally:
        c.close()


def test_docker_py_pull_with_auth_config(engine, auth_uploader):
    pushed = auth_uploader.image("login/dockerpy", "v1")
    c = engine.client()
    try:
        img = c.images.pull(pushed.repo, tag="v1",
                            auth_config={"username": USER, "password": PASSWORD})
        assert img.id == pushed.images[host_arch()].id
        c.images.remove(pushed.ref)
    finally:
        c.close()


def test_login_to_open_registry_and_unreachable(engine, registry):
    r = engine.api("POST", "/auth", body=json.dumps({"username": "any", "password": "thing",
                                                     "serveraddress": registry.host}),
                   headers={"Content-Type": "application/json"})
    assert r.status == 200
    assert r.json() == {"Status": "Login Succeeded", "IdentityToken": ""}
    r = engine.api("POST", "/auth", body=json.dumps({"username": "a", "password": "b",
                                                     "serveraddress": "127.0.0.1:1"}),
                   headers={"Content-Type": "application/json"})
    assert r.status == 500
    assert "connect: connection refused" in r.json()["message"]
    r = engine.api("POST", "/auth", body="{not json", headers={"Content-Type": "application/json"})
    assert r.status == 400
