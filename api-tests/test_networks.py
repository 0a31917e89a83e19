"""Networks through the docker CLI and docker-py: user-defined bridge networks with names
resolving between their containers, the default bridge, published ports reached from the
host, connect/disconnect of running containers, the host/none/container modes, Docker's
refusals, and that nothing (veth, namespace, rule, DNS server) outlives the containers.

Traffic goes only to 127.0.0.1 and to the containers these tests start."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import time
import urllib.request
import uuid

import docker
import pytest

pytestmark = [pytest.mark.usefixtures("busybox"), pytest.mark.berth_only]


def name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def inspect(engine, what: str, kind: str = "container") -> dict:
    _, out, _ = engine.docker(kind, "inspect", what)
    return json.loads(out)[0]


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def http_get(port: int, timeout: float = 10.0) -> str:
    """GET / on 127.0.0.1:port, retried while the server inside starts."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as r:
                return r.read().decode()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@pytest.fixture
def www(tmp_path):
    d = tmp_path / "www"
    d.mkdir()
    (d / "index.html").write_text("hello from berth\n")
    return d


@pytest.fixture
def net(engine):
    """A user-defined network, removed (with its containers) afterwards."""
    n = name("net")
    engine.docker("network", "create", n)
    yield n
    _, out, _ = engine.docker("ps", "-aq", "--filter", f"network={n}", check=False)
    if out.split():
        engine.docker("rm", "-f", *out.split(), check=False)
    engine.docker("network", "rm", n, check=False)


def host_state() -> dict:
    """What containers' networking can leave on the host."""
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    rules = subprocess.run(["iptables-save"], capture_output=True, text=True).stdout
    return {"links": links, "rules": rules}


def test_network_lifecycle(engine):
    n = name("life")
    _, out, _ = engine.docker("network", "create", "--label", "team=a", "--subnet",
                              "10.222.7.0/24", "--gateway", "10.222.7.254", n)
    nid = out.strip()
    assert re.fullmatch(r"[0-9a-f]{64}", nid), out
    try:
        info = inspect(engine, n, "network")
        assert (info["Name"], info["Id"], info["Driver"], info["Scope"]) == \
            (n, nid, "bridge", "local")
        assert info["IPAM"]["Config"] == [{"Subnet": "10.222.7.0/24", "Gateway": "10.222.7.254"}]
        assert info["Labels"] == {"team": "a"} and info["Containers"] == {}
        assert inspect(engine, nid[:12], "network")["Name"] == n, "a short ID finds it"
        _, out, _ = engine.docker("network", "ls", "--filter", "label=team=a", "--format",
                                  "{{.Name}}")
        assert out.split() == [n]
        _, out, _ = engine.docker("network", "ls", "--filter", "type=builtin", "--format",
                                  "{{.Name}}")
        assert sorted(out.split()) == ["bridge", "host", "none"]
        rc, _, err = engine.docker("network", "create", n, check=False)
        assert rc != 0 and f"network with name {n} already exists" in err, err
        rc, _, err = engine.docker("network", "create", "--subnet", "10.222.7.128/25",
                                   name("overlap"), check=False)
        assert rc != 0 and "Pool overlaps with other one on this address space" in err, err
    finally:
        engine.docker("network", "rm", n)
    rc, _, err = engine.docker("network", "inspect", n, check=False)
    assert rc != 0 and f"network {n} not found" in err, err


def test_names_with_spaces(engine):
    n = name("my net")
    engine.docker("network", "create", n)
    try:
        c = name("spaced")
        engine.docker("run", "-d", "--name", c, "--network", n, "busybox", "sleep", "60")
        _, out, _ = engine.docker("run", "--rm", "--network", n, "busybox", "nslookup", c)
        assert inspect(engine, c)["NetworkSettings"]["Networks"][n]["IPAddress"] in out, out
        engine.docker("rm", "-f", c)
    finally:
        engine.docker("network", "rm", n)
    r = engine.api("POST", "/networks/create", body=json.dumps({"Name": ""}),
                   headers={"Content-Type": "application/json"})
    assert r.status == 400 and r.json()["message"] == "invalid name: name is empty", r.body


def test_refusals_with_dockers_texts(engine, net):
    rc, _, err = engine.docker("network", "rm", "bridge", check=False)
    assert rc != 0 and "bridge is a pre-defined network and cannot be removed" in err, err
    rc, _, err = engine.docker("network", "create", "host", check=False)
    assert rc != 0 and "operation is not permitted on predefined host network" in err, err
    rc, _, err = engine.docker("network", "create", "-d", "nosuch", name("n"), check=False)
    assert rc != 0 and "plugin not found" in err, err
    rc, _, err = engine.docker("network", "create", "--subnet", "300.1.0.0/16", name("n"),
                               check=False)
    assert rc != 0 and "invalid CIDR address" in err, err
    rc, _, err = engine.docker("network", "create", "-o", "com.docker.network.bridge.enable_icc=false",
                               name("n"), check=False)
    assert rc != 0 and "not supported by berth yet" in err, err
    for flags, text in [
        (["--ip", "10.0.0.5"], "user specified IP address is supported on user defined networks only"),
        (["--network", net, "--ip", "10.0.0.5"], "user specified IP address is supported only when connecting to networks with user configured subnets"),
    ]:
        c = name("bad")
        rc, _, err = engine.docker("run", "--rm", "--name", c, *flags, "busybox", "true",
                                   check=False)
        assert rc == 125 and text in err, (flags, err)
        assert engine.docker("inspect", c, check=False)[0] != 0, "nothing is created"
    # (The CLI refuses aliases on the default bridge itself: the API is asked.)
    body = {"Image": "busybox", "NetworkingConfig": {"EndpointsConfig": {"bridge": {"Aliases": ["x"]}}}}
    r = engine.api("POST", "/containers/create", body=json.dumps(body),
                   headers={"Content-Type": "application/json"})
    assert r.status == 400 and r.json()["message"] == \
        "network-scoped alias is supported only for containers in user defined networks", r.body
    body = {"Image": "busybox", "HostConfig": {"NetworkMode": net}, "NetworkingConfig": {
        "EndpointsConfig": {net: {"IPAMConfig": {"LinkLocalIPs": ["169.254.8.8"]}}}}}
    r = engine.api("POST", "/containers/create", body=json.dumps(body),
                   headers={"Content-Type": "application/json"})
    assert r.status == 501 and "not supported by berth yet" in r.json()["message"], r.body
    r = engine.api("POST", "/networks/create", body=json.dumps({"Name": 5}),
                   headers={"Content-Type": "application/json"})
    assert r.status == 400, r.body
    r = engine.api("POST", f"/networks/{net}/connect", body=json.dumps({"Container": "nosuch"}),
                   headers={"Content-Type": "application/json"})
    assert r.status == 404 and r.json()["message"] == "No such container: nosuch", r.body


def test_names_resolve_within_a_network(engine, net):
    a, b = name("a"), name("b")
    engine.docker("run", "-d", "--name", a, "--network", net, "busybox", "sleep", "60")
    _, bid, _ = engine.docker("run", "-d", "--name", b, "--network", net, "--network-alias",
                              "db", "busybox", "sleep", "60")
    bid = bid.strip()
    info = inspect(engine, b)
    ep = info["NetworkSettings"]["Networks"][net]
    gw = ep["Gateway"]
    assert ep["IPAddress"].startswith(gw.rsplit(".", 1)[0]), ep
    assert ep["DNSNames"] == [b, "db", bid[:12]], ep
    assert ep["Aliases"] == ["db"] and len(ep["EndpointID"]) == 64 and ep["MacAddress"], ep
    _, out, _ = engine.docker("exec", a, "cat", "/etc/resolv.conf")
    assert f"nameserver {gw}" in out, out
    for target in (b, "db", bid[:12]):
        _, out, _ = engine.docker("exec", a, "nslookup", target)
        assert ep["IPAddress"] in out, (target, out)
    _, out, _ = engine.docker("exec", a, "ping", "-c1", "-W5", b)
    assert "1 packets received" in out, out
    # A rename is seen by the network's DNS at once, as in Docker.
    renamed = name("renamed")
    engine.docker("rename", b, renamed)
    _, out, _ = engine.docker("exec", a, "nslookup", renamed)
    assert ep["IPAddress"] in out, out
    rc, out, _ = engine.docker("exec", a, "nslookup", b, check=False)
    assert ep["IPAddress"] not in out, out
    engine.docker("rename", renamed, b)
    # The network shows its containers with their addresses.
    members = inspect(engine, net, "network")["Containers"]
    assert members[bid]["Name"] == b and members[bid]["IPv4Address"] == f"{ep['IPAddress']}/24"
    # An address given with --ip on a subnet the user configured; aux addresses are kept free.
    n2 = name("static")
    engine.docker("network", "create", "--subnet", "10.224.3.0/24", "--aux-address",
                  "router=10.224.3.2", n2)
    try:
        assert inspect(engine, n2, "network")["IPAM"]["Config"][0]["AuxiliaryAddresses"] == \
            {"router": "10.224.3.2"}
        _, out, _ = engine.docker("run", "--rm", "--network", n2, "busybox", "ip", "-o", "-4",
                                  "addr", "show", "eth0")
        assert "10.224.3.3/24" in out, "the first address after the gateway and the aux one"
        c = name("ip")
        engine.docker("run", "-d", "--name", c, "--network", n2, "--ip", "10.224.3.77",
                      "--mac-address", "02:42:0a:e0:03:4d", "busybox", "sleep", "60")
        _, out, _ = engine.docker("exec", c, "ip", "-o", "addr", "show", "eth0")
        assert "10.224.3.77/24" in out, out
        _, out, _ = engine.docker("exec", c, "cat", "/sys/class/net/eth0/address")
        assert out.strip() == "02:42:0a:e0:03:4d"
        rc, _, err = engine.docker("run", "--rm", "--network", n2, "--ip", "10.224.3.77",
                                   "busybox", "true", check=False)
        assert rc != 0 and "Address already in use" in err, err
        rc, _, err = engine.docker("network", "rm", n2, check=False)
        assert rc != 0 and "has active endpoints" in err, err
        engine.docker("rm", "-f", c)
    finally:
        engine.docker("network", "rm", n2, check=False)


def test_connect_and_disconnect_running(engine, net, www):
    a, web = name("a"), name("web")
    engine.docker("run", "-d", "--name", a, "--network", net, "busybox", "sleep", "60")
    engine.docker("run", "-d", "--name", web, "-v", f"{www}:/www:ro", "busybox",
                  "httpd", "-f", "-p", "80", "-h", "/www")
    bridge_ip = inspect(engine, web)["NetworkSettings"]["IPAddress"]
    assert bridge_ip, "on the default bridge: the top-level address is set"

    def fetch(target):
        # (busybox wget crashes on this host now and then: nc speaks the HTTP.)
        rc, out, err = engine.docker(
            "exec", a, "sh", "-c",
            f"printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {target} 80", check=False)
        if rc == 0 and "200 OK" not in out:
            rc = 1
        return rc, out.split("\r\n\r\n", 1)[-1], err

    rc, _, err = fetch(web)
    assert rc != 0, "not on the same network: the name does not resolve"
    rc, _, _ = fetch(bridge_ip)
    assert rc != 0, "networks are isolated from each other"
    engine.docker("network", "connect", "--alias", "site", net, web)
    nets = inspect(engine, web)["NetworkSettings"]["Networks"]
    assert set(nets) == {"bridge", net}, nets
    for target in (web, "site"):
        rc, out, err = fetch(target)
        assert rc == 0 and out == "hello from berth\n", (target, out, err)
    rc, _, err = engine.docker("network", "connect", net, web, check=False)
    assert rc != 0 and "already exists in network" in err, err
    engine.docker("network", "disconnect", net, web)
    rc, _, _ = fetch(web)
    assert rc != 0, "disconnected: unreachable again"
    assert set(inspect(engine, web)["NetworkSettings"]["Networks"]) == {"bridge"}
    rc, _, err = engine.docker("network", "disconnect", net, web, check=False)
    assert rc != 0 and "is not connected to network" in err, err
    engine.docker("rm", "-f", web)


def test_published_ports(engine, www):
    port = free_port()
    web = name("web")
    engine.docker("run", "-d", "--name", web, "-p", f"{port}:80", "-v", f"{www}:/www:ro",
                  "busybox", "httpd", "-f", "-p", "80", "-h", "/www")
    assert http_get(port) == "hello from berth\n"
    _, out, _ = engine.docker("port", web)
    assert out.strip() == f"80/tcp -> 0.0.0.0:{port}", out
    ports = inspect(engine, web)["NetworkSettings"]["Ports"]
    assert ports == {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": str(port)}]}, ports
    _, out, _ = engine.docker("ps", "--filter", f"name={web}", "--format", "{{.Ports}}")
    assert out.strip() == f"0.0.0.0:{port}->80/tcp", out
    # Another container reaches it through the published port on the host's address too.
    gw = inspect(engine, web)["NetworkSettings"]["Gateway"]
    _, out, _ = engine.docker("run", "--rm", "busybox", "sh", "-c",
                              f"printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {gw} {port}")
    assert out.endswith("hello from berth\n"), out
    # The same host port again: Docker's error, and nothing half set up.
    before = host_state()
    second = name("second")
    rc, _, err = engine.docker("run", "-d", "--name", second, "-p", f"{port}:80", "busybox",
                               "httpd", "-f", "-p", "80", check=False)
    assert rc != 0 and f"Bind for 0.0.0.0:{port} failed: port is already allocated" in err, err
    assert inspect(engine, second)["State"]["Status"] == "created"
    _, sid, _ = engine.docker("inspect", "-f", "{{.Id}}", second)
    after = host_state()
    assert sid.strip() not in after["rules"]
    assert after["links"].count("veth") == before["links"].count("veth")
    engine.docker("rm", second)
    assert http_get(port) == "hello from berth\n", "the first one still answers"
    # A port some other process holds on the host is refused, not shadowed.
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    taken = holder.getsockname()[1]
    try:
        rc, _, err = engine.docker("run", "--rm", "-p", f"127.0.0.1:{taken}:80", "busybox",
                                   "true", check=False)
        assert rc != 0 and "address already in use" in err, err
    finally:
        holder.close()
    engine.docker("rm", "-f", web)
    with pytest.raises(OSError):
        http_get(port, timeout=1)


def test_publish_all_and_random_ports(engine, www):
    web = name("all")
    engine.docker("run", "-d", "--name", web, "-P", "--expose", "80", "-p", "127.0.0.1::81",
                  "-v", f"{www}:/www:ro", "busybox", "httpd", "-f", "-p", "80", "-h", "/www")
    try:
        ports = inspect(engine, web)["NetworkSettings"]["Ports"]
        assert set(ports) == {"80/tcp", "81/tcp"}, ports
        random80 = int(ports["80/tcp"][0]["HostPort"])
        assert 32768 <= random80 <= 60999, ports
        assert ports["81/tcp"][0]["HostIp"] == "127.0.0.1", ports
        assert http_get(random80) == "hello from berth\n"
        _, out, _ = engine.docker("port", web, "80")
        assert out.strip() == f"0.0.0.0:{random80}", out
    finally:
        engine.docker("rm", "-f", web)


def test_network_modes(engine):
    # host: the host's interfaces.
    _, out, _ = engine.docker("run", "--rm", "--network", "host", "busybox", "ip", "-o", "link")
    host_links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout

    def names(text):  # other tests' veths come and go meanwhile
        return [n for n in (l.split(":")[1].strip().split("@")[0] for l in text.splitlines())
                if not n.startswith("veth")]
    assert names(out) == names(host_links) and "lo" in names(out), out
    # none: loopback only.
    _, out, _ = engine.docker("run", "--rm", "--network", "none", "busybox", "ip", "-o", "link")
    assert [l.split(":")[1].strip() for l in out.splitlines()] == ["lo"], out
    info_none = name("none")
    engine.docker("create", "--name", info_none, "--network", "none", "busybox", "true")
    assert list(inspect(engine, info_none)["NetworkSettings"]["Networks"]) == ["none"]
    engine.docker("rm", info_none)
    # container:<name>: the same interfaces, address and hostname.
    owner = name("owner")
    engine.docker("run", "-d", "--name", owner, "--hostname", "shared-host", "busybox",
                  "sleep", "60")
    try:
        ip = inspect(engine, owner)["NetworkSettings"]["IPAddress"]
        _, out, _ = engine.docker("run", "--rm", "--network", f"container:{owner}", "busybox",
                                  "sh", "-c", "ip -o -4 addr show eth0; hostname")
        assert f"{ip}/" in out and out.strip().endswith("shared-host"), out
    finally:
        engine.docker("rm", "-f", owner)


def test_nothing_is_left_behind(engine, www):
    before = host_state()
    netns = engine.run_root / "netns" if engine.run_root is not None else None
    netns_before = set(os.listdir(netns)) if netns and netns.exists() else set()
    n = name("gone")
    engine.docker("network", "create", n)
    ids = []
    for i in range(3):
        flags = ["--network", n] if i else ["-p", f"{free_port()}:80"]
        _, out, _ = engine.docker("run", "-d", *flags, "busybox", "sleep", "60")
        ids.append(out.strip())
    # One stops by itself: its exit tears its network down.
    _, out, _ = engine.docker("run", "-d", "--network", n, "busybox", "true")
    ids.append(out.strip())
    engine.docker("wait", ids[-1])
    during = host_state()
    assert during["links"].count("veth") >= before["links"].count("veth") + 3
    assert any(i in during["rules"] for i in ids), "port rules name their container"
    engine.docker("rm", "-f", *ids)
    engine.docker("network", "rm", n)

    def clean():
        now = host_state()
        return (now["links"].count("veth") == before["links"].count("veth")
                and not any(i in now["rules"] for i in ids))
    deadline = time.monotonic() + 10
    while not clean() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert clean(), host_state()
    if netns is not None:
        left = set(os.listdir(netns)) - netns_before if netns.exists() else set()
        assert left == set(), left
        aardvark = [p for p in os.listdir("/proc") if p.isdigit()
                    and str(engine.run_root) in _cmdline(p)
                    and "aardvark" in _cmdline(p)]
        assert aardvark == [], "the DNS server exits with the last container that needs it"


def _cmdline(pid: str) -> str:
    try:
        return open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def test_prune_and_system_prune(engine):
    used, unused = name("used"), name("unused")
    engine.docker("network", "create", used)
    engine.docker("network", "create", unused)
    c = name("c")
    engine.docker("run", "-d", "--name", c, "--network", used, "busybox", "sleep", "60")
    try:
        _, out, _ = engine.docker("network", "prune", "-f")
        assert unused in out and used not in out, out
        _, out, _ = engine.docker("network", "ls", "--format", "{{.Name}}")
        assert used in out.split() and unused not in out.split()
    finally:
        engine.docker("rm", "-f", c)
        engine.docker("network", "rm", used, check=False)
    rc, _, err = engine.docker("system", "prune", "-f", check=False)
    assert rc == 0, err


def test_docker_py_networks(engine, www):
    client = engine.client()
    n = name("py")
    network = client.networks.create(n, driver="bridge", labels={"by": "py"})
    try:
        assert client.networks.get(n).id == network.id
        assert n in [x.name for x in client.networks.list(names=[n])]
        c = client.containers.run("busybox", ["httpd", "-f", "-p", "80", "-h", "/www"],
                                  detach=True, volumes={str(www): {"bind": "/www", "mode": "ro"}},
                                  ports={"80/tcp": None}, name=name("pyweb"))
        try:
            c.reload()
            host_port = int(c.ports["80/tcp"][0]["HostPort"])
            assert http_get(host_port) == "hello from berth\n"
            network.connect(c, aliases=["pyweb-alias"])
            network.reload()
            assert [x.id for x in network.containers] == [c.id]
            c.reload()
            assert c.attrs["NetworkSettings"]["Networks"][n]["Aliases"] == ["pyweb-alias"]
            probe = client.containers.run(
                "busybox", ["sh", "-c", "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 pyweb-alias 80"],
                network=n, remove=True)
            assert probe.endswith(b"hello from berth\n"), probe
            network.disconnect(c)
            network.reload()
            assert network.containers == []
        finally:
            c.remove(force=True)
        with pytest.raises(docker.errors.NotFound):
            client.networks.get(name("missing"))
        with pytest.raises(docker.errors.APIError) as e:
            client.networks.create(n)
        assert e.value.status_code == 409
    finally:
        network.remove()
    assert client.networks.prune()["NetworksDeleted"] is None or n not in \
        client.networks.prune()["NetworksDeleted"]


def test_legacy_links(engine):
    db, app = name("db"), name("app")
    engine.docker("run", "-d", "--name", db, "-e", "FOO=1", "--expose", "5432", "busybox",
                  "sleep", "60")
    try:
        ip = inspect(engine, db)["NetworkSettings"]["IPAddress"]
        _, out, _ = engine.docker("run", "--rm", "--name", app, "--link", f"{db}:dbx",
                                  "busybox", "sh", "-c", "env; cat /etc/hosts; ping -c1 -W3 dbx")
        for want in ["DBX_ENV_FOO=1", f"DBX_NAME=/{app}/dbx", f"DBX_PORT=tcp://{ip}:5432",
                     f"DBX_PORT_5432_TCP_ADDR={ip}", "1 packets received"]:
            assert want in out, (want, out)
        assert re.search(rf"^{re.escape(ip)}\tdbx \w{{12}} {db}$", out, re.M), out
        linked = name("linked")
        engine.docker("create", "--name", linked, "--link", db, "busybox", "true")
        assert inspect(engine, linked)["HostConfig"]["Links"] == [f"/{db}:/{linked}/{db}"]
        _, out, _ = engine.docker("ps", "--no-trunc", "--filter", f"name={db}", "--format",
                                  "{{.Names}}")
        assert f"{linked}/{db}" in out.strip().split(","), out
        engine.docker("rm", "--link", f"{linked}/{db}")
        assert inspect(engine, linked)["HostConfig"]["Links"] == []
        rc, _, err = engine.docker("rm", "--link", db, check=False)
        assert rc != 0 and "cannot remove the default link name" in err, err
        engine.docker("rm", linked)
        rc, _, err = engine.docker("run", "--rm", "--link", "nosuch:x", "busybox", "true",
                                   check=False)
        assert rc == 125 and "could not get container for nosuch" in err, err
        stopped = name("stopped")
        engine.docker("create", "--name", stopped, "busybox", "true")
        rc, _, err = engine.docker("run", "--rm", "--link", f"{stopped}:s", "busybox", "true",
                                   check=False)
        assert rc != 0 and f"Cannot link to a non running container: /{stopped}" in err, err
        engine.docker("rm", stopped)
    finally:
        engine.docker("rm", "-f", db)


def test_ipv6_network_with_static_address(engine):
    n = name("v6")
    engine.docker("network", "create", "--ipv6", "--subnet", "10.225.1.0/24", "--subnet",
                  "fd00:b:e:1::/64", n)
    try:
        info = inspect(engine, n, "network")
        assert info["EnableIPv6"] is True
        assert {c["Subnet"] for c in info["IPAM"]["Config"]} == {"10.225.1.0/24", "fd00:b:e:1::/64"}
        c = name("six")
        engine.docker("run", "-d", "--name", c, "--network", n, "--ip6", "fd00:b:e:1::99",
                      "busybox", "sleep", "60")
        ep = inspect(engine, c)["NetworkSettings"]["Networks"][n]
        assert ep["GlobalIPv6Address"] == "fd00:b:e:1::99" and ep["GlobalIPv6PrefixLen"] == 64, ep
        assert ep["IPv6Gateway"] == "fd00:b:e:1::1" and ep["IPAddress"].startswith("10.225.1."), ep
        _, out, _ = engine.docker("exec", c, "ip", "-6", "-o", "addr", "show", "eth0")
        assert "fd00:b:e:1::99/64" in out, out
        _, out, _ = engine.docker("run", "--rm", "--network", n, "busybox", "ping", "-6", "-c1",
                                  "-W5", "fd00:b:e:1::99")
        assert "1 packets received" in out, out
        engine.docker("rm", "-f", c)
    finally:
        engine.docker("network", "rm", n, check=False)
