"""The build service's pieces a cached rebuild leans on, without a daemon: the context
kept in memory or spooled to disk, the cache index's in-memory rows and coarse
``used_at``, and the coalescing of progress text."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from seacan import errors, scope
from seacan.build import Result, StepDone, Stream
from seacan.services.build import context, db, engine
from tests.fixtures import images as im

pytestmark = pytest.mark.unit


@pytest.fixture(autouse=True)
def no_scope_left() -> Iterator[None]:
    yield
    scope.set_scope("", "")


async def _stream(*chunks: bytes) -> AsyncIterator[bytes]:
    for c in chunks:
        yield c


def receive(tmp_path: Path, *chunks: bytes, limit: int = 1 << 30) -> tuple[str, Path | bytes]:
    return asyncio.run(context.receive(_stream(*chunks), tmp_path / "ctx.tar", limit))


def test_small_context_stays_in_memory(tmp_path: Path) -> None:
    tar = im.tar_bytes([im.file("Dockerfile", b"FROM scratch\n"), im.file("a", b"a")])
    digest, got = receive(tmp_path, tar[:100], tar[100:])
    assert got == tar and digest == im.sha256(tar).removeprefix("sha256:")
    assert not (tmp_path / "ctx.tar").exists()
    context.unpack(got, tmp_path / "ctx", 1 << 20, "Dockerfile")
    assert (tmp_path / "ctx" / "a").read_bytes() == b"a"


def test_large_context_is_spooled_to_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(context, "SPOOL_BYTES", 1000)
    tar = im.tar_bytes([im.file("Dockerfile", b"FROM scratch\n"), im.file("big", b"x" * 4000)])
    digest, got = receive(tmp_path, *(tar[i : i + 700] for i in range(0, len(tar), 700)))
    assert got == tmp_path / "ctx.tar" and got.read_bytes() == tar
    assert digest == im.sha256(tar).removeprefix("sha256:")
    context.unpack(got, tmp_path / "ctx", 1 << 20, "Dockerfile")
    assert (tmp_path / "ctx" / "big").stat().st_size == 4000


def test_context_over_the_limit_is_refused_in_memory_too(tmp_path: Path) -> None:
    with pytest.raises(errors.ResourceExhausted, match="larger than the limit of 100 bytes"):
        receive(tmp_path, b"x" * 60, b"x" * 60, limit=100)
    assert not (tmp_path / "ctx.tar").exists()


def test_hostile_context_in_memory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "sentinel").mkdir()
    name = im.CLIMB + str(tmp_path / "sentinel" / "x").lstrip("/")
    tar = im.tar_bytes([im.file("ok", b"ok"), im.file(name, b"x")])
    with pytest.raises(errors.InvalidArgument, match="build context"):
        context.unpack(tar, tmp_path / "ctx", 1 << 20, "Dockerfile")
    assert list((tmp_path / "sentinel").iterdir()) == []
    with pytest.raises(errors.InvalidArgument, match="not a valid tar stream"):
        context.unpack(b"\x01" * 1024, tmp_path / "ctx2", 1 << 20, "Dockerfile")


# -- the cache index ---------------------------------------------------------------


def entry(i: int) -> db.Entry:
    return db.Entry(f"sha256:p{i}", f"k{i}", f"RUN {i}", f"sha256:c{i}", f"sha256:s{i}",
                    ({"digest": f"sha256:l{i}"},), "{}")  # fmt: skip


def test_rows_are_remembered_and_kept_across_a_reopen(tmp_path: Path) -> None:
    scope.set_scope("ns1", "")
    cdb = db.CacheDB(tmp_path / "cache.db")
    cdb.put(entry(1))
    got = cdb.get("sha256:p1", "k1")
    assert got is not None and got.config_digest == "sha256:c1" and got.used_at > 0
    scope.set_scope("ns2", "")
    assert cdb.get("sha256:p1", "k1") is None  # rows belong to a namespace
    scope.set_scope("ns1", "")
    cdb.close()
    again = db.CacheDB(tmp_path / "cache.db")  # a restarted service
    e = again.get("sha256:p1", "k1")
    assert e is not None and e.layers == ({"digest": "sha256:l1"},)
    again.delete([e])
    assert again.get("sha256:p1", "k1") is None
    assert db.CacheDB(tmp_path / "cache.db").get("sha256:p1", "k1") is None


def test_used_at_is_written_only_when_stale(tmp_path: Path) -> None:
    scope.set_scope("ns1", "")
    cdb = db.CacheDB(tmp_path / "cache.db")
    cdb.put(entry(1))
    fresh = cdb.get("sha256:p1", "k1")
    assert fresh is not None
    cdb.touch([fresh])  # used a moment ago: nothing written
    assert cdb.list()[0].used_at == fresh.used_at
    cdb.touch([dataclasses.replace(fresh, used_at=1.0)])  # last marked long ago
    row = cdb.list()[0]
    assert time.time() - 60 < row.used_at and row.used_at >= fresh.used_at
    got = cdb.get("sha256:p1", "k1")
    assert got is not None and got.used_at == row.used_at


# -- progress ----------------------------------------------------------------------


def test_adjacent_text_is_sent_as_one_message() -> None:
    done = StepDone(1, 2, True, 0.0, "sha256:x")
    result = Result("sha256:x", "sha256:m", ("app:1",))
    got = engine.coalesce(
        [Stream("Step 1/2 : A\n"), Stream(" ---> Using cache\n"), done, Stream("Step 2/2 : B\n"),
         Stream("ok\n"), Stream("done\n"), result]
    )  # fmt: skip
    assert got == [Stream("Step 1/2 : A\n ---> Using cache\n"), done,
                   Stream("Step 2/2 : B\nok\ndone\n"), result]  # fmt: skip
    assert engine.coalesce([]) == []
