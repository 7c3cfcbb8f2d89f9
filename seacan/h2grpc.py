"""A small synchronous gRPC client: HTTP/2 (RFC 9113) over a Unix socket, no grpcio.

A command that makes a few calls pays ~90 ms to import grpcio and asyncio; this
module costs a few (HTTP/2 framing and HPACK by hand)::

    with Channel("/run/seacan/seacan.sock", metadata=[("containerd-namespace", "default")]) as ch:
        raw = ch.unary("/containerd.services.version.v1.Version/Version", b"")
        for msg in ch.stream("/seacan.services.build.v1.Builder/Build", requests):
            ...

Messages are serialized protobufs (bytes in, bytes out). ``stream`` serves every
streaming shape: it sends all requests (flow control respected, reading while it
sends), half-closes and yields the responses as they arrive. One call at a time.

Errors are seacan's kinds, as :func:`seacan.grpcutil.to_native` gives them: a
non-OK ``grpc-status`` becomes its kind with the server's message; connecting
fails as :func:`seacan.client.probe` does (``cannot connect to seacand at ...``);
a connection lost mid-call is Unavailable (``lost connection to seacand at
...``); a deadline is DeadlineExceeded; a message over 16 MiB either way is
ResourceExhausted (and the channel stays usable).
"""

from __future__ import annotations

import _socket as socket  # not socket: its enum setup costs ~2 ms of import
import errno
import os
import time
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from types import TracebackType

from seacan import errors

MAX_MESSAGE = 16 << 20  # as grpcutil.MAX_MESSAGE
CONNECT_TIMEOUT = 10.0  # as seacan.client.CONNECT_TIMEOUT
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
WINDOW = 1 << 30  # what we let the server send before we replenish (per stream and connection)
MAX_FRAME = 1 << 20  # the largest frame we accept
DEFAULT_WINDOW = 65535
READ_SIZE = 256 << 10

DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE = range(9)
CONTINUATION = 9
END_STREAM = ACK = 0x1
END_HEADERS = 0x4
PADDED = 0x8
PRIORITY_FLAG = 0x20
SETTINGS_ENABLE_PUSH = 0x2
SETTINGS_INITIAL_WINDOW_SIZE, SETTINGS_MAX_FRAME_SIZE = 0x4, 0x5
CANCEL = 0x8

# grpc-status numbers, as names (errors.from_code_name maps them to kinds).
CODES = (
    "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
    "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
    "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
    "UNAUTHENTICATED",
)  # fmt: skip
# An RST_STREAM's HTTP/2 error code as a gRPC code (gRPC's PROTOCOL-HTTP2 mapping).
RST_CODES = {
    0x7: "UNAVAILABLE",
    0x8: "CANCELLED",
    0xB: "RESOURCE_EXHAUSTED",
    0xC: "PERMISSION_DENIED",
}


def _frame(type_: int, flags: int, stream: int, payload: bytes | memoryview = b"") -> bytes:
    return (
        len(payload).to_bytes(3, "big")
        + bytes((type_, flags))
        + stream.to_bytes(4, "big")
        + bytes(payload)
    )


def _unpercent(text: str) -> str:
    """grpc-message is percent-encoded UTF-8."""
    if "%" not in text:
        return text
    raw = text.encode()
    out = bytearray()
    i = 0
    while i < len(raw):
        h = raw[i + 1 : i + 3]
        if raw[i] == 0x25 and len(h) == 2 and all(c in b"0123456789abcdefABCDEF" for c in h):
            out.append(int(h, 16))
            i += 3
        else:
            out.append(raw[i])
            i += 1
    return out.decode(errors="replace")


def _grpc_timeout(seconds: float) -> str:
    ms = max(1, int(seconds * 1000 + 0.999))
    return f"{ms}m" if ms < 10**8 else f"{min(ms // 1000, 10**8 - 1)}S"


# --- HPACK (RFC 7541) -------------------------------------------------------------------
# We send literals (no Huffman, no indexing); we decode everything a server may send:
# indexed fields, the dynamic table, Huffman strings. (The ``hpack`` package would cost
# a few milliseconds of import: its Huffman decoding table is large.)

# The static table (Appendix A): "name" or "name value".
STATIC: tuple[tuple[str, str], ...] = tuple(
    (name, value)
    for name, _, value in (e.partition(" ") for e in (
    ":authority", ":method GET", ":method POST", ":path /", ":path /index.html",
    ":scheme http", ":scheme https", ":status 200", ":status 204", ":status 206",
    ":status 304", ":status 400", ":status 404", ":status 500", "accept-charset",
    "accept-encoding gzip, deflate", "accept-language", "accept-ranges", "accept",
    "access-control-allow-origin", "age", "allow", "authorization", "cache-control",
    "content-disposition", "content-encoding", "content-language", "content-length",
    "content-location", "content-range", "content-type", "cookie", "date", "etag", "expect",
    "expires", "from", "host", "if-match", "if-modified-since", "if-none-match", "if-range",
    "if-unmodified-since", "last-modified", "link", "location", "max-forwards",
    "proxy-authenticate", "proxy-authorization", "range", "referer", "refresh", "retry-after",
    "server", "set-cookie", "strict-transport-security", "transfer-encoding", "user-agent",
    "vary", "via", "www-authenticate",
    ))
)  # fmt: skip
# Appendix B: each symbol's code length; the code is canonical, so the codes follow.
HUFFMAN_LENGTHS = bytes.fromhex(
    "0d171c1c1c1c1c1c1c181e1c1c1e1c1c1c1c1c1c1c1c1e1c1c1c1c1c1c1c1c1c060a0a0c0d06080b0a0a080b"
    "080606060505050606060606060607080f060c0a0d0607070707070707070707070707070707070707070707"
    "0807080d130d0e060f05060506050606060507070606060506070605050607070707070f0b0e0d1c14161414"
    "1616161716171717171718171818161718171717171516171617171816151416161717151716161815161717"
    "151516151716171714161616171616171a1a1413161716191a1a1a1b1b1a181913151a1b1b1a1b1815151a1a"
    "1c1b1b1b14181415161515171616191918181a171a1b1a1a1b1b1b1b1b1c1b1b1b1b1b1a1e"
)
_huffman: dict[int, int] = {}  # (1 << length | code) -> symbol, built on first use


class HpackError(ValueError):
    """A header block that does not decode."""


def _hpack_int(n: int, prefix: int) -> bytes:
    mask = (1 << prefix) - 1
    if n < mask:
        return bytes((n,))
    out = bytearray((mask,))
    n -= mask
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def encode_headers(headers: Iterable[tuple[str, str]]) -> bytes:
    """Literal header fields without indexing, new names, no Huffman."""
    out = bytearray()
    for name, value in headers:
        n, v = name.encode(), value.encode()
        out += b"\0" + _hpack_int(len(n), 7) + n + _hpack_int(len(v), 7) + v
    return bytes(out)


def _read_int(data: bytes, i: int, prefix: int) -> tuple[int, int]:
    mask = (1 << prefix) - 1
    n = data[i] & mask
    i += 1
    if n < mask:
        return n, i
    shift = 0
    while True:
        b = data[i]
        i += 1
        n += (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            return n, i


def _unhuffman(raw: bytes) -> bytes:
    if not _huffman:
        code, prev = 0, 0
        for sym in sorted(range(257), key=lambda s: (HUFFMAN_LENGTHS[s], s)):
            length = HUFFMAN_LENGTHS[sym]
            code <<= length - prev
            prev = length
            _huffman[1 << length | code] = sym
            code += 1
    out = bytearray()
    acc = 1  # the leading 1 marks the length
    for byte in raw:
        for shift in range(7, -1, -1):
            acc = acc << 1 | (byte >> shift) & 1
            found = _huffman.get(acc)
            if found is not None:
                if found == 256:
                    raise HpackError("EOS in a Huffman string")
                out.append(found)
                acc = 1
    bits = acc.bit_length() - 1
    if bits > 7 or acc != (1 << (bits + 1)) - 1:
        raise HpackError("bad padding in a Huffman string")
    return bytes(out)


class HpackDecoder:
    """Header blocks -> header lists, keeping the dynamic table (4096 bytes at most)."""

    def __init__(self) -> None:
        self._table: deque[tuple[str, str, int]] = deque()  # newest first; (name, value, size)
        self._size = 0
        self._max = 4096

    def decode(self, data: bytes) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        i = 0
        try:
            while i < len(data):
                b = data[i]
                if b & 0x80:  # indexed
                    idx, i = _read_int(data, i, 7)
                    out.append(self._get(idx))
                elif b & 0x40:  # literal, incremental indexing
                    name, value, i = self._literal(data, i, 6)
                    out.append((name, value))
                    self._add(name, value)
                elif b & 0x20:  # dynamic table size update
                    size, i = _read_int(data, i, 5)
                    if size > 4096:
                        raise HpackError(f"table size {size} above the 4096 we allow")
                    self._max = size
                    self._evict()
                else:  # literal without indexing / never indexed
                    name, value, i = self._literal(data, i, 4)
                    out.append((name, value))
        except IndexError:
            raise HpackError("truncated header block") from None
        return out

    def _get(self, idx: int) -> tuple[str, str]:
        if 1 <= idx <= len(STATIC):
            return STATIC[idx - 1]
        if 0 <= idx - len(STATIC) - 1 < len(self._table):
            name, value, _ = self._table[idx - len(STATIC) - 1]
            return name, value
        raise HpackError(f"header index {idx} out of range")

    def _string(self, data: bytes, i: int) -> tuple[str, int]:
        huffman = data[i] & 0x80
        n, i = _read_int(data, i, 7)
        raw = data[i : i + n]
        if len(raw) < n:
            raise IndexError
        return (_unhuffman(raw) if huffman else raw).decode(errors="replace"), i + n

    def _literal(self, data: bytes, i: int, prefix: int) -> tuple[str, str, int]:
        idx, i = _read_int(data, i, prefix)
        if idx:
            name = self._get(idx)[0]
        else:
            name, i = self._string(data, i)
        value, i = self._string(data, i)
        return name, value, i

    def _add(self, name: str, value: str) -> None:
        size = len(name.encode()) + len(value.encode()) + 32
        self._table.appendleft((name, value, size))
        self._size += size
        self._evict()

    def _evict(self) -> None:
        while self._size > self._max:
            self._size -= self._table.pop()[2]


def connect(path: str) -> socket.socket:
    """A connected socket; when nothing listens, the error a user reads: Unavailable
    (or PermissionDenied, InvalidArgument) naming the address and the reason."""
    what = f"cannot connect to seacand at {path}"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.settimeout(CONNECT_TIMEOUT)
        s.connect(path)
    except FileNotFoundError:
        s.close()
        raise errors.Unavailable(f"{what}: no such socket (is seacand running?)") from None
    except ConnectionRefusedError:
        s.close()
        raise errors.Unavailable(f"{what}: connection refused (is seacand running?)") from None
    except PermissionError:
        s.close()
        raise errors.PermissionDenied(f"{what}: permission denied") from None
    except OSError as e:
        s.close()
        reason = os.strerror(e.errno).lower() if e.errno else str(e)
        kind = errors.Unavailable if e.errno != errno.ENOTSOCK else errors.InvalidArgument
        raise kind(f"{what}: {reason}") from None
    return s


class _Call:
    """One stream: what arrived so far."""

    def __init__(self, stream_id: int, send_window: int) -> None:
        self.id = stream_id
        self.send_window = send_window
        self.unacked = 0  # DATA bytes received and not yet given back with WINDOW_UPDATE
        self.buf = bytearray()
        self.messages: deque[bytes] = deque()
        self.headers: dict[str, str] | None = None
        self.trailers: dict[str, str] | None = None
        self.error: errors.SeacanError | None = None
        self.closed = False  # the server's side is done (END_STREAM, RST_STREAM, GOAWAY)


class Channel:
    """One HTTP/2 connection to a gRPC server on a Unix socket; synchronous, one call at a time."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        metadata: Sequence[tuple[str, str]] = (),
        timeout: float | None = None,
    ) -> None:
        self.path = os.fspath(path)
        self._metadata = tuple(metadata)
        self._timeout = timeout
        self._sock: socket.socket | None = None
        self._connect()  # now: no daemon fails here, as Client.connect does

    def _connect(self) -> None:
        self._sock = connect(self.path)
        self._rbuf = bytearray()
        self._out: list[bytes] = []
        self._dec = HpackDecoder()
        self._send_window = DEFAULT_WINDOW
        self._peer_initial = DEFAULT_WINDOW
        self._peer_max_frame = 16384
        self._unacked = 0
        self._next_id = 1
        self._going_away = False
        self._pending: tuple[int, int, bytearray] | None = None  # HEADERS awaiting CONTINUATION
        self._call: _Call | None = None
        self._deadline: float | None = None
        self._what: tuple[str, float | None] = ("", None)
        settings = b"".join(
            k.to_bytes(2, "big") + v.to_bytes(4, "big")
            for k, v in (
                (SETTINGS_ENABLE_PUSH, 0),
                (SETTINGS_INITIAL_WINDOW_SIZE, WINDOW),
                (SETTINGS_MAX_FRAME_SIZE, MAX_FRAME),
            )
        )
        self._out += [
            PREFACE,
            _frame(SETTINGS, 0, 0, settings),
            _frame(WINDOW_UPDATE, 0, 0, (WINDOW - DEFAULT_WINDOW).to_bytes(4, "big")),
        ]

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> Channel:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- calls -------------------------------------------------------------------------

    def unary(
        self,
        method: str,
        request: bytes,
        *,
        metadata: Sequence[tuple[str, str]] = (),
        timeout: float | None = None,
    ) -> bytes:
        """One request, one response (``timeout``: seconds, else the channel's)."""
        out = list(self.stream(method, (request,), metadata=metadata, timeout=timeout))
        if len(out) != 1:
            raise errors.Internal(f"{method}: a unary call answered {len(out)} messages")
        return out[0]

    def stream(
        self,
        method: str,
        requests: Iterable[bytes],
        *,
        metadata: Sequence[tuple[str, str]] = (),
        timeout: float | None = None,
    ) -> Iterator[bytes]:
        """Send every request, half-close, yield the responses as they arrive; the
        deadline (``timeout``, else the channel's) covers the whole call. After a lost
        connection or a deadline the next call connects again."""
        if self._sock is None or self._going_away or self._next_id >= 1 << 31:
            self.close()
            self._connect()
        timeout = self._timeout if timeout is None else timeout
        self._deadline = None if timeout is None else time.monotonic() + timeout
        call = self._call = _Call(self._next_id, self._peer_initial)
        self._next_id += 2
        headers = [
            (":method", "POST"),
            (":scheme", "http"),
            (":path", method),
            (":authority", "localhost"),
            ("content-type", "application/grpc"),
            ("te", "trailers"),
        ]
        if timeout is not None:
            headers.append(("grpc-timeout", _grpc_timeout(timeout)))
        headers += [(k.lower(), v) for k, v in (*self._metadata, *metadata)]
        self._what = (method, timeout)
        try:
            self._send_headers(call, headers)
            it = iter(requests)
            req = next(it, None)
            if req is None:
                self._out.append(_frame(DATA, END_STREAM, call.id))
            while req is not None:
                nxt = next(it, None)
                self._send_message(call, req, end=nxt is None)
                req = nxt
                while call.messages:
                    yield call.messages.popleft()
                if call.closed:
                    break
            while True:
                while call.messages:
                    yield call.messages.popleft()
                if call.closed:
                    break
                self._read_frame(block=True)
            self._check_status(call)
        finally:
            if not call.closed and self._sock is not None:
                call.closed = True
                self._reset(call.id)
            self._call = None

    # --- sending -----------------------------------------------------------------------

    def _send_headers(self, call: _Call, headers: list[tuple[str, str]]) -> None:
        block = memoryview(encode_headers(headers))
        n = self._peer_max_frame
        first, rest = block[:n], block[n:]
        self._out.append(_frame(HEADERS, 0 if rest else END_HEADERS, call.id, first))
        while rest:
            part, rest = rest[:n], rest[n:]
            self._out.append(_frame(CONTINUATION, 0 if rest else END_HEADERS, call.id, part))

    def _send_message(self, call: _Call, msg: bytes, *, end: bool) -> None:
        if len(msg) > MAX_MESSAGE:
            raise errors.ResourceExhausted(
                f"message of {len(msg)} bytes is larger than the limit ({MAX_MESSAGE} bytes)"
            )
        data = memoryview(b"\0" + len(msg).to_bytes(4, "big") + msg)
        while data and not call.closed:
            n = min(len(data), self._send_window, call.send_window, self._peer_max_frame)
            if n <= 0:
                self._read_frame(block=True)  # waits for WINDOW_UPDATE (and reads answers)
                continue
            part, data = data[:n], data[n:]
            self._send_window -= n
            call.send_window -= n
            self._out.append(_frame(DATA, END_STREAM if end and not data else 0, call.id, part))
        while self._read_frame(block=False):
            pass
        self._flush()

    def _reset(self, stream_id: int) -> None:
        self._out.append(_frame(RST_STREAM, 0, stream_id, CANCEL.to_bytes(4, "big")))
        try:
            self._flush()
        except OSError:
            self.close()

    def _settimeout(self, sock: socket.socket) -> None:
        if self._deadline is None:
            sock.settimeout(None)
            return
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise self._io_error(TimeoutError())
        sock.settimeout(left)

    def _flush(self) -> None:
        if not self._out:
            return
        sock = self._live()
        data = b"".join(self._out)
        self._out.clear()
        self._settimeout(sock)
        try:
            sock.sendall(data)
        except OSError as e:
            raise self._io_error(e) from None

    # --- receiving ---------------------------------------------------------------------

    def _live(self) -> socket.socket:
        if self._sock is None:
            raise self._lost("connection closed")
        return self._sock

    def _lost(self, reason: str) -> errors.Unavailable:
        self.close()
        return errors.Unavailable(f"lost connection to seacand at {self.path}: {reason}")

    def _io_error(self, e: OSError) -> errors.SeacanError:
        """A socket error mid-call as its kind; the connection is dropped (the next call
        makes a new one)."""
        if isinstance(e, TimeoutError):
            self.close()
            method, timeout = self._what
            return errors.DeadlineExceeded(
                f"deadline exceeded: {method} did not finish within {timeout:g}s"
            )
        return self._lost(os.strerror(e.errno).lower() if e.errno else str(e))

    def _fill(self, need: int, block: bool) -> bool:
        """At least ``need`` bytes buffered; False if that would block (``block`` false)."""
        while len(self._rbuf) < need:
            sock = self._live()
            if block:
                self._flush()
                self._settimeout(sock)
            else:
                sock.setblocking(False)
            try:
                chunk = sock.recv(READ_SIZE)
            except BlockingIOError:
                return False
            except OSError as e:
                raise self._io_error(e) from None
            if not chunk:
                raise self._lost("the server closed the connection")
            self._rbuf += chunk
        return True

    def _read_frame(self, *, block: bool) -> bool:
        """Read and handle one frame; False if none is complete yet and ``block`` is false."""
        if not self._fill(9, block):
            return False
        size = int.from_bytes(self._rbuf[:3], "big")
        if size > MAX_FRAME:
            raise self._lost(f"a frame of {size} bytes (the limit is {MAX_FRAME})")
        if not self._fill(9 + size, block):
            return False
        type_, flags = self._rbuf[3], self._rbuf[4]
        sid = int.from_bytes(self._rbuf[5:9], "big") & 0x7FFFFFFF
        payload = bytes(self._rbuf[9 : 9 + size])
        del self._rbuf[: 9 + size]
        self._handle(type_, flags, sid, payload)
        return True

    def _handle(self, type_: int, flags: int, sid: int, payload: bytes) -> None:
        call = self._call if self._call is not None and self._call.id == sid else None
        if self._pending is not None and type_ != CONTINUATION:
            raise self._lost("protocol error: a header block was interrupted")
        if type_ == DATA:
            self._data(call, flags, payload)
        elif type_ in (HEADERS, CONTINUATION):
            self._header_block(call, type_, flags, sid, payload)
        elif type_ == RST_STREAM:
            if call is not None and not call.closed:
                code = int.from_bytes(payload[:4], "big")
                name = RST_CODES.get(code, "INTERNAL")
                call.error = errors.from_code_name(
                    name, f"stream reset by the server (code {code})"
                )
                call.closed = True
        elif type_ == SETTINGS:
            if not flags & ACK:
                self._settings(payload)
        elif type_ == PING:
            if not flags & ACK:
                self._out.append(_frame(PING, ACK, 0, payload))
                self._flush()
        elif type_ == GOAWAY:
            self._going_away = True
            last = int.from_bytes(payload[:4], "big") & 0x7FFFFFFF
            active = self._call
            if active is not None and active.id > last and not active.closed:
                active.error = errors.Unavailable(
                    f"lost connection to seacand at {self.path}: the server is going away"
                )
                active.closed = True
        elif type_ == WINDOW_UPDATE:
            inc = int.from_bytes(payload[:4], "big") & 0x7FFFFFFF
            if sid == 0:
                self._send_window += inc
            elif call is not None:
                call.send_window += inc
        elif type_ == PUSH_PROMISE:
            raise self._lost("protocol error: PUSH_PROMISE though push is disabled")

    def _settings(self, payload: bytes) -> None:
        for i in range(0, len(payload) - 5, 6):
            key = int.from_bytes(payload[i : i + 2], "big")
            value = int.from_bytes(payload[i + 2 : i + 6], "big")
            if key == SETTINGS_INITIAL_WINDOW_SIZE:
                if self._call is not None:
                    self._call.send_window += value - self._peer_initial
                self._peer_initial = value
            elif key == SETTINGS_MAX_FRAME_SIZE:
                self._peer_max_frame = value
        self._out.append(_frame(SETTINGS, ACK, 0))
        self._flush()

    def _data(self, call: _Call | None, flags: int, payload: bytes) -> None:
        self._unacked += len(payload)
        if self._unacked >= WINDOW // 2:
            self._out.append(_frame(WINDOW_UPDATE, 0, 0, self._unacked.to_bytes(4, "big")))
            self._unacked = 0
        if call is None or call.closed:
            return
        call.unacked += len(payload)
        if call.unacked >= WINDOW // 2:
            self._out.append(_frame(WINDOW_UPDATE, 0, call.id, call.unacked.to_bytes(4, "big")))
            call.unacked = 0
        if flags & PADDED:
            payload = payload[1 : len(payload) - payload[0]]
        buf = call.buf
        buf += payload
        while len(buf) >= 5:
            size = int.from_bytes(buf[1:5], "big")
            if size > MAX_MESSAGE:
                call.error = errors.ResourceExhausted(
                    f"received a message of {size} bytes, larger than the limit"
                    f" ({MAX_MESSAGE} bytes)"
                )
                call.closed = True
                self._reset(call.id)
                return
            if buf[0]:
                call.error = errors.Internal("received a compressed message (none was asked for)")
                call.closed = True
                self._reset(call.id)
                return
            if len(buf) < 5 + size:
                break
            call.messages.append(bytes(buf[5 : 5 + size]))
            del buf[: 5 + size]
        if flags & END_STREAM:
            call.closed = True

    def _header_block(
        self, call: _Call | None, type_: int, flags: int, sid: int, payload: bytes
    ) -> None:
        if type_ == HEADERS:
            if flags & PADDED:
                payload = payload[1 : len(payload) - payload[0]]
            if flags & PRIORITY_FLAG:
                payload = payload[5:]
            self._pending = (sid, flags, bytearray(payload))
        elif self._pending is None or self._pending[0] != sid:
            raise self._lost("protocol error: an unexpected CONTINUATION frame")
        else:
            self._pending[2].extend(payload)
        if not flags & END_HEADERS:
            return
        _, first_flags, block = self._pending
        self._pending = None
        try:
            # Decoded even for a stream we left: the dynamic table must stay in step.
            headers = dict(self._dec.decode(bytes(block)))
        except HpackError as e:
            raise self._lost(f"bad header block: {e}") from None
        if call is None or call.closed:
            return
        if first_flags & END_STREAM:
            call.trailers = headers
            call.closed = True
            if call.headers is None:
                call.headers = headers
        else:
            call.headers = headers

    def _check_status(self, call: _Call) -> None:
        if call.error is not None:
            raise call.error
        t = call.trailers
        if t is None or "grpc-status" not in t:
            status = (call.headers or {}).get(":status", "")
            if status and status != "200":
                raise errors.Unavailable(f"seacand at {self.path} answered HTTP status {status}")
            raise errors.Internal(f"seacand at {self.path} ended a call without a grpc-status")
        code = int(t["grpc-status"]) if t["grpc-status"].isdigit() else 2
        if code == 0:
            return
        name = CODES[code] if code < len(CODES) else "UNKNOWN"
        msg = _unpercent(t.get("grpc-message", "")) or name.lower()
        method, timeout = self._what
        if name == "DEADLINE_EXCEEDED" and msg == "Deadline Exceeded" and timeout is not None:
            # gRPC's server enforced our grpc-timeout first: the words of our own timer
            raise errors.DeadlineExceeded(
                f"deadline exceeded: {method} did not finish within {timeout:g}s"
            )
        raise errors.from_code_name(name, msg)
