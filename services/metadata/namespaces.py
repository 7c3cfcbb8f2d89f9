"""The namespace store: containerd's Namespaces semantics over :mod:`.db`."""

from __future__ import annotations

import builtins
import contextlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Protocol

from seacan import errors, filters, log, scope
from seacan import labels as labels_
from seacan.namespaces import Namespace

from .db import MetaDB

_log = log.get(__name__)

MAX_LABEL_BYTES = labels_.MAX_LABEL_BYTES


def validate_labels(labels: Mapping[str, str], what: str) -> None:
    """containerd's label rule (see :mod:`seacan.labels`)."""
    labels_.validate(labels, what)


@contextlib.contextmanager
def scoped(namespace: str) -> Iterator[None]:
    """Run calls to other services in ``namespace`` (no lease); restores the scope after."""
    saved = scope.namespace_optional(), scope.lease()
    scope.set_scope(namespace, "")
    try:
        yield
    finally:
        scope.set_scope(*saved)


class Occupancy(Protocol):
    """Which kinds of objects other services still hold in a namespace."""

    async def kinds(self, namespace: str, /) -> builtins.list[str]:
        """E.g. ``["images", "blobs"]``; empty when the namespace is empty."""
        ...


class NamespaceStore:
    """:class:`seacan.namespaces.Store` for the metadata service.

    The Namespaces API is not itself namespaced: names come from requests,
    not from the request scope.
    """

    def __init__(self, db: MetaDB, occupancy: Occupancy) -> None:
        self._db = db
        self._occupancy = occupancy

    async def get(self, name: str) -> Namespace:
        return Namespace(name, self._db.namespace_labels(name))

    async def list(self, filter: str = "") -> builtins.list[Namespace]:
        f = filters.parse(filter)
        return [
            Namespace(name, labels)
            for name, labels in self._db.list_namespaces()
            if f.match(filters.lookup_from({"name": name}, labels))
        ]

    async def create(self, name: str, labels: Mapping[str, str] | None = None) -> Namespace:
        scope.validate_identifier(name, "namespace")
        labels = dict(labels or {})
        validate_labels(labels, "namespace.Labels")
        self._db.create_namespace(name, labels)
        _log.info("namespace.created", namespace=name)
        return Namespace(name, labels)

    async def ensure(self, name: str) -> None:
        """Create ``name`` without labels unless it exists."""
        scope.validate_identifier(name, "namespace")
        self._db.ensure_namespace(name)

    async def update(self, namespace: Namespace, fieldpaths: Sequence[str] = ()) -> Namespace:
        name = namespace.name
        current = self._db.namespace_labels(name)
        incoming = dict(namespace.labels)
        if not fieldpaths or "labels" in fieldpaths:
            if any(p != "labels" for p in fieldpaths):
                raise errors.InvalidArgument('cannot combine "labels" with other field paths')
            labels = {k: v for k, v in incoming.items() if v}
        else:
            labels = dict(current)
            for path in fieldpaths:
                if not path.startswith("labels."):
                    raise errors.InvalidArgument(f'cannot update "{path}" field')
                key = path[len("labels.") :]
                value = incoming.get(key, "")
                if value:
                    labels[key] = value
                else:
                    labels.pop(key, None)
        validate_labels(labels, "namespace.Labels")
        self._db.set_namespace_labels(name, labels)
        _log.info("namespace.updated", namespace=name)
        return Namespace(name, labels)

    async def delete(self, name: str) -> None:
        self._db.namespace_labels(name)  # NotFound first
        remaining = await self._occupancy.kinds(name)
        if remaining:
            raise errors.FailedPrecondition(
                f'namespace "{name}" must be empty, but it still has {", ".join(remaining)}'
            )
        self._db.delete_namespace(name)
        _log.info("namespace.deleted", namespace=name)
