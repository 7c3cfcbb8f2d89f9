"""The one module that calls mount(2) and umount2(2) (through libc, with ctypes).

A :class:`~seacan.snapshots.Mount` list is what snapshotters hand out; this
module turns it into system calls the way containerd's ``mount`` package does:

- options are split into mount flags (``ro``, ``rbind``, ``nosuid``, ...) and
  the filesystem's data string (``lowerdir=...,upperdir=...``);
- a read-only bind mount is made in two steps (bind, then remount ``ro``),
  since the kernel ignores ``MS_RDONLY`` on the first bind;
- an overlay whose options would not fit in one page is shortened: the
  common directory of the ``lowerdir`` entries is cut off and the mount is
  made from a child process that runs in that directory (chdir is
  process-wide, so the caller's threads never see it).

Errors are kinds (:mod:`seacan.errors`), never ``OSError``::

    EPERM/EACCES -> PermissionDenied   ENOENT/ENOTDIR -> NotFound
    EBUSY        -> Unavailable        ENODEV         -> NotImplemented_
    EINVAL       -> InvalidArgument    anything else  -> Internal

Usage::

    mount_all(mounts, rootfs)             # raises; nothing stays mounted on failure
    try:
        ...
    finally:
        unmount(rootfs)                   # everything stacked on rootfs

    with with_temp_mount(mounts) as root:       # or: async with with_temp_mount(mounts)
        data = (root / "etc/passwd").read_bytes()
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import os
import posixpath
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from seacan import errors, log
from seacan.snapshots import Mount

_log = log.get(__name__)

MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_SYNCHRONOUS = 0x10
MS_REMOUNT = 0x20
MS_MANDLOCK = 0x40
MS_DIRSYNC = 0x80
MS_NOATIME = 0x400
MS_NODIRATIME = 0x800
MS_BIND = 0x1000
MS_REC = 0x4000
MS_SILENT = 0x8000
MS_UNBINDABLE = 0x20000
MS_PRIVATE = 0x40000
MS_SLAVE = 0x80000
MS_SHARED = 0x100000
MS_RELATIME = 0x200000
MS_STRICTATIME = 0x1000000
MNT_DETACH = 0x2

PROPAGATION = MS_SHARED | MS_PRIVATE | MS_SLAVE | MS_UNBINDABLE
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")

# option -> (clears the flag instead of setting it, flag); as containerd's parseMountOptions.
_FLAGS: dict[str, tuple[bool, int]] = {
    "async": (True, MS_SYNCHRONOUS),
    "atime": (True, MS_NOATIME),
    "bind": (False, MS_BIND),
    "defaults": (False, 0),
    "dev": (True, MS_NODEV),
    "diratime": (True, MS_NODIRATIME),
    "dirsync": (False, MS_DIRSYNC),
    "exec": (True, MS_NOEXEC),
    "mand": (False, MS_MANDLOCK),
    "noatime": (False, MS_NOATIME),
    "nodev": (False, MS_NODEV),
    "nodiratime": (False, MS_NODIRATIME),
    "noexec": (False, MS_NOEXEC),
    "nomand": (True, MS_MANDLOCK),
    "norelatime": (True, MS_RELATIME),
    "nostrictatime": (True, MS_STRICTATIME),
    "nosuid": (False, MS_NOSUID),
    "rbind": (False, MS_BIND | MS_REC),
    "relatime": (False, MS_RELATIME),
    "remount": (False, MS_REMOUNT),
    "ro": (False, MS_RDONLY),
    "rw": (True, MS_RDONLY),
    "strictatime": (False, MS_STRICTATIME),
    "suid": (True, MS_NOSUID),
    "sync": (False, MS_SYNCHRONOUS),
    "private": (False, MS_PRIVATE),
    "rprivate": (False, MS_PRIVATE | MS_REC),
    "shared": (False, MS_SHARED),
    "rshared": (False, MS_SHARED | MS_REC),
    "slave": (False, MS_SLAVE),
    "rslave": (False, MS_SLAVE | MS_REC),
    "unbindable": (False, MS_UNBINDABLE),
    "runbindable": (False, MS_UNBINDABLE | MS_REC),
}

_KINDS: dict[int, type[errors.SeacanError]] = {
    errno.EPERM: errors.PermissionDenied,
    errno.EACCES: errors.PermissionDenied,
    errno.ENOENT: errors.NotFound,
    errno.ENOTDIR: errors.NotFound,
    errno.EBUSY: errors.Unavailable,
    errno.ENODEV: errors.NotImplemented_,
    errno.EINVAL: errors.InvalidArgument,
}

# Run by the child that mounts from another working directory (argv: source
# target fstype flags data); on failure it prints the errno and exits 1.
_CHILD = """\
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
a = [os.fsencode(x) for x in sys.argv[1:]]
if libc.mount(a[0], a[1], a[2], ctypes.c_ulong(int(a[3])), a[4] or None) != 0:
    print(ctypes.get_errno())
    sys.exit(1)
"""

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_ulong,
    ctypes.c_char_p,
]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]


def _error(what: str, err: int) -> errors.SeacanError:
    return _KINDS.get(err, errors.Internal)(f"{what}: {os.strerror(err).lower()}")


def parse_options(options: Sequence[str]) -> tuple[int, str]:
    """Mount flags and the data string for ``options`` (unknown options are data)."""
    flags = 0
    data: list[str] = []
    for opt in options:
        known = _FLAGS.get(opt)
        if known is None:
            data.append(opt)
            continue
        clear, flag = known
        if clear:
            flags &= ~flag
        else:
            flags |= flag
    return flags, ",".join(data)


def compact_lowerdir(options: Sequence[str]) -> tuple[str, list[str]]:
    """``(chdir, options)`` with ``lowerdir`` made relative to its entries' common directory.

    ``chdir`` is "" (and the options unchanged) when nothing can be cut. The
    ``lowerdir`` option moves to the end, as containerd's compactLowerdirOption does.
    """
    idx = next((i for i, o in enumerate(options) if o.startswith("lowerdir=")), -1)
    if idx < 0:
        return "", list(options)
    dirs = options[idx].removeprefix("lowerdir=").split(":")
    if len(dirs) < 2:
        return "", list(options)
    # Character-wise on purpose, then back to a directory: containerd's longestCommonPrefix.
    common = posixpath.dirname(os.path.commonprefix(dirs))  # noqa: RUF071
    if common in ("", "/"):
        return "", list(options)
    common += "/"
    rest = [o for i, o in enumerate(options) if i != idx]
    return common, [*rest, "lowerdir=" + ":".join(d[len(common) :] for d in dirs)]


def _mount(source: str, target: str, fstype: str, flags: int, data: str) -> None:
    rc = _libc.mount(
        os.fsencode(source) if source else None,
        os.fsencode(target),
        os.fsencode(fstype) if fstype else None,
        flags,
        os.fsencode(data) if data else None,
    )
    if rc != 0:
        err = ctypes.get_errno()
        raise _error(f"mount {fstype or 'remount'} {source} on {target}", err)


def _mount_in(chdir: str, source: str, target: str, fstype: str, flags: int, data: str) -> None:
    argv = [sys.executable, "-I", "-S", "-c", _CHILD, source, target, fstype, str(flags), data]
    try:
        proc = subprocess.run(argv, cwd=chdir, capture_output=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise errors.Internal(f"mount {fstype} {source} on {target} from {chdir}: {e}") from e
    if proc.returncode != 0:
        what = f"mount {fstype} {source} on {target} (in {chdir})"
        out = proc.stdout.decode(errors="replace").strip()
        if out.isdigit():
            raise _error(what, int(out))
        tail = proc.stderr.decode(errors="replace").strip()[-500:]
        raise errors.Internal(f"{what}: exit status {proc.returncode}: {tail}")


def mount(m: Mount, target: Path) -> None:
    """Mount one :class:`Mount` on ``target`` (an existing directory)."""
    options: Sequence[str] = m.options
    chdir = ""
    dest = str(target.absolute())
    if m.type == "overlay" and len(",".join(options)) >= PAGE_SIZE - 512:
        chdir, options = compact_lowerdir(options)
    flags, data = parse_options(options)
    if len(data) > PAGE_SIZE:
        raise errors.InvalidArgument(f"mount {m.type} on {dest}: mount options is too long")
    oflags = flags & ~PROPAGATION
    if not flags & MS_REMOUNT or data:
        if chdir:
            _mount_in(chdir, m.source, dest, m.type, oflags, data)
        else:
            _mount(m.source, dest, m.type, oflags, data)
    if flags & PROPAGATION:
        _mount("", dest, "", flags & (PROPAGATION | MS_REC | MS_SILENT), "")
    if oflags & (MS_BIND | MS_RDONLY) == MS_BIND | MS_RDONLY:
        _mount("", dest, "", oflags | MS_REMOUNT, "")  # a bind is read-only only after a remount


def mount_all(mounts: Sequence[Mount], target: Path) -> None:
    """Mount each of ``mounts`` on ``target``, in order; on failure, undo and raise."""
    done = 0
    try:
        for m in mounts:
            mount(m, target)
            done += 1
    except BaseException:
        if done:
            with contextlib.suppress(errors.SeacanError):
                unmount(target)
        raise
    _log.debug("mount.mounted", target=str(target), mounts=len(mounts))


def unmount(target: Path, *, lazy: bool = False) -> None:
    """Unmount everything stacked on ``target``; nothing mounted there is not an error.

    A busy mount is retried for a few seconds (as containerd does); ``lazy``
    detaches it instead (MNT_DETACH), which never fails for being busy.
    """
    path = os.fsencode(str(target))
    flags = MNT_DETACH if lazy else 0
    busy = 0
    while True:
        if _libc.umount2(path, flags) == 0:
            busy = 0
            continue
        err = ctypes.get_errno()
        if err in (errno.EINVAL, errno.ENOENT):  # not (or no longer) a mount point
            return
        if err == errno.EBUSY and busy < 50:
            busy += 1
            time.sleep(0.05)
            continue
        raise _error(f"unmount {target}", err)


class TempMount:
    """Mounts on a fresh temporary directory for the duration of a ``with`` block.

    Works with ``with`` and ``async with`` (the latter mounts in a thread).
    The directory is removed after a successful unmount, and only then.
    """

    def __init__(self, mounts: Sequence[Mount], parent: Path | None = None) -> None:
        self._mounts = tuple(mounts)
        self._parent = parent
        self._dir: Path | None = None

    def __enter__(self) -> Path:
        try:
            d = Path(tempfile.mkdtemp(prefix="seacan-mount-", dir=self._parent))
        except OSError as e:
            raise errors.Internal(f"temporary mount point: {e}") from e
        try:
            mount_all(self._mounts, d)
        except BaseException:
            with contextlib.suppress(OSError):
                d.rmdir()
            raise
        self._dir = d
        return d

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        d, self._dir = self._dir, None
        if d is None:
            return
        unmount(d)
        try:
            d.rmdir()  # rmdir, never rmtree: a directory still mounted must not be emptied
        except OSError as e:
            _log.warning("mount.temp_dir_left", path=str(d), error=str(e))

    async def __aenter__(self) -> Path:
        return await asyncio.to_thread(self.__enter__)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await asyncio.to_thread(self.__exit__, exc_type, exc, tb)


CLONE_NEWNS = 0x00020000


def private_mount_namespace() -> None:
    """Move this process into a mount namespace of its own, where the host's mounts
    propagate in (``rslave``) and none of ours propagate out: a temporary mount
    made here dies with the process, even under ``kill -9``. Call it first thing,
    before any thread starts (``unshare`` moves only the calling thread)."""
    _libc.unshare.argtypes = [ctypes.c_int]
    if _libc.unshare(CLONE_NEWNS) != 0:
        raise _error("unshare(CLONE_NEWNS)", ctypes.get_errno())
    _mount("none", "/", "", MS_SLAVE | MS_REC, "")


def with_temp_mount(mounts: Sequence[Mount], parent: Path | None = None) -> TempMount:
    """``with with_temp_mount(mounts) as root:`` (or ``async with``); see :class:`TempMount`."""
    return TempMount(mounts, parent)


__all__ = [
    "TempMount",
    "compact_lowerdir",
    "mount",
    "mount_all",
    "parse_options",
    "private_mount_namespace",
    "unmount",
    "with_temp_mount",
]
