"""seacan.services.volumes.v1.Volumes: protobuf <-> the volume store.

Translation only; the interceptor in :mod:`seacan.grpcutil` sets the request
scope and turns error kinds into status codes.
"""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf import empty_pb2

from seacan.api.services.volumes.v1 import volumes_pb2 as pb
from seacan.api.services.volumes.v1 import volumes_pb2_grpc
from seacan.volumes import CopyUp, VolumeStore
from seacan.volumes.proxy import volume_to_pb

SERVICE = "seacan.services.volumes.v1.Volumes"

Ctx = Any  # grpc.aio.ServicerContext; grpcio ships no types


class VolumesServicer:
    def __init__(self, store: VolumeStore) -> None:
        self._store = store

    async def Create(self, request: Any, context: Ctx) -> Any:  # noqa: N802
        v = await self._store.create(
            request.name,
            driver=request.driver,
            labels=dict(request.labels),
            options=dict(request.options),
        )
        return pb.CreateVolumeResponse(volume=volume_to_pb(v))

    async def Get(self, request: Any, context: Ctx) -> Any:  # noqa: N802
        return pb.GetVolumeResponse(volume=volume_to_pb(await self._store.get(request.name)))

    async def List(self, request: Any, context: Ctx) -> Any:  # noqa: N802
        vs = await self._store.list(list(request.filters))
        return pb.ListVolumesResponse(volumes=[volume_to_pb(v) for v in vs])

    async def Remove(self, request: Any, context: Ctx) -> Any:  # noqa: N802
        await self._store.remove(request.name, force=request.force)
        return empty_pb2.Empty()

    async def Prune(self, request: Any, context: Ctx) -> Any:  # noqa: N802
        p = await self._store.prune(list(request.filters), all=request.all)
        return pb.PruneVolumesResponse(removed=list(p.removed), reclaimed_bytes=p.reclaimed_bytes)

    async def Acquire(self, request: Any, context: Ctx) -> Any:  # noqa: N802
        copy_up = None
        if request.parent:
            copy_up = CopyUp(request.target, request.snapshotter, request.parent)
        v, copied = await self._store.acquire(
            request.name,
            request.container_id,
            driver=request.driver,
            labels=dict(request.labels),
            options=dict(request.options),
            copy_up=copy_up,
        )
        return pb.AcquireResponse(volume=volume_to_pb(v), copied=copied)

    async def Release(self, request: Any, context: Ctx) -> Any:  # noqa: N802
        removed = await self._store.release(
            request.container_id, remove_anonymous=request.remove_anonymous
        )
        return pb.ReleaseResponse(removed=removed)


def register(server: grpc.aio.Server, store: VolumeStore) -> None:
    volumes_pb2_grpc.add_VolumesServicer_to_server(VolumesServicer(store), server)
