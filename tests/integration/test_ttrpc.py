"""seacan.ttrpc client <-> server over a temporary Unix socket: concurrency,
error mapping both ways, unknown methods, deadlines, metadata, closing, and the
protocol rules a raw peer can break (stream ids, oversized messages)."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import tempfile
import time
from collections.abc import AsyncIterator, Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest

from seacan import errors, ttrpc
from seacan.api.runtime.task.v2 import shim_pb2 as pb
from seacan.api.ttrpc import ttrpc_pb2

pytestmark = pytest.mark.integration

SVC = "containerd.task.v2.Task"


def run(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run(coro)


@pytest.fixture
def sock_dir() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="sc-", dir="/tmp"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


class Fake:
    """A tiny Task service: Connect echoes, State sleeps then answers or raises."""

    def __init__(self) -> None:
        self.metadata: list[ttrpc.Metadata] = []
        self.cancelled = asyncio.Event()

    async def connect(self, req: pb.ConnectRequest, md: ttrpc.Metadata) -> pb.ConnectResponse:
        self.metadata.append(md)
        return pb.ConnectResponse(shim_pid=len(req.id), version=req.id)

    async def state(self, req: pb.StateRequest, md: ttrpc.Metadata) -> pb.StateResponse:
        delay = float(req.exec_id or 0)
        try:
            await asyncio.sleep(delay)
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
        if req.id.startswith("missing"):
            raise errors.NotFound(f"container {req.id} not found")
        if req.id == "boom":
            raise RuntimeError("kaput")
        return pb.StateResponse(id=req.id, pid=int(delay * 1000))

    def register(self, server: ttrpc.Server) -> None:
        server.register(
            SVC,
            {
                "Connect": ttrpc.unary(pb.ConnectRequest, self.connect),
                "State": ttrpc.unary(pb.StateRequest, self.state),
            },
        )


@contextlib.asynccontextmanager
async def serving(sock_dir: Path) -> AsyncIterator[tuple[Fake, ttrpc.Server, ttrpc.Client]]:
    fake = Fake()
    server = ttrpc.Server()
    fake.register(server)
    path = str(sock_dir / "t.sock")
    await server.serve_unix(path)
    client = await ttrpc.Client.connect("unix://" + path)
    try:
        yield fake, server, client
    finally:
        await client.close()
        await server.close()
    assert not Path(path).exists()


async def state(client: ttrpc.Client, id: str, delay: float = 0, **kw: Any) -> pb.StateResponse:
    req = pb.StateRequest(id=id, exec_id=str(delay) if delay else "")
    return await client.call(SVC, "State", req, pb.StateResponse, **kw)


def test_unary_call_and_metadata(sock_dir: Path) -> None:
    async def main() -> None:
        async with serving(sock_dir) as (fake, _, client):
            resp = await client.call(
                SVC,
                "Connect",
                pb.ConnectRequest(id="abc"),
                pb.ConnectResponse,
                metadata={"containerd-namespace-ttrpc": "ns1", "X-Multi": ["a", "b"]},
            )
            assert (resp.shim_pid, resp.version) == (3, "abc")
            assert fake.metadata == [{"containerd-namespace-ttrpc": ["ns1"], "x-multi": ["a", "b"]}]
            # An empty request and response (zero-length payloads) work too.
            empty = await client.call(SVC, "Connect", pb.ConnectRequest(), pb.ConnectResponse)
            assert empty == pb.ConnectResponse()

    run(main())


def test_calls_on_one_connection_run_concurrently(sock_dir: Path) -> None:
    async def main() -> None:
        async with serving(sock_dir) as (_, _, client):
            delays = [0.3 - i * 0.01 for i in range(20)]
            t0 = time.monotonic()
            results = await asyncio.gather(
                *(state(client, f"c{i}", d) for i, d in enumerate(delays))
            )
            elapsed = time.monotonic() - t0
            assert [r.id for r in results] == [f"c{i}" for i in range(20)]
            assert [r.pid for r in results] == [int(d * 1000) for d in delays]
            assert elapsed < 1.5  # serial would take about 3.9 s

    run(main())


def test_errors_map_to_kinds_both_ways(sock_dir: Path) -> None:
    async def main() -> None:
        async with serving(sock_dir) as (_, _, client):
            with pytest.raises(errors.NotFound) as nf:
                await state(client, "missing1")
            assert nf.value.message == "container missing1 not found"
            with pytest.raises(errors.Internal, match="kaput"):
                await state(client, "boom")
            # The connection survives errors.
            assert (await state(client, "ok")).id == "ok"

    run(main())


def test_unknown_service_and_method_are_unimplemented(sock_dir: Path) -> None:
    async def main() -> None:
        async with serving(sock_dir) as (_, _, client):
            with pytest.raises(errors.NotImplemented_) as m:
                await client.call(SVC, "Nope", pb.StateRequest(), pb.StateResponse)
            assert m.value.message == "method Nope"
            with pytest.raises(errors.NotImplemented_) as s:
                await client.call("x.Y", "State", pb.StateRequest(), pb.StateResponse)
            assert s.value.message == "service x.Y"

    run(main())


def test_deadline_reaches_the_server_and_cancels_the_handler(sock_dir: Path) -> None:
    async def main() -> None:
        async with serving(sock_dir) as (fake, _, client):
            t0 = time.monotonic()
            with pytest.raises(errors.DeadlineExceeded):
                await state(client, "slow", 5, timeout=0.2)
            assert time.monotonic() - t0 < 1
            await asyncio.wait_for(fake.cancelled.wait(), 2)
            assert (await state(client, "after")).id == "after"

    run(main())


def test_server_deadline_status_comes_back_as_deadline_exceeded(sock_dir: Path) -> None:
    """A raw request whose timeout_nano expires on the server gets DEADLINE_EXCEEDED."""

    async def main() -> None:
        async with serving(sock_dir) as (_, _, _client):
            reader, writer = await asyncio.open_unix_connection(str(sock_dir / "t.sock"))
            req = ttrpc_pb2.Request(
                service=SVC,
                method="State",
                payload=pb.StateRequest(id="x", exec_id="5").SerializeToString(),
                timeout_nano=100_000_000,
            )
            writer.write(ttrpc.encode_frame(1, ttrpc.TYPE_REQUEST, 0, req.SerializeToString()))
            frame = await asyncio.wait_for(ttrpc.read_frame(reader), 3)
            assert frame is not None
            resp = ttrpc_pb2.Response.FromString(frame.data)
            assert (frame.stream_id, resp.status.code) == (1, ttrpc.CODES["DEADLINE_EXCEEDED"])
            writer.close()

    run(main())


def test_server_close_fails_pending_calls_with_unavailable(sock_dir: Path) -> None:
    async def main() -> None:
        async with serving(sock_dir) as (fake, server, client):
            pending = asyncio.create_task(state(client, "slow", 5))
            await asyncio.sleep(0.1)
            await server.close()
            with pytest.raises(errors.Unavailable, match=r"^ttrpc: closed$"):
                await pending
            assert fake.cancelled.is_set()
            assert client.closed
            with pytest.raises(errors.Unavailable, match=r"^ttrpc: closed$"):
                await state(client, "again")
            with pytest.raises(errors.Unavailable):
                await ttrpc.Client.connect(str(sock_dir / "t.sock"))

    run(main())


def test_graceful_close_lets_inflight_calls_finish(sock_dir: Path) -> None:
    async def main() -> None:
        async with serving(sock_dir) as (_, server, client):
            pending = asyncio.create_task(state(client, "slowish", 0.2))
            await asyncio.sleep(0.05)
            await server.close(grace=2)
            assert (await pending).id == "slowish"

    run(main())


def test_client_close_fails_its_pending_calls(sock_dir: Path) -> None:
    async def main() -> None:
        async with serving(sock_dir) as (_, _, client):
            pending = asyncio.create_task(state(client, "slow", 5))
            await asyncio.sleep(0.05)
            await client.close()
            with pytest.raises(errors.Unavailable, match=r"^ttrpc: closed$"):
                await pending

    run(main())


def test_serve_an_inherited_listening_socket(sock_dir: Path) -> None:
    async def main() -> None:
        path = str(sock_dir / "inherited.sock")
        lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        lsock.bind(path)
        lsock.listen()
        # As a shim gets it: a bare fd, wrapped again.
        sock = socket.socket(fileno=lsock.detach())
        server = ttrpc.Server()
        Fake().register(server)
        await server.serve_socket(sock)
        async with await ttrpc.Client.connect(path) as client:
            assert (await state(client, "fd3")).id == "fd3"
        await server.close()

    run(main())


def test_serve_unix_refuses_an_existing_socket(sock_dir: Path) -> None:
    async def main() -> None:
        async with serving(sock_dir):
            other = ttrpc.Server()
            with pytest.raises(errors.AlreadyExists):
                await other.serve_unix(str(sock_dir / "t.sock"))
            await other.close()

    run(main())


def test_oversized_request_is_refused_and_the_connection_survives(sock_dir: Path) -> None:
    async def main() -> None:
        async with serving(sock_dir) as (_, _, client):
            huge = pb.StateRequest(id="x" * (ttrpc.MAX_MESSAGE + 1))
            with pytest.raises(errors.ResourceExhausted):
                await client.call(SVC, "State", huge, pb.StateResponse)
            assert (await state(client, "fine")).id == "fine"

            # A raw peer that sends one anyway gets RESOURCE_EXHAUSTED on that stream.
            reader, writer = await asyncio.open_unix_connection(str(sock_dir / "t.sock"))
            length = ttrpc.MAX_MESSAGE + 10
            writer.write(ttrpc.HEADER.pack(length, 1, ttrpc.TYPE_REQUEST, 0) + bytes(length))
            ok = ttrpc_pb2.Request(
                service=SVC, method="State", payload=pb.StateRequest(id="y").SerializeToString()
            )
            writer.write(ttrpc.encode_frame(3, ttrpc.TYPE_REQUEST, 0, ok.SerializeToString()))
            got = {}
            for _ in range(2):
                frame = await asyncio.wait_for(ttrpc.read_frame(reader), 5)
                assert frame is not None
                got[frame.stream_id] = ttrpc_pb2.Response.FromString(frame.data)
            assert got[1].status.code == ttrpc.CODES["RESOURCE_EXHAUSTED"]
            assert got[3].status.code == 0
            assert pb.StateResponse.FromString(got[3].payload).id == "y"
            writer.close()

    run(main())


def test_stream_id_rules(sock_dir: Path) -> None:
    async def main() -> None:
        async with serving(sock_dir):
            reader, writer = await asyncio.open_unix_connection(str(sock_dir / "t.sock"))
            body = ttrpc_pb2.Request(service=SVC, method="Connect").SerializeToString()

            async def send(sid: int, type_: int = ttrpc.TYPE_REQUEST) -> ttrpc_pb2.Response:
                writer.write(ttrpc.encode_frame(sid, type_, 0, body))
                frame = await asyncio.wait_for(ttrpc.read_frame(reader), 3)
                assert frame is not None and frame.stream_id == sid
                return ttrpc_pb2.Response.FromString(frame.data)

            even = await send(2)
            assert (even.status.code, even.status.message) == (
                3,
                "StreamID must be odd for client initiated streams",
            )
            assert (await send(5)).status.code == 0
            reused = await send(5)
            assert reused.status.message == "StreamID cannot be re-used and must increment"
            data = await send(7, ttrpc.TYPE_DATA)
            assert data.status.message == "StreamID is no longer active"
            writer.close()

    run(main())
