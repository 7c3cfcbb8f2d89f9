"""User and group resolution against a container's own ``/etc/passwd`` and ``/etc/group``.

The rootfs is untrusted: its ``/etc/passwd`` may be a symlink to
``/etc/shadow`` on the host, or to ``../../..``. ``read_etc_file`` resolves
every path component *inside* the root (an absolute symlink target restarts
at the root, ``..`` stops at the root, as ``openat2(RESOLVE_IN_ROOT)`` and
runc's securejoin do), opens only regular files, and reads at most
``MAX_ETC_FILE`` bytes::

    passwd = users.read_etc_file(rootfs, "passwd")         # bytes or None
    u = users.resolve("nobody:users", passwd, group)        # User(uid, gid, ...)
    u = users.lookup("1000", rootfs)                        # both in one call

``resolve`` follows Docker (moby/sys/user ``GetExecUser``): a numeric user
is always a UID, whether or not passwd names it; a name must exist; with no
explicit group, the user's primary GID comes from passwd and supplementary
GIDs from the groups that list the user by name.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass

from seacan import errors

MAX_ETC_FILE = 1 << 20
MAX_ID = 2**31 - 1
_MAX_SYMLINKS = 40

EtcSource = str | os.PathLike[str] | Callable[[str], bytes | None]
"""A rootfs path, or a callable that returns ``/etc/<name>`` (or None if absent)."""


@dataclass(frozen=True, slots=True)
class User:
    uid: int
    gid: int
    additional_gids: tuple[int, ...] = ()
    home: str = "/"


@dataclass(frozen=True, slots=True)
class _PasswdEntry:
    name: str
    uid: int
    gid: int
    home: str


@dataclass(frozen=True, slots=True)
class _GroupEntry:
    name: str
    gid: int
    members: tuple[str, ...]


# -- reading files inside an untrusted root ----------------------------------


def _open_in_root(root_fd: int, path: str) -> int | None:
    """An O_RDONLY fd of ``path`` resolved inside ``root_fd``; None if absent."""
    stack = [os.dup(root_fd)]
    pending = [p for p in path.split("/") if p]
    hops = 0
    try:
        while pending:
            part = pending.pop(0)
            if part == ".":
                continue
            if part == "..":
                if len(stack) > 1:
                    os.close(stack.pop())
                continue
            cur = stack[-1]
            try:
                fd = os.open(part, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=cur)
            except FileNotFoundError:
                return None
            st = os.fstat(fd)
            if stat.S_ISLNK(st.st_mode):
                os.close(fd)
                hops += 1
                if hops > _MAX_SYMLINKS:
                    raise OSError(errno.ELOOP, "too many symlinks")
                target = os.readlink(part, dir_fd=cur)
                if target.startswith("/"):
                    while len(stack) > 1:
                        os.close(stack.pop())
                pending[:0] = [p for p in target.split("/") if p]
                continue
            if pending and not stat.S_ISDIR(st.st_mode):
                os.close(fd)
                return None
            stack.append(fd)
        if len(stack) == 1:
            return None  # the root itself is not a file
        last = stack[-1]
        if not stat.S_ISREG(os.fstat(last).st_mode):
            return None
        # Re-open the O_PATH fd for reading through /proc, never by name again.
        return os.open(f"/proc/self/fd/{last}", os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    finally:
        for fd in stack:
            os.close(fd)


def read_etc_file(rootfs: str | os.PathLike[str], name: str) -> bytes | None:
    """``/etc/<name>`` of ``rootfs`` read safely, or None when it does not exist."""
    try:
        root_fd = os.open(rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as e:
        raise errors.InvalidArgument(f"rootfs {os.fspath(rootfs)}: {e.strerror}") from e
    try:
        fd = _open_in_root(root_fd, f"/etc/{name}")
        if fd is None:
            return None
        with os.fdopen(fd, "rb") as f:
            data = f.read(MAX_ETC_FILE + 1)
    except OSError as e:
        raise errors.InvalidArgument(f"rootfs /etc/{name}: {e.strerror}") from e
    finally:
        os.close(root_fd)
    if len(data) > MAX_ETC_FILE:
        raise errors.InvalidArgument(f"rootfs /etc/{name} is larger than {MAX_ETC_FILE} bytes")
    return data


# -- parsing -------------------------------------------------------------------


def _int_id(text: str) -> int | None:
    if not text.isdigit():
        return None
    value = int(text)
    return value if value <= MAX_ID else None


def _lines(data: bytes | None) -> list[list[str]]:
    if not data:
        return []
    text = data.decode("utf-8", errors="replace")
    return [
        line.split(":")
        for line in text.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]


def parse_passwd(data: bytes | None) -> list[_PasswdEntry]:
    out = []
    for f in _lines(data):
        if len(f) < 4:
            continue
        uid, gid = _int_id(f[2]), _int_id(f[3])
        if uid is None or gid is None:
            continue
        out.append(_PasswdEntry(f[0], uid, gid, f[5] if len(f) > 5 and f[5] else "/"))
    return out


def parse_group(data: bytes | None) -> list[_GroupEntry]:
    out = []
    for f in _lines(data):
        if len(f) < 3:
            continue
        gid = _int_id(f[2])
        if gid is None:
            continue
        members = tuple(m for m in (f[3].split(",") if len(f) > 3 else []) if m)
        out.append(_GroupEntry(f[0], gid, members))
    return out


# -- resolution ---------------------------------------------------------------


def _numeric(text: str, what: str, spec: str) -> int | None:
    """An int for a numeric id (range-checked), None for a name."""
    try:
        value = int(text)
    except ValueError:
        return None
    if not 0 <= value <= MAX_ID:
        raise errors.InvalidArgument(f"user {spec!r}: {what} must be in range 0-{MAX_ID}")
    return value


def resolve(spec: str, passwd: bytes | None, group: bytes | None) -> User:
    """Docker's ``--user`` semantics: ``uid[:gid]`` or ``name[:group]``, "" is root."""
    user_arg, _, group_arg = spec.partition(":")
    uid_num = _numeric(user_arg, "uid", spec) if user_arg else None
    gid_num = _numeric(group_arg, "gid", spec) if group_arg else None

    entry: _PasswdEntry | None = None
    for e in parse_passwd(passwd):
        if (not user_arg and e.uid == 0) or (
            e.uid == uid_num if uid_num is not None else e.name == user_arg
        ):
            entry = e
            break
    if entry is None and user_arg and uid_num is None:
        raise errors.InvalidArgument(f"user {spec!r}: unable to find user {user_arg}")
    uid = entry.uid if entry else (uid_num or 0)
    gid = entry.gid if entry else 0
    home = entry.home if entry else "/"
    name = entry.name if entry else ""

    sgids: list[int] = []
    groups = parse_group(group)
    if group_arg:
        match = next(
            (
                g
                for g in groups
                if (g.gid == gid_num if gid_num is not None else g.name == group_arg)
            ),
            None,
        )
        if match is not None:
            gid = match.gid
        elif gid_num is None:
            raise errors.InvalidArgument(f"user {spec!r}: unable to find group {group_arg}")
        else:
            gid = gid_num
    elif name:
        sgids = [g.gid for g in groups if name in g.members]

    additional: list[int] = []
    for g in (gid, *sgids):
        if g not in additional:
            additional.append(g)
    return User(uid, gid, tuple(additional), home)


def lookup(spec: str, etc: EtcSource) -> User:
    """Resolve ``spec`` against a rootfs (path) or a reader of its /etc files."""
    if callable(etc):
        return resolve(spec, etc("passwd"), etc("group"))
    return resolve(spec, read_etc_file(etc, "passwd"), read_etc_file(etc, "group"))
