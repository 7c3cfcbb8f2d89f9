"""Leases: hold objects back from garbage collection while a client works.

A lease belongs to a namespace and names *resources* (``content`` digests,
``ingests`` refs, ``snapshots/<snapshotter>`` keys). While a lease exists and
has not expired (label ``containerd.io/gc.expire``, RFC 3339), the garbage
collector treats its resources as roots. Objects created under a
``containerd-lease`` header are added to that lease by the service that
creates them (see :class:`seacan.metaclient.MetaClient`).

A pull, as ``ctr`` does it::

    lease = await mgr.create(labels=leases.expire_in(timedelta(hours=24)))
    scope.set_scope(ns, lease.id)        # every later call carries the lease
    ...                                  # write blobs, create the image, unpack
    await mgr.delete(lease.id)           # from now on only the image keeps them

Implementations: the metadata service's store and
:class:`seacan.leases.proxy.RemoteLeases`.
"""

from __future__ import annotations

import base64
import builtins
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

CONTENT = "content"
INGESTS = "ingests"
SNAPSHOTS_PREFIX = "snapshots/"

LABEL_EXPIRE = "containerd.io/gc.expire"
LABEL_FLAT = "containerd.io/gc.flat"


@dataclass(frozen=True, slots=True)
class Lease:
    id: str
    created_at: datetime | None = None
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Resource:
    """``Resource("sha256:...", "content")``, ``Resource("<key>", "snapshots/overlayfs")``."""

    id: str
    type: str


class Manager(Protocol):
    async def create(self, id: str = "", labels: Mapping[str, str] | None = None) -> Lease:
        """A new lease (a random ID when ``id`` is empty); AlreadyExists if taken."""
        ...

    async def delete(self, id: str, sync: bool = False) -> None:
        """NotFound if missing; ``sync`` collects garbage before returning."""
        ...

    async def list(self, filters: Sequence[str] = ()) -> builtins.list[Lease]:
        """Filter fields: ``id``, ``labels.<key>``."""
        ...

    async def add_resource(self, id: str, resource: Resource) -> None: ...

    async def delete_resource(self, id: str, resource: Resource) -> None: ...

    async def list_resources(self, id: str) -> builtins.list[Resource]: ...


def snapshots(snapshotter: str) -> str:
    """The resource type of a snapshotter's snapshots: ``snapshots/overlayfs``."""
    return SNAPSHOTS_PREFIX + snapshotter


def random_id() -> str:
    """A lease ID like containerd's: ``<nanoseconds of the second>-<4 url-safe chars>``."""
    nanos = time.time_ns() % 1_000_000_000
    return f"{nanos}-{base64.urlsafe_b64encode(secrets.token_bytes(3)).decode()}"


def expire_in(ttl: timedelta, now: datetime | None = None) -> dict[str, str]:
    """The label that makes a lease expire ``ttl`` from now (ctr uses 24 hours)."""
    at = (now or datetime.now(UTC)) + ttl
    return {LABEL_EXPIRE: at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}


__all__ = [
    "CONTENT",
    "INGESTS",
    "LABEL_EXPIRE",
    "LABEL_FLAT",
    "Lease",
    "Manager",
    "Resource",
    "expire_in",
    "random_id",
    "snapshots",
]
