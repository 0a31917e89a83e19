"""Pod figures for bench.py, through Podman's own remote client (`podman --remote`) against
each engine's libpod endpoints (berth, and podman's service, whose pods need Debian's
containernetworking-plugins with the bench's CNI setting; dockerd has none): pod create,
a member started in it, generate kube of the pod, play kube of that YAML (pod, infra and
member up), and play kube --down."""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

PODMAN = shutil.which("podman")


def available() -> bool:
    return PODMAN is not None


def _timed(args: list[str]) -> tuple[float, str]:
    t0 = time.perf_counter()
    p = subprocess.run(args, check=True, capture_output=True, text=True, timeout=120)
    return (time.perf_counter() - t0) * 1000, p.stdout


def pod_figures(sock: str, repeat: int, image: str = "benchbox") -> dict:
    remote = [PODMAN, "--remote", "--url", f"unix://{sock}"]
    create, run, gen, play, down = [], [], [], [], []
    with tempfile.TemporaryDirectory() as d:
        for i in range(repeat):
            name = f"benchpod{i}"
            t, _ = _timed(remote + ["pod", "create", "--name", name])
            create.append(t)
            # A member that ends on SIGTERM: stopping it is not the stop timeout.
            t, _ = _timed(remote + ["run", "-d", "--pod", name, "--name", f"{name}-c", image,
                                    "/bin/sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"])
            run.append(t)
            t, yaml = _timed(remote + ["generate", "kube", name])
            gen.append(t)
            path = Path(d) / f"{name}.yaml"
            path.write_text(yaml)
            subprocess.run(remote + ["pod", "rm", "-f", name], check=True, capture_output=True, timeout=120)
            t, _ = _timed(remote + ["play", "kube", str(path)])
            play.append(t)
            t, _ = _timed(remote + ["play", "kube", "--down", str(path)])
            down.append(t)
    med = statistics.median
    return {"create": med(create), "run": med(run), "generate": med(gen), "play": med(play),
            "down": med(down)}


if __name__ == "__main__":
    print(pod_figures(os.environ["SOCK"], int(os.environ.get("REPEAT", "5"))))
