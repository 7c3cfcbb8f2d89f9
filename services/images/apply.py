"""Diff.Apply: unpack a layer blob into the directory a snapshot's mounts name.

The security-critical part of the images service. A layer is hostile input;
whatever it holds, nothing is written outside the target directory:

- entry names are cleaned lexically; an absolute name, a name that climbs
  out with ``..``, a NUL byte or an overlong name is refused;
- every parent directory is resolved one component at a time from an open
  directory fd (``O_NOFOLLOW``); a symlink met on the way is followed only
  while it stays inside the root (absolute targets restart at the root, as
  in the container), and refused when it would leave it;
- files are created with ``O_CREAT|O_EXCL|O_NOFOLLOW`` relative to that fd,
  so no symlink is ever written through;
- hard links must name a regular file already inside the root;
- device nodes are refused (the only ones made are overlay whiteouts);
- the uncompressed stream is hashed (the diff ID) and stops at
  ``limits.max_layer_bytes`` (decompression bombs).

Refusals are InvalidArgument naming the layer and the entry, e.g.
``layer sha256:ab...: entry "../etc/x": path escapes the root``. A layer
refused midway leaves a partly written snapshot, inside the root only; the
caller removes the snapshot.

Targets (as containerd's walking applier):

- one overlay mount with an ``upperdir``: the layer goes straight into the
  upper directory; ``.wh.X`` becomes a 0:0 character device ``X`` and
  ``.wh..wh..opq`` the xattr ``trusted.overlay.opaque=y``; a missing parent
  directory copies its metadata from the lower layers;
- one bind mount: the layer goes into its source; there is no lower layer,
  so ``.wh.X`` deletes ``X`` and an opaque marker deletes what this layer did
  not put in the directory;
- anything else is mounted on a temporary directory (:mod:`seacan.mount`)
  and unpacked there like a bind mount.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
import posixpath
import shutil
import stat
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from seacan import content, errors, log, oci
from seacan.mount import with_temp_mount
from seacan.snapshots import Mount

from . import bridge, tario
from .tario import Kind, Member

_log = log.get(__name__)

WHITEOUT_PREFIX = ".wh."
WHITEOUT_META_PREFIX = ".wh..wh."
WHITEOUT_OPAQUE = ".wh..wh..opq"
OPAQUE_XATTR = "trusted.overlay.opaque"
OVERLAY_XATTR_PREFIX = "trusted.overlay."

PATH_MAX = 4096
NAME_MAX = 255
MAX_SYMLINKS = 40  # as the kernel's ELOOP limit
_DIR_CACHE = 64  # directory fds kept open while unpacking
_COPY = 1 << 20

_DIR_FLAGS = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC

_libc = ctypes.CDLL(None, use_errno=True)


def _quote(name: str) -> str:
    """``"name"`` for messages, escaped as Go's ``%q`` would: a byte that is not
    UTF-8 (tarfile hands it over as a surrogate escape) shows as ``\\xff``."""
    out = []
    for ch in name:
        o = ord(ch)
        if 0xDC80 <= o <= 0xDCFF:
            out.append(f"\\x{o - 0xDC00:02x}")
        elif ch in '"\\':
            out.append("\\" + ch)
        elif o < 0x20 or o == 0x7F:
            out.append(json.dumps(ch)[1:-1])
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


class RefusedError(Exception):
    """An entry the layer may not have; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def clean_name(name: str) -> tuple[str, ...]:
    """The components of an entry name inside the root; ``()`` is the root itself.

    Raises :class:`RefusedError` for NUL bytes, absolute names, names that climb
    out of the root, and names too long for the filesystem.
    """
    if "\0" in name:
        raise RefusedError("name contains a NUL byte")
    if name.startswith("/"):
        raise RefusedError("absolute path")
    if len(os.fsencode(name)) >= PATH_MAX:
        raise RefusedError(f"name longer than {PATH_MAX - 1} bytes")
    parts: list[str] = []
    for comp in name.split("/"):
        if comp in ("", "."):
            continue
        if comp == "..":
            if not parts:
                raise RefusedError("path escapes the root")
            parts.pop()
            continue
        if len(os.fsencode(comp)) > NAME_MAX:
            raise RefusedError(f"path component longer than {NAME_MAX} bytes")
        parts.append(comp)
    return tuple(parts)


@dataclass(frozen=True, slots=True)
class Target:
    """Where a layer goes: ``root``, and whether it is an overlay upper directory."""

    root: str
    overlay: bool = False
    lowers: tuple[str, ...] = ()


def plan_target(mounts: Sequence[Mount]) -> Target | None:
    """The directory to unpack into; None when the mounts must be mounted first."""
    if len(mounts) != 1:
        if not mounts:
            raise errors.InvalidArgument("no mounts to apply the layer to")
        return None
    m = mounts[0]
    if m.type == "overlay":
        upper = ""
        lowers: tuple[str, ...] = ()
        for opt in m.options:
            key, _, value = opt.partition("=")
            if key == "upperdir":
                upper = value
            elif key == "lowerdir":
                lowers = tuple(value.split(":"))
        if not upper:
            raise errors.InvalidArgument("overlay mount has no upperdir: it is read-only")
        if not posixpath.isabs(upper) or not all(posixpath.isabs(d) for d in lowers):
            return None  # compacted relative paths: let mount(2) resolve them
        return Target(upper, overlay=True, lowers=lowers)
    if m.type in ("bind", "rbind") or "bind" in m.options or "rbind" in m.options:
        if "ro" in m.options:
            raise errors.InvalidArgument(f"bind mount of {m.source} is read-only")
        if not posixpath.isabs(m.source):
            raise errors.InvalidArgument(f"bind mount source {m.source!r} is not absolute")
        return Target(m.source)
    return None


class _Dir:
    __slots__ = ("fd", "real")

    def __init__(self, fd: int, real: tuple[str, ...]) -> None:
        self.fd = fd
        self.real = real


class Extractor:
    """Writes tar members under ``target.root``; blocking, one layer per instance.

    Call :meth:`add` for each member in archive order, then :meth:`finish`
    (sets directory times, syncs the filesystem); :meth:`close` always.
    Raises :class:`RefusedError` for a bad entry and OSError for I/O failures;
    :func:`extract` names the layer and the entry.
    """

    def __init__(self, target: Target, *, sync: bool = True) -> None:
        self._target = target
        self._sync = sync
        self._root = os.open(target.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        self._dirs: OrderedDict[tuple[str, ...], _Dir] = OrderedDict()
        # fds dropped from the cache while an entry may still use them; closed after it
        self._retired: list[int] = []
        self._dir_times: dict[tuple[str, ...], int] = {}
        self._unpacked: set[tuple[str, ...]] = set()
        self._chown = os.geteuid() == 0

    def close(self) -> None:
        self._forget_dirs()
        self._close_retired()
        if self._root >= 0:
            os.close(self._root)
            self._root = -1

    # -- directory resolution --------------------------------------------------

    def _forget_dirs(self) -> None:
        """Drop every cached directory (after a removal, resolutions may differ)."""
        self._retired.extend(d.fd for d in self._dirs.values())
        self._dirs.clear()

    def _close_retired(self) -> None:
        for fd in self._retired:
            os.close(fd)
        self._retired.clear()

    def _remember(self, parts: tuple[str, ...], d: _Dir) -> None:
        self._dirs[parts] = d
        while len(self._dirs) > _DIR_CACHE:
            _, old = self._dirs.popitem(last=False)
            self._retired.append(old.fd)

    def _open_real(self, real: Sequence[str]) -> int:
        """An fd for a symlink-free path inside the root (the caller closes it)."""
        fd = os.dup(self._root)
        for comp in real:
            nfd = os.open(comp, _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = nfd
        return fd

    def _dir(self, parts: tuple[str, ...], *, create: bool) -> _Dir | None:
        """The directory ``parts`` names, resolved inside the root.

        Missing directories are made when ``create`` (else None is returned).
        A symlink on the way is followed while it stays inside the root.
        """
        if not parts:
            return _Dir(self._root, ())
        hit = self._dirs.get(parts)
        if hit is not None:
            self._dirs.move_to_end(parts)
            return hit
        start, fd = 0, self._root
        real: tuple[str, ...] = ()
        for i in range(len(parts) - 1, 0, -1):
            prefix = self._dirs.get(parts[:i])
            if prefix is not None:
                start, fd, real = i, prefix.fd, prefix.real
                break
        owned = False
        path: list[str] = list(real)
        pending = list(reversed(parts[start:]))
        links = 0
        via = ""
        try:
            while pending:
                comp = pending.pop()
                if comp in ("", "."):
                    continue
                if comp == "..":
                    if not path:
                        raise RefusedError(f"path escapes the root through symbolic link {via}")
                    path.pop()
                    nfd = self._open_real(path)
                    if owned:
                        os.close(fd)
                    fd, owned = nfd, True
                    continue
                try:
                    nfd = os.open(comp, _DIR_FLAGS, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        return None
                    self._make_parent(fd, comp, (*path, comp))
                    nfd = os.open(comp, _DIR_FLAGS, dir_fd=fd)
                except OSError as e:
                    if e.errno not in (errno.ENOTDIR, errno.ELOOP):
                        raise
                    st = os.stat(comp, dir_fd=fd, follow_symlinks=False)
                    where = "/".join((*path, comp))
                    if not stat.S_ISLNK(st.st_mode):
                        raise RefusedError(f"{where} is not a directory") from None
                    links += 1
                    if links > MAX_SYMLINKS:
                        raise RefusedError("too many levels of symbolic links") from None
                    link = os.readlink(comp, dir_fd=fd)
                    via = _quote(where)
                    if link.startswith("/"):
                        if owned:
                            os.close(fd)
                        fd, owned, path = self._root, False, []
                    pending.extend(reversed(link.split("/")))
                    continue
                if owned:
                    os.close(fd)
                fd, owned = nfd, True
                path.append(comp)
            if not owned:
                fd, owned = os.dup(fd), True
            d = _Dir(fd, tuple(path))
            owned = False
            self._remember(parts, d)
            return d
        finally:
            if owned:
                os.close(fd)

    def _make_parent(self, parent_fd: int, name: str, real: tuple[str, ...]) -> None:
        """A directory the layer did not list: like the lower layer's, else 0755 root."""
        os.mkdir(name, 0o755, dir_fd=parent_fd)
        st = self._lower_dir(real)
        if st is None:
            os.chmod(name, 0o755, dir_fd=parent_fd)  # whatever the umask
            return
        if self._chown:
            os.chown(name, st.st_uid, st.st_gid, dir_fd=parent_fd, follow_symlinks=False)
        os.chmod(name, stat.S_IMODE(st.st_mode), dir_fd=parent_fd)
        self._dir_times[real] = st.st_mtime_ns

    def _lower_dir(self, real: tuple[str, ...]) -> os.stat_result | None:
        for lower in self._target.lowers:
            try:
                fd = os.open(lower, _DIR_FLAGS)
            except OSError:
                continue
            try:
                for comp in real[:-1]:
                    nfd = os.open(comp, _DIR_FLAGS, dir_fd=fd)
                    os.close(fd)
                    fd = nfd
                st = os.stat(real[-1], dir_fd=fd, follow_symlinks=False)
            except OSError:
                continue  # not in this lower layer (or not a directory path there)
            finally:
                os.close(fd)
            return st if stat.S_ISDIR(st.st_mode) else None
        return None

    # -- removal -----------------------------------------------------------------

    def _remove(self, parent_fd: int, name: str) -> bool:
        """Remove ``name`` (a whole tree if a directory); whether it existed."""
        try:
            st = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
        except FileNotFoundError:
            return False
        if stat.S_ISDIR(st.st_mode):
            shutil.rmtree(name, dir_fd=parent_fd)
            self._forget_dirs()
        else:
            os.unlink(name, dir_fd=parent_fd)
            if stat.S_ISLNK(st.st_mode):
                self._forget_dirs()
        return True

    def _make_room(self, parent_fd: int, name: str) -> None:
        """Clear the way for a non-directory ``name``."""
        self._remove(parent_fd, name)

    # -- metadata ----------------------------------------------------------------

    def _xattrs(self, path_or_fd: int | str, m: Member, *, follow: bool = True) -> None:
        for key, value in m.xattrs.items():
            if key.startswith(OVERLAY_XATTR_PREFIX):
                _log.warning("apply.xattr_skipped", entry=m.name, xattr=key)
                continue
            try:
                os.setxattr(path_or_fd, key, value, follow_symlinks=follow)
            except OSError as e:
                if e.errno not in (errno.ENOTSUP, errno.EPERM):
                    raise
                _log.debug("apply.xattr_unsupported", entry=m.name, xattr=key, error=str(e))

    def _owner_mode(self, fd: int, m: Member) -> None:
        if self._chown:
            os.fchown(fd, m.uid, m.gid)
        os.fchmod(fd, m.mode & 0o7777)  # after chown, which clears setuid bits

    # -- entries -----------------------------------------------------------------

    def add(self, m: Member, data: tario.Data | None) -> None:
        try:
            self._add(m, data)
        finally:
            self._close_retired()

    def _add(self, m: Member, data: tario.Data | None) -> None:
        parts = clean_name(m.name)
        base = parts[-1] if parts else ""
        if base.startswith(WHITEOUT_PREFIX):
            self._whiteout(parts[:-1], base, m)
            return
        if m.kind in (Kind.CHAR, Kind.BLOCK):
            dev = f"{m.kind.value} {m.devmajor}:{m.devminor}"
            raise RefusedError(f"device nodes are not allowed ({dev})")
        if not parts:
            if m.kind is not Kind.DIR:
                raise RefusedError(f"the root must be a directory, not a {m.kind.value}")
            self._owner_mode(self._root, m)
            self._xattrs(self._root, m)
            self._dir_times[()] = m.mtime_ns
            return
        parent = self._dir(parts[:-1], create=True)
        assert parent is not None
        if not self._target.overlay:
            self._unpacked.add(parts)  # what an opaque marker must keep
        if m.kind is Kind.DIR:
            self._directory(parent.fd, base, parts, m)
        elif m.kind is Kind.FILE:
            self._file(parent.fd, base, m, data)
        elif m.kind is Kind.SYMLINK:
            self._symlink(parent.fd, base, m)
        elif m.kind is Kind.HARDLINK:
            self._hardlink(parent.fd, base, m)
        elif m.kind is Kind.FIFO:
            self._fifo(parent.fd, base, m)

    def _directory(self, pfd: int, base: str, parts: tuple[str, ...], m: Member) -> None:
        try:
            st = os.stat(base, dir_fd=pfd, follow_symlinks=False)
        except FileNotFoundError:
            st = None
        if st is not None and not stat.S_ISDIR(st.st_mode):
            self._remove(pfd, base)
            st = None
        if st is None:
            os.mkdir(base, 0o700, dir_fd=pfd)
        fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=pfd)
        try:
            self._owner_mode(fd, m)
            self._xattrs(fd, m)
        finally:
            os.close(fd)
        self._dir_times[parts] = m.mtime_ns

    def _file(self, pfd: int, base: str, m: Member, data: tario.Data | None) -> None:
        try:
            fd = os.open(base, _NEW_FILE, 0o600, dir_fd=pfd)
        except FileExistsError:
            self._make_room(pfd, base)
            fd = os.open(base, _NEW_FILE, 0o600, dir_fd=pfd)
        try:
            if data is not None and m.size:
                while chunk := data.read(_COPY):
                    view = memoryview(chunk)
                    while view:
                        view = view[os.write(fd, view) :]
            self._owner_mode(fd, m)
            self._xattrs(fd, m)
            os.utime(fd, ns=(m.mtime_ns, m.mtime_ns))
        finally:
            os.close(fd)

    def _symlink(self, pfd: int, base: str, m: Member) -> None:
        if "\0" in m.linkname:
            raise RefusedError("symlink target contains a NUL byte")
        if not m.linkname or len(os.fsencode(m.linkname)) >= PATH_MAX:
            raise RefusedError("symlink target is empty or too long")
        try:
            os.symlink(m.linkname, base, dir_fd=pfd)
        except FileExistsError:
            self._make_room(pfd, base)
            os.symlink(m.linkname, base, dir_fd=pfd)
        if self._chown:
            os.chown(base, m.uid, m.gid, dir_fd=pfd, follow_symlinks=False)
        if m.xattrs:
            self._xattrs(f"/proc/self/fd/{pfd}/{base}", m, follow=False)
        os.utime(base, ns=(m.mtime_ns, m.mtime_ns), dir_fd=pfd, follow_symlinks=False)

    def _hardlink(self, pfd: int, base: str, m: Member) -> None:
        if m.linkname.startswith("/"):
            raise RefusedError(f"hard link target {_quote(m.linkname)} is an absolute path")
        try:
            target = clean_name(m.linkname)
        except RefusedError as e:
            raise RefusedError(f"hard link target {_quote(m.linkname)}: {e.reason}") from None
        if not target:
            raise RefusedError("hard link to the root directory")
        tdir = self._dir(target[:-1], create=False)
        st: os.stat_result | None = None
        if tdir is not None:
            with contextlib.suppress(FileNotFoundError):
                st = os.stat(target[-1], dir_fd=tdir.fd, follow_symlinks=False)
        if tdir is None or st is None:
            raise RefusedError(f"hard link target {_quote(m.linkname)} not found in the layer")
        if not stat.S_ISREG(st.st_mode):
            raise RefusedError(f"hard link target {_quote(m.linkname)} is not a regular file")
        try:
            os.link(target[-1], base, src_dir_fd=tdir.fd, dst_dir_fd=pfd, follow_symlinks=False)
        except FileExistsError:
            here = os.stat(base, dir_fd=pfd, follow_symlinks=False)
            if (here.st_dev, here.st_ino) == (st.st_dev, st.st_ino):
                return  # already that file
            self._make_room(pfd, base)
            os.link(target[-1], base, src_dir_fd=tdir.fd, dst_dir_fd=pfd, follow_symlinks=False)

    def _fifo(self, pfd: int, base: str, m: Member) -> None:
        self._make_room(pfd, base)
        os.mkfifo(base, 0o600, dir_fd=pfd)
        if self._chown:
            os.chown(base, m.uid, m.gid, dir_fd=pfd, follow_symlinks=False)
        os.chmod(base, m.mode & 0o7777, dir_fd=pfd)  # the fifo just made: nothing to follow
        if m.xattrs:
            self._xattrs(f"/proc/self/fd/{pfd}/{base}", m, follow=False)
        os.utime(base, ns=(m.mtime_ns, m.mtime_ns), dir_fd=pfd, follow_symlinks=False)

    def _whiteout(self, dir_parts: tuple[str, ...], base: str, m: Member) -> None:
        if base == WHITEOUT_OPAQUE:
            self._opaque(dir_parts)
            return
        if base.startswith(WHITEOUT_META_PREFIX):
            return  # aufs bookkeeping (.wh..wh.plnk and friends): not content
        name = base[len(WHITEOUT_PREFIX) :]
        if name in ("", ".", ".."):
            raise RefusedError("whiteout of an invalid name")
        if self._target.overlay:
            parent = self._dir(dir_parts, create=True)
            assert parent is not None
            self._make_room(parent.fd, name)
            os.mknod(name, stat.S_IFCHR | 0o000, os.makedev(0, 0), dir_fd=parent.fd)
            if self._chown:
                os.chown(name, m.uid, m.gid, dir_fd=parent.fd, follow_symlinks=False)
            return
        parent = self._dir(dir_parts, create=False)
        if parent is not None:
            self._remove(parent.fd, name)

    def _opaque(self, dir_parts: tuple[str, ...]) -> None:
        if self._target.overlay:
            parent = self._dir(dir_parts, create=True)
            assert parent is not None
            os.setxattr(f"/proc/self/fd/{parent.fd}", OPAQUE_XATTR, b"y")
            return
        parent = self._dir(dir_parts, create=False)
        if parent is None:
            return
        fd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=parent.fd)
        try:
            names = os.listdir(fd)
        finally:
            os.close(fd)
        for name in sorted(names):
            if (*dir_parts, name) not in self._unpacked:
                self._remove(parent.fd, name)

    # -- the end -----------------------------------------------------------------

    def finish(self) -> None:
        """Directory times (deepest first, after their contents), then one syncfs."""
        for parts in sorted(self._dir_times, key=len, reverse=True):
            ns = self._dir_times[parts]
            if not parts:
                os.utime(self._root, ns=(ns, ns))
                continue
            parent = self._dir(parts[:-1], create=False)
            if parent is None:
                continue  # removed by a later entry
            try:
                os.utime(parts[-1], ns=(ns, ns), dir_fd=parent.fd, follow_symlinks=False)
            except FileNotFoundError:
                continue
        if self._sync and _libc.syncfs(self._root) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"syncfs: {os.strerror(err)}")


def _entry_error(layer: str, name: str, e: BaseException) -> errors.SeacanError:
    prefix = f"layer {layer}: entry {_quote(name)}"
    if isinstance(e, RefusedError):
        return errors.InvalidArgument(f"{prefix}: {e.reason}")
    assert isinstance(e, OSError)
    what = e.strerror or str(e)
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        return errors.ResourceExhausted(f"{prefix}: {what}")
    if e.errno in (
        errno.ENAMETOOLONG,
        errno.ELOOP,
        errno.ENOTDIR,
        errno.EISDIR,
        errno.EEXIST,
        errno.ENOTEMPTY,
        errno.EINVAL,
    ):
        return errors.InvalidArgument(f"{prefix}: {what}")
    return errors.Internal(f"{prefix}: {what}")


def extract(
    source: tario.Source,
    target: Target,
    *,
    layer: str,
    declared: str,
    limit: int,
    sync: bool = True,
) -> tuple[str, int]:
    """Unpack the layer stream ``source`` into ``target``; (diff ID, uncompressed size).

    Blocking. ``layer`` names the blob in errors; ``declared`` is the
    compression its media type states ("" lets the magic bytes decide).
    """
    try:
        reader = tario.LayerReader(source, declared, limit)
        ex = Extractor(target, sync=sync)
    except tario.CorruptError as e:
        raise errors.InvalidArgument(f"layer {layer}: corrupt: {e}") from None
    except OSError as e:
        raise errors.Internal(f"layer {layer}: open {target.root}: {e.strerror}") from None
    name = ""
    try:
        for m, data in tario.members(reader):
            name = m.name
            if m.size > limit:
                raise tario.TooLargeError(f"entry {_quote(name)}: size {m.size} exceeds the limit")
            try:
                ex.add(m, data)
            except (RefusedError, OSError) as e:
                raise _entry_error(layer, name, e) from None
        name = ""
        try:
            ex.finish()
        except OSError as e:
            raise errors.Internal(f"layer {layer}: {e.strerror or e}") from None
    except tario.TooLargeError as e:
        raise errors.InvalidArgument(f"layer {layer}: {e}") from None
    except tario.CorruptError as e:
        near = f" near entry {_quote(name)}" if name else ""
        raise errors.InvalidArgument(f"layer {layer}: corrupt{near}: {e}") from None
    finally:
        ex.close()
    return reader.digest, reader.size


class Applier:
    """Diff.Apply over a content provider (the remote content store in the service)."""

    def __init__(
        self, provider: content.Provider, *, max_layer_bytes: int, sync: bool = True
    ) -> None:
        self._provider = provider
        self._limit = max_layer_bytes
        self._sync = sync

    async def apply(
        self,
        desc: oci.Descriptor,
        mounts: Sequence[Mount],
        payloads: Mapping[str, Any] | None = None,
    ) -> oci.Descriptor:
        """Unpack ``desc`` onto ``mounts``; the applied descriptor (diff ID, size)."""
        oci.validate_digest(desc.digest, "layer")
        declared = oci.layer_compression(desc.media_type)
        if declared is None:
            raise errors.InvalidArgument(
                f"layer {desc.digest}: unsupported media type {desc.media_type!r}"
            )
        target = plan_target(mounts)
        started = time.monotonic()
        if target is not None:
            diff_id, size = await self._unpack(desc, target, declared)
        else:
            async with with_temp_mount(mounts) as root:
                diff_id, size = await self._unpack(desc, Target(str(root)), declared)
        _log.info(
            "diff.applied",
            layer=desc.digest,
            diff_id=diff_id,
            size=size,
            seconds=round(time.monotonic() - started, 3),
        )
        return oci.Descriptor(media_type=oci.OCI_LAYER, digest=diff_id, size=size)

    async def _unpack(self, desc: oci.Descriptor, target: Target, declared: str) -> tuple[str, int]:
        def work(get: Callable[[], bytes]) -> tuple[str, int]:
            return extract(
                get,
                target,
                layer=desc.digest,
                declared=declared,
                limit=self._limit,
                sync=self._sync,
            )

        return await bridge.run_reading(self._provider.read(desc.digest), work)
