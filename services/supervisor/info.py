"""Version and Introspection: answered by seacand itself."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import grpc.aio

import seacan
from seacan import filters
from seacan.api.services.introspection.v1 import introspection_pb2 as ipb
from seacan.api.services.introspection.v1 import introspection_pb2_grpc as ipb_grpc
from seacan.api.services.version.v1 import version_pb2 as vpb
from seacan.api.services.version.v1 import version_pb2_grpc as vpb_grpc
from seacan.api.types import platform_pb2
from seacan.oci import host_platform

REVISION = "seacan"

# (type, id, requires): what this daemon provides, in containerd's plugin terms.
PLUGINS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("io.containerd.content.v1", "content", ()),
    ("io.containerd.snapshotter.v1", "overlayfs", ()),
    (
        "io.containerd.metadata.v1",
        "sqlite",
        ("io.containerd.content.v1", "io.containerd.snapshotter.v1"),
    ),
    ("io.containerd.differ.v1", "walking", ("io.containerd.metadata.v1",)),
    ("io.containerd.gc.v1", "scheduler", ("io.containerd.metadata.v1",)),
    ("io.containerd.lease.v1", "manager", ("io.containerd.metadata.v1",)),
    ("io.containerd.grpc.v1", "content", ("io.containerd.service.v1",)),
    ("io.containerd.grpc.v1", "snapshots", ("io.containerd.service.v1",)),
    ("io.containerd.grpc.v1", "images", ("io.containerd.service.v1",)),
    ("io.containerd.grpc.v1", "diff", ("io.containerd.service.v1",)),
    ("io.containerd.grpc.v1", "namespaces", ("io.containerd.service.v1",)),
    ("io.containerd.grpc.v1", "leases", ("io.containerd.lease.v1",)),
    ("io.containerd.grpc.v1", "introspection", ()),
    ("io.containerd.grpc.v1", "version", ()),
    ("io.containerd.grpc.v1", "healthcheck", ()),
)


def server_uuid(root: Path) -> str:
    """A stable identity for this root, made on first start."""
    p = root / "uuid"
    try:
        return p.read_text().strip()
    except FileNotFoundError:
        value = str(uuid.uuid4())
        root.mkdir(parents=True, exist_ok=True)
        tmp = p.with_suffix(".tmp")
        tmp.write_text(value + "\n")
        tmp.replace(p)
        return value


class VersionServicer(vpb_grpc.VersionServicer):
    async def Version(self, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:  # noqa: N802
        return vpb.VersionResponse(version=seacan.__version__, revision=REVISION)


class IntrospectionServicer(ipb_grpc.IntrospectionServicer):
    def __init__(self, uuid_: str) -> None:
        self._uuid = uuid_

    async def Server(self, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:  # noqa: N802
        return ipb.ServerResponse(uuid=self._uuid)

    async def Plugins(self, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:  # noqa: N802
        flt = filters.parse(list(request.filters))
        hp = host_platform()
        out = []
        for ptype, pid, requires in PLUGINS:
            lookup = filters.lookup_from({"type": ptype, "id": pid}, {})
            if not flt.match(lookup):
                continue
            p = ipb.Plugin(type=ptype, id=pid, requires=list(requires))
            if ptype == "io.containerd.snapshotter.v1":
                p.platforms.append(
                    platform_pb2.Platform(
                        os=hp.os, architecture=hp.architecture, variant=hp.variant
                    )
                )
            out.append(p)
        return ipb.PluginsResponse(plugins=out)
