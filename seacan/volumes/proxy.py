"""RemoteVolumes: the volume store over gRPC; the conversions the servicer shares."""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from typing import Any

import grpc.aio

from seacan import grpcutil
from seacan.api.services.volumes.v1 import volumes_pb2 as pb
from seacan.api.services.volumes.v1 import volumes_pb2_grpc
from seacan.volumes import CopyUp, Pruned, Volume


def volume_to_pb(v: Volume) -> Any:
    return pb.Volume(
        name=v.name,
        driver=v.driver,
        labels=dict(v.labels),
        options=dict(v.options),
        mountpoint=v.mountpoint,
        created_at=grpcutil.timestamp(v.created_at),
        containers=list(v.containers),
    )


def volume_from_pb(msg: Any) -> Volume:
    return Volume(
        name=msg.name,
        driver=msg.driver,
        labels=dict(msg.labels),
        options=dict(msg.options),
        mountpoint=msg.mountpoint,
        created_at=grpcutil.from_timestamp(msg.created_at),
        containers=tuple(msg.containers),
    )


class RemoteVolumes:
    """:class:`seacan.volumes.VolumeStore` over a gRPC channel (seacand's or the service's)."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._stub = volumes_pb2_grpc.VolumesStub(channel)

    async def create(
        self,
        name: str,
        *,
        driver: str = "",
        labels: Mapping[str, str] | None = None,
        options: Mapping[str, str] | None = None,
    ) -> Volume:
        req = pb.CreateVolumeRequest(
            name=name, driver=driver, labels=dict(labels or {}), options=dict(options or {})
        )
        async with grpcutil.native_errors():
            resp = await self._stub.Create(req, metadata=grpcutil.scope_metadata())
        return volume_from_pb(resp.volume)

    async def get(self, name: str) -> Volume:
        async with grpcutil.native_errors():
            resp = await self._stub.Get(
                pb.GetVolumeRequest(name=name), metadata=grpcutil.scope_metadata()
            )
        return volume_from_pb(resp.volume)

    async def list(self, filters: Sequence[str] = ()) -> builtins.list[Volume]:
        async with grpcutil.native_errors():
            resp = await self._stub.List(
                pb.ListVolumesRequest(filters=list(filters)), metadata=grpcutil.scope_metadata()
            )
        return [volume_from_pb(v) for v in resp.volumes]

    async def remove(self, name: str, *, force: bool = False) -> None:
        async with grpcutil.native_errors():
            await self._stub.Remove(
                pb.RemoveVolumeRequest(name=name, force=force), metadata=grpcutil.scope_metadata()
            )

    async def prune(self, filters: Sequence[str] = (), *, all: bool = False) -> Pruned:
        async with grpcutil.native_errors():
            resp = await self._stub.Prune(
                pb.PruneVolumesRequest(filters=list(filters), all=all),
                metadata=grpcutil.scope_metadata(),
            )
        return Pruned(tuple(resp.removed), resp.reclaimed_bytes)

    async def acquire(
        self,
        name: str,
        container_id: str,
        *,
        driver: str = "",
        labels: Mapping[str, str] | None = None,
        options: Mapping[str, str] | None = None,
        copy_up: CopyUp | None = None,
    ) -> tuple[Volume, bool]:
        req = pb.AcquireRequest(
            name=name,
            container_id=container_id,
            driver=driver,
            labels=dict(labels or {}),
            options=dict(options or {}),
        )
        if copy_up is not None:
            req.target, req.snapshotter, req.parent = (
                copy_up.target,
                copy_up.snapshotter,
                copy_up.parent,
            )
        async with grpcutil.native_errors():
            resp = await self._stub.Acquire(req, metadata=grpcutil.scope_metadata())
        return volume_from_pb(resp.volume), bool(resp.copied)

    async def release(
        self, container_id: str, *, remove_anonymous: bool = False
    ) -> builtins.list[str]:
        async with grpcutil.native_errors():
            resp = await self._stub.Release(
                pb.ReleaseRequest(container_id=container_id, remove_anonymous=remove_anonymous),
                metadata=grpcutil.scope_metadata(),
            )
        return list(resp.removed)


__all__ = ["RemoteVolumes", "volume_from_pb", "volume_to_pb"]
