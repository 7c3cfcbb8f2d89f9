"""Task metrics, decoded from the shim's ``io.containerd.cgroups.v1.Metrics``."""

from __future__ import annotations

from dataclasses import dataclass

from seacan import errors
from seacan.api.cgroups.v1 import metrics_pb2
from seacan.containers import AnyValue

V1_METRICS = "io.containerd.cgroups.v1.Metrics"


@dataclass(frozen=True, slots=True)
class Usage:
    """What ``docker stats`` shows of one container at one moment."""

    cpu_ns: int  # total CPU time used, nanoseconds
    memory: int  # bytes in use (page cache excluded, as docker does)
    memory_limit: int
    pids: int
    rows: tuple[tuple[str, str], ...]  # ctr's METRIC/VALUE pairs


def decode(data: AnyValue | None) -> Usage:
    """InvalidArgument when the metrics are not cgroup v1 metrics."""
    if data is None or data.type_url != V1_METRICS:
        kind = data.type_url if data else "nothing"
        raise errors.InvalidArgument(f"unsupported metrics type {kind!r}")
    m = metrics_pb2.Metrics.FromString(data.value)
    mem = m.memory
    cache = mem.total_inactive_file or mem.cache
    rows: list[tuple[str, str]] = []
    if m.HasField("memory"):
        rows += [
            ("memory.usage_in_bytes", str(mem.usage.usage)),
            ("memory.limit_in_bytes", str(mem.usage.limit)),
            ("memory.stat.cache", str(mem.cache)),
        ]
    if m.HasField("cpu"):
        rows += [
            ("cpuacct.usage", str(m.cpu.usage.total)),
            ("cpuacct.usage_percpu", str(list(m.cpu.usage.per_cpu))),
        ]
    if m.HasField("pids"):
        rows += [("pids.current", str(m.pids.current)), ("pids.limit", str(m.pids.limit))]
    return Usage(
        cpu_ns=m.cpu.usage.total,
        memory=max(0, mem.usage.usage - cache),
        memory_limit=mem.usage.limit,
        pids=m.pids.current,
        rows=tuple(rows),
    )


def cpu_percent(before: Usage, after: Usage, wall_ns: int, cpus: int) -> float:
    """CPU use over an interval, 100% per fully used CPU (docker's convention)."""
    if wall_ns <= 0:
        return 0.0
    return max(0.0, (after.cpu_ns - before.cpu_ns) / wall_ns * 100.0) if cpus else 0.0
