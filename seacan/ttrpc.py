"""ttrpc: containerd's light RPC over Unix sockets, client and server (unary only).

This is the protocol between containerd and its shims (and from a shim back to
containerd's events service). It is containerd/ttrpc's wire format v1.1, read
from its ``PROTOCOL.md``, ``channel.go``, ``server.go`` and ``client.go``:

* every message is a frame: a 10-byte big-endian header (data length u32,
  stream id u32, type u8, flags u8) and at most 4 MiB of data;
* the client opens a stream with a *request* frame carrying a
  ``ttrpc.Request{service, method, payload, timeout_nano, metadata}``; stream
  ids are odd and increase on the wire;
* the server ends it with a *response* frame carrying a
  ``ttrpc.Response{status: google.rpc.Status, payload}``.

Streaming (the *data* frame type, ttrpc 1.2) is not implemented: the shim v2
task service and the events service are unary.

Errors are seacan error kinds on both sides. A handler raising one sends its
numeric ``google.rpc.Code``; the client raises the kind of the code it got,
with the status message. Failures of the connection itself raise
``Unavailable("ttrpc: closed")``.

Architecture invariant: this module imports protobuf but never grpcio, because
shims import it and shims must stay small.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import os
import socket
import struct
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from google.protobuf.message import DecodeError, Message

from seacan import errors, log
from seacan.api.google.rpc import status_pb2
from seacan.api.ttrpc import ttrpc_pb2

_log = log.get("seacan.ttrpc")

# --- framing ------------------------------------------------------------------

HEADER = struct.Struct(">IIBB")
HEADER_LENGTH = HEADER.size  # 10
MAX_MESSAGE = 4 << 20

TYPE_REQUEST = 0x1
TYPE_RESPONSE = 0x2
TYPE_DATA = 0x3

_DISCARD_CHUNK = 64 << 10


@dataclass(frozen=True, slots=True)
class Frame:
    stream_id: int
    type: int
    flags: int
    data: bytes


class OversizedMessage(errors.ResourceExhausted):
    """A frame announced more than :data:`MAX_MESSAGE` bytes (its data was skipped)."""

    def __init__(self, stream_id: int, length: int) -> None:
        super().__init__(f"message length {length} exceed maximum message size of {MAX_MESSAGE}")
        self.stream_id = stream_id
        self.length = length


def encode_frame(stream_id: int, type_: int, flags: int, data: bytes) -> bytes:
    """Header and data of one frame; data over 4 MiB raises ResourceExhausted."""
    if len(data) > MAX_MESSAGE:
        raise errors.ResourceExhausted(
            f"message length {len(data)} exceed maximum message size of {MAX_MESSAGE}"
        )
    return HEADER.pack(len(data), stream_id, type_, flags) + data


def decode_header(header: bytes) -> tuple[int, int, int, int]:
    """``(length, stream_id, type, flags)`` of a 10-byte header."""
    length, stream_id, type_, flags = HEADER.unpack(header)
    return length, stream_id, type_, flags


async def read_frame(reader: asyncio.StreamReader) -> Frame | None:
    """The next frame, or None at a clean end of stream.

    An oversized frame's data is read and dropped, then :class:`OversizedMessage`
    is raised, so the caller can answer that stream and keep the connection.
    A stream cut inside a frame raises ``asyncio.IncompleteReadError``.
    """
    try:
        header = await reader.readexactly(HEADER_LENGTH)
    except asyncio.IncompleteReadError as e:
        if not e.partial:
            return None
        raise
    length, stream_id, type_, flags = decode_header(header)
    if length > MAX_MESSAGE:
        left = length
        while left:
            left -= len(await reader.readexactly(min(left, _DISCARD_CHUNK)))
        raise OversizedMessage(stream_id, length)
    data = await reader.readexactly(length) if length else b""
    return Frame(stream_id, type_, flags, data)


# --- status codes -------------------------------------------------------------

CODES: dict[str, int] = {
    "OK": 0,
    "CANCELLED": 1,
    "UNKNOWN": 2,
    "INVALID_ARGUMENT": 3,
    "DEADLINE_EXCEEDED": 4,
    "NOT_FOUND": 5,
    "ALREADY_EXISTS": 6,
    "PERMISSION_DENIED": 7,
    "RESOURCE_EXHAUSTED": 8,
    "FAILED_PRECONDITION": 9,
    "ABORTED": 10,
    "OUT_OF_RANGE": 11,
    "UNIMPLEMENTED": 12,
    "INTERNAL": 13,
    "UNAVAILABLE": 14,
}
_NAMES = {v: k for k, v in CODES.items()}


def status_of(e: errors.SeacanError) -> status_pb2.Status:
    return status_pb2.Status(code=CODES.get(e.code_name, CODES["UNKNOWN"]), message=e.message)


def error_of(status: status_pb2.Status) -> errors.SeacanError:
    """The error kind for a non-OK status (codes without a kind become Internal)."""
    return errors.from_code_name(_NAMES.get(status.code, "UNKNOWN"), status.message)


# --- metadata -----------------------------------------------------------------

Metadata = dict[str, list[str]]
"""Request metadata as ttrpc's ``MD``: lower-case keys, each with its values."""


def _metadata_from(kvs: Sequence[ttrpc_pb2.KeyValue]) -> Metadata:
    md: Metadata = {}
    for kv in kvs:
        md.setdefault(kv.key.lower(), []).append(kv.value)
    return md


def _metadata_to(md: Mapping[str, str | Sequence[str]]) -> list[ttrpc_pb2.KeyValue]:
    out = []
    for key, values in md.items():
        for value in [values] if isinstance(values, str) else values:
            out.append(ttrpc_pb2.KeyValue(key=key.lower(), value=value))
    return out


# --- server -------------------------------------------------------------------

M = TypeVar("M", bound=Message)
Handler = Callable[[Any, Metadata], Awaitable[Message]]
Method = tuple[type[Message], Handler]


def unary(request_type: type[M], handler: Callable[[M, Metadata], Awaitable[Message]]) -> Method:
    """A ``register`` entry whose handler type mypy checks against the request type."""
    return (request_type, handler)


def _socket_path(address: str) -> str:
    return address.removeprefix("unix://")


class Server:
    """Serves registered services on Unix sockets; requests run concurrently.

    ``serve_unix`` / ``serve_socket`` return once listening; ``close`` stops.
    A handler must not await ``close`` itself (it would cancel its own call):
    answer first and let the owner close the server.
    """

    def __init__(self) -> None:
        self._services: dict[str, dict[str, Method]] = {}
        self._listeners: dict[socket.socket, asyncio.Task[None]] = {}
        self._conns: set[_ServerConn] = set()
        self._unlink: list[str] = []
        self._closed = False

    def register(self, service_name: str, methods: Mapping[str, Method]) -> None:
        if service_name in self._services:
            raise errors.AlreadyExists(f"ttrpc service {service_name} already registered")
        self._services[service_name] = dict(methods)

    async def serve_unix(self, path: str) -> None:
        """Bind, listen and serve a new socket at ``path`` (removed again by ``close``)."""
        path = _socket_path(path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(path)
        except OSError as e:
            sock.close()
            if e.errno == errno.EADDRINUSE:
                raise errors.AlreadyExists(f"ttrpc socket {path} already exists") from e
            raise errors.Unavailable(f"ttrpc: listen {path}: {e.strerror}") from e
        self._unlink.append(path)
        sock.listen(128)
        await self.serve_socket(sock)

    async def serve_socket(self, sock: socket.socket) -> None:
        """Serve an already listening socket (e.g. one a shim inherited as fd 3).

        The server owns the socket from now on and closes it in ``close``.
        """
        if self._closed:
            raise errors.FailedPrecondition("ttrpc: server closed")
        sock.setblocking(False)
        self._listeners[sock] = asyncio.create_task(
            self._accept(sock), name=f"ttrpc accept fd {sock.fileno()}"
        )

    async def close(self, *, grace: float = 0.0) -> None:
        """Stop listening; give in-flight requests ``grace`` seconds; drop connections."""
        self._closed = True
        for task in self._listeners.values():
            task.cancel()
        await asyncio.gather(*self._listeners.values(), return_exceptions=True)
        for sock in self._listeners:
            sock.close()
        self._listeners.clear()
        for path in self._unlink:
            with contextlib.suppress(OSError):
                os.unlink(path)
        self._unlink.clear()
        if grace > 0:
            inflight = [t for c in self._conns for t in c.handlers]
            if inflight:
                await asyncio.wait(inflight, timeout=grace)
        conns = list(self._conns)
        for conn in conns:
            conn.task.cancel()
        await asyncio.gather(*(c.task for c in conns), return_exceptions=True)
        for conn in conns:
            conn.close()  # in case its task was cancelled before it ran

    async def _accept(self, lsock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                sock, _ = await loop.sock_accept(lsock)
            except OSError as e:
                if e.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    _log.warning("ttrpc.accept_failed", error=str(e))
                    await asyncio.sleep(0.1)
                    continue
                if e.errno == errno.ECONNABORTED:
                    continue
                _log.error("ttrpc.accept_failed", error=str(e))
                return
            conn = _ServerConn(self._services, sock)
            self._conns.add(conn)
            conn.task.add_done_callback(functools.partial(self._forget, conn))

    def _forget(self, conn: _ServerConn, _: object) -> None:
        self._conns.discard(conn)


class _ServerConn:
    def __init__(self, services: Mapping[str, Mapping[str, Method]], sock: socket.socket) -> None:
        self.services = services
        self.sock = sock
        self.handlers: set[asyncio.Task[None]] = set()
        self.wlock = asyncio.Lock()
        self.last_stream_id = 0
        self.writer: asyncio.StreamWriter | None = None
        self.task = asyncio.create_task(self.run(), name=f"ttrpc conn fd {sock.fileno()}")

    async def run(self) -> None:
        try:
            reader, self.writer = await asyncio.open_unix_connection(sock=self.sock)
            while True:
                try:
                    frame = await read_frame(reader)
                except OversizedMessage as e:
                    await self.respond(e.stream_id, status_of(e))
                    continue
                if frame is None:
                    return
                await self.dispatch(frame)
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            # The client is gone (or the server closes): cancel what it asked for.
            for t in self.handlers:
                t.cancel()
            try:
                await asyncio.gather(*self.handlers, return_exceptions=True)
            finally:
                self.close()
            if self.writer is not None:
                with contextlib.suppress(ConnectionError):
                    await self.writer.wait_closed()

    def close(self) -> None:
        if self.writer is None:
            self.sock.close()
        else:
            self.writer.close()

    async def dispatch(self, frame: Frame) -> None:
        sid = frame.stream_id
        if sid % 2 != 1:
            await self.reject(sid, "StreamID must be odd for client initiated streams")
        elif frame.type == TYPE_DATA:
            await self.reject(sid, "StreamID is no longer active")
        elif frame.type == TYPE_REQUEST:
            if sid <= self.last_stream_id:
                await self.reject(sid, "StreamID cannot be re-used and must increment")
                return
            self.last_stream_id = sid
            req = ttrpc_pb2.Request()
            try:
                req.ParseFromString(frame.data)
            except DecodeError as e:
                await self.reject(sid, f"unmarshal request error: {e}")
                return
            method = self.services.get(req.service, {}).get(req.method)
            if req.service not in self.services:
                await self.respond(sid, status_of(errors.NotImplemented_(f"service {req.service}")))
            elif method is None:
                await self.respond(sid, status_of(errors.NotImplemented_(f"method {req.method}")))
            else:
                t = asyncio.create_task(
                    self.call(sid, req, method), name=f"ttrpc {sid} {req.method}"
                )
                self.handlers.add(t)
                t.add_done_callback(self.handlers.discard)
        # Other frame types are ignored, as ttrpc does, for compatibility.

    async def reject(self, sid: int, message: str) -> None:
        await self.respond(sid, status_of(errors.InvalidArgument(message)))

    async def call(self, sid: int, req: ttrpc_pb2.Request, method: Method) -> None:
        request_type, handler = method
        full = f"/{req.service}/{req.method}"
        payload = b""
        try:
            request = request_type()
            try:
                request.ParseFromString(req.payload)
            except DecodeError as e:
                raise errors.Internal(f"ttrpc: error unmarshalling payload: {e}") from e
            timeout = req.timeout_nano / 1e9 if req.timeout_nano > 0 else None
            try:
                async with asyncio.timeout(timeout):
                    response = await handler(request, _metadata_from(req.metadata))
            except TimeoutError as e:
                raise errors.DeadlineExceeded(f"{full}: context deadline exceeded") from e
            payload = response.SerializeToString()
            status = status_pb2.Status(code=CODES["OK"])
        except errors.SeacanError as e:
            status = status_of(e)
        except Exception as e:
            _log.error("ttrpc.internal_error", method=full, error=repr(e), exc_info=e)
            status = status_of(errors.Internal(f"{full}: internal error: {e}"))
        await self.respond(sid, status, payload)

    async def respond(self, sid: int, status: status_pb2.Status, payload: bytes = b"") -> None:
        data = ttrpc_pb2.Response(status=status, payload=payload).SerializeToString()
        try:
            frame = encode_frame(sid, TYPE_RESPONSE, 0, data)
        except errors.ResourceExhausted as e:
            frame = encode_frame(
                sid,
                TYPE_RESPONSE,
                0,
                ttrpc_pb2.Response(status=status_of(e)).SerializeToString(),
            )
        if self.writer is None:
            return
        try:
            async with self.wlock:
                self.writer.write(frame)
                await self.writer.drain()
        except ConnectionError:
            pass  # the client went away; run() notices on its next read


# --- client -------------------------------------------------------------------

R = TypeVar("R", bound=Message)


class Client:
    """One connection to a ttrpc server; calls on it may run concurrently.

    ``client = await Client.connect("/run/x.sock")`` (a ``unix://`` prefix is
    accepted, as shims print their address that way); ``await client.close()``.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._wlock = asyncio.Lock()
        self._next_id = 1
        self._pending: dict[int, asyncio.Future[bytes]] = {}
        self._closed = False
        self._recv_task = asyncio.create_task(self._receive(), name="ttrpc client receive")

    @classmethod
    async def connect(cls, path: str, *, timeout: float | None = None) -> Client:
        path = _socket_path(path)
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_unix_connection(path)
        except TimeoutError as e:
            raise errors.DeadlineExceeded(f"ttrpc: dial {path}: timed out") from e
        except OSError as e:
            raise errors.Unavailable(f"ttrpc: dial {path}: {e.strerror or e}") from e
        return cls(reader, writer)

    @property
    def closed(self) -> bool:
        return self._closed

    async def call(
        self,
        service: str,
        method: str,
        request: Message,
        response_type: type[R],
        *,
        timeout: float | None = None,
        metadata: Mapping[str, str | Sequence[str]] | None = None,
    ) -> R:
        """Call ``service/method``; a non-OK status raises its error kind."""
        req = ttrpc_pb2.Request(
            service=service,
            method=method,
            payload=request.SerializeToString(),
            timeout_nano=int(timeout * 1e9) if timeout is not None and timeout > 0 else 0,
            metadata=_metadata_to(metadata or {}),
        )
        data = req.SerializeToString()
        encode_frame(1, TYPE_REQUEST, 0, data)  # size check before taking a stream id
        fut: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        sid = 0
        try:
            async with asyncio.timeout(timeout):
                # Ids must increase on the wire: allocate and send under one lock.
                async with self._wlock:
                    if self._closed:
                        raise errors.Unavailable("ttrpc: closed")
                    sid = self._next_id
                    self._next_id += 2
                    self._pending[sid] = fut
                    try:
                        self._writer.write(HEADER.pack(len(data), sid, TYPE_REQUEST, 0) + data)
                        await self._writer.drain()
                    except ConnectionError as e:
                        raise errors.Unavailable("ttrpc: closed") from e
                raw = await fut
        except TimeoutError as e:
            raise errors.DeadlineExceeded(
                f"ttrpc: {service}/{method}: context deadline exceeded"
            ) from e
        finally:
            self._pending.pop(sid, None)
        resp = ttrpc_pb2.Response()
        try:
            resp.ParseFromString(raw)
        except DecodeError as e:
            raise errors.Internal(f"ttrpc: {service}/{method}: bad response: {e}") from e
        if resp.status.code != CODES["OK"]:
            raise error_of(resp.status)
        out = response_type()
        try:
            out.ParseFromString(resp.payload)
        except DecodeError as e:
            raise errors.Internal(f"ttrpc: {service}/{method}: bad response payload: {e}") from e
        return out

    async def wait_closed(self) -> None:
        """Until the connection is closed, by either side (the server dying, say)."""
        await asyncio.wait([self._recv_task])

    async def close(self) -> None:
        """Close the connection; pending calls fail with ``Unavailable("ttrpc: closed")``."""
        self._recv_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._recv_task
        self._shut()  # in case the receiver was cancelled before it ran

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _receive(self) -> None:
        try:
            while True:
                try:
                    frame = await read_frame(self._reader)
                except OversizedMessage as e:
                    self._fail(e.stream_id, e)
                    continue
                if frame is None:
                    return
                if frame.type != TYPE_RESPONSE:
                    _log.warning("ttrpc.unexpected_frame", stream=frame.stream_id, type=frame.type)
                    continue
                fut = self._pending.get(frame.stream_id)
                if fut is None:
                    _log.warning("ttrpc.inactive_stream", stream=frame.stream_id)
                elif not fut.done():
                    fut.set_result(frame.data)
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            self._shut()
            with contextlib.suppress(ConnectionError):
                await self._writer.wait_closed()

    def _shut(self) -> None:
        self._closed = True
        for sid in list(self._pending):
            self._fail(sid, errors.Unavailable("ttrpc: closed"))
        self._writer.close()

    def _fail(self, sid: int, e: errors.SeacanError) -> None:
        fut = self._pending.get(sid)
        if fut is not None and not fut.done():
            fut.set_exception(e)
