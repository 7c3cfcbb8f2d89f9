"""The event exchange: every publisher's envelopes, fanned out to subscribers.

Delivery is in publish order per subscriber. A subscriber has a bounded queue
(:data:`QUEUE_SIZE`); one that falls that far behind is dropped (its stream
ends with ResourceExhausted) so a slow reader never blocks a publisher, which
is what containerd's exchange does with its broadcaster's sink buffers.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence

from google.protobuf.message import Message

from seacan import errors, filters, grpcutil, log, scope
from seacan.containers import AnyValue
from seacan.events import Envelope, any_of, validate_topic

QUEUE_SIZE = 1024

_log = log.get("seacan.tasks.events")


class _Dropped:
    pass


_DROPPED = _Dropped()


class _Subscription:
    def __init__(self, flt: filters.Filter) -> None:
        self.filter = flt
        self.queue: asyncio.Queue[Envelope | _Dropped] = asyncio.Queue(QUEUE_SIZE + 1)
        self.dropped = False

    def offer(self, env: Envelope) -> bool:
        """Queue ``env`` if it matches; False when the subscriber must be dropped."""
        lookup = filters.lookup_from({"topic": env.topic, "namespace": env.namespace}, {})
        if not self.filter.match(lookup):
            return True
        if self.queue.qsize() >= QUEUE_SIZE:
            self.dropped = True
            self.queue.put_nowait(_DROPPED)
            return False
        self.queue.put_nowait(env)
        return True


class Exchange:
    """In-process Publisher, Forwarder and Subscriber."""

    def __init__(self) -> None:
        self._subs: set[_Subscription] = set()
        self._observers: list[Callable[[Envelope], None]] = []

    def observe(self, observer: Callable[[Envelope], None]) -> None:
        """Call ``observer`` (in process, synchronously) with every envelope delivered."""
        self._observers.append(observer)

    async def publish(self, topic: str, event: Message) -> None:
        ns = scope.namespace_required()
        validate_topic(topic)
        self.deliver(Envelope(grpcutil.now(), ns, topic, any_of(event)))

    async def publish_any(self, topic: str, type_url: str, value: bytes) -> None:
        """Publish an already-encoded payload (the gRPC Publish call)."""
        ns = scope.namespace_required()
        validate_topic(topic)
        self.deliver(Envelope(grpcutil.now(), ns, topic, AnyValue(type_url, bytes(value))))

    async def forward(self, envelope: Envelope) -> None:
        scope.validate_identifier(envelope.namespace, "namespace")
        validate_topic(envelope.topic)
        self.deliver(envelope)

    def deliver(self, envelope: Envelope) -> None:
        for observer in self._observers:
            observer(envelope)
        for sub in list(self._subs):
            if not sub.offer(envelope):
                self._subs.discard(sub)
                _log.warning("events.subscriber_dropped", topic=envelope.topic)

    async def subscribe(self, filter_exprs: Sequence[str] = ()) -> AsyncIterator[Envelope]:
        sub = _Subscription(filters.parse(list(filter_exprs)))
        self._subs.add(sub)
        try:
            while True:
                item = await sub.queue.get()
                if isinstance(item, _Dropped):
                    raise errors.ResourceExhausted("events: subscriber too slow, dropped")
                yield item
        finally:
            self._subs.discard(sub)

    @property
    def subscribers(self) -> int:
        return len(self._subs)
