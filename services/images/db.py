"""Image records per namespace: the images service's SQLite metadata.

One row per (namespace, name). Calls are short and synchronous; the store
runs them on the event loop, which makes each one atomic with respect to
other requests. The namespace is the request's (:func:`seacan.scope.namespace_required`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from seacan import errors, scope
from seacan.images import Image
from seacan.oci import Descriptor
from seacan.services import sqlite

_md = sa.MetaData()

images = sa.Table(
    "images",
    _md,
    sa.Column("namespace", sa.Text, primary_key=True),
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("labels", sa.Text, nullable=False, default="{}"),
    sa.Column("media_type", sa.Text, nullable=False),
    sa.Column("digest", sa.Text, nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("annotations", sa.Text, nullable=False, default="{}"),
    sa.Column("created_at", sa.BigInteger, nullable=False),  # microseconds since the epoch
    sa.Column("updated_at", sa.BigInteger, nullable=False),
    sa.Index("images_digest", "namespace", "digest"),
)


def _us(dt: datetime | None) -> int:
    assert dt is not None
    return round(dt.timestamp() * 1_000_000)


def _dt(us: int) -> datetime:
    return datetime.fromtimestamp(us / 1_000_000, UTC)


def _image(row: Any) -> Image:
    return Image(
        name=row.name,
        labels=json.loads(row.labels),
        target=Descriptor(
            media_type=row.media_type,
            digest=row.digest,
            size=row.size,
            annotations=json.loads(row.annotations),
        ),
        created_at=_dt(row.created_at),
        updated_at=_dt(row.updated_at),
    )


def _values(image: Image) -> dict[str, Any]:
    return {
        "labels": json.dumps(dict(image.labels), sort_keys=True),
        "media_type": image.target.media_type,
        "digest": image.target.digest,
        "size": image.target.size,
        "annotations": json.dumps(dict(image.target.annotations), sort_keys=True),
        "created_at": _us(image.created_at),
        "updated_at": _us(image.updated_at),
    }


def _quote(name: str) -> str:
    return json.dumps(name, ensure_ascii=False)


def _not_found(name: str) -> errors.NotFound:
    return errors.NotFound(f"image {_quote(name)}: not found")


class ImageDB:
    """Image records in ``meta.db``, in the request's namespace."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._engine = sqlite.open_engine(path, _md)

    def close(self) -> None:
        self._engine.dispose()

    def get(self, name: str) -> Image:
        ns = scope.namespace_required()
        with self._engine.connect() as c:
            row = c.execute(
                sa.select(images).where(images.c.namespace == ns, images.c.name == name)
            ).first()
        if row is None:
            raise _not_found(name)
        return _image(row)

    def list(self) -> list[Image]:
        ns = scope.namespace_required()
        with self._engine.connect() as c:
            rows = c.execute(
                sa.select(images).where(images.c.namespace == ns).order_by(images.c.name)
            ).all()
        return [_image(r) for r in rows]

    def create(self, image: Image) -> Image:
        """Insert ``image``; AlreadyExists if the name is taken."""
        ns = scope.namespace_required()
        stmt = (
            sa.insert(images)
            .values(namespace=ns, name=image.name, **_values(image))
            .prefix_with("OR IGNORE")
        )
        with self._engine.begin() as c:
            if c.execute(stmt).rowcount != 1:
                raise errors.AlreadyExists(f"image {_quote(image.name)}: already exists")
        return image

    def update(self, name: str, change: Callable[[Image], Image]) -> Image:
        """Replace the record with ``change(current)``, in one transaction; NotFound if absent."""
        ns = scope.namespace_required()
        where = (images.c.namespace == ns, images.c.name == name)
        with self._engine.begin() as c:
            row = c.execute(sa.select(images).where(*where)).first()
            if row is None:
                raise _not_found(name)
            updated = change(_image(row))
            c.execute(sa.update(images).where(*where).values(**_values(updated)))
        return updated

    def delete(self, name: str) -> None:
        ns = scope.namespace_required()
        with self._engine.begin() as c:
            res = c.execute(
                sa.delete(images).where(images.c.namespace == ns, images.c.name == name)
            )
            if res.rowcount != 1:
                raise _not_found(name)
