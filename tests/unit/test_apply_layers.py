"""Diff.Apply on good layers: what lands on disk is what the layer says (contents, modes,
owners, times, xattrs, links, fifos), whiteouts are converted for overlay upper
directories and applied for plain directories, and every compression is read.
Ownership, device whiteouts and trusted.* xattrs need root; those tests skip otherwise."""

from __future__ import annotations

import hashlib
import io
import os
import stat
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest
import zstandard

from seacan import errors, oci
from seacan.services.images import apply as ap
from seacan.snapshots import Mount
from tests.fixtures import images as im

pytestmark = pytest.mark.unit

LAYER = "sha256:" + "cd" * 32
T = im.MTIME
root_only = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


def source(data: bytes, chunk: int = 1 << 20) -> Callable[[], bytes]:
    it = iter([data[i : i + chunk] for i in range(0, len(data), chunk)])
    return lambda: next(it, b"")


def extract(
    root: Path,
    data: bytes,
    *,
    overlay: bool = False,
    lowers: tuple[str, ...] = (),
    declared: str = "",
    chunk: int = 1 << 20,
) -> tuple[str, int]:
    return ap.extract(
        source(data, chunk),
        ap.Target(str(root), overlay=overlay, lowers=lowers),
        layer=LAYER,
        declared=declared,
        limit=1 << 30,
        sync=False,
    )


def info(
    name: str,
    kind: bytes = tarfile.REGTYPE,
    *,
    mode: int = 0o644,
    uid: int = 0,
    gid: int = 0,
    mtime: float = T,
    linkname: str = "",
    xattrs: dict[str, str] | None = None,
) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.type, ti.mode, ti.uid, ti.gid, ti.mtime, ti.linkname = kind, mode, uid, gid, mtime, linkname
    if xattrs:
        ti.pax_headers = {"SCHILY.xattr." + k: v for k, v in xattrs.items()}
    return ti


def tar(*entries: tarfile.TarInfo | tuple[tarfile.TarInfo, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(
        fileobj=buf, mode="w", format=tarfile.PAX_FORMAT, encoding="utf-8", errors="surrogateescape"
    ) as tf:
        for e in entries:
            ti, data = e if isinstance(e, tuple) else (e, b"")
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data) if data else None)
    return buf.getvalue()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "root"
    r.mkdir()
    return r


def test_diff_id_and_size_are_of_the_uncompressed_tar(root: Path) -> None:
    layer = im.make_layer([im.file("a", b"hello"), im.directory("d"), im.file("d/b", b"x" * 9000)])
    raw = im.tar_bytes([im.file("a", b"hello"), im.directory("d"), im.file("d/b", b"x" * 9000)])
    diff_id, size = extract(root, layer.blob.data, declared="gzip", chunk=7)
    assert diff_id == layer.diff_id == "sha256:" + hashlib.sha256(raw).hexdigest()
    assert size == len(raw)  # the end blocks and record padding count too


def test_contents_modes_times(root: Path) -> None:
    big = os.urandom(5 << 20)
    data = tar(
        info("bin", tarfile.DIRTYPE, mode=0o755, mtime=T - 100),
        (info("bin/su", mode=0o4755), b"#!setuid\n"),
        (info("bin/sg", mode=0o2711), b"sg"),
        info("tmp", tarfile.DIRTYPE, mode=0o1777),
        info("empty", tarfile.DIRTYPE, mode=0o700, mtime=T - 5),
        (info("big.bin", mode=0o600, mtime=T + 0.5), big),
        info("bin/sh", tarfile.SYMTYPE, linkname="su", mtime=T - 7),
        info("fifo", tarfile.FIFOTYPE, mode=0o620),
    )
    extract(root, data)
    assert (root / "bin/su").read_bytes() == b"#!setuid\n"
    assert stat.S_IMODE(os.stat(root / "bin/su").st_mode) == 0o4755
    assert stat.S_IMODE(os.stat(root / "bin/sg").st_mode) == 0o2711
    assert stat.S_IMODE(os.stat(root / "tmp").st_mode) == 0o1777
    assert stat.S_IMODE(os.stat(root / "empty").st_mode) == 0o700
    assert list((root / "empty").iterdir()) == []
    assert (root / "big.bin").read_bytes() == big
    assert os.stat(root / "big.bin").st_mtime_ns == (T * 10**9 + 5 * 10**8)
    # Directory times are set after their contents were written.
    assert os.stat(root / "bin").st_mtime == T - 100
    assert os.stat(root / "empty").st_mtime == T - 5
    assert os.readlink(root / "bin/sh") == "su"
    assert os.lstat(root / "bin/sh").st_mtime == T - 7
    assert stat.S_ISFIFO(os.stat(root / "fifo").st_mode)
    assert stat.S_IMODE(os.stat(root / "fifo").st_mode) == 0o620


def test_names_with_dot_prefix_and_the_root_entry(root: Path) -> None:
    os.chmod(root, 0o700)
    extract(root, tar(info("./", tarfile.DIRTYPE, mode=0o755), (info("./etc/x"), b"x")))
    assert stat.S_IMODE(os.stat(root).st_mode) == 0o755
    assert (root / "etc/x").read_bytes() == b"x"
    assert stat.S_IMODE(os.stat(root / "etc").st_mode) == 0o755  # a parent the layer skipped


@root_only
def test_ownership(root: Path) -> None:
    data = tar(
        info("d", tarfile.DIRTYPE, uid=1000, gid=1001),
        (info("d/f", mode=0o4750, uid=1000, gid=100), b"x"),
        info("d/l", tarfile.SYMTYPE, linkname="f", uid=7, gid=8),
        info("d/p", tarfile.FIFOTYPE, uid=9, gid=10),
    )
    extract(root, data)
    st = os.stat(root / "d/f")
    assert (st.st_uid, st.st_gid) == (1000, 100)
    assert stat.S_IMODE(st.st_mode) == 0o4750  # chown before chmod keeps setuid
    assert (os.stat(root / "d").st_uid, os.stat(root / "d").st_gid) == (1000, 1001)
    assert (os.lstat(root / "d/l").st_uid, os.lstat(root / "d/l").st_gid) == (7, 8)
    assert (os.stat(root / "d/p").st_uid, os.stat(root / "d/p").st_gid) == (9, 10)


def test_user_xattrs(root: Path) -> None:
    data = tar(
        (info("f", xattrs={"user.comment": "hi", "user.bin": "\udcff\x00\x01"}), b"x"),
        info("d", tarfile.DIRTYPE, xattrs={"user.d": "dir"}),
    )
    extract(root, data)
    try:
        assert os.getxattr(root / "f", "user.comment") == b"hi"
    except OSError as e:  # pragma: no cover - filesystems without user xattrs
        pytest.skip(f"no user xattrs here: {e}")
    assert os.getxattr(root / "f", "user.bin") == b"\xff\x00\x01"
    assert os.getxattr(root / "d", "user.d") == b"dir"


@root_only
def test_trusted_and_capability_xattrs(root: Path) -> None:
    cap = "\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
    data = tar(
        (info("ping", xattrs={"security.capability": cap}), b"\x7fELF"),
        info("d", tarfile.DIRTYPE, xattrs={"trusted.x": "1", "trusted.overlay.opaque": "y"}),
    )
    extract(root, data)
    assert os.getxattr(root / "ping", "security.capability") == cap.encode("latin-1")
    assert os.getxattr(root / "d", "trusted.x") == b"1"
    # Overlay's own xattrs are never taken from a layer.
    assert "trusted.overlay.opaque" not in os.listxattr(root / "d")


def test_hard_links(root: Path) -> None:
    data = tar(
        (info("a", mode=0o751), b"shared"),
        info("dir", tarfile.DIRTYPE),
        info("dir/b", tarfile.LNKTYPE, linkname="a"),
        info("./c", tarfile.LNKTYPE, linkname="./dir/b"),
    )
    extract(root, data)
    a, b, c = (os.stat(root / p) for p in ("a", "dir/b", "c"))
    assert a.st_ino == b.st_ino == c.st_ino
    assert a.st_nlink == 3
    assert (root / "c").read_bytes() == b"shared"


def test_later_entries_replace_earlier_ones(root: Path) -> None:
    data = tar(
        (info("x"), b"file first"),
        info("x", tarfile.DIRTYPE, mode=0o750),
        (info("x/inside"), b"in"),
        info("x", tarfile.DIRTYPE, mode=0o711),  # merges: contents stay
        info("y", tarfile.DIRTYPE),
        (info("y/deep"), b"gone with y"),
        (info("y"), b"file now"),
        (info("z"), b"old"),
        info("z", tarfile.SYMTYPE, linkname="x"),
        (info("w"), b"old"),
        (info("w", mode=0o600), b"new"),
    )
    extract(root, data)
    assert (root / "x").is_dir() and (root / "x/inside").read_bytes() == b"in"
    assert stat.S_IMODE(os.stat(root / "x").st_mode) == 0o711
    assert (root / "y").read_bytes() == b"file now"
    assert os.readlink(root / "z") == "x"
    assert (root / "w").read_bytes() == b"new"


def test_symlink_inside_the_root_is_followed_for_parents(root: Path) -> None:
    data = tar(
        info("usr", tarfile.DIRTYPE),
        info("usr/lib", tarfile.DIRTYPE),
        info("lib", tarfile.SYMTYPE, linkname="usr/lib"),
        info("lib64", tarfile.SYMTYPE, linkname="/usr/lib"),
        (info("lib/libc.so"), b"libc"),
        (info("lib64/ld.so"), b"ld"),
    )
    extract(root, data)
    assert (root / "usr/lib/libc.so").read_bytes() == b"libc"
    assert (root / "usr/lib/ld.so").read_bytes() == b"ld"
    assert os.readlink(root / "lib") == "usr/lib"


def test_dangerous_symlink_targets_are_created_verbatim(root: Path) -> None:
    data = tar(
        info("abs", tarfile.SYMTYPE, linkname="/etc/shadow"),
        info("up", tarfile.SYMTYPE, linkname="../../../../etc"),
    )
    extract(root, data)
    assert os.readlink(root / "abs") == "/etc/shadow"
    assert os.readlink(root / "up") == "../../../../etc"


# -- whiteouts ---------------------------------------------------------------------


def test_whiteouts_in_a_plain_directory_delete(root: Path) -> None:
    # What an earlier layer left (a bind target has no lower layer: whiteouts delete).
    (root / "etc/sub").mkdir(parents=True)
    (root / "etc/sub/f").write_text("x")
    (root / "etc/gone").write_text("x")
    (root / "keep").write_text("x")
    (root / "opq/old").mkdir(parents=True)
    data = tar(
        info("etc", tarfile.DIRTYPE),
        info("etc/.wh.gone"),
        info("etc/.wh.sub"),
        info("etc/.wh.never-existed"),
        info("opq", tarfile.DIRTYPE),
        (info("opq/new"), b"n"),
        info("opq/.wh..wh..opq"),
        info("missing/.wh.x"),
        info(".wh..wh.plnk", tarfile.DIRTYPE),  # aufs bookkeeping: ignored
    )
    extract(root, data)
    assert sorted(p.name for p in (root / "etc").iterdir()) == []
    assert sorted(p.name for p in (root / "opq").iterdir()) == ["new"]
    assert (root / "keep").exists()
    assert not (root / "missing").exists()
    assert not (root / ".wh..wh.plnk").exists()


@root_only
def test_whiteouts_in_an_overlay_upper_directory(tmp_path: Path) -> None:
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    (lower / "etc").mkdir(parents=True)
    (lower / "etc/passwd").write_text("root\n")
    os.chmod(lower / "etc", 0o751)
    os.chown(lower / "etc", 3, 4)
    os.utime(lower / "etc", (T - 50, T - 50))
    upper.mkdir()
    data = tar(
        info("etc/.wh.passwd", uid=5, gid=6),
        info("var", tarfile.DIRTYPE),
        (info("var/new"), b"n"),
        info("var/.wh..wh..opq"),
    )
    extract(upper, data, overlay=True, lowers=(str(lower),))
    wh = os.lstat(upper / "etc/passwd")
    assert stat.S_ISCHR(wh.st_mode) and wh.st_rdev == os.makedev(0, 0)
    assert (wh.st_uid, wh.st_gid) == (5, 6)
    assert not (upper / "etc/.wh.passwd").exists()
    # The parent the layer did not list copies the lower layer's directory.
    st = os.stat(upper / "etc")
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o751, 3, 4)
    assert st.st_mtime == T - 50
    assert os.getxattr(upper / "var", "trusted.overlay.opaque") == b"y"
    assert not (upper / "var/.wh..wh..opq").exists()
    assert (upper / "var/new").read_bytes() == b"n"


def test_whiteout_over_a_dir_made_by_the_same_layer(root: Path) -> None:
    data = tar(info("d", tarfile.DIRTYPE), (info("d/f"), b"x"), info(".wh.d"))
    extract(root, data)
    assert not (root / "d").exists()


# -- compression ---------------------------------------------------------------------


RAW = tar(info("d", tarfile.DIRTYPE), (info("d/f"), b"hello " * 1000))
RAW_ID = "sha256:" + hashlib.sha256(RAW).hexdigest()


@pytest.mark.parametrize(
    ("declared", "data"),
    [
        ("", RAW),
        ("gzip", im.gzip_bytes(RAW)),
        ("", im.gzip_bytes(RAW)),  # Docker archives: "tar" that is gzip
        ("zstd", zstandard.ZstdCompressor().compress(RAW)),
        ("", zstandard.ZstdCompressor().compress(RAW)),
        ("gzip", im.gzip_bytes(RAW[:4096]) + im.gzip_bytes(RAW[4096:])),  # two members
        ("gzip", im.gzip_bytes(RAW) + b"\0" * 100),  # zero padding after the member
        (
            "zstd",
            zstandard.ZstdCompressor().compress(RAW[:5000])
            + zstandard.ZstdCompressor().compress(RAW[5000:]),
        ),
    ],
    ids=[
        "tar",
        "gzip",
        "sniffed-gzip",
        "zstd",
        "sniffed-zstd",
        "gzip-members",
        "gzip-padding",
        "zstd-frames",
    ],
)
def test_compressions(root: Path, declared: str, data: bytes) -> None:
    diff_id, size = extract(root, data, declared=declared, chunk=1000)
    assert (diff_id, size) == (RAW_ID, len(RAW))
    assert (root / "d/f").read_bytes() == b"hello " * 1000


def test_empty_stream_is_an_empty_layer(root: Path) -> None:
    assert extract(root, b"") == ("sha256:" + hashlib.sha256(b"").hexdigest(), 0)
    assert extract(root, im.gzip_bytes(b""), declared="gzip")[1] == 0


# -- targets ------------------------------------------------------------------------------


def test_plan_target() -> None:
    bind = Mount("bind", "/s/1/fs", "", ("rw", "rbind"))
    assert ap.plan_target([bind]) == ap.Target("/s/1/fs")
    ov = Mount(
        "overlay",
        "overlay",
        "",
        ("index=off", "workdir=/s/2/work", "upperdir=/s/2/fs", "lowerdir=/s/1/fs:/s/0/fs"),
    )
    assert ap.plan_target([ov]) == ap.Target("/s/2/fs", overlay=True, lowers=("/s/1/fs", "/s/0/fs"))
    with pytest.raises(errors.InvalidArgument, match="read-only"):
        ap.plan_target([Mount("bind", "/s/1/fs", "", ("ro", "rbind"))])
    with pytest.raises(errors.InvalidArgument, match="read-only"):
        ap.plan_target([Mount("overlay", "overlay", "", ("lowerdir=/a:/b",))])
    with pytest.raises(errors.InvalidArgument, match="no mounts"):
        ap.plan_target([])
    assert ap.plan_target([Mount("tmpfs", "tmpfs", "", ())]) is None  # mounted first
    assert ap.plan_target([bind, bind]) is None


def test_layer_media_types() -> None:
    assert oci.layer_compression(oci.OCI_LAYER) == ""
    assert oci.layer_compression(oci.OCI_LAYER_GZIP) == "gzip"
    assert oci.layer_compression(oci.OCI_LAYER_ZSTD) == "zstd"
    assert oci.layer_compression(oci.DOCKER_LAYER_GZIP) == "gzip"
    assert oci.layer_compression(oci.DOCKER_LAYER) == ""
    assert oci.layer_compression(oci.OCI_LAYER_NONDIST_GZIP) == "gzip"
    assert oci.layer_compression("application/vnd.oci.image.layer.v1.tar+lz4") is None
    assert oci.layer_compression(oci.OCI_MANIFEST) is None


@pytest.mark.e2e
def test_whiteouts_hide_lower_files_in_a_real_overlay_mount(tmp_path: Path) -> None:
    from seacan.mount import mount_all, unmount

    lower, upper, work, merged = (tmp_path / n for n in ("lower", "upper", "work", "merged"))
    for d in (lower, upper, work, merged):
        d.mkdir()
    extract(
        lower,
        tar(
            info("etc", tarfile.DIRTYPE),
            (info("etc/passwd"), b"root\n"),
            (info("etc/group"), b"root\n"),
            info("var", tarfile.DIRTYPE),
            (info("var/old"), b"old"),
        ),
    )
    extract(
        upper,
        tar(
            info("etc/.wh.passwd"),
            info("var", tarfile.DIRTYPE),
            info("var/.wh..wh..opq"),
            (info("var/new"), b"new"),
        ),
        overlay=True,
        lowers=(str(lower),),
    )
    mount_all(
        [
            Mount(
                "overlay",
                "overlay",
                "",
                ("index=off", f"workdir={work}", f"upperdir={upper}", f"lowerdir={lower}"),
            )
        ],
        merged,
    )
    try:
        assert sorted(p.name for p in (merged / "etc").iterdir()) == ["group"]
        assert sorted(p.name for p in (merged / "var").iterdir()) == ["new"]
    finally:
        unmount(merged)
