"""Task events from the shim to containerd (or seacand), in order, with retry.

As containerd's shim publisher (``runtime/v2/shim/publisher.go``): a ttrpc
client to ``$TTRPC_ADDRESS`` calls
``containerd.services.events.ttrpc.v1.Events/Forward`` with an envelope
(timestamp, namespace, topic, event as a bare-type-URL ``Any``) and a 5 s
deadline. One sender drains one queue, so events arrive in the order they
were published; a failed send is retried (reconnecting, with back-off) before
the next one goes, for up to :data:`GIVE_UP` seconds, which covers a daemon
restart. Without an address, events are dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from google.protobuf import any_pb2, empty_pb2, timestamp_pb2
from google.protobuf.message import Message

from seacan import errors, log, ttrpc
from seacan.api.services.ttrpc.events.v1 import events_pb2

_log = log.get("seacan.shims.events")

SERVICE = "containerd.services.events.ttrpc.v1.Events"
FORWARD_TIMEOUT = 5.0
BACKOFF_MIN = 0.05
BACKOFF_MAX = 2.0
GIVE_UP = 120.0


def pack(msg: Message) -> any_pb2.Any:
    """An ``Any`` with the bare type URL containerd expects."""
    return any_pb2.Any(type_url=msg.DESCRIPTOR.full_name, value=msg.SerializeToString())


def envelope(namespace: str, topic: str, event: Message) -> events_pb2.Envelope:
    ts = timestamp_pb2.Timestamp()
    ts.GetCurrentTime()
    return events_pb2.Envelope(timestamp=ts, namespace=namespace, topic=topic, event=pack(event))


class Publisher:
    """``publish`` enqueues (never blocks); ``run`` in a task sends; ``flush`` waits."""

    def __init__(self, address: str, namespace: str) -> None:
        self.address = address
        self.namespace = namespace
        self._queue: asyncio.Queue[events_pb2.Envelope] = asyncio.Queue()
        self._client: ttrpc.Client | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="events publisher")

    def publish(self, topic: str, event: Message) -> None:
        _log.debug("event", topic=topic, type=event.DESCRIPTOR.full_name)
        if self.address:
            self._queue.put_nowait(envelope(self.namespace, topic, event))

    async def flush(self, timeout: float) -> None:
        """Until every queued event was sent (or given up), at most ``timeout`` seconds."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._queue.join()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def _run(self) -> None:
        while True:
            env = await self._queue.get()
            try:
                await self._send(env)
            finally:
                self._queue.task_done()

    async def _send(self, env: events_pb2.Envelope) -> None:
        deadline = time.monotonic() + GIVE_UP
        delay = BACKOFF_MIN
        while True:
            try:
                if self._client is None or self._client.closed:
                    self._client = await ttrpc.Client.connect(self.address, timeout=FORWARD_TIMEOUT)
                await self._client.call(
                    SERVICE,
                    "Forward",
                    events_pb2.ForwardRequest(envelope=env),
                    empty_pb2.Empty,
                    timeout=FORWARD_TIMEOUT,
                )
                return
            except errors.SeacanError as e:
                dead = isinstance(e, errors.Unavailable | errors.DeadlineExceeded)
                if dead and self._client is not None:
                    await self._client.close()
                    self._client = None
                if time.monotonic() + delay > deadline:
                    _log.error("events.dropped", topic=env.topic, error=str(e))
                    return
                _log.warning("events.retry", topic=env.topic, error=str(e), delay=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, BACKOFF_MAX)
