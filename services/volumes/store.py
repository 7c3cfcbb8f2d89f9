"""The local volume store: directories under ``<root>/data``, records in :mod:`.db`.

Layout (Docker's ``<name>/_data``, one level per namespace)::

    <root>/volumes/meta.db
    <root>/volumes/data/<namespace>/<name>/_data     what containers mount
    <root>/volumes/data/<namespace>/.tmp-*, .removing-*   being made, being removed
    <root>/volumes/tmp/                               temporary mounts of image views

A volume's directory is made as ``.tmp-*`` and renamed into place before its
record is written, and renamed to ``.removing-*`` before its record is
deleted, so neither a half-made nor a half-removed volume is ever visible;
leftovers are removed on start. Names obey Docker's rule and the resolved
path is checked to stay under ``data/<namespace>``.

References: :meth:`acquire` records (volume, container); the references of a
deleted container are dropped when the ``/containers/delete`` event arrives
(:meth:`container_deleted`), on :meth:`release`, and on start
(:meth:`reconcile`, against the containers service). Before a volume is
refused as in use, its references are checked against the containers
service too. A reference stays provisional until its container is seen to
exist (its ``/containers/create`` event, or a lookup); a provisional one
younger than :data:`REF_GRACE` is kept even without its container, since
``seacan run`` acquires volumes before it creates the container.

Every change runs under one lock; blocking file work runs in threads.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import os
import secrets
import shutil
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

from seacan import errors, log, mount, scope
from seacan.containers import Container
from seacan.snapshots import Mount, Snapshotter
from seacan.volumes import (
    LABEL_ANONYMOUS,
    CopyUp,
    Pruned,
    Volume,
    validate_driver,
    validate_name,
    validate_options,
)

from . import copyup
from .db import Ref, Row, VolumeDB

_log = log.get(__name__)

REF_GRACE = timedelta(seconds=60)
FILTER_KEYS = ("label", "dangling", "name", "driver")


class Containers(Protocol):
    """What the store asks the containers service (RemoteContainers satisfies it)."""

    async def get(self, id: str, /) -> Container: ...


def _now() -> datetime:
    return datetime.now(UTC)


def _q(s: str) -> str:
    return f'"{s}"'


def parse_filters(
    exprs: Sequence[str], allowed: Sequence[str] = FILTER_KEYS
) -> dict[str, list[str]]:
    """Docker's ``--filter key=value`` strings, grouped by key; InvalidArgument on others."""
    out: dict[str, list[str]] = {}
    for expr in exprs:
        key, eq, value = expr.partition("=")
        if not eq or key not in allowed:
            raise errors.InvalidArgument(
                f"invalid filter {expr!r}: want one of {', '.join(k + '=...' for k in allowed)}"
            )
        if key == "dangling" and value.lower() not in ("true", "false", "1", "0"):
            raise errors.InvalidArgument(f"invalid filter {expr!r}: dangling is true or false")
        out.setdefault(key, []).append(value)
    return out


def matches(v: Volume, filters: Mapping[str, Sequence[str]]) -> bool:
    """Every label filter holds; one of the name/driver filters holds; dangling as asked."""
    for want in filters.get("label", ()):
        key, eq, value = want.partition("=")
        if key not in v.labels or (eq and v.labels[key] != value):
            return False
    names = filters.get("name", ())
    if names and not any(n in v.name for n in names):
        return False
    drivers = filters.get("driver", ())
    if drivers and v.driver not in drivers:
        return False
    for d in filters.get("dangling", ()):
        if (d.lower() in ("true", "1")) == bool(v.containers):
            return False
    return True


def _size(path: Path) -> int:
    total = 0
    for dirpath, dirnames, filenames in os.walk(path):
        for n in dirnames + filenames:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, n)).st_blocks * 512
    return total


class LocalVolumes:
    """:class:`seacan.volumes.VolumeStore` on the local disk."""

    def __init__(
        self,
        root: Path,
        db: VolumeDB,
        containers: Containers,
        snapshotter: Callable[[str], Snapshotter],
    ) -> None:
        self.data = root / "data"
        self.tmp = root / "tmp"
        self._db = db
        self._containers = containers
        self._snapshotter = snapshotter
        self._lock = asyncio.Lock()

    @classmethod
    def open(
        cls, root: Path, containers: Containers, snapshotter: Callable[[str], Snapshotter]
    ) -> LocalVolumes:
        root.mkdir(parents=True, exist_ok=True)
        store = cls(root, VolumeDB(root / "meta.db"), containers, snapshotter)
        store.recover()
        return store

    def close(self) -> None:
        self._db.close()

    # -- paths ------------------------------------------------------------------

    def _dir(self, ns: str, name: str) -> Path:
        """``data/<ns>/<name>``, refused unless it resolves under ``data/<ns>``."""
        validate_name(name)
        base = self.data / ns
        path = base / name
        real_base = os.path.realpath(base)
        if os.path.dirname(os.path.realpath(path)) != real_base:
            raise errors.InvalidArgument(f"volume {name!r}: path escapes the volume root")
        return path

    def _volume(self, row: Row) -> Volume:
        return Volume(
            name=row.name,
            driver=row.driver,
            labels=row.labels,
            options=row.options,
            mountpoint=str(self.data / row.namespace / row.name / "_data"),
            created_at=row.created_at,
            containers=row.containers,
        )

    def recover(self) -> None:
        """Remove what a crash left half made or half removed; unmount stale temp mounts."""
        if self.tmp.exists():
            for d in self.tmp.iterdir():
                with contextlib.suppress(errors.SeacanError):
                    mount.unmount(d, lazy=True)
                with contextlib.suppress(OSError):
                    d.rmdir()
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.data.mkdir(parents=True, exist_ok=True)
        for ns_dir in self.data.iterdir():
            for d in ns_dir.glob(".*"):
                if d.name.startswith((".tmp-", ".removing-")):
                    self._rmtree(d)

    @staticmethod
    def _rmtree(d: Path) -> None:
        with contextlib.suppress(errors.SeacanError):
            mount.unmount(d / "_data")
        shutil.rmtree(d, ignore_errors=True)

    # -- the calls --------------------------------------------------------------

    async def create(
        self,
        name: str,
        *,
        driver: str = "",
        labels: Mapping[str, str] | None = None,
        options: Mapping[str, str] | None = None,
    ) -> Volume:
        ns = scope.namespace_required()
        async with self._lock:
            return self._volume(await self._create(ns, name, driver, labels, options))

    async def _create(
        self,
        ns: str,
        name: str,
        driver: str,
        labels: Mapping[str, str] | None,
        options: Mapping[str, str] | None,
        owner: str = "",
    ) -> Row:
        """The volume ``name`` (a random name when empty), made if missing (as Docker)."""
        name = name or secrets.token_hex(32)
        path = self._dir(ns, name)
        drv = validate_driver(driver)
        opts = validate_options(options or {})
        for key in labels or {}:
            if not key:
                raise errors.InvalidArgument("volume label key must not be empty")
        row = self._db.get(ns, name)
        if row is not None:
            return row
        await asyncio.to_thread(self._make_dir, path)
        self._db.insert(ns, name, drv, labels or {}, opts, _now(), owner)
        _log.info("volume.created", namespace=ns, volume=name)
        row = self._db.get(ns, name)
        assert row is not None
        return row

    @staticmethod
    def _make_dir(path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.parent / f".tmp-{secrets.token_hex(8)}"
        (tmp / "_data").mkdir(mode=0o755, parents=True)
        if path.exists():  # a directory without a record: a crash between rename and insert
            stale = path.parent / f".removing-{secrets.token_hex(8)}"
            path.rename(stale)
            LocalVolumes._rmtree(stale)
        tmp.rename(path)

    async def get(self, name: str) -> Volume:
        ns = scope.namespace_required()
        validate_name(name)
        row = self._db.get(ns, name)
        if row is None:
            raise errors.NotFound(f"volume {_q(name)}: no such volume")
        return self._volume(row)

    async def list(self, filters: Sequence[str] = ()) -> builtins.list[Volume]:
        ns = scope.namespace_required()
        parsed = parse_filters(filters)
        return [v for v in map(self._volume, self._db.list(ns)) if matches(v, parsed)]

    async def remove(self, name: str, *, force: bool = False) -> None:
        ns = scope.namespace_required()
        validate_name(name)
        async with self._lock:
            row = self._db.get(ns, name)
            if row is None:
                if force:
                    return
                raise errors.NotFound(f"volume {_q(name)}: no such volume")
            users = await self._live_users(ns, row)
            if users:
                raise errors.FailedPrecondition(
                    f"volume {_q(name)} is in use by container(s) {', '.join(users)}: "
                    "remove the container(s) first"
                )
            await self._remove(ns, name)

    async def _remove(self, ns: str, name: str) -> int:
        """Remove the volume's data and record; the bytes it held."""
        path = self._dir(ns, name)
        gone = path.parent / f".removing-{secrets.token_hex(8)}"

        def _detach() -> int:
            mount.unmount(path / "_data")
            size = _size(path)
            if path.exists():
                path.rename(gone)
            return size

        size = await asyncio.to_thread(_detach)
        self._db.delete(ns, name)
        await asyncio.to_thread(shutil.rmtree, gone, True)
        _log.info("volume.removed", namespace=ns, volume=name)
        return size

    async def prune(self, filters: Sequence[str] = (), *, all: bool = False) -> Pruned:
        ns = scope.namespace_required()
        parsed = parse_filters(filters, ("label",))
        removed: builtins.list[str] = []
        reclaimed = 0
        async with self._lock:
            for row in self._db.list(ns):
                v = self._volume(row)
                if not (all or v.anonymous) or not matches(v, parsed):
                    continue
                if await self._live_users(ns, row):
                    continue
                reclaimed += await self._remove(ns, row.name)
                removed.append(row.name)
        return Pruned(tuple(removed), reclaimed)

    async def acquire(
        self,
        name: str,
        container_id: str,
        *,
        driver: str = "",
        labels: Mapping[str, str] | None = None,
        options: Mapping[str, str] | None = None,
        copy_up: CopyUp | None = None,
    ) -> tuple[Volume, bool]:
        ns = scope.namespace_required()
        scope.validate_identifier(container_id, "container ID")
        if copy_up is not None and not copy_up.target.startswith("/"):
            raise errors.InvalidArgument(f"mount target {copy_up.target!r} is not absolute")
        all_labels = dict(labels or {})
        if not name:
            all_labels[LABEL_ANONYMOUS] = ""
        async with self._lock:
            owner = "" if name else container_id
            row = await self._create(ns, name, driver, all_labels, options, owner)
            self._db.add_ref(ns, row.name, container_id, _now())
            try:
                v = self._volume(row)
                await asyncio.to_thread(self._mount, v)
                copied = False
                if copy_up is not None and copy_up.parent:
                    copied = await self._copy_up(v, copy_up)
            except BaseException:
                self._db.drop_ref(ns, row.name, container_id)
                await self._unmount_unused(ns, [row.name])
                raise
            now = self._db.get(ns, row.name)
            assert now is not None
            _log.info("volume.acquired", namespace=ns, volume=row.name, container=container_id)
            return self._volume(now), copied

    @staticmethod
    def _mount(v: Volume) -> None:
        """Mount a volume with driver options on its mountpoint, unless it is already."""
        if not v.options or os.path.ismount(v.mountpoint):
            return
        o = v.options.get("o", "")
        m = Mount(
            type=v.options["type"],
            source=v.options["device"],
            options=tuple(o.split(",")) if o else (),
        )
        mount.mount(m, Path(v.mountpoint))

    async def _copy_up(self, v: Volume, c: CopyUp) -> bool:
        if await asyncio.to_thread(os.listdir, v.mountpoint):
            return False
        sn = self._snapshotter(c.snapshotter)
        key = f"volume-copyup-{secrets.token_hex(8)}"
        mounts = await sn.view(key, c.parent)
        try:
            async with mount.with_temp_mount(mounts, self.tmp) as rootfs:
                copied = await asyncio.to_thread(
                    copyup.copy_up, str(rootfs), c.target, v.mountpoint
                )
        finally:
            with contextlib.suppress(errors.SeacanError):
                await sn.remove(key)
        _log.info("volume.copied_up", volume=v.name, target=c.target, copied=copied)
        return copied

    async def release(
        self, container_id: str, *, remove_anonymous: bool = False
    ) -> builtins.list[str]:
        ns = scope.namespace_required()
        scope.validate_identifier(container_id, "container ID")
        try:
            await self._containers.get(container_id)
        except errors.NotFound:
            pass
        else:
            raise errors.FailedPrecondition(
                f"container {container_id!r} still exists: remove it before releasing its volumes"
            )
        async with self._lock:
            names = self._db.drop_container(ns, container_id)
            await self._unmount_unused(ns, names)
            removed = []
            if remove_anonymous:
                # Its references may be gone already (the delete event): ownership stays.
                for name in self._db.owned(ns, container_id):
                    row = self._db.get(ns, name)
                    if row is not None and LABEL_ANONYMOUS in row.labels and not row.containers:
                        await self._remove(ns, name)
                        removed.append(name)
            return removed

    # -- references -------------------------------------------------------------

    async def _live_users(self, ns: str, row: Row) -> builtins.list[str]:
        """The containers that use ``row``, after dropping references of deleted ones."""
        live = []
        now = _now()
        for ref in self._db.volume_refs(ns, row.name):
            if not await self._exists(ref, now):
                self._db.drop_ref(ns, row.name, ref.container)
                continue
            live.append(ref.container)
        if not live:
            await self._unmount_unused(ns, [row.name])
        return live

    async def _unmount_unused(self, ns: str, names: Sequence[str]) -> None:
        for name in names:
            row = self._db.get(ns, name)
            if row is not None and row.options and not row.containers:
                mp = self._volume(row).mountpoint
                await asyncio.to_thread(mount.unmount, Path(mp))
                _log.info("volume.unmounted", namespace=ns, volume=name)

    async def _exists(self, ref: Ref, now: datetime, *, strict: bool = False) -> bool:
        """Whether the container of ``ref`` exists (or may yet: provisional, or no answer).

        ``strict``: no answer from the containers service raises instead.
        """
        scope.set_scope(ref.namespace, scope.lease())
        try:
            await self._containers.get(ref.container)
        except errors.NotFound:
            return not ref.confirmed and now - ref.created_at < REF_GRACE
        except errors.SeacanError:
            if strict:
                raise
            return True  # the containers service is away: keep the reference
        if not ref.confirmed:
            self._db.confirm(ref.namespace, ref.container)
        return True

    async def container_created(self, ns: str, container_id: str) -> None:
        """A ``/containers/create`` event: the container's references are confirmed."""
        self._db.confirm(ns, container_id)

    async def container_deleted(self, ns: str, container_id: str) -> None:
        """A ``/containers/delete`` event: the container's references go."""
        async with self._lock:
            names = self._db.drop_container(ns, container_id)
            await self._unmount_unused(ns, names)
        if names:
            _log.info("volume.released", namespace=ns, container=container_id, volumes=names)

    async def reconcile(self) -> None:
        """Drop references of containers that no longer exist (deleted while we were away)."""
        async with self._lock:
            now = _now()
            for ref in self._db.refs():
                if await self._exists(ref, now, strict=True):
                    continue
                self._db.drop_ref(ref.namespace, ref.name, ref.container)
                await self._unmount_unused(ref.namespace, [ref.name])
                _log.info(
                    "volume.stale_ref_dropped",
                    namespace=ref.namespace,
                    volume=ref.name,
                    container=ref.container,
                )
