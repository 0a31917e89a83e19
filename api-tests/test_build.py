"""Dockerfile builds through `POST /build` (the legacy builder): the docker CLI 28 without buildx
and docker-py. Multi-stage with ARG, COPY --from, RUN heredocs, USER and HEALTHCHECK; the cache
(all cached on a rebuild, a changed file rebuilds from its step); failing RUN; parse errors
as HTTP errors; and hostile contexts that must not reach host files."""

from __future__ import annotations

import io
import json
import tarfile
import uuid

import docker
import pytest

from helpers import tar_bytes

pytestmark = pytest.mark.usefixtures("busybox")

LEGACY = {"DOCKER_BUILDKIT": "0"}

APP = """\
ARG BASE=busybox
FROM ${BASE} AS build
ARG GREETING=hi
RUN <<EOT
mkdir -p /out
echo "$GREETING from heredoc" > /out/greeting
EOT
RUN cat <<EOF > /out/second
second file
EOF
COPY msg.txt /out/
FROM busybox
LABEL org.example=demo
ENV APP_HOME=/app
WORKDIR $APP_HOME
COPY --from=build /out/ ./
COPY --chown=1000:1000 conf ./conf
RUN echo "app:x:1000:1000::/app:/bin/sh" >> /etc/passwd
USER app
HEALTHCHECK --interval=5s CMD test -f /app/greeting
EXPOSE 8080
CMD ["sh", "-c", "cat /app/greeting /app/second /app/msg.txt; id -u; ls -ln /app/conf"]
"""


def name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def app_dir(tmp_path):
    (tmp_path / "Dockerfile").write_text(APP)
    (tmp_path / "msg.txt").write_text("msg v1\n")
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "app.conf").write_text("k=v\n")
    return tmp_path


def build(engine, path, *args, check=True):
    return engine.docker("build", "--network", "none", *args, str(path), check=check, env=LEGACY, timeout=300)


def steps_cached(output: str) -> list[int]:
    """The step numbers answered from the cache."""
    cached, current = [], 0
    for line in output.splitlines():
        if line.startswith("Step "):
            current = int(line.split()[1].split("/")[0])
        elif line.strip() == "---> Using cache":
            cached.append(current)
    return cached


def test_cli_multi_stage_build_run_and_cache(engine, app_dir):
    tag = name("my-app")
    _, out, _ = build(engine, app_dir, "-t", tag, "--build-arg", "GREETING=hello")
    assert "Step 1/17 : ARG BASE=busybox" in out
    assert "Step 2/17 : FROM ${BASE} AS build" in out
    assert "Step 4/17 : RUN <<EOT" in out
    assert " ---> Running in " in out
    assert f"Successfully tagged {tag}:latest" in out
    assert steps_cached(out) == []
    first_id = out.split("Successfully built ")[1][:12]
    _, out, _ = engine.docker("run", "--rm", "--network", "none", tag)
    lines = out.splitlines()
    assert lines[:4] == ["hello from heredoc", "second file", "msg v1", "1000"]
    assert any(" 1000 " in l and "app.conf" in l for l in lines), out
    info = json.loads(engine.docker("image", "inspect", tag)[1])[0]
    cfg = info["Config"]
    assert cfg["User"] == "app" and cfg["WorkingDir"] == "/app"
    assert cfg["Healthcheck"]["Test"] == ["CMD-SHELL", "test -f /app/greeting"]
    assert cfg["Healthcheck"]["Interval"] == 5_000_000_000
    assert cfg["Labels"] == {"org.example": "demo"}
    assert "8080/tcp" in cfg["ExposedPorts"]
    assert "APP_HOME=/app" in cfg["Env"]
    # The second build is all cache (every step after each FROM).
    _, out2, _ = build(engine, app_dir, "-t", tag, "--build-arg", "GREETING=hello")
    assert steps_cached(out2) == [3, 4, 5, 6, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17]
    assert out2.split("Successfully built ")[1][:12] == first_id
    # Changing one copied file rebuilds from that step on (in both stages that depend on it).
    (app_dir / "msg.txt").write_text("msg v2\n")
    _, out3, _ = build(engine, app_dir, "-t", tag, "--build-arg", "GREETING=hello")
    assert steps_cached(out3) == [3, 4, 5, 8, 9, 10]
    _, out, _ = engine.docker("run", "--rm", "--network", "none", tag)
    assert out.splitlines()[2] == "msg v2"
    # Another build arg value misses the cache for the RUN that sees it.
    _, out4, _ = build(engine, app_dir, "-t", tag, "--build-arg", "GREETING=bonjour")
    assert 4 not in steps_cached(out4) and 3 in steps_cached(out4)
    _, hist, _ = engine.docker("history", "--no-trunc", "--format", "{{.CreatedBy}}", tag)
    assert hist.splitlines()[0] == '/bin/sh -c #(nop)  CMD ["sh" "-c" "cat /app/greeting /app/second /app/msg.txt; id -u; ls -ln /app/conf"]'
    assert any(l.startswith("/bin/sh -c #(nop) COPY --chown=1000:1000 dir:") for l in hist.splitlines())
    engine.docker("rmi", tag)


def test_nocache_quiet_labels_and_target(engine, app_dir):
    tag = name("quiet")
    _, out, _ = build(engine, app_dir, "-q", "--no-cache", "--target", "build", "--label", "via=cli", "-t", tag)
    assert out.strip().startswith("sha256:") and len(out.strip()) == 71
    info = json.loads(engine.docker("image", "inspect", tag)[1])[0]
    assert info["Id"] == out.strip()
    assert info["Config"]["Labels"] == {"via": "cli"}
    _, out, _ = engine.docker("run", "--rm", "--network", "none", tag, "cat", "/out/greeting")
    assert out == "hi from heredoc\n"
    engine.docker("rmi", tag)


def test_default_network_build_and_rm(engine, tmp_path):
    # RUN on the default bridge; the intermediate containers are removed (rm is the default).
    (tmp_path / "Dockerfile").write_text("FROM busybox\nRUN test -e /sys/class/net/eth0 && echo networked\n")
    before = set(engine.docker("ps", "-aq")[1].split())
    tag = name("net")
    _, out, _ = engine.docker("build", "-t", tag, str(tmp_path), env=LEGACY, timeout=300)
    assert "networked" in out and " ---> Removed intermediate container " in out
    assert set(engine.docker("ps", "-aq")[1].split()) == before
    engine.docker("rmi", tag)


def test_docker_py_build_buildargs_and_build_error(engine, client, app_dir, tmp_path):
    tag = name("pyapp")
    img, logs = client.images.build(path=str(app_dir), tag=tag, buildargs={"GREETING": "py"},
                                    network_mode="none", rm=True)
    logs = list(logs)
    assert any("Successfully built" in l.get("stream", "") for l in logs)
    assert any("aux" in l and l["aux"]["ID"] == img.id for l in logs)
    assert f"{tag}:latest" in img.tags
    out = client.containers.run(img.id, ["cat", "/app/greeting"], remove=True, network_mode="none")
    assert out == b"py from heredoc\n"
    client.images.remove(tag)
    fail = tmp_path / "fail"
    fail.mkdir()
    (fail / "Dockerfile").write_text("FROM busybox\nRUN echo before-fail && exit 3\n")
    with pytest.raises(docker.errors.BuildError) as e:
        client.images.build(path=str(fail), network_mode="none", forcerm=True)
    assert str(e.value) == "The command '/bin/sh -c echo before-fail && exit 3' returned a non-zero code: 3"
    log = list(e.value.build_log)
    assert any(l.get("stream") == "before-fail\n" for l in log)
    assert log[-1]["errorDetail"] == {"code": 3, "message": str(e.value)}
    assert any("Removed intermediate container" in l.get("stream", "") for l in log)


def context(files: dict) -> bytes:
    entries = []
    for n, v in files.items():
        if isinstance(v, dict):
            entries.append({"name": n, **v})
        else:
            entries.append({"name": n, "data": v})
    return tar_bytes(entries)


def post_build(engine, ctx: bytes, query: str = ""):
    return engine.api("POST", f"/build?networkmode=none{query}", body=ctx,
                      headers={"Content-Type": "application/x-tar"}, timeout=300)


def test_errors_before_streaming_are_http_errors(engine):
    r = post_build(engine, context({"x": b"1"}), "&dockerfile=Nope")
    assert r.status == 500 and r.json()["message"] == "Cannot locate specified Dockerfile: Nope"
    r = post_build(engine, context({"Dockerfile": b"FROM busybox\nFOO bar\n"}))
    assert r.status == 400 and "unknown instruction: FOO" in r.json()["message"]
    r = post_build(engine, context({"Dockerfile": b"FROM busybox\n"}), "&target=nope")
    assert r.status == 400 and r.json()["message"] == 'target stage "nope" could not be found'
    r = post_build(engine, context({"Dockerfile": b"FROM busybox\n"}), "&buildargs=notjson")
    assert r.status == 400 and r.json()["message"].startswith("error reading build args:")
    r = post_build(engine, context({"Dockerfile": b"FROM busybox\n"}), "&version=2")
    assert r.status == 501
    r = post_build(engine, context({"Dockerfile": b"FROM busybox\nRUN --mount=type=cache,target=/x true\n"}))
    assert r.status == 200
    last = r.json_lines()[-1]
    assert last["error"].startswith("the --mount option requires BuildKit")


def test_copy_globs_chmod_add_archive_and_workdir(engine, tmp_path):
    inner = io.BytesIO()
    with tarfile.open(fileobj=inner, mode="w:gz") as t:
        data = b"from the archive\n"
        info = tarfile.TarInfo("pkg/readme")
        info.size = len(data)
        t.addfile(info, io.BytesIO(data))
    df = (b"FROM busybox\nWORKDIR /w\nCOPY *.txt ./\nCOPY --chmod=0700 run.sh /bin/\n"
          b"ADD pkg.tar.gz /opt/\nCOPY <<EOF /etc/motd\nhello $HOSTNAME_X\nEOF\n"
          b"ENV HOSTNAME_X=h\nCMD ls /w\n")
    ctx = context({"Dockerfile": df, "a.txt": b"a", "b.txt": b"b", "c.md": b"c", "run.sh": b"#!/bin/sh\necho ran\n",
                   "pkg.tar.gz": inner.getvalue()})
    tag = name("globs")
    r = post_build(engine, ctx, f"&t={tag}")
    assert r.status == 200
    lines = r.json_lines()
    assert not any("error" in l for l in lines), lines
    _, out, _ = engine.docker("run", "--rm", "--network", "none", tag)
    assert out.split() == ["a.txt", "b.txt"]
    _, out, _ = engine.docker("run", "--rm", "--network", "none", tag, "sh", "-c",
                              "stat -c %a /bin/run.sh; run.sh; cat /opt/pkg/readme /etc/motd")
    assert out == "700\nran\nfrom the archive\nhello \n"
    engine.docker("rmi", tag)
    r = post_build(engine, context({"Dockerfile": b"FROM busybox\nCOPY a.txt b.txt /nodir\n", "a.txt": b"a", "b.txt": b"b"}))
    assert r.json_lines()[-1]["error"] == (
        "When using COPY with more than one source file, the destination must be a directory and end with a /")
    r = post_build(engine, context({"Dockerfile": b"FROM busybox\nCOPY missing /x\n"}))
    assert r.json_lines()[-1]["error"] == (
        "COPY failed: file not found in build context or excluded by .dockerignore: stat missing: file does not exist")


def test_hostile_contexts(engine):
    # A symlink in the context to a host file resolves inside the context: not found there.
    ctx = context({"Dockerfile": b"FROM busybox\nCOPY pw /pw\n", "pw": {"type": "symlink", "target": "/etc/shadow"}})
    r = post_build(engine, ctx)
    assert r.json_lines()[-1]["error"].startswith("COPY failed: file not found in build context"), r.body
    ctx = context({"Dockerfile": b"FROM busybox\nCOPY up/etc/shadow /x\n", "up": {"type": "symlink", "target": "../../../../.."}})
    r = post_build(engine, ctx)
    assert "COPY failed" in r.json_lines()[-1]["error"], r.body
    # Entries climbing out of the context are refused before the build starts.
    ctx = tar_bytes([{"name": "Dockerfile", "data": b"FROM busybox\n"}, {"name": "../../../../tmp/berth-escape", "data": b"x"}])
    r = post_build(engine, ctx)
    assert r.status == 400, r.body
    import os
    assert not os.path.exists("/tmp/berth-escape")


def test_more_instructions(engine, tmp_path, busybox):
    # A base with ONBUILD triggers, then SHELL, ENTRYPOINT, VOLUME, STOPSIGNAL, MAINTAINER,
    # exec-form RUN, a `#!` here-document, COPY --from an image, and a scratch stage.
    base = name("onbuild-base")
    (tmp_path / "base").mkdir()
    (tmp_path / "base" / "Dockerfile").write_text(
        "FROM busybox\nONBUILD RUN echo triggered > /triggered\nONBUILD COPY note.txt /note.txt\n")
    build(engine, tmp_path / "base", "-t", base)
    app = tmp_path / "app"
    app.mkdir()
    (app / "note.txt").write_text("a note\n")
    (app / "Dockerfile").write_text(f"""\
FROM scratch AS files
COPY note.txt /from-scratch.txt
FROM {base}
MAINTAINER someone@example.com
SHELL ["/bin/sh", "-ec"]
RUN ["/bin/sh", "-c", "echo exec-form > /exec"]
RUN <<EOT
#!/bin/sh
echo "run by $0" > /shebang
EOT
COPY --from=files /from-scratch.txt /
COPY --from=busybox /bin/busybox /copied-busybox
VOLUME /data
STOPSIGNAL SIGINT
ENTRYPOINT ["/bin/sh", "-c"]
CMD ["cat /triggered /note.txt /exec /shebang /from-scratch.txt; test -x /copied-busybox && echo copied"]
""")
    tag = name("more")
    _, out, _ = build(engine, app, "-t", tag)
    assert "# Executing 2 build triggers" in out
    _, out, _ = engine.docker("run", "--rm", "--network", "none", tag)
    assert out == "triggered\na note\nexec-form\nrun by /dev/pipes/EOT\na note\ncopied\n"
    info = json.loads(engine.docker("image", "inspect", tag)[1])[0]
    cfg = info["Config"]
    assert cfg["Shell"] == ["/bin/sh", "-ec"]
    assert cfg["Entrypoint"] == ["/bin/sh", "-c"]
    assert cfg["Volumes"] == {"/data": {}}
    assert cfg["StopSignal"] == "SIGINT"
    assert cfg.get("OnBuild") in (None, [])
    assert info["Author"] == "someone@example.com"
    base_cfg = json.loads(engine.docker("image", "inspect", base)[1])[0]["Config"]
    assert base_cfg["OnBuild"] == ["RUN echo triggered > /triggered", "COPY note.txt /note.txt"]
    engine.docker("rmi", tag, base)


def test_fifo_in_context_does_not_hang(engine):
    ctx = io.BytesIO()
    with tarfile.open(fileobj=ctx, mode="w") as t:
        df = b"FROM busybox\nCOPY . /ctx/\nRUN test -p /ctx/pipe && echo is-fifo\n"
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(df)
        t.addfile(info, io.BytesIO(df))
        fifo = tarfile.TarInfo("pipe")
        fifo.type = tarfile.FIFOTYPE
        t.addfile(fifo)
    r = post_build(engine, ctx.getvalue())
    lines = r.json_lines()
    assert not any("error" in l for l in lines), lines
    assert any(l.get("stream") == "is-fifo\n" for l in lines)


def test_cache_from_a_loaded_image(engine, tmp_path):
    # A loaded (or pulled) image has no intermediate images: --cache-from restores the steps
    # from its history, as moby does; without it nothing is cached.
    (tmp_path / "Dockerfile").write_text(
        "FROM busybox\nENV STAGE=one\nCOPY f.txt /f.txt\nRUN echo built > /built\nCMD [\"cat\", \"/built\"]\n")
    (tmp_path / "f.txt").write_text("f\n")
    tag = name("cachesrc")
    build(engine, tmp_path, "-t", tag)
    saved = engine.docker_raw("save", tag)
    assert saved.returncode == 0, saved.stderr
    engine.docker("rmi", tag)
    loaded = engine.docker_raw("load", input=saved.stdout)
    assert loaded.returncode == 0, loaded.stderr
    _, out, _ = build(engine, tmp_path, "--cache-from", tag, "-t", name("cached"))
    assert steps_cached(out) == [2, 3, 4, 5], out
    _, out2, _ = build(engine, tmp_path, "--no-cache", "-t", name("uncached"))
    assert steps_cached(out2) == []
    (tmp_path / "f.txt").write_text("changed\n")
    _, out3, _ = build(engine, tmp_path, "--cache-from", tag)
    assert steps_cached(out3) == [2], out3


def read_until_run_began(resp):
    """Read the build stream up to the RUN's own output (not its Step line): the RUN's
    container is then running."""
    seen = b""
    while b'"stream":"run-began\\n"' not in seen:
        chunk = resp.read1(4096)
        assert chunk, seen
        seen += chunk


def test_client_that_leaves_mid_run_stops_the_build(engine):
    # The client disconnects while a RUN is running: the build stops and its container goes.
    from helpers import UnixHTTPConnection
    before = set(engine.docker("ps", "-aq", "--no-trunc")[1].split())
    ctx = context({"Dockerfile": b"FROM busybox\nRUN echo run-began && sleep 60\nRUN echo never\n"})
    conn = UnixHTTPConnection(engine.sock, timeout=30)
    conn.request("POST", "/build?networkmode=none", body=ctx, headers={"Content-Type": "application/x-tar"})
    resp = conn.getresponse()
    read_until_run_began(resp)
    conn.close()
    from helpers import wait_until
    assert wait_until(lambda: set(engine.docker("ps", "-aq", "--no-trunc")[1].split()) == before, timeout=20), \
        engine.docker("ps", "-a")[1]


@pytest.mark.berth_only
def test_killed_serve_mid_build_leaves_only_whole_images(fresh_engine, busybox_tar):
    import os
    import signal
    from conftest import import_busybox
    from helpers import UnixHTTPConnection, serve_pids, wait_until
    eng = fresh_engine
    import_busybox(eng, busybox_tar)
    ctx = context({"Dockerfile": b"FROM busybox\nCOPY a.txt /a.txt\nRUN echo run-began && sleep 3\n", "a.txt": b"a"})
    conn = UnixHTTPConnection(eng.sock, timeout=30)
    conn.request("POST", "/build?networkmode=none&t=halfway", body=ctx, headers={"Content-Type": "application/x-tar"})
    resp = conn.getresponse()
    read_until_run_began(resp)
    pids = serve_pids(eng.data_root)
    assert pids
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    conn.close()
    # Every image listed is whole: it runs. The build's tag was never set.
    _, out, _ = eng.docker("images", "-aq", "--no-trunc")
    ids = out.split()
    assert len(ids) >= 2  # busybox and the COPY step
    for i in ids:
        eng.docker("run", "--rm", "--network", "none", i, "true")
    rc, _, _ = eng.docker("image", "inspect", "halfway", check=False)
    assert rc != 0
    # The RUN container outlived the API process (as every container does) and can be removed.
    assert wait_until(lambda: "Exited" in eng.docker("ps", "-a", "--format", "{{.Status}}")[1], timeout=20), \
        eng.docker("ps", "-a")[1]
    for c in eng.docker("ps", "-aq")[1].split():
        eng.docker("rm", "-f", c)


def test_add_from_url(engine, tmp_path):
    import http.server
    import threading
    served = tmp_path / "www"
    served.mkdir()
    (served / "remote.txt").write_text("fetched over http\n")

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=str(served), **kw)

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{srv.server_address[1]}"
        df = (f"FROM busybox\nADD {base}/remote.txt /srv/\nADD {base}/remote.txt /renamed\n"
              f"CMD [\"sh\", \"-c\", \"cat /srv/remote.txt /renamed; stat -c %a /renamed\"]\n").encode()
        tag = name("addurl")
        r = post_build(engine, context({"Dockerfile": df}), f"&t={tag}")
        lines = r.json_lines()
        assert not any("error" in l for l in lines), lines
        _, out, _ = engine.docker("run", "--rm", "--network", "none", tag)
        assert out == "fetched over http\nfetched over http\n600\n"
        # The content is part of the cache key: a change on the server rebuilds the step.
        (served / "remote.txt").write_text("changed on the server\n")
        r = post_build(engine, context({"Dockerfile": df}), f"&t={tag}")
        assert not any(l.get("stream") == " ---> Using cache\n" for l in r.json_lines())
        _, out, _ = engine.docker("run", "--rm", "--network", "none", tag, "cat", "/renamed")
        assert out == "changed on the server\n"
        r = post_build(engine, context({"Dockerfile": f"FROM busybox\nADD {base}/missing /x\n".encode()}))
        assert r.json_lines()[-1]["error"].startswith(f"failed to GET {base}/missing with status 404")
        engine.docker("rmi", tag)
    finally:
        srv.shutdown()


def test_dockerignore_drops_the_dockerfile_docker_py_sends(client, tmp_path):
    # docker-py sends a Dockerfile from outside the context as `.dockerfile.<hex>`, with a
    # `.dockerignore` naming it: the daemon removes both from the context (moby's rule).
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "file.txt").write_text("hello")
    (ctx / ".dockerignore").write_text(".dockerignore\n")
    df = tmp_path / "elsewhere" / "Dockerfile"
    df.parent.mkdir()
    df.write_text("FROM busybox\nCOPY . /src\nWORKDIR /src\n")
    img, _ = client.images.build(path=str(ctx), dockerfile=str(df), network_mode="none")
    out = client.containers.run(img.id, ["ls", "-a"], remove=True, network_mode="none")
    assert out.split() == [b".", b"..", b"file.txt"]
    client.images.remove(img.id)
