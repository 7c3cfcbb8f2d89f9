"""RemoteContainers: the container store over gRPC (containerd's containers proxy).

Every call carries the current request scope and turns RPC failures back
into error kinds, so a caller cannot tell it from the local store;
:mod:`seacan.containers.testsuite` checks exactly that. ``list`` uses
ListStream and falls back to List on UNIMPLEMENTED, as containerd's client
does. The conversions are shared with the servicer.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from typing import Any

import grpc
import grpc.aio
from google.protobuf import any_pb2, field_mask_pb2

from seacan import grpcutil
from seacan.api.services.containers.v1 import containers_pb2 as pb
from seacan.api.services.containers.v1 import containers_pb2_grpc
from seacan.containers import AnyValue, Container, Runtime

# -- conversions -----------------------------------------------------------------


def any_to_pb(value: AnyValue) -> any_pb2.Any:
    return any_pb2.Any(type_url=value.type_url, value=value.value)


def any_from_pb(msg: Any) -> AnyValue:
    return AnyValue(type_url=msg.type_url, value=bytes(msg.value))


def container_to_pb(c: Container) -> Any:
    runtime = pb.Container.Runtime(name=c.runtime.name)
    if c.runtime.options is not None:
        runtime.options.CopyFrom(any_to_pb(c.runtime.options))
    msg = pb.Container(
        id=c.id,
        labels=dict(c.labels),
        image=c.image,
        runtime=runtime,
        snapshotter=c.snapshotter,
        snapshot_key=c.snapshot_key,
        created_at=grpcutil.timestamp(c.created_at),
        updated_at=grpcutil.timestamp(c.updated_at),
    )
    if c.spec is not None:
        msg.spec.CopyFrom(any_to_pb(c.spec))
    for key, ext in c.extensions.items():
        msg.extensions[key].CopyFrom(any_to_pb(ext))
    return msg


def container_from_pb(msg: Any) -> Container:
    runtime = Runtime()
    if msg.HasField("runtime"):
        options = any_from_pb(msg.runtime.options) if msg.runtime.HasField("options") else None
        runtime = Runtime(name=msg.runtime.name, options=options)
    extensions: Mapping[str, AnyValue] = {k: any_from_pb(v) for k, v in msg.extensions.items()}
    return Container(
        id=msg.id,
        labels=dict(msg.labels),
        image=msg.image,
        runtime=runtime,
        spec=any_from_pb(msg.spec) if msg.HasField("spec") else None,
        snapshotter=msg.snapshotter,
        snapshot_key=msg.snapshot_key,
        created_at=grpcutil.from_timestamp(msg.created_at),
        updated_at=grpcutil.from_timestamp(msg.updated_at),
        extensions=extensions,
    )


class RemoteContainers:
    """:class:`~seacan.containers.ContainerStore` over a gRPC channel."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._stub = containers_pb2_grpc.ContainersStub(channel)

    async def get(self, id: str) -> Container:
        async with grpcutil.native_errors():
            resp = await self._stub.Get(
                pb.GetContainerRequest(id=id), metadata=grpcutil.scope_metadata()
            )
        return container_from_pb(resp.container)

    async def list(self, filters: Sequence[str] = ()) -> builtins.list[Container]:
        req = pb.ListContainersRequest(filters=list(filters))
        call = self._stub.ListStream(req, metadata=grpcutil.scope_metadata())
        try:
            try:
                return [container_from_pb(m.container) async for m in call]
            except grpc.aio.AioRpcError as e:
                if e.code() != grpc.StatusCode.UNIMPLEMENTED:
                    raise grpcutil.to_native(e) from None
        finally:
            call.cancel()
        async with grpcutil.native_errors():
            resp = await self._stub.List(req, metadata=grpcutil.scope_metadata())
        return [container_from_pb(c) for c in resp.containers]

    async def create(self, container: Container) -> Container:
        async with grpcutil.native_errors():
            resp = await self._stub.Create(
                pb.CreateContainerRequest(container=container_to_pb(container)),
                metadata=grpcutil.scope_metadata(),
            )
        return container_from_pb(resp.container)

    async def update(self, container: Container, fieldpaths: Sequence[str] = ()) -> Container:
        req = pb.UpdateContainerRequest(container=container_to_pb(container))
        if fieldpaths:
            req.update_mask.CopyFrom(field_mask_pb2.FieldMask(paths=list(fieldpaths)))
        async with grpcutil.native_errors():
            resp = await self._stub.Update(req, metadata=grpcutil.scope_metadata())
        return container_from_pb(resp.container)

    async def delete(self, id: str) -> None:
        async with grpcutil.native_errors():
            await self._stub.Delete(
                pb.DeleteContainerRequest(id=id), metadata=grpcutil.scope_metadata()
            )
