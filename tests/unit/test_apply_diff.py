"""Diff.Diff's tree walks (overlay upper directories and two-tree comparison), the
round trip diff -> apply, and the loop/thread bridge both use (cancellation, errors)."""

from __future__ import annotations

import asyncio
import io
import os
import shutil
import stat
import tarfile
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from seacan import errors
from seacan.services.images import apply as ap
from seacan.services.images import bridge, differ, tario
from seacan.snapshots import Mount

pytestmark = pytest.mark.unit

T = 1_700_000_000
root_only = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


def layer_of(walk: Callable[[differ.Add], None], compression: str = "") -> tuple[bytes, str]:
    out: list[bytes] = []
    w = tario.LayerWriter(out.append, compression)
    walk(w.add)
    diff_id, _ = w.close()
    return b"".join(out), diff_id


def entries(data: bytes) -> list[tuple[str, str]]:
    kinds = {b"0": "f", b"5": "d", b"2": "l", b"1": "h", b"6": "p", b"3": "c"}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tf:
        return [(m.name, kinds.get(m.type, "?")) for m in tf.getmembers()]


def write(p: Path, text: str, mtime: float = T) -> None:
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    os.utime(p, (mtime, mtime))


def apply_to(root: Path, data: bytes, overlay: bool = False) -> str:
    it = iter([data])
    diff_id, _ = ap.extract(
        lambda: next(it, b""),
        ap.Target(str(root), overlay=overlay),
        layer="sha256:" + "0" * 64,
        declared="",
        limit=1 << 30,
        sync=False,
    )
    return diff_id


# -- two trees -----------------------------------------------------------------------


def test_compare_trees(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    for d in (a, b):
        write(d / "same/file", "same")
        write(d / "etc/hosts", "127.0.0.1 localhost\n")
        write(d / "etc/tarred", "aaaa")  # whole-second mtimes: contents are compared
        (d / "link").symlink_to("same/file")
    write(b / "etc/tarred", "bbbb")
    write(a / "etc/removed", "x")
    (a / "dir-removed/sub").mkdir(parents=True)
    write(b / "new/deep/file", "new")
    os.chmod(b / "etc/hosts", 0o600)
    (b / "link").unlink()
    (b / "link").symlink_to("elsewhere")
    write(a / "type-change", "was a file")
    (b / "type-change").mkdir()
    write(b / "type-change/inner", "now a dir")
    os.link(b / "new/deep/file", b / "new/hard")

    data, diff_id = layer_of(lambda add: differ.compare_trees(str(a), str(b), add))
    assert entries(data) == [
        (".wh.dir-removed", "f"),
        ("etc", "d"),  # unchanged, but a parent of changes
        ("etc/hosts", "f"),
        ("etc/.wh.removed", "f"),
        ("etc/tarred", "f"),
        ("link", "l"),
        ("new", "d"),
        ("new/deep", "d"),
        ("new/deep/file", "f"),
        ("new/hard", "h"),
        ("type-change", "d"),
        ("type-change/inner", "f"),
    ]
    again, again_id = layer_of(lambda add: differ.compare_trees(str(a), str(b), add))
    assert (again, again_id) == (data, diff_id)  # deterministic

    # Applying the layer to a copy of a gives b.
    c = tmp_path / "c"
    shutil.copytree(a, c, symlinks=True)
    apply_to(c, data)
    empty, _ = layer_of(lambda add: differ.compare_trees(str(c), str(b), add))
    assert entries(empty) == []


def test_compare_against_nothing_is_everything(tmp_path: Path) -> None:
    b = tmp_path / "b"
    write(b / "x/y", "1")
    (b / "fifo").parent.mkdir(exist_ok=True)
    os.mkfifo(b / "fifo")
    data, _ = layer_of(lambda add: differ.compare_trees(None, str(b), add), "gzip")
    assert entries(data) == [("fifo", "p"), ("x", "d"), ("x/y", "f")]


@root_only
def test_walk_upper_converts_overlay_whiteouts(tmp_path: Path) -> None:
    upper = tmp_path / "upper"
    (upper / "etc").mkdir(parents=True)
    os.mknod(upper / "etc/passwd", stat.S_IFCHR, os.makedev(0, 0))
    (upper / "opq").mkdir()
    os.setxattr(upper / "opq", "trusted.overlay.opaque", b"y")
    write(upper / "opq/kept", "k")
    write(upper / "etc/group", "g")
    os.setxattr(upper / "etc/group", "trusted.overlay.origin", b"junk")
    data, _ = layer_of(lambda add: differ.walk_upper(str(upper), add))
    assert entries(data) == [
        ("etc", "d"),
        ("etc/group", "f"),
        ("etc/.wh.passwd", "f"),
        ("opq", "d"),
        ("opq/.wh..wh..opq", "f"),
        ("opq/kept", "f"),
    ]
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        group = tf.getmember("etc/group")
        assert not any(k.startswith("SCHILY.xattr.trusted.overlay") for k in group.pax_headers)
    # And back: applied to an empty upper directory, the same whiteouts come out.
    back = tmp_path / "back"
    back.mkdir()
    apply_to(back, data, overlay=True)
    assert stat.S_ISCHR(os.lstat(back / "etc/passwd").st_mode)
    assert os.getxattr(back / "opq", "trusted.overlay.opaque") == b"y"
    assert (back / "opq/kept").read_text() == "k"


def test_plans() -> None:
    lower = [Mount("bind", "/s/1/fs", "", ("ro", "rbind"))]
    upper = [
        Mount(
            "overlay", "overlay", "", ("workdir=/s/2/work", "upperdir=/s/2/fs", "lowerdir=/s/1/fs")
        )
    ]
    assert differ._stack(lower) == ["/s/1/fs"]
    up, lowers = differ._overlay_dirs(upper[0])
    assert (up, lowers) == ("/s/2/fs", ["/s/1/fs"])
    assert differ.readonly(upper) == [
        Mount("overlay", "overlay", "", ("lowerdir=/s/2/fs:/s/1/fs",))
    ]
    single = [Mount("overlay", "overlay", "", ("upperdir=/u", "workdir=/w"))]
    assert differ.readonly(single) == [Mount("bind", "/u", "", ("ro", "rbind"))]
    assert differ.readonly([Mount("bind", "/x", "", ("rw", "rbind"))]) == [
        Mount("bind", "/x", "", ("rbind", "ro"))
    ]
    two = [Mount("overlay", "overlay", "", ("upperdir=/u", "workdir=/w", "lowerdir=/a:/b"))]
    assert differ.readonly(two) == [Mount("overlay", "overlay", "", ("lowerdir=/u:/a:/b",))]


# -- the bridge ----------------------------------------------------------------------------


def test_bridge_streams_and_propagates_producer_errors() -> None:
    async def chunks(fail: bool) -> AsyncIterator[bytes]:
        for i in range(20):
            yield bytes([i]) * 1000
            await asyncio.sleep(0)
        if fail:
            raise errors.NotFound("content sha256:x not found")

    def consume(get: Callable[[], bytes]) -> int:
        n = 0
        while chunk := get():
            n += len(chunk)
        assert get() == b""  # the end stays the end
        return n

    async def main() -> None:
        assert await bridge.run_reading(chunks(False), consume) == 20_000
        with pytest.raises(errors.NotFound):
            await bridge.run_reading(chunks(True), consume)

    asyncio.run(main())


def test_bridge_cancellation_stops_the_thread() -> None:
    stopped = threading.Event()

    async def endless() -> AsyncIterator[bytes]:
        while True:
            yield b"x" * 1000
            await asyncio.sleep(0.001)

    def slow(get: Callable[[], bytes]) -> None:
        try:
            while get():
                time.sleep(0.01)
        except bridge.StoppedError:
            stopped.set()
            raise

    async def main() -> None:
        task = asyncio.create_task(bridge.run_reading(endless(), slow))
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # run_reading returned only after the thread gave up.
        assert stopped.is_set()

    asyncio.run(main())


def test_bridge_writing_consumer_failure_stops_producer() -> None:
    produced: list[int] = []

    def produce(put: Callable[[bytes], None]) -> None:
        for i in range(10_000):
            put(b"y" * 1000)
            produced.append(i)

    async def consume(chunks: AsyncIterator[bytes]) -> None:
        n = 0
        async for _ in chunks:
            n += 1
            if n == 3:
                raise errors.Unavailable("content store went away")

    async def main() -> None:
        with pytest.raises(errors.Unavailable):
            await bridge.run_writing(produce, consume)

    asyncio.run(main())
    assert len(produced) < 100


def test_differ_picks_the_upper_walk_only_for_its_own_lowers(tmp_path: Path) -> None:
    from contextlib import AsyncExitStack

    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    upper = [
        Mount(
            "overlay",
            "overlay",
            "",
            ("upperdir=/s/3/fs", "workdir=/s/3/work", "lowerdir=/s/2/fs:/s/1/fs"),
        )
    ]
    view = [Mount("overlay", "overlay", "", ("lowerdir=/s/2/fs:/s/1/fs",))]

    async def main() -> None:
        d = differ.Differ(ingester=None)  # type: ignore[arg-type]  # planning needs no store
        async with AsyncExitStack() as stack:
            assert await d._plan(view, upper, stack) == differ.Plan(upper_walk="/s/3/fs")
            one = [Mount("overlay", "overlay", "", ("upperdir=/u", "lowerdir=/s/1/fs"))]
            bind = [Mount("bind", "/s/1/fs", "", ("ro", "rbind"))]
            assert await d._plan(bind, one, stack) == differ.Plan(upper_walk="/u")
            binds = [Mount("bind", str(b), "", ("rw", "rbind"))]
            assert await d._plan([], binds, stack) == differ.Plan(left=None, right=str(b))
            lower = [Mount("bind", str(a), "", ("ro", "rbind"))]
            assert await d._plan(lower, binds, stack) == differ.Plan(left=str(a), right=str(b))
        with pytest.raises(errors.InvalidArgument, match="media type"):
            await d.diff([], binds, media_type="application/x-nope")

    asyncio.run(main())
