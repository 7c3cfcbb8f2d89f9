"""MetaClient: what other services and the CLI need from the metadata service.

- The content and snapshots services call :meth:`MetaClient.ensure_namespace`
  on their first write in a namespace, and :meth:`MetaClient.add_lease_resource`
  for every object created under a ``containerd-lease`` header, *before* the
  object becomes visible, so the garbage collector never sees it unprotected.
- ``seacan prune`` calls :meth:`MetaClient.collect_garbage`.

Lease calls run in the current request scope's namespace. While the metadata
service is being restarted, these calls wait for it (up to ``RESTART_GRACE``)
rather than failing the request that needed them.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

import grpc.aio

from seacan import errors, grpcutil
from seacan.api.services.gc.v1 import gc_pb2, gc_pb2_grpc
from seacan.gc import Removed
from seacan.leases import Resource
from seacan.leases.proxy import RemoteLeases
from seacan.namespaces.proxy import RemoteNamespaces

T = TypeVar("T")


class Hooks(Protocol):
    """What a store needs from the metadata service; :class:`MetaClient` is one."""

    async def ensure_namespace(self, namespace: str, /) -> None: ...

    async def add_lease_resource(
        self, lease_id: str, resource_id: str, resource_type: str, /
    ) -> None: ...


class NoHooks:
    """Hooks for a store that runs without the metadata service (tools, tests)."""

    async def ensure_namespace(self, namespace: str, /) -> None:
        return None

    async def add_lease_resource(
        self, lease_id: str, resource_id: str, resource_type: str, /
    ) -> None:
        return None


# The metadata service restarts within a second or two (seacand restarts it);
# calls made meanwhile wait for it this long instead of failing the caller's request.
RESTART_GRACE = 10.0


async def _while_restarting(call: Callable[[], Awaitable[T]]) -> T:
    """``call()``, retried while the metadata service is unreachable (being restarted)."""
    deadline = time.monotonic() + RESTART_GRACE
    while True:
        try:
            return await call()
        except errors.Unavailable:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


class MetaClient:
    def __init__(self, channel: grpc.aio.Channel) -> None:
        self.namespaces = RemoteNamespaces(channel)
        self.leases = RemoteLeases(channel)
        self._gc = gc_pb2_grpc.GCStub(channel)
        self._known: set[str] = set()

    async def ensure_namespace(self, namespace: str, /) -> None:
        """Create ``namespace`` unless it exists; remembered, so later calls are free."""
        if namespace in self._known:
            return
        with contextlib.suppress(errors.AlreadyExists):
            await _while_restarting(lambda: self.namespaces.create(namespace))
        self._known.add(namespace)

    def forget_namespace(self, namespace: str, /) -> None:
        """Drop ``namespace`` from the cache (after it was deleted)."""
        self._known.discard(namespace)

    async def add_lease_resource(
        self, lease_id: str, resource_id: str, resource_type: str, /
    ) -> None:
        """Attach a resource to a lease; NotFound if the lease does not exist."""
        resource = Resource(id=resource_id, type=resource_type)
        await _while_restarting(lambda: self.leases.add_resource(lease_id, resource))

    async def collect_garbage(self, dry_run: bool = False) -> list[Removed]:
        """Run a collection now; what it removed (or would remove, on a dry run).

        Unavailable, with nothing removed, when a source of roots is unreachable.
        """
        async with grpcutil.native_errors():
            resp = await self._gc.Collect(
                gc_pb2.CollectRequest(dry_run=dry_run), metadata=grpcutil.scope_metadata()
            )
        return [Removed(namespace=r.namespace, type=r.type, id=r.id) for r in resp.removed]
