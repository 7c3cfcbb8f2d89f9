"""Task metrics: runc's ``events --stats`` data as ``io.containerd.cgroups.v1.Metrics``.

containerd's runc shim answers ``Stats`` with the cgroup v1 ``Metrics`` that
``github.com/containerd/cgroups`` (``cgroup1``) reads straight from the
container's cgroup files. seacan's shim asks runc instead (``runc events
--stats``; runc reads the same files) and converts its JSON here. The field
mapping is cgroups v1's ``Stat``:

=============================  ==========================================
runc JSON (``data``)           Metrics
=============================  ==========================================
``cpu.usage.total/percpu``     ``cpu.usage.total/per_cpu`` (cpuacct.usage)
``cpu.usage.kernel/user``      ``cpu.usage.kernel/user`` (ns)
``cpu.throttling.*``           ``cpu.throttling.*`` (cpu.stat)
``memory.usage/swap/kernel``   ``memory.usage/swap/kernel`` (swap = memsw)
``memory.kernelTCP``           ``memory.kernel_tcp``
``memory.raw`` (memory.stat)   ``memory.cache, rss, ..., total_*``
``pids.current/limit``         ``pids.current/limit`` (0 = no limit)
``blkio.<file>Recursive``      ``blkio.<file>_recursive`` entries
``hugetlb{pagesize: entry}``   ``hugetlb`` (one per page size, by size)
=============================  ==========================================

Pure: no I/O except :func:`sys_block_device`, which a caller may pass in to
name block devices as cgroups v1 does (``/dev/sda``). Missing or malformed
values become 0, so a partial runc answer still converts.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from seacan.api.cgroups.v1 import metrics_pb2 as m

TYPE_URL = "io.containerd.cgroups.v1.Metrics"

DeviceName = Callable[[int, int], str]

_U64_MAX = 2**64 - 1

# memory.stat keys (runc's memory.raw) -> MemoryStat fields, as cgroups v1 parses them.
_MEMORY_RAW = {
    "cache": "cache",
    "rss": "rss",
    "rss_huge": "rss_huge",
    "mapped_file": "mapped_file",
    "dirty": "dirty",
    "writeback": "writeback",
    "pgpgin": "pg_pg_in",
    "pgpgout": "pg_pg_out",
    "pgfault": "pg_fault",
    "pgmajfault": "pg_maj_fault",
    "inactive_anon": "inactive_anon",
    "active_anon": "active_anon",
    "inactive_file": "inactive_file",
    "active_file": "active_file",
    "unevictable": "unevictable",
    "hierarchical_memory_limit": "hierarchical_memory_limit",
    "hierarchical_memsw_limit": "hierarchical_swap_limit",
    "total_cache": "total_cache",
    "total_rss": "total_rss",
    "total_rss_huge": "total_rss_huge",
    "total_mapped_file": "total_mapped_file",
    "total_dirty": "total_dirty",
    "total_writeback": "total_writeback",
    "total_pgpgin": "total_pg_pg_in",
    "total_pgpgout": "total_pg_pg_out",
    "total_pgfault": "total_pg_fault",
    "total_pgmajfault": "total_pg_maj_fault",
    "total_inactive_anon": "total_inactive_anon",
    "total_active_anon": "total_active_anon",
    "total_inactive_file": "total_inactive_file",
    "total_active_file": "total_active_file",
    "total_unevictable": "total_unevictable",
}

# runc's blkio keys -> BlkIOStat fields (note runc's "ioQueueRecursive").
_BLKIO = {
    "ioServiceBytesRecursive": "io_service_bytes_recursive",
    "ioServicedRecursive": "io_serviced_recursive",
    "ioQueueRecursive": "io_queued_recursive",
    "ioServiceTimeRecursive": "io_service_time_recursive",
    "ioWaitTimeRecursive": "io_wait_time_recursive",
    "ioMergedRecursive": "io_merged_recursive",
    "ioTimeRecursive": "io_time_recursive",
    "sectorsRecursive": "sectors_recursive",
}

_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def to_metrics(stats: Mapping[str, Any], device_name: DeviceName | None = None) -> m.Metrics:
    """Convert runc's ``events --stats`` ``data`` object to cgroup v1 ``Metrics``."""
    out = m.Metrics()
    if isinstance(cpu := stats.get("cpu"), Mapping):
        out.cpu.CopyFrom(_cpu(cpu))
    if isinstance(memory := stats.get("memory"), Mapping):
        out.memory.CopyFrom(_memory(memory))
    if isinstance(pids := stats.get("pids"), Mapping):
        out.pids.CopyFrom(m.PidsStat(current=_u64(pids, "current"), limit=_u64(pids, "limit")))
    if isinstance(blkio := stats.get("blkio"), Mapping):
        out.blkio.CopyFrom(_blkio(blkio, device_name))
    if isinstance(hugetlb := stats.get("hugetlb"), Mapping):
        out.hugetlb.extend(_hugetlb(hugetlb))
    return out


def sys_block_device(major: int, minor: int) -> str:
    """``/dev/<name>`` of a block device from sysfs, or ``""`` if unknown."""
    try:
        uevent = Path(f"/sys/dev/block/{major}:{minor}/uevent").read_text()
    except OSError:
        return ""
    for line in uevent.splitlines():
        key, _, value = line.partition("=")
        if key == "DEVNAME" and value:
            return f"/dev/{value}"
    return ""


def _cpu(cpu: Mapping[str, Any]) -> m.CPUStat:
    usage = _map(cpu, "usage")
    throttling = _map(cpu, "throttling")
    return m.CPUStat(
        usage=m.CPUUsage(
            total=_u64(usage, "total"),
            kernel=_u64(usage, "kernel"),
            user=_u64(usage, "user"),
            per_cpu=[_clamp(v) for v in _list(usage, "percpu")],
        ),
        throttling=m.Throttle(
            periods=_u64(throttling, "periods"),
            throttled_periods=_u64(throttling, "throttledPeriods"),
            throttled_time=_u64(throttling, "throttledTime"),
        ),
    )


def _memory(memory: Mapping[str, Any]) -> m.MemoryStat:
    raw = _map(memory, "raw")
    out = m.MemoryStat(
        usage=_memory_entry(_map(memory, "usage")),
        swap=_memory_entry(_map(memory, "swap")),
        kernel=_memory_entry(_map(memory, "kernel")),
        kernel_tcp=_memory_entry(_map(memory, "kernelTCP")),
    )
    for key, field in _MEMORY_RAW.items():
        setattr(out, field, _u64(raw, key))
    if "cache" not in raw:
        out.cache = _u64(memory, "cache")
    return out


def _memory_entry(entry: Mapping[str, Any]) -> m.MemoryEntry:
    return m.MemoryEntry(
        limit=_u64(entry, "limit"),
        usage=_u64(entry, "usage"),
        max=_u64(entry, "max"),
        failcnt=_u64(entry, "failcnt"),
    )


def _blkio(blkio: Mapping[str, Any], device_name: DeviceName | None) -> m.BlkIOStat:
    out = m.BlkIOStat()
    for key, field in _BLKIO.items():
        entries = getattr(out, field)
        for e in _list(blkio, key):
            if not isinstance(e, Mapping):
                continue
            major, minor = _u64(e, "major"), _u64(e, "minor")
            entries.add(
                op=str(e.get("op") or ""),
                device=device_name(major, minor) if device_name else "",
                major=major,
                minor=minor,
                value=_u64(e, "value"),
            )
    return out


def _hugetlb(hugetlb: Mapping[str, Any]) -> list[m.HugetlbStat]:
    out = []
    for pagesize in sorted(hugetlb, key=_page_bytes):
        entry = hugetlb[pagesize]
        if not isinstance(entry, Mapping):
            continue
        out.append(
            m.HugetlbStat(
                usage=_u64(entry, "usage"),
                max=_u64(entry, "max"),
                failcnt=_u64(entry, "failcnt"),
                pagesize=str(pagesize),
            )
        )
    return out


def _page_bytes(pagesize: str) -> tuple[int, str]:
    """Sort key for runc's page-size names ("64KB", "2MB", "1GB"): size, then name."""
    match = re.fullmatch(r"(\d+)([KMGT]?)B?", str(pagesize))
    if not match:
        return (_U64_MAX, str(pagesize))
    return (int(match[1]) * _UNITS[match[2]], str(pagesize))


def _map(doc: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = doc.get(key)
    return value if isinstance(value, Mapping) else {}


def _list(doc: Mapping[str, Any], key: str) -> list[Any]:
    value = doc.get(key)
    return value if isinstance(value, list) else []


def _u64(doc: Mapping[str, Any], key: str) -> int:
    return _clamp(doc.get(key))


def _clamp(value: Any) -> int:
    """A uint64 field value: ints (not bools) clamped to [0, 2**64-1], else 0."""
    if isinstance(value, bool) or not isinstance(value, int):
        return 0
    return min(max(value, 0), _U64_MAX)
