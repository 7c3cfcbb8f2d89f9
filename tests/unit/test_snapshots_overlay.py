"""The overlay snapshotter on a private root: the conformance suite, the hooks
it calls, and what a crash can leave behind (no root needed: nothing is mounted)."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Coroutine
from pathlib import Path
from typing import Any

import pytest

from seacan import errors, scope
from seacan.services.snapshots import overlay
from seacan.services.snapshots.db import SnapshotDB
from seacan.services.snapshots.overlay import OverlaySnapshotter
from seacan.snapshots import Kind, Snapshotter, testsuite
from tests.fixtures.hooks import RecordingHooks

pytestmark = pytest.mark.unit

NS = "unit"
OVL = "snapshots/overlayfs"


def run(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run(coro)


@contextlib.asynccontextmanager
async def opened(
    root: Path, hooks: RecordingHooks | None = None
) -> AsyncIterator[OverlaySnapshotter]:
    sn = OverlaySnapshotter.open(root, hooks, index_off=True)
    try:
        yield sn
    finally:
        sn.close()


def dirs(root: Path) -> set[str]:
    return {p.name for p in (root / "snapshots").iterdir()}


@pytest.mark.parametrize("case", testsuite.CASES, ids=testsuite.case_id)
def test_conformance(case: testsuite.Case, tmp_path: Path) -> None:
    n = 0

    @contextlib.asynccontextmanager
    async def make() -> AsyncIterator[Snapshotter]:
        nonlocal n
        n += 1
        async with opened(tmp_path / f"s{n}") as sn:
            yield sn

    run(case(make))


def test_is_a_snapshotter(tmp_path: Path) -> None:
    async def main() -> None:
        async with opened(tmp_path) as sn:
            assert isinstance(sn, Snapshotter)

    run(main())


def test_layout_on_disk(tmp_path: Path) -> None:
    async def main() -> None:
        scope.set_scope(NS, "")
        async with opened(tmp_path) as sn:
            await testsuite.layer(sn, "base", "", {"f": b"1"})
            await sn.prepare("c", "base")
            await sn.view("v", "base")
        assert (tmp_path / "meta.db").is_file()
        assert dirs(tmp_path) == {"1", "2", "3"}
        assert {p.name for p in (tmp_path / "snapshots" / "1").iterdir()} == {"fs", "work"}
        assert {p.name for p in (tmp_path / "snapshots" / "2").iterdir()} == {"fs", "work"}
        assert {p.name for p in (tmp_path / "snapshots" / "3").iterdir()} == {"fs"}
        assert (tmp_path / "snapshots" / "1" / "fs" / "f").read_bytes() == b"1"
        assert oct((tmp_path / "snapshots" / "2" / "fs").stat().st_mode & 0o777) == "0o755"

    run(main())


def test_hooks_namespace_and_lease(tmp_path: Path) -> None:
    hooks = RecordingHooks()

    async def main() -> None:
        async with opened(tmp_path, hooks) as sn:
            scope.set_scope(NS, "lease-1")
            await sn.prepare("extract-1 sha256:x")
            await sn.commit("sha256:x", "extract-1 sha256:x")
            await sn.view("look", "sha256:x")
            scope.set_scope(NS, "")
            await sn.prepare("no-lease")
            await sn.stat("no-lease")  # reads tell the metadata service nothing
            [_ async for _ in sn.list()]

    run(main())
    assert set(hooks.namespaces) == {NS}
    assert hooks.resources == [
        ("lease-1", "extract-1 sha256:x", OVL),
        ("lease-1", "sha256:x", OVL),
        ("lease-1", "look", OVL),
    ]


def test_lease_failure_creates_nothing(tmp_path: Path) -> None:
    hooks = RecordingHooks()
    hooks.fail_lease = errors.NotFound("lease gone not found")

    async def main() -> None:
        scope.set_scope(NS, "gone")
        async with opened(tmp_path, hooks) as sn:
            with pytest.raises(errors.NotFound, match="lease gone"):
                await sn.prepare("k")
            with pytest.raises(errors.NotFound, match="snapshot k does not exist"):
                await sn.stat("k")
        assert dirs(tmp_path) == set()

    run(main())


def test_failed_rename_leaves_no_row_and_no_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def main() -> None:
        scope.set_scope(NS, "")
        async with opened(tmp_path) as sn:
            real = os.rename

            def broken(src: Any, dst: Any) -> None:
                raise OSError(28, "No space left on device")

            monkeypatch.setattr(os, "rename", broken)
            with pytest.raises(errors.ResourceExhausted):
                await sn.prepare("k")
            monkeypatch.setattr(os, "rename", real)
            with pytest.raises(errors.NotFound):
                await sn.stat("k")
            assert dirs(tmp_path) == set()
            await sn.prepare("k")  # and the key works afterwards

    run(main())


def test_startup_removes_half_made_and_orphans(tmp_path: Path) -> None:
    """What a kill at any point can leave: a tmp dir (crash before the row
    committed), an orphan <id> (crash between rename and commit), an rm- dir
    (crash during removal), and a row whose dir is gone."""

    async def setup() -> None:
        scope.set_scope(NS, "")
        async with opened(tmp_path) as sn:
            await testsuite.layer(sn, "base", "", {"f": b"keep"})
            await sn.prepare("live", "base")
            await sn.view("lost-view", "base")
            await testsuite.layer(sn, "lost-committed", "", {})

    run(setup())
    snaps = tmp_path / "snapshots"
    half = snaps / "tmp-abc123"
    (half / "fs").mkdir(parents=True)
    (half / "fs" / "partial").write_bytes(b"x")
    (snaps / "99" / "fs").mkdir(parents=True)  # renamed, row never committed
    (snaps / "rm-7" / "fs").mkdir(parents=True)
    os.rename(snaps / "3", tmp_path / "moved-away")  # lost-view's dir
    os.rename(snaps / "4", tmp_path / "moved-away-2")  # lost-committed's dir

    async def check() -> None:
        scope.set_scope(NS, "")
        async with opened(tmp_path) as sn:
            assert dirs(tmp_path) == {"1", "2"}
            assert await testsuite.names(sn) == {"base", "live", "lost-committed"}
            assert (snaps / "1" / "fs" / "f").read_bytes() == b"keep"
            # a committed row is kept (others may build on it), and says so by failing to mount
            assert (await sn.stat("lost-committed")).kind is Kind.COMMITTED
            await sn.prepare("new")  # ids are never reused
        assert dirs(tmp_path) == {"1", "2", "5"}

    run(check())


def test_cleanup_removes_unreferenced_dirs(tmp_path: Path) -> None:
    async def main() -> None:
        scope.set_scope(NS, "")
        async with opened(tmp_path) as sn:
            await sn.prepare("a")
            (tmp_path / "snapshots" / "42" / "fs").mkdir(parents=True)
            (tmp_path / "snapshots" / "rm-9").mkdir()
            scope.set_scope("", "")
            await sn.cleanup()
            assert dirs(tmp_path) == {"1"}

    run(main())


def test_rows_are_per_namespace_in_the_db(tmp_path: Path) -> None:
    db = SnapshotDB(tmp_path / "meta.db")
    try:
        with pytest.raises(errors.FailedPrecondition, match="namespace is required"):
            scope.set_scope("", "")
            db.get("k")
        scope.set_scope("a", "")
        with db.create("k", "", Kind.ACTIVE, {}, overlay._now()) as rec_a:
            pass
        scope.set_scope("b", "")
        assert db.get("k") is None
        with db.create("k", "", Kind.ACTIVE, {}, overlay._now()) as rec_b:
            pass
        assert rec_a.id != rec_b.id
        with pytest.raises(errors.AlreadyExists, match='snapshot "k": already exists'):  # noqa: SIM117
            with db.create("k", "", Kind.ACTIVE, {}, overlay._now()):
                pass
        with pytest.raises(RuntimeError):  # noqa: SIM117
            with db.create("rolled-back", "", Kind.ACTIVE, {}, overlay._now()):
                raise RuntimeError("the rename failed")
        assert db.get("rolled-back") is None
        assert {ns for ns, _ in db.unscoped()} == {"a", "b"}
    finally:
        db.close()


def test_mounts_name_absolute_paths_from_a_relative_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)

    async def main() -> None:
        scope.set_scope(NS, "")
        async with opened(Path("relative")) as sn:
            (m,) = await sn.prepare("k")
            assert m.source == str(tmp_path / "relative" / "snapshots" / "1" / "fs")

    run(main())
