"""Copy-up of an image directory into an empty volume: preserved, and never followed outside."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from seacan.services.volumes import copyup

pytestmark = pytest.mark.unit


@pytest.fixture
def rootfs(tmp_path: Path) -> Path:
    """A hostile image rootfs next to a host ``secret`` directory it points at."""
    (tmp_path / "host-secret").mkdir()
    (tmp_path / "host-secret" / "key").write_text("host only\n")
    r = tmp_path / "rootfs"
    (r / "etc").mkdir(parents=True)
    (r / "etc" / "passwd").write_text("root:x:0:0\n")
    (r / "data" / "sub").mkdir(parents=True)
    (r / "data").chmod(0o750)
    (r / "data" / "f").write_text("file\n")
    (r / "data" / "f").chmod(0o640)
    os.utime(r / "data" / "f", (1_000_000, 1_000_000))
    (r / "data" / "sub" / "x").write_text("x\n")
    os.link(r / "data" / "f", r / "data" / "f-link")
    os.symlink("/etc/passwd", r / "data" / "abs")
    os.symlink("../../host-secret", r / "data" / "up")
    os.mkfifo(r / "data" / "fifo")
    os.symlink("/../../host-secret", r / "escape")  # resolves to <rootfs>/host-secret: absent
    os.symlink("../../../../etc", r / "etc-link")  # resolves to <rootfs>/etc
    os.symlink("loop2", r / "loop1")
    os.symlink("loop1", r / "loop2")
    return r


def _dest(tmp_path: Path) -> Path:
    d = tmp_path / "vol" / "_data"
    d.mkdir(parents=True)
    return d


def test_copies_a_tree_preserving_it(rootfs: Path, tmp_path: Path) -> None:
    dest = _dest(tmp_path)
    assert copyup.copy_up(str(rootfs), "/data", str(dest)) is True
    assert sorted(os.listdir(dest)) == ["abs", "f", "f-link", "fifo", "sub", "up"]
    assert stat.S_IMODE(dest.stat().st_mode) == 0o750  # the source directory's mode
    assert (dest / "f").read_text() == "file\n"
    assert stat.S_IMODE((dest / "f").stat().st_mode) == 0o640
    assert (dest / "f").stat().st_mtime == 1_000_000
    assert (dest / "f").stat().st_ino == (dest / "f-link").stat().st_ino
    assert os.readlink(dest / "abs") == "/etc/passwd"
    assert os.readlink(dest / "up") == "../../host-secret"
    assert stat.S_ISFIFO((dest / "fifo").lstat().st_mode)
    assert (dest / "sub" / "x").read_text() == "x\n"


def test_nothing_copied_into_a_volume_that_is_not_empty(rootfs: Path, tmp_path: Path) -> None:
    dest = _dest(tmp_path)
    (dest / "mine").write_text("keep\n")
    assert copyup.copy_up(str(rootfs), "/data", str(dest)) is False
    assert os.listdir(dest) == ["mine"]


@pytest.mark.parametrize("target", ["/nope", "/etc/passwd", "/escape", "/loop1", "/escape/key"])
def test_nothing_copied_when_there_is_no_directory(
    rootfs: Path, tmp_path: Path, target: str
) -> None:
    dest = _dest(tmp_path)
    assert copyup.copy_up(str(rootfs), target, str(dest)) is False
    assert os.listdir(dest) == []


@pytest.mark.parametrize("target", ["/etc-link", "/../../etc", "/data/../etc/", "etc"])
def test_mount_path_resolved_inside_the_rootfs(rootfs: Path, tmp_path: Path, target: str) -> None:
    dest = _dest(tmp_path)
    assert copyup.copy_up(str(rootfs), target, str(dest)) is True
    assert os.listdir(dest) == ["passwd"]
    assert (dest / "passwd").read_text() == "root:x:0:0\n"
