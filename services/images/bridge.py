"""Byte streams between the event loop and one worker thread, bounded both ways.

Tar work is blocking, so it runs in a thread; the content store is reached
through grpc.aio, so its streams live on the loop. :func:`run_reading` feeds
an async byte stream to a blocking function; :func:`run_writing` does the
opposite. Both keep at most a few chunks in flight (back-pressure, no whole
blob in memory), and both stop the thread before returning, also when the
caller is cancelled, so nothing touches the target after the call ends.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections.abc import AsyncIterable, AsyncIterator, Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

DEPTH = 4  # chunks in flight (content chunks are up to 1 MiB)
_POLL = 0.5  # seconds between checks for a stop while the thread waits


class StoppedError(Exception):
    """The loop side went away; the worker thread should give up."""


class _End:
    """Marks the end of a stream (and carries the feeder's error, if any)."""

    def __init__(self, error: BaseException | None = None) -> None:
        self.error = error


class _Channel:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.queue: asyncio.Queue[bytes | _End] = asyncio.Queue(DEPTH)
        self.stopped = threading.Event()

    def _wait(self, fut: concurrent.futures.Future[T]) -> T:
        while True:
            try:
                return fut.result(_POLL)
            except concurrent.futures.TimeoutError:
                if self.stopped.is_set():
                    fut.cancel()
                    raise StoppedError("the caller went away") from None

    def thread_get(self) -> bytes:
        """The next chunk, ``b""`` at the end; raises what the feeder hit."""
        if self.stopped.is_set():
            raise StoppedError("the caller went away")
        item = self._wait(asyncio.run_coroutine_threadsafe(self.queue.get(), self.loop))
        if isinstance(item, _End):
            # Put it back: later calls see the end again.
            self.loop.call_soon_threadsafe(self.queue.put_nowait, item)
            if item.error is not None:
                raise item.error
            return b""
        return item

    def thread_put(self, chunk: bytes) -> None:
        if self.stopped.is_set():
            raise StoppedError("the caller went away")
        self._wait(asyncio.run_coroutine_threadsafe(self.queue.put(chunk), self.loop))


async def stop(task: asyncio.Future[Any]) -> None:
    """Cancel ``task`` and wait until it has ended, whatever it raises.

    Unlike ``task.cancel(); with suppress(CancelledError): await task``, a
    cancellation of the *caller* that arrives meanwhile is not swallowed: it
    is raised once ``task`` has ended (a swallowed one leaves a TaskGroup
    waiting for a sibling that no longer knows it should stop).
    """
    task.cancel()
    cancelled = False
    while not task.done():
        try:
            await asyncio.wait({task})
        except asyncio.CancelledError:
            cancelled = True
    if not task.cancelled():
        task.exception()  # retrieved: never reported as "never retrieved"
    if cancelled:
        raise asyncio.CancelledError


async def _in_thread(fn: Callable[[], T], channel: _Channel) -> T:
    """Run ``fn`` in a thread; on cancellation, stop it and wait for it to end."""
    fut = asyncio.ensure_future(asyncio.to_thread(fn))
    try:
        return await asyncio.shield(fut)
    except asyncio.CancelledError:
        channel.stopped.set()
        with contextlib.suppress(BaseException):
            await fut
        raise


async def run_reading(chunks: AsyncIterable[bytes], fn: Callable[[Callable[[], bytes]], T]) -> T:
    """``fn(get)`` in a thread, where ``get()`` returns the next chunk of ``chunks``.

    ``get`` returns ``b""`` at the end and raises what reading ``chunks``
    raised. If ``fn`` returns or fails early, reading stops.
    """
    channel = _Channel(asyncio.get_running_loop())

    async def feed() -> None:
        try:
            async for chunk in chunks:
                if chunk:
                    await channel.queue.put(chunk)
        except Exception as e:  # handed to the thread, which raises it
            await channel.queue.put(_End(e))
        else:
            await channel.queue.put(_End())

    feeder = asyncio.create_task(feed(), name="bridge.feed")
    try:
        return await _in_thread(lambda: fn(channel.thread_get), channel)
    finally:
        channel.stopped.set()
        await stop(feeder)


async def run_writing(
    fn: Callable[[Callable[[bytes], None]], T],
    consume: Callable[[AsyncIterator[bytes]], Coroutine[Any, Any, None]],
) -> T:
    """``fn(put)`` in a thread while ``consume`` reads what it puts, on the loop.

    ``consume`` gets an async iterator that ends when ``fn`` returns. If
    ``consume`` fails, ``put`` raises :class:`StoppedError` in the thread and
    the consumer's error is raised here; if ``fn`` fails, its error is.
    """
    channel = _Channel(asyncio.get_running_loop())

    async def chunks() -> AsyncIterator[bytes]:
        while True:
            item = await channel.queue.get()
            if isinstance(item, _End):
                return
            yield item

    consumer = asyncio.create_task(consume(chunks()), name="bridge.consume")
    # However the consumer ends, a thread blocked in put() must not wait forever.
    consumer.add_done_callback(lambda _: channel.stopped.set())
    try:
        try:
            result = await _in_thread(lambda: fn(channel.thread_put), channel)
        except StoppedError:
            # The consumer failed first: its error is the real one.
            await consumer
            raise
        await channel.queue.put(_End())
        await consumer
        return result
    finally:
        channel.stopped.set()
        if not consumer.done():
            await stop(consumer)
