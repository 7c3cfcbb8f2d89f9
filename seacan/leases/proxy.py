"""RemoteLeases: the lease manager over gRPC (containerd's Leases service).

Calls run in the caller's namespace (the current request scope).
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from typing import Any

import grpc.aio

from seacan import grpcutil
from seacan.api.services.leases.v1 import leases_pb2 as pb
from seacan.api.services.leases.v1 import leases_pb2_grpc
from seacan.leases import Lease, Resource


def _lease(msg: Any) -> Lease:
    return Lease(
        id=msg.id, created_at=grpcutil.from_timestamp(msg.created_at), labels=dict(msg.labels)
    )


class RemoteLeases:
    """:class:`seacan.leases.Manager` over a gRPC channel."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._stub = leases_pb2_grpc.LeasesStub(channel)

    async def create(self, id: str = "", labels: Mapping[str, str] | None = None) -> Lease:
        async with grpcutil.native_errors():
            resp = await self._stub.Create(
                pb.CreateRequest(id=id, labels=dict(labels or {})),
                metadata=grpcutil.scope_metadata(),
            )
        return _lease(resp.lease)

    async def delete(self, id: str, sync: bool = False) -> None:
        async with grpcutil.native_errors():
            await self._stub.Delete(
                pb.DeleteRequest(id=id, sync=sync), metadata=grpcutil.scope_metadata()
            )

    async def list(self, filters: Sequence[str] = ()) -> builtins.list[Lease]:
        async with grpcutil.native_errors():
            resp = await self._stub.List(
                pb.ListRequest(filters=list(filters)), metadata=grpcutil.scope_metadata()
            )
        return [_lease(m) for m in resp.leases]

    async def add_resource(self, id: str, resource: Resource) -> None:
        req = pb.AddResourceRequest(id=id, resource=pb.Resource(id=resource.id, type=resource.type))
        async with grpcutil.native_errors():
            await self._stub.AddResource(req, metadata=grpcutil.scope_metadata())

    async def delete_resource(self, id: str, resource: Resource) -> None:
        req = pb.DeleteResourceRequest(
            id=id, resource=pb.Resource(id=resource.id, type=resource.type)
        )
        async with grpcutil.native_errors():
            await self._stub.DeleteResource(req, metadata=grpcutil.scope_metadata())

    async def list_resources(self, id: str) -> builtins.list[Resource]:
        async with grpcutil.native_errors():
            resp = await self._stub.ListResources(
                pb.ListResourcesRequest(id=id), metadata=grpcutil.scope_metadata()
            )
        return [Resource(id=r.id, type=r.type) for r in resp.resources]
