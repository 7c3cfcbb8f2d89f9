"""RemoteEvents: publish, forward and subscribe over gRPC (containerd's events proxy)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Any

import grpc
import grpc.aio
from google.protobuf import any_pb2
from google.protobuf.message import Message

from seacan import grpcutil
from seacan.api.services.events.v1 import events_pb2 as pb
from seacan.api.services.events.v1 import events_pb2_grpc
from seacan.containers import AnyValue
from seacan.events import Envelope

_ZERO = datetime(1970, 1, 1, tzinfo=UTC)


def envelope_to_pb(env: Envelope) -> Any:
    return pb.Envelope(
        timestamp=grpcutil.timestamp(env.timestamp),
        namespace=env.namespace,
        topic=env.topic,
        event=any_pb2.Any(type_url=env.event.type_url, value=env.event.value),
    )


def envelope_from_pb(msg: Any) -> Envelope:
    return Envelope(
        timestamp=grpcutil.from_timestamp(msg.timestamp) or _ZERO,
        namespace=msg.namespace,
        topic=msg.topic,
        event=AnyValue(type_url=msg.event.type_url, value=bytes(msg.event.value)),
    )


class RemoteEvents:
    """Publisher, Forwarder and Subscriber over a gRPC channel."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._stub = events_pb2_grpc.EventsStub(channel)

    async def publish(self, topic: str, event: Message) -> None:
        async with grpcutil.native_errors():
            await self._stub.Publish(
                pb.PublishRequest(topic=topic, event=grpcutil.make_any(event)),
                metadata=grpcutil.scope_metadata(),
            )

    async def forward(self, envelope: Envelope) -> None:
        async with grpcutil.native_errors():
            await self._stub.Forward(
                pb.ForwardRequest(envelope=envelope_to_pb(envelope)),
                metadata=grpcutil.scope_metadata(),
            )

    async def subscribe(self, filters: Sequence[str] = ()) -> AsyncIterator[Envelope]:
        call = self._stub.Subscribe(
            pb.SubscribeRequest(filters=list(filters)), metadata=grpcutil.scope_metadata()
        )
        try:
            async with grpcutil.native_errors():
                async for msg in call:
                    yield envelope_from_pb(msg)
        finally:
            call.cancel()
