"""containerd.services.events.v1.Events (gRPC) and the shims' ttrpc Forward.

Translation only. Shims reach the exchange over ttrpc at ``<address>.ttrpc``
(``containerd.services.events.ttrpc.v1.Events/Forward``), which is what they
get as ``TTRPC_ADDRESS``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
from google.protobuf import empty_pb2
from google.protobuf.message import Message

from seacan import ttrpc
from seacan.api.services.events.v1 import events_pb2_grpc
from seacan.api.services.ttrpc.events.v1 import events_pb2 as tpb
from seacan.events.proxy import envelope_from_pb, envelope_to_pb

from .events import Exchange

SERVICE = "containerd.services.events.v1.Events"
TTRPC_SERVICE = "containerd.services.events.ttrpc.v1.Events"

Ctx = Any  # grpc.aio.ServicerContext; grpcio ships no types


class EventsServicer:
    def __init__(self, exchange: Exchange) -> None:
        self._exchange = exchange

    async def Publish(self, request: Any, context: Ctx) -> Any:  # noqa: N802
        await self._exchange.publish_any(request.topic, request.event.type_url, request.event.value)
        return empty_pb2.Empty()

    async def Forward(self, request: Any, context: Ctx) -> Any:  # noqa: N802
        await self._exchange.forward(envelope_from_pb(request.envelope))
        return empty_pb2.Empty()

    async def Subscribe(self, request: Any, context: Ctx) -> AsyncIterator[Any]:  # noqa: N802
        async for env in self._exchange.subscribe(list(request.filters)):
            yield envelope_to_pb(env)


def register(server: grpc.aio.Server, exchange: Exchange) -> None:
    events_pb2_grpc.add_EventsServicer_to_server(EventsServicer(exchange), server)


def register_ttrpc(server: ttrpc.Server, exchange: Exchange) -> None:
    async def forward(req: tpb.ForwardRequest, md: ttrpc.Metadata) -> Message:
        await exchange.forward(envelope_from_pb(req.envelope))
        return empty_pb2.Empty()

    server.register(TTRPC_SERVICE, {"Forward": ttrpc.unary(tpb.ForwardRequest, forward)})
