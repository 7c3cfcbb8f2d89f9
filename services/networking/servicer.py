"""seacan.services.networking.v1.Networking: protobuf <-> the network manager.

Translation only; the interceptor in :mod:`seacan.grpcutil` sets the request
scope and turns error kinds into status codes.
"""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf import empty_pb2

from seacan import errors, scope
from seacan.api.services.networking.v1 import networking_pb2 as pb
from seacan.api.services.networking.v1 import networking_pb2_grpc
from seacan.networking import Network
from seacan.networking.proxy import (
    attach_spec_from_pb,
    attachment_to_pb,
    endpoint_to_pb,
    network_to_pb,
    pod_to_pb,
    port_from_pb,
)

from .manager import NetworkManager

SERVICE = "seacan.services.networking.v1.Networking"

Ctx = Any  # grpc.aio.ServicerContext; grpcio ships no types


def _id(value: str, what: str) -> str:
    if not value:
        raise errors.InvalidArgument(f"{what} is required")
    return scope.validate_identifier(value, what)


class NetworkingServicer(networking_pb2_grpc.NetworkingServicer):
    def __init__(self, manager: NetworkManager) -> None:
        self._m = manager

    async def Create(self, request: Any, context: Ctx) -> Any:  # noqa: N802
        net = await self._m.create(
            Network(
                name=request.name,
                driver=request.driver,
                subnet=request.subnet,
                gateway=request.gateway,
                internal=request.internal,
                labels=dict(request.labels),
                options=dict(request.options),
            )
        )
        return pb.NetworkResponse(network=network_to_pb(net))

    async def Get(self, request: Any, context: Ctx) -> Any:  # noqa: N802
        return pb.NetworkResponse(network=network_to_pb(await self._m.get(request.name)))

    async def List(self, request: Any, context: Ctx) -> Any:  # noqa: N802
        return pb.ListNetworksResponse(networks=[network_to_pb(n) for n in await self._m.list()])

    async def Remove(self, request: Any, context: Ctx) -> Any:  # noqa: N802
        await self._m.remove(request.name)
        return empty_pb2.Empty()

    async def Prune(self, request: Any, context: Ctx) -> Any:  # noqa: N802
        return pb.PruneNetworksResponse(removed=await self._m.prune())

    async def Attach(self, request: Any, context: Ctx) -> Any:  # noqa: N802
        spec = attach_spec_from_pb(request)
        _id(spec.container_id, "container ID")
        a = await self._m.attach(scope.namespace_required(), spec, again=request.again)
        return attachment_to_pb(a)

    async def Prepare(self, request: Any, context: Ctx) -> Any:  # noqa: N802
        spec = attach_spec_from_pb(request)
        _id(spec.container_id, "container ID")
        return attachment_to_pb(await self._m.prepare(scope.namespace_required(), spec))

    async def Detach(self, request: Any, context: Ctx) -> Any:  # noqa: N802
        ns = scope.namespace_required()
        await self._m.detach(ns, _id(request.container_id, "container ID"), forget=request.forget)
        return empty_pb2.Empty()

    async def Connect(self, request: Any, context: Ctx) -> Any:  # noqa: N802
        ns = scope.namespace_required()
        cid = _id(request.container_id, "container ID")
        ep = await self._m.connect(ns, request.network, cid, list(request.aliases))
        return endpoint_to_pb(ep)

    async def Disconnect(self, request: Any, context: Ctx) -> Any:  # noqa: N802
        ns = scope.namespace_required()
        await self._m.disconnect(ns, request.network, _id(request.container_id, "container ID"))
        return empty_pb2.Empty()

    async def SetupPod(self, request: Any, context: Ctx) -> Any:  # noqa: N802
        pod = await self._m.setup_pod(
            scope.namespace_required(), _id(request.pod_id, "pod ID"), request.cni_conf_dir,
            request.netns_path, [port_from_pb(p) for p in request.ports], dict(request.cni_args),
        )  # fmt: skip
        return pod_to_pb(pod)

    async def TeardownPod(self, request: Any, context: Ctx) -> Any:  # noqa: N802
        await self._m.teardown_pod(scope.namespace_required(), _id(request.pod_id, "pod ID"))
        return empty_pb2.Empty()

    async def PodStatus(self, request: Any, context: Ctx) -> Any:  # noqa: N802
        return pod_to_pb(
            await self._m.pod_status(scope.namespace_required(), _id(request.pod_id, "pod ID"))
        )


def register(server: grpc.aio.Server, manager: NetworkManager) -> None:
    networking_pb2_grpc.add_NetworkingServicer_to_server(NetworkingServicer(manager), server)
