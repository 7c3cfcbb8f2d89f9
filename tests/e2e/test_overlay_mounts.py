"""Real overlay mounts of the snapshotter's mounts, with seacan.mount (root).

A chain of three committed layers (with a whiteout and an opaque directory,
written as the diff applier writes them) is mounted under a container's
snapshot; what a user reads and writes through the mount is checked, and
every mount is undone in a ``finally``.
"""

from __future__ import annotations

import asyncio
import errno
import os
import stat
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from seacan import errors, mount, scope
from seacan.services.snapshots.overlay import OverlaySnapshotter
from seacan.snapshots import Mount, testsuite

pytestmark = pytest.mark.e2e

NS = "e2e-overlay"
T = TypeVar("T")


@pytest.fixture
def sn(tmp_path: Path) -> Iterator[OverlaySnapshotter]:
    scope.set_scope(NS, "")
    s = OverlaySnapshotter.open(tmp_path / "overlayfs")
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def target(tmp_path: Path) -> Iterator[Path]:
    t = tmp_path / "rootfs"
    t.mkdir()
    try:
        yield t
    finally:
        mount.unmount(t, lazy=True)  # whatever a failed test left
        assert not os.path.ismount(t)


def whiteout(path: Path) -> None:
    os.mknod(path, stat.S_IFCHR | 0o000, os.makedev(0, 0))


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def three_layers(sn: OverlaySnapshotter) -> list[Path]:
    async def build() -> list[Path]:
        scope.set_scope(NS, "")
        l1 = await testsuite.layer(
            sn,
            "sha256:l1",
            "",
            {"etc/os-release": b"one", "bin/a": b"A", "data/gone": b"old", "dir/x": b"x"},
        )
        # layer 2 overrides a file, deletes one (whiteout) and replaces a directory (opaque)
        key = "extract-2 sha256:l2"
        upper = testsuite.layer_dir(await sn.prepare(key, "sha256:l1"))
        (upper / "etc").mkdir()
        (upper / "etc" / "os-release").write_bytes(b"two")
        (upper / "data").mkdir()
        whiteout(upper / "data" / "gone")
        (upper / "dir").mkdir()
        os.setxattr(upper / "dir", "trusted.overlay.opaque", b"y")
        (upper / "dir" / "y").write_bytes(b"y")
        await sn.commit("sha256:l2", key)
        l3 = await testsuite.layer(sn, "sha256:l3", "sha256:l2", {"bin/b": b"B"})
        return [l1, upper, l3]

    return run(build())


def test_chain_of_three_mounted(sn: OverlaySnapshotter, target: Path) -> None:
    l1, _, _ = three_layers(sn)

    async def prepare() -> list[Mount]:
        scope.set_scope(NS, "")
        return await sn.prepare("container", "sha256:l3")

    mounts = run(prepare())
    upper = testsuite.layer_dir(mounts)
    mount.mount_all(mounts, target)
    try:
        assert os.path.ismount(target)
        assert (target / "etc" / "os-release").read_bytes() == b"two"
        assert sorted(p.name for p in (target / "bin").iterdir()) == ["a", "b"]
        assert sorted(p.name for p in (target / "data").iterdir()) == []
        assert sorted(p.name for p in (target / "dir").iterdir()) == ["y"]
        # writes land in the container's layer only
        (target / "new").write_bytes(b"written")
        (target / "bin" / "a").unlink()
        assert (upper / "new").read_bytes() == b"written"
        assert stat.S_ISCHR((upper / "bin" / "a").lstat().st_mode)  # a whiteout
        assert (l1 / "bin" / "a").read_bytes() == b"A"
    finally:
        mount.unmount(target)
    assert not os.path.ismount(target)
    assert list(target.iterdir()) == []


def test_views_are_read_only(sn: OverlaySnapshotter, tmp_path: Path) -> None:
    three_layers(sn)

    async def views() -> tuple[list[Mount], list[Mount]]:
        scope.set_scope(NS, "")
        return await sn.view("one", "sha256:l1"), await sn.view("many", "sha256:l3")

    one, many = run(views())
    assert one[0].type == "bind" and many[0].type == "overlay"
    for mounts in (one, many):
        with mount.with_temp_mount(mounts, tmp_path) as root:
            assert (root / "bin" / "a").read_bytes() == b"A"
            with pytest.raises(OSError) as exc:
                (root / "nope").write_bytes(b"x")
            assert exc.value.errno == errno.EROFS
        assert not root.exists()
    assert (tmp_path / "overlayfs" / "snapshots" / "1" / "fs" / "bin" / "a").exists()


def test_async_temp_mount(sn: OverlaySnapshotter, tmp_path: Path) -> None:
    three_layers(sn)

    async def main() -> None:
        scope.set_scope(NS, "")
        mounts = await sn.prepare("c", "sha256:l3")
        async with mount.with_temp_mount(mounts, tmp_path) as root:
            assert os.path.ismount(root)
            assert (root / "etc" / "os-release").read_bytes() == b"two"
        assert not root.exists()

    run(main())


def test_long_lowerdir_is_compacted(tmp_path: Path) -> None:
    """A chain whose lowerdir alone is longer than a page minus 512 bytes still mounts."""
    scope.set_scope(NS, "")
    root = tmp_path / ("long-path-" * 12) / "overlayfs"
    target = tmp_path / "rootfs"
    target.mkdir()
    sn = OverlaySnapshotter.open(root)
    try:

        async def build() -> list[Mount]:
            scope.set_scope(NS, "")
            parent = ""
            for i in range(24):
                await testsuite.layer(sn, f"l{i}", parent, {f"f{i}": str(i).encode()})
                parent = f"l{i}"
            return await sn.prepare("top", parent)

        mounts = run(build())
        assert len(",".join(mounts[0].options)) > mount.PAGE_SIZE - 512
        mount.mount_all(mounts, target)
        try:
            assert sorted(p.name for p in target.iterdir()) == sorted(f"f{i}" for i in range(24))
            assert (target / "f0").read_bytes() == b"0"
            (target / "f0").write_bytes(b"changed")
        finally:
            mount.unmount(target)
        assert (root / "snapshots" / "1" / "fs" / "f0").read_bytes() == b"0"
    finally:
        mount.unmount(target, lazy=True)
        sn.close()


def test_mount_errors_are_kinds(tmp_path: Path, target: Path) -> None:
    bad = Mount(
        "overlay",
        "overlay",
        options=(f"lowerdir={tmp_path}/missing-a:{tmp_path}/missing-b",),
    )
    with pytest.raises(errors.SeacanError):
        mount.mount_all([bad], target)
    assert not os.path.ismount(target)
    with pytest.raises(errors.NotFound):
        mount.mount_all([Mount("bind", str(tmp_path / "nowhere"), options=("rbind",))], target)
