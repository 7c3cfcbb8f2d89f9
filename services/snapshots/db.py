"""The overlay snapshotter's SQLite metadata: one row per snapshot.

A row's ``id`` names its directory (``snapshots/<id>``); keys never appear in
paths. Keys are per namespace: every call that touches a namespace's rows
takes the namespace from the request scope (``scope.namespace_required()``).
The calls without a namespace (``all_ids``, ``unscoped``, ``delete_ids``) are
for startup recovery and Cleanup, which look at the whole disk.

:meth:`SnapshotDB.create` and :meth:`SnapshotDB.remove` are context managers:
the row change commits only if the block (which moves the directory) ends
without an exception, so a row and its directory appear and disappear in one
logical step. Calls are short and synchronous; the snapshotter runs them on
the event loop, which makes each call atomic with respect to other requests.
"""

from __future__ import annotations

import builtins
import contextlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from seacan import errors, scope
from seacan.services import sqlite
from seacan.snapshots import Info, Kind, Usage

_md = sa.MetaData()

snapshots = sa.Table(
    "snapshots",
    _md,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("namespace", sa.Text, nullable=False),
    sa.Column("key", sa.Text, nullable=False),
    sa.Column("parent", sa.Text, nullable=False, default=""),
    sa.Column("kind", sa.Integer, nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),  # microseconds since the epoch
    sa.Column("updated_at", sa.BigInteger, nullable=False),
    sa.Column("labels", sa.Text, nullable=False, default="{}"),
    sa.Column("size", sa.BigInteger, nullable=False, default=0),
    sa.Column("inodes", sa.BigInteger, nullable=False, default=0),
    sa.UniqueConstraint("namespace", "key"),
    sa.Index("snapshots_parent", "namespace", "parent"),
    sqlite_autoincrement=True,  # ids are never reused, so a stale directory never collides
)


@dataclass(frozen=True, slots=True)
class Record:
    """A snapshot row: the public :class:`Info` plus where it lives and what it uses."""

    id: int
    key: str
    parent: str
    kind: Kind
    created_at: datetime
    updated_at: datetime
    labels: Mapping[str, str] = field(default_factory=dict)
    usage: Usage = field(default_factory=Usage)

    @property
    def info(self) -> Info:
        return Info(
            name=self.key,
            parent=self.parent,
            kind=self.kind,
            created_at=self.created_at,
            updated_at=self.updated_at,
            labels=dict(self.labels),
        )


def _us(dt: datetime) -> int:
    return round(dt.timestamp() * 1_000_000)


def _dt(us: int) -> datetime:
    return datetime.fromtimestamp(us / 1_000_000, UTC)


def _labels(labels: Mapping[str, str]) -> str:
    return json.dumps(dict(labels), sort_keys=True)


def _record(row: Any) -> Record:
    return Record(
        id=row.id,
        key=row.key,
        parent=row.parent,
        kind=Kind(row.kind),
        created_at=_dt(row.created_at),
        updated_at=_dt(row.updated_at),
        labels=json.loads(row.labels),
        usage=Usage(row.size, row.inodes),
    )


def _where(ns: str, key: str) -> sa.ColumnElement[bool]:
    return sa.and_(snapshots.c.namespace == ns, snapshots.c.key == key)


def already_exists(key: str) -> errors.AlreadyExists:
    """containerd's message: ``snapshot "<key>": already exists`` (the key quoted as Go's %q)."""
    return errors.AlreadyExists(f"snapshot {json.dumps(key, ensure_ascii=False)}: already exists")


class SnapshotDB:
    """Snapshot rows in ``meta.db``."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._engine = sqlite.open_engine(path, _md)

    def close(self) -> None:
        self._engine.dispose()

    # -- one namespace (the request's)

    def get(self, key: str) -> Record | None:
        ns = scope.namespace_required()
        with self._engine.connect() as c:
            row = c.execute(sa.select(snapshots).where(_where(ns, key))).first()
        return None if row is None else _record(row)

    def chain(self, key: str) -> builtins.list[Record]:
        """``key`` and its ancestors, nearest first; stops at a missing row."""
        ns = scope.namespace_required()
        out: builtins.list[Record] = []
        with self._engine.connect() as c:
            while key:
                row = c.execute(sa.select(snapshots).where(_where(ns, key))).first()
                if row is None:
                    break
                out.append(_record(row))
                key = row.parent
        return out

    def has_children(self, key: str) -> bool:
        ns = scope.namespace_required()
        with self._engine.connect() as c:
            row = c.execute(
                sa.select(snapshots.c.id)
                .where(snapshots.c.namespace == ns, snapshots.c.parent == key)
                .limit(1)
            ).first()
        return row is not None

    def list(self) -> list[Record]:
        ns = scope.namespace_required()
        with self._engine.connect() as c:
            rows = c.execute(
                sa.select(snapshots).where(snapshots.c.namespace == ns).order_by(snapshots.c.key)
            ).all()
        return [_record(r) for r in rows]

    @contextlib.contextmanager
    def create(
        self, key: str, parent: str, kind: Kind, labels: Mapping[str, str], now: datetime
    ) -> Iterator[Record]:
        """Insert a row; it is committed when the block ends without an exception."""
        ns = scope.namespace_required()
        with self._engine.begin() as c:
            try:
                res = c.execute(
                    sa.insert(snapshots).values(
                        namespace=ns,
                        key=key,
                        parent=parent,
                        kind=int(kind),
                        created_at=_us(now),
                        updated_at=_us(now),
                        labels=_labels(labels),
                    )
                )
            except sa.exc.IntegrityError:
                raise already_exists(key) from None
            pk = res.inserted_primary_key
            assert pk is not None
            yield Record(int(pk[0]), key, parent, kind, now, now, dict(labels))

    def commit(
        self, key: str, name: str, labels: Mapping[str, str], usage: Usage, now: datetime
    ) -> Record | None:
        """Turn row ``key`` into the COMMITTED row ``name``; None if ``key`` is gone."""
        ns = scope.namespace_required()
        with self._engine.begin() as c:
            try:
                res = c.execute(
                    sa.update(snapshots)
                    .where(_where(ns, key))
                    .values(
                        key=name,
                        kind=int(Kind.COMMITTED),
                        labels=_labels(labels),
                        size=usage.size,
                        inodes=usage.inodes,
                        created_at=_us(now),
                        updated_at=_us(now),
                    )
                )
            except sa.exc.IntegrityError:
                raise already_exists(name) from None
            if res.rowcount != 1:
                return None
            row = c.execute(sa.select(snapshots).where(_where(ns, name))).first()
        return None if row is None else _record(row)

    def set_labels(self, key: str, labels: Mapping[str, str], now: datetime) -> Record | None:
        ns = scope.namespace_required()
        with self._engine.begin() as c:
            c.execute(
                sa.update(snapshots)
                .where(_where(ns, key))
                .values(labels=_labels(labels), updated_at=_us(now))
            )
            row = c.execute(sa.select(snapshots).where(_where(ns, key))).first()
        return None if row is None else _record(row)

    @contextlib.contextmanager
    def remove(self, key: str) -> Iterator[Record | None]:
        """Delete row ``key`` (None if there is none); committed when the block succeeds."""
        ns = scope.namespace_required()
        with self._engine.begin() as c:
            row = c.execute(sa.select(snapshots).where(_where(ns, key))).first()
            if row is None:
                yield None
                return
            c.execute(sa.delete(snapshots).where(snapshots.c.id == row.id))
            yield _record(row)

    # -- every namespace (recovery and Cleanup)

    def all_ids(self) -> set[int]:
        with self._engine.connect() as c:
            return set(c.execute(sa.select(snapshots.c.id)).scalars())

    def unscoped(self) -> builtins.list[tuple[str, Record]]:
        """Every row as ``(namespace, record)``."""
        with self._engine.connect() as c:
            rows = c.execute(sa.select(snapshots).order_by(snapshots.c.id)).all()
        return [(r.namespace, _record(r)) for r in rows]

    def delete_ids(self, ids: set[int]) -> None:
        if not ids:
            return
        with self._engine.begin() as c:
            c.execute(sa.delete(snapshots).where(snapshots.c.id.in_(sorted(ids))))
