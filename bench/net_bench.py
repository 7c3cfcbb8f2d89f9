#!/usr/bin/env python3
"""Published-port benchmark: container start to first answered HTTP request.

For each engine (seacan, podman, Docker; each where it starts here), in the
same run and alternating order, ``--runs`` times:

    <engine> run -d -p 127.0.0.1:PORT:80 busybox sh -c '... httpd -f -p 80 ...'

then polls ``http://127.0.0.1:PORT/`` every 2 ms until the page the
container wrote comes back; the time from launching the command to that
answer is one sample. The container is removed after each sample (not timed).
All three use the same busybox image (tests/fixtures/images.py), a bridge
network and a private data root. Prints every sample, the medians and the
ratio seacan / fastest other engine (goal: at most 1.0). Needs root.
"""

from __future__ import annotations

import argparse
import compileall
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.fixtures import daemon as dm  # noqa: E402
from tests.fixtures import engines  # noqa: E402
from tests.fixtures import images as im  # noqa: E402

PAGE = "seacan-bench"
SCRIPT = f"mkdir -p /www && echo {PAGE} > /www/index.html && exec httpd -f -p 80 -h /www"
ENGINES = ("seacan", "podman", "docker")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_answer(port: int, deadline: float) -> None:
    url = f"http://127.0.0.1:{port}/"
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=1) as r:
            if r.read().decode().strip() == PAGE:
                return
        time.sleep(0.002)
    raise SystemExit(f"no answer on {url}")


def sample(start: list[str], env: dict[str, str] | None, port: int) -> float:
    t0 = time.perf_counter()
    r = subprocess.run(start, env=env, capture_output=True, timeout=120)
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(start)} failed: {r.stderr.decode(errors='replace')}")
    wait_answer(port, time.monotonic() + 60)
    return time.perf_counter() - t0


Runner = Callable[[int, str], float]


@contextlib.contextmanager
def seacan_engine(work: Path) -> Iterator[Runner]:
    # Bytecode, as an installed seacan has it (pip compiles it): this tree may run
    # with PYTHONDONTWRITEBYTECODE, which would compile every module on every start.
    # seacan/cli, services and shims are symlinks, which compile_dir does not follow.
    for d in ("seacan", "cli", "services", "shims"):
        compileall.compile_dir(REPO / d, quiet=1)
    d = dm.Seacand(key="bench-net")
    with d.running():
        d.seacan_ok("images", "import", im.write_busybox_oci(work / "busybox-oci.tar").path)
        env = {**os.environ, "SEACAN_ADDRESS": str(d.address)}
        base = [sys.executable, "-m", "seacan.cli.main"]

        def run(port: int, name: str) -> float:
            t = sample(
                [*base, "run", "-d", "--name", name, "-p", f"127.0.0.1:{port}:80",
                 "busybox", "sh", "-c", SCRIPT],
                env, port,
            )  # fmt: skip
            subprocess.run([*base, "rm", "-f", name], env=env, capture_output=True, timeout=120)
            return t

        yield run


@contextlib.contextmanager
def podman_engine(work: Path) -> Iterator[Runner]:
    p = engines.PrivatePodman(key="bench-net")
    with p.running():
        archive = im.write_busybox_docker(work / "busybox-docker.tar").path
        p.podman_ok("load", "-i", archive)

        def run(port: int, name: str) -> float:
            t = sample(
                p.argv("run", "-d", "--pull", "never", "--name", name, "-p", f"127.0.0.1:{port}:80",
                       "busybox:latest", "sh", "-c", SCRIPT),
                p.env, port,
            )  # fmt: skip
            p.podman("rm", "-f", "-t", "0", name, timeout=120)
            return t

        yield run


@contextlib.contextmanager
def docker_engine(work: Path) -> Iterator[Runner]:
    d = engines.PrivateDocker(key="bench-net")
    with d.running():
        archive = im.write_busybox_docker(work / "busybox-docker.tar").path
        d.docker_ok("load", "-i", archive)

        def run(port: int, name: str) -> float:
            t = sample(
                [str(engines.DOCKER_CLI), "run", "-d", "--name", name,
                 "-p", f"127.0.0.1:{port}:80", "busybox:latest", "sh", "-c", SCRIPT],
                d.env, port,
            )  # fmt: skip
            d.docker("rm", "-f", name, timeout=120)
            return t

        yield run


FACTORIES = {"seacan": seacan_engine, "podman": podman_engine, "docker": docker_engine}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--runs", type=int, default=7, help="samples per engine (default 7)")
    p.add_argument("--engines", default=",".join(ENGINES), help="comma-separated subset")
    p.add_argument("--json", action="store_true", help="also print the results as JSON")
    a = p.parse_args()
    if os.geteuid() != 0:
        p.error("needs root")
    wanted = [e for e in a.engines.split(",") if e]
    if unknown := set(wanted) - set(ENGINES):
        p.error(f"unknown engines {sorted(unknown)}")
    times: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="sc-netbench-") as tmp, contextlib.ExitStack() as st:
        work = Path(tmp)
        runners: dict[str, Runner] = {}
        for name in wanted:
            try:
                runners[name] = st.enter_context(FACTORIES[name](work))
            except (RuntimeError, SystemExit, OSError) as e:
                print(f"{name}: does not start here, left out: {e}", file=sys.stderr)
        if "seacan" not in runners:
            raise SystemExit("seacan did not start")
        order = list(runners)
        for i in range(a.runs):
            for name in order if i % 2 == 0 else reversed(order):
                port = free_port()
                t = runners[name](port, f"bench-{name}-{i}")
                times.setdefault(name, []).append(t)
                print(f"run {i + 1}: {name:7s} {t * 1000:8.1f} ms", flush=True)
    medians = {name: statistics.median(ts) for name, ts in times.items()}
    print()
    for name, m in medians.items():
        print(f"{name:7s} median {m * 1000:8.1f} ms over {len(times[name])} runs")
    others = {n: m for n, m in medians.items() if n != "seacan"}
    if others:
        best = min(others, key=lambda n: others[n])
        ratio = medians["seacan"] / others[best]
        print(f"ratio seacan/{best} = {ratio:.2f} (goal <= 1.0)")
    if a.json:
        print(json.dumps({"samples": times, "medians": medians}))


if __name__ == "__main__":
    main()
