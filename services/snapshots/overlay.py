"""The overlayfs snapshotter, with containerd's semantics and mounts.

Layout under ``cfg.service_root("snapshots") / "overlayfs"``::

    meta.db                 one row per snapshot (db.py); keys live only here
    snapshots/<id>/fs       the snapshot's own layer (overlay upperdir, or bind source)
    snapshots/<id>/work     overlay workdir (ACTIVE snapshots only)
    snapshots/tmp-XXXX      a snapshot being built (never survives a restart)
    snapshots/rm-<id>       a removed snapshot being deleted

A new snapshot is built in ``tmp-XXXX`` and renamed to ``<id>`` inside the
transaction that inserts its row, so a crash leaves at worst a directory
without a row; :func:`recover` (at startup) and :meth:`cleanup` delete those.
Removal is the mirror image: the row is deleted and the directory renamed to
``rm-<id>`` in one transaction, then deleted. Commit never moves a directory:
it records the layer's disk usage and renames the row's key.

Mounts are built exactly as containerd's overlay snapshotter builds them
(:func:`build_mounts`): absolute host paths, so any process on the host
(the shim, ``ctr`` itself, the diff applier) can mount them.

Everything that changes rows and directories together runs synchronously on
the event loop (no ``await`` between the check and the change); long work
(disk usage, deleting trees) runs in worker threads.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import errno
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

from seacan import errors, log, scope
from seacan import filters as _filters
from seacan.metaclient import Hooks, NoHooks
from seacan.snapshots import (
    Info,
    Kind,
    Mount,
    Usage,
    filter_fields,
    validate_key,
    validate_labels,
)

from .db import Record, SnapshotDB, already_exists

_log = log.get(__name__)

NAME = "overlayfs"
RESOURCE_TYPE = "snapshots/" + NAME
INDEX_PARAM = Path("/sys/module/overlay/parameters/index")
_TMP = "tmp-"
_RM = "rm-"


# -- pure rules ------------------------------------------------------------------


def build_mounts(
    kind: Kind, snapshot_dir: Path, parent_dirs: Sequence[Path], *, index_off: bool
) -> list[Mount]:
    """containerd's overlay mounts for a snapshot (``parent_dirs`` nearest first).

    - no parents: a bind of the snapshot's ``fs`` (``rw``, or ``ro`` for a VIEW);
    - a VIEW of exactly one parent: a read-only bind of the parent's ``fs``;
    - otherwise an overlay: ``index=off`` (if the kernel has the option),
      ``workdir``/``upperdir`` for ACTIVE, then ``lowerdir``, nearest first.
      A VIEW gets only ``lowerdir``, which makes the overlay read-only.
    """
    if not parent_dirs:
        ro = "ro" if kind is Kind.VIEW else "rw"
        return [Mount("bind", str(snapshot_dir / "fs"), options=(ro, "rbind"))]
    if kind is Kind.VIEW and len(parent_dirs) == 1:
        return [Mount("bind", str(parent_dirs[0] / "fs"), options=("ro", "rbind"))]
    options: list[str] = ["index=off"] if index_off else []
    if kind is Kind.ACTIVE:
        options += [f"workdir={snapshot_dir / 'work'}", f"upperdir={snapshot_dir / 'fs'}"]
    options.append("lowerdir=" + ":".join(str(p / "fs") for p in parent_dirs))
    return [Mount("overlay", "overlay", options=tuple(options))]


def updated_labels(
    current: Mapping[str, str], info: Info, fieldpaths: Sequence[str]
) -> dict[str, str]:
    """The labels after an Update (containerd's rules; an empty value removes a label).

    No paths replace all labels; ``labels`` replaces all; ``labels.<key>``
    sets or removes one key. Any other path is InvalidArgument: name,
    parent and kind never change.
    """
    labels = dict(current)
    if not fieldpaths:
        labels = dict(info.labels)
    for path in fieldpaths:
        if path == "labels":
            labels = dict(info.labels)
        elif path.startswith("labels."):
            key = path.removeprefix("labels.")
            labels[key] = info.labels.get(key, "")
        else:
            raise errors.InvalidArgument(f"cannot update {path!r} field on snapshot {info.name!r}")
    return {k: v for k, v in labels.items() if v}


def disk_usage(root: Path) -> Usage:
    """Bytes allocated (512-byte blocks) and inodes under ``root``, hard links counted once."""
    seen: set[tuple[int, int]] = set()
    size = 0

    def add(path: str) -> None:
        nonlocal size
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return  # removed while we walk
        key = (st.st_dev, st.st_ino)
        if key not in seen:
            seen.add(key)
            size += st.st_blocks * 512

    add(str(root))
    for dirpath, dirnames, filenames in os.walk(root):
        for name in (*dirnames, *filenames):
            add(os.path.join(dirpath, name))
    return Usage(size=size, inodes=len(seen))


def _now() -> datetime:
    return datetime.now(UTC)


@contextlib.contextmanager
def _os_errors(what: str) -> Iterator[None]:
    """OSError as an error kind: a full disk is ResourceExhausted, the rest Internal."""
    try:
        yield
    except OSError as e:
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise errors.ResourceExhausted(f"{what}: no space left on device") from e
        raise errors.Internal(f"{what}: {e}") from e


def _not_found(key: str) -> errors.NotFound:
    return errors.NotFound(f"snapshot {key} does not exist")


def _rmtree(path: Path) -> None:
    """Delete a tree, logging what could not be deleted (Cleanup retries it later)."""

    def onerror(fn: object, p: str, exc: tuple[type[BaseException], BaseException, object]) -> None:
        if not isinstance(exc[1], FileNotFoundError):  # someone else deleted it first
            _log.warning("snapshots.remove_failed", path=p, error=str(exc[1]))

    shutil.rmtree(path, onerror=onerror)


def _garbage(snapshots_dir: Path, db: SnapshotDB) -> list[Path]:
    """Rename every directory without a row to ``rm-*``; the renamed paths, to delete."""
    keep = {str(i) for i in db.all_ids()}
    out: list[Path] = []
    for entry in sorted(snapshots_dir.iterdir()):
        if entry.name in keep:
            continue
        if entry.name.startswith(_RM):
            out.append(entry)
            continue
        dest = snapshots_dir / f"{_RM}{entry.name}"
        try:
            os.rename(entry, dest)
        except FileNotFoundError:
            continue  # gone already
        except OSError:
            dest = entry  # cannot be renamed: delete it where it is
        out.append(dest)
    return out


def recover(root: Path, db: SnapshotDB) -> None:
    """Startup cleanup after a crash.

    Deletes directories without a row (half-built ``tmp-*``, half-removed
    ``rm-*``, orphans) and the rows of ACTIVE and VIEW snapshots whose
    directory is gone. A COMMITTED row without its directory is kept (others
    may build on it) and logged.
    """
    snaps = root / "snapshots"
    with _os_errors(f"snapshotter root {root}"):
        snaps.mkdir(parents=True, exist_ok=True)
        os.chmod(root, 0o700)
        lost: set[int] = set()
        for ns, rec in db.unscoped():
            if (snaps / str(rec.id)).is_dir():
                continue
            if rec.kind is Kind.COMMITTED:
                _log.error("snapshots.committed_dir_missing", namespace=ns, key=rec.key, id=rec.id)
            else:
                _log.warning("snapshots.row_without_dir_removed", namespace=ns, key=rec.key)
                lost.add(rec.id)
        db.delete_ids(lost)
        for path in _garbage(snaps, db):
            _log.warning("snapshots.orphan_dir_removed", path=str(path))
            _rmtree(path)


# -- the snapshotter ---------------------------------------------------------------


class OverlaySnapshotter:
    """:class:`seacan.snapshots.Snapshotter` on overlayfs, in the request's namespace.

    Open it with :meth:`open`. Under a lease, new snapshots are added to the
    lease (through ``hooks``) before they become visible.
    """

    def __init__(
        self, root: Path, db: SnapshotDB, hooks: Hooks, *, index_off: bool | None = None
    ) -> None:
        self._root = root
        self._snapshots = root / "snapshots"
        self._db = db
        self._hooks = hooks
        self._index_off = index_off

    @classmethod
    def open(
        cls, root: Path, hooks: Hooks | None = None, *, index_off: bool | None = None
    ) -> OverlaySnapshotter:
        """Open ``root`` (``<service root>/overlayfs``), recovering from a crash first.

        Mounts name absolute paths, so a relative ``root`` is made absolute.
        """
        root = root.absolute()
        with _os_errors(f"snapshotter root {root}"):
            root.mkdir(parents=True, exist_ok=True, mode=0o700)
        db = SnapshotDB(root / "meta.db")
        try:
            recover(root, db)
        except BaseException:
            db.close()
            raise
        return cls(root, db, hooks or NoHooks(), index_off=index_off)

    def close(self) -> None:
        self._db.close()

    @property
    def root(self) -> Path:
        return self._root

    def snapshot_dir(self, rec: Record) -> Path:
        return self._snapshots / str(rec.id)

    # -- helpers

    def _get(self, key: str) -> Record:
        rec = self._db.get(validate_key(key))
        if rec is None:
            raise _not_found(key)
        return rec

    def _parents(self, parent: str) -> list[Record]:
        """``parent`` and its ancestors, nearest first; checks ``parent`` may be one."""
        if not parent:
            return []
        chain = self._db.chain(parent)
        if not chain:
            raise errors.NotFound(f"parent snapshot {parent} does not exist")
        if chain[0].kind is not Kind.COMMITTED:  # InvalidArgument, as containerd says it
            raise errors.InvalidArgument(f'parent "{parent}" is not committed snapshot')
        return chain

    def _mounts(self, rec: Record, parents: Sequence[Record]) -> list[Mount]:
        index_off = INDEX_PARAM.exists() if self._index_off is None else self._index_off
        return build_mounts(
            rec.kind,
            self.snapshot_dir(rec),
            [self.snapshot_dir(p) for p in parents],
            index_off=index_off,
        )

    def _check_new(self, key: str, parent: str, labels: Mapping[str, str]) -> list[Record]:
        """InvalidArgument, AlreadyExists, NotFound or FailedPrecondition; else the parents."""
        validate_key(key)
        validate_labels(labels)
        if self._db.get(key) is not None:
            raise already_exists(key)
        return self._parents(parent)

    async def _protect(self, resource_id: str) -> None:
        """First write in a namespace creates it; under a lease, the lease holds the snapshot."""
        await self._hooks.ensure_namespace(scope.namespace_required())
        lease = scope.lease()
        if lease:
            await self._hooks.add_lease_resource(lease, resource_id, RESOURCE_TYPE)

    def _create(self, kind: Kind, key: str, parent: str, labels: Mapping[str, str]) -> list[Mount]:
        """Check again, build the directory, insert the row and rename: no awaits in here."""
        parents = self._check_new(key, parent, labels)
        final: Path | None = None
        with _os_errors(f"prepare of snapshot {key}"):
            tmp = Path(tempfile.mkdtemp(prefix=_TMP, dir=self._snapshots))
            try:
                os.mkdir(tmp / "fs", 0o755)
                if kind is Kind.ACTIVE:
                    os.mkdir(tmp / "work", 0o711)
                if parents:  # the new layer's root keeps the owner of the one below
                    st = os.stat(self.snapshot_dir(parents[0]) / "fs")
                    os.lchown(tmp / "fs", st.st_uid, st.st_gid)
                with self._db.create(key, parent, kind, labels, _now()) as rec:
                    os.rename(tmp, self.snapshot_dir(rec))
                    final = self.snapshot_dir(rec)  # if the row then fails to commit
            except BaseException:
                shutil.rmtree(final if final is not None else tmp, ignore_errors=True)
                raise
        _log.info("snapshots.created", key=key, parent=parent, kind=kind.name.lower(), id=rec.id)
        return self._mounts(rec, parents)

    # -- Snapshotter

    async def stat(self, key: str) -> Info:
        return self._get(key).info

    async def update(self, info: Info, fieldpaths: Sequence[str] = ()) -> Info:
        if not info.name:
            raise errors.InvalidArgument("must specify snapshot name on update")
        rec = self._get(info.name)
        labels = updated_labels(rec.labels, info, fieldpaths)
        validate_labels(labels)
        updated = self._db.set_labels(info.name, labels, _now())
        if updated is None:
            raise _not_found(info.name)
        return updated.info

    async def usage(self, key: str) -> Usage:
        rec = self._get(key)
        if rec.kind is not Kind.ACTIVE:
            return rec.usage
        fs = self.snapshot_dir(rec) / "fs"
        with _os_errors(f"usage of snapshot {key}"):
            return await asyncio.to_thread(disk_usage, fs)

    async def mounts(self, key: str) -> builtins.list[Mount]:
        rec = self._get(key)
        if rec.kind not in (Kind.ACTIVE, Kind.VIEW):
            raise errors.FailedPrecondition(f"requested snapshot {key} not active or view")
        chain = self._db.chain(rec.parent) if rec.parent else []
        return self._mounts(rec, chain)

    async def prepare(
        self, key: str, parent: str = "", labels: Mapping[str, str] | None = None
    ) -> builtins.list[Mount]:
        labels = dict(labels or {})
        self._check_new(key, parent, labels)
        await self._protect(key)
        return self._create(Kind.ACTIVE, key, parent, labels)

    async def view(
        self, key: str, parent: str = "", labels: Mapping[str, str] | None = None
    ) -> builtins.list[Mount]:
        labels = dict(labels or {})
        self._check_new(key, parent, labels)
        await self._protect(key)
        return self._create(Kind.VIEW, key, parent, labels)

    async def commit(self, name: str, key: str, labels: Mapping[str, str] | None = None) -> None:
        labels = dict(labels or {})
        validate_key(name, "name")
        validate_labels(labels)

        def check() -> Record:
            if self._db.get(name) is not None:
                raise already_exists(name)
            rec = self._get(key)
            if rec.kind is not Kind.ACTIVE:
                raise errors.FailedPrecondition(f"snapshot {key} is not active")
            return rec

        rec = check()
        with _os_errors(f"usage of snapshot {key}"):
            usage = await asyncio.to_thread(disk_usage, self.snapshot_dir(rec) / "fs")
        await self._protect(name)
        if check().id != rec.id:  # removed and prepared again meanwhile
            raise errors.FailedPrecondition(f"snapshot {key} changed during commit")
        committed = self._db.commit(key, name, labels, usage, _now())
        if committed is None:
            raise _not_found(key)
        _log.info("snapshots.committed", name=name, key=key, size=usage.size, id=rec.id)

    async def remove(self, key: str) -> None:
        self._get(key)
        if self._db.has_children(key):
            raise errors.FailedPrecondition(f"cannot remove snapshot {key} with child")
        trash: Path | None = None
        with self._db.remove(key) as rec:
            if rec is None:
                raise _not_found(key)
            src = self.snapshot_dir(rec)
            if src.exists():
                trash = self._snapshots / f"{_RM}{rec.id}"
                with _os_errors(f"remove of snapshot {key}"):
                    os.rename(src, trash)
        _log.info("snapshots.removed", key=key, id=rec.id)
        if trash is not None:
            await asyncio.to_thread(_rmtree, trash)

    async def list(self, filters: Sequence[str] = ()) -> AsyncIterator[Info]:
        flt = _filters.parse(filters)
        for rec in self._db.list():
            info = rec.info
            if flt.match(_filters.lookup_from(filter_fields(info), info.labels)):
                yield info

    async def cleanup(self) -> None:
        with _os_errors(f"cleanup of {self._snapshots}"):
            garbage = _garbage(self._snapshots, self._db)
        for path in garbage:
            _log.info("snapshots.cleanup_removed", path=str(path))
            await asyncio.to_thread(_rmtree, path)
