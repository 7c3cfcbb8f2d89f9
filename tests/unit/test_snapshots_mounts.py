"""Mount construction (containerd's overlay table) and mount-option handling, without mounting."""

from __future__ import annotations

from pathlib import Path

import pytest

from seacan import errors, mount
from seacan.services.snapshots.overlay import build_mounts, disk_usage, updated_labels
from seacan.snapshots import Info, Kind, Mount

pytestmark = pytest.mark.unit

S = Path("/var/lib/seacan/snapshots/overlayfs/snapshots")


def d(i: int) -> Path:
    return S / str(i)


@pytest.mark.parametrize(
    ("kind", "parents", "expected"),
    [
        (Kind.ACTIVE, [], Mount("bind", f"{S}/5/fs", "", ("rw", "rbind"))),
        (Kind.VIEW, [], Mount("bind", f"{S}/5/fs", "", ("ro", "rbind"))),
        (Kind.VIEW, [d(3)], Mount("bind", f"{S}/3/fs", "", ("ro", "rbind"))),
        (
            Kind.ACTIVE,
            [d(3)],
            Mount(
                "overlay",
                "overlay",
                "",
                ("index=off", f"workdir={S}/5/work", f"upperdir={S}/5/fs", f"lowerdir={S}/3/fs"),
            ),
        ),
        (
            Kind.ACTIVE,
            [d(3), d(2), d(1)],
            Mount(
                "overlay",
                "overlay",
                "",
                (
                    "index=off",
                    f"workdir={S}/5/work",
                    f"upperdir={S}/5/fs",
                    f"lowerdir={S}/3/fs:{S}/2/fs:{S}/1/fs",
                ),
            ),
        ),
        (
            Kind.VIEW,
            [d(3), d(2)],
            Mount("overlay", "overlay", "", ("index=off", f"lowerdir={S}/3/fs:{S}/2/fs")),
        ),
    ],
    ids=["active-alone", "view-alone", "view-one", "active-one", "active-three", "view-two"],
)
def test_mounts_like_containerd(kind: Kind, parents: list[Path], expected: Mount) -> None:
    assert build_mounts(kind, d(5), parents, index_off=True) == [expected]


def test_index_off_only_when_the_kernel_has_it() -> None:
    (m,) = build_mounts(Kind.ACTIVE, d(5), [d(3)], index_off=False)
    assert m.options[0].startswith("workdir=")
    assert not any(o.startswith("index=") for o in m.options)


def test_parse_options() -> None:
    assert mount.parse_options(["ro", "rbind"]) == (
        mount.MS_RDONLY | mount.MS_BIND | mount.MS_REC,
        "",
    )
    assert mount.parse_options(["rw", "rbind"]) == (mount.MS_BIND | mount.MS_REC, "")
    flags, data = mount.parse_options(
        ["index=off", "workdir=/w", "upperdir=/u", "lowerdir=/a:/b", "nosuid", "nodev"]
    )
    assert flags == mount.MS_NOSUID | mount.MS_NODEV
    assert data == "index=off,workdir=/w,upperdir=/u,lowerdir=/a:/b"
    assert mount.parse_options(["ro", "rw"]) == (0, "")  # later options win
    assert mount.parse_options(["rprivate"])[0] == mount.MS_PRIVATE | mount.MS_REC


def test_compact_lowerdir() -> None:
    opts = ["index=off", f"lowerdir={S}/12/fs:{S}/11/fs:{S}/3/fs", f"upperdir={S}/13/fs"]
    chdir, out = mount.compact_lowerdir(opts)
    assert chdir == f"{S}/"
    assert out == ["index=off", f"upperdir={S}/13/fs", "lowerdir=12/fs:11/fs:3/fs"]
    # ids sharing leading digits still cut at a directory boundary
    chdir, out = mount.compact_lowerdir([f"lowerdir={S}/12/fs:{S}/13/fs"])
    assert (chdir, out) == (f"{S}/", ["lowerdir=12/fs:13/fs"])


@pytest.mark.parametrize(
    "opts",
    [
        ["index=off", "upperdir=/u"],  # no lowerdir
        ["lowerdir=/a/b/fs"],  # one lowerdir
        ["lowerdir=/a/fs:/b/fs"],  # nothing in common but /
    ],
)
def test_compact_lowerdir_leaves_alone(opts: list[str]) -> None:
    assert mount.compact_lowerdir(opts) == ("", opts)


def test_mount_options_too_long_even_compacted(tmp_path: Path) -> None:
    lower = ":".join(f"/{i}" * 30 for i in range(200))  # nothing to cut
    m = Mount("overlay", "overlay", options=(f"lowerdir={lower}",))
    with pytest.raises(errors.InvalidArgument, match="too long"):
        mount.mount(m, tmp_path)


def test_unmount_of_nothing_is_fine(tmp_path: Path) -> None:
    mount.unmount(tmp_path)  # not a mount point
    mount.unmount(tmp_path / "missing")


@pytest.mark.parametrize(
    ("paths", "given", "expected"),
    [
        ([], {"x": "1"}, {"x": "1"}),  # no mask replaces everything
        (["labels"], {"x": "1"}, {"x": "1"}),
        (["labels.a"], {"a": "9", "x": "1"}, {"a": "9", "b": "2"}),
        (["labels.a"], {}, {"b": "2"}),  # absent value removes
        (
            ["labels.new/key.with.dots"],
            {"new/key.with.dots": "v"},
            {"a": "1", "b": "2", "new/key.with.dots": "v"},
        ),
        (["labels.a", "labels.b"], {"a": "", "b": "3"}, {"b": "3"}),
    ],
)
def test_updated_labels(paths: list[str], given: dict[str, str], expected: dict[str, str]) -> None:
    current = {"a": "1", "b": "2"}
    assert updated_labels(current, Info("s", labels=given), paths) == expected


@pytest.mark.parametrize("path", ["name", "parent", "kind", "created_at", "labelsx"])
def test_updated_labels_refuses_other_fields(path: str) -> None:
    with pytest.raises(errors.InvalidArgument, match=path):
        updated_labels({}, Info("s"), [path])


def test_disk_usage(tmp_path: Path) -> None:
    root = tmp_path / "fs"
    root.mkdir()
    assert disk_usage(root).inodes == 1
    (root / "a").write_bytes(b"a" * 50_000)
    (root / "d").mkdir()
    (root / "d" / "link").hardlink_to(root / "a")
    (root / "sym").symlink_to("/nonexistent")
    u = disk_usage(root)
    assert u.inodes == 4  # root, a (= link), d, sym
    assert u.size >= 50_000
