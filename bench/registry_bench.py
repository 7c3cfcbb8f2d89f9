#!/usr/bin/env python3
"""Registry benchmark: skopeo push and pull throughput, seacan's registry against docker-registry.

Generates (or reuses, from ``--work``) the ~200 MB OCI archive of
``import_bench.py`` (5 gzip layers), unpacks it once into an OCI layout
directory, starts Debian's ``docker-registry`` (distribution 2.8) and
``seacan registry serve`` on loopback, each in its own ``/tmp/sc-*`` root;
then, ``--runs`` times, for each registry (the order alternating between
runs):

- push: ``skopeo copy oci:LAYOUT:latest docker://HOST/bench/image:latest``
  into an empty registry (it is restarted on a fresh root before each push,
  outside the timing), then the manifest served must be the image's;
- pull: ``skopeo copy docker://HOST/bench/image:latest dir:OUT`` into an
  empty directory, then the manifest written must be the image's.

Each timing starts after a ``sync``. Prints each run, the medians in seconds
and MB/s (image bytes / time) and the throughput ratio seacan/docker-registry
(the goal is at least 1.0).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import statistics
import sys
import tarfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.fixtures import daemon as dm  # noqa: E402
from tests.fixtures import images as im  # noqa: E402
from tests.fixtures import registry as rg  # noqa: E402

NAME = "docker.io/library/bench:latest"
SMALL = im.GenSpec(small_files=200, big_files=1, big_size=2 << 20)
SKOPEO = shutil.which("skopeo") or "/usr/bin/skopeo"
KINDS = ("docker", "seacan")
LABEL = {"docker": "docker-registry", "seacan": "seacan"}
REF = "bench/image:latest"


def skopeo(*args: str | Path) -> None:
    r = dm.run([SKOPEO, "--insecure-policy", *map(str, args)], timeout=3600)
    if r.returncode != 0:
        raise SystemExit(f"skopeo failed:\n{dm.describe(r)}")


def served_manifest_digest(reg: rg.Registry) -> str:
    repo, tag = REF.split(":")
    req = urllib.request.Request(
        f"{reg.url}/v2/{repo}/manifests/{tag}", headers={"Accept": im.OCI_MANIFEST}
    )
    with urllib.request.urlopen(req, timeout=60) as r:
        return "sha256:" + hashlib.sha256(r.read()).hexdigest()


def fresh(reg: rg.Registry) -> None:
    """Restart the registry on an empty root (same port), outside any timing."""
    reg.stop()
    shutil.rmtree(reg.root)
    reg.root.mkdir()
    reg.start()


def timed(fn: Callable[[rg.Registry, Path], None], reg: rg.Registry, path: Path) -> float:
    os.sync()
    t0 = time.perf_counter()
    fn(reg, path)
    return time.perf_counter() - t0


def push(reg: rg.Registry, layout: Path) -> None:
    skopeo("copy", "--dest-tls-verify=false", f"oci:{layout}:latest", f"docker://{reg.host}/{REF}")


def pull(reg: rg.Registry, out: Path) -> None:
    skopeo("copy", "--src-tls-verify=false", f"docker://{reg.host}/{REF}", f"dir:{out}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--runs", type=int, default=3, help="pushes and pulls per registry (default 3)")
    p.add_argument("--work", type=Path, default=REPO / "bench" / "work", help="archive cache")
    p.add_argument("--small", action="store_true", help="a ~15 MB image, for a quick trial")
    p.add_argument("--json", action="store_true", help="also print the results as JSON")
    a = p.parse_args()

    spec = SMALL if a.small else im.BENCH_SPEC
    path = a.work / ("bench-small.tar" if a.small else "bench-200mb.tar")
    t0 = time.perf_counter()
    archive = im.write_generated(path, NAME, spec)
    layout = path.with_name(path.stem + "-layout")
    if not (layout / "index.json").exists():
        shutil.rmtree(layout, ignore_errors=True)
        with tarfile.open(path) as t:
            t.extractall(layout, filter="data")
    index = json.loads((layout / "index.json").read_text())
    size = sum(
        (layout / "blobs" / "sha256" / im.hexpart(d)).stat().st_size
        for d in [archive.manifest_digest, archive.config_digest, *archive.layer_digests]
    )
    assert index["manifests"][0]["digest"] == archive.manifest_digest
    print(
        f"image {layout}: {size / 1e6:.1f} MB, {spec.layers} layers "
        f"(ready in {time.perf_counter() - t0:.1f}s)"
    )

    times: dict[str, list[float]] = {f"{op} {k}": [] for op in ("push", "pull") for k in KINDS}
    with contextlib.ExitStack() as stack:
        regs = {k: stack.enter_context(rg.make_registry(k, "bench").running()) for k in KINDS}
        out = dm.short_base("registry-bench-out")
        stack.callback(shutil.rmtree, out, True)
        print("run  " + "  ".join(f"{c:>14}" for c in times))
        for i in range(a.runs):
            # Alternate the order, so neither registry always runs second.
            for k in KINDS if i % 2 == 0 else KINDS[::-1]:
                reg = regs[k]
                fresh(reg)
                times[f"push {k}"].append(timed(push, reg, layout))
                if served_manifest_digest(reg) != archive.manifest_digest:
                    raise SystemExit(f"{LABEL[k]} serves another manifest after the push")
                shutil.rmtree(out, ignore_errors=True)
                times[f"pull {k}"].append(timed(pull, reg, out))
                got = "sha256:" + hashlib.sha256((out / "manifest.json").read_bytes()).hexdigest()
                if got != archive.manifest_digest:
                    raise SystemExit(f"the pull from {LABEL[k]} wrote another manifest: {got}")
            print(f"{i + 1:>3}  " + "  ".join(f"{v[-1]:>13.2f}s" for v in times.values()))

    medians = {c: statistics.median(v) for c, v in times.items()}
    rates = {c: size / 1e6 / m for c, m in medians.items()}
    print("med  " + "  ".join(f"{medians[c]:>13.2f}s" for c in times))
    print("MB/s " + "  ".join(f"{rates[c]:>14.1f}" for c in times))
    ratios = {op: rates[f"{op} seacan"] / rates[f"{op} docker"] for op in ("push", "pull")}
    for op, ratio in ratios.items():
        verdict = "meets" if ratio >= 1.0 else "misses"
        print(
            f"{op}: seacan {rates[f'{op} seacan']:.1f} MB/s, docker-registry "
            f"{rates[f'{op} docker']:.1f} MB/s, ratio seacan/docker-registry {ratio:.2f} "
            f"({verdict} the goal of at least 1.0)"
        )
    if a.json:
        print(json.dumps({"image_bytes": size, "runs": times, "medians": medians,
                          "mb_per_s": rates, "ratios": ratios}))  # fmt: skip


if __name__ == "__main__":
    main()
