"""containerd.services.snapshots.v1.Snapshots: protobuf <-> a Snapshotter.

Translation only; the interceptor in :mod:`seacan.grpcutil` sets the request
scope and turns error kinds into status codes. Every request names its
snapshotter; only ``overlayfs`` is loaded, and any other name is refused as
containerd refuses it (InvalidArgument ``snapshotter not loaded: <name>``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, TypeAlias

import grpc
from google.protobuf import empty_pb2

from seacan import errors
from seacan.api.services.snapshots.v1 import snapshots_pb2 as pb
from seacan.api.services.snapshots.v1 import snapshots_pb2_grpc
from seacan.snapshots import Snapshotter
from seacan.snapshots.proxy import info_from_pb, info_to_pb, mounts_to_pb

SERVICE = "containerd.services.snapshots.v1.Snapshots"
SNAPSHOTTER = "overlayfs"
LIST_BATCH = 100

Ctx: TypeAlias = grpc.aio.ServicerContext[Any, Any]


class SnapshotsServicer:
    def __init__(self, snapshotter: Snapshotter, name: str = SNAPSHOTTER) -> None:
        self._sn = snapshotter
        self._name = name

    def _get(self, name: str) -> Snapshotter:
        if not name:
            raise errors.InvalidArgument("snapshotter argument missing")
        if name != self._name:
            raise errors.InvalidArgument(f"snapshotter not loaded: {name}")
        return self._sn

    async def Prepare(self, request: Any, context: Ctx) -> Any:  # noqa: N802
        sn = self._get(request.snapshotter)
        mounts = await sn.prepare(request.key, request.parent, dict(request.labels))
        return pb.PrepareSnapshotResponse(mounts=mounts_to_pb(mounts))

    async def View(self, request: Any, context: Ctx) -> Any:  # noqa: N802
        sn = self._get(request.snapshotter)
        mounts = await sn.view(request.key, request.parent, dict(request.labels))
        return pb.ViewSnapshotResponse(mounts=mounts_to_pb(mounts))

    async def Mounts(self, request: Any, context: Ctx) -> Any:  # noqa: N802
        mounts = await self._get(request.snapshotter).mounts(request.key)
        return pb.MountsResponse(mounts=mounts_to_pb(mounts))

    async def Commit(self, request: Any, context: Ctx) -> Any:  # noqa: N802
        sn = self._get(request.snapshotter)
        await sn.commit(request.name, request.key, dict(request.labels))
        return empty_pb2.Empty()

    async def Remove(self, request: Any, context: Ctx) -> Any:  # noqa: N802
        await self._get(request.snapshotter).remove(request.key)
        return empty_pb2.Empty()

    async def Stat(self, request: Any, context: Ctx) -> Any:  # noqa: N802
        info = await self._get(request.snapshotter).stat(request.key)
        return pb.StatSnapshotResponse(info=info_to_pb(info))

    async def Update(self, request: Any, context: Ctx) -> Any:  # noqa: N802
        sn = self._get(request.snapshotter)
        paths = list(request.update_mask.paths) if request.HasField("update_mask") else []
        info = await sn.update(info_from_pb(request.info), paths)
        return pb.UpdateSnapshotResponse(info=info_to_pb(info))

    async def List(self, request: Any, context: Ctx) -> AsyncIterator[Any]:  # noqa: N802
        sn = self._get(request.snapshotter)
        batch: list[Any] = []
        async for info in sn.list(list(request.filters)):
            batch.append(info_to_pb(info))
            if len(batch) >= LIST_BATCH:
                yield pb.ListSnapshotsResponse(info=batch)
                batch = []
        if batch:
            yield pb.ListSnapshotsResponse(info=batch)

    async def Usage(self, request: Any, context: Ctx) -> Any:  # noqa: N802
        usage = await self._get(request.snapshotter).usage(request.key)
        return pb.UsageResponse(size=usage.size, inodes=usage.inodes)

    async def Cleanup(self, request: Any, context: Ctx) -> Any:  # noqa: N802
        await self._get(request.snapshotter).cleanup()
        return empty_pb2.Empty()


def register(server: grpc.aio.Server, snapshotter: Snapshotter) -> None:
    snapshots_pb2_grpc.add_SnapshotsServicer_to_server(SnapshotsServicer(snapshotter), server)
