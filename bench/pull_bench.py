#!/usr/bin/env python3
"""Pull benchmark: seacand against containerd, from the same loopback registry.

Generates (or reuses, from ``--work``) the import benchmark's ~200 MB OCI
archive (5 gzip layers, 10,000 small files and 10 big random ones), pushes
it with ``skopeo copy --preserve-digests`` to a private Debian
``docker-registry`` on 127.0.0.1, starts a private seacand and a private
containerd, then, ``--runs`` times, in a fresh namespace each run:

- ``seacan pull REF`` against seacand (download and unpack, overlapped),
- ``ctr images pull --plain-http REF`` against containerd (ctr pull unpacks),

the order alternating between runs, each after a ``sync``; each pull must
leave a complete, unpacked image (``ctr images check``), then ``images rm
--sync`` empties the store so the next run downloads everything again.
Prints each run, the medians and the ratio seacan/containerd (the goal is
at most 0.8). Needs root (overlay mounts).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.fixtures import daemon as dm  # noqa: E402
from tests.fixtures import images as im  # noqa: E402
from tests.fixtures import registry as rg  # noqa: E402

NAME = "docker.io/library/bench:latest"
CLIENTS = ("seacan", "containerd")
SMALL = im.GenSpec(small_files=200, big_files=1, big_size=2 << 20)
GOAL = 0.8


def timed_pull(d: dm.Daemon, argv: list[str], ns: str, ref: str) -> float:
    os.sync()  # no run pays for another's writeback
    t0 = time.perf_counter()
    r = dm.run(argv, timeout=3600)
    elapsed = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"pull failed:\n{dm.describe(r)}\n{d.log_tail()}")
    check = d.image_check(ns).get(ref, {})
    if not check.get("STATUS", "").startswith("complete") or check.get("UNPACKED") != "true":
        raise SystemExit(f"pull did not produce a complete, unpacked image: {check}")
    d.ctr_ok("images", "rm", "--sync", ref, ns=ns)
    return elapsed


def push_with_skopeo(archive: Path, ref: str) -> None:
    r = subprocess.run(
        ["skopeo", "copy", "--preserve-digests", "--dest-tls-verify=false",
         f"oci-archive:{archive}", f"docker://{ref}"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    if r.returncode != 0:
        raise SystemExit(f"skopeo copy failed:\n{r.stderr}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--runs", type=int, default=5, help="pulls per client (default 5)")
    p.add_argument("--work", type=Path, default=REPO / "bench" / "work", help="archive cache")
    p.add_argument("--clients", default="seacan,containerd", help="comma-separated subset")
    p.add_argument("--small", action="store_true", help="a ~15 MB image, for a quick trial")
    p.add_argument("--json", action="store_true", help="also print the results as JSON")
    a = p.parse_args()

    clients = [c for c in a.clients.split(",") if c]
    if unknown := set(clients) - set(CLIENTS):
        p.error(f"unknown clients {sorted(unknown)}")
    if os.geteuid() != 0:
        p.error("needs root (the snapshotters mount overlayfs)")
    if "containerd" in clients and not dm.CONTAINERD.exists():
        print(f"{dm.CONTAINERD} not found: timing seacan only", file=sys.stderr)
        clients.remove("containerd")

    spec = SMALL if a.small else im.BENCH_SPEC
    path = a.work / ("bench-small.tar" if a.small else "bench-200mb.tar")
    archive = im.write_generated(path, NAME, spec)
    print(
        f"archive {archive.path}: {archive.path.stat().st_size / 1e6:.1f} MB, {spec.layers} layers"
    )

    times: dict[str, list[float]] = {c: [] for c in clients}
    with contextlib.ExitStack() as stack:
        reg = rg.make_registry("docker", "pull-bench")
        stack.callback(reg.cleanup)
        reg.start()
        ref = f"{reg.host}/bench/pull:latest"
        t0 = time.perf_counter()
        push_with_skopeo(archive.path, ref)
        print(f"pushed to {ref} in {time.perf_counter() - t0:.1f}s")
        seacand = containerd = None
        if "seacan" in clients:
            seacand = stack.enter_context(dm.Seacand("pull-bench").running())
        if "containerd" in clients:
            containerd = stack.enter_context(dm.Containerd("pull-bench").running())
        print("run  " + "  ".join(f"{c:>12}" for c in clients))
        for i in range(a.runs):
            ns = f"bench-pull-{i}"
            for c in clients if i % 2 == 0 else clients[::-1]:
                if c == "seacan":
                    assert seacand is not None
                    argv = seacand.seacan_argv("pull", "-q", ref, ns=ns)
                    times[c].append(timed_pull(seacand, argv, ns, ref))
                else:
                    assert containerd is not None
                    argv = containerd.ctr_argv("images", "pull", "--plain-http", ref, ns=ns)
                    times[c].append(timed_pull(containerd, argv, ns, ref))
            print(f"{i + 1:>3}  " + "  ".join(f"{times[c][-1]:>11.2f}s" for c in clients))

    medians = {c: statistics.median(v) for c, v in times.items()}
    print("med  " + "  ".join(f"{medians[c]:>11.2f}s" for c in clients))
    ratio = None
    if "seacan" in medians and "containerd" in medians:
        ratio = medians["seacan"] / medians["containerd"]
        verdict = "meets" if ratio <= GOAL else "misses"
        print(f"ratio seacan/containerd: {ratio:.2f} ({verdict} the goal of at most {GOAL})")
    if a.json:
        print(json.dumps({"archive_bytes": archive.path.stat().st_size, "runs": times,
                          "medians": medians, "ratio": ratio}))  # fmt: skip


if __name__ == "__main__":
    main()
