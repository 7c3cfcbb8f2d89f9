"""Copy-up: an image's directory into an empty volume, as Docker fills new volumes.

The image is hostile input. Every name is opened relative to its parent's
file descriptor with ``O_NOFOLLOW``, so no symlink in the image is ever
followed out of it: the mount path itself is resolved *inside* the rootfs
(a symlink component is re-read relative to the rootfs, as a chroot would),
and within the copied tree symlinks are copied as symlinks. Ownership,
modes, times, symlinks, FIFOs and hard links (within the copied tree) are
preserved; device nodes are not copied (layers may not carry them either,
and a volume's directory is reachable from the host);
then the volume's own directory takes the owner and mode of the source
directory (Docker's ``copyOwnership``).

Synchronous (run it in a thread); errors leave as :mod:`seacan.errors` kinds.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import stat
from collections.abc import Iterator

from seacan import errors

MAX_SYMLINKS = 40
TMP_PREFIX = ".seacan-copyup-"
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


@contextlib.contextmanager
def _fd(fd: int) -> Iterator[int]:
    try:
        yield fd
    finally:
        os.close(fd)


def resolve_in_root(root_fd: int, path: str) -> int | None:
    """An open directory fd for ``path`` resolved inside ``root_fd`` (None: no such directory)."""
    todo = [p for p in path.split("/") if p not in ("", ".")]
    todo.reverse()
    stack = [os.dup(root_fd)]  # stack[-1] is the current directory; stack[0] the root
    links = 0
    try:
        while todo:
            part = todo.pop()
            if part == "..":
                if len(stack) > 1:
                    os.close(stack.pop())
                continue
            try:
                st = os.stat(part, dir_fd=stack[-1], follow_symlinks=False)
            except (FileNotFoundError, NotADirectoryError):
                return None
            if stat.S_ISLNK(st.st_mode):
                links += 1
                if links > MAX_SYMLINKS:
                    return None
                target = os.readlink(part, dir_fd=stack[-1])
                if target.startswith("/"):
                    while len(stack) > 1:
                        os.close(stack.pop())
                todo.extend(reversed([p for p in target.split("/") if p not in ("", ".")]))
                continue
            if not stat.S_ISDIR(st.st_mode):
                return None
            stack.append(os.open(part, _DIR, dir_fd=stack[-1]))
        return stack.pop()
    finally:
        for fd in stack:
            os.close(fd)


def _meta(name: str, st: os.stat_result, dir_fd: int, *, link: bool = False) -> None:
    os.chown(name, st.st_uid, st.st_gid, dir_fd=dir_fd, follow_symlinks=False)
    if not link:
        os.chmod(name, stat.S_IMODE(st.st_mode), dir_fd=dir_fd, follow_symlinks=True)
    os.utime(name, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=dir_fd, follow_symlinks=False)


class _Copier:
    def __init__(self, dest_root: int) -> None:
        self.dest_root = dest_root
        self.links: dict[tuple[int, int], str] = {}  # (dev, ino) -> path under the volume

    def tree(self, src: int, dst: int, rel: str) -> None:
        for name in sorted(os.listdir(src)):
            st = os.stat(name, dir_fd=src, follow_symlinks=False)
            path = f"{rel}/{name}" if rel else name
            mode = st.st_mode
            if stat.S_ISDIR(mode):
                os.mkdir(name, 0o700, dir_fd=dst)
                with (
                    _fd(os.open(name, _DIR, dir_fd=src)) as s,
                    _fd(os.open(name, _DIR, dir_fd=dst)) as d,
                ):
                    self.tree(s, d, path)
                _meta(name, st, dst)
                continue
            key = (st.st_dev, st.st_ino)
            if st.st_nlink > 1 and key in self.links:
                os.link(
                    self.links[key],
                    name,
                    src_dir_fd=self.dest_root,
                    dst_dir_fd=dst,
                    follow_symlinks=False,
                )
                continue
            if stat.S_ISREG(mode):
                self.file(src, dst, name)
                _meta(name, st, dst)
            elif stat.S_ISLNK(mode):
                os.symlink(os.readlink(name, dir_fd=src), name, dir_fd=dst)
                _meta(name, st, dst, link=True)
            elif stat.S_ISFIFO(mode):
                os.mknod(name, mode, dir_fd=dst)
                _meta(name, st, dst)
            else:
                continue  # device nodes are never copied; sockets mean nothing in a copy
            if st.st_nlink > 1:
                self.links[key] = path

    @staticmethod
    def file(src: int, dst: int, name: str) -> None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        with (
            _fd(os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=src)) as s,
            _fd(os.open(name, flags, 0o600, dir_fd=dst)) as d,
        ):
            while os.sendfile(d, s, None, 1 << 20) > 0:
                pass


def copy_up(rootfs: str, target: str, dest: str) -> bool:
    """Copy ``target`` (a path in the container) from ``rootfs`` into the empty ``dest``.

    False, copying nothing, when ``dest`` is not empty or the image has no
    directory at ``target``. The copy is made in a hidden directory inside
    ``dest`` and moved into place at the end, so a failed copy leaves
    ``dest`` empty (and a later use tries again).
    """
    tmp = TMP_PREFIX + secrets.token_hex(8)
    try:
        with _fd(os.open(dest, _DIR)) as dst:
            if os.listdir(dst):
                return False
            with _fd(os.open(rootfs, _DIR)) as root:
                src = resolve_in_root(root, target)
            if src is None:
                return False
            with _fd(src):
                os.mkdir(tmp, 0o700, dir_fd=dst)
                try:
                    with _fd(os.open(tmp, _DIR, dir_fd=dst)) as t:
                        _Copier(t).tree(src, t, "")
                        for name in os.listdir(t):
                            os.rename(name, name, src_dir_fd=t, dst_dir_fd=dst)
                    os.rmdir(tmp, dir_fd=dst)
                except BaseException:
                    shutil.rmtree(os.path.join(dest, tmp), ignore_errors=True)
                    raise
                st = os.fstat(src)
                os.fchown(dst, st.st_uid, st.st_gid)
                os.fchmod(dst, stat.S_IMODE(st.st_mode))
        return True
    except OSError as e:
        raise errors.Internal(f"copy {target} from the image into volume {dest}: {e}") from e
