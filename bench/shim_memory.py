#!/usr/bin/env python3
"""Shim memory: mean PSS per container of seacan's shim against containerd's runc shim.

Starts a private seacand and, where ``/usr/bin/containerd`` exists, a
private containerd; runs ``--count`` idle busybox containers on each with
``ctr run -d ... sleep`` (seacand: ``--runtime io.containerd.seacan.v2``,
shims forked from the shim template; containerd: its default
``io.containerd.runc.v2``, the Go shim), waits ``--settle`` seconds, then
reads the proportional set size (``Pss`` in ``/proc/PID/smaps_rollup``) of
each container's shim (the container init's parent). Prints the mean per
shim, the ratio seacan/containerd (goal: at most 1.0), and, for seacan, the
template's own PSS (shared with the shims; ``--json`` for a machine-readable
line). Removes everything it started. Needs root.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.fixtures import daemon as dm  # noqa: E402
from tests.fixtures import images as im  # noqa: E402

SEACAN_RUNTIME = "io.containerd.seacan.v2"
NS = "shimbench"


def pss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    raise RuntimeError(f"no Pss for {pid}")


def ppid(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def start_containers(d: dm.Daemon, count: int, runtime: str | None) -> list[int]:
    """Run ``count`` sleepers; the pids of their shims."""
    rt = ["--runtime", runtime] if runtime else []
    for i in range(count):
        d.ctr_ok("run", "-d", *rt, im.BUSYBOX_NAME, f"c{i}", "sleep", "600", ns=NS)
    rows = dm.table(d.ctr_ok("tasks", "ls", ns=NS))
    if len(rows) != count or any(r["STATUS"] != "RUNNING" for r in rows):
        raise SystemExit(f"{d.name}: not all containers run: {rows}")
    return sorted({ppid(int(r["PID"])) for r in rows})


def remove_containers(d: dm.Daemon) -> None:
    for row in dm.table(d.run_ctr("tasks", "ls", ns=NS).stdout):
        d.run_ctr("tasks", "kill", "-s", "SIGKILL", row["TASK"], ns=NS)
    for row in dm.table(d.run_ctr("containers", "ls", ns=NS).stdout):
        d.run_ctr("tasks", "rm", "-f", row["CONTAINER"], ns=NS)
        d.run_ctr("containers", "rm", row["CONTAINER"], ns=NS)


def template_pid(d: dm.Seacand) -> int:
    tasks = d.services().get("tasks", 0)
    for kid in dm.children_of(tasks) if tasks else []:
        if "seacan.shims.template" in dm.cmdline(kid):
            return kid
    return 0


def measure(d: dm.Daemon, archive: Path, count: int, runtime: str | None, settle: float) -> dict:
    d.ctr_ok("images", "import", archive, ns=NS)
    try:
        shims = start_containers(d, count, runtime)
        time.sleep(settle)
        pss = [pss_kib(p) for p in shims]
        out = {
            "shims": len(shims),
            "mean_pss_kib": statistics.mean(pss),
            "min_pss_kib": min(pss),
            "max_pss_kib": max(pss),
            "cmdline": " ".join(dm.cmdline(shims[0]))[:80],
        }
        if isinstance(d, dm.Seacand) and (tpl := template_pid(d)):
            out["template_pss_kib"] = pss_kib(tpl)
        return out
    finally:
        remove_containers(d)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--count", type=int, default=10, help="containers per daemon (default 10)")
    p.add_argument("--settle", type=float, default=2.0, help="seconds idle before measuring")
    p.add_argument("--work", type=Path, default=REPO / "bench" / "work", help="archive cache")
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    a.work.mkdir(parents=True, exist_ok=True)
    archive = a.work / "busybox-oci.tar"
    if not archive.exists():
        im.write_busybox_oci(archive)
    results: dict[str, dict] = {}
    with contextlib.ExitStack() as stack:
        seacand = stack.enter_context(dm.Seacand("shimbench").running())
        results["seacan"] = measure(seacand, archive, a.count, SEACAN_RUNTIME, a.settle)
        if dm.CONTAINERD.exists():
            containerd = stack.enter_context(dm.Containerd("shimbench").running())
            results["containerd"] = measure(containerd, archive, a.count, None, a.settle)
    if "containerd" in results:
        results["ratio"] = {
            "pss": results["seacan"]["mean_pss_kib"] / results["containerd"]["mean_pss_kib"]
        }
    if a.json:
        print(json.dumps(results))
        return
    for name in ("seacan", "containerd"):
        if name in results:
            r = results[name]
            extra = f", template {r['template_pss_kib']} KiB" if "template_pss_kib" in r else ""
            print(
                f"{name:10s} {r['shims']} shims: mean PSS {r['mean_pss_kib']:.0f} KiB "
                f"(min {r['min_pss_kib']}, max {r['max_pss_kib']}){extra}  [{r['cmdline']}]"
            )
    if "ratio" in results:
        print(f"ratio seacan/containerd (goal <= 1.0): {results['ratio']['pss']:.2f}")


if __name__ == "__main__":
    main()
