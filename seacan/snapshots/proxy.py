"""RemoteSnapshotter: a snapshotter over gRPC (containerd's snapshots proxy).

Every call names the snapshotter, carries the current request scope
(namespace, lease) and turns RPC failures back into error kinds, so a caller
cannot tell it from the local snapshotter; :mod:`seacan.snapshots.testsuite`
checks exactly that.
"""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from typing import Any

import grpc.aio
from google.protobuf import field_mask_pb2

from seacan import grpcutil
from seacan.api.services.snapshots.v1 import snapshots_pb2 as pb
from seacan.api.services.snapshots.v1 import snapshots_pb2_grpc
from seacan.api.types import mount_pb2
from seacan.snapshots import Info, Kind, Mount, Usage

# -- conversions, shared with the servicer (and anyone passing mounts on the wire)


def mounts_to_pb(mounts: Iterable[Mount]) -> builtins.list[Any]:
    return [
        mount_pb2.Mount(type=m.type, source=m.source, target=m.target, options=list(m.options))
        for m in mounts
    ]


def mounts_from_pb(msgs: Iterable[Any]) -> builtins.list[Mount]:
    return [Mount(m.type, m.source, m.target, tuple(m.options)) for m in msgs]


def info_to_pb(info: Info) -> Any:
    kind: Any = int(info.kind)  # the stubs want the generated enum type
    return pb.Info(
        name=info.name,
        parent=info.parent,
        kind=kind,
        created_at=grpcutil.timestamp(info.created_at),
        updated_at=grpcutil.timestamp(info.updated_at),
        labels=dict(info.labels),
    )


def info_from_pb(msg: Any) -> Info:
    """Unset and Go-zero timestamps become None; an unknown kind becomes UNKNOWN."""
    return Info(
        name=msg.name,
        parent=msg.parent,
        kind=Kind(msg.kind) if msg.kind in Kind._value2member_map_ else Kind.UNKNOWN,
        created_at=grpcutil.from_timestamp(msg.created_at),
        updated_at=grpcutil.from_timestamp(msg.updated_at),
        labels=dict(msg.labels),
    )


class RemoteSnapshotter:
    """:class:`seacan.snapshots.Snapshotter` over a gRPC channel."""

    def __init__(self, channel: grpc.aio.Channel, snapshotter: str = "overlayfs") -> None:
        self._stub = snapshots_pb2_grpc.SnapshotsStub(channel)
        self._name = snapshotter

    @property
    def name(self) -> str:
        return self._name

    async def stat(self, key: str) -> Info:
        async with grpcutil.native_errors():
            resp = await self._stub.Stat(
                pb.StatSnapshotRequest(snapshotter=self._name, key=key),
                metadata=grpcutil.scope_metadata(),
            )
        return info_from_pb(resp.info)

    async def update(self, info: Info, fieldpaths: Sequence[str] = ()) -> Info:
        req = pb.UpdateSnapshotRequest(
            snapshotter=self._name,
            info=info_to_pb(info),
        )
        if fieldpaths:
            req.update_mask.CopyFrom(field_mask_pb2.FieldMask(paths=list(fieldpaths)))
        async with grpcutil.native_errors():
            resp = await self._stub.Update(req, metadata=grpcutil.scope_metadata())
        return info_from_pb(resp.info)

    async def usage(self, key: str) -> Usage:
        async with grpcutil.native_errors():
            resp = await self._stub.Usage(
                pb.UsageRequest(snapshotter=self._name, key=key),
                metadata=grpcutil.scope_metadata(),
            )
        return Usage(size=resp.size, inodes=resp.inodes)

    async def mounts(self, key: str) -> builtins.list[Mount]:
        async with grpcutil.native_errors():
            resp = await self._stub.Mounts(
                pb.MountsRequest(snapshotter=self._name, key=key),
                metadata=grpcutil.scope_metadata(),
            )
        return mounts_from_pb(resp.mounts)

    async def prepare(
        self, key: str, parent: str = "", labels: Mapping[str, str] | None = None
    ) -> builtins.list[Mount]:
        async with grpcutil.native_errors():
            resp = await self._stub.Prepare(
                pb.PrepareSnapshotRequest(
                    snapshotter=self._name, key=key, parent=parent, labels=dict(labels or {})
                ),
                metadata=grpcutil.scope_metadata(),
            )
        return mounts_from_pb(resp.mounts)

    async def view(
        self, key: str, parent: str = "", labels: Mapping[str, str] | None = None
    ) -> builtins.list[Mount]:
        async with grpcutil.native_errors():
            resp = await self._stub.View(
                pb.ViewSnapshotRequest(
                    snapshotter=self._name, key=key, parent=parent, labels=dict(labels or {})
                ),
                metadata=grpcutil.scope_metadata(),
            )
        return mounts_from_pb(resp.mounts)

    async def commit(self, name: str, key: str, labels: Mapping[str, str] | None = None) -> None:
        async with grpcutil.native_errors():
            await self._stub.Commit(
                pb.CommitSnapshotRequest(
                    snapshotter=self._name, name=name, key=key, labels=dict(labels or {})
                ),
                metadata=grpcutil.scope_metadata(),
            )

    async def remove(self, key: str) -> None:
        async with grpcutil.native_errors():
            await self._stub.Remove(
                pb.RemoveSnapshotRequest(snapshotter=self._name, key=key),
                metadata=grpcutil.scope_metadata(),
            )

    async def list(self, filters: Sequence[str] = ()) -> AsyncIterator[Info]:
        call = self._stub.List(
            pb.ListSnapshotsRequest(snapshotter=self._name, filters=list(filters)),
            metadata=grpcutil.scope_metadata(),
        )
        try:
            async with grpcutil.native_errors():
                async for resp in call:
                    for msg in resp.info:
                        yield info_from_pb(msg)
        finally:
            call.cancel()

    async def cleanup(self) -> None:
        async with grpcutil.native_errors():
            await self._stub.Cleanup(
                pb.CleanupRequest(snapshotter=self._name), metadata=grpcutil.scope_metadata()
            )
