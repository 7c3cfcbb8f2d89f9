"""Build benchmark: seacan against Docker's classic builder (and podman build), same run.

    sudo python3 bench/build_bench.py [--runs 3] [--json] [--engines seacan,docker,podman]

The same multi-step Dockerfile (busybox base, ENV/ARG/WORKDIR, two COPYs,
three RUNs, metadata) is built by each engine from the same context,
uncached (``--no-cache``) and then fully cached (an identical rebuild).
Each engine runs privately (seacand and dockerd in /tmp/sc-* roots, podman
with private storage, DOCKER_BUILDKIT=0 for Docker's classic builder), the
base image is loaded into each first, and medians are printed with the
ratio of seacan against the faster other engine (goal: at most 1.0).

seacan's package is byte-compiled first (as an installed package is), so a
``PYTHONDONTWRITEBYTECODE`` environment does not make every CLI start
compile the sources again; the load average is printed before and after.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fixtures import daemon as dm
from tests.fixtures import engines
from tests.fixtures import images as im

REPO = Path(__file__).resolve().parents[1]

DOCKERFILE = """FROM busybox:latest
ARG VERSION=1.0
ENV APP_HOME=/app APP_VERSION=$VERSION
WORKDIR /app
COPY src/ /app/src/
RUN mkdir -p /app/bin && for i in 1 2 3 4 5; do echo "tool $i" > /app/bin/tool$i; done
COPY config.txt /etc/app.conf
RUN cat /etc/app.conf > /app/effective.conf && ls -R /app > /app/manifest.txt
RUN adduser -D -H app 2>/dev/null || echo "app:x:1000:1000::/app:/bin/sh" >> /etc/passwd
EXPOSE 8080
LABEL org.example.bench=build
USER 1000
CMD ["cat", "/app/manifest.txt"]
"""


def make_context(root: Path) -> Path:
    (root / "src").mkdir(parents=True)
    for i in range(50):
        (root / "src" / f"file{i}.txt").write_bytes(os.urandom(2048))
    (root / "config.txt").write_text("mode=bench\n")
    (root / "Dockerfile").write_text(DOCKERFILE)
    return root


def timed(fn: Callable[[], object]) -> float:
    t = time.monotonic()
    fn()
    return time.monotonic() - t


def bench_seacan(ctx: Path, archive: Path, runs: int) -> dict[str, list[float]]:
    d = dm.Seacand("build-bench")
    out: dict[str, list[float]] = {"uncached": [], "cached": []}
    with d.running():
        d.seacan_ok("images", "import", archive)
        for _ in range(runs):
            out["uncached"].append(
                timed(lambda: d.seacan_ok("build", "--no-cache", "-t", "b", ctx))
            )
            out["cached"].append(timed(lambda: d.seacan_ok("build", "-t", "b", ctx)))
    return out


def bench_docker(ctx: Path, archive: Path, runs: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"uncached": [], "cached": []}
    with engines.PrivateDocker("build-bench").running() as dk:
        env = {**dk.env, "DOCKER_BUILDKIT": "0"}
        engines.load_archive([str(engines.DOCKER_CLI)], archive, env)

        def build(*flags: str) -> None:
            import subprocess

            r = subprocess.run([str(engines.DOCKER_CLI), "build", *flags, "-t", "b", str(ctx)],
                               env=env, capture_output=True, timeout=600)  # fmt: skip
            if r.returncode != 0:
                raise RuntimeError(r.stderr.decode(errors="replace"))

        for _ in range(runs):
            out["uncached"].append(timed(lambda: build("--no-cache")))
            out["cached"].append(timed(lambda: build()))
    return out


def bench_podman(ctx: Path, archive: Path, runs: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"uncached": [], "cached": []}
    with engines.PrivatePodman("build-bench").running() as pm:
        engines.load_archive(pm.argv(), archive, pm.env)
        for _ in range(runs):
            out["uncached"].append(
                timed(lambda: pm.podman_ok("build", "--no-cache", "-t", "b", ctx))
            )
            out["cached"].append(timed(lambda: pm.podman_ok("build", "-t", "b", ctx)))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--json", action="store_true")
    p.add_argument("--engines", default="seacan,docker,podman")
    a = p.parse_args()
    wanted = a.engines.split(",")
    # seacan/cli, services and shims are symlinks, which compile_dir does not follow.
    for d in ("seacan", "cli", "services", "shims"):
        compileall.compile_dir(REPO / d, quiet=1)
    load_before = os.getloadavg()
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="build-bench-") as tmp:
        ctx = make_context(Path(tmp) / "ctx")
        oci = Path(tmp) / "busybox-oci.tar"
        docker_archive = Path(tmp) / "busybox-docker.tar"
        im.write_busybox_oci(oci)
        im.write_busybox_docker(docker_archive)
        runners = {
            "seacan": (bench_seacan, oci, True),
            "docker": (bench_docker, docker_archive, engines.available(engines.DOCKERD)),
            "podman": (bench_podman, docker_archive, engines.available(engines.PODMAN)),
        }
        for name in wanted:
            fn, archive, ok = runners[name]
            if not ok:
                print(f"{name}: not installed, skipped", file=sys.stderr)
                continue
            try:
                times = fn(ctx, archive, a.runs)
            except RuntimeError as e:
                print(f"{name}: failed: {e}", file=sys.stderr)
                continue
            results[name] = {k: statistics.median(v) for k, v in times.items()}
    load = {"before": load_before, "after": os.getloadavg()}
    if a.json:
        print(json.dumps({**results, "load_average": load}, indent=1))
        return
    before, after = ("/".join(f"{x:.2f}" for x in load[k]) for k in ("before", "after"))
    print(f"load average (1/5/15 min): before {before}, after {after}")
    print(f"{'engine':10} {'uncached (s)':>14} {'cached (s)':>12}")
    for name, r in results.items():
        print(f"{name:10} {r['uncached']:14.2f} {r['cached']:12.2f}")
    others = {k: v for k, v in results.items() if k != "seacan"}
    if "seacan" in results and others:
        for kind in ("uncached", "cached"):
            best = min(others, key=lambda k: others[k][kind])
            ratio = results["seacan"][kind] / others[best][kind]
            print(f"ratio {kind}: seacan/{best} = {ratio:.2f} (goal <= 1.0)")


if __name__ == "__main__":
    main()
