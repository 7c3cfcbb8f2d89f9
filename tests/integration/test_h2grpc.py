"""seacan.h2grpc against a real grpc.aio server on a temporary Unix socket: every call
shape, flow control both ways, metadata, status codes and messages, size limits, a
dying server, deadlines; and one call through a real seacand's router.

The server runs in a subprocess (``python test_h2grpc.py SOCKET``) so a test can kill it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from seacan import errors, h2grpc, scope

pytestmark = pytest.mark.integration

SVC = "/test.Echo/"
BIG = 64 << 20


# --- the server (runs in the subprocess) ------------------------------------------------


def serve(sock: str) -> None:
    import grpc
    import grpc.aio

    async def unary(req: bytes, ctx: Any) -> bytes:
        return req

    async def metadata(req: bytes, ctx: Any) -> bytes:
        return json.dumps([list(kv) for kv in ctx.invocation_metadata()]).encode()

    async def fail(req: bytes, ctx: Any) -> bytes:
        spec = json.loads(req)
        await ctx.abort(grpc.StatusCode[spec["code"]], spec["message"])
        raise AssertionError("unreachable")

    async def big(req: bytes, ctx: Any) -> bytes:
        return b"x" * int(req)

    async def sleep(req: bytes, ctx: Any) -> bytes:
        await asyncio.sleep(float(req))
        return b"late"

    async def server_stream(req: bytes, ctx: Any) -> AsyncIterator[bytes]:
        for i in range(int(req)):
            yield b"%d" % i

    async def fail_after(req: bytes, ctx: Any) -> AsyncIterator[bytes]:
        yield b"one"
        yield b"two"
        await ctx.abort(grpc.StatusCode.NOT_FOUND, "image app:1 not found")

    async def die(req: bytes, ctx: Any) -> AsyncIterator[bytes]:
        yield b"before"
        await asyncio.sleep(0.2)
        os.kill(os.getpid(), signal.SIGKILL)
        yield b"never"

    async def client_stream(reqs: AsyncIterator[bytes], ctx: Any) -> bytes:
        h, n, total = hashlib.sha256(), 0, 0
        async for r in reqs:
            h.update(r)
            n += 1
            total += len(r)
        return f"{n} {total} {h.hexdigest()}".encode()

    async def bidi(reqs: AsyncIterator[bytes], ctx: Any) -> AsyncIterator[bytes]:
        async for r in reqs:
            yield b"re:" + r

    handlers = {
        "Unary": grpc.unary_unary_rpc_method_handler(unary),
        "Metadata": grpc.unary_unary_rpc_method_handler(metadata),
        "Fail": grpc.unary_unary_rpc_method_handler(fail),
        "Big": grpc.unary_unary_rpc_method_handler(big),
        "Sleep": grpc.unary_unary_rpc_method_handler(sleep),
        "ServerStream": grpc.unary_stream_rpc_method_handler(server_stream),
        "FailAfter": grpc.unary_stream_rpc_method_handler(fail_after),
        "Die": grpc.unary_stream_rpc_method_handler(die),
        "ClientStream": grpc.stream_unary_rpc_method_handler(client_stream),
        "Bidi": grpc.stream_stream_rpc_method_handler(bidi),
    }

    async def main() -> None:
        srv = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", BIG),
                ("grpc.max_send_message_length", BIG),
            ]
        )
        srv.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("test.Echo", handlers),))
        srv.add_insecure_port("unix:" + sock)
        await srv.start()
        print("ready", flush=True)
        await srv.wait_for_termination()

    asyncio.run(main())


# --- fixtures -----------------------------------------------------------------------------


def start_server(sock: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    p = subprocess.Popen(
        [sys.executable, __file__, str(sock)], stdout=subprocess.PIPE, text=True, env=env
    )
    assert p.stdout is not None
    assert p.stdout.readline().strip() == "ready"
    return p


def stop_server(p: subprocess.Popen[str]) -> None:
    if p.poll() is None:
        p.send_signal(signal.SIGKILL)
    p.wait(10)
    if p.stdout is not None:
        p.stdout.close()


@pytest.fixture
def sock_dir() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="sc-h2-", dir="/tmp"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def server() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="sc-h2-", dir="/tmp"))
    sock = d / "s.sock"
    p = start_server(sock)
    try:
        yield sock
    finally:
        stop_server(p)
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def ch(server: Path) -> Iterator[h2grpc.Channel]:
    with h2grpc.Channel(server, timeout=60) as c:
        yield c


# --- calls --------------------------------------------------------------------------------


def test_unary_echoes_the_bytes_back(ch: h2grpc.Channel) -> None:
    assert ch.unary(SVC + "Unary", b"hello") == b"hello"
    assert ch.unary(SVC + "Unary", b"") == b""
    blob = os.urandom(3 << 20)  # bigger than every default window and frame
    assert ch.unary(SVC + "Unary", blob) == blob


def test_the_server_sees_channel_and_call_metadata(server: Path) -> None:
    md = [(scope.NAMESPACE_HEADER, "ns-1")]
    with h2grpc.Channel(server, metadata=md) as c:
        got = json.loads(c.unary(SVC + "Metadata", b"", metadata=[("x-trace", "abc")]))
    assert [scope.NAMESPACE_HEADER, "ns-1"] in got
    assert ["x-trace", "abc"] in got


def test_a_server_stream_of_ten_thousand_messages(ch: h2grpc.Channel) -> None:
    got = list(ch.stream(SVC + "ServerStream", [b"10000"]))
    assert got == [b"%d" % i for i in range(10000)]


def test_a_client_stream_of_50_mb_in_1_mib_messages(ch: h2grpc.Channel) -> None:
    chunks = [os.urandom(1 << 20) for _ in range(50)]
    want = hashlib.sha256(b"".join(chunks)).hexdigest()
    got = list(ch.stream(SVC + "ClientStream", iter(chunks)))
    assert got == [f"50 {50 << 20} {want}".encode()]


def test_bidi_answers_each_message(ch: h2grpc.Channel) -> None:
    msgs = [b"m%d" % i for i in range(500)] + [os.urandom(200_000) for _ in range(20)]
    assert list(ch.stream(SVC + "Bidi", msgs)) == [b"re:" + m for m in msgs]
    assert list(ch.stream(SVC + "Bidi", [])) == []


def test_responses_arrive_while_the_requests_are_still_being_sent(ch: h2grpc.Channel) -> None:
    seen: list[bytes] = []

    def requests() -> Iterator[bytes]:
        for i in range(5):
            yield b"%d" % i
            time.sleep(0.05)  # the answer to i is back by now

    for msg in ch.stream(SVC + "Bidi", requests()):
        seen.append(msg)
    assert seen == [b"re:%d" % i for i in range(5)]


def test_many_calls_on_one_channel(server: Path) -> None:
    # The server's HPACK dynamic table carries over from call to call.
    with h2grpc.Channel(server, metadata=[("x-same", "v")]) as c:
        for i in range(300):
            assert c.unary(SVC + "Unary", b"%d" % i, metadata=[("x-n", str(i))]) == b"%d" % i


# --- errors -------------------------------------------------------------------------------

KINDS = [
    ("CANCELLED", errors.Canceled),
    ("UNKNOWN", errors.Internal),
    ("INVALID_ARGUMENT", errors.InvalidArgument),
    ("DEADLINE_EXCEEDED", errors.DeadlineExceeded),
    ("NOT_FOUND", errors.NotFound),
    ("ALREADY_EXISTS", errors.AlreadyExists),
    ("PERMISSION_DENIED", errors.PermissionDenied),
    ("RESOURCE_EXHAUSTED", errors.ResourceExhausted),
    ("FAILED_PRECONDITION", errors.FailedPrecondition),
    ("ABORTED", errors.Internal),
    ("OUT_OF_RANGE", errors.OutOfRange),
    ("UNIMPLEMENTED", errors.NotImplemented_),
    ("INTERNAL", errors.Internal),
    ("UNAVAILABLE", errors.Unavailable),
    ("DATA_LOSS", errors.Internal),
    ("UNAUTHENTICATED", errors.Internal),
]


@pytest.mark.parametrize(("code", "kind"), KINDS)
def test_every_status_code_becomes_its_kind(
    ch: h2grpc.Channel, code: str, kind: type[errors.SeacanError]
) -> None:
    msg = f"content sha256:abc {code.lower()} 100% (ünïcode ✓)"
    with pytest.raises(kind) as ei:
        ch.unary(SVC + "Fail", json.dumps({"code": code, "message": msg}).encode())
    assert type(ei.value) is kind
    assert ei.value.message == msg
    assert ch.unary(SVC + "Unary", b"still") == b"still"


def test_an_empty_message_is_the_code_name(ch: h2grpc.Channel) -> None:
    with pytest.raises(errors.NotFound, match=r"^not_found$"):
        ch.unary(SVC + "Fail", b'{"code": "NOT_FOUND", "message": ""}')


def test_an_unknown_method_is_not_implemented(ch: h2grpc.Channel) -> None:
    with pytest.raises(errors.NotImplemented_, match="Method not found"):
        ch.unary("/test.Echo/Nope", b"")


def test_an_error_after_messages_keeps_the_messages(ch: h2grpc.Channel) -> None:
    got: list[bytes] = []
    with pytest.raises(errors.NotFound, match=r"^image app:1 not found$"):
        for m in ch.stream(SVC + "FailAfter", [b""]):
            got.append(m)
    assert got == [b"one", b"two"]


def test_a_17_mib_message_is_refused_both_ways(ch: h2grpc.Channel) -> None:
    with pytest.raises(errors.ResourceExhausted, match="larger than the limit"):
        ch.unary(SVC + "Unary", b"x" * (17 << 20))
    with pytest.raises(errors.ResourceExhausted, match="larger than the limit"):
        ch.unary(SVC + "Big", str(17 << 20).encode())
    assert ch.unary(SVC + "Unary", b"after") == b"after"
    assert len(ch.unary(SVC + "Big", str(16 << 20).encode())) == 16 << 20


def test_a_deadline_is_deadline_exceeded(ch: h2grpc.Channel) -> None:
    t = time.monotonic()
    with pytest.raises(errors.DeadlineExceeded, match="Sleep"):
        ch.unary(SVC + "Sleep", b"5", timeout=0.3)
    assert time.monotonic() - t < 3
    assert ch.unary(SVC + "Unary", b"next", timeout=5) == b"next"


def test_the_servers_deadline_reads_as_our_own(ch: h2grpc.Channel) -> None:
    # gRPC's server may enforce our grpc-timeout before our timer fires: the same words.
    req = json.dumps({"code": "DEADLINE_EXCEEDED", "message": "Deadline Exceeded"}).encode()
    with pytest.raises(errors.DeadlineExceeded, match=r"Fail did not finish within 30s$"):
        ch.unary(SVC + "Fail", req, timeout=30)


def test_leaving_a_stream_early_keeps_the_channel_usable(ch: h2grpc.Channel) -> None:
    for m in ch.stream(SVC + "ServerStream", [b"100000"]):
        assert m == b"0"
        break
    assert ch.unary(SVC + "Unary", b"ok") == b"ok"


def test_the_server_dying_mid_stream_is_unavailable(sock_dir: Path) -> None:
    sock = sock_dir / "d.sock"
    p = start_server(sock)
    try:
        got = []
        lost = f"^lost connection to seacand at {sock}: "
        with h2grpc.Channel(sock) as c, pytest.raises(errors.Unavailable, match=lost):
            for m in c.stream(SVC + "Die", [b""]):
                got.append(m)
        assert got == [b"before"]
    finally:
        stop_server(p)


def test_no_socket_gives_the_probe_message(sock_dir: Path) -> None:
    path = sock_dir / "none.sock"
    with pytest.raises(errors.Unavailable) as ei:
        h2grpc.Channel(path)
    assert ei.value.message == (
        f"cannot connect to seacand at {path}: no such socket (is seacand running?)"
    )


def test_a_socket_nobody_listens_on_is_refused(sock_dir: Path) -> None:
    import socket

    path = sock_dir / "dead.sock"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(path))
    s.close()
    with pytest.raises(errors.Unavailable, match="connection refused"):
        h2grpc.Channel(path)


def test_it_imports_neither_grpc_nor_asyncio() -> None:
    code = "import sys, seacan.h2grpc; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(out.stdout.split())
    assert not loaded & {"grpc", "asyncio", "seacan.client", "google.protobuf"}


# --- HPACK --------------------------------------------------------------------------------


def test_hpack_decodes_what_the_hpack_package_encodes() -> None:
    import random

    import hpack

    enc, dec = hpack.Encoder(), h2grpc.HpackDecoder()
    rnd = random.Random(7)
    words = ["grpc-status", "grpc-message", "content-type", ":status", "x-ünï", "a" * 300]
    for i in range(400):
        headers = [
            (rnd.choice(words), "".join(rnd.choice("ab%é ✓0") for _ in range(rnd.randrange(40))))
            for _ in range(rnd.randrange(1, 6))
        ]
        headers.append((":status", "200"))
        huffman = i % 2 == 0
        block = (
            enc.encode(headers, huffman=huffman)
            if i % 3
            else enc.encode(
                [(k, v, True) for k, v in headers],
                huffman=huffman,  # never indexed
            )
        )
        if i % 50 == 0:
            enc.header_table_size = rnd.choice([0, 256, 4096])
        assert dec.decode(block) == headers


def test_hpack_encodes_what_the_hpack_package_decodes() -> None:
    import hpack

    headers = [(":path", "/a.B/C"), ("x-long", "v" * 200), ("x-ü", "✓ %")]
    assert hpack.Decoder().decode(h2grpc.encode_headers(headers)) == headers


def test_hpack_refuses_garbage() -> None:
    for block in (b"\xff", b"\xbf", b"\x00\x05ab", b"\x3f\xe2\x1f", b"\x82\x00\x81\xff"):
        with pytest.raises(h2grpc.HpackError):
            h2grpc.HpackDecoder().decode(block)


# --- through seacand ----------------------------------------------------------------------


@pytest.mark.e2e
def test_version_and_namespaces_through_seacand(seacand: Any, ns: str) -> None:
    from seacan.api.services.namespaces.v1 import namespaces_pb2 as npb
    from seacan.api.services.version.v1 import version_pb2 as vpb

    md = [(scope.NAMESPACE_HEADER, ns)]
    with h2grpc.Channel(seacand.address, metadata=md, timeout=30) as c:
        v = vpb.VersionResponse.FromString(
            c.unary("/containerd.services.version.v1.Version/Version", b"")
        )
        assert v.version
        c.unary(
            "/containerd.services.namespaces.v1.Namespaces/Create",
            npb.CreateNamespaceRequest(
                namespace=npb.Namespace(name=ns + "-h2")
            ).SerializeToString(),
        )
        raw = c.unary("/containerd.services.namespaces.v1.Namespaces/List", b"")
        names = {n.name for n in npb.ListNamespacesResponse.FromString(raw).namespaces}
        assert ns + "-h2" in names
        with pytest.raises(errors.NotFound):
            c.unary(
                "/containerd.services.namespaces.v1.Namespaces/Get",
                npb.GetNamespaceRequest(name=ns + "-none").SerializeToString(),
            )
        c.unary(
            "/containerd.services.namespaces.v1.Namespaces/Delete",
            npb.DeleteNamespaceRequest(name=ns + "-h2").SerializeToString(),
        )


if __name__ == "__main__":
    serve(sys.argv[1])
