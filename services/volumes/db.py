"""Volume records and who uses them: the volumes service's SQLite metadata.

``volumes``: one row per (namespace, name). ``refs``: one row per
(namespace, volume, container) while that container references the volume;
a volume with no ref is unused. A ref is *provisional* until the container is
seen to exist (``confirmed``), since ``seacan run`` acquires volumes before it
creates the container. Calls are short and synchronous; the store
runs them on the event loop, which makes each one atomic with respect to
other requests.
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from seacan.services import sqlite

_md = sa.MetaData()

volumes = sa.Table(
    "volumes",
    _md,
    sa.Column("namespace", sa.Text, primary_key=True),
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("driver", sa.Text, nullable=False),
    sa.Column("labels", sa.Text, nullable=False, default="{}"),
    sa.Column("options", sa.Text, nullable=False, default="{}"),
    sa.Column("created_at", sa.BigInteger, nullable=False),  # microseconds since the epoch
    # The container an anonymous volume was made for ("" for named volumes).
    sa.Column("owner", sa.Text, nullable=False, default=""),
)

refs = sa.Table(
    "refs",
    _md,
    sa.Column("namespace", sa.Text, primary_key=True),
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("container", sa.Text, primary_key=True),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    # The container was seen to exist (its create event, or a lookup): from then
    # on its absence means it was deleted, not that it is still being made.
    sa.Column("confirmed", sa.Boolean, nullable=False, default=False),
    sa.Index("refs_container", "namespace", "container"),
)


def _us(dt: datetime) -> int:
    return round(dt.timestamp() * 1_000_000)


def _dt(us: int) -> datetime:
    return datetime.fromtimestamp(us / 1_000_000, UTC)


@dataclass(frozen=True, slots=True)
class Row:
    namespace: str
    name: str
    driver: str
    labels: dict[str, str]
    options: dict[str, str]
    created_at: datetime
    containers: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Ref:
    namespace: str
    name: str
    container: str
    created_at: datetime
    confirmed: bool


def _row(r: Any, containers: tuple[str, ...]) -> Row:
    return Row(
        namespace=r.namespace,
        name=r.name,
        driver=r.driver,
        labels=json.loads(r.labels),
        options=json.loads(r.options),
        created_at=_dt(r.created_at),
        containers=containers,
    )


class VolumeDB:
    """Volume records and references in ``meta.db``."""

    def __init__(self, path: Path) -> None:
        self._engine = sqlite.open_engine(path, _md)

    def close(self) -> None:
        self._engine.dispose()

    def _users(self, c: sa.Connection, ns: str) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        rows = c.execute(
            sa.select(refs.c.name, refs.c.container)
            .where(refs.c.namespace == ns)
            .order_by(refs.c.container)
        )
        for name, container in rows:
            out.setdefault(name, []).append(container)
        return out

    def get(self, ns: str, name: str) -> Row | None:
        with self._engine.connect() as c:
            r = c.execute(
                sa.select(volumes).where(volumes.c.namespace == ns, volumes.c.name == name)
            ).first()
            if r is None:
                return None
            users = c.execute(
                sa.select(refs.c.container)
                .where(refs.c.namespace == ns, refs.c.name == name)
                .order_by(refs.c.container)
            ).scalars()
            return _row(r, tuple(users))

    def list(self, ns: str) -> builtins.list[Row]:
        with self._engine.connect() as c:
            users = self._users(c, ns)
            rows = c.execute(
                sa.select(volumes).where(volumes.c.namespace == ns).order_by(volumes.c.name)
            ).all()
        return [_row(r, tuple(users.get(r.name, ()))) for r in rows]

    def insert(
        self,
        ns: str,
        name: str,
        driver: str,
        labels: Mapping[str, str],
        options: Mapping[str, str],
        now: datetime,
        owner: str = "",
    ) -> bool:
        """Record a volume; False if the name was taken."""
        stmt = (
            sa.insert(volumes)
            .values(
                namespace=ns,
                name=name,
                driver=driver,
                labels=json.dumps(dict(labels), sort_keys=True),
                options=json.dumps(dict(options), sort_keys=True),
                created_at=_us(now),
                owner=owner,
            )
            .prefix_with("OR IGNORE")
        )
        with self._engine.begin() as c:
            return c.execute(stmt).rowcount == 1

    def delete(self, ns: str, name: str) -> None:
        with self._engine.begin() as c:
            c.execute(sa.delete(refs).where(refs.c.namespace == ns, refs.c.name == name))
            c.execute(sa.delete(volumes).where(volumes.c.namespace == ns, volumes.c.name == name))

    def add_ref(self, ns: str, name: str, container: str, now: datetime) -> None:
        stmt = (
            sa.insert(refs)
            .values(
                namespace=ns, name=name, container=container, created_at=_us(now), confirmed=False
            )
            .prefix_with("OR IGNORE")
        )
        with self._engine.begin() as c:
            c.execute(stmt)

    def drop_ref(self, ns: str, name: str, container: str) -> None:
        with self._engine.begin() as c:
            c.execute(
                sa.delete(refs).where(
                    refs.c.namespace == ns, refs.c.name == name, refs.c.container == container
                )
            )

    def owned(self, ns: str, container: str) -> builtins.list[str]:
        """The anonymous volumes made for ``container``."""
        with self._engine.connect() as c:
            return list(
                c.execute(
                    sa.select(volumes.c.name).where(
                        volumes.c.namespace == ns, volumes.c.owner == container
                    )
                ).scalars()
            )

    def confirm(self, ns: str, container: str) -> None:
        """``container`` exists: its references are no longer provisional."""
        with self._engine.begin() as c:
            c.execute(
                sa.update(refs)
                .where(refs.c.namespace == ns, refs.c.container == container)
                .values(confirmed=True)
            )

    def drop_container(self, ns: str, container: str) -> builtins.list[str]:
        """Drop every reference of ``container``; the names of the volumes it used."""
        where = (refs.c.namespace == ns, refs.c.container == container)
        with self._engine.begin() as c:
            names = list(c.execute(sa.select(refs.c.name).where(*where)).scalars())
            c.execute(sa.delete(refs).where(*where))
        return names

    def volume_refs(self, ns: str, name: str) -> builtins.list[Ref]:
        with self._engine.connect() as c:
            rows = c.execute(
                sa.select(refs)
                .where(refs.c.namespace == ns, refs.c.name == name)
                .order_by(refs.c.container)
            ).all()
        return [Ref(r.namespace, r.name, r.container, _dt(r.created_at), r.confirmed) for r in rows]

    def refs(self) -> builtins.list[Ref]:
        """Every reference, in every namespace."""
        with self._engine.connect() as c:
            rows = c.execute(sa.select(refs)).all()
        return [Ref(r.namespace, r.name, r.container, _dt(r.created_at), r.confirmed) for r in rows]
