"""The container store: containerd's containers semantics over :mod:`.db`.

Validation and update masks follow containerd's ``metadata/containers.go``
(v1.6): the ID obeys the identifier rule, a runtime name and a spec are
required, a snapshot key needs a snapshotter, labels obey the 4 KiB rule.
``snapshotter`` and ``runtime.name`` are immutable. ``updated_at`` is the
server's clock, ``created_at`` never changes. On create the namespace is
made to exist (the metadata service, through :class:`Hooks`). A lease on
the request changes nothing: containers are GC roots, not lease resources.

Two points where containerd's behaviour is kept although it surprises:
replacing ``extensions`` (the path, or an update without paths) merges
the new extensions into the old ones, since containerd never deletes an
extension key it stored; and ``runtime.options`` cannot be updated at all.
One deliberate difference: ``extensions.<key>`` for a key the request does
not carry removes it (containerd would store an empty ``Any``).
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from google.protobuf import any_pb2
from google.protobuf.message import Message

from seacan import errors, filters, log, scope
from seacan.api.events import container_pb2 as events_pb
from seacan.containers import AnyValue, Container

from .db import ContainerDB

_log = log.get(__name__)

MAX_LABEL_BYTES = 4096
# An update without field paths replaces these (containerd's list).
FULL_UPDATE = ("labels", "spec", "extensions", "image", "snapshotkey")


class Hooks(Protocol):
    """What the store needs from the metadata service (MetaClient satisfies it)."""

    async def ensure_namespace(self, namespace: str, /) -> None: ...


class NoHooks:
    """For tests and tools: namespaces need no creating."""

    async def ensure_namespace(self, namespace: str, /) -> None:
        return None


class Publisher(Protocol):
    """Where container events go (the events service; ``seacan.events.proxy``)."""

    async def publish(self, topic: str, event: Message, /) -> None: ...


async def _publish(publisher: Publisher | None, topic: str, event: Message) -> None:
    """Events are best effort: a missing events service never fails the change."""
    if publisher is None:
        return
    try:
        await publisher.publish(topic, event)
    except errors.SeacanError as e:
        _log.warning("container.publish_failed", topic=topic, error=str(e))


def _q(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)


def _now() -> datetime:
    return datetime.now(UTC)


def _nonempty(m: Mapping[str, str]) -> dict[str, str]:
    """containerd stores no empty label values: setting a label to "" removes it."""
    return {k: v for k, v in m.items() if v != ""}


def validate(c: Container) -> None:
    """containerd's validateContainer; InvalidArgument naming the field."""
    try:
        scope.validate_identifier(c.id, "identifier")
    except errors.InvalidArgument as e:
        raise errors.InvalidArgument(f"container.ID: {e}") from None
    if any(k == "" for k in c.extensions):
        raise errors.InvalidArgument("container.Extension keys must not be zero-length")
    for key, value in c.labels.items():
        if not key:
            raise errors.InvalidArgument("containers.Labels: label key must not be empty")
        if len(key.encode()) + len(value.encode()) > MAX_LABEL_BYTES:
            raise errors.InvalidArgument(
                "containers.Labels: label key and value greater than maximum size "
                f"({MAX_LABEL_BYTES} bytes), key: {key[:10]}"
            )
    if not c.runtime.name:
        raise errors.InvalidArgument("container.Runtime.Name must be set")
    if c.spec is None:
        raise errors.InvalidArgument("container.Spec must be set")
    if c.snapshot_key and not c.snapshotter:
        raise errors.InvalidArgument(
            "container.Snapshotter must be set if container.SnapshotKey is set"
        )


def updated(
    current: Container, new: Container, fieldpaths: Sequence[str], now: datetime
) -> Container:
    """``current`` changed as ``Containers.Update`` with ``fieldpaths`` asks (pure)."""
    paths = list(fieldpaths)
    if not paths:
        paths = list(FULL_UPDATE)
        # Immutable fields must match on a full replace, so they can become
        # mutable later without changing what an old client means.
        if current.snapshotter != new.snapshotter:
            raise errors.InvalidArgument("container.Snapshotter field is immutable")
        if current.runtime.name != new.runtime.name:
            raise errors.InvalidArgument("container.Runtime.Name field is immutable")
    labels = dict(current.labels)
    extensions: dict[str, AnyValue] = dict(current.extensions)
    spec, image, snapshot_key = current.spec, current.image, current.snapshot_key
    for path in paths:
        if path.startswith("labels."):
            key = path[len("labels.") :]
            labels[key] = new.labels.get(key, "")
        elif path.startswith("extensions."):
            key = path[len("extensions.") :]
            if key in new.extensions:
                extensions[key] = new.extensions[key]
            else:
                extensions.pop(key, None)
        elif path == "labels":
            labels = dict(new.labels)
        elif path == "spec":
            spec = new.spec
        elif path == "extensions":
            extensions.update(new.extensions)
        elif path == "image":
            image = new.image
        elif path == "snapshotkey":
            snapshot_key = new.snapshot_key
        else:
            raise errors.InvalidArgument(f"cannot update {_q(path)} field on {_q(current.id)}")
    result = Container(
        id=current.id,
        labels=_nonempty(labels),
        image=image,
        runtime=current.runtime,
        spec=spec,
        snapshotter=current.snapshotter,
        snapshot_key=snapshot_key,
        created_at=current.created_at,
        updated_at=now,
        extensions=extensions,
    )
    try:
        validate(result)
    except errors.InvalidArgument as e:
        raise errors.InvalidArgument(f"update failed validation: {e}") from None
    return result


def _lookup(c: Container) -> filters.Lookup:
    return filters.lookup_from(
        {"id": c.id, "image": c.image, "runtime.name": c.runtime.name}, c.labels
    )


class ContainerStore:
    """The local :class:`seacan.containers.ContainerStore` (passes the testsuite)."""

    def __init__(self, db: ContainerDB, hooks: Hooks, publisher: Publisher | None = None) -> None:
        self._publisher = publisher
        self._db = db
        self._hooks = hooks

    @classmethod
    def open(cls, root: Path, hooks: Hooks, publisher: Publisher | None = None) -> ContainerStore:
        return cls(ContainerDB(root / "meta.db"), hooks, publisher)

    def close(self) -> None:
        self._db.close()

    async def get(self, id: str) -> Container:
        return self._db.get(id)

    async def list(self, filters_: Sequence[str] = ()) -> builtins.list[Container]:
        flt = filters.parse(list(filters_))
        return [c for c in self._db.list() if flt.match(_lookup(c))]

    async def create(self, container: Container) -> Container:
        ns = scope.namespace_required()
        try:
            validate(container)
        except errors.InvalidArgument as e:
            raise errors.InvalidArgument(f"create container failed validation: {e}") from None
        await self._hooks.ensure_namespace(ns)
        now = _now()
        record = Container(
            id=container.id,
            labels=_nonempty(container.labels),
            image=container.image,
            runtime=container.runtime,
            spec=container.spec,
            snapshotter=container.snapshotter,
            snapshot_key=container.snapshot_key,
            created_at=now,
            updated_at=now,
            extensions=dict(container.extensions),
        )
        self._db.create(record)
        _log.info(
            "container.created",
            namespace=ns,
            id=record.id,
            image=record.image,
            runtime=record.runtime.name,
        )
        opts = record.runtime.options
        event = events_pb.ContainerCreate(
            id=record.id,
            image=record.image,
            runtime=events_pb.ContainerCreate.Runtime(
                name=record.runtime.name,
                options=any_pb2.Any(type_url=opts.type_url, value=opts.value) if opts else None,
            ),
        )
        await _publish(self._publisher, "/containers/create", event)
        return record

    async def update(self, container: Container, fieldpaths: Sequence[str] = ()) -> Container:
        ns = scope.namespace_required()
        if not container.id:
            raise errors.InvalidArgument("must specify a container id")
        now = _now()
        result = self._db.update(container.id, lambda cur: updated(cur, container, fieldpaths, now))
        _log.info("container.updated", namespace=ns, id=container.id, fields=list(fieldpaths))
        event = events_pb.ContainerUpdate(
            id=result.id, image=result.image, labels=result.labels, snapshot_key=result.snapshot_key
        )
        await _publish(self._publisher, "/containers/update", event)
        return result

    async def delete(self, id: str) -> None:
        ns = scope.namespace_required()
        self._db.delete(id)
        _log.info("container.deleted", namespace=ns, id=id)
        await _publish(self._publisher, "/containers/delete", events_pb.ContainerDelete(id=id))
