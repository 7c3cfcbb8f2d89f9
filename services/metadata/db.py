"""The metadata service's SQLite database: namespaces, leases, lease resources.

Three tables in ``<root>/metadata/meta.db`` (WAL, busy timeout)::

    namespaces(name PK, labels JSON, created_at)
    leases(namespace, id, created_at, labels JSON)               PK (namespace, id)
    lease_resources(namespace, lease_id, type, id)               PK (all four)

Calls are short and synchronous; the stores run them on the event loop, which
also makes each call atomic with respect to other requests. Namespaces are
passed in explicitly: requiring one from the request scope is the stores' job.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from seacan import errors
from seacan.leases import Lease, Resource
from seacan.services import sqlite

SCHEMA_VERSION = 1

_md = sa.MetaData()

namespaces = sa.Table(
    "namespaces",
    _md,
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("labels", sa.Text, nullable=False, default="{}"),
    sa.Column("created_at", sa.BigInteger, nullable=False),  # microseconds since the epoch
)

leases = sa.Table(
    "leases",
    _md,
    sa.Column("namespace", sa.Text, primary_key=True),
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("labels", sa.Text, nullable=False, default="{}"),
)

lease_resources = sa.Table(
    "lease_resources",
    _md,
    sa.Column("namespace", sa.Text, primary_key=True),
    sa.Column("lease_id", sa.Text, primary_key=True),
    sa.Column("type", sa.Text, primary_key=True),
    sa.Column("id", sa.Text, primary_key=True),
)


def _us(dt: datetime) -> int:
    return round(dt.timestamp() * 1_000_000)


def _dt(us: int) -> datetime:
    return datetime.fromtimestamp(us / 1_000_000, UTC)


def _now() -> int:
    return _us(datetime.now(UTC))


def _lease(row: Any) -> Lease:
    return Lease(id=row.id, created_at=_dt(row.created_at), labels=json.loads(row.labels))


class MetaDB:
    """Namespaces and leases in ``meta.db``."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._engine = sqlite.open_engine(path, _md)
        with self._engine.begin() as c:
            version = c.exec_driver_sql("PRAGMA user_version").scalar_one()
            if version == 0:
                c.exec_driver_sql(f"PRAGMA user_version={SCHEMA_VERSION}")
            elif version != SCHEMA_VERSION:
                raise errors.FailedPrecondition(
                    f"metadata database {path} has schema version {version}, "
                    f"this seacan knows {SCHEMA_VERSION}"
                )

    def close(self) -> None:
        self._engine.dispose()

    # -- namespaces ---------------------------------------------------------

    def create_namespace(self, name: str, labels: Mapping[str, str]) -> None:
        """AlreadyExists when ``name`` exists."""
        try:
            with self._engine.begin() as c:
                c.execute(
                    namespaces.insert().values(
                        name=name, labels=json.dumps(dict(labels)), created_at=_now()
                    )
                )
        except sa.exc.IntegrityError:
            raise errors.AlreadyExists(f'namespace "{name}": already exists') from None

    def ensure_namespace(self, name: str) -> None:
        with self._engine.begin() as c:
            self._ensure(c, name)

    def _ensure(self, c: sa.Connection, name: str) -> None:
        c.execute(
            sa.insert(namespaces)
            .values(name=name, labels="{}", created_at=_now())
            .prefix_with("OR IGNORE")
        )

    def namespace_labels(self, name: str) -> dict[str, str]:
        """NotFound when ``name`` does not exist."""
        with self._engine.connect() as c:
            row = c.execute(sa.select(namespaces.c.labels).where(namespaces.c.name == name)).first()
        if row is None:
            raise errors.NotFound(f'namespace "{name}": not found')
        labels: dict[str, str] = json.loads(row.labels)
        return labels

    def list_namespaces(self) -> list[tuple[str, dict[str, str]]]:
        with self._engine.connect() as c:
            rows = c.execute(
                sa.select(namespaces.c.name, namespaces.c.labels).order_by(namespaces.c.name)
            ).all()
        return [(r.name, json.loads(r.labels)) for r in rows]

    def set_namespace_labels(self, name: str, labels: Mapping[str, str]) -> None:
        """Replace the labels; NotFound when ``name`` does not exist."""
        with self._engine.begin() as c:
            n = c.execute(
                namespaces.update()
                .where(namespaces.c.name == name)
                .values(labels=json.dumps(dict(labels)))
            ).rowcount
        if n == 0:
            raise errors.NotFound(f'namespace "{name}": not found')

    def delete_namespace(self, name: str) -> None:
        """Remove ``name`` with its leases; NotFound when it does not exist."""
        with self._engine.begin() as c:
            n = c.execute(namespaces.delete().where(namespaces.c.name == name)).rowcount
            if n == 0:
                raise errors.NotFound(f'namespace "{name}": not found')
            c.execute(lease_resources.delete().where(lease_resources.c.namespace == name))
            c.execute(leases.delete().where(leases.c.namespace == name))

    # -- leases -------------------------------------------------------------

    def create_lease(self, namespace: str, lease_id: str, labels: Mapping[str, str]) -> Lease:
        """Create the lease (and its namespace, implicitly); AlreadyExists when taken."""
        created = _now()
        try:
            with self._engine.begin() as c:
                self._ensure(c, namespace)
                c.execute(
                    leases.insert().values(
                        namespace=namespace,
                        id=lease_id,
                        created_at=created,
                        labels=json.dumps(dict(labels)),
                    )
                )
        except sa.exc.IntegrityError:
            raise errors.AlreadyExists(f'lease "{lease_id}": already exists') from None
        return Lease(id=lease_id, created_at=_dt(created), labels=dict(labels))

    def list_leases(self, namespace: str) -> list[Lease]:
        with self._engine.connect() as c:
            rows = c.execute(
                sa.select(leases).where(leases.c.namespace == namespace).order_by(leases.c.id)
            ).all()
        return [_lease(r) for r in rows]

    def delete_lease(self, namespace: str, lease_id: str) -> None:
        """NotFound when the lease does not exist."""
        with self._engine.begin() as c:
            self._require_lease(c, namespace, lease_id)
            c.execute(
                lease_resources.delete().where(
                    lease_resources.c.namespace == namespace,
                    lease_resources.c.lease_id == lease_id,
                )
            )
            c.execute(
                leases.delete().where(leases.c.namespace == namespace, leases.c.id == lease_id)
            )

    def _require_lease(self, c: sa.Connection, namespace: str, lease_id: str) -> None:
        row = c.execute(
            sa.select(leases.c.id).where(leases.c.namespace == namespace, leases.c.id == lease_id)
        ).first()
        if row is None:
            raise errors.NotFound(f'lease "{lease_id}": not found')

    def add_resource(self, namespace: str, lease_id: str, resource: Resource) -> None:
        """Idempotent; NotFound when the lease does not exist."""
        with self._engine.begin() as c:
            self._require_lease(c, namespace, lease_id)
            c.execute(
                sa.insert(lease_resources)
                .values(namespace=namespace, lease_id=lease_id, type=resource.type, id=resource.id)
                .prefix_with("OR IGNORE")
            )

    def delete_resource(self, namespace: str, lease_id: str, resource: Resource) -> None:
        """Idempotent; NotFound when the lease does not exist."""
        with self._engine.begin() as c:
            self._require_lease(c, namespace, lease_id)
            c.execute(
                lease_resources.delete().where(
                    lease_resources.c.namespace == namespace,
                    lease_resources.c.lease_id == lease_id,
                    lease_resources.c.type == resource.type,
                    lease_resources.c.id == resource.id,
                )
            )

    def list_resources(self, namespace: str, lease_id: str) -> list[Resource]:
        """NotFound when the lease does not exist."""
        with self._engine.connect() as c:
            self._require_lease(c, namespace, lease_id)
            rows = c.execute(
                sa.select(lease_resources.c.type, lease_resources.c.id)
                .where(
                    lease_resources.c.namespace == namespace,
                    lease_resources.c.lease_id == lease_id,
                )
                .order_by(lease_resources.c.type, lease_resources.c.id)
            ).all()
        return [Resource(id=r.id, type=r.type) for r in rows]

    def leases_with_resources(self, namespace: str) -> list[tuple[Lease, list[Resource]]]:
        """Every lease of ``namespace`` with its resources (for GC)."""
        with self._engine.connect() as c:
            rows = c.execute(sa.select(leases).where(leases.c.namespace == namespace)).all()
            res = c.execute(
                sa.select(lease_resources).where(lease_resources.c.namespace == namespace)
            ).all()
        by_lease: dict[str, list[Resource]] = {}
        for r in res:
            by_lease.setdefault(r.lease_id, []).append(Resource(id=r.id, type=r.type))
        return [(_lease(r), by_lease.get(r.id, [])) for r in sorted(rows, key=lambda r: r.id)]
