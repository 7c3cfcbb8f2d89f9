"""Diff.Apply against hostile layers: each bad case is refused, the error names the
entry, and nothing appears outside the target (a sentinel directory next to it
stays empty). Runs the blocking unpacker directly (no sockets)."""

from __future__ import annotations

import gzip
import io
import os
import tarfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from seacan import errors
from seacan.services.images import apply as ap
from tests.fixtures import images as im

pytestmark = pytest.mark.unit

LAYER = "sha256:" + "ab" * 32


@dataclass
class Env:
    root: Path
    sentinel: Path
    victims: tuple[str, ...] = ()  # files a test put in the sentinel itself

    def victim(self, name: str) -> Path:
        self.victims = (*self.victims, name)
        p = self.sentinel / name
        p.write_bytes(b"secret")
        return p

    def climb(self, rel: str) -> str:
        """A name that leaves any directory and lands in the sentinel."""
        return im.CLIMB + self.sentinel.as_posix().lstrip("/") + "/" + rel

    def escaped(self) -> list[str]:
        return sorted(p.name for p in self.sentinel.iterdir())


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    """A target and, next to it, a sentinel directory no test may write into."""
    root = tmp_path / "root"
    sentinel = tmp_path / "sentinel"
    root.mkdir()
    sentinel.mkdir()
    e = Env(root, sentinel)
    yield e
    assert e.escaped() == sorted(e.victims), "something was written outside the target"
    for name in e.victims:
        assert (sentinel / name).read_bytes() == b"secret"
        assert (sentinel / name).stat().st_nlink == 1


def source(data: bytes, chunk: int = 1 << 20) -> Callable[[], bytes]:
    it = iter([data[i : i + chunk] for i in range(0, len(data), chunk)])
    return lambda: next(it, b"")


def tar(entries: Iterable[tarfile.TarInfo | tuple[tarfile.TarInfo, bytes]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for e in entries:
            ti, data = e if isinstance(e, tuple) else (e, b"")
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data) if data else None)
    return buf.getvalue()


def extract(
    root: Path, data: bytes, *, declared: str = "", limit: int = 1 << 30, chunk: int = 1 << 20
) -> tuple[str, int]:
    return ap.extract(
        source(data, chunk),
        ap.Target(str(root)),
        layer=LAYER,
        declared=declared,
        limit=limit,
        sync=False,
    )


def refused(env: Env, entries: list[im.Entry], *names: str) -> str:
    """Apply ``entries`` as a gzip layer; it must fail naming each of ``names``."""
    with pytest.raises(errors.InvalidArgument) as ei:
        extract(env.root, im.gzip_bytes(im.tar_bytes(entries)))
    msg = str(ei.value)
    assert msg.startswith(f"layer {LAYER}: ")
    for n in names:
        assert n in msg
    assert env.escaped() == []
    return msg


# -- names ---------------------------------------------------------------------


def test_dotdot_escape(env: Env) -> None:
    name = env.climb("dotdot.txt")
    msg = refused(env, [im.file("ok.txt", b"ok"), im.file(name, b"escaped\n")], f'entry "{name}"')
    assert "path escapes the root" in msg
    assert (env.root / "ok.txt").read_bytes() == b"ok"  # entries before the bad one stay


def test_dotdot_after_descent(env: Env) -> None:
    msg = refused(env, [im.file("a/../../sentinel/x", b"x")], '"a/../../sentinel/x"')
    assert "path escapes the root" in msg


def test_absolute_name(env: Env) -> None:
    name = "/" + env.sentinel.as_posix().lstrip("/") + "/absolute.txt"
    msg = refused(env, [im.file(name, b"escaped\n")], f'entry "{name}"')
    assert "absolute path" in msg


def test_nul_in_name(env: Env) -> None:
    ti = tarfile.TarInfo("x")
    ti.pax_headers = {"path": "evil\0name"}
    with pytest.raises(errors.InvalidArgument, match="NUL"):
        extract(env.root, tar([(ti, b"x")]))
    assert list(env.root.iterdir()) == []


def test_non_utf8_name_is_named_readably(env: Env) -> None:
    ti = tarfile.TarInfo("../\udcffbad")  # the raw byte 0xff, as tarfile reads it back
    buf = io.BytesIO()
    with tarfile.open(
        fileobj=buf, mode="w", format=tarfile.GNU_FORMAT, encoding="utf-8", errors="surrogateescape"
    ) as tf:
        tf.addfile(ti)
    with pytest.raises(errors.InvalidArgument) as ei:
        extract(env.root, buf.getvalue())
    msg = str(ei.value)
    msg.encode("utf-8")  # sendable as a gRPC status message
    assert '"../\\xffbad"' in msg


def test_overlong_component(env: Env) -> None:
    name = "d/" + "n" * 300
    msg = refused(env, [im.file(name, b"x")], "longer than 255 bytes")
    assert name in msg


def test_overlong_name(env: Env) -> None:
    name = "/".join(["d" * 200] * 25)
    refused(env, [im.file(name, b"x")], "longer than 4095 bytes")


# -- symlinks --------------------------------------------------------------------


def test_symlink_escape_then_write_through(env: Env) -> None:
    entries = [im.symlink("escape-link", env.climb("")), im.file("escape-link/pwned.txt", b"!")]
    msg = refused(env, entries, 'entry "escape-link/pwned.txt"', '"escape-link"')
    assert "escapes the root through symbolic link" in msg
    assert os.readlink(env.root / "escape-link") == env.climb("")  # made, never followed


def test_relative_symlink_escape(env: Env) -> None:
    refused(env, [im.symlink("up", "../sentinel"), im.file("up/x", b"!")], '"up/x"')


def test_symlink_chain_escape(env: Env) -> None:
    entries = [
        im.directory("d"),
        im.symlink("d/a", "b"),
        im.symlink("d/b", "../.."),
        im.file("d/a/sentinel/x", b"!"),
    ]
    refused(env, entries, '"d/a/sentinel/x"', "symbolic link")


def test_symlink_loop(env: Env) -> None:
    entries = [im.symlink("a", "b"), im.symlink("b", "a"), im.file("a/x", b"!")]
    refused(env, entries, '"a/x"', "too many levels of symbolic links")


def test_absolute_symlink_resolves_inside_the_root(env: Env) -> None:
    """An absolute target means the container's root: the write lands in the layer."""
    entries = [im.symlink("abs", env.sentinel.as_posix()), im.file("abs/inside.txt", b"in")]
    extract(env.root, im.tar_bytes(entries))
    assert env.escaped() == []
    inside = env.root / env.sentinel.as_posix().lstrip("/") / "inside.txt"
    assert inside.read_bytes() == b"in"


def test_file_replaces_symlink_instead_of_writing_through(env: Env) -> None:
    victim = env.victim("victim")
    entries = [im.symlink("f", str(victim)), im.file("f", b"replaced")]
    extract(env.root, im.tar_bytes(entries))
    assert not (env.root / "f").is_symlink()
    assert (env.root / "f").read_bytes() == b"replaced"


def test_directory_entry_over_symlink_does_not_follow(env: Env) -> None:
    entries = [im.symlink("d", str(env.sentinel)), im.directory("d", mode=0o777)]
    extract(env.root, im.tar_bytes(entries))
    assert (env.root / "d").is_dir() and not (env.root / "d").is_symlink()
    assert env.sentinel.stat().st_mode & 0o777 != 0o777


# -- hard links ------------------------------------------------------------------


def test_hardlink_escape(env: Env) -> None:
    victim = env.victim("victim.txt")
    msg = refused_keep(env, [im.hardlink("escape-hard", env.climb("victim.txt"))], "escape-hard")
    assert "path escapes the root" in msg
    assert victim.stat().st_nlink == 1


def test_hardlink_absolute(env: Env) -> None:
    victim = env.victim("victim.txt")
    name = "/" + victim.as_posix().lstrip("/")
    msg = refused_keep(env, [im.hardlink("escape-hard-abs", name)], '"escape-hard-abs"')
    assert "absolute path" in msg
    assert victim.stat().st_nlink == 1


def test_hardlink_through_symlink_out(env: Env) -> None:
    victim = env.victim("victim.txt")
    entries = [im.symlink("out", "../sentinel"), im.hardlink("h", "out/victim.txt")]
    msg = refused_keep(env, entries, 'entry "h"')
    assert "escapes the root" in msg
    assert victim.stat().st_nlink == 1


def test_hardlink_to_symlink_is_refused(env: Env) -> None:
    victim = env.victim("victim.txt")
    entries = [im.symlink("l", str(victim)), im.hardlink("h", "l")]
    msg = refused_keep(env, entries, 'entry "h"')
    assert "not a regular file" in msg
    assert victim.stat().st_nlink == 1


def test_hardlink_to_missing(env: Env) -> None:
    msg = refused(env, [im.hardlink("h", "nowhere")], 'entry "h"')
    assert "not found" in msg


def refused_keep(env: Env, entries: list[im.Entry], *names: str) -> str:
    """Like :func:`refused`, for cases whose sentinel holds a victim file."""
    before = env.escaped()
    with pytest.raises(errors.InvalidArgument) as ei:
        extract(env.root, im.gzip_bytes(im.tar_bytes(entries)))
    msg = str(ei.value)
    for n in names:
        assert n in msg
    assert env.escaped() == before
    return msg


# -- devices -----------------------------------------------------------------------


def test_char_device(env: Env) -> None:
    msg = refused(env, [im.directory("dev"), im.chardev("dev/evil-null", 1, 3)], '"dev/evil-null"')
    assert "device nodes are not allowed" in msg
    assert not (env.root / "dev/evil-null").exists()


def test_block_device(env: Env) -> None:
    e = im.Entry("sda", tarfile.BLKTYPE, mode=0o660, devmajor=8, devminor=0)
    refused(env, [e], '"sda"', "block device 8:0")
    assert not (env.root / "sda").exists()


def test_whiteout_device_in_tar_is_refused(env: Env) -> None:
    refused(env, [im.chardev("x", 0, 0)], '"x"', "device nodes are not allowed")


# -- bombs, corruption -------------------------------------------------------------


def test_bomb_single_member(env: Env) -> None:
    data = im.gzip_bytes(im.tar_bytes([im.file("zeros.bin", bytes(10 << 20))]), level=9)
    assert len(data) < 50_000
    with pytest.raises(errors.InvalidArgument, match="exceeds the limit"):
        extract(env.root, data, limit=1 << 20)
    assert not (env.root / "zeros.bin").exists()  # refused on its header, before writing


def test_bomb_many_members(env: Env) -> None:
    entries = [im.file(f"f{i}", bytes(100_000)) for i in range(40)]
    data = im.gzip_bytes(im.tar_bytes(entries), level=9)
    with pytest.raises(errors.InvalidArgument, match="exceeds the limit of 1048576 bytes"):
        extract(env.root, data, limit=1 << 20)
    written = sum(p.stat().st_size for p in env.root.iterdir())
    assert written <= 1 << 20


def test_zstd_bomb_stops_early(env: Env) -> None:
    import zstandard

    data = zstandard.ZstdCompressor(level=19).compress(
        im.tar_bytes([im.file("z", bytes(256 << 20))])
    )
    assert len(data) < 100_000
    with pytest.raises(errors.InvalidArgument, match="exceeds the limit"):
        extract(env.root, data, declared="zstd", limit=4 << 20)


def test_corrupt_gzip(env: Env) -> None:
    data = bytearray(im.gzip_bytes(im.tar_bytes([im.file("a", os.urandom(200_000))])))
    for i in range(len(data) // 2, len(data) // 2 + 64):
        data[i] ^= 0x5A
    with pytest.raises(errors.InvalidArgument) as ei:
        extract(env.root, bytes(data), declared="gzip")
    assert f"layer {LAYER}: corrupt" in str(ei.value)
    assert "gzip" in str(ei.value)


def test_truncated_gzip(env: Env) -> None:
    data = im.gzip_bytes(im.tar_bytes([im.file("a", os.urandom(200_000))]))
    with pytest.raises(errors.InvalidArgument) as ei:
        extract(env.root, data[: len(data) // 2], declared="gzip")
    assert "corrupt" in str(ei.value)
    assert "truncated" in str(ei.value) or "unexpected end" in str(ei.value)


def test_gzip_missing_only_its_trailer(env: Env) -> None:
    data = im.gzip_bytes(im.tar_bytes([im.file("a", b"abc")]))
    with pytest.raises(errors.InvalidArgument, match=r"corrupt.*truncated"):
        extract(env.root, data[:-4])


def test_truncated_tar_mid_data(env: Env) -> None:
    data = im.tar_bytes([im.file("a", b"x" * 5000), im.file("b", b"y")])
    with pytest.raises(errors.InvalidArgument) as ei:
        extract(env.root, data[:3000])
    msg = str(ei.value)
    assert "corrupt" in msg and "truncated" in msg and '"a"' in msg


def test_truncated_tar_mid_header(env: Env) -> None:
    data = im.tar_bytes([im.file("a", b"x" * 512), im.file("b", b"y")])
    with pytest.raises(errors.InvalidArgument, match=r"corrupt.*truncated tar header at offset"):
        extract(env.root, data[: 1024 + 200])  # b's header cut short


def test_garbage_header_after_first_member(env: Env) -> None:
    data = bytearray(im.tar_bytes([im.file("a", b"x"), im.file("b", b"y"), im.file("c", b"z")]))
    with tarfile.open(fileobj=io.BytesIO(bytes(data))) as tf:
        offsets = [m.offset for m in tf.getmembers()]
    hdr = offsets[1]
    data[hdr : hdr + 512] = bytes(range(1, 256)) * 2 + b"\x01\x01"
    with pytest.raises(errors.InvalidArgument, match=r"corrupt.*invalid tar header"):
        extract(env.root, bytes(data))


def test_not_a_tar(env: Env) -> None:
    with pytest.raises(errors.InvalidArgument, match="corrupt"):
        extract(env.root, b"this is not a tar archive at all" * 100)


def test_declared_gzip_but_plain(env: Env) -> None:
    with pytest.raises(errors.InvalidArgument, match="corrupt: not gzip data"):
        extract(env.root, im.tar_bytes([im.file("a", b"x")]), declared="gzip")


def test_gzip_bad_crc(env: Env) -> None:
    raw = im.tar_bytes([im.file("a", b"x" * 1000)])
    data = bytearray(im.gzip_bytes(raw))
    data[-8] ^= 0xFF  # CRC32 of the trailer
    with pytest.raises(errors.InvalidArgument, match="corrupt"):
        extract(env.root, bytes(data))


def test_unsupported_entry_type(env: Env) -> None:
    ti = tarfile.TarInfo("volume")
    ti.type = b"V"
    with pytest.raises(errors.InvalidArgument, match="unsupported tar entry type"):
        extract(env.root, tar([ti]))


def test_bad_whiteout_names(env: Env) -> None:
    refused(env, [im.file("d/.wh.", b"")], "whiteout of an invalid name")
    refused(env, [im.file(".wh...", b"")], "whiteout of an invalid name")


def test_corrupt_zlib_payload_is_not_a_crash(env: Env) -> None:
    # A valid gzip header followed by garbage deflate data.
    data = gzip.compress(b"")[:10] + zlib.compress(b"x")[2:] + os.urandom(100)
    with pytest.raises(errors.InvalidArgument, match="corrupt"):
        extract(env.root, data)
