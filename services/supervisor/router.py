"""The main socket's router: forwards each call, undecoded, to its owner.

A generic handler per method shape (unary or stream, each way) with no
(de)serializers, so request and response bytes pass through untouched.
Status codes, details and the scope headers travel both ways.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import grpc
import grpc.aio

from seacan import grpcutil, log

_log = log.get("seacan.router")

# How long a call waits for a restarting service before UNAVAILABLE.
READY_TIMEOUT = 15.0
_HOP_BY_HOP = ("grpc-", ":")
_DROP = {"user-agent", "content-type", "te", "authority"}


def _forward_md(ctx: grpc.aio.ServicerContext[Any, Any]) -> tuple[tuple[str, str | bytes], ...]:
    return tuple(
        (k, v)
        for k, v in (ctx.invocation_metadata() or ())
        if not k.startswith(_HOP_BY_HOP) and k not in _DROP
    )


class Router(grpc.GenericRpcHandler):
    """Routes ``/<service>/<method>`` to the socket of the service's owner."""

    def __init__(
        self,
        routes: Mapping[str, Path],
        shapes: Mapping[str, tuple[bool, bool]],
    ) -> None:
        self._routes = dict(routes)
        self._shapes = dict(shapes)
        self._channels: dict[Path, grpc.aio.Channel] = {}

    def _channel(self, sock: Path) -> grpc.aio.Channel:
        ch = self._channels.get(sock)
        if ch is None:
            ch = self._channels[sock] = grpcutil.channel(sock)
        return ch

    async def close(self) -> None:
        for ch in self._channels.values():
            await ch.close()

    def service(
        self, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler | None:
        method = handler_call_details.method
        svc = method[1:].split("/", 1)[0]
        sock = self._routes.get(svc)
        shape = self._shapes.get(method)
        if sock is None or shape is None:
            return None
        ch = self._channel(sock)
        client_streaming, server_streaming = shape
        if not client_streaming and not server_streaming:
            return grpc.unary_unary_rpc_method_handler(self._unary_unary(ch, method))
        if not client_streaming:
            return grpc.unary_stream_rpc_method_handler(self._unary_stream(ch, method))
        if not server_streaming:
            return grpc.stream_unary_rpc_method_handler(self._stream_unary(ch, method))
        return grpc.stream_stream_rpc_method_handler(self._stream_stream(ch, method))

    @staticmethod
    async def _ready(
        ch: grpc.aio.Channel, ctx: grpc.aio.ServicerContext[Any, Any], method: str
    ) -> None:
        if ch.get_state(try_to_connect=True) == grpc.ChannelConnectivity.READY:
            return
        try:
            await asyncio.wait_for(ch.channel_ready(), READY_TIMEOUT)
        except TimeoutError:
            _log.warning("router.service_unavailable", method=method)
            await ctx.abort(grpc.StatusCode.UNAVAILABLE, f"{method}: service unavailable")

    @staticmethod
    async def _fail(ctx: grpc.aio.ServicerContext[Any, Any], e: grpc.aio.AioRpcError) -> None:
        trailing = e.trailing_metadata()
        if trailing:
            ctx.set_trailing_metadata(
                tuple((k, v) for k, v in trailing if not k.startswith(_HOP_BY_HOP))
            )
        await ctx.abort(e.code(), e.details() or "")

    def _unary_unary(self, ch: grpc.aio.Channel, method: str) -> Any:
        mc = ch.unary_unary(method)

        async def handle(req: bytes, ctx: grpc.aio.ServicerContext[Any, Any]) -> bytes:
            await self._ready(ch, ctx, method)
            try:
                resp: bytes = await mc(req, metadata=_forward_md(ctx), timeout=ctx.time_remaining())
                return resp
            except grpc.aio.AioRpcError as e:
                await self._fail(ctx, e)
                raise

        return handle

    def _unary_stream(self, ch: grpc.aio.Channel, method: str) -> Any:
        mc = ch.unary_stream(method)

        async def handle(
            req: bytes, ctx: grpc.aio.ServicerContext[Any, Any]
        ) -> AsyncIterator[bytes]:
            await self._ready(ch, ctx, method)
            call = mc(req, metadata=_forward_md(ctx), timeout=ctx.time_remaining())
            try:
                async for resp in call:
                    yield resp
            except grpc.aio.AioRpcError as e:
                await self._fail(ctx, e)
            finally:
                call.cancel()

        return handle

    def _stream_unary(self, ch: grpc.aio.Channel, method: str) -> Any:
        mc = ch.stream_unary(method)

        async def handle(
            reqs: AsyncIterator[bytes], ctx: grpc.aio.ServicerContext[Any, Any]
        ) -> bytes:
            await self._ready(ch, ctx, method)
            try:
                resp: bytes = await mc(
                    reqs, metadata=_forward_md(ctx), timeout=ctx.time_remaining()
                )
                return resp
            except grpc.aio.AioRpcError as e:
                await self._fail(ctx, e)
                raise

        return handle

    def _stream_stream(self, ch: grpc.aio.Channel, method: str) -> Any:
        mc = ch.stream_stream(method)

        async def handle(
            reqs: AsyncIterator[bytes], ctx: grpc.aio.ServicerContext[Any, Any]
        ) -> AsyncIterator[bytes]:
            await self._ready(ch, ctx, method)
            call = mc(reqs, metadata=_forward_md(ctx), timeout=ctx.time_remaining())
            try:
                async for resp in call:
                    yield resp
            except grpc.aio.AioRpcError as e:
                await self._fail(ctx, e)
            finally:
                call.cancel()

        return handle
