"""Namespaces, Leases and GC: protobuf <-> the metadata stores.

Translation only; the interceptor in :mod:`seacan.grpcutil` sets the request
scope and turns error kinds into status codes.
"""

from __future__ import annotations

from typing import Any, TypeAlias

import grpc
from google.protobuf import empty_pb2

from seacan import errors, grpcutil
from seacan.api.services.gc.v1 import gc_pb2, gc_pb2_grpc
from seacan.api.services.leases.v1 import leases_pb2 as lpb
from seacan.api.services.leases.v1 import leases_pb2_grpc
from seacan.api.services.namespaces.v1 import namespaces_pb2 as npb
from seacan.api.services.namespaces.v1 import namespaces_pb2_grpc
from seacan.leases import Lease, Resource
from seacan.namespaces import Namespace

from .collector import Collector
from .leases import LeaseStore
from .namespaces import NamespaceStore

NAMESPACES = "containerd.services.namespaces.v1.Namespaces"
LEASES = "containerd.services.leases.v1.Leases"
GC = "seacan.services.gc.v1.GC"
SERVICES = (NAMESPACES, LEASES, GC)

Ctx: TypeAlias = grpc.aio.ServicerContext[Any, Any]


def namespace_to_pb(ns: Namespace) -> Any:
    return npb.Namespace(name=ns.name, labels=dict(ns.labels))


def lease_to_pb(lease: Lease) -> Any:
    return lpb.Lease(
        id=lease.id, created_at=grpcutil.timestamp(lease.created_at), labels=dict(lease.labels)
    )


def _resource(req: Any) -> Resource:
    if not req.HasField("resource"):
        raise errors.InvalidArgument("resource must be set")
    return Resource(id=req.resource.id, type=req.resource.type)


class NamespacesServicer:
    def __init__(self, store: NamespaceStore) -> None:
        self._store = store

    async def Get(self, request: Any, context: Ctx) -> Any:  # noqa: N802
        ns = await self._store.get(request.name)
        return npb.GetNamespaceResponse(namespace=namespace_to_pb(ns))

    async def List(self, request: Any, context: Ctx) -> Any:  # noqa: N802
        found = await self._store.list(request.filter)
        return npb.ListNamespacesResponse(namespaces=[namespace_to_pb(n) for n in found])

    async def Create(self, request: Any, context: Ctx) -> Any:  # noqa: N802
        ns = await self._store.create(request.namespace.name, dict(request.namespace.labels))
        return npb.CreateNamespaceResponse(namespace=namespace_to_pb(ns))

    async def Update(self, request: Any, context: Ctx) -> Any:  # noqa: N802
        ns = Namespace(request.namespace.name, dict(request.namespace.labels))
        paths = list(request.update_mask.paths) if request.HasField("update_mask") else []
        updated = await self._store.update(ns, paths)
        return npb.UpdateNamespaceResponse(namespace=namespace_to_pb(updated))

    async def Delete(self, request: Any, context: Ctx) -> Any:  # noqa: N802
        await self._store.delete(request.name)
        return empty_pb2.Empty()


class LeasesServicer:
    def __init__(self, store: LeaseStore) -> None:
        self._store = store

    async def Create(self, request: Any, context: Ctx) -> Any:  # noqa: N802
        lease = await self._store.create(request.id, dict(request.labels))
        return lpb.CreateResponse(lease=lease_to_pb(lease))

    async def Delete(self, request: Any, context: Ctx) -> Any:  # noqa: N802
        await self._store.delete(request.id, sync=request.sync)
        return empty_pb2.Empty()

    async def List(self, request: Any, context: Ctx) -> Any:  # noqa: N802
        found = await self._store.list(list(request.filters))
        return lpb.ListResponse(leases=[lease_to_pb(lease) for lease in found])

    async def AddResource(self, request: Any, context: Ctx) -> Any:  # noqa: N802
        await self._store.add_resource(request.id, _resource(request))
        return empty_pb2.Empty()

    async def DeleteResource(self, request: Any, context: Ctx) -> Any:  # noqa: N802
        await self._store.delete_resource(request.id, _resource(request))
        return empty_pb2.Empty()

    async def ListResources(self, request: Any, context: Ctx) -> Any:  # noqa: N802
        found = await self._store.list_resources(request.id)
        return lpb.ListResourcesResponse(
            resources=[lpb.Resource(id=r.id, type=r.type) for r in found]
        )


class GCServicer:
    def __init__(self, collector: Collector) -> None:
        self._collector = collector

    async def Collect(self, request: Any, context: Ctx) -> Any:  # noqa: N802
        removed = await self._collector.collect(dry_run=request.dry_run)
        return gc_pb2.CollectResponse(
            removed=[gc_pb2.Removed(namespace=r.namespace, type=r.type, id=r.id) for r in removed]
        )


def register(
    server: grpc.aio.Server,
    namespaces: NamespaceStore,
    leases: LeaseStore,
    collector: Collector,
) -> None:
    namespaces_pb2_grpc.add_NamespacesServicer_to_server(NamespacesServicer(namespaces), server)
    leases_pb2_grpc.add_LeasesServicer_to_server(LeasesServicer(leases), server)
    gc_pb2_grpc.add_GCServicer_to_server(GCServicer(collector), server)
