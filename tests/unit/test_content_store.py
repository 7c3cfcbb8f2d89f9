"""The local content store: the conformance suite, plus what only a disk shows."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import stat
import subprocess
import sys
from collections.abc import AsyncIterator, Coroutine
from pathlib import Path
from typing import Any

import pytest

from seacan import errors, scope
from seacan.content import Store, read_blob, testsuite, write_blob
from seacan.services.content import store as store_mod
from seacan.services.content.store import ContentStore, Damage
from tests.fixtures.hooks import RecordingHooks

pytestmark = pytest.mark.unit

NS = "unit"
REPO = Path(__file__).resolve().parents[2]


def run(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run(coro)


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("case", testsuite.CASES, ids=testsuite.case_id)
def test_conformance(case: testsuite.Case, tmp_path: Path) -> None:
    n = 0

    @contextlib.asynccontextmanager
    async def make() -> AsyncIterator[Store]:
        nonlocal n
        n += 1
        s = ContentStore.open(tmp_path / f"store{n}")
        try:
            yield s
        finally:
            s.close()

    run(case(make))


def open_store(root: Path, hooks: RecordingHooks | None = None, **kw: Any) -> ContentStore:
    scope.set_scope(NS, "")
    return ContentStore.open(root, hooks, **kw)


def ingest_dir(root: Path, ref: str, ns: str = NS) -> Path:
    return root / "ingest" / hashlib.sha256(f"{ns}/{ref}".encode()).hexdigest()


def test_layout_after_commit(tmp_path: Path) -> None:
    async def main() -> None:
        s = open_store(tmp_path)
        data = b"hello content"
        w = await s.writer("layout", total=len(data))
        await w.write(data)
        ingest = ingest_dir(tmp_path, "layout")
        assert (ingest / "ref").read_text() == f"{NS}/layout"
        assert (ingest / "data").read_bytes() == data
        assert (ingest / "total").read_text() == str(len(data))
        assert {p.name for p in ingest.iterdir()} >= {"startedat", "updatedat"}
        await w.commit(len(data), digest_of(data))
        await w.close()
        blob = tmp_path / "blobs" / "sha256" / hashlib.sha256(data).hexdigest()
        assert blob.read_bytes() == data
        assert stat.S_IMODE(blob.stat().st_mode) == 0o444
        assert not ingest.exists()
        assert (tmp_path / "meta.db").exists()
        s.close()

    run(main())


def test_resume_after_restart(tmp_path: Path) -> None:
    data = os.urandom(3 << 20)

    async def first() -> None:
        s = open_store(tmp_path)
        w = await s.writer("restart", total=len(data))
        await w.write(data[: 1 << 20])
        await w.close()
        s.close()

    async def second() -> None:
        s = open_store(tmp_path)
        st = await s.status("restart")
        assert (st.offset, st.total) == (1 << 20, len(data))
        w = await s.writer("restart")
        assert w.digest == digest_of(data[: 1 << 20])
        assert w.total == len(data)
        await w.write(data[1 << 20 :])
        await w.commit(len(data), digest_of(data))
        assert await read_blob(s, digest_of(data)) == data
        s.close()

    run(first())
    run(second())


def test_crash_leftovers(tmp_path: Path) -> None:
    async def main() -> None:
        s = open_store(tmp_path)
        w = await s.writer("keep-me")
        await w.write(b"partial")
        await w.close()
        s.close()
        blobs = tmp_path / "blobs" / "sha256"
        partial = blobs / ("ab" * 32 + ".tmp-1234")
        partial.write_bytes(b"half a blob")
        broken = tmp_path / "ingest" / ("cd" * 32)
        broken.mkdir()
        (broken / "data").write_bytes(b"no ref file")
        s = open_store(tmp_path)
        assert not partial.exists()
        assert not broken.exists()
        assert (await s.status("keep-me")).offset == len(b"partial")
        s.close()

    run(main())


def test_verify_finds_damage(tmp_path: Path) -> None:
    async def main() -> None:
        s = open_store(tmp_path)
        good, bad = b"good blob", b"bad blob"
        await write_blob(s, "good", good)
        await write_blob(s, "bad", bad)
        await write_blob(s, "gone", b"gone blob")
        assert await s.verify() == []
        victim = s.blob_path(digest_of(bad))
        victim.chmod(0o644)
        victim.write_bytes(b"bit rot")
        s.blob_path(digest_of(b"gone blob")).unlink()
        damage = await s.verify()
        assert [d.digest for d in damage] == [digest_of(bad), digest_of(b"gone blob")]
        assert "digest mismatch" in damage[0].reason
        assert "missing" in damage[1].reason
        assert store_mod.verify(tmp_path) == [
            Damage(digest_of(bad), f"digest mismatch: content hashes to {digest_of(b'bit rot')}")
        ]
        s.close()

    run(main())


def test_limits(tmp_path: Path) -> None:
    async def main() -> None:
        s = open_store(tmp_path, max_blob_bytes=1000)
        with pytest.raises(errors.InvalidArgument) as e1:
            await s.writer("big", total=1001)
        assert "exceeds the maximum blob size 1000" in str(e1.value)
        w = await s.writer("big")
        await w.write(b"x" * 1000)
        with pytest.raises(errors.ResourceExhausted) as e2:
            await w.write(b"x")
        assert "maximum blob size 1000" in str(e2.value)
        assert w.offset == 1000
        with pytest.raises(errors.InvalidArgument):
            await w.set_total(5000)
        await w.close()
        s.close()

    run(main())


def test_lease_and_namespace_hooks(tmp_path: Path) -> None:
    async def main() -> None:
        hooks = RecordingHooks()
        s = open_store(tmp_path, hooks)
        data = b"leased"
        await write_blob(s, "no-lease", b"unleased")
        assert hooks.namespaces == [NS]
        assert hooks.resources == []
        scope.set_scope(NS, "lease-1")
        await write_blob(s, "leased", data)
        assert hooks.resources == [("lease-1", digest_of(data), "content")]
        # a blob that is already stored joins the lease too (AlreadyExists path)
        scope.set_scope("other", "lease-2")
        with pytest.raises(errors.AlreadyExists):
            await s.writer("again", expected=digest_of(data))
        assert hooks.resources[-1] == ("lease-2", digest_of(data), "content")
        assert hooks.namespaces[-1] == "other"
        s.close()

    run(main())


def test_commit_fails_when_lease_is_missing(tmp_path: Path) -> None:
    async def main() -> None:
        hooks = RecordingHooks()
        hooks.fail_lease = errors.NotFound("lease gone not found")
        s = open_store(tmp_path, hooks)
        scope.set_scope(NS, "gone")
        w = await s.writer("ref")
        await w.write(b"data")
        with pytest.raises(errors.NotFound):
            await w.commit()
        with pytest.raises(errors.NotFound):
            await s.info(digest_of(b"data"))
        assert (await s.status("ref")).offset == 4  # the ingest is kept for a retry
        s.close()

    run(main())


def test_shared_blob_file_removed_with_last_namespace(tmp_path: Path) -> None:
    async def main() -> None:
        s = open_store(tmp_path)
        data = b"shared"
        d = digest_of(data)
        await write_blob(s, "a", data)
        scope.set_scope("second", "")
        await write_blob(s, "b", data)  # adopted: no second copy
        await s.delete(d)
        assert s.blob_path(d).exists()
        scope.set_scope(NS, "")
        assert await read_blob(s, d) == data
        await s.delete(d)
        assert not s.blob_path(d).exists()
        s.close()

    run(main())


def test_commit_of_blob_on_disk_in_another_namespace(tmp_path: Path) -> None:
    async def main() -> None:
        s = open_store(tmp_path)
        data = b"seen elsewhere"
        await write_blob(s, "first", data)
        scope.set_scope("second", "")
        w = await s.writer("no-expected")
        await w.write(data)
        assert await w.commit(labels={"x": "y"}) == digest_of(data)
        info = await s.info(digest_of(data))
        assert dict(info.labels) == {"x": "y"}
        assert not ingest_dir(tmp_path, "no-expected", "second").exists()
        s.close()

    run(main())


def test_abort_of_active_ingest_is_refused(tmp_path: Path) -> None:
    async def main() -> None:
        s = open_store(tmp_path)
        w = await s.writer("busy")
        with pytest.raises(errors.Unavailable):
            await s.abort("busy")
        await w.close()
        await s.abort("busy")
        assert not ingest_dir(tmp_path, "busy").exists()
        s.close()

    run(main())


def test_writer_is_closed_after_failed_commit(tmp_path: Path) -> None:
    async def main() -> None:
        s = open_store(tmp_path)
        w = await s.writer("closed")
        await w.write(b"abc")
        with pytest.raises(errors.FailedPrecondition):
            await w.commit(2)
        with pytest.raises(errors.FailedPrecondition):
            await w.write(b"more")
        w2 = await s.writer("closed")  # the ref lock was released
        assert w2.offset == 3
        await w2.close()
        s.close()

    run(main())


def test_records_and_labels_survive_restart(tmp_path: Path) -> None:
    async def main() -> None:
        s = open_store(tmp_path)
        await write_blob(s, "r", b"persist", labels={"k": "v"})
        s.close()
        s = open_store(tmp_path)
        info = await s.info(digest_of(b"persist"))
        assert (info.size, dict(info.labels)) == (7, {"k": "v"})
        s.close()

    run(main())


def test_verify_command(tmp_path: Path) -> None:
    async def fill() -> str:
        s = open_store(tmp_path / "content")
        await write_blob(s, "v", b"verify me")
        s.close()
        return digest_of(b"verify me")

    d = asyncio.run(fill())
    argv = [sys.executable, "-m", "seacan.services.content", "verify", "--root", str(tmp_path)]
    ok = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False, cwd=REPO)
    assert (ok.returncode, ok.stdout) == (0, ""), ok.stderr
    blob = tmp_path / "content" / "blobs" / "sha256" / d.removeprefix("sha256:")
    blob.chmod(0o644)
    blob.write_bytes(b"tampered")
    bad = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False, cwd=REPO)
    assert bad.returncode == 1
    assert bad.stdout.startswith(f"{d}: digest mismatch")
