"""The build cache index: the build service's SQLite metadata.

One row per (namespace, parent, key): ``parent`` is the image ID (config
digest) a step started from, ``key`` the sha256 of the step's cache string
(Docker's container config comment: ``#(nop) ENV a=b``, ``|1 A=x /bin/sh -c
make``, ``COPY file:<hash> in /app``). The row holds the step's result: the
config digest, the snapshot chain ID and the layers (JSON). What keeps the
blobs alive is the cache lease (see :mod:`.cache`), not this table.

Only the build service writes the table, so rows it has read or written are
also kept in memory (:data:`MEMO_ROWS`, least recently used out): a cached
rebuild's lookups cost no SQL. ``used_at`` is coarse: a row used within
:data:`TOUCH_EVERY` seconds is not written again.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from seacan import scope
from seacan.services import sqlite

MEMO_ROWS = 1024  # rows kept in memory (each holds a config JSON, a few KiB)
TOUCH_EVERY = 3600.0  # seconds

_md = sa.MetaData()

entries = sa.Table(
    "cache",
    _md,
    sa.Column("namespace", sa.Text, primary_key=True),
    sa.Column("parent", sa.Text, primary_key=True),
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("cache_string", sa.Text, nullable=False),
    sa.Column("config_digest", sa.Text, nullable=False),
    sa.Column("chain_id", sa.Text, nullable=False),
    sa.Column("layers", sa.Text, nullable=False),  # JSON list of layer dicts
    sa.Column("config", sa.Text, nullable=False),  # the config blob's JSON (saves a read)
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("used_at", sa.Float, nullable=False),
)


@dataclass(frozen=True, slots=True)
class Entry:
    parent: str
    key: str
    cache_string: str
    config_digest: str
    chain_id: str
    layers: tuple[dict[str, Any], ...]
    config: str = ""
    used_at: float = 0.0


def _entry(row: Any) -> Entry:
    return Entry(
        parent=row.parent,
        key=row.key,
        cache_string=row.cache_string,
        config_digest=row.config_digest,
        chain_id=row.chain_id,
        layers=tuple(json.loads(row.layers)),
        config=row.config,
        used_at=row.used_at,
    )


def _where(ns: str, parent: str, key: str) -> Any:
    return sa.and_(entries.c.namespace == ns, entries.c.parent == parent, entries.c.key == key)


class CacheDB:
    def __init__(self, path: Path) -> None:
        self._engine = sqlite.open_engine(path, _md)
        self._memo: OrderedDict[tuple[str, str, str], Entry] = OrderedDict()

    def close(self) -> None:
        self._engine.dispose()

    def _keep(self, ns: str, e: Entry) -> None:
        self._memo[(ns, e.parent, e.key)] = e
        self._memo.move_to_end((ns, e.parent, e.key))
        while len(self._memo) > MEMO_ROWS:
            self._memo.popitem(last=False)

    def get(self, parent: str, key: str) -> Entry | None:
        ns = scope.namespace_required()
        hit = self._memo.get((ns, parent, key))
        if hit is not None:
            self._memo.move_to_end((ns, parent, key))
            return hit
        with self._engine.connect() as conn:
            row = conn.execute(sa.select(entries).where(_where(ns, parent, key))).first()
        if row is None:
            return None
        e = _entry(row)
        self._keep(ns, e)
        return e

    def touch(self, items: Sequence[Entry]) -> None:
        """Mark rows as used now (one transaction), those not marked in the last
        :data:`TOUCH_EVERY` seconds."""
        now = time.time()
        stale = {(e.parent, e.key): e for e in items if e.used_at < now - TOUCH_EVERY}
        if not stale:
            return
        ns = scope.namespace_required()
        with self._engine.begin() as conn:
            for parent, key in stale:
                conn.execute(entries.update().where(_where(ns, parent, key)).values(used_at=now))
        for e in stale.values():
            if (ns, e.parent, e.key) in self._memo:
                self._keep(ns, dataclasses.replace(e, used_at=now))

    def put(self, e: Entry) -> None:
        ns = scope.namespace_required()
        now = time.time()
        e = dataclasses.replace(e, used_at=now)
        values = {
            "namespace": ns,
            "parent": e.parent,
            "key": e.key,
            "cache_string": e.cache_string,
            "config_digest": e.config_digest,
            "chain_id": e.chain_id,
            "layers": json.dumps(list(e.layers)),
            "config": e.config,
            "created_at": now,
            "used_at": now,
        }
        with self._engine.begin() as conn:
            conn.execute(entries.delete().where(_where(ns, e.parent, e.key)))
            conn.execute(entries.insert().values(**values))
        self._keep(ns, e)

    def list(self) -> list[Entry]:
        ns = scope.namespace_required()
        with self._engine.begin() as conn:
            rows = conn.execute(sa.select(entries).where(entries.c.namespace == ns)).all()
        return [_entry(r) for r in rows]

    def delete(self, items: Sequence[Entry]) -> None:
        ns = scope.namespace_required()
        with self._engine.begin() as conn:
            for e in items:
                conn.execute(entries.delete().where(_where(ns, e.parent, e.key)))
        for e in items:
            self._memo.pop((ns, e.parent, e.key), None)
