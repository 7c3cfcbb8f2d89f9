"""Decoding the shim's cgroup v1 metrics into what stats and metrics print."""

from __future__ import annotations

import pytest

from seacan import errors
from seacan.api.cgroups.v1 import metrics_pb2 as pb
from seacan.containers import AnyValue
from seacan.tasks import stats

pytestmark = pytest.mark.unit


def _any(m: pb.Metrics) -> AnyValue:
    return AnyValue(type_url="io.containerd.cgroups.v1.Metrics", value=m.SerializeToString())


def test_decode_usage_and_rows() -> None:
    m = pb.Metrics(
        memory=pb.MemoryStat(
            cache=4096, total_inactive_file=1024, usage=pb.MemoryEntry(usage=10240, limit=65536)
        ),
        cpu=pb.CPUStat(usage=pb.CPUUsage(total=5_000_000, per_cpu=[3_000_000, 2_000_000])),
        pids=pb.PidsStat(current=3, limit=42),
    )
    u = stats.decode(_any(m))
    assert (u.cpu_ns, u.memory, u.memory_limit, u.pids) == (5_000_000, 9216, 65536, 3)
    assert dict(u.rows)["memory.usage_in_bytes"] == "10240"
    assert dict(u.rows)["cpuacct.usage_percpu"] == "[3000000, 2000000]"
    assert dict(u.rows)["pids.limit"] == "42"


def test_cpu_percent() -> None:
    a = stats.decode(_any(pb.Metrics(cpu=pb.CPUStat(usage=pb.CPUUsage(total=0)))))
    b = stats.decode(_any(pb.Metrics(cpu=pb.CPUStat(usage=pb.CPUUsage(total=500_000_000)))))
    assert stats.cpu_percent(a, b, 1_000_000_000, 2) == pytest.approx(50.0)
    assert stats.cpu_percent(a, b, 0, 2) == 0.0


def test_unknown_type_is_refused() -> None:
    with pytest.raises(errors.InvalidArgument, match="unsupported metrics type"):
        stats.decode(AnyValue(type_url="io.containerd.cgroups.v2.Metrics", value=b""))
