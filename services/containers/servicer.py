"""containerd.services.containers.v1.Containers: protobuf <-> the container store.

Translation only; the interceptor in :mod:`seacan.grpcutil` sets the request
scope and turns error kinds into status codes. ListStream sends one
container per message, as containerd does (ctr ls uses it).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
from google.protobuf import empty_pb2

from seacan import errors
from seacan.api.services.containers.v1 import containers_pb2 as pb
from seacan.api.services.containers.v1 import containers_pb2_grpc
from seacan.containers import ContainerStore
from seacan.containers.proxy import container_from_pb, container_to_pb

SERVICE = "containerd.services.containers.v1.Containers"

Ctx = Any  # grpc.aio.ServicerContext; grpcio ships no types


class ContainersServicer:
    def __init__(self, store: ContainerStore) -> None:
        self._store = store

    async def Get(self, request: Any, context: Ctx) -> Any:  # noqa: N802
        c = await self._store.get(request.id)
        return pb.GetContainerResponse(container=container_to_pb(c))

    async def List(self, request: Any, context: Ctx) -> Any:  # noqa: N802
        cs = await self._store.list(list(request.filters))
        return pb.ListContainersResponse(containers=[container_to_pb(c) for c in cs])

    async def ListStream(self, request: Any, context: Ctx) -> AsyncIterator[Any]:  # noqa: N802
        for c in await self._store.list(list(request.filters)):
            yield pb.ListContainerMessage(container=container_to_pb(c))

    async def Create(self, request: Any, context: Ctx) -> Any:  # noqa: N802
        c = await self._store.create(container_from_pb(request.container))
        return pb.CreateContainerResponse(container=container_to_pb(c))

    async def Update(self, request: Any, context: Ctx) -> Any:  # noqa: N802
        if not request.container.id:
            raise errors.InvalidArgument("Container.ID required")
        paths = list(request.update_mask.paths) if request.HasField("update_mask") else []
        c = await self._store.update(container_from_pb(request.container), paths)
        return pb.UpdateContainerResponse(container=container_to_pb(c))

    async def Delete(self, request: Any, context: Ctx) -> Any:  # noqa: N802
        await self._store.delete(request.id)
        return empty_pb2.Empty()


def register(server: grpc.aio.Server, store: ContainerStore) -> None:
    containers_pb2_grpc.add_ContainersServicer_to_server(ContainersServicer(store), server)
