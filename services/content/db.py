"""Which blobs each namespace sees: the content service's SQLite metadata.

One row per (namespace, digest). The bytes live once on disk
(``blobs/sha256/<hex>``); a namespace sees a blob only through its row.
Calls are short and synchronous: the store runs them on the event loop,
which also makes each call atomic with respect to other requests.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from seacan.content import Info
from seacan.services import sqlite

_md = sa.MetaData()

blobs = sa.Table(
    "blobs",
    _md,
    sa.Column("namespace", sa.Text, primary_key=True),
    sa.Column("digest", sa.Text, primary_key=True),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),  # microseconds since the epoch
    sa.Column("updated_at", sa.BigInteger, nullable=False),
    sa.Column("labels", sa.Text, nullable=False, default="{}"),
    sa.Index("blobs_digest", "digest"),
)


def _us(dt: datetime) -> int:
    return round(dt.timestamp() * 1_000_000)


def _dt(us: int) -> datetime:
    return datetime.fromtimestamp(us / 1_000_000, UTC)


def _info(row: Any) -> Info:
    return Info(
        digest=row.digest,
        size=row.size,
        created_at=_dt(row.created_at),
        updated_at=_dt(row.updated_at),
        labels=json.loads(row.labels),
    )


class ContentDB:
    """Per-namespace blob records in ``meta.db``."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._engine = sqlite.open_engine(path, _md)

    def close(self) -> None:
        self._engine.dispose()

    def get(self, namespace: str, digest: str) -> Info | None:
        with self._engine.connect() as c:
            row = c.execute(
                sa.select(blobs).where(blobs.c.namespace == namespace, blobs.c.digest == digest)
            ).first()
        return None if row is None else _info(row)

    def add(
        self, namespace: str, digest: str, size: int, labels: Mapping[str, str], now: datetime
    ) -> bool:
        """Make ``digest`` visible in ``namespace``; False if it already was (labels untouched)."""
        stmt = (
            sa.insert(blobs)
            .values(
                namespace=namespace,
                digest=digest,
                size=size,
                created_at=_us(now),
                updated_at=_us(now),
                labels=json.dumps(dict(labels), sort_keys=True),
            )
            .prefix_with("OR IGNORE")
        )
        with self._engine.begin() as c:
            return c.execute(stmt).rowcount == 1

    def set_labels(
        self, namespace: str, digest: str, labels: Mapping[str, str], now: datetime
    ) -> Info | None:
        with self._engine.begin() as c:
            c.execute(
                sa.update(blobs)
                .where(blobs.c.namespace == namespace, blobs.c.digest == digest)
                .values(labels=json.dumps(dict(labels), sort_keys=True), updated_at=_us(now))
            )
            row = c.execute(
                sa.select(blobs).where(blobs.c.namespace == namespace, blobs.c.digest == digest)
            ).first()
        return None if row is None else _info(row)

    def remove(self, namespace: str, digest: str) -> bool:
        """Hide ``digest`` from ``namespace``; False if it was not visible there."""
        with self._engine.begin() as c:
            res = c.execute(
                sa.delete(blobs).where(blobs.c.namespace == namespace, blobs.c.digest == digest)
            )
            return res.rowcount == 1

    def referenced(self, digest: str) -> bool:
        """Whether any namespace still sees ``digest``."""
        with self._engine.connect() as c:
            row = c.execute(sa.select(blobs.c.digest).where(blobs.c.digest == digest).limit(1))
            return row.first() is not None

    def list(self, namespace: str) -> Iterator[Info]:
        with self._engine.connect() as c:
            rows = c.execute(
                sa.select(blobs).where(blobs.c.namespace == namespace).order_by(blobs.c.digest)
            ).all()
        return (_info(r) for r in rows)

    def digests(self) -> set[str]:
        """Every digest some namespace sees."""
        with self._engine.connect() as c:
            return set(c.execute(sa.select(blobs.c.digest).distinct()).scalars())
