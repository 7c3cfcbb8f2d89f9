"""Attacks on the build service's file work: the context tar a client sends
(services/build/context.py) and COPY/ADD into a hostile image's rootfs
(services/build/fsops.py). Each attack is refused with an error kind that
names the entry, or stays inside the root; a sentinel directory next to the
target must stay untouched."""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from seacan import errors
from seacan.services.build import context, fsops
from tests.fixtures import images as im

pytestmark = pytest.mark.unit


@dataclass
class Env:
    base: Path
    sentinel: Path

    def climb(self, rel: str) -> str:
        return im.CLIMB + self.sentinel.as_posix().lstrip("/") + "/" + rel


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    sentinel = tmp_path / "sentinel"
    sentinel.mkdir()
    (sentinel / "victim").write_bytes(b"secret")
    e = Env(tmp_path, sentinel)
    yield e
    assert sorted(os.listdir(sentinel)) == ["victim"], "something was written outside the root"
    assert (sentinel / "victim").read_bytes() == b"secret"
    assert (sentinel / "victim").stat().st_nlink == 1


def unpack(env: Env, entries: list[im.Entry] | bytes, limit: int = 1 << 20) -> Path:
    tar = env.base / "ctx.tar"
    tar.write_bytes(entries if isinstance(entries, bytes) else im.tar_bytes(entries))
    dest = env.base / "ctx"
    context.unpack(tar, dest, limit, "Dockerfile")
    return dest


def refused(env: Env, entries: list[im.Entry] | bytes, kind: type[Exception], *words: str) -> str:
    with pytest.raises(kind) as ei:
        unpack(env, entries)
    msg = str(ei.value)
    assert msg.startswith("build context"), msg
    for w in words:
        assert w in msg, msg
    return msg


# -- the context tar -----------------------------------------------------------------


def test_context_dotdot_entry(env: Env) -> None:
    name = env.climb("dotdot")
    refused(env, [im.file("ok", b"ok"), im.file(name, b"x")], errors.InvalidArgument, name)


def test_context_absolute_entry(env: Env) -> None:
    name = str(env.sentinel / "abs")
    refused(env, [im.file(name, b"x")], errors.InvalidArgument, name)


def test_context_hardlink_out(env: Env) -> None:
    refused(env, [im.hardlink("h", env.climb("victim"))], errors.InvalidArgument, "'h'")


def test_context_hardlink_through_symlink_out(env: Env) -> None:
    entries = [im.symlink("out", str(env.sentinel)), im.hardlink("h", "out/victim")]
    refused(env, entries, errors.InvalidArgument, "'h'")


def test_context_hardlink_through_relative_symlink_out(env: Env) -> None:
    entries = [
        im.symlink("out", im.CLIMB + env.sentinel.as_posix()),
        im.hardlink("h", "out/victim"),
    ]
    refused(env, entries, errors.InvalidArgument, "'h'")


def test_context_hardlink_to_a_directory(env: Env) -> None:
    refused(env, [im.directory("d"), im.hardlink("h", "d")], errors.InvalidArgument, "'h'")


def test_context_hardlink_to_nothing(env: Env) -> None:
    refused(env, [im.hardlink("h", "nowhere")], errors.InvalidArgument, "'h'")


def test_context_write_through_symlink_stays_inside(env: Env) -> None:
    entries = [im.symlink("out", str(env.sentinel)), im.file("out/pwned", b"x")]
    dest = unpack(env, entries)
    assert (dest / env.sentinel.as_posix().lstrip("/") / "pwned").read_bytes() == b"x"


def test_context_write_through_relative_symlink_stays_inside(env: Env) -> None:
    entries = [im.symlink("up", "../../../.."), im.file("up/pwned", b"x")]
    dest = unpack(env, entries)
    assert (dest / "pwned").read_bytes() == b"x"


def test_context_char_device(env: Env) -> None:
    refused(env, [im.chardev("null", 1, 3)], errors.InvalidArgument, "device node", "'null'")


def test_context_block_device(env: Env) -> None:
    e = im.Entry("sda", tarfile.BLKTYPE, mode=0o666, devmajor=8, devminor=0)
    refused(env, [e], errors.InvalidArgument, "device node", "'sda'")


def test_context_expands_past_the_limit(env: Env) -> None:
    entries = [im.file(f"f{i}", bytes(300_000)) for i in range(5)]
    refused(env, entries, errors.ResourceExhausted, "1048576")


def test_context_too_many_entries(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fsops, "MAX_ENTRIES", 100)
    entries = [im.file(f"e{i}", b"") for i in range(101)]
    refused(env, entries, errors.ResourceExhausted, "more than 100 entries")


def test_context_nul_in_name(env: Env) -> None:
    ti = tarfile.TarInfo("x")
    ti.pax_headers = {"path": "evil\0name"}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        tf.addfile(ti)
    refused(env, buf.getvalue(), errors.InvalidArgument, "evil")


def test_context_overlong_name(env: Env) -> None:
    refused(env, [im.file("a" * 300, b"x")], errors.InvalidArgument, "aaaa")


def test_context_symlink_loop_then_write(env: Env) -> None:
    entries = [im.symlink("l1", "l2"), im.symlink("l2", "l1"), im.file("l1/x", b"x")]
    refused(env, entries, errors.InvalidArgument, "'l1/x'")


def test_context_not_a_tar(env: Env) -> None:
    refused(env, b"\x01" * 2048, errors.InvalidArgument, "not a valid tar")


# -- COPY/ADD into a hostile image's rootfs ------------------------------------------


@pytest.fixture
def rootfs(env: Env) -> Path:
    """An image rootfs whose /app, /up and /abs point out of it, as a hostile image's would."""
    r = env.base / "rootfs"
    (r / "etc").mkdir(parents=True)
    os.symlink("/etc", r / "app")
    os.symlink("../../../../../..", r / "up")
    os.symlink(str(env.sentinel), r / "abs")
    os.symlink("loop2", r / "loop1")
    os.symlink("loop1", r / "loop2")
    return r


def write(root: Path, dest: str, data: bytes) -> None:
    fd = fsops.open_dir(root)
    try:
        fsops.mkdir_all(fd, os.path.dirname(dest), fsops.Owner(0, 0))
        parent, name = fsops.resolve(fd, dest, create=fsops.Owner(0, 0), follow_last=False)
        try:
            fsops.write_file(
                parent, name, io.BytesIO(data), mode=0o644, owner=fsops.Owner(0, 0), mtime=None
            )
        finally:
            os.close(parent)
    finally:
        os.close(fd)


@pytest.mark.parametrize(
    ("dest", "lands"),
    [
        ("/app/x", "etc/x"),
        ("/up/x", "x"),
        ("/up/../../x", "x"),
        ("/abs/victim", "SENTINEL/victim"),
        ("/../../../x", "x"),
    ],
)
def test_copy_dest_symlinks_resolve_inside_the_rootfs(
    env: Env, rootfs: Path, dest: str, lands: str
) -> None:
    write(rootfs, dest, b"copied")
    where = rootfs / lands.replace("SENTINEL", env.sentinel.as_posix().lstrip("/"))
    assert where.read_bytes() == b"copied"


def test_copy_dest_symlink_replaced_not_followed(env: Env, rootfs: Path) -> None:
    os.symlink(str(env.sentinel / "victim"), rootfs / "etc" / "passwd")
    write(rootfs, "/etc/passwd", b"new")
    assert not (rootfs / "etc" / "passwd").is_symlink()
    assert (rootfs / "etc" / "passwd").read_bytes() == b"new"


def test_copy_dest_symlink_loop_is_a_clear_error(rootfs: Path) -> None:
    with pytest.raises(errors.InvalidArgument, match="loop1"):
        write(rootfs, "/loop1/x", b"x")


def test_copy_dest_under_a_file_names_the_path(rootfs: Path) -> None:
    (rootfs / "etc" / "passwd").write_text("root\n")
    with pytest.raises(errors.InvalidArgument, match="etc/passwd: exists and is not a directory"):
        write(rootfs, "/etc/passwd/x", b"x")


def add_archive(root: Path, dest: str, entries: list[im.Entry]) -> None:
    fd = fsops.open_dir(root)
    try:
        fsops.mkdir_all(fd, dest, fsops.Owner(0, 0))
        parent, name = fsops.resolve(fd, dest, create=fsops.Owner(0, 0))
        dfd = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=parent) if name else parent
        try:
            with tarfile.open(fileobj=io.BytesIO(im.tar_bytes(entries))) as tf:
                fsops.extract_tar(tf, dfd, owner=None, what="ADD a.tar", max_bytes=1 << 20)
        finally:
            if dfd != parent:
                os.close(dfd)
            os.close(parent)
    finally:
        os.close(fd)


def test_add_archive_into_symlinked_dest_stays_inside(env: Env, rootfs: Path) -> None:
    add_archive(rootfs, "/abs", [im.file("pwned", b"x")])
    assert (rootfs / env.sentinel.as_posix().lstrip("/") / "pwned").read_bytes() == b"x"


def test_add_archive_symlink_then_write_through_stays_inside(env: Env, rootfs: Path) -> None:
    entries = [im.symlink("esc", im.CLIMB + env.sentinel.as_posix()), im.file("esc/pwned", b"x")]
    add_archive(rootfs, "/opt", entries)  # the archive's root is /opt: ".." stops there
    assert (rootfs / "opt" / env.sentinel.as_posix().lstrip("/") / "pwned").read_bytes() == b"x"


def test_add_archive_hostile_entries(env: Env, rootfs: Path) -> None:
    for entries, word in [
        ([im.file(env.climb("x"), b"x")], "outside"),
        ([im.hardlink("h", env.climb("victim"))], "outside"),
        ([im.symlink("l", str(env.sentinel)), im.hardlink("h", "l/victim")], "'h'"),
        ([im.chardev("null", 1, 3)], "device node"),
        ([im.file("big", bytes(2 << 20))], "expands past"),
    ]:
        with pytest.raises(errors.SeacanError, match=word):
            add_archive(rootfs, "/opt", entries)
