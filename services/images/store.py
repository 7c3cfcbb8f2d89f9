"""The image store: containerd's images service semantics over :mod:`.db`.

Validation and update masks follow containerd's ``metadata/images.go``:
name and target (media type, digest) are required, labels obey the 4 KiB
rule, ``updated_at`` is the server's clock, ``created_at`` never changes.
On create the namespace is made to exist (the metadata service, through
:class:`Hooks`); ``delete(sync=True)`` runs a garbage collection before
returning, as ``Images.Delete{sync}`` does in containerd.
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from seacan import content, errors, filters, log, oci, scope
from seacan.images import Image
from seacan.metaclient import MetaClient

from .db import ImageDB

_log = log.get(__name__)


class Hooks(Protocol):
    """What the store needs from the metadata service."""

    async def ensure_namespace(self, namespace: str, /) -> None: ...

    async def collect_garbage(self) -> None:
        """Collect garbage now and wait for it (``Images.Delete{sync: true}``)."""
        ...


class MetaHooks:
    """:class:`Hooks` through the metadata service's client."""

    def __init__(self, meta: MetaClient) -> None:
        self._meta = meta

    async def ensure_namespace(self, namespace: str, /) -> None:
        await self._meta.ensure_namespace(namespace)

    async def collect_garbage(self) -> None:
        removed = await self._meta.collect_garbage()
        _log.info("images.gc", removed=len(removed))


class NoHooks:
    """For tests and tools: namespaces need no creating, there is nothing to collect."""

    async def ensure_namespace(self, namespace: str, /) -> None:
        return None

    async def collect_garbage(self) -> None:
        return None


def _q(name: str) -> str:
    return json.dumps(name, ensure_ascii=False)


def _now() -> datetime:
    return datetime.now(UTC)


def _nonempty(m: dict[str, str]) -> dict[str, str]:
    """containerd stores no empty values: setting a label to "" removes it."""
    return {k: v for k, v in m.items() if v != ""}


def validate(image: Image) -> None:
    if not image.name:
        raise errors.InvalidArgument("image name must not be empty")
    content.validate_labels(image.labels)
    if not image.target.media_type:
        raise errors.InvalidArgument(f"image {_q(image.name)}: Target.MediaType must be set")
    if not image.target.digest:
        raise errors.InvalidArgument(f"image {_q(image.name)}: Target.Digest must be set")
    oci.validate_digest(image.target.digest, f"image {_q(image.name)}: Target.Digest")
    if image.target.size < 0:
        raise errors.InvalidArgument(f"image {_q(image.name)}: Target.Size must not be negative")


def updated(current: Image, new: Image, fieldpaths: Sequence[str], now: datetime) -> Image:
    """``current`` changed as ``Images.Update`` with ``fieldpaths`` asks (pure)."""
    if not fieldpaths:
        labels = dict(new.labels)
        target = new.target
    else:
        labels = dict(current.labels)
        target = current.target
        annotations = dict(target.annotations)
        for path in fieldpaths:
            if path.startswith("labels."):
                key = path[len("labels.") :]
                labels[key] = new.labels.get(key, "")
            elif path.startswith("annotations."):
                key = path[len("annotations.") :]
                annotations[key] = new.target.annotations.get(key, "")
            elif path == "labels":
                labels = dict(new.labels)
            elif path == "target":
                target = new.target
                annotations = dict(new.target.annotations)
            elif path == "annotations":
                annotations = dict(new.target.annotations)
            else:
                raise errors.InvalidArgument(
                    f"cannot update {_q(path)} field on image {_q(current.name)}"
                )
        target = replace(target, annotations=annotations)
    target = replace(target, annotations=_nonempty(dict(target.annotations)))
    result = Image(
        name=current.name,
        labels=_nonempty(labels),
        target=target,
        created_at=current.created_at,
        updated_at=now,
    )
    validate(result)
    return result


def _lookup(image: Image) -> filters.Lookup:
    def lookup(path: Sequence[str]) -> str | None:
        if not path:
            return None
        head, rest = path[0], path[1:]
        if head == "name":
            return image.name or None
        if head == "target" and len(rest) == 1:
            if rest[0] == "digest":
                return image.target.digest or None
            if rest[0] == "mediatype":
                return image.target.media_type or None
            return None
        if head == "labels" and rest:
            return image.labels.get(".".join(rest))
        if head == "annotations" and rest:
            return image.target.annotations.get(".".join(rest))
        return None

    return lookup


class ImageStore:
    """The local :class:`seacan.images.ImageStore` (passes :mod:`seacan.images.testsuite`)."""

    def __init__(self, db: ImageDB, hooks: Hooks) -> None:
        self._db = db
        self._hooks = hooks

    @classmethod
    def open(cls, root: Path, hooks: Hooks) -> ImageStore:
        return cls(ImageDB(root / "meta.db"), hooks)

    def close(self) -> None:
        self._db.close()

    async def get(self, name: str) -> Image:
        return self._db.get(name)

    async def list(self, filters_: Sequence[str] = ()) -> builtins.list[Image]:
        flt = filters.parse(list(filters_))
        return [i for i in self._db.list() if flt.match(_lookup(i))]

    async def create(self, image: Image) -> Image:
        ns = scope.namespace_required()
        validate(image)
        await self._hooks.ensure_namespace(ns)
        now = _now()
        image = Image(
            name=image.name,
            labels=_nonempty(dict(image.labels)),
            target=replace(image.target, annotations=_nonempty(dict(image.target.annotations))),
            created_at=now,
            updated_at=now,
        )
        created = self._db.create(image)
        _log.info("image.created", namespace=ns, name=image.name, target=image.target.digest)
        return created

    async def update(self, image: Image, fieldpaths: Sequence[str] = ()) -> Image:
        if not image.name:
            raise errors.InvalidArgument("image name is required for update")
        now = _now()
        result = self._db.update(image.name, lambda cur: updated(cur, image, fieldpaths, now))
        _log.info("image.updated", name=image.name, fields=list(fieldpaths))
        return result

    async def delete(self, name: str, sync: bool = False) -> None:
        self._db.delete(name)
        _log.info("image.deleted", name=name, sync=sync)
        if sync:
            await self._hooks.collect_garbage()
