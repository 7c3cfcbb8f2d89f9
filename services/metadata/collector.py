"""The garbage collector's executor: gather, plan (:mod:`seacan.gc`), sweep.

One collection, for every namespace the metadata service knows:

1. **Gather** an :class:`seacan.gc.Inventory` per namespace, in this order:
   the objects that exist (content, then snapshots of each snapshotter),
   then the leases, then every :class:`RootSource`. Objects are listed
   first so that anything created while we gather is simply not a
   candidate, and a lease deleted after an image was created cannot expose
   what the image holds. If *any* listing fails or times out, the whole
   collection is aborted (Unavailable) and nothing is removed: a sweep
   never runs with missing roots.
2. **Plan** with :func:`seacan.gc.plan` (pure).
3. **Sweep**: delete expired leases, then remove the plan's snapshots
   (children first) and content through the other services. A failed
   removal is logged (``gc.remove_failed``) and the sweep goes on; a parent
   whose child failed is skipped. Finally each snapshotter's Cleanup runs.

Only one collection runs at a time. Triggers: the GC.Collect RPC,
Leases.Delete{sync}, and :meth:`Collector.run_periodic` (once shortly after
start, then every ``gc_interval`` seconds; an interval of 0 disables both).
"""

from __future__ import annotations

import asyncio
import builtins
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Protocol, TypeVar

from seacan import errors, gc, log
from seacan.gc import Inventory, Object, Ref, Removed, Root

from .db import MetaDB
from .namespaces import scoped

_log = log.get(__name__)

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)

GATHER_TIMEOUT = 120.0  # seconds for listing everything in every namespace
REMOVE_TIMEOUT = 60.0  # seconds for one removal


# -- what the collector needs from the other services (their proxies fit) ----


class Labelled(Protocol):
    @property
    def labels(self) -> Mapping[str, str]: ...


class BlobInfo(Labelled, Protocol):
    @property
    def digest(self) -> str: ...


class SnapshotInfo(Labelled, Protocol):
    @property
    def name(self) -> str: ...

    @property
    def parent(self) -> str: ...


class Target(Protocol):
    @property
    def digest(self) -> str: ...


class ImageInfo(Labelled, Protocol):
    @property
    def name(self) -> str: ...

    @property
    def target(self) -> Target: ...


Listing = AsyncIterator[T_co] | Awaitable[Sequence[T_co]]


class ContentPeer(Protocol):
    def list(self, filters: Sequence[str] = ...) -> Listing[BlobInfo]: ...

    async def delete(self, digest: str) -> None: ...


class SnapshotPeer(Protocol):
    def list(self, filters: Sequence[str] = ...) -> Listing[SnapshotInfo]: ...

    async def remove(self, key: str) -> None: ...

    async def cleanup(self) -> None: ...


class ImagePeer(Protocol):
    def list(self, filters: Sequence[str] = ...) -> Listing[ImageInfo]: ...


async def listed(result: Listing[T]) -> builtins.list[T]:
    """All items of a List call, whether it streams or returns a list."""
    if isinstance(result, AsyncIterator):
        return [item async for item in result]
    return builtins.list(await result)


async def has_any(result: Listing[object]) -> bool:
    """Whether a List call yields at least one item (stops a stream early)."""
    if isinstance(result, AsyncIterator):
        try:
            async for _ in result:
                return True
            return False
        finally:
            aclose = getattr(result, "aclose", None)
            if aclose is not None:
                await aclose()
    return bool(await result)


# -- roots ---------------------------------------------------------------------


class RootSource(Protocol):
    """A kind of object that keeps others alive, read in one namespace's scope.

    Sources today: :class:`ImageRoots`. Containers (their snapshot key, and
    their ``gc.ref.*`` labels) become a source when the containers service
    exists. A source raises when it cannot answer; the collection then aborts.
    """

    name: str

    async def roots(self) -> builtins.list[Root]: ...


class ImageRoots:
    """Each image keeps its target and whatever its ``gc.ref.*`` labels name."""

    name = "images"

    def __init__(self, images: ImagePeer) -> None:
        self._images = images

    async def roots(self) -> builtins.list[Root]:
        return [
            Root(f"image {i.name}", (Ref(gc.CONTENT, i.target.digest),), dict(i.labels))
            for i in await listed(self._images.list())
        ]


# -- occupancy (for Namespaces.Delete) -----------------------------------------


class ListPeer(Protocol):
    """Anything that lists objects in the current namespace (containers)."""

    def list(self, filters: Sequence[str] = ...) -> Listing[object]: ...


class PeerOccupancy:
    """:class:`.namespaces.Occupancy` by asking the other services."""

    def __init__(
        self,
        content: ContentPeer,
        snapshotters: Mapping[str, SnapshotPeer],
        images: ImagePeer,
        containers: ListPeer | None = None,
    ) -> None:
        self._content = content
        self._snapshotters = snapshotters
        self._images = images
        self._containers = containers

    async def kinds(self, namespace: str, /) -> builtins.list[str]:
        out: builtins.list[str] = []
        with scoped(namespace):
            if await has_any(self._images.list()):
                out.append("images")
            if self._containers is not None and await has_any(self._containers.list()):
                out.append("containers")
            if await has_any(self._content.list()):
                out.append("blobs")
            for name, snapshotter in sorted(self._snapshotters.items()):
                if await has_any(snapshotter.list()):
                    out.append(f'snapshots on "{name}" snapshotter')
        return out


# -- the collector -------------------------------------------------------------


class Collector:
    def __init__(
        self,
        db: MetaDB,
        content: ContentPeer,
        snapshotters: Mapping[str, SnapshotPeer],
        root_sources: Sequence[RootSource],
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        gather_timeout: float = GATHER_TIMEOUT,
        remove_timeout: float = REMOVE_TIMEOUT,
    ) -> None:
        self._db = db
        self._content = content
        self._snapshotters = dict(snapshotters)
        self._root_sources = tuple(root_sources)
        self._clock = clock
        self._gather_timeout = gather_timeout
        self._remove_timeout = remove_timeout
        self._lock = asyncio.Lock()

    async def collect(self, dry_run: bool = False) -> builtins.list[Removed]:
        """One collection; what was removed (or would be, with ``dry_run``).

        Unavailable, with nothing removed, when anything could not be listed.
        """
        async with self._lock:
            started = time.monotonic()
            now = self._clock()
            inventories = await self._gather()
            plans = [gc.plan(inv, now) for inv in inventories]
            if dry_run:
                return [r for p in plans for r in p.removed()]
            removed: builtins.list[Removed] = []
            failed = 0
            for p in plans:
                done, n_failed = await self._sweep(p)
                removed += done
                failed += n_failed
            await self._cleanup()
            _log.info(
                "gc.collected",
                removed=len(removed),
                failed=failed,
                namespaces=len(plans),
                seconds=round(time.monotonic() - started, 3),
            )
            return removed

    async def _gather(self) -> builtins.list[Inventory]:
        names = [name for name, _ in self._db.list_namespaces()]
        try:
            async with asyncio.timeout(self._gather_timeout):
                return [await self._inventory(ns) for ns in names]
        except (errors.SeacanError, TimeoutError) as e:
            reason = str(e) or type(e).__name__
            _log.warning("gc.aborted", reason=reason)
            raise errors.Unavailable(
                f"garbage collection aborted, nothing was removed: {reason}"
            ) from None

    async def _inventory(self, ns: str) -> Inventory:
        with scoped(ns):
            objects = [
                Object(Ref(gc.CONTENT, i.digest), dict(i.labels))
                for i in await listed(self._content.list())
            ]
            for name, snapshotter in sorted(self._snapshotters.items()):
                objects += [
                    Object(Ref(gc.snapshots_type(name), s.name), dict(s.labels), s.parent)
                    for s in await listed(snapshotter.list())
                ]
            leases = [
                gc.Lease(lease.id, dict(lease.labels), tuple(Ref(r.type, r.id) for r in res))
                for lease, res in self._db.leases_with_resources(ns)
            ]
            roots: builtins.list[Root] = []
            for source in self._root_sources:
                try:
                    roots += await source.roots()
                except errors.SeacanError as e:
                    raise errors.Unavailable(f"{source.name} in namespace {ns}: {e}") from None
        return Inventory(ns, tuple(objects), tuple(leases), tuple(roots))

    async def _sweep(self, plan: gc.Plan) -> tuple[builtins.list[Removed], int]:
        ns = plan.namespace
        removed: builtins.list[Removed] = []
        for lease_id in plan.expired_leases:
            try:
                self._db.delete_lease(ns, lease_id)
            except errors.NotFound:
                continue
            _log.info("gc.lease_expired", namespace=ns, lease=lease_id)
            removed.append(Removed(ns, gc.LEASES, lease_id))
        sweep = gc.Sweep()
        with scoped(ns):
            for r in plan.removals:
                if sweep.skip(r):
                    _log.warning(
                        "gc.remove_skipped",
                        namespace=ns,
                        type=r.ref.type,
                        id=r.ref.id,
                        reason="a child could not be removed",
                    )
                    continue
                try:
                    async with asyncio.timeout(self._remove_timeout):
                        await self._remove(r.ref)
                except errors.NotFound:
                    sweep.record(r, True)  # gone already
                    continue
                except Exception as e:
                    _log.warning(
                        "gc.remove_failed",
                        namespace=ns,
                        type=r.ref.type,
                        id=r.ref.id,
                        error=str(e) or type(e).__name__,
                    )
                    sweep.record(r, False)
                    continue
                sweep.record(r, True)
                _log.info("gc.removed", namespace=ns, type=r.ref.type, id=r.ref.id)
                removed.append(Removed(ns, r.ref.type, r.ref.id))
        return removed, len(sweep.failed)

    async def _remove(self, ref: Ref) -> None:
        if ref.type == gc.CONTENT:
            await self._content.delete(ref.id)
        elif ref.is_snapshot:
            await self._snapshotters[ref.type[len(gc.SNAPSHOTS_PREFIX) :]].remove(ref.id)

    async def _cleanup(self) -> None:
        for name, snapshotter in sorted(self._snapshotters.items()):
            try:
                async with asyncio.timeout(self._remove_timeout):
                    await snapshotter.cleanup()
            except Exception as e:
                _log.warning(
                    "gc.cleanup_failed", snapshotter=name, error=str(e) or type(e).__name__
                )

    async def run_periodic(self, interval: float, first_delay: float = 5.0) -> None:
        """Collect ``first_delay`` seconds after start, then every ``interval``; 0 disables."""
        if interval <= 0:
            _log.info("gc.timer_disabled")
            return
        delay = first_delay
        while True:
            await asyncio.sleep(delay)
            delay = interval
            try:
                await self.collect()
            except errors.SeacanError:
                pass  # already logged as gc.aborted; the next tick tries again
            except Exception as e:
                _log.error("gc.failed", error=repr(e), exc_info=e)
