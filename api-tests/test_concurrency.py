"""Many clients at once: 50 parallel loads and tags, every answer right, the store intact."""

from __future__ import annotations

import json
import sqlite3
import threading
import uuid
from urllib.parse import quote

import pytest

from helpers import docker_archive, make_image, simple_layer

CLIENTS = 50
ARCHIVES = 5


def build_archives(prefix: str):
    # all images share a base layer, so parallel loads race on the same layer too
    base = simple_layer("base", {"etc/shared.txt": "shared base layer\n" * 100})
    images = []
    for k in range(ARCHIVES):
        top = simple_layer(f"top{k}", {f"etc/top{k}.txt": f"image {k}\n" * (k + 1)})
        images.append(make_image([base, top], [f"{prefix}-src{k}:latest"], labels={"k": str(k)}))
    return images, [docker_archive([img]) for img in images]


def run_clients(eng, prefix: str) -> tuple[list, dict]:
    images, archives = build_archives(prefix)
    barrier = threading.Barrier(CLIENTS, timeout=60)
    failures: list[str] = []
    lock = threading.Lock()

    def client(i: int):
        k = i % ARCHIVES
        src = images[k].repo_tags[0]
        try:
            barrier.wait()
            r = eng.api("POST", "/images/load?quiet=1", body=archives[k],
                        headers={"Content-Type": "application/x-tar"}, timeout=180)
            assert r.status == 200, (r.status, r.body)
            msgs = r.json_lines()
            assert not [m for m in msgs if "error" in m], msgs
            assert {"stream": f"Loaded image: {src}\n"} in msgs, msgs
            r = eng.api("POST", f"/images/{quote(src)}/tag?repo={prefix}-img{i}&tag=v", timeout=180)
            assert r.status == 201, (r.status, r.body)
            r = eng.api("GET", f"/images/{prefix}-img{i}:v/json", timeout=180)
            assert r.status == 200, (r.status, r.body)
            assert r.json()["Id"] == images[k].id
        except Exception as e:  # noqa: BLE001 - every client's failure is reported
            with lock:
                failures.append(f"client {i}: {e!r}")

    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not [t for t in threads if t.is_alive()], "clients still running"
    return failures, {f"{prefix}-img{i}:v": images[i % ARCHIVES].id for i in range(CLIENTS)}


def check_result(eng, prefix: str, failures: list, expected: dict):
    assert not failures, "\n".join(failures[:10]) + f"\n({len(failures)} failures)\n" + eng.log_tail()
    _, out, _ = eng.docker("images", "--no-trunc", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}",
                           "--filter", f"reference={prefix}-img*")
    listed = dict(line.split() for line in out.splitlines())
    assert listed == expected
    if eng.external:
        return
    _, out, _ = eng.docker("info", "--format", "{{.Images}}")
    assert int(out) == ARCHIVES
    db = eng.data_root / "berth.db"
    assert db.exists()
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        assert con.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert con.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal"
    finally:
        con.close()


def test_parallel_load_and_tag_accept_no(fresh_engine):
    prefix = f"conc-{uuid.uuid4().hex[:6]}"
    failures, expected = run_clients(fresh_engine, prefix)
    check_result(fresh_engine, prefix, failures, expected)
    if fresh_engine.external:
        tags = list(expected) + [f"{prefix}-src{k}:latest" for k in range(ARCHIVES)]
        fresh_engine.docker("rmi", *tags)


@pytest.mark.berth_only
def test_parallel_load_and_tag_accept_yes(engine_factory):
    """The same with a berth process per connection: up to 150 processes share the store."""
    eng = engine_factory("accept")
    prefix = f"conc-{uuid.uuid4().hex[:6]}"
    failures, expected = run_clients(eng, prefix)
    check_result(eng, prefix, failures, expected)


def test_parallel_tags_of_one_name_converge(fresh_engine):
    """50 clients racing to move one tag: all succeed and the tag ends on one of them."""
    eng = fresh_engine
    prefix = f"race-{uuid.uuid4().hex[:6]}"
    images, archives = build_archives(prefix)
    for archive in archives:
        eng.docker("load", input=archive)
    barrier = threading.Barrier(CLIENTS, timeout=60)
    statuses: list[int] = []
    lock = threading.Lock()

    def client(i):
        barrier.wait()
        src = images[i % ARCHIVES].repo_tags[0]
        r = eng.api("POST", f"/images/{quote(src)}/tag?repo={prefix}-shared&tag=v", timeout=120)
        with lock:
            statuses.append(r.status)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=180)
    assert statuses == [201] * CLIENTS
    _, out, _ = eng.docker("images", "--no-trunc", "--format", "{{.ID}}", f"{prefix}-shared")
    assert out.strip() in {img.id for img in images}
    r = eng.api("GET", "/images/json?filters=" + quote(json.dumps({"reference": {f"{prefix}-shared": True}})))
    assert len(r.json()) == 1
    if eng.external:
        eng.docker("rmi", f"{prefix}-shared:v", *[img.repo_tags[0] for img in images])
