#!/usr/bin/env python3
"""Import benchmark: seacan against containerd on the same generated archive.

Generates (or reuses, from ``--work``) a ~200 MB OCI archive with 5 gzip
layers, 10,000 small files and 10 big ones; starts a private seacand and,
where ``/usr/bin/containerd`` exists, a private containerd; then, ``--runs``
times, in a fresh namespace each run:

- ``seacan images import`` against seacand,
- ``ctr images import`` against containerd,
- (``--clients`` may add ``ctr-seacand``: the real ctr against seacand),

each followed by ``images rm --sync`` so the next run starts from an empty
store, each preceded by ``sync`` so no run pays for another's writeback, the
order alternating between runs. Every import is checked (``ctr images check``: complete, unpacked)
before it counts. Prints each run, the medians and the ratio
seacan/containerd (the goal is at most 1.0). Needs root (overlay mounts).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.fixtures import daemon as dm  # noqa: E402
from tests.fixtures import images as im  # noqa: E402

NAME = "docker.io/library/bench:latest"
CLIENTS = ("seacan", "containerd", "ctr-seacand")
SMALL = im.GenSpec(small_files=200, big_files=1, big_size=2 << 20)


def timed_import(d: dm.Daemon, argv: list[str], ns: str) -> float:
    # Start each run with no dirty pages: the previous run's writeback must not be billed here.
    os.sync()
    t0 = time.perf_counter()
    r = dm.run(argv, timeout=3600)
    elapsed = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"import failed:\n{dm.describe(r)}\n{d.log_tail()}")
    check = d.image_check(ns).get(NAME, {})
    if not check.get("STATUS", "").startswith("complete") or check.get("UNPACKED") != "true":
        raise SystemExit(f"import did not produce a complete, unpacked image: {check}")
    d.ctr_ok("images", "rm", "--sync", NAME, ns=ns)
    return elapsed


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--runs", type=int, default=5, help="imports per client (default 5)")
    p.add_argument("--work", type=Path, default=REPO / "bench" / "work", help="archive cache")
    p.add_argument(
        "--clients",
        default="seacan,containerd",
        help=f"comma-separated, from {','.join(CLIENTS)} (default seacan,containerd)",
    )
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
    t0 = time.perf_counter()
    archive = im.write_generated(path, NAME, spec)
    files = spec.layers * (spec.small_files + spec.big_files)
    print(
        f"archive {archive.path}: {archive.path.stat().st_size / 1e6:.1f} MB, "
        f"{spec.layers} layers, {files} files (ready in {time.perf_counter() - t0:.1f}s)"
    )

    times: dict[str, list[float]] = {c: [] for c in clients}
    with contextlib.ExitStack() as stack:
        seacand = containerd = None
        if {"seacan", "ctr-seacand"} & set(clients):
            seacand = stack.enter_context(dm.Seacand("bench").running())
        if "containerd" in clients:
            containerd = stack.enter_context(dm.Containerd("bench").running())
        print("run  " + "  ".join(f"{c:>12}" for c in clients))
        for i in range(a.runs):
            ns = f"bench-{i}"
            # Alternate the order, so neither side always runs second.
            for c in clients if i % 2 == 0 else clients[::-1]:
                if c == "seacan":
                    assert seacand is not None
                    argv = seacand.seacan_argv("images", "import", archive.path, ns=ns)
                    times[c].append(timed_import(seacand, argv, ns))
                elif c == "ctr-seacand":
                    assert seacand is not None
                    argv = seacand.ctr_argv("images", "import", archive.path, ns=ns)
                    times[c].append(timed_import(seacand, argv, ns))
                else:
                    assert containerd is not None
                    argv = containerd.ctr_argv("images", "import", archive.path, ns=ns)
                    times[c].append(timed_import(containerd, argv, ns))
            print(f"{i + 1:>3}  " + "  ".join(f"{times[c][-1]:>11.2f}s" for c in clients))

    medians = {c: statistics.median(v) for c, v in times.items()}
    print("med  " + "  ".join(f"{medians[c]:>11.2f}s" for c in clients))
    ratio = None
    if "seacan" in medians and "containerd" in medians:
        ratio = medians["seacan"] / medians["containerd"]
        verdict = "meets" if ratio <= 1.0 else "misses"
        print(f"ratio seacan/containerd: {ratio:.2f} ({verdict} the goal of at most 1.0)")
    if a.json:
        print(json.dumps({"archive_bytes": archive.path.stat().st_size, "runs": times,
                          "medians": medians, "ratio": ratio}))  # fmt: skip


if __name__ == "__main__":
    main()
