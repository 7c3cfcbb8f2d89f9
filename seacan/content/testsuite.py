"""The conformance suite every content store passes (containerd's content/testsuite).

Each case is ``async def case(make: StoreFactory) -> None``; ``make()`` is an
async context manager yielding a fresh, empty :class:`~seacan.content.Store`.
A case sets its own request scope (:func:`seacan.scope.set_scope`), so run
each one in its own task (``asyncio.run`` does). Use it from pytest as::

    @pytest.mark.parametrize("case", testsuite.CASES, ids=testsuite.case_id)
    def test_conformance(case, tmp_path):
        asyncio.run(case(lambda: my_store(tmp_path)))
"""

from __future__ import annotations

import asyncio
import hashlib
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import AbstractAsyncContextManager
from typing import Any

from seacan import errors, scope
from seacan.content import CHUNK, EMPTY_DIGEST, Info, Store, read_blob, write_blob

StoreFactory = Callable[[], AbstractAsyncContextManager[Store]]
Case = Callable[[StoreFactory], Coroutine[Any, Any, None]]

NS = "testsuite"
OTHER_NS = "testsuite-other"

CASES: list[Case] = []


def case(fn: Case) -> Case:
    CASES.append(fn)
    return fn


def case_id(fn: Case) -> str:
    return getattr(fn, "__name__", "case")


def blob(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def use(namespace: str, lease: str = "") -> None:
    scope.set_scope(namespace, lease)


async def raises(kind: type[errors.SeacanError], aw: Awaitable[object]) -> errors.SeacanError:
    try:
        await aw
    except kind as e:
        return e
    raise AssertionError(f"expected {kind.__name__}")


async def read_all(store: Store, digest: str, offset: int = 0, size: int = 0) -> list[bytes]:
    return [chunk async for chunk in store.read(digest, offset, size)]


async def list_digests(store: Store, *filters: str) -> set[str]:
    return {i.digest async for i in store.list(list(filters))}


@case
async def write_and_read(make: StoreFactory) -> None:
    use(NS)
    data = blob(3 * CHUNK + 123)
    d = digest_of(data)
    async with make() as store:
        desc = await write_blob(store, "write-and-read", data, expected=d)
        assert (desc.digest, desc.size) == (d, len(data))
        info = await store.info(d)
        assert (info.digest, info.size) == (d, len(data))
        assert info.created_at is not None and info.updated_at is not None
        chunks = await read_all(store, d)
        assert b"".join(chunks) == data
        assert all(0 < len(c) <= CHUNK for c in chunks)
        assert b"".join(await read_all(store, d, 10, 100)) == data[10:110]
        assert b"".join(await read_all(store, d, len(data) - 5)) == data[-5:]
        assert await read_all(store, d, len(data)) == []
        await raises(errors.OutOfRange, read_all(store, d, len(data) + 1))
        assert await store.list_statuses() == []


@case
async def writer_lockstep(make: StoreFactory) -> None:
    use(NS)
    a, b = blob(1000, 1), blob(CHUNK + 7, 2)
    d = digest_of(a + b)
    async with make() as store:
        w = await store.writer("lockstep", total=len(a + b), expected=d)
        try:
            st = await w.status()
            assert (st.ref, st.offset, st.total) == ("lockstep", 0, len(a + b))
            assert w.digest == EMPTY_DIGEST
            assert await w.write(a) == len(a)
            assert (w.offset, w.digest) == (len(a), digest_of(a))
            await w.write(b)
            assert (await w.status()).offset == len(a + b)
            assert await w.commit(len(a + b), d, labels={"k": "v"}) == d
        finally:
            await w.close()
        info = await store.info(d)
        assert (info.size, dict(info.labels)) == (len(a + b), {"k": "v"})
        await raises(errors.NotFound, store.status("lockstep"))


@case
async def commit_without_expected(make: StoreFactory) -> None:
    use(NS)
    data = blob(5000, 3)
    async with make() as store:
        w = await store.writer("no-expected", total=len(data))
        try:
            await w.write(data)
            assert await w.commit(len(data)) == digest_of(data)
        finally:
            await w.close()
        assert (await store.info(digest_of(data))).size == len(data)


@case
async def commit_size_mismatch(make: StoreFactory) -> None:
    use(NS)
    data = blob(100, 4)
    async with make() as store:
        w = await store.writer("bad-size")
        try:
            await w.write(data)
            e = await raises(errors.FailedPrecondition, w.commit(len(data) + 1, digest_of(data)))
            assert "unexpected commit size" in str(e)
        finally:
            await w.close()
        assert (await store.status("bad-size")).offset == len(data)  # kept, resumable
        await raises(errors.NotFound, store.info(digest_of(data)))
        await store.abort("bad-size")


@case
async def commit_digest_mismatch(make: StoreFactory) -> None:
    use(NS)
    data = blob(100, 5)
    async with make() as store:
        w = await store.writer("bad-digest")
        try:
            await w.write(data)
            e = await raises(errors.FailedPrecondition, w.commit(len(data), digest_of(b"other")))
            assert "unexpected commit digest" in str(e)
        finally:
            await w.close()
        await raises(errors.NotFound, store.info(digest_of(data)))
        await raises(errors.NotFound, store.info(digest_of(b"other")))


@case
async def resume(make: StoreFactory) -> None:
    use(NS)
    data = blob(2 * CHUNK + 99, 6)
    half = len(data) // 2
    d = digest_of(data)
    async with make() as store:
        w = await store.writer("resume", total=len(data), expected=d)
        await w.write(data[:half])
        await w.close()
        st = await store.status("resume")
        assert (st.offset, st.total) == (half, len(data))
        w = await store.writer("resume", total=len(data), expected=d)
        try:
            assert (w.offset, w.digest) == (half, digest_of(data[:half]))
            await w.write(data[half:])
            assert await w.commit(len(data), d) == d
        finally:
            await w.close()
        assert b"".join(await read_all(store, d)) == data


@case
async def resume_with_write_blob(make: StoreFactory) -> None:
    use(NS)
    data = blob(3000, 7)
    async with make() as store:
        w = await store.writer("resume-helper")
        await w.write(data[:1000])
        await w.close()
        desc = await write_blob(store, "resume-helper", data, expected=digest_of(data))
        assert desc.size == len(data)
        # a leftover with different bytes is rewritten from the start
        w = await store.writer("resume-stale")
        await w.write(b"x" * 10)
        await w.close()
        other = blob(500, 8)
        desc = await write_blob(store, "resume-stale", other, expected=digest_of(other))
        assert b"".join(await read_all(store, desc.digest)) == other


@case
async def write_from_stream(make: StoreFactory) -> None:
    use(NS)
    data = blob(2 * CHUNK + 5, 16)

    async def pieces() -> AsyncIterator[bytes]:
        for i in range(0, len(data), 70000):
            yield data[i : i + 70000]

    async with make() as store:
        desc = await write_blob(store, "stream", pieces(), expected=digest_of(data))
        assert (desc.digest, desc.size) == (digest_of(data), len(data))
        again = await write_blob(store, "stream-2", pieces(), expected=digest_of(data))
        assert (again.digest, again.size) == (digest_of(data), len(data))
        assert await read_blob(store, desc.digest) == data


@case
async def truncate(make: StoreFactory) -> None:
    use(NS)
    data = blob(777, 9)
    async with make() as store:
        w = await store.writer("truncate")
        try:
            await w.write(b"junk" * 100)
            await w.truncate(0)
            assert (w.offset, w.digest) == (0, EMPTY_DIGEST)
            await w.write(data)
            assert await w.commit(len(data), digest_of(data)) == digest_of(data)
        finally:
            await w.close()


@case
async def ref_locked(make: StoreFactory) -> None:
    use(NS)
    async with make() as store:
        w = await store.writer("locked")
        try:
            e = await raises(errors.Unavailable, store.writer("locked"))
            assert "locked" in str(e)
        finally:
            await w.close()
        w = await store.writer("locked")
        await w.close()
        await store.abort("locked")


@case
async def already_exists(make: StoreFactory) -> None:
    use(NS)
    data = blob(2000, 10)
    d = digest_of(data)
    async with make() as store:
        await write_blob(store, "exists-1", data, expected=d)
        await raises(errors.AlreadyExists, store.writer("exists-2", len(data), d))
        await raises(errors.NotFound, store.status("exists-2"))
        desc = await write_blob(store, "exists-3", data, expected=d)
        assert (desc.digest, desc.size) == (d, len(data))
        # without an expected digest the commit itself finds it
        w = await store.writer("exists-4")
        try:
            await w.write(data)
            await raises(errors.AlreadyExists, w.commit(len(data)))
        finally:
            await w.close()
        await raises(errors.NotFound, store.status("exists-4"))
        desc = await write_blob(store, "exists-5", data)
        assert desc.digest == d


@case
async def empty_blob(make: StoreFactory) -> None:
    use(NS)
    async with make() as store:
        desc = await write_blob(store, "empty", b"", expected=EMPTY_DIGEST)
        assert (desc.digest, desc.size) == (EMPTY_DIGEST, 0)
        assert (await store.info(EMPTY_DIGEST)).size == 0
        assert await read_blob(store, EMPTY_DIGEST) == b""


@case
async def labels_and_update(make: StoreFactory) -> None:
    use(NS)
    data = blob(10, 11)
    d = digest_of(data)
    gc_key = "containerd.io/gc.ref.content.l.0"
    async with make() as store:
        await write_blob(store, "labels", data, expected=d, labels={"a": "1", "b": "2"})
        info = await store.info(d)
        assert dict(info.labels) == {"a": "1", "b": "2"}
        got = await store.update(Info(d, 0, labels={"a": "x", gc_key: "sha256:1"}), ["labels.a"])
        assert dict(got.labels) == {"a": "x", "b": "2"}
        got = await store.update(Info(d, 0, labels={gc_key: "sha256:1"}), [f"labels.{gc_key}"])
        assert dict(got.labels) == {"a": "x", "b": "2", gc_key: "sha256:1"}
        got = await store.update(Info(d, 0, labels={}), ["labels.b"])
        assert dict(got.labels) == {"a": "x", gc_key: "sha256:1"}
        assert got.updated_at is not None and info.created_at is not None
        assert got.updated_at >= info.created_at
        got = await store.update(Info(d, 0, labels={"c": "3"}), ["labels"])
        assert dict(got.labels) == {"c": "3"}
        got = await store.update(Info(d, 0, labels={"d": "4"}))
        assert dict(got.labels) == {"d": "4"}
        assert dict((await store.info(d)).labels) == {"d": "4"}
        await raises(errors.InvalidArgument, store.update(Info(d, 0), ["size"]))
        too_long = {"k": "v" * 4096}
        await raises(errors.InvalidArgument, store.update(Info(d, 0, labels=too_long)))
        await raises(errors.NotFound, store.update(Info(digest_of(b"nope"), 0), ["labels"]))


@case
async def list_and_filters(make: StoreFactory) -> None:
    use(NS)
    x, y = blob(10, 12), blob(20, 13)
    dx, dy = digest_of(x), digest_of(y)
    async with make() as store:
        assert await list_digests(store) == set()
        await write_blob(store, "x", x, labels={"kind": "x", "a.b": "dotted"})
        await write_blob(store, "y", y, labels={"kind": "y"})
        assert await list_digests(store) == {dx, dy}
        assert await list_digests(store, "") == {dx, dy}
        assert await list_digests(store, "labels.kind==y") == {dy}
        assert await list_digests(store, f"digest=={dx}") == {dx}
        assert await list_digests(store, "labels.kind==x", "labels.kind==y") == {dx, dy}
        assert await list_digests(store, 'labels."a.b"==dotted') == {dx}
        assert await list_digests(store, "labels.kind==x,labels.kind==y") == set()
        infos = [i async for i in store.list([f"digest=={dy}"])]
        assert [(i.size, dict(i.labels)) for i in infos] == [(len(y), {"kind": "y"})]


@case
async def list_many(make: StoreFactory) -> None:
    use(NS)
    datas = [f"blob {i}".encode() for i in range(230)]
    async with make() as store:
        for i, data in enumerate(datas):
            await write_blob(store, f"many-{i}", data)
        assert await list_digests(store) == {digest_of(d) for d in datas}


@case
async def delete(make: StoreFactory) -> None:
    use(NS)
    data = blob(64, 14)
    d = digest_of(data)
    async with make() as store:
        await write_blob(store, "delete", data)
        await store.delete(d)
        e = await raises(errors.NotFound, store.info(d))
        assert d in str(e)
        await raises(errors.NotFound, read_all(store, d))
        await raises(errors.NotFound, store.delete(d))
        assert await list_digests(store) == set()
        await write_blob(store, "delete-again", data, expected=d)  # and it can come back
        assert await read_blob(store, d) == data


@case
async def namespaces(make: StoreFactory) -> None:
    data = blob(4096, 15)
    d = digest_of(data)
    async with make() as store:
        use(NS)
        await write_blob(store, "ns", data, expected=d, labels={"in": "first"})
        use(OTHER_NS)
        await raises(errors.NotFound, store.info(d))
        await raises(errors.NotFound, read_all(store, d))
        await raises(errors.NotFound, store.delete(d))
        assert await list_digests(store) == set()
        # the bytes are on disk already: the writer shares them and says so
        await raises(errors.AlreadyExists, store.writer("ns", len(data), d, {"in": "second"}))
        info = await store.info(d)
        assert (info.size, dict(info.labels)) == (len(data), {"in": "second"})
        use(NS)
        assert dict((await store.info(d)).labels) == {"in": "first"}
        await store.delete(d)
        use(OTHER_NS)
        assert await read_blob(store, d) == data
        await store.delete(d)
        await raises(errors.NotFound, store.info(d))


@case
async def ingests_per_namespace(make: StoreFactory) -> None:
    async with make() as store:
        use(NS)
        w1 = await store.writer("shared-ref")
        try:
            await w1.write(b"first")
            use(OTHER_NS)
            await raises(errors.NotFound, store.status("shared-ref"))
            w2 = await store.writer("shared-ref")  # not locked: another namespace's ref
            try:
                await w2.write(b"second!")
                assert [s.ref for s in await store.list_statuses()] == ["shared-ref"]
                assert (await store.status("shared-ref")).offset == len(b"second!")
            finally:
                await w2.close()
            await store.abort("shared-ref")
        finally:
            await w1.close()
        use(NS)
        assert (await store.status("shared-ref")).offset == len(b"first")
        await store.abort("shared-ref")


@case
async def statuses_and_abort(make: StoreFactory) -> None:
    use(NS)
    async with make() as store:
        await raises(errors.NotFound, store.status("nope"))
        await raises(errors.NotFound, store.abort("nope"))
        for ref, size in (("layer-sha256:1", 10), ("config-sha256:2", 20)):
            w = await store.writer(ref, total=100)
            await w.write(b"z" * size)
            await w.close()
        st = await store.status("layer-sha256:1")
        assert (st.ref, st.offset, st.total) == ("layer-sha256:1", 10, 100)
        assert st.started_at is not None and st.updated_at is not None
        assert st.updated_at >= st.started_at
        assert {s.ref for s in await store.list_statuses([""])} == {
            "layer-sha256:1",
            "config-sha256:2",
        }
        only = await store.list_statuses(["ref==config-sha256:2"])
        assert [(s.ref, s.offset) for s in only] == [("config-sha256:2", 20)]
        await store.abort("layer-sha256:1")
        await raises(errors.NotFound, store.status("layer-sha256:1"))
        await raises(errors.NotFound, store.abort("layer-sha256:1"))
        assert [s.ref for s in await store.list_statuses()] == ["config-sha256:2"]


@case
async def concurrent_writes(make: StoreFactory) -> None:
    use(NS)
    datas = [blob(CHUNK + i * 1000, 100 + i) for i in range(4)]
    async with make() as store:
        descs = await asyncio.gather(
            *(write_blob(store, f"conc-{i}", d) for i, d in enumerate(datas))
        )
        for desc, data in zip(descs, datas, strict=True):
            assert desc.digest == digest_of(data)
            assert await read_blob(store, desc.digest) == data


@case
async def invalid_input(make: StoreFactory) -> None:
    async with make() as store:
        use("")
        e = await raises(errors.FailedPrecondition, store.info(EMPTY_DIGEST))
        assert "namespace is required" in str(e)
        use(NS)
        await raises(errors.InvalidArgument, store.info("sha256:short"))
        await raises(errors.InvalidArgument, store.writer("bad-expected", expected="md5:00"))
        await raises(errors.InvalidArgument, store.writer(""))
