"""Registries with a private CA, Docker's certs.d layout (`<certs-dir>/<host:port>/ca.crt`,
`client.cert` + `client.key`): verified TLS for registries that are not insecure.

The registry listens on a non-loopback address of this host, since loopback is insecure
(unverified) for Docker and berth alike.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from test_pull import config_engine

pytestmark = pytest.mark.berth_only

OPENSSL = shutil.which("openssl")


def openssl(*args: str, cwd: Path):
    subprocess.run([OPENSSL, *args], cwd=cwd, check=True, capture_output=True)


def make_pki(d: Path, ip: str) -> dict:
    """A CA, a server certificate for `ip` and a client certificate, all signed by the CA."""
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=berth test CA",
            "-keyout", "ca.key", "-out", "ca.crt", cwd=d)
    (d / "san.ext").write_text(f"subjectAltName=IP:{ip}\nextendedKeyUsage=serverAuth\n")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={ip}",
            "-keyout", "server.key", "-out", "server.csr", cwd=d)
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "2", "-extfile", "san.ext", "-out", "server.crt", cwd=d)
    (d / "client.ext").write_text("extendedKeyUsage=clientAuth\n")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=berth client",
            "-keyout", "client.key", "-out", "client.csr", cwd=d)
    openssl("x509", "-req", "-in", "client.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "2", "-extfile", "client.ext", "-out", "client.cert", cwd=d)
    return {k: str(d / f) for k, f in [("ca", "ca.crt"), ("certificate", "server.crt"),
                                       ("key", "server.key"), ("client_cert", "client.cert"),
                                       ("client_key", "client.key")]}


@pytest.fixture
def tls_setup(tmp_path):
    from registry import non_loopback_ip
    if OPENSSL is None:
        pytest.skip("openssl not installed")
    ip = non_loopback_ip()
    if ip is None:
        pytest.skip("no non-loopback address on this host")
    pki = tmp_path / "pki"
    pki.mkdir()
    return ip, make_pki(pki, ip)


def certs_dir_for(tmp_path: Path, host: str, pki: dict, ca=True, client=False) -> Path:
    d = tmp_path / f"certs.d-{ca}-{client}"
    hd = d / host
    hd.mkdir(parents=True)
    if ca:
        shutil.copy(pki["ca"], hd / "ca.crt")
    if client:
        shutil.copy(pki["client_cert"], hd / "client.cert")
        shutil.copy(pki["client_key"], hd / "client.key")
    return d


def test_private_ca_from_certs_d(engine_factory, tmp_path, busybox_tar, tls_setup):
    from registry import Uploader, start_registry
    ip, pki = tls_setup
    reg = start_registry(ip=ip, tls=pki)
    try:
        pushed = Uploader(reg, busybox_tar).image("tls/base", "v1")
        certs = certs_dir_for(tmp_path, reg.host, pki)
        eng = config_engine(engine_factory, tmp_path, f'certs-dir = "{certs}"\n')
        _, out, _ = eng.docker("pull", pushed.ref)
        assert f"Status: Downloaded newer image for {pushed.ref}" in out
        target = f"{reg.host}/tls/pushed:v2"
        eng.docker("tag", pushed.ref, target)
        _, out, _ = eng.docker("push", target)
        assert "v2: digest: sha256:" in out
        status, _, _ = reg.http("HEAD", "/v2/tls/pushed/manifests/v2",
                                headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json,"
                                                   "application/vnd.oci.image.manifest.v1+json"})
        assert status == 200

        # Without the CA: verified TLS fails in Go's words, and there is no HTTP fallback.
        empty = tmp_path / "empty.d"
        empty.mkdir()
        bare = config_engine(engine_factory, tmp_path, f'certs-dir = "{empty}"\n')
        rc, _, err = bare.docker("pull", pushed.ref, check=False)
        assert rc != 0
        assert f'"https://{reg.host}/v2/' in err, err
        assert "x509: certificate signed by unknown authority" in err, err
    finally:
        reg.stop()


def test_client_certificate_from_certs_d(engine_factory, tmp_path, busybox_tar, tls_setup):
    from registry import Uploader, start_registry
    ip, pki = tls_setup
    reg = start_registry(ip=ip, tls={**pki, "clientcas": pki["ca"]})
    try:
        pushed = Uploader(reg, busybox_tar).image("mtls/base", "v1")
        with_pair = config_engine(engine_factory, tmp_path,
                                  f'certs-dir = "{certs_dir_for(tmp_path, reg.host, pki, client=True)}"\n')
        _, out, _ = with_pair.docker("pull", pushed.ref)
        assert f"Status: Downloaded newer image for {pushed.ref}" in out
        target = f"{reg.host}/mtls/pushed:v2"
        with_pair.docker("tag", pushed.ref, target)
        _, out, _ = with_pair.docker("push", target)
        assert "v2: digest: sha256:" in out

        ca_only = config_engine(engine_factory, tmp_path,
                                f'certs-dir = "{certs_dir_for(tmp_path, reg.host, pki)}"\n')
        rc, _, err = ca_only.docker("pull", pushed.ref, check=False)
        assert rc != 0, err
        assert f'"https://{reg.host}/v2/' in err, err
        # The registry refuses the handshake, in Go's words.
        assert "remote error: tls:" in err, err
        rc, _, err = ca_only.docker("push", target, check=False)
        assert rc != 0, err
    finally:
        reg.stop()


def test_mirror_with_private_ca(engine_factory, tmp_path, busybox_tar, tls_setup):
    from registry import Uploader, start_registry
    ip, pki = tls_setup
    reg = start_registry(ip=ip, tls=pki)
    try:
        Uploader(reg, busybox_tar).image("library/tlsmirrored", "v1")
        certs = certs_dir_for(tmp_path, reg.host, pki)
        # The mirror's own host names its certs.d directory, as in Docker.
        eng = config_engine(engine_factory, tmp_path,
                            f'certs-dir = "{certs}"\nregistry-mirrors = ["https://{reg.host}"]\n')
        _, out, _ = eng.docker("pull", "tlsmirrored:v1")
        assert "Status: Downloaded newer image for tlsmirrored:v1" in out
    finally:
        reg.stop()


def test_search_uses_certs_d(engine_factory, tmp_path, tls_setup):
    """docker search goes through the registry client's TLS settings: with the CA from certs.d
    the registry is reached (docker-registry 2 has no v1 search: its 404 comes back); without
    it, verified TLS fails as for a pull."""
    from registry import start_registry
    ip, pki = tls_setup
    reg = start_registry(ip=ip, tls=pki)
    try:
        certs = certs_dir_for(tmp_path, reg.host, pki)
        eng = config_engine(engine_factory, tmp_path, f'certs-dir = "{certs}"\n')
        rc, _, err = eng.docker("search", f"{reg.host}/busybox", check=False)
        assert rc != 0 and "Unexpected status code 404" in err, err
        empty = tmp_path / "empty-search.d"
        empty.mkdir()
        bare = config_engine(engine_factory, tmp_path, f'certs-dir = "{empty}"\n')
        rc, _, err = bare.docker("search", f"{reg.host}/busybox", check=False)
        assert rc != 0 and f"invalid registry endpoint https://{reg.host}/v1/" in err, err
        assert "certificate" in err, err
    finally:
        reg.stop()
