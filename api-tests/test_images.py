"""Local images: load, save, import, list, inspect, history, tag, rmi, prune, filters."""

from __future__ import annotations

import io
import json
import re
import tarfile
import uuid
from urllib.parse import quote

import docker
import pytest

from helpers import (BuiltImage, docker_archive, layer_size, make_image, sha256_hex,
                     simple_layer)

HEX64 = re.compile(r"^sha256:[0-9a-f]{64}$")


def uniq(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def inspect(eng, ref: str) -> dict:
    _, out, _ = eng.docker("image", "inspect", ref)
    data = json.loads(out)
    assert len(data) == 1
    return data[0]


def image_exists(eng, ref: str) -> bool:
    rc, _, _ = eng.docker("image", "inspect", ref, check=False)
    return rc == 0


def load(eng, archive: bytes, tmp_path=None) -> str:
    """docker load from stdin; return stdout."""
    _, out, _ = eng.docker("load", input=archive)
    return out


def two_layer_image(repo_tag: str, **kw) -> tuple[BuiltImage, list[list[dict]]]:
    base = simple_layer("base", {"etc/base.txt": "base layer\n", "usr/share/x/data.bin": b"\x00" * 1000})
    top = simple_layer("top", {"etc/top.txt": "top layer\n"})
    # a label naming the tag makes every test's image (and so its ID) unique
    kw["labels"] = {**(kw.get("labels") or {}), "test.ref": repo_tag}
    img = make_image([base, top], [repo_tag], **kw)
    return img, [base, top]


# --------------------------------------------------------------------------- import


def test_import_busybox(engine, busybox_tar):
    ref = uniq("bb-import") + ":latest"
    _, out, _ = engine.docker("import", "-c", 'CMD ["sh"]', str(busybox_tar), ref)
    image_id = out.strip()
    assert HEX64.match(image_id), out
    info = inspect(engine, ref)
    assert info["Id"] == image_id
    assert info["RepoTags"] == [ref]
    assert info["RepoDigests"] == []
    assert info["Config"]["Cmd"] == ["sh"]
    assert info["Os"] == "linux" and info["Architecture"] == "amd64"
    assert len(info["RootFS"]["Layers"]) == 1
    assert info["Comment"] == "Imported from -"
    # the layer's diff id is the digest of the uncompressed tar as sent
    assert info["RootFS"]["Layers"][0] == "sha256:" + sha256_hex(busybox_tar.read_bytes())
    engine.docker("rmi", ref)


def test_import_with_changes_and_message(engine, busybox_tar):
    ref = uniq("bb-changes") + ":v1"
    engine.docker("import",
                  "-c", 'CMD ["/bin/sh", "-c", "echo hi"]',
                  "-c", "ENV A=1 B=two",
                  "-c", 'ENTRYPOINT ["/bin/busybox"]',
                  "-c", "WORKDIR /tmp",
                  "-c", "EXPOSE 8080/tcp 53/udp",
                  "-c", "LABEL k=v other=x",
                  "-c", "USER nobody",
                  "-m", "built by the berth tests",
                  str(busybox_tar), ref)
    info = inspect(engine, ref)
    cfg = info["Config"]
    assert cfg["Cmd"] == ["/bin/sh", "-c", "echo hi"]
    assert cfg["Env"] == ["A=1", "B=two"]
    assert cfg["Entrypoint"] == ["/bin/busybox"]
    assert cfg["WorkingDir"] == "/tmp"
    assert cfg["ExposedPorts"] == {"8080/tcp": {}, "53/udp": {}}
    assert cfg["Labels"] == {"k": "v", "other": "x"}
    assert cfg["User"] == "nobody"
    assert info["Comment"] == "built by the berth tests"
    _, out, _ = engine.docker("history", "--format", "{{.Comment}}", ref)
    assert out.strip() == "built by the berth tests"
    engine.docker("rmi", ref)


def test_import_api_stream(engine, busybox_tar):
    repo = uniq("bb-api")
    r = engine.api("POST", f"/images/create?fromSrc=-&repo={repo}&tag=x",
                   body=busybox_tar.read_bytes(), headers={"Content-Type": "application/x-tar"})
    assert r.status == 200
    assert r.headers["content-type"] == "application/json"
    msgs = r.json_lines()
    assert HEX64.match(msgs[-1]["status"]), msgs
    assert inspect(engine, f"{repo}:x")["Id"] == msgs[-1]["status"]
    engine.docker("rmi", f"{repo}:x")


def test_import_unknown_change_rejected(engine, busybox_tar):
    rc, out, err = engine.docker("import", "-c", "RUN echo no", str(busybox_tar), uniq("bad-change"),
                                 check=False)
    assert rc == 1
    assert err.strip() == "Error response from daemon: run is not a valid change command"


# --------------------------------------------------------------------------- load


@pytest.mark.parametrize("layout,gzip_outer,gzip_layers", [
    ("docker", False, False),
    ("docker", True, False),
    ("oci", False, False),
    ("oci", False, True),
    ("oci", True, True),
])
def test_load_handmade_archive(engine, layout, gzip_outer, gzip_layers):
    ref = uniq(f"handmade-{layout}") + ":v1"
    img, layers = two_layer_image(ref, env=["PATH=/bin", "X=1"], cmd=["/bin/true"], labels={"made": "by-hand"})
    archive = docker_archive([img], layout=layout, gzip_outer=gzip_outer, gzip_layers=gzip_layers)
    out = load(engine, archive)
    assert out == f"Loaded image: {ref}\n"
    info = inspect(engine, ref)
    assert info["Id"] == img.id  # the image ID is the digest of the config, byte for byte
    assert info["RepoTags"] == [ref]
    assert info["RepoDigests"] == []
    assert info["RootFS"] == {"Type": "layers", "Layers": img.diff_ids}
    assert info["Config"]["Cmd"] == ["/bin/true"]
    assert info["Config"]["Env"] == ["PATH=/bin", "X=1"]
    assert info["Config"]["Labels"] == {"made": "by-hand", "test.ref": ref}
    assert info["Architecture"] == "amd64"
    assert info["Os"] == "linux"
    assert info["Created"] == "2024-01-02T03:04:05Z"
    assert info["Size"] == sum(layer_size(layer) for layer in layers)
    engine.docker("rmi", ref)


def test_load_untagged_archive(engine):
    img, _ = two_layer_image("unused:x", labels={"u": uniq()})
    img.repo_tags = []
    out = load(engine, docker_archive([img]))
    assert out == f"Loaded image ID: {img.id}\n"
    info = inspect(engine, img.id)
    assert info["RepoTags"] == []
    engine.docker("rmi", img.id)


def test_load_api_stream(engine):
    ref = uniq("load-api") + ":v1"
    img, _ = two_layer_image(ref)
    r = engine.api("POST", "/images/load?quiet=0", body=docker_archive([img]),
                   headers={"Content-Type": "application/x-tar"})
    assert r.status == 200
    assert r.headers["content-type"] == "application/json"
    msgs = r.json_lines()
    assert {"stream": f"Loaded image: {ref}\n"} in msgs, msgs
    assert not [m for m in msgs if "error" in m]
    engine.docker("rmi", ref)


def test_load_garbage_is_error_in_stream(engine):
    r = engine.api("POST", "/images/load?quiet=1", body=b"this is not a tar archive" * 40,
                   headers={"Content-Type": "application/x-tar"})
    if r.status == 200:
        msgs = r.json_lines()
        errs = [m for m in msgs if "error" in m]
        assert errs, msgs
        assert errs[-1]["errorDetail"]["message"] == errs[-1]["error"]
    else:
        # an engine may also refuse before streaming; it must still be a JSON error
        assert r.status in (400, 500)
        assert r.headers["content-type"] == "application/json"
    rc, _, err = engine.docker("load", input=b"garbage" * 100, check=False)
    assert rc == 1
    assert err.strip()


def test_docker_save_load_roundtrip(engine, busybox):
    ref = uniq("roundtrip") + ":1"
    engine.docker("tag", "busybox:latest", ref)
    p = engine.docker_raw("save", ref)
    assert p.returncode == 0, p.stderr
    archive = p.stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tf:
        names = tf.getnames()
        manifest = json.load(tf.extractfile("manifest.json"))
    assert "manifest.json" in names
    assert manifest[0]["RepoTags"] == [ref]
    engine.docker("rmi", ref)
    assert not image_exists(engine, ref)
    _, out, _ = engine.docker("load", input=archive)
    assert out == f"Loaded image: {ref}\n"
    assert inspect(engine, ref)["Id"] == busybox
    engine.docker("rmi", ref)


def test_save_to_file_and_load_with_i(engine, busybox, tmp_path):
    ref = uniq("savefile") + ":1"
    engine.docker("tag", "busybox", ref)
    path = tmp_path / "img.tar"
    engine.docker("save", "-o", str(path), ref)
    engine.docker("rmi", ref)
    _, out, _ = engine.docker("load", "-i", str(path))
    assert out == f"Loaded image: {ref}\n"
    assert inspect(engine, ref)["Id"] == busybox
    engine.docker("rmi", ref)


def test_save_several_images(engine, tmp_path):
    a_ref, b_ref = uniq("save-a") + ":1", uniq("save-b") + ":2"
    a, _ = two_layer_image(a_ref, labels={"which": "a"})
    b, _ = two_layer_image(b_ref, labels={"which": "b"})  # same layers, different config
    load(engine, docker_archive([a, b]))
    path = tmp_path / "two.tar"
    engine.docker("save", "-o", str(path), a_ref, b_ref)
    with tarfile.open(path) as tf:
        manifest = json.load(tf.extractfile("manifest.json"))
    assert sorted(t for m in manifest for t in m["RepoTags"]) == sorted([a_ref, b_ref])
    engine.docker("rmi", a_ref, b_ref)
    _, out, _ = engine.docker("load", "-i", str(path))
    assert sorted(out.splitlines()) == sorted([f"Loaded image: {a_ref}", f"Loaded image: {b_ref}"])
    assert inspect(engine, a_ref)["Id"] == a.id
    assert inspect(engine, b_ref)["Id"] == b.id
    engine.docker("rmi", a_ref, b_ref)


def test_save_by_api_get(engine, busybox):
    r = engine.api("GET", "/images/busybox:latest/get")
    assert r.status == 200
    with tarfile.open(fileobj=io.BytesIO(r.body)) as tf:
        manifest = json.load(tf.extractfile("manifest.json"))
        config = tf.extractfile(manifest[0]["Config"]).read()
    assert "sha256:" + sha256_hex(config) == busybox
    r = engine.api("GET", "/images/get?names=busybox:latest")
    assert r.status == 200
    r = engine.api("GET", "/images/nope-not-here:latest/get")
    assert r.status == 404


# --------------------------------------------------------------------------- list / inspect / history


def test_docker_images_table(engine, busybox):
    repo = uniq("list")
    engine.docker("tag", "busybox:latest", f"{repo}:v1")
    _, out, _ = engine.docker("images", repo)
    lines = out.splitlines()
    assert lines[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    assert len(lines) == 2
    cols = lines[1].split()
    assert cols[0] == repo and cols[1] == "v1"
    assert cols[2] == busybox.split(":")[1][:12]
    _, out, _ = engine.docker("images", "--no-trunc", "--format", "{{.Repository}}|{{.Tag}}|{{.ID}}", repo)
    assert out == f"{repo}|v1|{busybox}\n"
    engine.docker("rmi", f"{repo}:v1")


def test_images_json_fields(engine, busybox):
    r = engine.api("GET", "/images/json")
    assert r.status == 200
    entries = [i for i in r.json() if i["Id"] == busybox]
    assert len(entries) == 1
    e = entries[0]
    assert "busybox:latest" in e["RepoTags"]
    assert isinstance(e["Created"], int) and e["Created"] > 0
    assert isinstance(e["Size"], int) and e["Size"] > 1_000_000
    for key in ("ParentId", "RepoDigests", "SharedSize", "Labels", "Containers"):
        assert key in e, key


def test_inspect_fields(engine):
    ref = uniq("inspect") + ":v2"
    img, layers = two_layer_image(ref, cmd=["echo", "hello"])
    load(engine, docker_archive([img]))
    info = inspect(engine, ref)
    for key in ("Id", "RepoTags", "RepoDigests", "Parent", "Comment", "Created", "Config",
                "Architecture", "Os", "Size", "RootFS", "Metadata", "GraphDriver"):
        assert key in info, key
    assert info["Id"] == img.id
    assert info["Config"]["Cmd"] == ["echo", "hello"]
    assert info["RootFS"]["Layers"] == img.diff_ids
    # the same image by ID, by short ID and by sha256-less ID
    hexid = img.id.split(":")[1]
    for ref2 in (img.id, hexid, hexid[:12]):
        assert inspect(engine, ref2)["Id"] == img.id
    # docker.io/library/ is the same name
    assert inspect(engine, f"docker.io/library/{ref}")["Id"] == img.id
    engine.docker("rmi", ref)


def test_history(engine):
    ref = uniq("history") + ":v1"
    base = simple_layer("h1", {"a.txt": "x" * 100})
    top = simple_layer("h2", {"b.txt": "y" * 50})
    history = [
        {"created": "2024-01-01T00:00:00Z", "created_by": "/bin/sh -c #(nop) ADD file:a in /"},
        {"created": "2024-01-01T00:00:01Z", "created_by": "/bin/sh -c #(nop)  CMD [\"sh\"]",
         "empty_layer": True},
        {"created": "2024-01-01T00:00:02Z", "created_by": "/bin/sh -c echo y > /b.txt",
         "comment": "second"},
    ]
    img = make_image([base, top], [ref], history=history)
    load(engine, docker_archive([img]))
    _, out, _ = engine.docker("history", "--no-trunc", "--format",
                              "{{.ID}}|{{.CreatedBy}}|{{.Size}}|{{.Comment}}", ref)
    rows = [line.split("|") for line in out.splitlines()]
    assert [r[1] for r in rows] == [h["created_by"] for h in reversed(history)]
    assert rows[0][0] == img.id
    assert rows[1][0] == "<missing>" and rows[2][0] == "<missing>"
    assert [r[2] for r in rows] == ["50B", "0B", "100B"]
    assert rows[0][3] == "second"
    r = engine.api("GET", f"/images/{ref}/history")
    assert r.status == 200
    hist = r.json()
    assert [h["Size"] for h in hist] == [50, 0, 100]
    assert hist[0]["Id"] == img.id
    assert hist[0]["Tags"] == [ref]
    assert hist[0]["Created"] == 1704067202
    engine.docker("rmi", ref)


# --------------------------------------------------------------------------- tag


def test_tag(engine, busybox):
    repo = uniq("tagged")
    engine.docker("tag", "busybox", f"{repo}/sub:1.0")
    engine.docker("tag", busybox.split(":")[1][:12], f"localhost:5000/{repo}:x")
    info = inspect(engine, f"{repo}/sub:1.0")
    assert info["Id"] == busybox
    assert f"{repo}/sub:1.0" in info["RepoTags"]
    assert f"localhost:5000/{repo}:x" in info["RepoTags"]
    assert "busybox:latest" in info["RepoTags"]
    _, out, _ = engine.docker("images", "--format", "{{.Repository}}:{{.Tag}}", f"{repo}/sub")
    assert out == f"{repo}/sub:1.0\n"
    engine.docker("rmi", f"{repo}/sub:1.0", f"localhost:5000/{repo}:x")


def test_tag_api_201(engine, busybox):
    repo = uniq("tagapi")
    r = engine.api("POST", f"/images/busybox:latest/tag?repo={repo}&tag=t1")
    assert r.status == 201
    assert inspect(engine, f"{repo}:t1")["Id"] == busybox
    # retagging moves the tag to another image
    other_ref = uniq("other") + ":1"
    other, _ = two_layer_image(other_ref)
    load(engine, docker_archive([other]))
    r = engine.api("POST", f"/images/{other_ref}/tag?repo={repo}&tag=t1")
    assert r.status == 201
    assert inspect(engine, f"{repo}:t1")["Id"] == other.id
    engine.docker("rmi", f"{repo}:t1", other_ref)


def test_tag_missing_image(engine):
    rc, _, err = engine.docker("tag", "nope-no-such-image:1", "x:y", check=False)
    assert rc == 1
    assert err.strip() == "Error response from daemon: No such image: nope-no-such-image:1"


# --------------------------------------------------------------------------- rmi


def test_rmi_by_tag_untags_only(engine, busybox):
    repo = uniq("rmi-tag")
    engine.docker("tag", "busybox", f"{repo}:1")
    _, out, _ = engine.docker("rmi", f"{repo}:1")
    assert out == f"Untagged: {repo}:1\n"
    assert inspect(engine, "busybox:latest")["Id"] == busybox


def test_rmi_deletes_last_tag(engine):
    ref = uniq("rmi-last") + ":1"
    img, _ = two_layer_image(ref)
    load(engine, docker_archive([img]))
    _, out, _ = engine.docker("rmi", ref)
    lines = out.splitlines()
    assert lines[0] == f"Untagged: {ref}"
    assert f"Deleted: {img.id}" in lines
    assert not image_exists(engine, img.id)


def test_rmi_multiple_tags_by_id_needs_force(engine):
    a, b = uniq("rmi-a") + ":1", uniq("rmi-b") + ":1"
    img, _ = two_layer_image(a)
    load(engine, docker_archive([img]))
    engine.docker("tag", a, b)
    short = img.id.split(":")[1][:12]
    rc, out, err = engine.docker("rmi", short, check=False)
    assert rc == 1
    assert err.strip() == (f"Error response from daemon: conflict: unable to delete {short} (must be forced)"
                           " - image is referenced in multiple repositories")
    r = engine.api("DELETE", f"/images/{short}")
    assert r.status == 409
    assert r.headers["content-type"] == "application/json"
    _, out, _ = engine.docker("rmi", "-f", short)
    lines = out.splitlines()
    assert sorted(lines[:2]) == sorted([f"Untagged: {a}", f"Untagged: {b}"])
    assert f"Deleted: {img.id}" in lines
    assert not image_exists(engine, img.id)


def test_rmi_by_id_prefix(engine):
    ref = uniq("rmi-prefix") + ":1"
    img, _ = two_layer_image(ref)
    load(engine, docker_archive([img]))
    _, out, _ = engine.docker("rmi", img.id.split(":")[1][:8])
    assert f"Deleted: {img.id}" in out.splitlines()


def test_rmi_api_response(engine):
    ref = uniq("rmi-api") + ":1"
    img, _ = two_layer_image(ref)
    load(engine, docker_archive([img]))
    r = engine.api("DELETE", f"/images/{ref}")
    assert r.status == 200
    body = r.json()
    assert body[0] == {"Untagged": ref}
    assert {"Deleted": img.id} in body


def _images_sharing_prefix(tag: str) -> tuple[BuiltImage, BuiltImage, str]:
    """Two images whose IDs share their first two hex digits (found by varying a label)."""
    seen: dict[str, BuiltImage] = {}
    for i in range(5000):
        img, _ = two_layer_image(f"{tag}-{i}:1", labels={"n": str(i), "tag": tag})
        p = img.id.split(":")[1][:2]
        if p in seen:
            return seen[p], img, p
        seen[p] = img
    raise AssertionError("no collision")


def test_rmi_ambiguous_prefix(engine):
    # Docker resolves an ID prefix only when it is unique; an ambiguous one resolves to
    # nothing, so the answer is "No such image" (moby daemon/images GetImage) and both stay.
    a, b, prefix = _images_sharing_prefix(uniq("ambig"))
    load(engine, docker_archive([a, b]))
    rc, _, err = engine.docker("rmi", prefix, check=False)
    assert rc == 1
    assert err.strip() == f"Error response from daemon: No such image: {prefix}:latest"
    assert image_exists(engine, a.id) and image_exists(engine, b.id)
    r = engine.api("GET", f"/images/{prefix}/json")
    assert r.status == 404
    assert r.json()["message"].endswith(f"No such image: {prefix}:latest")
    # one more digit makes it unique again (if it does)
    ha, hb = a.id.split(":")[1], b.id.split(":")[1]
    if ha[:3] != hb[:3]:
        assert inspect(engine, ha[:3])["Id"] == a.id
    engine.docker("rmi", a.repo_tags[0], b.repo_tags[0])


# --------------------------------------------------------------------------- prune, filters


def test_image_prune_dangling(fresh_engine):
    eng = fresh_engine
    ref = uniq("prune") + ":v"
    old, _ = two_layer_image(ref, labels={"gen": "1"})
    new, _ = two_layer_image(ref, labels={"gen": "2"})
    load(eng, docker_archive([old]))
    load(eng, docker_archive([new]))  # takes the tag: `old` is now dangling
    assert inspect(eng, old.id)["RepoTags"] == []
    _, out, _ = eng.docker("images", "-q", "--no-trunc", "--filter", "dangling=true")
    assert old.id in out.split()
    assert new.id not in out.split()
    _, out, _ = eng.docker("images", "--filter", "dangling=true", "--format", "{{.Repository}}:{{.Tag}}")
    assert "<none>:<none>" in out.splitlines()
    _, out, _ = eng.docker("image", "prune", "-f")
    assert out.startswith("Deleted Images:\n")
    assert f"deleted: {old.id}" in out.splitlines()
    assert "Total reclaimed space:" in out
    assert not image_exists(eng, old.id)
    assert inspect(eng, ref)["Id"] == new.id
    eng.docker("rmi", ref)


def test_image_prune_all(fresh_engine, busybox_tar):
    eng = fresh_engine
    a, b = uniq("prune-all-a") + ":1", uniq("prune-all-b") + ":1"
    eng.docker("import", str(busybox_tar), a)
    img, _ = two_layer_image(b)
    load(eng, docker_archive([img]))
    r = eng.api("POST", "/images/prune?filters=" + quote(json.dumps({"dangling": {"false": True}})))
    assert r.status == 200
    body = r.json()
    assert isinstance(body["SpaceReclaimed"], int)
    deleted = [d.get("Deleted") for d in body["ImagesDeleted"]]
    untagged = [d.get("Untagged") for d in body["ImagesDeleted"]]
    assert img.id in deleted
    assert b in untagged and a in untagged
    assert not image_exists(eng, a) and not image_exists(eng, b)
    if not eng.external:
        _, out, _ = eng.docker("images", "-q")
        assert out == ""


def test_image_prune_all_cli(fresh_engine):
    eng = fresh_engine
    ref = uniq("prune-cli") + ":1"
    img, _ = two_layer_image(ref)
    load(eng, docker_archive([img]))
    _, out, _ = eng.docker("image", "prune", "-a", "-f")
    assert f"untagged: {ref}" in out.splitlines()
    assert f"deleted: {img.id}" in out.splitlines()


def test_images_filters(fresh_engine):
    eng = fresh_engine
    tag = uniq("flt")
    a, _ = two_layer_image(f"busy-{tag}-a:1", labels={"k": "v", "t": tag}, created="2020-01-01T00:00:00Z")
    b, _ = two_layer_image(f"busy-{tag}-b:1", labels={"k": "w", "t": tag}, created="2021-01-01T00:00:00Z")
    c, _ = two_layer_image(f"other-{tag}-c:1", labels={"t": tag}, created="2022-01-01T00:00:00Z")
    load(eng, docker_archive([a, b, c]))

    def ls(*filters) -> set[str]:
        args = ["images", "--format", "{{.Repository}}:{{.Tag}}", "--filter", f"label=t={tag}"]
        for f in filters:
            args += ["--filter", f]
        _, out, _ = eng.docker(*args)
        return set(out.split())

    A, B, C = a.repo_tags[0], b.repo_tags[0], c.repo_tags[0]
    assert ls() == {A, B, C}
    assert ls(f"reference=busy-{tag}*") == {A, B}
    assert ls("reference=busy*") == {A, B}
    assert ls(f"reference=*-{tag}-c:1") == {C}
    assert ls("label=k=v") == {A}
    assert ls("label=k") == {A, B}
    assert ls(f"before={B}") == {A}
    assert ls(f"since={B}") == {C}
    assert ls(f"since={A}", f"before={C}") == {B}
    assert ls("dangling=false") == {A, B, C}
    # the positional argument is a reference filter
    _, out, _ = eng.docker("images", "--format", "{{.Repository}}", f"busy-{tag}-a")
    assert out.split() == [f"busy-{tag}-a"]
    # an unknown filter is a 400
    r = eng.api("GET", "/images/json?filters=" + quote(json.dumps({"nope": {"x": True}})))
    assert r.status == 400
    msg = r.json()["message"]
    if eng.external:
        assert msg.lower() == "invalid filter 'nope'"  # dockerd 20.10: "Invalid filter"
    else:
        assert msg == "invalid filter 'nope'"
    eng.docker("rmi", A, B, C)


# --------------------------------------------------------------------------- docker-py


def test_dockerpy_images(client, engine):
    ref = uniq("dpy") + ":v1"
    img, _ = two_layer_image(ref)
    loaded = client.images.load(docker_archive([img]))
    assert [i.id for i in loaded] == [img.id]
    assert loaded[0].tags == [ref]
    listed = client.images.list(name=ref.split(":")[0])
    assert [i.id for i in listed] == [img.id]
    got = client.images.get(ref)
    assert got.id == img.id
    assert got.attrs["RootFS"]["Layers"] == img.diff_ids
    assert client.api.tag(ref, ref.split(":")[0], "v2") is True
    assert sorted(client.images.get(img.id).tags) == sorted([ref, ref.split(":")[0] + ":v2"])
    client.images.remove(ref.split(":")[0] + ":v2")
    assert client.images.get(img.id).tags == [ref]
    # an image saved by docker-py loads back with the same id
    data = b"".join(got.save(named=True))
    client.images.remove(ref)
    with pytest.raises(docker.errors.ImageNotFound):
        client.images.get(ref)
    assert [i.id for i in client.images.load(data)] == [img.id]
    client.images.remove(img.id, force=True)


def test_dockerpy_not_found(client):
    with pytest.raises(docker.errors.ImageNotFound) as exc:
        client.images.get("nope-not-here:latest")
    assert exc.value.response.status_code == 404
    assert "No such image: nope-not-here:latest" in str(exc.value)
