"""The Content gRPC service: the conformance suite through RemoteContent, and
the exact Write lock-step on a raw stub (what ctr sends, see the fact sheet §2)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator, Coroutine
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
import pytest

from seacan import errors, grpcutil, scope
from seacan.api.services.content.v1 import content_pb2 as pb
from seacan.api.services.content.v1 import content_pb2_grpc
from seacan.content import CHUNK, EMPTY_DIGEST, Store, open_writer, testsuite, write_blob
from seacan.content.proxy import EOF, RemoteContent
from seacan.services.content.servicer import register
from seacan.services.content.store import ContentStore, Hooks, NoHooks

pytestmark = pytest.mark.integration

NS = "integration"
MD = grpcutil.metadata(NS)


class RecordingHooks:
    def __init__(self) -> None:
        self.resources: list[tuple[str, str, str]] = []

    async def ensure_namespace(self, namespace: str, /) -> None:
        return None

    async def add_lease_resource(
        self, lease_id: str, resource_id: str, resource_type: str, /
    ) -> None:
        self.resources.append((lease_id, resource_id, resource_type))


def run(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run(coro)


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@contextlib.asynccontextmanager
async def serving(
    root: Path, hooks: Hooks | None = None, **kw: Any
) -> AsyncIterator[tuple[ContentStore, grpc.aio.Channel]]:
    """The real servicer on a private Unix socket, and a channel to it."""
    store = ContentStore.open(root / "content", hooks or NoHooks(), **kw)
    server = grpcutil.server()
    register(server, store)
    sock = root / "content.sock"
    server.add_insecure_port(f"unix:{sock}")
    await server.start()
    channel = grpcutil.channel(sock)
    try:
        yield store, channel
    finally:
        await channel.close(None)
        await server.stop(None)
        store.close()


@pytest.mark.parametrize("case", testsuite.CASES, ids=testsuite.case_id)
def test_conformance_through_proxy(case: testsuite.Case, tmp_path: Path) -> None:
    n = 0

    @contextlib.asynccontextmanager
    async def make() -> AsyncIterator[Store]:
        nonlocal n
        n += 1
        async with serving(tmp_path / f"s{n}") as (_, channel):
            yield RemoteContent(channel)

    run(case(make))


async def _read(call: Any) -> Any:
    resp = await call.read()
    assert resp is not EOF
    return resp


def test_write_lockstep_as_ctr_sends_it(tmp_path: Path) -> None:
    data = b"m" * 422
    d = digest_of(data)

    async def main() -> None:
        async with serving(tmp_path) as (_, channel):
            stub = content_pb2_grpc.ContentStub(channel)
            call = stub.Write(metadata=MD)
            await call.write(
                pb.WriteContentRequest(
                    action=pb.STAT, ref=f"manifest-{d}", total=len(data), expected=d
                )
            )
            first = await _read(call)
            assert (first.action, first.offset, first.total) == (pb.STAT, 0, len(data))
            assert first.digest == EMPTY_DIGEST
            assert first.started_at.seconds > 0 and first.updated_at.seconds > 0
            for _ in range(2):  # bare STATs, no ref: each one answered
                await call.write(pb.WriteContentRequest(action=pb.STAT))
                resp = await _read(call)
                assert (resp.action, resp.offset, resp.total) == (pb.STAT, 0, len(data))
            await call.write(pb.WriteContentRequest(action=pb.WRITE, data=data))
            resp = await _read(call)
            assert (resp.action, resp.offset, resp.digest) == (pb.WRITE, len(data), d)
            await call.write(
                pb.WriteContentRequest(
                    action=pb.COMMIT, total=len(data), expected=d, offset=len(data)
                )
            )
            resp = await _read(call)
            assert (resp.action, resp.offset, resp.digest) == (pb.COMMIT, len(data), d)
            assert await call.read() is EOF  # the server ends the stream
            assert await call.code() == grpc.StatusCode.OK
            info = await stub.Info(pb.InfoRequest(digest=d), metadata=MD)
            assert info.info.size == len(data)

    run(main())


def test_write_import_style_without_expected(tmp_path: Path) -> None:
    data = b"blob from a tar" * 1000

    async def main() -> None:
        async with serving(tmp_path) as (_, channel):
            stub = content_pb2_grpc.ContentStub(channel)
            call = stub.Write(metadata=MD)
            ref = f"tar-blobs/sha256/{hashlib.sha256(data).hexdigest()}"
            await call.write(pb.WriteContentRequest(action=pb.STAT, ref=ref, total=len(data)))
            await _read(call)
            await call.write(pb.WriteContentRequest(action=pb.WRITE, data=data))
            await _read(call)
            await call.write(
                pb.WriteContentRequest(action=pb.COMMIT, total=len(data), offset=len(data))
            )
            resp = await _read(call)
            assert resp.digest == digest_of(data)
            assert await call.read() is EOF

    run(main())


async def _status_of(call: Any) -> grpc.StatusCode:
    with contextlib.suppress(grpc.aio.AioRpcError):
        while await call.read() is not EOF:
            pass
    return await call.code()  # type: ignore[no-any-return]


def test_write_already_exists_on_first_message(tmp_path: Path) -> None:
    data = b"already here"
    d = digest_of(data)

    async def main() -> None:
        async with serving(tmp_path) as (store, channel):
            scope.set_scope("elsewhere", "")
            await write_blob(store, "first", data)  # on disk, seen by another namespace
            stub = content_pb2_grpc.ContentStub(channel)
            call = stub.Write(metadata=MD)
            await call.write(
                pb.WriteContentRequest(action=pb.STAT, ref="again", total=len(data), expected=d)
            )
            assert await _status_of(call) == grpc.StatusCode.ALREADY_EXISTS
            info = await stub.Info(pb.InfoRequest(digest=d), metadata=MD)  # now visible here
            assert info.info.size == len(data)
            st = await stub.ListStatuses(pb.ListStatusesRequest(filters=[""]), metadata=MD)
            assert list(st.statuses) == []

    run(main())


def test_write_errors(tmp_path: Path) -> None:
    async def main() -> None:
        async with serving(tmp_path) as (_, channel):
            stub = content_pb2_grpc.ContentStub(channel)

            call = stub.Write(metadata=MD)
            await call.write(pb.WriteContentRequest(action=pb.STAT))
            assert await _status_of(call) == grpc.StatusCode.INVALID_ARGUMENT
            assert "first message must have a reference" in (await call.details())

            call = stub.Write(metadata=MD)
            await call.write(pb.WriteContentRequest(action=pb.WRITE, ref="r", data=b"abc"))
            assert (await _read(call)).offset == 3
            await call.write(pb.WriteContentRequest(action=pb.WRITE, offset=7, data=b"x"))
            assert await _status_of(call) == grpc.StatusCode.OUT_OF_RANGE
            assert "must occur at current offset 3" in (await call.details())

            call = stub.Write(metadata=MD)
            await call.write(pb.WriteContentRequest(action=pb.STAT, ref="r"))
            assert (await _read(call)).offset == 3  # resumed
            await call.write(
                pb.WriteContentRequest(action=pb.COMMIT, offset=3, expected=digest_of(b"abd"))
            )
            assert await _status_of(call) == grpc.StatusCode.FAILED_PRECONDITION
            assert "unexpected commit digest" in (await call.details())

            call = stub.Write(metadata=MD)
            await call.write(pb.WriteContentRequest(action=pb.COMMIT, ref="r", total=4))
            assert await _status_of(call) == grpc.StatusCode.FAILED_PRECONDITION
            assert "unexpected commit size" in (await call.details())

            call = stub.Write()  # no namespace header
            await call.write(pb.WriteContentRequest(action=pb.STAT, ref="r"))
            assert await _status_of(call) == grpc.StatusCode.FAILED_PRECONDITION

    run(main())


def test_write_offset_zero_truncates(tmp_path: Path) -> None:
    async def main() -> None:
        async with serving(tmp_path) as (_, channel):
            stub = content_pb2_grpc.ContentStub(channel)
            call = stub.Write(metadata=MD)
            await call.write(pb.WriteContentRequest(action=pb.WRITE, ref="t", data=b"junk"))
            await _read(call)
            await call.write(pb.WriteContentRequest(action=pb.WRITE, offset=0, data=b"good"))
            resp = await _read(call)
            assert (resp.offset, resp.digest) == (4, digest_of(b"good"))
            await call.write(pb.WriteContentRequest(action=pb.COMMIT, offset=4))
            assert (await _read(call)).digest == digest_of(b"good")

    run(main())


def test_ref_locked_and_released_on_disconnect(tmp_path: Path) -> None:
    async def main() -> None:
        async with serving(tmp_path) as (_, channel):
            stub = content_pb2_grpc.ContentStub(channel)
            holder = stub.Write(metadata=MD)
            await holder.write(pb.WriteContentRequest(action=pb.WRITE, ref="busy", data=b"1"))
            await _read(holder)
            other = stub.Write(metadata=MD)
            await other.write(pb.WriteContentRequest(action=pb.STAT, ref="busy"))
            assert await _status_of(other) == grpc.StatusCode.UNAVAILABLE
            assert "ref busy locked" in (await other.details())
            holder.cancel()  # the client goes away mid-ingest
            scope.set_scope(NS, "")
            w = await open_writer(RemoteContent(channel), "busy", wait=5)
            assert w.offset == 1
            await w.close()

    run(main())


def test_lease_header_reaches_the_store(tmp_path: Path) -> None:
    async def main() -> None:
        hooks = RecordingHooks()
        async with serving(tmp_path, hooks) as (_, channel):
            scope.set_scope(NS, "lease-7")
            desc = await write_blob(RemoteContent(channel), "leased", b"leased bytes")
            assert hooks.resources == [("lease-7", desc.digest, "content")]

    run(main())


def test_blob_size_limit(tmp_path: Path) -> None:
    async def main() -> None:
        async with serving(tmp_path, max_blob_bytes=10) as (_, channel):
            scope.set_scope(NS, "")
            remote = RemoteContent(channel)
            with pytest.raises(errors.InvalidArgument, match="maximum blob size 10"):
                await write_blob(remote, "too-big", b"x" * 11)
            with pytest.raises(errors.ResourceExhausted, match="maximum blob size 10"):
                await write_blob(remote, "too-big-2", b"y" * 11, total=5)

    run(main())


def test_read_and_list_on_the_wire(tmp_path: Path) -> None:
    data = bytes(range(256)) * ((2 * CHUNK + 1000) // 256)

    async def main() -> None:
        async with serving(tmp_path) as (store, channel):
            scope.set_scope(NS, "")
            for i in range(230):
                await write_blob(store, f"b{i}", f"blob {i}".encode())
            desc = await write_blob(store, "big", data)
            stub = content_pb2_grpc.ContentStub(channel)
            batches = [len(r.info) async for r in stub.List(pb.ListContentRequest(), metadata=MD)]
            assert batches == [100, 100, 31]
            req = pb.ReadContentRequest(digest=desc.digest, offset=5)
            chunks = [(r.offset, r.data) async for r in stub.Read(req, metadata=MD)]
            assert [o for o, _ in chunks] == [5, 5 + CHUNK, 5 + 2 * CHUNK]
            assert b"".join(c for _, c in chunks) == data[5:]
            req = pb.ReadContentRequest(digest=desc.digest, offset=CHUNK, size=32768)
            chunks = [(r.offset, r.data) async for r in stub.Read(req, metadata=MD)]
            assert chunks == [(CHUNK, data[CHUNK : CHUNK + 32768])]
            req = pb.ReadContentRequest(digest=desc.digest, offset=len(data) + 1)
            call = stub.Read(req, metadata=MD)
            assert await _status_of(call) == grpc.StatusCode.OUT_OF_RANGE
            with pytest.raises(grpc.aio.AioRpcError) as e:
                await stub.Info(pb.InfoRequest(digest=digest_of(b"nope")), metadata=MD)
            assert e.value.code() == grpc.StatusCode.NOT_FOUND
            assert e.value.details() == f"content digest {digest_of(b'nope')} not found"

    run(main())
