"""Local volumes through the docker CLI and docker-py: the /volumes API, named volumes shared
between containers, anonymous volumes (-v /path, an image's VOLUME, --mount without source),
copy-up of the image's content, rm -v and --rm, the in-use refusal, prune, `Mounts` in
inspect, `system df`."""

from __future__ import annotations

import json
import os
import uuid

import docker
import pytest

pytestmark = pytest.mark.usefixtures("busybox")


def name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def inspect(engine, what: str, *args) -> dict:
    _, out, _ = engine.docker(*args, "inspect", what) if args else engine.docker("inspect", what)
    return json.loads(out)[0]


def volume_names(engine) -> set[str]:
    _, out, _ = engine.docker("volume", "ls", "-q")
    return set(out.split())


def test_cli_volume_lifecycle(engine):
    v = name("vol")
    _, out, _ = engine.docker("volume", "create", "--label", "team=a", v)
    assert out.strip() == v
    info = inspect(engine, v, "volume")
    assert (info["Name"], info["Driver"], info["Scope"]) == (v, "local", "local")
    assert info["Labels"] == {"team": "a"}
    assert info["Mountpoint"].endswith(f"/volumes/{v}/_data")
    if engine.data_root:
        assert os.path.isdir(info["Mountpoint"])
    # Creating it again answers the existing volume.
    engine.docker("volume", "create", v)
    assert inspect(engine, v, "volume")["CreatedAt"] == info["CreatedAt"]
    _, out, _ = engine.docker("volume", "ls", "-q", "--filter", "label=team=a")
    assert v in out.split()
    _, out, _ = engine.docker("volume", "ls", "-q", "--filter", "label=team=b")
    assert v not in out.split()
    engine.docker("volume", "rm", v)
    assert v not in volume_names(engine)
    if engine.data_root:
        assert not os.path.exists(info["Mountpoint"])
    rc, _, err = engine.docker("volume", "inspect", v, check=False)
    assert rc != 0 and "no such volume" in err, err


def test_bad_names_and_drivers_are_refused(engine):
    for bad, text in [("x", "too short"), ("a/b", "includes invalid characters"),
                      ("../up", "includes invalid characters")]:
        rc, _, err = engine.docker("volume", "create", bad, check=False)
        assert rc != 0 and text in err, (bad, err)
    rc, _, err = engine.docker("volume", "create", "--driver", "nope", name("v"), check=False)
    assert rc != 0 and 'plugin "nope" not found' in err, err
    rc, _, err = engine.docker("volume", "create", "-o", "type=tmpfs", name("v"), check=False)
    assert rc != 0 and 'missing required option: "device"' in err, err
    rc, _, err = engine.docker("volume", "create", "-o", "colour=red", name("v"), check=False)
    assert rc != 0 and 'invalid option: "colour"' in err, err
    # (The docker CLI drops `-v x:/data` itself: the API is asked directly.)
    body = {"Image": "busybox", "Cmd": ["true"], "HostConfig": {"Binds": ["x:/data"]}}
    r = engine.api("POST", "/containers/create", body=json.dumps(body),
                   headers={"Content-Type": "application/json"})
    assert r.status == 400 and "too short" in r.json()["message"], r.body
    rc, _, err = engine.docker("run", "--rm", "-v", "a@b:/data", "busybox", "true", check=False)
    assert rc == 125 and "includes invalid characters" in err, err


def test_named_volume_outlives_its_writer(engine):
    v = name("shared")
    try:
        engine.docker("run", "--rm", "-v", f"{v}:/data", "busybox", "sh", "-c",
                      "echo kept > /data/f")
        assert v in volume_names(engine), "docker run -v name:/path creates the volume"
        _, out, _ = engine.docker("run", "--rm", "-v", f"{v}:/data:ro", "busybox", "cat",
                                  "/data/f")
        assert out == "kept\n"
        rc, _, err = engine.docker("run", "--rm", "-v", f"{v}:/data:ro", "busybox", "sh", "-c",
                                   "echo x > /data/g", check=False)
        assert rc != 0 and "Read-only file system" in err, err
    finally:
        engine.docker("volume", "rm", "-f", v, check=False)


def test_a_volume_in_use_is_not_removed(engine):
    v = name("busy")
    c = name("user")
    engine.docker("create", "--name", c, "-v", f"{v}:/data", "busybox", "true")
    try:
        cid = inspect(engine, c)["Id"]
        rc, _, err = engine.docker("volume", "rm", v, check=False)
        assert rc != 0 and f"remove {v}: volume is in use - [{cid}]" in err, err
        r = engine.api("DELETE", f"/volumes/{v}")
        assert r.status == 409, r.body
        _, out, _ = engine.docker("volume", "ls", "-q", "--filter", "dangling=true")
        assert v not in out.split()
    finally:
        engine.docker("rm", "-f", c, check=False)
    # rm without -v keeps a named volume; now unused, it goes.
    assert v in volume_names(engine)
    engine.docker("volume", "rm", v)


def test_copy_up_fills_a_new_volume_from_the_image(engine):
    v = name("etc")
    try:
        _, out, _ = engine.docker("run", "--rm", "-v", f"{v}:/etc", "busybox", "cat",
                                  "/etc/passwd")
        assert out.startswith("root:"), out
        # nocopy: an empty volume stays empty.
        w = name("empty")
        rc, _, _ = engine.docker("run", "--rm", "-v", f"{w}:/etc:nocopy", "busybox", "test",
                                 "-e", "/etc/passwd", check=False)
        assert rc == 1, "nocopy: the image's /etc is not copied in"
        engine.docker("volume", "rm", w)
    finally:
        engine.docker("volume", "rm", "-f", v, check=False)


def test_anonymous_volumes_and_rm_v(engine):
    c = name("anon")
    engine.docker("create", "--name", c, "-v", "/scratch", "busybox", "sh", "-c",
                  "echo x > /scratch/f")
    mounts = inspect(engine, c)["Mounts"]
    assert len(mounts) == 1, mounts
    m = mounts[0]
    assert (m["Type"], m["Destination"], m["Driver"], m["RW"]) == ("volume", "/scratch",
                                                                 "local", True)
    anon = m["Name"]
    assert len(anon) == 64
    assert inspect(engine, anon, "volume")["Labels"] == {"com.docker.volume.anonymous": ""}
    engine.docker("start", "-a", c)
    engine.docker("rm", "-v", c)
    assert anon not in volume_names(engine), "rm -v removes the anonymous volume"

    # Without -v it stays, dangling; prune (API >= 1.42) removes anonymous ones only.
    keep = name("named")
    engine.docker("volume", "create", keep)
    engine.docker("run", "--name", c, "-v", "/scratch", "busybox", "true")
    anon = inspect(engine, c)["Mounts"][0]["Name"]
    engine.docker("rm", c)
    _, out, _ = engine.docker("volume", "ls", "-q", "--filter", "dangling=true")
    assert anon in out.split() and keep in out.split()
    _, out, _ = engine.docker("volume", "prune", "-f")
    assert anon in out and keep not in out, out
    assert keep in volume_names(engine)
    engine.docker("volume", "rm", keep)
    if engine.data_root:
        # Every folder under volumes/ is a volume berth knows: nothing was left behind.
        folders = set(os.listdir(engine.data_root / "volumes"))
        assert folders <= volume_names(engine), folders - volume_names(engine)


def test_run_rm_removes_anonymous_volumes_and_image_volumes(engine, busybox_tar):
    before = volume_names(engine)
    engine.docker("run", "--rm", "-v", "/scratch", "--mount", "type=volume,target=/more",
                  "busybox", "true")
    assert volume_names(engine) == before
    # An image's VOLUME is an anonymous volume with the image's content copied in.
    ref = f"withvol:{uuid.uuid4().hex[:6]}"
    engine.docker("import", "-c", 'VOLUME ["/etc"]', "-c", 'CMD ["sh"]', str(busybox_tar), ref)
    c = name("imgvol")
    try:
        _, out, _ = engine.docker("run", "--name", c, ref, "head", "-c", "5", "/etc/passwd")
        assert out == "root:"
        mounts = inspect(engine, c)["Mounts"]
        assert [(m["Type"], m["Destination"]) for m in mounts] == [("volume", "/etc")]
    finally:
        engine.docker("rm", "-v", c, check=False)
        engine.docker("rmi", ref, check=False)
    assert volume_names(engine) == before


def test_mounts_in_inspect_and_ps(engine, tmp_path):
    v = name("ro")
    c = name("mounts")
    engine.docker("create", "--name", c, "-v", f"{v}:/data:ro", "-v", f"{tmp_path}:/host",
                  "--mount", "type=tmpfs,target=/t", "busybox", "true")
    try:
        mounts = {m["Destination"]: m for m in inspect(engine, c)["Mounts"]}
        assert set(mounts) == {"/data", "/host", "/t"}
        assert mounts["/data"]["Name"] == v and mounts["/data"]["RW"] is False
        assert mounts["/data"]["Mode"] == "ro"
        assert mounts["/host"] == {"Type": "bind", "Source": str(tmp_path),
                                   "Destination": "/host", "Mode": "", "RW": True,
                                   "Propagation": "rprivate"}
        assert mounts["/t"]["Type"] == "tmpfs"
        _, out, _ = engine.docker("ps", "-a", "--filter", f"name={c}", "--format",
                                  "{{.Mounts}}")
        assert v in out, out
    finally:
        engine.docker("rm", "-f", c, check=False)
        engine.docker("volume", "rm", "-f", v, check=False)


def test_docker_py_volume_api(client):
    # As docker-py's own tests/integration/api_volume_test.py expects.
    api = client.api
    v = name("api")
    created = api.create_volume(v)
    try:
        assert created["Name"] == v and created["Driver"] == "local"
        assert created in api.volumes()["Volumes"]
        assert api.inspect_volume(v) == created
        with pytest.raises(docker.errors.APIError) as e:
            api.create_volume(name("x"), "this-plugin-does-not-exist")
        assert e.value.response.status_code == 404
    finally:
        api.remove_volume(v)
    with pytest.raises(docker.errors.NotFound):
        api.inspect_volume(v)
    # A volume made without a name is anonymous: a plain prune takes it.
    unnamed = api.create_volume()
    assert unnamed["Labels"] == {"com.docker.volume.anonymous": ""}
    assert unnamed["Name"] in api.prune_volumes()["VolumesDeleted"]


def test_docker_py_volumes(client):
    v = name("py")
    vol = client.volumes.create(v, labels={"k": "1"})
    try:
        assert vol.name == v and vol.attrs["Labels"] == {"k": "1"}
        assert v in [x.name for x in client.volumes.list(filters={"label": "k=1"})]
        assert client.volumes.get(v).attrs["Mountpoint"] == vol.attrs["Mountpoint"]
        out = client.containers.run("busybox", ["sh", "-c", "echo py > /v/f; cat /v/f"],
                                    volumes={v: {"bind": "/v", "mode": "rw"}}, remove=True)
        assert out == b"py\n"
        df = client.df()
        mine = [x for x in df["Volumes"] if x["Name"] == v]
        assert mine and mine[0]["UsageData"] == {"Size": 3, "RefCount": 0}, mine
    finally:
        vol.remove(force=True)
    with pytest.raises(docker.errors.NotFound):
        client.volumes.get(v)
    with pytest.raises(docker.errors.NotFound):
        client.api.remove_volume(v)
    # force ignores a missing volume (docker-py does not send it: the API is asked directly).
    assert client.api._delete(client.api._url("/volumes/{0}", v),
                              params={"force": "1"}).status_code == 204


def test_volumes_from(engine, tmp_path):
    (tmp_path / "hostfile").write_text("from host\n")
    v = name("from")
    src = name("src")
    engine.docker("create", "--name", src, "-v", f"{v}:/data", "-v", f"{tmp_path}:/host:ro",
                  "-v", "/anon", "busybox", "true")
    dep = name("dep")
    try:
        engine.docker("run", "--rm", "-v", f"{v}:/data", "busybox", "sh", "-c",
                      "echo shared > /data/f")
        _, out, _ = engine.docker("run", "--name", dep, "--volumes-from", src, "busybox", "sh",
                                  "-c", "cat /data/f /host/hostfile; echo x > /anon/y && echo rw")
        assert out == "shared\nfrom host\nrw\n", out
        mounts = {m["Destination"]: m for m in inspect(engine, dep)["Mounts"]}
        assert set(mounts) == {"/data", "/host", "/anon"}
        assert mounts["/data"]["Name"] == v and mounts["/host"]["RW"] is False
        rc, _, err = engine.docker("run", "--rm", "--volumes-from", f"{src}:ro", "busybox",
                                   "touch", "/data/g", check=False)
        assert rc != 0 and "Read-only file system" in err, err
        # The container's own mount at the same place wins.
        _, out, _ = engine.docker("run", "--rm", "--volumes-from", src, "-v",
                                  f"{tmp_path}:/data", "busybox", "cat", "/data/hostfile")
        assert out == "from host\n"
        # (A 404 from create makes the CLI pull the image and retry: the API is asked directly.)
        body = {"Image": "busybox", "Cmd": ["true"], "HostConfig": {"VolumesFrom": ["no-such-ctr"]}}
        r = engine.api("POST", "/containers/create", body=json.dumps(body),
                       headers={"Content-Type": "application/json"})
        assert r.status == 404 and r.json()["message"] == "No such container: no-such-ctr", r.body
        # The source's anonymous volume is shared, so rm -v of the source keeps it in use.
        anon = mounts["/anon"]["Name"]
        engine.docker("rm", "-v", src)
        assert anon in volume_names(engine)
    finally:
        engine.docker("rm", "-f", "-v", dep, check=False)
        engine.docker("rm", "-f", "-v", src, check=False)
        engine.docker("volume", "rm", "-f", v, check=False)


@pytest.mark.berth_only
def test_driver_options_tmpfs_and_bind(engine, tmp_path):
    """`-o type=tmpfs -o device=tmpfs -o o=size=…` mounts a tmpfs while containers use the
    volume (its content goes with the last one, as in Docker); `-o type=none -o o=bind -o
    device=DIR` shows a host folder."""
    t = name("tmpfsvol")
    engine.docker("volume", "create", "-o", "type=tmpfs", "-o", "device=tmpfs", "-o",
                  "o=size=8m,mode=1777", t)
    host = tmp_path / "shared"
    host.mkdir()
    (host / "from-host").write_text("hi\n")
    b = name("bindvol")
    engine.docker("volume", "create", "--driver", "local", "-o", "type=none", "-o", "o=bind",
                  "-o", f"device={host}", b)
    try:
        assert inspect(engine, t, "volume")["Options"] == \
            {"type": "tmpfs", "device": "tmpfs", "o": "size=8m,mode=1777"}
        _, out, _ = engine.docker("run", "--rm", "-v", f"{t}:/data", "busybox", "sh", "-c",
                                  "grep ' /data ' /proc/mounts; df -k /data | tail -1; "
                                  "echo kept > /data/f; ls -ld /data")
        assert " /data tmpfs " in out and "drwxrwxrwt" in out, out
        assert out.splitlines()[1].split()[1] == "8192", out
        _, out, _ = engine.docker("run", "--rm", "-v", f"{t}:/data", "busybox", "ls", "/data")
        assert out.strip() == "", "a tmpfs volume starts empty once no container holds it"
        if engine.data_root:
            mp = inspect(engine, t, "volume")["Mountpoint"]
            assert mp not in open("/proc/self/mountinfo").read(), "unmounted after the last user"
        _, out, _ = engine.docker("run", "--rm", "-v", f"{b}:/data", "busybox", "sh", "-c",
                                  "cat /data/from-host; echo back > /data/from-container")
        assert out == "hi\n"
        assert (host / "from-container").read_text() == "back\n"
        # The same options inline: --mount with volume-opt makes the volume with them.
        inline = name("inline")
        _, out, _ = engine.docker(
            "run", "--rm", "--mount",
            f"type=volume,src={inline},dst=/d,volume-opt=type=tmpfs,volume-opt=device=tmpfs",
            "busybox", "grep", " /d ", "/proc/mounts")
        assert " /d tmpfs " in out, out
        assert inspect(engine, inline, "volume")["Options"] == {"type": "tmpfs", "device": "tmpfs"}
        engine.docker("volume", "rm", inline)
    finally:
        engine.docker("volume", "rm", t, check=False)
        engine.docker("volume", "rm", b, check=False)
    assert (host / "from-host").exists(), "removing a bind volume leaves the host folder"
