"""The build cache index: the build service's SQLite metadata.

One row per (namespace, parent, key): ``parent`` is the image ID (config
digest) a step started from, ``key`` the sha256 of the step's cache string
(Docker's container config comment: ``#(nop) ENV a=b``, ``|1 A=x /bin/sh -c
make``, ``COPY file:<hash> in /app``). The row holds the step's result: the
config digest, the snapshot chain ID and the layers (JSON). What keeps the
blobs alive is the cache lease (see :mod:`.cache`), not this table.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from seacan import scope
from seacan.services import sqlite

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


def _entry(row: Any) -> Entry:
    return Entry(
        parent=row.parent,
        key=row.key,
        cache_string=row.cache_string,
        config_digest=row.config_digest,
        chain_id=row.chain_id,
        layers=tuple(json.loads(row.layers)),
        config=row.config,
    )


class CacheDB:
    def __init__(self, path: Path) -> None:
        self._engine = sqlite.open_engine(path, _md)

    def close(self) -> None:
        self._engine.dispose()

    def get(self, parent: str, key: str) -> Entry | None:
        ns = scope.namespace_required()
        where = sa.and_(entries.c.namespace == ns, entries.c.parent == parent, entries.c.key == key)
        with self._engine.connect() as conn:
            row = conn.execute(sa.select(entries).where(where)).first()
        return None if row is None else _entry(row)

    def touch(self, items: Sequence[Entry]) -> None:
        """Mark rows as used now (one transaction)."""
        if not items:
            return
        ns = scope.namespace_required()
        now = time.time()
        with self._engine.begin() as conn:
            for e in items:
                conn.execute(
                    entries.update()
                    .where(
                        sa.and_(
                            entries.c.namespace == ns,
                            entries.c.parent == e.parent,
                            entries.c.key == e.key,
                        )
                    )
                    .values(used_at=now)
                )

    def put(self, e: Entry) -> None:
        ns = scope.namespace_required()
        now = time.time()
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
            conn.execute(
                entries.delete().where(
                    sa.and_(
                        entries.c.namespace == ns,
                        entries.c.parent == e.parent,
                        entries.c.key == e.key,
                    )
                )
            )
            conn.execute(entries.insert().values(**values))

    def list(self) -> list[Entry]:
        ns = scope.namespace_required()
        with self._engine.begin() as conn:
            rows = conn.execute(sa.select(entries).where(entries.c.namespace == ns)).all()
        return [_entry(r) for r in rows]

    def delete(self, items: Sequence[Entry]) -> None:
        ns = scope.namespace_required()
        with self._engine.begin() as conn:
            for e in items:
                conn.execute(
                    entries.delete().where(
                        sa.and_(
                            entries.c.namespace == ns,
                            entries.c.parent == e.parent,
                            entries.c.key == e.key,
                        )
                    )
                )
