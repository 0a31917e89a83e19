"""Network figures for bench.py: what bridge networking costs a container, how long a
published web server takes to answer its first request, and throughput through a published
port. Traffic stays on 127.0.0.1."""

from __future__ import annotations

import statistics
import time
import urllib.request

from pull import free_port

# A web root with an index page and a 64 MiB file, made inside the container.
SERVE = ("mkdir -p /www && echo ok > /www/index.html && "
         "dd if=/dev/zero of=/www/big bs=1M count=64 2>/dev/null && httpd -f -p 80 -h /www")
BIG = 64 << 20


def _get(port: int, path: str, timeout: float = 2) -> bytes:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
        return r.read()


def first_answer_ms(cli, sock: str, port: int) -> tuple[float, str]:
    """`docker run -d -p port:80` until the first HTTP answer on 127.0.0.1:port (small page
    served at once: the index is written before the 64 MiB file)."""
    serve = "mkdir -p /www && echo ok > /www/index.html && httpd -f -p 80 -h /www"
    t0 = time.perf_counter()
    cid = cli(sock, "run", "-d", "-p", f"{port}:80", "benchbox", "sh", "-c", serve).strip()
    deadline = t0 + 30
    while True:
        try:
            if _get(port, "/", timeout=1) == b"ok\n":
                return (time.perf_counter() - t0) * 1000, cid
        except OSError:
            if time.perf_counter() > deadline:
                raise
            time.sleep(0.002)


def network_figures(cli, timed, sock: str, repeat: int) -> dict:
    out = {}
    # The default network is the bridge (Podman's compat API has no network named "bridge").
    for mode, flags in (("none", ["--network", "none"]), ("bridge", [])):
        run = ["run", "--rm", *flags, "benchbox", "true"]
        cli(sock, *run)
        out[mode] = statistics.median(timed(lambda r=run: cli(sock, *r), repeat))
    out["bridge_cost"] = out["bridge"] - out["none"]
    firsts = []
    for _ in range(max(3, repeat // 4)):
        ms, cid = first_answer_ms(cli, sock, free_port())
        firsts.append(ms)
        cli(sock, "rm", "-f", cid)
    out["first_http"] = statistics.median(firsts)
    port = free_port()
    cid = cli(sock, "run", "-d", "-p", f"{port}:80", "benchbox", "sh", "-c", SERVE).strip()
    try:
        deadline = time.perf_counter() + 30
        while True:
            try:
                if len(_get(port, "/big", timeout=5)) == BIG:
                    break
            except OSError:
                pass
            if time.perf_counter() > deadline:
                raise TimeoutError("the published server never served /big")
            time.sleep(0.05)
        rates = []
        for _ in range(5):
            t0 = time.perf_counter()
            n = len(_get(port, "/big", timeout=30))
            rates.append(n / (1 << 20) / (time.perf_counter() - t0))
        out["mbps"] = statistics.median(rates)
    finally:
        cli(sock, "rm", "-f", cid, check=False)
    return out
