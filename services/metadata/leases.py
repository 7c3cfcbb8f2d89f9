"""The lease store: containerd's lease manager over :mod:`.db`, per namespace."""

from __future__ import annotations

import builtins
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence

from seacan import errors, leases, log, scope
from seacan import filters as flt
from seacan.leases import Lease, Resource

from .db import MetaDB
from .namespaces import validate_labels

_log = log.get(__name__)

# The OCI digest grammar: algorithm ":" encoded.
_DIGEST = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$")
MAX_ID = 256


def validate_resource(resource: Resource) -> Resource:
    """containerd's ``parseLeaseResource``: known types, digests for content."""
    parts = resource.type.split("/")
    if not resource.id:
        raise errors.InvalidArgument(f"resource id of type {resource.type} must not be empty")
    if parts[0] in (leases.CONTENT, leases.INGESTS):
        if len(parts) != 1:
            raise errors.InvalidArgument(f"invalid resource type {resource.type}")
        if parts[0] == leases.CONTENT and not _DIGEST.match(resource.id):
            raise errors.InvalidArgument(f"invalid content resource id {resource.id}")
    elif parts[0] == "snapshots":
        if len(parts) != 2 or not parts[1]:
            raise errors.InvalidArgument(f"invalid snapshot resource type {resource.type}")
    else:
        raise errors.NotImplemented_(f"resource type {resource.type} not supported yet")
    return resource


class LeaseStore:
    """:class:`seacan.leases.Manager` in the request's namespace.

    ``collect`` runs a garbage collection; ``delete(sync=True)`` awaits it.
    """

    def __init__(self, db: MetaDB, collect: Callable[[], Awaitable[object]] | None = None) -> None:
        self._db = db
        self._collect = collect

    async def create(self, id: str = "", labels: Mapping[str, str] | None = None) -> Lease:
        ns = scope.namespace_required()
        lease_id = id or leases.random_id()
        if len(lease_id) > MAX_ID or "\x00" in lease_id:
            raise errors.InvalidArgument(f"invalid lease id {lease_id[:64]!r}")
        labels = dict(labels or {})
        validate_labels(labels, "lease.Labels")
        lease = self._db.create_lease(ns, lease_id, labels)
        _log.info("lease.created", namespace=ns, lease=lease_id)
        return lease

    async def delete(self, id: str, sync: bool = False) -> None:
        ns = scope.namespace_required()
        self._db.delete_lease(ns, id)
        _log.info("lease.deleted", namespace=ns, lease=id, sync=sync)
        if sync and self._collect is not None:
            await self._collect()

    async def list(self, filters: Sequence[str] = ()) -> builtins.list[Lease]:
        ns = scope.namespace_required()
        f = flt.parse(filters)
        return [
            lease
            for lease in self._db.list_leases(ns)
            if f.match(flt.lookup_from({"id": lease.id}, lease.labels))
        ]

    async def add_resource(self, id: str, resource: Resource) -> None:
        ns = scope.namespace_required()
        self._db.add_resource(ns, id, validate_resource(resource))

    async def delete_resource(self, id: str, resource: Resource) -> None:
        ns = scope.namespace_required()
        self._db.delete_resource(ns, id, validate_resource(resource))

    async def list_resources(self, id: str) -> builtins.list[Resource]:
        ns = scope.namespace_required()
        return self._db.list_resources(ns, id)
