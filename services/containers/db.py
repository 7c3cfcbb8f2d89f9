"""Container records per namespace: the containers service's SQLite metadata.

One row per (namespace, id). ``Any`` payloads are kept as type URL plus
bytes; extensions as JSON ``{key: [type_url, base64(value)]}``. Calls are
short and synchronous; the store runs them on the event loop, which makes
each one atomic with respect to other requests. The namespace is the
request's (:func:`seacan.scope.namespace_required`).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from seacan import errors, scope
from seacan.containers import AnyValue, Container, Runtime
from seacan.services import sqlite

_md = sa.MetaData()

containers = sa.Table(
    "containers",
    _md,
    sa.Column("namespace", sa.Text, primary_key=True),
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("labels", sa.Text, nullable=False, default="{}"),
    sa.Column("image", sa.Text, nullable=False, default=""),
    sa.Column("runtime_name", sa.Text, nullable=False),
    sa.Column("runtime_options_type", sa.Text, nullable=True),  # NULL: no options sent
    sa.Column("runtime_options", sa.LargeBinary, nullable=True),
    sa.Column("spec_type", sa.Text, nullable=True),
    sa.Column("spec", sa.LargeBinary, nullable=True),
    sa.Column("snapshotter", sa.Text, nullable=False, default=""),
    sa.Column("snapshot_key", sa.Text, nullable=False, default=""),
    sa.Column("extensions", sa.Text, nullable=False, default="{}"),
    sa.Column("created_at", sa.BigInteger, nullable=False),  # microseconds since the epoch
    sa.Column("updated_at", sa.BigInteger, nullable=False),
)


def _us(dt: datetime | None) -> int:
    assert dt is not None
    return round(dt.timestamp() * 1_000_000)


def _dt(us: int) -> datetime:
    return datetime.fromtimestamp(us / 1_000_000, UTC)


def _any(type_url: str | None, value: bytes | None) -> AnyValue | None:
    return None if type_url is None else AnyValue(type_url, bytes(value or b""))


def _ext_dump(extensions: Mapping[str, AnyValue]) -> str:
    return json.dumps(
        {k: [v.type_url, base64.b64encode(v.value).decode()] for k, v in extensions.items()},
        sort_keys=True,
    )


def _ext_load(text: str) -> dict[str, AnyValue]:
    return {k: AnyValue(t, base64.b64decode(v)) for k, (t, v) in json.loads(text).items()}


def _container(row: Any) -> Container:
    return Container(
        id=row.id,
        labels=json.loads(row.labels),
        image=row.image,
        runtime=Runtime(
            name=row.runtime_name,
            options=_any(row.runtime_options_type, row.runtime_options),
        ),
        spec=_any(row.spec_type, row.spec),
        snapshotter=row.snapshotter,
        snapshot_key=row.snapshot_key,
        created_at=_dt(row.created_at),
        updated_at=_dt(row.updated_at),
        extensions=_ext_load(row.extensions),
    )


def _values(c: Container) -> dict[str, Any]:
    opts, spec = c.runtime.options, c.spec
    return {
        "labels": json.dumps(dict(c.labels), sort_keys=True),
        "image": c.image,
        "runtime_name": c.runtime.name,
        "runtime_options_type": None if opts is None else opts.type_url,
        "runtime_options": None if opts is None else opts.value,
        "spec_type": None if spec is None else spec.type_url,
        "spec": None if spec is None else spec.value,
        "snapshotter": c.snapshotter,
        "snapshot_key": c.snapshot_key,
        "extensions": _ext_dump(c.extensions),
        "created_at": _us(c.created_at),
        "updated_at": _us(c.updated_at),
    }


def _q(s: str) -> str:
    """Go's %q, near enough for IDs."""
    return json.dumps(s, ensure_ascii=False)


class ContainerDB:
    """Container records in ``meta.db``, in the request's namespace."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._engine = sqlite.open_engine(path, _md)

    def close(self) -> None:
        self._engine.dispose()

    def get(self, id: str) -> Container:
        ns = scope.namespace_required()
        with self._engine.connect() as c:
            row = c.execute(
                sa.select(containers).where(containers.c.namespace == ns, containers.c.id == id)
            ).first()
        if row is None:
            raise errors.NotFound(f"container {_q(id)} in namespace {_q(ns)}: not found")
        return _container(row)

    def list(self) -> list[Container]:
        ns = scope.namespace_required()
        with self._engine.connect() as c:
            rows = c.execute(
                sa.select(containers).where(containers.c.namespace == ns).order_by(containers.c.id)
            ).all()
        return [_container(r) for r in rows]

    def create(self, container: Container) -> Container:
        """Insert ``container``; AlreadyExists if the ID is taken."""
        ns = scope.namespace_required()
        stmt = (
            sa.insert(containers)
            .values(namespace=ns, id=container.id, **_values(container))
            .prefix_with("OR IGNORE")
        )
        with self._engine.begin() as c:
            if c.execute(stmt).rowcount != 1:
                raise errors.AlreadyExists(f"container {_q(container.id)}: already exists")
        return container

    def update(self, id: str, change: Callable[[Container], Container]) -> Container:
        """Replace the record with ``change(current)``, in one transaction; NotFound if absent."""
        ns = scope.namespace_required()
        where = (containers.c.namespace == ns, containers.c.id == id)
        with self._engine.begin() as c:
            row = c.execute(sa.select(containers).where(*where)).first()
            if row is None:
                raise errors.NotFound(f"container {_q(id)}: not found")
            updated = change(_container(row))
            c.execute(sa.update(containers).where(*where).values(**_values(updated)))
        return updated

    def delete(self, id: str) -> None:
        ns = scope.namespace_required()
        with self._engine.begin() as c:
            res = c.execute(
                sa.delete(containers).where(containers.c.namespace == ns, containers.c.id == id)
            )
            if res.rowcount != 1:
                raise errors.NotFound(f"container {id}: not found")
