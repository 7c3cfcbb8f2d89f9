"""File system work inside untrusted trees: a mounted snapshot, a build context.

Every path is resolved component by component from a directory fd with
``O_NOFOLLOW`` (:func:`resolve`): a symlink is read and followed *inside* the
root (an absolute target restarts at the root, ``..`` stops at the root, as
``openat2(RESOLVE_IN_ROOT)`` and moby's ``FollowSymlinkInScope``), so nothing
outside the root is ever read or written. ``strict=True`` turns "leaves the
root" into an error instead (COPY from the build context: ``../x`` and
symlinks pointing out are refused, naming the path).

Writers create entries with ``O_CREAT|O_EXCL|O_NOFOLLOW`` relative to a
directory fd, after unlinking what was there (a symlink is replaced, never
followed). All functions block; callers run them in a thread.
"""

from __future__ import annotations

import errno
import os
import stat
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

from seacan import errors

MAX_SYMLINKS = 40
# An archive (a build context, an ADD'ed tar) with more entries than this is refused.
MAX_ENTRIES = 1 << 20
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC | os.O_NOFOLLOW
COPY_CHUNK = 1 << 20


class OutsideRoot(errors.InvalidArgument):
    """A path that resolves outside its root (strict resolution)."""


@dataclass(frozen=True, slots=True)
class Owner:
    """Who new entries belong to; None keeps the source's owner."""

    uid: int
    gid: int


def open_dir(path: str | os.PathLike[str]) -> int:
    return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)


def _parts(path: str) -> list[str]:
    return [p for p in path.split("/") if p and p != "."]


def resolve(
    root_fd: int,
    path: str,
    *,
    strict: bool = False,
    follow_last: bool = True,
    create: Owner | None = None,
) -> tuple[int, str]:
    """``(dir_fd, name)`` for ``path`` inside ``root_fd``: the fd of its parent directory
    (the caller closes it) and the last component ("" when ``path`` is the root itself).

    Parent directories that do not exist are created (mode 0755, owned by
    ``create``) when ``create`` is given; otherwise FileNotFoundError. With
    ``follow_last`` a symlink in the last place is followed too.
    """
    stack = [os.dup(root_fd)]
    pending = _parts(path)
    hops = 0
    try:
        while pending:
            part = pending.pop(0)
            if part == "..":
                if len(stack) == 1:
                    if strict:
                        raise OutsideRoot(f"{path}: outside the build context")
                    continue
                os.close(stack.pop())
                continue
            cur = stack[-1]
            last = not pending
            try:
                st = os.stat(part, dir_fd=cur, follow_symlinks=False)
            except FileNotFoundError:
                if last:
                    return stack.pop(), part
                if create is None:
                    raise
                os.mkdir(part, 0o755, dir_fd=cur)
                os.chown(part, create.uid, create.gid, dir_fd=cur, follow_symlinks=False)
                st = os.stat(part, dir_fd=cur, follow_symlinks=False)
            if stat.S_ISLNK(st.st_mode) and (not last or follow_last):
                hops += 1
                if hops > MAX_SYMLINKS:
                    raise errors.InvalidArgument(f"{path}: too many levels of symbolic links")
                target = os.readlink(part, dir_fd=cur)
                if target.startswith("/"):
                    if strict:
                        raise OutsideRoot(f"{path}: symlink to {target} points outside the context")
                    while len(stack) > 1:
                        os.close(stack.pop())
                pending[:0] = _parts(target)
                continue
            if last:
                return stack.pop(), part
            if not stat.S_ISDIR(st.st_mode):
                raise NotADirectoryError(errno.ENOTDIR, "not a directory", path)
            stack.append(os.open(part, _DIR, dir_fd=cur))
        return stack.pop(), ""
    finally:
        for fd in stack:
            os.close(fd)


def open_in(root_fd: int, path: str, *, strict: bool = False) -> tuple[int, os.stat_result]:
    """An ``O_PATH`` fd of ``path`` (symlinks followed in the root) and its stat."""
    parent, name = resolve(root_fd, path, strict=strict)
    try:
        if not name:
            fd = os.dup(parent)
        else:
            fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
        return fd, os.fstat(fd)
    finally:
        os.close(parent)


def reopen(fd: int, flags: int) -> int:
    """An O_PATH fd re-opened for reading, never by name again."""
    return os.open(f"/proc/self/fd/{fd}", flags | os.O_CLOEXEC)


def mkdir_all(root_fd: int, path: str, owner: Owner) -> bool:
    """``mkdir -p`` inside the root; True when something was created."""
    parent, name = resolve(root_fd, path, create=owner)
    try:
        if not name:
            return False
        try:
            st = os.stat(name, dir_fd=parent)
        except FileNotFoundError:
            os.mkdir(name, 0o755, dir_fd=parent)
            os.chown(name, owner.uid, owner.gid, dir_fd=parent, follow_symlinks=False)
            return True
        if not stat.S_ISDIR(st.st_mode):
            raise errors.InvalidArgument(f"{path}: exists and is not a directory")
        return False
    finally:
        os.close(parent)


def is_dir(root_fd: int, path: str) -> bool:
    try:
        fd, st = open_in(root_fd, path)
    except (FileNotFoundError, NotADirectoryError):
        return False
    os.close(fd)
    return stat.S_ISDIR(st.st_mode)


def _clear(dir_fd: int, name: str, *, keep_dir: bool) -> bool:
    """Remove a non-directory ``name``; True if a directory is there (and kept)."""
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    if stat.S_ISDIR(st.st_mode):
        if keep_dir:
            return True
        _rmtree(dir_fd, name)
        return False
    os.unlink(name, dir_fd=dir_fd)
    return False


def _rmtree(dir_fd: int, name: str) -> None:
    fd = os.open(name, _DIR, dir_fd=dir_fd)
    try:
        for child in os.listdir(fd):
            st = os.stat(child, dir_fd=fd, follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                _rmtree(fd, child)
            else:
                os.unlink(child, dir_fd=fd)
    finally:
        os.close(fd)
    os.rmdir(name, dir_fd=dir_fd)


def _set_meta(dir_fd: int, name: str, mode: int | None, owner: Owner, mtime: float | None) -> None:
    os.chown(name, owner.uid, owner.gid, dir_fd=dir_fd, follow_symlinks=False)
    if mode is not None:
        os.chmod(name, stat.S_IMODE(mode), dir_fd=dir_fd)
    if mtime is not None:
        os.utime(name, (mtime, mtime), dir_fd=dir_fd, follow_symlinks=False)


def write_file(
    dir_fd: int,
    name: str,
    src: IO[bytes],
    *,
    mode: int,
    owner: Owner,
    mtime: float | None,
) -> None:
    """A new regular file ``name`` in ``dir_fd`` with ``src``'s bytes (replacing a non-dir)."""
    if _clear(dir_fd, name, keep_dir=False):
        raise AssertionError("unreachable")
    fd = os.open(
        name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
        dir_fd=dir_fd,
    )  # fmt: skip
    with os.fdopen(fd, "wb") as out:
        while chunk := src.read(COPY_CHUNK):
            out.write(chunk)
    _set_meta(dir_fd, name, mode, owner, mtime)


def write_symlink(
    dir_fd: int, name: str, target: str, *, owner: Owner, mtime: float | None
) -> None:
    _clear(dir_fd, name, keep_dir=False)
    os.symlink(target, name, dir_fd=dir_fd)
    os.chown(name, owner.uid, owner.gid, dir_fd=dir_fd, follow_symlinks=False)
    if mtime is not None:
        os.utime(name, (mtime, mtime), dir_fd=dir_fd, follow_symlinks=False)


def ensure_dir(
    dir_fd: int, name: str, *, mode: int, owner: Owner, mtime: float | None, existing: bool
) -> int:
    """Directory ``name`` (made if missing; metadata set when new or ``existing``); its fd."""
    made = not _clear(dir_fd, name, keep_dir=True)
    if made:
        os.mkdir(name, 0o700, dir_fd=dir_fd)
    if made or existing:
        _set_meta(dir_fd, name, mode, owner, mtime)
    return os.open(name, _DIR, dir_fd=dir_fd)


@dataclass(frozen=True, slots=True)
class Entry:
    """One entry found walking a source tree (relative name, stat, link target)."""

    rel: str
    st: os.stat_result
    link: str = ""


def walk(dir_fd: int, prefix: str = "") -> Iterator[Entry]:
    """Entries under ``dir_fd``, sorted by name, parents before children; never follows links."""
    for name in sorted(os.listdir(dir_fd)):
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        rel = f"{prefix}{name}"
        if stat.S_ISLNK(st.st_mode):
            yield Entry(rel, st, os.readlink(name, dir_fd=dir_fd))
        elif stat.S_ISDIR(st.st_mode):
            yield Entry(rel, st)
            sub = os.open(name, _DIR, dir_fd=dir_fd)
            try:
                yield from walk(sub, rel + "/")
            finally:
                os.close(sub)
        else:
            yield Entry(rel, st)


def copy_entry(
    src_dir: int,
    name: str,
    st: os.stat_result,
    dst_dir: int,
    dst_name: str,
    *,
    owner: Owner | None,
    chmod: int | None,
) -> None:
    """Copy one entry (a directory with everything below it) from ``src_dir`` to ``dst_dir``.

    Owners become ``owner`` (None keeps the source's), modes ``chmod`` when
    given; mtimes are kept. Device nodes, FIFOs and sockets are skipped.
    """
    own = owner or Owner(st.st_uid, st.st_gid)
    mode = chmod if chmod is not None else st.st_mode
    if stat.S_ISDIR(st.st_mode):
        src = os.open(name, _DIR, dir_fd=src_dir)
        try:
            dst = ensure_dir(
                dst_dir, dst_name, mode=mode, owner=own, mtime=None, existing=bool(dst_name)
            ) if dst_name else os.dup(dst_dir)  # fmt: skip
            try:
                for child in sorted(os.listdir(src)):
                    cst = os.stat(child, dir_fd=src, follow_symlinks=False)
                    copy_entry(src, child, cst, dst, child, owner=owner, chmod=chmod)
            finally:
                os.close(dst)
        finally:
            os.close(src)
        if dst_name:
            os.utime(dst_name, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=dst_dir)
    elif stat.S_ISLNK(st.st_mode):
        target = os.readlink(name, dir_fd=src_dir)
        write_symlink(dst_dir, dst_name, target, owner=own, mtime=st.st_mtime)
    elif stat.S_ISREG(st.st_mode):
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=src_dir)
        with os.fdopen(fd, "rb") as f:
            write_file(dst_dir, dst_name, f, mode=mode, owner=own, mtime=st.st_mtime)


def extract_tar(
    tf: tarfile.TarFile,
    dst_root: int,
    *,
    owner: Owner | None,
    what: str,
    max_bytes: int,
    absolute_ok: bool = True,
) -> None:
    """Extract an archive (ADD's auto-extraction) into the directory ``dst_root``.

    Names with ``..`` or hard links to names not inside the archive are
    refused; absolute names are taken relative to ``dst_root``; device
    nodes are refused; symlinks are written as they are (never followed
    while extracting: parents are resolved inside ``dst_root``). More than
    ``max_bytes`` of file data or :data:`MAX_ENTRIES` entries is
    ResourceExhausted. Any other failure of an entry (a hard link to nothing
    or to a directory, a name too long, a NUL in a name, a symlink loop) is
    InvalidArgument naming the entry.
    """
    total = 0
    for count, m in enumerate(tf, 1):
        if count > MAX_ENTRIES:
            raise errors.ResourceExhausted(f"{what}: more than {MAX_ENTRIES} entries")
        name = m.name.lstrip("/")
        if ".." in name.split("/") or (m.name.startswith("/") and not absolute_ok):
            raise errors.InvalidArgument(f"{what}: entry {m.name!r} points outside the target")
        if m.ischr() or m.isblk():
            raise errors.InvalidArgument(f"{what}: device node {m.name!r} refused")
        if not (m.isdir() or m.issym() or m.islnk() or m.isreg()):
            continue  # FIFOs and the like
        if not name.strip("/").strip("."):
            continue
        if m.isreg():
            total += m.size
            if total > max_bytes:
                raise errors.ResourceExhausted(f"{what}: expands past {max_bytes} bytes")
        try:
            _extract_one(tf, m, name, dst_root, owner or Owner(m.uid, m.gid))
        except (OSError, ValueError, errors.InvalidArgument) as e:
            reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
            raise errors.InvalidArgument(f"{what}: entry {m.name!r}: {reason}") from None


def _extract_one(
    tf: tarfile.TarFile, m: tarfile.TarInfo, name: str, dst_root: int, own: Owner
) -> None:
    parent, base = resolve(dst_root, name, create=own, follow_last=False)
    try:
        if not base:
            return
        if m.isdir():
            os.close(ensure_dir(parent, base, mode=m.mode, owner=own, mtime=m.mtime, existing=True))
        elif m.issym():
            write_symlink(parent, base, m.linkname, owner=own, mtime=m.mtime)
        elif m.islnk():
            link = m.linkname.lstrip("/")
            if ".." in link.split("/"):
                raise errors.InvalidArgument(f"hard link to {m.linkname!r} points outside")
            lfd, lname = resolve(dst_root, link, follow_last=False)
            try:
                if not lname:
                    raise errors.InvalidArgument("hard link to the root")
                _clear(parent, base, keep_dir=False)
                os.link(lname, base, src_dir_fd=lfd, dst_dir_fd=parent, follow_symlinks=False)
            finally:
                os.close(lfd)
        elif m.isreg():
            src = tf.extractfile(m)
            assert src is not None
            write_file(parent, base, src, mode=m.mode, owner=own, mtime=m.mtime)
    finally:
        os.close(parent)
