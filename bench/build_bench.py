"""Build figures for bench.py: a 10-step Dockerfile of trivial steps built through the legacy
builder (`DOCKER_BUILDKIT=0 docker build`), without cache (per-step average) and fully cached
(total)."""

from __future__ import annotations

import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

DOCKERFILE = """\
FROM benchbox
ENV A=1
LABEL bench=build
WORKDIR /work
COPY file.txt /work/
RUN true
ENV B=2
RUN echo step > /work/step
EXPOSE 8080
CMD ["sh"]
"""
STEPS = 10


def _build(sock: str, ctx: Path, *flags: str) -> float:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
    env.update({"DOCKER_HOST": f"unix://{sock}", "DOCKER_BUILDKIT": "0"})
    t0 = time.perf_counter()
    subprocess.run(["docker", "build", "-q", "--network", "none", *flags, "-t", "benchbuild", str(ctx)],
                   check=True, capture_output=True, env=env)
    return (time.perf_counter() - t0) * 1000


def build_figures(sock: str, repeat: int) -> dict:
    with tempfile.TemporaryDirectory() as d:
        ctx = Path(d)
        (ctx / "Dockerfile").write_text(DOCKERFILE)
        (ctx / "file.txt").write_text("content\n")
        _build(sock, ctx)  # warm: base image present, caches primed
        runs = max(3, repeat // 4)
        nocache = [_build(sock, ctx, "--no-cache") for _ in range(runs)]
        cached = [_build(sock, ctx) for _ in range(repeat)]
    return {"per_step": statistics.median(nocache) / STEPS, "cached": statistics.median(cached)}
