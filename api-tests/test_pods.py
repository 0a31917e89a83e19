"""Pods and Kubernetes YAML through the libpod endpoints: Podman's own remote client
(Debian's podman 4.3) against berth's socket, curl-style raw requests, and `berth pod` /
`berth kube`. Generated YAML is checked offline with kubernetes-validate (strict, the newest
Kubernetes it knows) and `kubectl create --dry-run=client` against a discovery-only server."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request
import uuid

import pytest

from helpers import berth_bin, request, wait_until
from kube_discovery import DiscoveryServer

pytestmark = [pytest.mark.usefixtures("busybox"), pytest.mark.berth_only]

PODMAN = shutil.which("podman")
KUBECTL = shutil.which("kubectl")
VALIDATE = shutil.which("kubernetes-validate")
needs_podman = pytest.mark.skipif(PODMAN is None, reason="podman (the remote client) is not installed; .ci/run installs it")


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def fetch(port: int, timeout: float = 3.0) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=timeout) as r:
        return r.read().decode()


def answers(port: int) -> bool:
    try:
        return bool(fetch(port, 1.0))
    except OSError:
        return False


def podman(engine, *args, check=True, input=None, timeout=120):
    p = subprocess.run([PODMAN, "--remote", "--url", f"unix://{engine.sock}", *args],
                       capture_output=True, text=True, input=input, timeout=timeout,
                       env={**os.environ, "HOME": str(engine.workdir or "/tmp")})
    if check and p.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)} (rc {p.returncode}): {p.stderr}")
    return p


def berth(engine, *args, check=True, input=None):
    p = subprocess.run([str(berth_bin()), *args[:1], "-H", f"unix://{engine.sock}", *args[1:]],
                       capture_output=True, text=True, input=input, timeout=120,
                       env={**os.environ, "RUST_BACKTRACE": "0"})
    if check and p.returncode != 0:
        raise AssertionError(f"berth {' '.join(args)} (rc {p.returncode}): {p.stderr}")
    return p


def validate_yaml(path) -> None:
    """What a cluster would take: kubernetes-validate (strict) and kubectl's client dry run."""
    if VALIDATE:
        p = subprocess.run([VALIDATE, "--strict", str(path)], capture_output=True, text=True)
        assert p.returncode == 0, p.stdout + p.stderr
    if KUBECTL:
        with DiscoveryServer() as d:
            home = path.parent / f"kube-{uuid.uuid4().hex[:6]}"
            home.mkdir()
            p = subprocess.run(
                [KUBECTL, "create", "--dry-run=client", "-o", "yaml", "--validate=false", "-f", str(path),
                 "--server", d.url, "--cache-dir", str(home / "cache")],
                capture_output=True, text=True, timeout=60,
                env={**os.environ, "KUBECONFIG": str(home / "none"), "HOME": str(home)})
        assert p.returncode == 0, p.stderr


@pytest.fixture
def webbox(engine):
    """An image that serves /www/index.html with busybox httpd."""
    tag = f"localhost/webbox-{uuid.uuid4().hex[:6]}:latest"
    name = f"mk-{uuid.uuid4().hex[:6]}"
    engine.docker("run", "--name", name, "busybox", "sh", "-c",
                  "mkdir /www && echo hello-from-web > /www/index.html")
    engine.docker("commit", name, tag)
    engine.docker("rm", name)
    yield tag
    engine.docker("rmi", "-f", tag, check=False)


@pytest.fixture
def pod_names(engine):
    """Pods a test makes; removed (with their containers) afterwards."""
    names: list[str] = []
    yield names
    for n in names:
        request(engine.sock, "DELETE", f"/libpod/pods/{n}?force=true")


@needs_podman
def test_podman_pod_workflow_generate_and_play(engine, webbox, pod_names, tmp_path):
    pod = f"my-pod-{uuid.uuid4().hex[:6]}"
    pod_names.append(pod)
    port = free_port()
    # 1-2: a pod publishing a port, a web server in it.
    pod_id = podman(engine, "pod", "create", "--name", pod, "-p", f"{port}:80").stdout.strip()
    assert len(pod_id) == 64
    podman(engine, "run", "-d", "--pod", pod, "--name", f"{pod}-web", webbox,
           "httpd", "-f", "-p", "80", "-h", "/www")
    # 3: a sidecar reaches it on localhost; the host reaches the published port.
    side = podman(engine, "run", "--rm", "--pod", pod, webbox, "wget", "-qO-", "localhost:80")
    assert side.stdout.strip() == "hello-from-web"
    assert wait_until(lambda: answers(port), 10)
    assert fetch(port).strip() == "hello-from-web"
    ps = podman(engine, "ps", "-a", "--pod", "--format", "{{.Names}} {{.PodName}} {{.State}}").stdout
    assert f"{pod}-web {pod} Up " in ps, ps
    assert f"{pod_id[:12]}-infra {pod} Up " in ps, ps
    assert podman(engine, "pod", "ps", "--format", "{{.Name}} {{.Status}} {{.NumberOfContainers}}").stdout \
        .count(f"{pod} Running 2") == 1
    # 4: the YAML a cluster takes.
    yaml_path = tmp_path / "my-pod.yaml"
    yaml_path.write_text(podman(engine, "generate", "kube", pod).stdout)
    text = yaml_path.read_text()
    assert "kind: Pod" in text and "hostPort: " + str(port) in text and "creationTimestamp" not in text
    validate_yaml(yaml_path)
    # 5: remove it, play it back, it answers again; generated again it is the same document.
    podman(engine, "pod", "rm", "-f", pod)
    assert wait_until(lambda: not answers(port), 10)
    assert podman(engine, "pod", "exists", pod, check=False).returncode == 1
    played = podman(engine, "play", "kube", str(yaml_path))
    assert "Pod:" in played.stdout
    assert wait_until(lambda: answers(port), 20)
    assert fetch(port).strip() == "hello-from-web"
    assert podman(engine, "generate", "kube", pod).stdout == text
    down = podman(engine, "play", "kube", "--down", str(yaml_path))
    assert "Pods removed:" in down.stdout
    assert podman(engine, "pod", "exists", pod, check=False).returncode == 1
    left = engine.docker("ps", "-a", "--format", "{{.Names}}")[1].split()
    assert not [n for n in left if pod in n or n.endswith("-infra")], left
    assert not answers(port)


@needs_podman
def test_podman_pod_lifecycle_and_members(engine, webbox, pod_names):
    pod = f"life-{uuid.uuid4().hex[:6]}"
    pod_names.append(pod)
    podman(engine, "pod", "create", "--name", pod, "--hostname", "podhost", "--label", "team=a")
    ctr = f"{pod}-c"
    podman(engine, "run", "-d", "--pod", pod, "--name", ctr, webbox, "sleep", "300")
    # Members share the infra container's UTS, network and IPC namespaces.
    assert podman(engine, "exec", ctr, "hostname").stdout.strip() == "podhost"
    info = json.loads(podman(engine, "pod", "inspect", pod).stdout)
    info = info[0] if isinstance(info, list) else info
    assert info["Labels"] == {"team": "a"} and info["NumContainers"] == 2
    assert sorted(info["SharedNamespaces"]) == ["ipc", "net", "uts"]
    infra = info["InfraContainerID"]
    def ns(c, k):
        pid = engine.docker("inspect", "-f", "{{.State.Pid}}", c)[1].strip()
        return os.readlink(f"/proc/{pid}/ns/{k}")

    for k in ("net", "ipc", "uts"):
        assert ns(ctr, k) == ns(infra, k)
    assert ns(ctr, "pid") != ns(infra, "pid")
    # libpod's inspect of a member names its pod.
    ins = json.loads(podman(engine, "inspect", ctr).stdout)[0]
    assert ins["Pod"] == info["Id"] and ins["State"]["Status"] == "running"
    assert podman(engine, "logs", ctr).returncode == 0
    assert podman(engine, "exec", ctr, "sh", "-c", "exit 3", check=False).returncode == 3
    # run -i feeds stdin and ends with it; exit codes come back; exec -i is refused, not fed
    # nothing (berth cannot read stdin on libpod's non-upgraded exec start yet).
    assert podman(engine, "run", "--rm", "-i", "--pod", pod, webbox, "cat", input="through-stdin\n").stdout \
        == "through-stdin\n"
    r = podman(engine, "run", "--rm", webbox, "sh", "-c", "echo out; echo err >&2; exit 4", check=False)
    assert (r.returncode, r.stdout, r.stderr.strip()) == (4, "out\n", "err")
    r = podman(engine, "exec", "-i", ctr, "cat", input="x\n", check=False)
    assert r.returncode != 0 and "stdin" in r.stderr
    # The infra container goes only with its pod.
    r = podman(engine, "rm", "-f", infra, check=False)
    assert r.returncode != 0 and "infra container" in r.stderr
    rc, _, err = engine.docker("rm", "-f", infra, check=False)
    assert rc != 0 and "infra container" in err
    top = podman(engine, "pod", "top", pod).stdout
    assert "/pause" in top and "sleep 300" in top
    stats = [n for n in podman(engine, "pod", "stats", "--no-stream", "--format", "{{.Name}}", pod).stdout.split() if n != "NAME"]
    assert sorted(stats) == sorted([ctr, f"{info['Id'][:12]}-infra"])
    podman(engine, "pod", "pause", pod)
    assert podman(engine, "pod", "ps", "--filter", f"name={pod}", "--format", "{{.Status}}").stdout.strip() == "Paused"
    podman(engine, "pod", "unpause", pod)
    podman(engine, "pod", "stop", "-t", "1", pod)
    assert engine.docker("inspect", "-f", "{{.State.Status}}", ctr)[1].strip() == "exited"
    # Starting a member starts its infra container first.
    podman(engine, "start", ctr)
    assert engine.docker("inspect", "-f", "{{.State.Status}}", infra)[1].strip() == "running"
    podman(engine, "pod", "restart", pod)
    podman(engine, "pod", "kill", pod)
    assert wait_until(lambda: engine.docker("inspect", "-f", "{{.State.Running}}", infra)[1].strip() == "false", 10)
    # A pod with containers is removed only with force; prune takes stopped pods.
    r = podman(engine, "pod", "rm", pod, check=False)
    assert r.returncode != 0
    podman(engine, "pod", "prune", "-f")
    assert podman(engine, "pod", "exists", pod, check=False).returncode == 1
    assert engine.docker("ps", "-aq", "--filter", f"name={ctr}")[1].strip() == ""


def test_libpod_endpoints_raw(engine, pod_names):
    # _ping with and without the libpod prefix, both versions podman uses.
    for path in ("/_ping", "/libpod/_ping", "/v4.3.1/libpod/_ping", "/v5.0.0/libpod/_ping"):
        r = request(engine.sock, "GET", path)
        assert r.status == 200 and r.body == b"OK", path
        assert r.headers.get("libpod-api-version"), path
    assert request(engine.sock, "GET", "/v1.41/libpod/_ping").status == 404
    name = f"raw-{uuid.uuid4().hex[:6]}"
    pod_names.append(name)
    r = request(engine.sock, "POST", "/v4.3.1/libpod/pods/create", json.dumps({"name": name, "labels": {"k": "v"}}))
    assert r.status == 201, r.body
    pid = r.json()["Id"]
    r = request(engine.sock, "POST", "/libpod/pods/create", json.dumps({"name": name}))
    assert r.status == 409 and "in use" in r.json()["message"] and r.json()["response"] == 409
    r = request(engine.sock, "GET", "/libpod/pods/nope-nope/json")
    assert r.status == 404
    assert r.json() == {"cause": "no such pod", "message": "no pod with name or ID nope-nope found: no such pod",
                        "response": 404}
    assert request(engine.sock, "GET", f"/libpod/pods/{pid[:12]}/exists").status == 204
    listed = request(engine.sock, "GET", "/libpod/pods/json?filters=" + urllib.request.quote(json.dumps({"label": ["k=v"]}))).json()
    assert [p["Name"] for p in listed] == [name]
    assert listed[0]["Status"] == "Created" and len(listed[0]["Containers"]) == 1
    r = request(engine.sock, "GET", "/libpod/pods/json?filters=" + urllib.request.quote(json.dumps({"bogus": ["x"]})))
    assert r.status == 400
    # Options berth cannot honour are refused, not ignored.
    r = request(engine.sock, "POST", "/libpod/pods/create",
                json.dumps({"name": name + "x", "resource_limits": {"cpu": {"quota": 5000}}}))
    assert r.status == 400 and "resource_limits" in r.json()["message"]
    r = request(engine.sock, "POST", "/libpod/containers/create",
                json.dumps({"image": "busybox", "pod": name, "secrets": [{"Source": "s"}]}))
    assert r.status == 400 and "secrets" in r.json()["message"]
    r = request(engine.sock, "POST", "/libpod/containers/create",
                json.dumps({"image": "busybox", "pod": name, "portmappings": [{"container_port": 80, "host_port": 8080}]}))
    assert r.status == 400 and "pod" in r.json()["message"]
    # A member made with the raw API, started through its pod, then everything removed.
    r = request(engine.sock, "POST", "/libpod/containers/create",
                json.dumps({"image": "busybox", "pod": name, "name": name + "-m", "command": ["sleep", "60"]}))
    assert r.status == 201, r.body
    cid = r.json()["Id"]
    r = request(engine.sock, "POST", f"/libpod/pods/{name}/start")
    assert r.status == 200 and r.json() == {"Errs": None, "Id": pid}
    assert request(engine.sock, "POST", f"/libpod/pods/{name}/start").status == 304
    ctrs = request(engine.sock, "GET", "/libpod/containers/json?filters=" + urllib.request.quote(json.dumps({"pod": [name]}))).json()
    assert [c["Names"][0] for c in ctrs] == [f"{pid[:12]}-infra", name + "-m"]
    assert ctrs[0]["IsInfra"] is True and ctrs[1]["PodName"] == name and ctrs[1]["State"] == "running"
    ins = request(engine.sock, "GET", f"/libpod/containers/{cid}/json").json()
    assert ins["Pod"] == pid and isinstance(ins["Config"]["Entrypoint"], str)
    r = request(engine.sock, "DELETE", f"/libpod/pods/{name}")
    assert r.status == 409
    r = request(engine.sock, "DELETE", f"/libpod/pods/{name}?force=true")
    assert r.status == 200 and r.json() == {"Err": None, "Id": pid}
    assert request(engine.sock, "GET", f"/libpod/containers/{cid}/exists").status == 404
    assert request(engine.sock, "GET", f"/libpod/pods/{name}/exists").status == 404


MULTI = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: {name}-config
data:
  GREETING: hello-from-configmap
  index.html: served-from-configmap
---
apiVersion: v1
kind: Secret
metadata:
  name: {name}-secret
stringData:
  password: s3cret
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: {name}-data
spec:
  accessModes: [ReadWriteOnce]
  resources:
    requests:
      storage: 1Gi
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
spec:
  replicas: 1
  selector:
    matchLabels:
      app: {name}
  template:
    metadata:
      labels:
        app: {name}
    spec:
      restartPolicy: Always
      containers:
      - name: web
        image: busybox
        command: [httpd, -f, -p, "80", -h, /www]
        env:
        - name: GREETING
          valueFrom:
            configMapKeyRef: {{name: {name}-config, key: GREETING}}
        - name: PASSWORD
          valueFrom:
            secretKeyRef: {{name: {name}-secret, key: password}}
        - name: PLAIN
          value: plain-value
        ports:
        - containerPort: 80
          hostPort: {port}
        resources:
          limits: {{memory: 64Mi}}
        livenessProbe:
          exec:
            command: [wget, -q, -O, /dev/null, http://localhost:80/]
          periodSeconds: 2
        volumeMounts:
        - {{name: www, mountPath: /www, readOnly: true}}
        - {{name: data, mountPath: /data}}
      volumes:
      - name: www
        configMap:
          name: {name}-config
          items:
          - {{key: index.html, path: index.html}}
      - name: data
        persistentVolumeClaim:
          claimName: {name}-data
"""


def test_play_multi_document_yaml_via_berth_cli(engine, pod_names, tmp_path):
    name = f"dep{uuid.uuid4().hex[:6]}"
    port = free_port()
    pod = f"{name}-pod"
    pod_names.append(pod)
    yaml_path = tmp_path / "multi.yaml"
    yaml_path.write_text(MULTI.format(name=name, port=port))
    out = berth(engine, "kube", "play", str(yaml_path)).stdout
    assert "Pod:" in out and f"{name}-data" in out
    ctr = f"{pod}-web"
    env = engine.docker("exec", ctr, "env")[1]
    for line in ("GREETING=hello-from-configmap", "PASSWORD=s3cret", "PLAIN=plain-value"):
        assert line in env.splitlines(), env
    assert wait_until(lambda: answers(port), 20)
    assert fetch(port).strip() == "served-from-configmap"
    assert engine.docker("inspect", "-f", "{{.HostConfig.Memory}}", ctr)[1].strip() == str(64 << 20)
    assert engine.docker("inspect", "-f", "{{.HostConfig.RestartPolicy.Name}}", ctr)[1].strip() == "always"
    # The probe became a health check that passes.
    assert wait_until(lambda: engine.docker("inspect", "-f", "{{.State.Health.Status}}", ctr)[1].strip() == "healthy", 30)
    # The claim is a named volume that keeps its data.
    engine.docker("exec", ctr, "sh", "-c", "echo kept > /data/f")
    assert engine.docker("volume", "inspect", "-f", "{{.Name}}", f"{name}-data")[1].strip() == f"{name}-data"
    assert engine.docker("exec", ctr, "sh", "-c", "echo x > /www/y", check=False)[0] != 0
    ps = berth(engine, "pod", "ps").stdout
    assert pod in ps and "Running" in ps
    inspected = json.loads(berth(engine, "pod", "inspect", pod).stdout)[0]
    assert inspected["Name"] == pod
    down = berth(engine, "kube", "down", str(yaml_path)).stdout
    assert "Pods removed:" in down and inspected["Id"] in down
    assert request(engine.sock, "GET", f"/libpod/pods/{pod}/exists").status == 404
    assert not answers(port)
    # Volumes outlive `down` (their data), as in podman; played again, the data is there.
    berth(engine, "kube", "play", str(yaml_path))
    assert engine.docker("exec", ctr, "cat", "/data/f")[1].strip() == "kept"
    berth(engine, "kube", "down", str(yaml_path))
    engine.docker("volume", "rm", f"{name}-data")


def test_play_refuses_what_it_cannot_do(engine, tmp_path):
    name = f"bad{uuid.uuid4().hex[:6]}"
    job = f"apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: {name}\nspec: {{}}\n"
    r = request(engine.sock, "POST", "/libpod/play/kube", MULTI.format(name=name, port=free_port()) + "---\n" + job)
    assert r.status == 400 and "Job" in r.json()["message"]
    lifecycle = MULTI.format(name=name, port=free_port()).replace(
        "        image: busybox\n", "        image: busybox\n        lifecycle: {postStart: {exec: {command: [x]}}}\n")
    r = request(engine.sock, "POST", "/libpod/play/kube", lifecycle)
    assert r.status == 400 and "lifecycle" in r.json()["message"]
    r = request(engine.sock, "POST", "/libpod/play/kube", "kind: [")
    assert r.status == 400
    # Nothing of the refused files was made.
    assert request(engine.sock, "GET", f"/libpod/pods/{name}-pod/exists").status == 404
    assert engine.docker("volume", "inspect", f"{name}-data", check=False)[0] != 0


def test_generate_kube_for_a_cluster(engine, pod_names, tmp_path):
    name = f"gen{uuid.uuid4().hex[:6]}"
    pod_names.append(name)
    host_dir = tmp_path / "host-data"
    host_dir.mkdir()
    vol = f"{name}-vol"
    berth(engine, "pod", "create", "--name", name, "-p", f"{free_port()}:80")
    r = request(engine.sock, "POST", "/libpod/containers/create", json.dumps({
        "image": "busybox", "pod": name, "name": f"{name}-app", "command": ["sleep", "300"],
        "env": {"MODE": "test"}, "work_dir": "/tmp",
        "mounts": [{"type": "bind", "source": str(host_dir), "destination": "/host", "options": ["ro"]},
                   {"type": "tmpfs", "destination": "/scratch", "source": "tmpfs", "options": ["size=8m"]}],
        "volumes": [{"Name": vol, "Dest": "/vol", "Options": []}],
        "resource_limits": {"memory": {"limit": 128 << 20}, "cpu": {"quota": 50000, "period": 100000}},
        "cap_add": ["SYS_TIME"], "cap_drop": ["NET_RAW"], "user": "1000:1000",
        "healthconfig": {"Test": ["CMD-SHELL", "true"], "Interval": 5_000_000_000, "Retries": 2},
        "restart_policy": "on-failure",
    }))
    assert r.status == 201, r.body
    gen = lambda q: request(engine.sock, "GET", f"/libpod/generate/kube?names={name}{q}")  # noqa: E731
    r = gen("")
    assert r.status == 200, r.body
    text = r.body.decode()
    for want in ("kind: PersistentVolumeClaim", f"claimName: {vol}", "hostPath:", f"path: {host_dir}",
                 "medium: Memory", "sizeLimit: 8Mi", "memory: 128Mi", "cpu: 500m", "- SYS_TIME", "- NET_RAW",
                 "runAsUser: 1000", "runAsGroup: 1000", "livenessProbe:", "restartPolicy: OnFailure",
                 "name: MODE", "workingDir: /tmp", "readOnly: true"):
        assert want in text, (want, text)
    (tmp_path / "pod.yaml").write_text(text)
    validate_yaml(tmp_path / "pod.yaml")
    svc = gen("&service=true").body.decode()
    assert "kind: Service" in svc and "type: NodePort" in svc
    (tmp_path / "svc.yaml").write_text(svc)
    validate_yaml(tmp_path / "svc.yaml")
    dep = gen("&type=deployment&replicas=2").body.decode()
    assert "kind: Deployment" in dep and "replicas: 2" in dep
    # A cluster takes a Deployment only with restartPolicy Always.
    assert "restartPolicy: Always" in dep and "OnFailure" not in dep
    (tmp_path / "dep.yaml").write_text(dep)
    validate_yaml(tmp_path / "dep.yaml")
    # A plain container (no pod) becomes a pod of its own.
    solo = f"{name}-solo"
    engine.docker("create", "--name", solo, "busybox", "sleep", "1")
    try:
        out = berth(engine, "kube", "generate", solo).stdout
        assert f"name: {solo}-pod" in out
        (tmp_path / "solo.yaml").write_text(out)
        validate_yaml(tmp_path / "solo.yaml")
    finally:
        engine.docker("rm", "-f", solo)
    r = gen("&type=job")
    assert r.status == 400
    assert request(engine.sock, "GET", "/libpod/generate/kube?names=no-such-thing").status == 404
    request(engine.sock, "DELETE", f"/libpod/pods/{name}?force=true")
    engine.docker("volume", "rm", vol)


def test_berth_pod_cli(engine, pod_names):
    name = f"cli{uuid.uuid4().hex[:6]}"
    pod_names.append(name)
    pid = berth(engine, "pod", "create", "--name", name, "--label", "a=b").stdout.strip()
    assert len(pid) == 64
    assert name in berth(engine, "pod", "ps").stdout
    berth(engine, "pod", "start", name)
    assert json.loads(berth(engine, "pod", "inspect", name).stdout)[0]["State"] == "Running"
    berth(engine, "pod", "stop", "-t", "1", name)
    assert json.loads(berth(engine, "pod", "inspect", name).stdout)[0]["State"] == "Exited"
    r = berth(engine, "pod", "rm", "no-such-pod", check=False)
    assert r.returncode != 0 and "no such pod" in r.stderr
    assert berth(engine, "pod", "rm", "-f", name).stdout.strip() == pid
    assert name not in berth(engine, "pod", "ps").stdout
    assert request(engine.sock, "GET", f"/libpod/pods/{name}/exists").status == 404
