"""Hardening: absurd numbers, stuck clients, unread bodies, security options berth cannot
apply, unsupported features refused, and data and run roots that host users cannot enter."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import time
import uuid

import pytest

from conftest import import_busybox
from helpers import serve_pids, wait_until

pytestmark = pytest.mark.usefixtures("busybox")

I64_MAX = 9223372036854775807


def name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


# ------------------------------------------------------------------ numbers from clients

def test_stop_with_the_largest_timeout_stops_without_a_500(engine):
    n = name("bigstop")
    # PID 1 that exits on SIGTERM: the huge grace period is never waited out.
    engine.docker("run", "-d", "--name", n, "busybox", "sh", "-c",
                  "trap 'exit 0' TERM; while :; do sleep 1; done")
    try:
        r = engine.api("POST", f"/containers/{n}/stop?t={I64_MAX}", timeout=30)
        assert r.status == 204, r.body
        st = engine.client().api.inspect_container(n)["State"]
        assert st["Running"] is False
    finally:
        engine.docker("rm", "-f", n, check=False)


@pytest.mark.parametrize("query", [
    "stop?t=99999999999999999999",
    "restart?t=-99999999999999999999",
    "kill?signal=99999999999999999999",
])
def test_out_of_range_numbers_are_400(engine, query):
    n = name("nums")
    engine.docker("create", "--name", n, "busybox", "true")
    try:
        r = engine.api("POST", f"/containers/{n}/{query}")
        assert r.status == 400, (r.status, r.body)
        assert r.json()["message"]
    finally:
        engine.docker("rm", "-f", n, check=False)


@pytest.mark.parametrize("query,status", [
    (f"tail={I64_MAX}", 200),
    ("tail=99999999999999999999", 200),
    ("since=99999999999999999999", 400),
    ("until=-9223372036854775808", 400),
    ("since=1e308", 400),
])
def test_log_numbers(engine, query, status):
    n = name("lognums")
    engine.docker("run", "--name", n, "busybox", "echo", "hello")
    try:
        r = engine.api("GET", f"/containers/{n}/logs?stdout=1&{query}")
        assert r.status == status, (r.status, r.body)
        if status == 200:
            assert r.body.endswith(b"hello\n")
    finally:
        engine.docker("rm", "-f", n, check=False)


def test_list_limit_out_of_range_is_400(engine):
    r = engine.api("GET", "/containers/json?limit=99999999999999999999")
    assert r.status == 400, r.body


def test_integers_that_do_not_fit_are_refused_at_create(engine):
    for field, value in [("Memory", 1e30), ("ShmSize", 1.5), ("PidsLimit", 18446744073709551615)]:
        body = {"Image": "busybox", "Cmd": ["true"], "HostConfig": {field: value}}
        r = engine.api("POST", "/containers/create", body=json.dumps(body),
                       headers={"Content-Type": "application/json"})
        assert r.status == 400, (field, r.status, r.body)
        assert "cannot unmarshal number" in r.json()["message"], r.body
    body = {"Image": "busybox", "Cmd": ["true"], "StopTimeout": 1e40}
    r = engine.api("POST", "/containers/create", body=json.dumps(body),
                   headers={"Content-Type": "application/json"})
    assert r.status == 400 and "StopTimeout" in r.json()["message"], r.body


def test_fields_of_the_wrong_type_are_refused_at_create(engine):
    # Docker decodes the body into typed structs: a wrong type is a 400 with Go's text, and
    # nothing is created (berth used to store such values and trip over them later).
    before = len(engine.client().api.containers(all=True))
    for body, text in [
        ({"Image": "busybox", "Cmd": ["true"], "HostConfig": {"Privileged": "yes"}},
         "json: cannot unmarshal string into Go struct field HostConfig.Privileged of type bool"),
        ({"Image": "busybox", "Cmd": ["true"], "Env": "A=1"},
         "json: cannot unmarshal string into Go struct field Config.Env of type []string"),
        ({"Image": "busybox", "Cmd": ["true"], "HostConfig": {"Binds": [5]}},
         "json: cannot unmarshal number into Go struct field HostConfig.Binds of type string"),
        ({"Image": "busybox", "Cmd": ["true"], "HostConfig": {"BlkioWeight": 70000}},
         "json: cannot unmarshal number into Go struct field HostConfig.BlkioWeight of type uint16"),
    ]:
        r = engine.api("POST", "/containers/create", body=json.dumps(body),
                       headers={"Content-Type": "application/json"})
        assert r.status == 400, (body, r.status, r.body)
        assert r.json()["message"].startswith(text), (body, r.body)
    assert len(engine.client().api.containers(all=True)) == before


def test_a_string_command_is_one_argument(engine):
    # moby's StrSlice: "Cmd": "echo hi" is ["echo hi"], the way Docker runs it.
    body = {"Image": "busybox", "Entrypoint": "/bin/echo", "Cmd": "hi there"}
    r = engine.api("POST", "/containers/create", body=json.dumps(body),
                   headers={"Content-Type": "application/json"})
    assert r.status == 201, r.body
    cid = r.json()["Id"]
    try:
        info = engine.client().api.inspect_container(cid)
        assert info["Config"]["Cmd"] == ["hi there"]
        assert info["Config"]["Entrypoint"] == ["/bin/echo"]
        assert (info["Path"], info["Args"]) == ("/bin/echo", ["hi there"])
        engine.docker("start", "-a", cid)
        assert engine.docker("logs", cid)[1] == "hi there\n"
    finally:
        engine.docker("rm", "-f", cid, check=False)


def test_largest_memory_limit_starts_without_a_panic(engine):
    api = engine.client().api
    c = api.create_container("busybox", ["true"],
                             host_config=api.create_host_config(mem_limit=I64_MAX))
    try:
        r = engine.api("POST", f"/containers/{c['Id']}/start")
        # runc may take it or refuse it; a client mistake is never an internal panic.
        assert "panicked" not in r.body.decode(errors="replace"), r.body
        assert r.status in (204, 400), (r.status, r.body)
    finally:
        api.remove_container(c["Id"], force=True)


# ------------------------------------------------------------------ stuck and early clients

@pytest.mark.berth_only
def test_quiet_connections_are_closed_and_serve_exits(engine_factory, busybox_tar):
    eng = engine_factory("listen",
                         serve_args=lambda e: e.serve_args(1) + ["--header-timeout", "2"])
    import_busybox(eng, busybox_tar)
    partial = socket.socket(socket.AF_UNIX)
    silent = socket.socket(socket.AF_UNIX)
    try:
        partial.connect(eng.sock)
        partial.sendall(b"GET /_ping HTTP/1.1\r\nHost: x\r\n")
        silent.connect(eng.sock)
        t0 = time.monotonic()
        for s in (partial, silent):
            s.settimeout(15)
            # The server gives up on the headers: EOF (or a 408 then EOF), not a hang.
            data = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
            assert b"200 OK" not in data, data
        assert time.monotonic() - t0 < 12
        # Nothing keeps the Accept=no process: it exits after its idle timeout.
        assert wait_until(lambda: not serve_pids(eng.data_root), 10), serve_pids(eng.data_root)
    finally:
        partial.close()
        silent.close()
    # A streaming request is not cut by the header timeout.
    n = name("slowlogs")
    eng.docker("run", "-d", "--name", n, "busybox", "sh", "-c", "sleep 4; echo late")
    rc, out, _ = eng.docker("logs", "-f", n, timeout=30)
    assert out == "late\n"
    eng.docker("rm", "-f", n)


@pytest.mark.berth_only
def test_unknown_routes_answer_after_reading_the_body(engine_factory):
    """`docker volume create` used to end in `write: broken pipe` (Accept=yes exits at once)."""
    eng = engine_factory("accept")
    for i in range(10):
        rc, _, err = eng.docker("plugin", "install", f"p{i}", check=False)
        assert rc != 0
        assert "broken pipe" not in err and "Error response from daemon" in err, err
    big = b'{"Name":"v","Labels":{"x":"' + b"y" * (2 << 20) + b'"}}'
    r = eng.api("POST", "/nosuch/create", body=big, headers={"Content-Type": "application/json"})
    assert r.status == 404 and r.json()["message"] == "page not found"
    r = eng.api("POST", "/v9.99/containers/create", body=big,
                headers={"Content-Type": "application/json"})
    assert r.status == 400 and "too new" in r.json()["message"]


# ------------------------------------------------------------------ options berth cannot apply

def apparmor_enabled() -> bool:
    try:
        return open("/sys/module/apparmor/parameters/enabled").read().startswith("Y") \
            and os.path.exists("/sys/kernel/security/apparmor")
    except OSError:
        return False


def selinux_enabled() -> bool:
    return os.path.exists("/sys/fs/selinux/enforce")


@pytest.mark.berth_only
def test_apparmor_option(engine):
    n = name("aa")
    rc, out, err = engine.docker("run", "--rm", "--name", n, "--security-opt",
                                 "apparmor=docker-default", "busybox", "cat",
                                 "/proc/self/attr/current", check=False)
    if apparmor_enabled():
        assert rc == 0 or "docker-default" in err, err
    else:
        assert rc == 125, (rc, out, err)
        assert "AppArmor is not enabled on this host" in err, err
        assert engine.docker("inspect", n, check=False)[0] != 0
    # unconfined is true everywhere: accepted.
    rc, out, err = engine.docker("run", "--rm", "--security-opt", "apparmor=unconfined",
                                 "busybox", "true", check=False)
    assert rc == 0, err


@pytest.mark.berth_only
@pytest.mark.skipif(not apparmor_enabled(), reason="the host has no AppArmor")
def test_default_apparmor_profile_applies(engine):
    _, out, _ = engine.docker("run", "--rm", "busybox", "cat", "/proc/self/attr/current")
    assert out.startswith("berth-default"), out
    _, out, _ = engine.docker("run", "--rm", "--privileged", "busybox", "cat",
                              "/proc/self/attr/current")
    assert out.startswith("unconfined"), out


@pytest.mark.berth_only
def test_selinux_labels_are_refused(engine):
    rc, _, err = engine.docker("run", "--rm", "--security-opt", "label=type:container_t",
                               "busybox", "true", check=False)
    assert rc == 125, err
    want = "SELinux labels are not supported" if selinux_enabled() else "SELinux is not enabled"
    assert want in err, err
    rc, _, err = engine.docker("run", "--rm", "--security-opt", "label=disable", "busybox",
                               "true", check=False)
    assert rc == 0, err


@pytest.mark.berth_only
@pytest.mark.parametrize("flags,what", [
    (["--mount", "type=volume,source=vv,target=/data,volume-subpath=x"], "subpaths"),
    (["--link-local-ip", "169.254.8.8"], "link-local addresses"),
    (["-p", "[::1]:8080:80"], "IPv6 host addresses"),
])
def test_unsupported_features_are_refused_not_ignored(engine, flags, what):
    n = name("refuse")
    rc, _, err = engine.docker("run", "--rm", "--name", n, *flags, "busybox", "true",
                               check=False)
    assert rc == 125, err
    assert what in err and "not supported" in err, err
    assert engine.docker("inspect", n, check=False)[0] != 0, "nothing is created"


@pytest.mark.berth_only
def test_unknown_networks_are_not_found_at_create(engine):
    # `--network mynet` must not run in a network of its own choosing. (The CLI pulls the
    # image on a 404 and retries: the API is asked directly.)
    for field, body in [
        ("NetworkMode", {"HostConfig": {"NetworkMode": "mynet"}}),
        ("EndpointsConfig", {"NetworkingConfig": {"EndpointsConfig": {"mynet": {}}}}),
    ]:
        body = {"Image": "busybox", "Cmd": ["true"], **body}
        r = engine.api("POST", "/containers/create", body=json.dumps(body),
                       headers={"Content-Type": "application/json"})
        assert r.status == 404, (field, r.status, r.body)
        assert r.json()["message"] == "network mynet not found", r.body


def test_mounts_are_validated_at_create(engine):
    rc, _, err = engine.docker("create", "-v", "/tmp:relative", "busybox", "true", check=False)
    assert rc != 0 and "mount path must be absolute" in err, err


# ------------------------------------------------------------------ local users

def mode(p) -> int:
    return stat.S_IMODE(os.lstat(p).st_mode)


def paths_under(root, limit=3000) -> list[str]:
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        for x in dirnames + filenames:
            out.append(os.path.join(dirpath, x))
            if len(out) >= limit:
                return out
    return out


NOBODY_PROBE = r"""
import json, os, sys
opened = []
for p in json.load(sys.stdin):
    try:
        if os.path.isdir(p):
            os.listdir(p)
        else:
            open(p, "rb").close()
        opened.append(p)
    except OSError:
        pass
print(json.dumps(opened))
"""


def as_nobody(paths: list[str]) -> list[str]:
    def drop():
        os.setgroups([])
        os.setgid(65534)
        os.setuid(65534)

    p = subprocess.run(["python3", "-c", NOBODY_PROBE], input=json.dumps(paths).encode(),
                       capture_output=True, preexec_fn=drop, timeout=60)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


@pytest.mark.berth_only
def test_roots_are_private_to_root(fresh_engine, busybox_tar):
    if os.getuid() != 0:
        pytest.skip("needs root to switch to nobody")
    eng = fresh_engine
    import_busybox(eng, busybox_tar)
    # Only the roots' own modes may protect them: open the test folder to everyone.
    os.chmod(eng.workdir, 0o755)
    n = name("private")
    eng.docker("run", "-d", "--name", n, "busybox", "sh", "-c", "echo secret; sleep 300")
    try:
        eng.docker("exec", n, "sh", "-c", "echo x > /in-the-rw-layer")
        assert mode(eng.data_root) == 0o700
        assert mode(eng.run_root) == 0o700
        assert mode(eng.data_root / "berth.db") == 0o600
        cid = eng.client().api.inspect_container(n)["Id"]
        log = eng.data_root / "containers" / cid / f"{cid}-json.log"
        assert mode(log) == 0o640
        paths = [str(eng.data_root), str(eng.run_root)]
        paths += paths_under(eng.data_root) + paths_under(eng.run_root)
        assert any(p.endswith("/merged") for p in paths), "the overlay root is among them"
        assert len(paths) > 20
        assert as_nobody(paths) == [], "a host user opened paths under the roots"
        # The probe itself works: nobody can read a world-readable file.
        assert as_nobody(["/etc/hostname"]) == ["/etc/hostname"]
    finally:
        eng.docker("rm", "-f", n, check=False)


@pytest.mark.berth_only
def test_existing_roots_are_made_private_on_the_next_start(engine_factory, busybox_tar):
    eng = engine_factory("listen", idle_timeout=1)
    import_busybox(eng, busybox_tar)
    n = name("oldroot")
    eng.docker("run", "--name", n, "busybox", "echo", "x")
    cid = eng.client().api.inspect_container(n)["Id"]
    log = eng.data_root / "containers" / cid / f"{cid}-json.log"
    assert wait_until(lambda: not serve_pids(eng.data_root), 10)
    # As an older berth left them.
    os.chmod(eng.data_root, 0o755)
    os.chmod(eng.run_root, 0o755)
    os.chmod(eng.data_root / "berth.db", 0o644)
    os.chmod(log, 0o644)
    (eng.data_root / ".private-v1").unlink()
    eng.api("GET", "/_ping")
    assert (mode(eng.data_root), mode(eng.run_root)) == (0o700, 0o700)
    assert mode(eng.data_root / "berth.db") == 0o600
    assert mode(log) == 0o640
    eng.docker("rm", n)


@pytest.mark.berth_only
def test_host_socket_is_bound_private(engine, tmp_path):
    from helpers import berth_bin
    d = tmp_path / "sockdir"
    d.mkdir()
    os.chmod(d, 0o755)
    sock = d / "b.sock"
    p = subprocess.Popen([str(berth_bin()), "serve", "--host", f"unix://{sock}",
                          "--data-root", str(tmp_path / "data"), "--run-root",
                          str(tmp_path / "run"), "--idle-timeout", "0"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert wait_until(sock.exists, 10)
        st = os.stat(sock)
        assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o660
        try:
            import grp
            assert st.st_gid == grp.getgrnam("berth").gr_gid
        except KeyError:
            assert st.st_gid == 0
        assert sorted(os.listdir(d)) == ["b.sock"], "no temporary folder is left"
        s = socket.socket(socket.AF_UNIX)
        s.connect(str(sock))
        s.sendall(b"GET /_ping HTTP/1.0\r\n\r\n")
        assert b"OK" in s.recv(4096)
        s.close()
    finally:
        p.kill()
        p.wait()


# ------------------------------------------------------------------ large logs

@pytest.mark.berth_only
def test_docker_logs_streams_a_large_log(engine_factory, busybox_tar):
    eng = engine_factory("listen", idle_timeout=30)
    import_busybox(eng, busybox_tar)
    n = name("biglog")
    line = "a" * 75
    eng.docker("run", "--name", n, "busybox", "sh", "-c", f"yes {line} | head -n 800000",
               timeout=300)
    cid = eng.client().api.inspect_container(n)["Id"]
    size = os.path.getsize(eng.data_root / "containers" / cid / f"{cid}-json.log")
    assert size > 90_000_000
    p = subprocess.run(["/usr/local/bin/docker", "-H", eng.host, "logs", n],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=300)
    assert p.returncode == 0
    assert len(p.stdout) == 800000 * 76
    pids = serve_pids(eng.data_root)
    assert pids
    hwm_kb = max(int(next(l for l in open(f"/proc/{pid}/status") if l.startswith("VmHWM"))
                     .split()[1]) for pid in pids)
    # The whole log is ~95 MB; streaming keeps the process to a few MiB above its base.
    assert hwm_kb < 64 * 1024, f"berth serve peaked at {hwm_kb} kB"
    eng.docker("rm", n)


# ------------------------------------------------------------------ log drivers and options

def test_log_config_defaults_to_json_file(engine):
    """docker-py's test_valid_no_log_driver_specified: an empty Type is the default driver."""
    import docker

    api = engine.client().api
    lc = docker.types.LogConfig(type="", config={"max-file": "100"})
    c = api.create_container("busybox", ["true"], host_config=api.create_host_config(log_config=lc))
    try:
        api.start(c)
        got = api.inspect_container(c)["HostConfig"]["LogConfig"]
        assert got == {"Type": "json-file", "Config": {"max-file": "100"}}
    finally:
        api.remove_container(c, force=True)


def test_unknown_log_driver_is_refused(engine):
    """docker-py's test_invalid_log_driver_raises_exception."""
    import docker

    api = engine.client().api
    lc = docker.types.LogConfig(type="asdf", config={})
    with pytest.raises(docker.errors.APIError) as exc:
        c = api.create_container("busybox", ["true"],
                                 host_config=api.create_host_config(log_config=lc))
        api.start(c)
    assert exc.value.explanation == "logger: no log driver named 'asdf' is registered"


@pytest.mark.parametrize("flags,text", [
    (["--log-opt", "max-file=x"], 'strconv.Atoi: parsing "x": invalid syntax'),
    (["--log-opt", "max-file=0"], "max-file cannot be less than 1"),
    (["--log-opt", "nope=1"], "unknown log opt 'nope' for json-file log driver"),
    (["--log-opt", "max-size=12q"], "invalid size: '12q'"),
])
def test_bad_log_options_are_refused(engine, flags, text):
    rc, _, err = engine.docker("create", *flags, "busybox", "true", check=False)
    assert rc != 0 and text in err, err


@pytest.mark.berth_only
@pytest.mark.parametrize("flags", [["--log-driver", "syslog"], ["--log-opt", "tag=x"]])
def test_log_features_berth_lacks_are_refused(engine, flags):
    rc, _, err = engine.docker("create", *flags, "busybox", "true", check=False)
    assert rc != 0 and "not supported by berth yet" in err, err


def test_docker_py_bind_volumes_dict_is_a_bind_not_a_refused_volume(engine, tmp_path):
    """docker-py lists bind targets in Config.Volumes too; only uncovered paths would be volumes."""
    (tmp_path / "hello.txt").write_text("from the host\n")
    c = engine.client()
    out = c.containers.run("busybox", "cat /data/hello.txt", remove=True,
                           volumes={str(tmp_path): {"bind": "/data", "mode": "ro"}})
    assert out == b"from the host\n"


@pytest.mark.parametrize("opts,status,text", [
    ({"mode": "blocking"}, 201, None),
    ({"mode": "non-blocking"}, 501, "not supported by berth yet"),
    ({"mode": "bogus"}, 400, "logger: logging mode not supported: bogus"),
    ({"max-buffer-size": "4m"}, 400, "only supported with 'mode=non-blocking'"),
    ({"compress": "false"}, 201, None),
    ({"compress": "1"}, 501, "not supported by berth yet"),
    ({"compress": "yes"}, 400, 'strconv.ParseBool: parsing "yes": invalid syntax'),
])
def test_log_modes_and_compress(engine, opts, status, text):
    body = {"Image": "busybox", "Cmd": ["true"],
            "HostConfig": {"LogConfig": {"Type": "json-file", "Config": opts}}}
    r = engine.api("POST", "/containers/create", body=json.dumps(body),
                   headers={"Content-Type": "application/json"})
    if engine.external:
        return
    assert r.status == status, r.body
    if text:
        assert text in r.json()["message"]
    else:
        engine.api("DELETE", f"/containers/{r.json()['Id']}?force=1")


def test_none_log_driver_takes_any_option(engine):
    """moby's ValidateLogOpts returns early for `none` (the CLI refuses by itself; the API not)."""
    body = {"Image": "busybox", "Cmd": ["true"],
            "HostConfig": {"LogConfig": {"Type": "none", "Config": {"x": "y"}}}}
    r = engine.api("POST", "/containers/create", body=json.dumps(body),
                   headers={"Content-Type": "application/json"})
    assert r.status == 201, r.body
    engine.api("DELETE", f"/containers/{r.json()['Id']}?force=1")


def test_wait_next_exit_under_a_restart_policy(engine):
    n = name("nextexit")
    engine.docker("run", "-d", "--name", n, "--restart", "always", "busybox", "sh", "-c",
                  "sleep 1; exit 3")
    try:
        r = engine.api("POST", f"/containers/{n}/wait?condition=next-exit", timeout=30)
        assert r.status == 200 and r.json()["StatusCode"] == 3, r.body
    finally:
        engine.docker("rm", "-f", n, check=False)
