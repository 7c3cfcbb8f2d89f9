"""seacan.runtime.users: Docker's --user rules; /etc files read safely from an untrusted root."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from seacan import errors
from seacan.runtime import users
from seacan.runtime.users import User

pytestmark = pytest.mark.unit

PASSWD = b"""# comment
root:x:0:0:root:/root:/bin/sh
bob:x:1000:1000:Bob:/home/bob:/bin/sh
broken line
alice:x:1001:100::/home/alice:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
"""
GROUP = b"""root:x:0:
bob:x:1000:
users:x:100:alice
wheel:x:10:bob,alice
audio:x:29:bob
nogroup:x:65534:
"""


def resolve(spec: str) -> User:
    return users.resolve(spec, PASSWD, GROUP)


@pytest.mark.parametrize(
    ("spec", "want"),
    [
        ("", User(0, 0, (0,), "/root")),
        ("root", User(0, 0, (0,), "/root")),
        ("bob", User(1000, 1000, (1000, 10, 29), "/home/bob")),
        ("1000", User(1000, 1000, (1000, 10, 29), "/home/bob")),
        ("alice", User(1001, 100, (100, 10), "/home/alice")),
        # explicit group: no supplementary groups, as Docker
        ("bob:wheel", User(1000, 10, (10,), "/home/bob")),
        ("bob:4242", User(1000, 4242, (4242,), "/home/bob")),
        ("1000:29", User(1000, 29, (29,), "/home/bob")),
        # numeric ids need not exist
        ("4242", User(4242, 0, (0,), "/")),
        ("4242:4343", User(4242, 4343, (4343,), "/")),
        (":wheel", User(0, 10, (10,), "/root")),
    ],
)
def test_resolve(spec: str, want: User) -> None:
    assert resolve(spec) == want


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ("mallory", "unable to find user mallory"),
        ("bob:staff", "unable to find group staff"),
        ("-1", "uid must be in range"),
        ("1:-5", "gid must be in range"),
        (str(2**31), "uid must be in range"),
    ],
)
def test_bad_users_are_invalid_arguments(spec: str, needle: str) -> None:
    with pytest.raises(errors.InvalidArgument, match=needle):
        resolve(spec)


def test_no_passwd_means_numeric_only() -> None:
    assert users.resolve("", None, None) == User(0, 0, (0,), "/")
    assert users.resolve("7:8", None, None) == User(7, 8, (8,), "/")
    with pytest.raises(errors.InvalidArgument):
        users.resolve("bob", None, None)


def make_root(tmp_path: Path) -> Path:
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "passwd").write_bytes(PASSWD)
    (root / "etc" / "group").write_bytes(GROUP)
    return root


def test_lookup_reads_the_rootfs(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    assert users.lookup("bob", root).uid == 1000
    assert users.lookup("bob", lambda name: {"passwd": PASSWD}.get(name)).additional_gids == (1000,)


def test_symlink_to_host_file_is_resolved_inside_the_root(tmp_path: Path) -> None:
    """/etc/passwd -> /etc/shadow must read <root>/etc/shadow, never the host's."""
    root = make_root(tmp_path)
    (root / "etc" / "passwd").unlink()
    (root / "etc" / "passwd").symlink_to("/etc/shadow")
    assert users.read_etc_file(root, "passwd") is None  # no <root>/etc/shadow
    with pytest.raises(errors.InvalidArgument, match="unable to find user root"):
        users.lookup("root", root)
    # with a decoy inside the root, that is what is read
    (root / "etc" / "shadow").write_bytes(b"decoy:x:5:5::/:/bin/sh\n")
    assert users.read_etc_file(root, "passwd") == b"decoy:x:5:5::/:/bin/sh\n"


def test_dotdot_and_relative_symlinks_stop_at_the_root(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.write_bytes(b"host:x:1:1::/:/bin/sh\n")
    root = make_root(tmp_path)
    (root / "etc" / "passwd").unlink()
    (root / "etc" / "passwd").symlink_to("../../../../../../outside")
    assert users.read_etc_file(root, "passwd") is None
    (root / "etc" / "passwd").unlink()
    (root / "etc" / "passwd").symlink_to("../../outside")
    assert users.read_etc_file(root, "passwd") is None
    # a symlinked /etc directory pointing out of the root resolves inside it
    os.rename(root / "etc", root / "realetc")
    (root / "etc").symlink_to(str(tmp_path))  # absolute: becomes <root>/<tmp_path>
    assert users.read_etc_file(root, "group") is None
    (root / "etc").unlink()
    (root / "etc").symlink_to("realetc")
    assert users.read_etc_file(root, "group") == GROUP


def test_symlink_loops_and_non_regular_files(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    (root / "etc" / "passwd").unlink()
    (root / "etc" / "passwd").symlink_to("passwd")
    with pytest.raises(errors.InvalidArgument):
        users.read_etc_file(root, "passwd")
    (root / "etc" / "passwd").unlink()
    os.mkfifo(root / "etc" / "passwd")  # a FIFO would block a naive reader
    assert users.read_etc_file(root, "passwd") is None
    (root / "etc" / "group").unlink()
    (root / "etc" / "group").mkdir()
    assert users.read_etc_file(root, "group") is None


def test_size_is_capped(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    with open(root / "etc" / "passwd", "wb") as f:
        f.truncate(users.MAX_ETC_FILE + 1)
    with pytest.raises(errors.InvalidArgument, match="larger than"):
        users.read_etc_file(root, "passwd")


def test_missing_rootfs_is_invalid(tmp_path: Path) -> None:
    with pytest.raises(errors.InvalidArgument, match="rootfs"):
        users.read_etc_file(tmp_path / "nope", "passwd")
