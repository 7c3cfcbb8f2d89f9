"""Namespaces: the partitions every image, blob, snapshot and lease lives in.

A namespace is a name (containerd's identifier rule) with labels. Clients
read two labels from it: ``containerd.io/defaults/snapshotter`` and
``containerd.io/defaults/runtime``. A namespace comes into being when it is
created explicitly or when a service first writes into it (the services call
:meth:`seacan.metaclient.MetaClient.ensure_namespace`). It can be deleted
only when no images, blobs or snapshots are left in it.

Implementations: the metadata service's store and
:class:`seacan.namespaces.proxy.RemoteNamespaces`.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

LABEL_DEFAULT_SNAPSHOTTER = "containerd.io/defaults/snapshotter"
LABEL_DEFAULT_RUNTIME = "containerd.io/defaults/runtime"


@dataclass(frozen=True, slots=True)
class Namespace:
    name: str
    labels: Mapping[str, str] = field(default_factory=dict)


class Store(Protocol):
    async def get(self, name: str) -> Namespace:
        """NotFound (``namespace "x": not found``) for an unknown namespace."""
        ...

    async def list(self, filter: str = "") -> builtins.list[Namespace]:
        """Filter fields: ``name``, ``labels.<key>``."""
        ...

    async def create(self, name: str, labels: Mapping[str, str] | None = None) -> Namespace:
        """InvalidArgument for a bad name or label; AlreadyExists if taken."""
        ...

    async def update(self, namespace: Namespace, fieldpaths: Sequence[str] = ()) -> Namespace:
        """Paths ``labels`` (replace all) or ``labels.<key>`` (set, or delete when
        the new value is empty); no paths replaces all labels."""
        ...

    async def delete(self, name: str) -> None:
        """FailedPrecondition while images, blobs or snapshots remain in it."""
        ...


__all__ = ["LABEL_DEFAULT_RUNTIME", "LABEL_DEFAULT_SNAPSHOTTER", "Namespace", "Store"]
