"""`docker inspect` of a container has dockerd 28's shape field for field: every field of the
v1.50 spec's ContainerInspectResponse, Config, HostConfig and State, less the ones moby's Go
types mark `omitempty` (absent when empty), whichever client created the container."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.usefixtures("busybox")

# shared/ lies beside the repository (as openapi/generate.py finds it).
SPEC = Path(__file__).resolve().parents[2] / "shared" / "reference" / "docker-engine-api-v1.50.yaml"

# Fields moby's api/types declare `json:",omitempty"`: dockerd leaves them out when empty.
OMITEMPTY = {
    "ContainerInspectResponse": {"ImageManifestDescriptor", "SizeRootFs", "SizeRw"},
    "ContainerConfig": {"ArgsEscaped", "ExposedPorts", "Healthcheck", "MacAddress",
                        "NetworkDisabled", "Shell", "StopSignal", "StopTimeout"},
    "HostConfig": {"Annotations", "Init", "KernelMemoryTCP", "Mounts", "StorageOpt", "Sysctls",
                   "Tmpfs"},
    "ContainerState": {"Health"},
}


def spec_fields(name: str) -> set[str]:
    defs = yaml.safe_load(SPEC.read_text())["definitions"]

    def props(n):
        d = defs[n]
        out = {}
        for part in d.get("allOf", []):
            out.update(props(part["$ref"].split("/")[-1]) if "$ref" in part
                       else part.get("properties", {}))
        out.update(d.get("properties", {}))
        return out

    return set(props(name))


def check_shape(inspected: dict):
    parts = [(None, "ContainerInspectResponse"), ("Config", "ContainerConfig"),
             ("HostConfig", "HostConfig"), ("State", "ContainerState")]
    for key, schema in parts:
        got = set((inspected if key is None else inspected[key]).keys())
        want = spec_fields(schema) - OMITEMPTY[schema]
        assert want - got == set(), f"{schema}: missing {sorted(want - got)}"
        assert got - spec_fields(schema) == set(), f"{schema}: unknown {sorted(got - spec_fields(schema))}"


@pytest.fixture(scope="module")
def spec_present():
    if not SPEC.exists():
        pytest.skip(f"no API reference at {SPEC}")


def test_cli_created_container_has_dockers_shape(engine, spec_present):
    n = f"shape-{uuid.uuid4().hex[:8]}"
    engine.docker("create", "--name", n, "busybox", "true")
    try:
        _, out, _ = engine.docker("inspect", n)
        check_shape(json.loads(out)[0])
    finally:
        engine.docker("rm", n)


def test_docker_py_created_container_has_dockers_shape(engine, spec_present):
    api = engine.client().api
    c = api.create_container("busybox", ["true"])
    try:
        got = api.inspect_container(c)
        check_shape(got)
        hc = got["HostConfig"]
        # Go's zero values for what docker-py left out, and moby's stored defaults.
        assert (hc["Memory"], hc["CpuShares"], hc["PidsLimit"], hc["CapAdd"]) == (0, 0, None, None)
        assert "/proc/kcore" in hc["MaskedPaths"] and "/proc/sys" in hc["ReadonlyPaths"]
        assert hc["LogConfig"] == {"Type": "json-file", "Config": {}}
    finally:
        api.remove_container(c)


def test_privileged_container_stores_no_masked_paths(engine, spec_present):
    n = f"shape-priv-{uuid.uuid4().hex[:8]}"
    engine.docker("create", "--privileged", "--name", n, "busybox", "true")
    try:
        _, out, _ = engine.docker("inspect", "-f", "{{json .HostConfig.MaskedPaths}}", n)
        assert out.strip() == "null"
    finally:
        engine.docker("rm", n)
