"""gRPC plumbing shared by every service and client.

One interceptor puts the request scope (namespace, lease) into contextvars
and maps error kinds to status codes; this is the only place that mapping
happens on the server side. :func:`to_native` is its mirror for clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import grpc
import grpc.aio
from google.protobuf import any_pb2, timestamp_pb2
from google.protobuf.message import Message
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from seacan import errors, log, scope

MAX_MESSAGE = 16 << 20
OPTIONS: list[tuple[str, Any]] = [
    ("grpc.max_receive_message_length", MAX_MESSAGE),
    ("grpc.max_send_message_length", MAX_MESSAGE),
    # A restarted service is back within a second; reconnect promptly rather
    # than with gRPC's default back-off (which grows to two minutes).
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
]

_log = log.get("seacan.grpc")
T = TypeVar("T")


def _code(kind: errors.SeacanError) -> grpc.StatusCode:
    code: grpc.StatusCode = getattr(grpc.StatusCode, kind.code_name, grpc.StatusCode.UNKNOWN)
    return code


def _set_scope(ctx: grpc.aio.ServicerContext[Any, Any]) -> None:
    ns = lease = ""
    for key, value in ctx.invocation_metadata() or ():
        if key == scope.NAMESPACE_HEADER:
            ns = str(value)
        elif key == scope.LEASE_HEADER:
            lease = str(value)
    scope.set_scope(ns, lease)


async def _abort(ctx: grpc.aio.ServicerContext[Any, Any], method: str, e: Exception) -> None:
    if isinstance(e, errors.SeacanError):
        await ctx.abort(_code(e), e.message)
    _log.error("rpc.internal_error", method=method, error=repr(e), exc_info=e)
    await ctx.abort(grpc.StatusCode.INTERNAL, f"{method}: internal error: {e}")


def _wrap(handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
    if handler.unary_unary is not None:
        inner_uu = handler.unary_unary

        async def uu(req: Any, ctx: grpc.aio.ServicerContext[Any, Any]) -> Any:
            _set_scope(ctx)
            try:
                return await inner_uu(req, ctx)
            except (errors.SeacanError, OSError, ValueError) as e:
                await _abort(ctx, method, e)

        return grpc.unary_unary_rpc_method_handler(
            uu, handler.request_deserializer, handler.response_serializer
        )
    if handler.unary_stream is not None:
        inner_us = handler.unary_stream

        async def us(req: Any, ctx: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
            _set_scope(ctx)
            try:
                async for item in inner_us(req, ctx):
                    yield item
            except (errors.SeacanError, OSError, ValueError) as e:
                await _abort(ctx, method, e)

        return grpc.unary_stream_rpc_method_handler(
            us, handler.request_deserializer, handler.response_serializer
        )
    if handler.stream_unary is not None:
        inner_su = handler.stream_unary

        async def su(reqs: Any, ctx: grpc.aio.ServicerContext[Any, Any]) -> Any:
            _set_scope(ctx)
            try:
                return await inner_su(reqs, ctx)
            except (errors.SeacanError, OSError, ValueError) as e:
                await _abort(ctx, method, e)

        return grpc.stream_unary_rpc_method_handler(
            su, handler.request_deserializer, handler.response_serializer
        )
    inner_ss = handler.stream_stream
    assert inner_ss is not None

    async def ss(reqs: Any, ctx: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
        _set_scope(ctx)
        try:
            async for item in inner_ss(reqs, ctx):
                yield item
        except (errors.SeacanError, OSError, ValueError) as e:
            await _abort(ctx, method, e)

    return grpc.stream_stream_rpc_method_handler(
        ss, handler.request_deserializer, handler.response_serializer
    )


class ScopeInterceptor(grpc.aio.ServerInterceptor):
    """Request scope into contextvars; error kinds out as status codes."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None or handler_call_details.method.startswith("/grpc.health"):
            return handler
        return _wrap(handler, handler_call_details.method)


def server(*, intercept: bool = True) -> grpc.aio.Server:
    """A grpc.aio server with seacan's limits and interceptor. Call inside the loop."""
    return grpc.aio.server(
        interceptors=[ScopeInterceptor()] if intercept else [],
        options=OPTIONS,
    )


# Every method of a channel waits for its server instead of failing while it restarts.
WAIT_FOR_READY = json.dumps({"methodConfig": [{"name": [{}], "waitForReady": True}]})


def channel(socket_path: Path | str, *, wait_for_ready: bool = False) -> grpc.aio.Channel:
    """A channel to a Unix socket with 16 MiB limits. Call inside the loop.

    ``wait_for_ready``: calls wait while nothing listens (a service being
    restarted by seacand), as the router makes its callers wait; for a
    service calling another on its own socket."""
    target = str(socket_path)
    if not target.startswith("unix:"):
        target = "unix:" + target
    options = [*OPTIONS, ("grpc.service_config", WAIT_FOR_READY)] if wait_for_ready else OPTIONS
    return grpc.aio.insecure_channel(target, options=options)


def metadata(namespace: str = "", lease: str = "") -> tuple[tuple[str, str], ...]:
    md: list[tuple[str, str]] = []
    if namespace:
        md.append((scope.NAMESPACE_HEADER, namespace))
    if lease:
        md.append((scope.LEASE_HEADER, lease))
    return tuple(md)


def scope_metadata() -> tuple[tuple[str, str], ...]:
    """The current request's scope, to pass on to another service."""
    return metadata(scope.namespace_optional(), scope.lease())


def to_native(e: grpc.aio.AioRpcError) -> errors.SeacanError:
    """A gRPC error as its seacan kind (containerd's ToNative)."""
    code = e.code()
    msg = e.details() or code.name.lower()
    return errors.from_code_name(code.name, msg)


@contextlib.asynccontextmanager
async def native_errors() -> AsyncIterator[None]:
    """Inside this block, RPC failures surface as seacan error kinds."""
    try:
        yield
    except grpc.aio.AioRpcError as e:
        raise to_native(e) from None


def make_any(msg: Message) -> any_pb2.Any:
    """An Any with the bare full name as type URL, as containerd's typeurl expects."""
    return any_pb2.Any(type_url=msg.DESCRIPTOR.full_name, value=msg.SerializeToString())


def timestamp(dt: datetime | None) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    if dt is not None:
        ts.FromDatetime(dt.astimezone(UTC))
    return ts


def from_timestamp(ts: timestamp_pb2.Timestamp) -> datetime | None:
    """None for unset and for Go's zero time (which clients send on updates)."""
    if ts.seconds <= 0 and ts.nanos == 0:
        return None
    return ts.ToDatetime(tzinfo=UTC)


def now() -> datetime:
    return datetime.now(UTC)


async def serve(
    socket_path: Path,
    register: Callable[[grpc.aio.Server], None],
    service_names: Iterable[str],
    *,
    on_started: Callable[[], Awaitable[None]] | None = None,
    intercept: bool = True,
) -> None:
    """Serve on a Unix socket, with the health service, until SIGTERM or SIGINT."""
    socket_path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        socket_path.unlink()
    srv = server(intercept=intercept)
    register(srv)
    hs = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(hs, srv)
    srv.add_insecure_port("unix:" + str(socket_path))
    await srv.start()
    os.chmod(socket_path, 0o660)
    for name in ["", *service_names]:
        await hs.set(name, health_pb2.HealthCheckResponse.SERVING)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    _log.info("service.serving", socket=str(socket_path))
    if on_started is not None:
        await on_started()
    await stop.wait()
    _log.info("service.stopping", socket=str(socket_path))
    await srv.stop(grace=2)
