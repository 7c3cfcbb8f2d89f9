"""RemoteNamespaces: the namespace store over gRPC (containerd's Namespaces service)."""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from typing import Any

import grpc.aio
from google.protobuf import field_mask_pb2

from seacan import grpcutil
from seacan.api.services.namespaces.v1 import namespaces_pb2 as pb
from seacan.api.services.namespaces.v1 import namespaces_pb2_grpc
from seacan.namespaces import Namespace


def _namespace(msg: Any) -> Namespace:
    return Namespace(name=msg.name, labels=dict(msg.labels))


class RemoteNamespaces:
    """:class:`seacan.namespaces.Store` over a gRPC channel."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._stub = namespaces_pb2_grpc.NamespacesStub(channel)

    async def get(self, name: str) -> Namespace:
        async with grpcutil.native_errors():
            resp = await self._stub.Get(
                pb.GetNamespaceRequest(name=name), metadata=grpcutil.scope_metadata()
            )
        return _namespace(resp.namespace)

    async def list(self, filter: str = "") -> builtins.list[Namespace]:
        async with grpcutil.native_errors():
            resp = await self._stub.List(
                pb.ListNamespacesRequest(filter=filter), metadata=grpcutil.scope_metadata()
            )
        return [_namespace(n) for n in resp.namespaces]

    async def create(self, name: str, labels: Mapping[str, str] | None = None) -> Namespace:
        req = pb.CreateNamespaceRequest(
            namespace=pb.Namespace(name=name, labels=dict(labels or {}))
        )
        async with grpcutil.native_errors():
            resp = await self._stub.Create(req, metadata=grpcutil.scope_metadata())
        return _namespace(resp.namespace)

    async def update(self, namespace: Namespace, fieldpaths: Sequence[str] = ()) -> Namespace:
        req = pb.UpdateNamespaceRequest(
            namespace=pb.Namespace(name=namespace.name, labels=dict(namespace.labels))
        )
        if fieldpaths:
            req.update_mask.CopyFrom(field_mask_pb2.FieldMask(paths=list(fieldpaths)))
        async with grpcutil.native_errors():
            resp = await self._stub.Update(req, metadata=grpcutil.scope_metadata())
        return _namespace(resp.namespace)

    async def delete(self, name: str) -> None:
        async with grpcutil.native_errors():
            await self._stub.Delete(
                pb.DeleteNamespaceRequest(name=name), metadata=grpcutil.scope_metadata()
            )
