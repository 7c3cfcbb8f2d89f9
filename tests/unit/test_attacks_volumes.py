"""Attacks on volumes: names that would be paths, and copy-up from a hostile
image (device nodes, hard links to files outside the copied directory, a
copy that fails half-way)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from seacan import errors
from seacan.services.volumes import copyup
from seacan.volumes import validate_name

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "name",
    ["..", ".", "../x", "a/../../b", "/etc", "a/b", ".hidden", "-rf", "a\nb", "x" * 256, "é1"],
)
def test_volume_names_that_would_be_paths(name: str) -> None:
    with pytest.raises(errors.InvalidArgument):
        validate_name(name)


@pytest.fixture
def rootfs(tmp_path: Path) -> Path:
    r = tmp_path / "rootfs"
    (r / "etc").mkdir(parents=True)
    (r / "etc" / "shadow").write_text("root:secret\n")
    (r / "data").mkdir()
    os.link(r / "etc" / "shadow", r / "data" / "shadow-link")  # a hard link out of /data
    os.mknod(r / "data" / "sda", 0o666 | stat.S_IFBLK, os.makedev(8, 0))
    os.mknod(r / "data" / "mem", 0o666 | stat.S_IFCHR, os.makedev(1, 1))
    (r / "data" / "ok").write_text("ok\n")
    return r


def _dest(tmp_path: Path) -> Path:
    d = tmp_path / "vol" / "_data"
    d.mkdir(parents=True)
    return d


def test_device_nodes_are_not_copied_into_a_volume(rootfs: Path, tmp_path: Path) -> None:
    dest = _dest(tmp_path)
    assert copyup.copy_up(str(rootfs), "/data", str(dest))
    assert sorted(os.listdir(dest)) == ["ok", "shadow-link"]


def test_hard_link_out_of_the_tree_becomes_a_copy(rootfs: Path, tmp_path: Path) -> None:
    dest = _dest(tmp_path)
    copyup.copy_up(str(rootfs), "/data", str(dest))
    assert (dest / "shadow-link").read_text() == "root:secret\n"
    assert (dest / "shadow-link").stat().st_nlink == 1
    (dest / "shadow-link").write_text("changed by a container\n")
    assert (rootfs / "etc" / "shadow").read_text() == "root:secret\n"
    assert (rootfs / "etc" / "shadow").stat().st_nlink == 2


def test_a_copy_that_fails_half_way_leaves_the_volume_empty(
    rootfs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dest = _dest(tmp_path)
    real = copyup._Copier.file
    calls = []

    def failing(src: int, dst: int, name: str) -> None:
        calls.append(name)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        real(src, dst, name)

    monkeypatch.setattr(copyup._Copier, "file", staticmethod(failing))
    with pytest.raises(errors.Internal, match="No space left on device"):
        copyup.copy_up(str(rootfs), "/data", str(dest))
    assert os.listdir(dest) == []
    monkeypatch.setattr(copyup._Copier, "file", staticmethod(real))
    assert copyup.copy_up(str(rootfs), "/data", str(dest))  # a later use tries again
    assert sorted(os.listdir(dest)) == ["ok", "shadow-link"]


def test_a_mount_path_that_is_a_file_or_a_loop_copies_nothing(rootfs: Path, tmp_path: Path) -> None:
    os.symlink("l2", rootfs / "l1")
    os.symlink("l1", rootfs / "l2")
    dest = _dest(tmp_path)
    for target in ("/etc/shadow", "/l1", "/l1/x", "/data/ok/x"):
        assert copyup.copy_up(str(rootfs), target, str(dest)) is False
    assert os.listdir(dest) == []
