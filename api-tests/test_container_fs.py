"""Container filesystems through the docker CLI and docker-py: `docker cp` both ways on running
and stopped containers (files, directories, stdin/stdout tars, the stat header), `docker diff`,
`docker commit` (with --change, -m, -a) and running the result, `docker export | docker import`,
and hostile archives and container symlinks that must never reach a host path."""

from __future__ import annotations

import base64
import io
import json
import os
import tarfile
import uuid

import pytest

from helpers import tar_bytes

pytestmark = pytest.mark.usefixtures("busybox")


def name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def running(engine):
    c = name("fs")
    engine.docker("run", "-d", "--network", "none", "--name", c, "busybox", "sleep", "300")
    yield c
    engine.docker("rm", "-f", c, check=False)


def sh(engine, c, script):
    _, out, _ = engine.docker("exec", c, "sh", "-c", script)
    return out


def test_cp_into_and_out_of_running_container(engine, running, tmp_path):
    (tmp_path / "a.txt").write_text("alpha\n")
    d = tmp_path / "tree" / "sub"
    d.mkdir(parents=True)
    (d / "f").write_text("deep\n")
    engine.docker("cp", str(tmp_path / "a.txt"), f"{running}:/tmp/")
    engine.docker("cp", str(tmp_path / "tree"), f"{running}:/tmp/tree2")
    assert sh(engine, running, "cat /tmp/a.txt /tmp/tree2/sub/f") == "alpha\ndeep\n"
    out_dir = tmp_path / "back"
    engine.docker("cp", f"{running}:/tmp/tree2", str(out_dir))
    assert (out_dir / "sub" / "f").read_text() == "deep\n"
    engine.docker("cp", f"{running}:/etc/passwd", str(tmp_path / "pw"))
    assert (tmp_path / "pw").read_text().startswith("root:x:0:0:")
    # `-` streams a tar named by the source's base name.
    rc, _, _ = engine.docker("cp", f"{running}:/nope", str(tmp_path / "x"), check=False)
    assert rc != 0


def test_cp_stdout_tar_and_stdin_tar(engine, running):
    sh(engine, running, "mkdir -p /srv/d && echo one > /srv/d/1 && ln -s 1 /srv/d/link")
    p = engine.docker_raw("cp", f"{running}:/srv/d", "-")
    assert p.returncode == 0, p.stderr
    with tarfile.open(fileobj=io.BytesIO(p.stdout)) as t:
        names = sorted(t.getnames())
        assert names == ["d", "d/1", "d/link"]
        assert t.getmember("d/link").issym() and t.getmember("d/link").linkname == "1"
    data = tar_bytes([{"name": "in/x.txt", "data": b"from stdin"}])
    p = engine.docker_raw("cp", "-", f"{running}:/srv", input=data)
    assert p.returncode == 0, p.stderr
    assert sh(engine, running, "cat /srv/in/x.txt") == "from stdin"


def test_cp_on_stopped_container_and_commit(engine, tmp_path):
    c = name("stopped")
    engine.docker("run", "--network", "none", "--name", c, "busybox", "sh", "-c",
                  "echo changed > /tmp/new; rm /bin/ls; mkdir /root/d")
    try:
        (tmp_path / "s.txt").write_text("while stopped\n")
        engine.docker("cp", str(tmp_path / "s.txt"), f"{c}:/root/")
        engine.docker("cp", f"{c}:/tmp/new", str(tmp_path / "new"))
        assert (tmp_path / "new").read_text() == "changed\n"
        _, out, _ = engine.docker("diff", c)
        lines = out.splitlines()
        for want in ["C /bin", "D /bin/ls", "C /tmp", "A /tmp/new", "C /root", "A /root/d", "A /root/s.txt"]:
            assert want in lines, out
        # Parents come before their children.
        assert lines.index("C /tmp") < lines.index("A /tmp/new")
        tag = name("committed")
        _, out, _ = engine.docker("commit", "-m", "a message", "-a", "someone", "-c", "ENV FROM_COMMIT=yes",
                                  "-c", 'CMD ["sh", "-c", "cat /root/s.txt /tmp/new; echo $FROM_COMMIT"]', c, tag)
        image_id = out.strip()
        assert image_id.startswith("sha256:")
        _, out, _ = engine.docker("run", "--rm", "--network", "none", tag)
        assert out == "while stopped\nchanged\nyes\n"
        rc, _, _ = engine.docker("run", "--rm", "--network", "none", tag, "ls", "/bin/ls", check=False)
        assert rc != 0  # the deletion is in the committed layer
        info = json.loads(engine.docker("image", "inspect", tag)[1])[0]
        assert info["Author"] == "someone"
        assert info["Comment"] == "a message"
        assert info["Parent"].startswith("sha256:")
        _, out, _ = engine.docker("history", "--no-trunc", "--format", "{{.Comment}}", tag)
        assert out.splitlines()[0] == "a message"
        engine.docker("rmi", tag)
    finally:
        engine.docker("rm", "-f", c, check=False)


def test_commit_running_container_pauses_and_api_shape(engine, running, client):
    sh(engine, running, "echo live > /live")
    r = engine.api("POST", f"/commit?container={running}&repo=&tag=&comment=&author=")
    assert r.status == 201, r.body
    image_id = r.json()["Id"]
    assert image_id.startswith("sha256:")
    # The container keeps running, unpaused.
    st = json.loads(engine.docker("inspect", running)[1])[0]["State"]
    assert st["Running"] and not st["Paused"]
    _, out, _ = engine.docker("run", "--rm", "--network", "none", image_id, "cat", "/live")
    assert out == "live\n"
    engine.docker("rmi", image_id)
    # docker-py
    img = client.containers.get(running).commit(repository="pycommit", tag="t1", changes=["LABEL via=py"])
    assert img.labels.get("via") == "py"
    client.images.remove("pycommit:t1")
    bad = engine.api("POST", f"/commit?container={running}&changes=RUN%20true")
    assert bad.status == 400 and "run is not a valid change command" in bad.json()["message"]
    missing = engine.api("POST", "/commit?container=no-such-container-x")
    assert missing.status == 404


def test_diff_of_fresh_container_is_null(engine):
    c = name("fresh")
    engine.docker("create", "--name", c, "busybox", "true")
    try:
        r = engine.api("GET", f"/containers/{c}/changes")
        assert r.status == 200 and r.json() is None
    finally:
        engine.docker("rm", c)


def test_export_import_roundtrip(engine, tmp_path):
    c = name("exp")
    engine.docker("run", "--network", "none", "--name", c, "busybox", "sh", "-c", "echo exported > /marker")
    try:
        p = engine.docker_raw("export", c)
        assert p.returncode == 0, p.stderr
        with tarfile.open(fileobj=io.BytesIO(p.stdout)) as t:
            names = set(t.getnames())
        assert "marker" in names and "bin/busybox" in names
        tag = name("reimported")
        p2 = engine.docker_raw("import", "-", tag, input=p.stdout)
        assert p2.returncode == 0, p2.stderr
        _, out, _ = engine.docker("run", "--rm", "--network", "none", tag, "cat", "/marker")
        assert out == "exported\n"
        engine.docker("rmi", tag)
    finally:
        engine.docker("rm", c)


def test_archive_stat_header(engine, running):
    sh(engine, running, "ln -s /etc /tmp/etclink")
    r = engine.api("HEAD", f"/containers/{running}/archive?path=/etc/passwd")
    assert r.status == 200
    stat = json.loads(base64.b64decode(r.headers["x-docker-container-path-stat"]))
    assert list(stat) == ["name", "size", "mode", "mtime", "linkTarget"]
    assert stat["name"] == "passwd" and stat["mode"] & 0o777 == 0o644 and stat["linkTarget"] == ""
    r = engine.api("HEAD", f"/containers/{running}/archive?path=/tmp/etclink")
    stat = json.loads(base64.b64decode(r.headers["x-docker-container-path-stat"]))
    assert stat["mode"] & (1 << 27) and stat["linkTarget"] == "/etc"
    r = engine.api("HEAD", f"/containers/{running}/archive?path=/tmp")
    stat = json.loads(base64.b64decode(r.headers["x-docker-container-path-stat"]))
    assert stat["mode"] & (1 << 31)
    r = engine.api("GET", f"/containers/{running}/archive?path=/does/not/exist")
    assert r.status == 404
    assert r.json()["message"] == f"Could not find the file /does/not/exist in container {running}"
    r = engine.api("GET", f"/containers/{running}/archive")
    assert r.status == 400 and r.json()["message"] == "bad parameter: path cannot be empty"
    r = engine.api("PUT", f"/containers/{running}/archive?path=/etc/passwd", body=tar_bytes([]))
    assert r.status == 400 and r.json()["message"] == "extraction point is not a directory"


def test_put_archive_no_overwrite_dir_non_dir(engine, running):
    sh(engine, running, "mkdir -p /t/d")
    body = tar_bytes([{"name": "d", "data": b"a file where a dir is"}])
    r = engine.api("PUT", f"/containers/{running}/archive?path=/t&noOverwriteDirNonDir=true", body=body)
    assert r.status >= 400 and "cannot overwrite directory" in r.json()["message"]
    assert sh(engine, running, "test -d /t/d && echo dir") == "dir\n"
    # Without the flag the directory is replaced.
    r = engine.api("PUT", f"/containers/{running}/archive?path=/t", body=body)
    assert r.status == 200
    assert sh(engine, running, "cat /t/d") == "a file where a dir is"


@pytest.mark.parametrize("state", ["running", "stopped"])
def test_hostile_archives_and_symlinks_never_touch_the_host(engine, tmp_path, state):
    host_dir = tmp_path / "host-side"
    host_dir.mkdir()
    (host_dir / "secret").write_text("host secret")
    c = name("hostile")
    # A container symlink to a host path (absolute) and one climbing with `..`.
    engine.docker("run", "-d", "--network", "none", "--name", c, "busybox", "sh", "-c",
                  f"ln -s {host_dir} /tmp/abs && ln -s ../../../../../../../..{host_dir} /tmp/up && "
                  "mkdir -p /safe && sleep 300")
    try:
        engine.docker("exec", c, "test", "-L", "/tmp/up")
        if state == "stopped":
            engine.docker("stop", "-t", "0", c)
        for link in ["/tmp/abs", "/tmp/up"]:
            # Reading through the link resolves inside the container: no such file there.
            r = engine.api("GET", f"/containers/{c}/archive?path={link}/secret")
            assert r.status == 404, r.body
            # Writing through it: the target does not exist in the container.
            r = engine.api("PUT", f"/containers/{c}/archive?path={link}",
                           body=tar_bytes([{"name": "planted", "data": b"x"}]))
            assert r.status == 404, r.body
        # Archive entries climbing out, and a symlink entry followed by a file through it.
        climb = tar_bytes([{"name": "../../../../../../../..{}/planted".format(host_dir), "data": b"x"}])
        r = engine.api("PUT", f"/containers/{c}/archive?path=/safe", body=climb)
        assert r.status == 400, r.body
        through = tar_bytes([
            {"name": "esc", "type": "symlink", "target": str(host_dir)},
            {"name": "esc/planted", "data": b"inside"},
        ])
        r = engine.api("PUT", f"/containers/{c}/archive?path=/safe", body=through)
        assert r.status in (200, 404, 500), r.body
        hard = tar_bytes([{"name": "hl", "type": "hardlink", "target": "../../../../../../..{}/secret".format(host_dir)}])
        r = engine.api("PUT", f"/containers/{c}/archive?path=/safe", body=hard)
        assert r.status >= 400
        assert sorted(os.listdir(host_dir)) == ["secret"]
        assert (host_dir / "secret").read_text() == "host secret"
    finally:
        engine.docker("rm", "-f", c, check=False)


def test_cp_whole_root_and_volume_through_symlink_when_stopped(engine, tmp_path):
    vol = name("cpvol")
    c = name("cproot")
    engine.docker("run", "--network", "none", "--name", c, "-v", f"{vol}:/data", "busybox", "sh", "-c",
                  "echo invol > /data/f && ln -s /data /tmp/tovol")
    try:
        p = engine.docker_raw("cp", f"{c}:/", "-")
        assert p.returncode == 0, p.stderr
        with tarfile.open(fileobj=io.BytesIO(p.stdout)) as t:
            names = set(t.getnames())
        assert "/bin/busybox" in names or "bin/busybox" in names
        # Through a symlink into the volume, as the container sees it.
        p = engine.docker_raw("cp", f"{c}:/tmp/tovol/f", "-")
        with tarfile.open(fileobj=io.BytesIO(p.stdout)) as t:
            assert t.extractfile("f").read() == b"invol\n"
        (tmp_path / "put.txt").write_text("put\n")
        engine.docker("cp", str(tmp_path / "put.txt"), f"{c}:/tmp/tovol/")
        _, out, _ = engine.docker("run", "--rm", "--network", "none", "-v", f"{vol}:/v", "busybox", "cat", "/v/put.txt")
        assert out == "put\n"
    finally:
        engine.docker("rm", "-f", c, check=False)
        engine.docker("volume", "rm", vol, check=False)


def test_special_files_are_archived_not_opened(engine, running):
    # A FIFO (reading it would block) and a file the container turns into a FIFO: cp, export
    # and commit answer and carry the node itself.
    sh(engine, running, "mkdir /sp && mkfifo /sp/fifo && echo data > /sp/file")
    p = engine.docker_raw("cp", f"{running}:/sp", "-", timeout=30)
    assert p.returncode == 0, p.stderr
    with tarfile.open(fileobj=io.BytesIO(p.stdout)) as t:
        assert t.getmember("sp/fifo").isfifo()
        assert t.extractfile("sp/file").read() == b"data\n"
    r = engine.api("POST", f"/commit?container={running}&repo=&tag=", timeout=30)
    assert r.status == 201, r.body
    _, out, _ = engine.docker("run", "--rm", "--network", "none", r.json()["Id"], "sh", "-c",
                              "test -p /sp/fifo && echo fifo")
    assert out == "fifo\n"
    engine.docker("rmi", r.json()["Id"])
    # A device node in an uploaded archive is created as a node, never opened.
    dev = io.BytesIO()
    with tarfile.open(fileobj=dev, mode="w") as t:
        info = tarfile.TarInfo("null2")
        info.type = tarfile.CHRTYPE
        info.devmajor, info.devminor, info.mode = 1, 3, 0o4666
        t.addfile(info)
    r = engine.api("PUT", f"/containers/{running}/archive?path=/sp", body=dev.getvalue())
    assert r.status == 200, r.body
    assert sh(engine, running, "test -c /sp/null2 && echo chr") == "chr\n"


def test_cp_archive_mode_takes_the_container_user(engine, tmp_path):
    c = name("cpuser")
    engine.docker("run", "-d", "--network", "none", "--user", "1234:2345", "--name", c, "busybox", "sleep", "300")
    try:
        f = tmp_path / "owned.txt"
        f.write_text("x")
        os.chown(f, 4321, 4321)
        engine.docker("cp", "-a", str(f), f"{c}:/tmp/")
        engine.docker("cp", str(f), f"{c}:/tmp/plain.txt")
        _, out, _ = engine.docker("exec", c, "stat", "-c", "%u:%g", "/tmp/owned.txt", "/tmp/plain.txt")
        # -a: the container's user; without it the archive's owner (as Docker does).
        assert out.split() == ["1234:2345", "4321:4321"]
    finally:
        engine.docker("rm", "-f", c, check=False)
