"""runc ``events --stats`` data -> ``io.containerd.cgroups.v1.Metrics``.

``RECORDED`` is ``runc events --stats`` output from a busybox ``sleep`` with
a 64 MiB memory limit and a 64-pid limit (runc 1.1.5, cgroup v1 host), with
the empty ``blkio``/``hugetlb``/``throttling`` objects filled in by hand in
the shapes runc emits, so every mapped field has a non-zero value.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from seacan.api.cgroups.v1 import metrics_pb2
from seacan.api.runtime.task.v2 import shim_pb2
from seacan.shims import metrics
from seacan.shims.events import pack

pytestmark = pytest.mark.unit

NO_LIMIT = 9223372036854771712

RECORDED: dict[str, Any] = {
    "cpu": {
        "usage": {
            "total": 12059772,
            "percpu": [2662509, 9397263],
            "percpu_kernel": [0, 4000000],
            "percpu_user": [0, 4000000],
            "kernel": 30000000,
            "user": 10000000,
        },
        "throttling": {"periods": 40, "throttledPeriods": 3, "throttledTime": 123456},
    },
    "cpuset": {"cpus": [0, 1], "mems": [0], "sched_relax_domain_level": -1},
    "memory": {
        "cache": 4096,
        "usage": {"limit": 67108864, "usage": 454656, "max": 2768896, "failcnt": 0},
        "swap": {"limit": NO_LIMIT, "usage": 454656, "max": 2768896, "failcnt": 0},
        "kernel": {"limit": NO_LIMIT, "usage": 258048, "max": 606208, "failcnt": 0},
        "kernelTCP": {"limit": NO_LIMIT, "failcnt": 0},
        "raw": {
            "active_anon": 4096,
            "active_file": 4096,
            "cache": 4096,
            "dirty": 4096,
            "hierarchical_memory_limit": 67108864,
            "hierarchical_memsw_limit": NO_LIMIT,
            "inactive_anon": 24576,
            "inactive_file": 0,
            "mapped_file": 0,
            "pgfault": 777,
            "pgmajfault": 0,
            "pgpgin": 475,
            "pgpgout": 462,
            "rss": 49152,
            "rss_huge": 0,
            "shmem": 0,
            "swap": 0,
            "total_active_anon": 4096,
            "total_active_file": 4096,
            "total_cache": 8192,
            "total_dirty": 4096,
            "total_inactive_anon": 24576,
            "total_pgfault": 778,
            "total_pgpgin": 476,
            "total_pgpgout": 463,
            "total_rss": 49152,
            "total_unevictable": 0,
            "unevictable": 0,
            "writeback": 0,
        },
    },
    "pids": {"current": 1, "limit": 64},
    "blkio": {
        "ioServiceBytesRecursive": [
            {"major": 8, "minor": 0, "op": "Read", "value": 4096},
            {"major": 8, "minor": 0, "op": "Write"},
        ],
        "ioQueueRecursive": [{"major": 8, "minor": 0, "op": "Total", "value": 2}],
        "sectorsRecursive": [{"major": 8, "minor": 0, "value": 8}],
    },
    "hugetlb": {
        "1GB": {"failcnt": 0},
        "2MB": {"usage": 2097152, "max": 4194304, "failcnt": 1},
    },
    "intel_rdt": {},
    "network_interfaces": None,
}


def test_cpu() -> None:
    cpu = metrics.to_metrics(RECORDED).cpu
    assert cpu.usage.total == 12059772
    assert list(cpu.usage.per_cpu) == [2662509, 9397263]
    assert (cpu.usage.kernel, cpu.usage.user) == (30000000, 10000000)
    assert cpu.throttling == metrics_pb2.Throttle(
        periods=40, throttled_periods=3, throttled_time=123456
    )


def test_memory_entries() -> None:
    mem = metrics.to_metrics(RECORDED).memory
    assert mem.usage == metrics_pb2.MemoryEntry(
        limit=67108864, usage=454656, max=2768896, failcnt=0
    )
    assert (mem.swap.limit, mem.swap.usage, mem.swap.max) == (NO_LIMIT, 454656, 2768896)
    assert (mem.kernel.usage, mem.kernel.max) == (258048, 606208)
    assert (mem.kernel_tcp.limit, mem.kernel_tcp.usage) == (NO_LIMIT, 0)


def test_memory_stat_file() -> None:
    mem = metrics.to_metrics(RECORDED).memory
    assert (mem.cache, mem.rss, mem.dirty) == (4096, 49152, 4096)
    assert (mem.pg_pg_in, mem.pg_pg_out, mem.pg_fault) == (475, 462, 777)
    assert (mem.inactive_anon, mem.active_anon, mem.active_file) == (24576, 4096, 4096)
    assert mem.hierarchical_memory_limit == 67108864
    assert mem.hierarchical_swap_limit == NO_LIMIT
    assert (mem.total_cache, mem.total_rss) == (8192, 49152)
    assert (mem.total_pg_pg_in, mem.total_pg_pg_out, mem.total_pg_fault) == (476, 463, 778)
    assert mem.total_inactive_anon == 24576
    assert mem.total_inactive_file == 0  # absent from raw -> 0


def test_pids() -> None:
    assert metrics.to_metrics(RECORDED).pids == metrics_pb2.PidsStat(current=1, limit=64)


def test_blkio_entries_and_device_names() -> None:
    blkio = metrics.to_metrics(RECORDED, lambda major, minor: f"/dev/b{major}.{minor}").blkio
    assert list(blkio.io_service_bytes_recursive) == [
        metrics_pb2.BlkIOEntry(op="Read", device="/dev/b8.0", major=8, minor=0, value=4096),
        metrics_pb2.BlkIOEntry(op="Write", device="/dev/b8.0", major=8, minor=0, value=0),
    ]
    assert [e.value for e in blkio.io_queued_recursive] == [2]
    assert [(e.op, e.value) for e in blkio.sectors_recursive] == [("", 8)]
    assert len(blkio.io_serviced_recursive) == 0
    assert metrics.to_metrics(RECORDED).blkio.io_service_bytes_recursive[0].device == ""


def test_hugetlb_one_per_page_size_smallest_first() -> None:
    hugetlb = list(metrics.to_metrics(RECORDED).hugetlb)
    assert hugetlb == [
        metrics_pb2.HugetlbStat(usage=2097152, max=4194304, failcnt=1, pagesize="2MB"),
        metrics_pb2.HugetlbStat(pagesize="1GB"),
    ]


def test_missing_sections_stay_unset_and_bad_values_are_zero() -> None:
    out = metrics.to_metrics({"memory": {"usage": {"usage": -5, "limit": "x", "max": True}}})
    assert out.HasField("memory")
    assert out.memory.usage == metrics_pb2.MemoryEntry()
    for field in ("cpu", "pids", "blkio", "rdma", "cgroup_stats", "memory_oom_control"):
        assert not out.HasField(field)
    assert len(out.hugetlb) == 0
    huge = metrics.to_metrics({"cpu": {"usage": {"total": 2**70, "percpu": [2**65, 1]}}})
    assert huge.cpu.usage.total == 2**64 - 1
    assert list(huge.cpu.usage.per_cpu) == [2**64 - 1, 1]


def test_input_is_not_modified() -> None:
    before = copy.deepcopy(RECORDED)
    metrics.to_metrics(RECORDED)
    assert before == RECORDED


def test_stats_response_carries_bare_type_url() -> None:
    resp = shim_pb2.StatsResponse(stats=pack(metrics.to_metrics(RECORDED)))
    assert resp.stats.type_url == metrics.TYPE_URL == "io.containerd.cgroups.v1.Metrics"
    back = metrics_pb2.Metrics.FromString(resp.stats.value)
    assert back.memory.usage.usage == 454656
    # Metrics.memory=4 -> MemoryStat.usage=33 -> MemoryEntry.usage=2, on the wire.
    usage = metrics_pb2.Metrics(
        memory=metrics_pb2.MemoryStat(usage=metrics_pb2.MemoryEntry(usage=1))
    ).SerializeToString()
    assert usage == b"\x22\x05" + b"\x8a\x02\x02" + b"\x10\x01"


def test_sys_block_device_unknown_is_empty() -> None:
    assert metrics.sys_block_device(4095, 1048575) == ""
