"""Diff.Diff: a layer holding what changed from the ``lower`` mounts to the ``upper`` ones.

Two ways to find the changes, as containerd's differs:

- **overlay upper walk**: when ``upper`` is one overlay mount whose
  ``lowerdir`` stack is exactly what ``lower`` shows, its ``upperdir`` *is*
  the change set: it is walked as is, a 0:0 character device becomes the
  whiteout ``.wh.<name>`` and a directory marked ``trusted.overlay.opaque=y``
  gets a ``.wh..wh..opq`` entry;
- **tree comparison**: otherwise both sides are read-only directories (bind
  sources as they are, anything else temporarily mounted through
  :mod:`seacan.mount`) and compared: added and changed entries are written,
  removed ones become whiteouts, and every change brings its parent
  directories along.

The tar is deterministic: entries sorted by name within each directory,
numeric owners, whole-second times, PAX headers (xattrs as ``SCHILY.xattr.*``).
It is compressed as ``media_type`` asks (gzip by default) and written to the
content store with the label ``containerd.io/uncompressed=<diff ID>``.
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import BinaryIO

from seacan import content, errors, log, oci
from seacan.mount import with_temp_mount
from seacan.snapshots import Mount

from . import bridge, tario
from .apply import OPAQUE_XATTR, OVERLAY_XATTR_PREFIX, WHITEOUT_OPAQUE, WHITEOUT_PREFIX
from .tario import Kind, Member

_log = log.get(__name__)

COMPRESSION: dict[str, str] = {
    oci.OCI_LAYER: "",
    oci.OCI_LAYER_GZIP: "gzip",
    oci.OCI_LAYER_ZSTD: "zstd",
    oci.DOCKER_LAYER: "",
    oci.DOCKER_LAYER_GZIP: "gzip",
}
DEFAULT_MEDIA_TYPE = oci.OCI_LAYER_GZIP
MAX_DEPTH = 512

_RDIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_RFILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC

Add = Callable[[Member, BinaryIO | None], None]


# -- planning ------------------------------------------------------------------


def _overlay_dirs(m: Mount) -> tuple[str, list[str]]:
    upper, lowers = "", []
    for opt in m.options:
        key, _, value = opt.partition("=")
        if key == "upperdir":
            upper = value
        elif key == "lowerdir":
            lowers = value.split(":")
    return upper, lowers


def _stack(mounts: Sequence[Mount]) -> list[str] | None:
    """The layer directories a mount list shows, top first; None if unknown."""
    if not mounts:
        return []
    if len(mounts) != 1:
        return None
    m = mounts[0]
    if m.type == "overlay":
        upper, lowers = _overlay_dirs(m)
        return ([upper] if upper else []) + lowers
    if m.type in ("bind", "rbind") or "bind" in m.options or "rbind" in m.options:
        return [m.source]
    return None


def _bind_source(mounts: Sequence[Mount]) -> str | None:
    if len(mounts) == 1:
        m = mounts[0]
        if m.type in ("bind", "rbind") or "bind" in m.options or "rbind" in m.options:
            return m.source
    return None


def readonly(mounts: Sequence[Mount]) -> list[Mount]:
    """The same view, read-only: overlay uppers become the top lower (as containerd does)."""
    out = []
    for m in mounts:
        if m.type == "overlay":
            upper, lowers = _overlay_dirs(m)
            opts = [
                o
                for o in m.options
                if not o.startswith(("upperdir=", "workdir=", "lowerdir=")) and o != "rw"
            ]
            stack = ([upper] if upper else []) + lowers
            if len(stack) == 1:  # overlay needs two lowers: a bind does the same
                out.append(Mount("bind", stack[0], m.target, ("ro", "rbind")))
                continue
            out.append(Mount("overlay", m.source, m.target, (*opts, "lowerdir=" + ":".join(stack))))
        else:
            opts = [o for o in m.options if o not in ("rw", "ro")]
            out.append(Mount(m.type, m.source, m.target, (*opts, "ro")))
    return out


@dataclass(frozen=True, slots=True)
class Plan:
    """How to diff: walk ``upper_walk``, or compare ``left`` (None: empty) with ``right``."""

    upper_walk: str = ""
    left: str | None = None
    right: str = ""


# -- walking (blocking) --------------------------------------------------------


def _xattrs(dfd: int, name: str) -> dict[str, bytes]:
    path = f"/proc/self/fd/{dfd}/{name}"
    try:
        keys = os.listxattr(path, follow_symlinks=False)
    except OSError as e:
        if e.errno in (errno.ENOTSUP, errno.EPERM):
            return {}
        raise
    out = {}
    for k in sorted(keys):
        try:
            out[k] = os.getxattr(path, k, follow_symlinks=False)
        except OSError as e:
            if e.errno not in (errno.ENODATA, errno.ENOTSUP, errno.EPERM):
                raise
    return out


def _kind(st: os.stat_result) -> Kind | None:
    mode = st.st_mode
    if stat.S_ISREG(mode):
        return Kind.FILE
    if stat.S_ISDIR(mode):
        return Kind.DIR
    if stat.S_ISLNK(mode):
        return Kind.SYMLINK
    if stat.S_ISFIFO(mode):
        return Kind.FIFO
    if stat.S_ISCHR(mode):
        return Kind.CHAR
    if stat.S_ISBLK(mode):
        return Kind.BLOCK
    return None  # sockets do not go into layers


def _names(dfd: int) -> list[str]:
    with os.scandir(dfd) as it:
        return sorted((e.name for e in it), key=os.fsencode)


class _Writer:
    """Turns filesystem entries into members, tracking hard links."""

    def __init__(self, add: Add) -> None:
        self._add = add
        self._links: dict[tuple[int, int], str] = {}

    def entry(
        self, dfd: int, name: str, rel: str, st: os.stat_result, xattrs: Mapping[str, bytes]
    ) -> None:
        kind = _kind(st)
        if kind is None:
            _log.debug("diff.skipped", path=rel, mode=oct(st.st_mode))
            return
        m = Member(
            name=rel,
            kind=kind,
            mode=stat.S_IMODE(st.st_mode),
            uid=st.st_uid,
            gid=st.st_gid,
            mtime_ns=st.st_mtime_ns,
            xattrs={k: v for k, v in xattrs.items() if not k.startswith(OVERLAY_XATTR_PREFIX)},
        )
        if kind is Kind.SYMLINK:
            m.linkname = os.readlink(name, dir_fd=dfd)
        elif kind in (Kind.CHAR, Kind.BLOCK):
            m.devmajor, m.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
        elif kind is Kind.FILE:
            key = (st.st_dev, st.st_ino)
            if st.st_nlink > 1 and key in self._links:
                m.kind, m.linkname = Kind.HARDLINK, self._links[key]
                self._add(m, None)
                return
            if st.st_nlink > 1:
                self._links[key] = rel
            m.size = st.st_size
            fd = os.open(name, _RFILE, dir_fd=dfd)
            with os.fdopen(fd, "rb") as f:
                self._add(m, f)
            return
        self._add(m, None)

    def whiteout(self, rel_dir: str, name: str, st: os.stat_result | None = None) -> None:
        self._add(
            Member(
                name=rel_dir + WHITEOUT_PREFIX + name,
                kind=Kind.FILE,
                mode=0 if st is None else stat.S_IMODE(st.st_mode),
                uid=0 if st is None else st.st_uid,
                gid=0 if st is None else st.st_gid,
                mtime_ns=0 if st is None else st.st_mtime_ns,
            ),
            None,
        )

    def opaque(self, rel_dir: str, st: os.stat_result) -> None:
        self._add(
            Member(
                name=rel_dir + WHITEOUT_OPAQUE,
                kind=Kind.FILE,
                mode=stat.S_IMODE(st.st_mode),
                uid=st.st_uid,
                gid=st.st_gid,
                mtime_ns=st.st_mtime_ns,
            ),
            None,
        )


def walk_upper(upper: str, add: Add) -> None:
    """Emit an overlay upper directory as a layer (whiteouts converted)."""
    w = _Writer(add)

    def visit(dfd: int, prefix: str, depth: int) -> None:
        if depth > MAX_DEPTH:
            raise errors.InvalidArgument(f"diff: {prefix} is nested too deep")
        for name in _names(dfd):
            rel = prefix + name
            st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
            if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                w.whiteout(prefix, name, st)
                continue
            xattrs = _xattrs(dfd, name)
            w.entry(dfd, name, rel, st, xattrs)
            if stat.S_ISDIR(st.st_mode):
                if xattrs.get(OPAQUE_XATTR) == b"y":
                    w.opaque(rel + "/", st)
                cfd = os.open(name, _RDIR, dir_fd=dfd)
                try:
                    visit(cfd, rel + "/", depth + 1)
                finally:
                    os.close(cfd)

    root = os.open(upper, _RDIR)
    try:
        if _xattrs(root, ".").get(OPAQUE_XATTR) == b"y":
            w.opaque("", os.fstat(root))
        visit(root, "", 0)
    finally:
        os.close(root)


def _same(afd: int, bfd: int, name: str, sa: os.stat_result, sb: os.stat_result) -> bool:
    """containerd's sameFile: type, owner, mode, device, xattrs; size and time for non-dirs."""
    if stat.S_IFMT(sa.st_mode) != stat.S_IFMT(sb.st_mode):
        return False
    if (sa.st_mode, sa.st_uid, sa.st_gid, sa.st_rdev) != (
        sb.st_mode,
        sb.st_uid,
        sb.st_gid,
        sb.st_rdev,
    ):
        return False
    if _xattrs(afd, name) != _xattrs(bfd, name):
        return False
    if stat.S_ISDIR(sb.st_mode):
        return True
    if sa.st_size != sb.st_size or sa.st_mtime_ns // 10**9 != sb.st_mtime_ns // 10**9:
        return False
    if stat.S_ISLNK(sb.st_mode):
        return os.readlink(name, dir_fd=afd) == os.readlink(name, dir_fd=bfd)
    if sa.st_mtime_ns % 10**9 or sb.st_mtime_ns % 10**9:
        return sa.st_mtime_ns == sb.st_mtime_ns
    # Whole-second times may come from a tar: compare the bytes.
    if not stat.S_ISREG(sb.st_mode) or sb.st_size == 0:
        return True
    fa = os.open(name, _RFILE, dir_fd=afd)
    try:
        fb = os.open(name, _RFILE, dir_fd=bfd)
        try:
            while True:
                ca, cb = os.read(fa, 1 << 20), os.read(fb, 1 << 20)
                if ca != cb:
                    return False
                if not ca:
                    return True
        finally:
            os.close(fb)
    finally:
        os.close(fa)


@dataclass(slots=True)
class _Parent:
    """A directory present on both sides, written only if something below it changed."""

    dfd: int
    name: str
    rel: str
    st: os.stat_result
    written: bool


def compare_trees(left: str | None, right: str, add: Add) -> None:
    """Emit what changed from ``left`` (None: empty) to ``right``."""
    w = _Writer(add)
    pending: list[_Parent] = []

    def flush() -> None:
        for p in pending:
            if not p.written:
                w.entry(p.dfd, p.name, p.rel, p.st, _xattrs(p.dfd, p.name))
                p.written = True

    def added(bfd: int, name: str, rel: str, st: os.stat_result, depth: int) -> None:
        flush()
        w.entry(bfd, name, rel, st, _xattrs(bfd, name))
        if stat.S_ISDIR(st.st_mode):
            cfd = os.open(name, _RDIR, dir_fd=bfd)
            try:
                visit(None, cfd, rel + "/", depth + 1)
            finally:
                os.close(cfd)

    def visit(afd: int | None, bfd: int, prefix: str, depth: int) -> None:
        if depth > MAX_DEPTH:
            raise errors.InvalidArgument(f"diff: {prefix} is nested too deep")
        bnames = _names(bfd)
        anames = _names(afd) if afd is not None else []
        aset, bset = set(anames), set(bnames)
        for name in sorted(aset | bset, key=os.fsencode):
            rel = prefix + name
            if name not in bset:
                flush()
                w.whiteout(prefix, name)
                continue
            sb = os.stat(name, dir_fd=bfd, follow_symlinks=False)
            if afd is None or name not in aset:
                added(bfd, name, rel, sb, depth)
                continue
            sa = os.stat(name, dir_fd=afd, follow_symlinks=False)
            both_dirs = stat.S_ISDIR(sa.st_mode) and stat.S_ISDIR(sb.st_mode)
            if not both_dirs:
                if not _same(afd, bfd, name, sa, sb):
                    added(bfd, name, rel, sb, depth)
                continue
            changed = not _same(afd, bfd, name, sa, sb)
            if changed:
                flush()
                w.entry(bfd, name, rel, sb, _xattrs(bfd, name))
            pending.append(_Parent(bfd, name, rel, sb, changed))
            cafd = os.open(name, _RDIR, dir_fd=afd)
            try:
                cbfd = os.open(name, _RDIR, dir_fd=bfd)
                try:
                    visit(cafd, cbfd, rel + "/", depth + 1)
                finally:
                    os.close(cbfd)
            finally:
                os.close(cafd)
                pending.pop()

    rfd = os.open(right, _RDIR)
    lfd = os.open(left, _RDIR) if left is not None else None
    try:
        visit(lfd, rfd, "", 0)
    finally:
        os.close(rfd)
        if lfd is not None:
            os.close(lfd)


# -- the service side ------------------------------------------------------------


class Differ:
    """Diff.Diff over a content ingester (the remote content store in the service)."""

    def __init__(self, ingester: content.Ingester) -> None:
        self._ingester = ingester

    async def diff(
        self,
        lower: Sequence[Mount],
        upper: Sequence[Mount],
        media_type: str = "",
        ref: str = "",
        labels: Mapping[str, str] | None = None,
    ) -> oci.Descriptor:
        media_type = media_type or DEFAULT_MEDIA_TYPE
        if media_type not in COMPRESSION:
            raise errors.InvalidArgument(f"unsupported diff media type {media_type!r}")
        if not upper:
            raise errors.InvalidArgument("diff: no upper mounts")
        ref = ref or f"diff-{secrets.token_hex(12)}"
        async with AsyncExitStack() as stack:
            plan = await self._plan(lower, upper, stack)
            return await self._write(plan, COMPRESSION[media_type], media_type, ref, labels or {})
        raise AssertionError("unreachable")

    async def _plan(
        self, lower: Sequence[Mount], upper: Sequence[Mount], stack: AsyncExitStack
    ) -> Plan:
        if len(upper) == 1 and upper[0].type == "overlay":
            up, lowers = _overlay_dirs(upper[0])
            if up and _stack(lower) == lowers:
                return Plan(upper_walk=up)
        left: str | None
        if not lower:
            left = None
        else:
            left = _bind_source(lower)
            if left is None:
                left = str(await stack.enter_async_context(with_temp_mount(readonly(lower))))
        right = _bind_source(upper)
        if right is None:
            right = str(await stack.enter_async_context(with_temp_mount(readonly(upper))))
        return Plan(left=left, right=right)

    async def _write(
        self, plan: Plan, compression: str, media_type: str, ref: str, labels: Mapping[str, str]
    ) -> oci.Descriptor:
        def produce(put: Callable[[bytes], None]) -> tuple[str, int]:
            lw = tario.LayerWriter(put, compression)
            if plan.upper_walk:
                walk_upper(plan.upper_walk, lw.add)
            else:
                compare_trees(plan.left, plan.right, lw.add)
            return lw.close()

        w = await content.open_writer(self._ingester, ref)
        try:

            async def consume(chunks: AsyncIterator[bytes]) -> None:
                async for chunk in chunks:
                    await w.write(chunk)

            try:
                diff_id, usize = await bridge.run_writing(produce, consume)
            except OSError as e:
                raise errors.Internal(f"diff: {e.filename or ''}: {e.strerror or e}") from None
            all_labels = {**labels, oci.LABEL_UNCOMPRESSED: diff_id}
            size = w.offset
            try:
                digest = await w.commit(size, "", all_labels)
            except errors.AlreadyExists:
                digest = w.digest
        finally:
            await w.close()
        _log.info("diff.created", digest=digest, diff_id=diff_id, size=size, uncompressed=usize)
        return oci.Descriptor(media_type=media_type, digest=digest, size=size)
