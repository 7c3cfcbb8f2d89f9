"""The layer cache: Docker's classic rules, kept across restarts, held from GC by a lease.

A step's key is ``(parent image ID, sha256(cache string))``; a hit gives
the step's resulting config digest, snapshot chain and layers. Each
result's config blob is written under the namespace's lease
``seacan-build-cache`` (no expiry), so it is a resource of that lease; the
config's gc labels hold its layers and snapshot. Prune deletes rows and then
the lease resources no remaining row names, so the next garbage collection
frees what only the cache held.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator, Sequence
from typing import Any

from seacan import errors, log, oci, scope
from seacan.images.unpack import ImageParts, read_image

from .db import CacheDB, Entry
from .stores import Stores

CACHE_LEASE = "seacan-build-cache"
MAX_IMAGES = 64  # base images remembered
_log = log.get(__name__)


def key_of(cache_string: str) -> str:
    return hashlib.sha256(cache_string.encode()).hexdigest()


class Cache:
    """Lookups are local (the index's rows in memory, else SQLite); what a hit names is
    checked once, when it is used (:meth:`verify`), and ``used_at`` is written at most
    once per build, and only for rows not marked recently (:meth:`touch`)."""

    def __init__(self, db: CacheDB, stores: Stores) -> None:
        self.db = db
        self.stores = stores
        # (namespace, manifest or index digest, platform) -> the image's parts and config
        self.images: dict[tuple[str, str, str], tuple[ImageParts, dict[str, Any]]] = {}

    def remember_image(
        self, key: tuple[str, str, str], value: tuple[ImageParts, dict[str, Any]]
    ) -> None:
        if len(self.images) >= MAX_IMAGES:
            self.images.pop(next(iter(self.images)))
        self.images[key] = value

    def lookup(self, parent: str, cache_string: str) -> Entry | None:
        return self.db.get(parent, key_of(cache_string))

    async def verify(self, e: Entry) -> bool:
        """Whether a hit's config is still stored (it holds its layers and snapshot
        through gc labels); a row whose config was removed behind our back (ctr
        content rm) is dropped."""
        try:
            await self.stores.content.info(e.config_digest)
        except errors.NotFound:
            self.db.delete([e])
            return False
        return True

    def touch(self, items: Sequence[Entry]) -> None:
        self.db.touch(items)

    def put(self, parent: str, cache_string: str, config_digest: str, chain_id: str,
            layers: tuple[dict[str, object], ...], config: str) -> None:  # fmt: skip
        """Remember a step; its config blob must have been written under :data:`CACHE_LEASE`
        (see :meth:`under_lease`)."""
        self.db.put(Entry(parent, key_of(cache_string), cache_string, config_digest, chain_id,
                          layers, config))  # fmt: skip

    async def ensure_lease(self) -> None:
        with contextlib.suppress(errors.AlreadyExists):
            await self.stores.leases.create(CACHE_LEASE, {"seacan/build-cache": "true"})

    @contextlib.contextmanager
    def under_lease(self) -> Iterator[None]:
        """Blobs written in the block belong to the cache lease (call :meth:`ensure_lease`
        first)."""
        ns, before = scope.namespace_required(), scope.lease()
        scope.set_scope(ns, CACHE_LEASE)
        try:
            yield
        finally:
            scope.set_scope(ns, before)

    async def _used(self) -> tuple[set[str], set[str]]:
        """Config digests and chain IDs of the namespace's images (what -a would lose)."""
        configs: set[str] = set()
        chains: set[str] = set()
        for img in await self.stores.images.list():
            try:
                parts = await read_image(self.stores.content, img.target, oci.host_platform())
            except errors.SeacanError:
                continue
            configs.add(parts.config_desc.digest)
            chains.update(x.chain_id for x in parts.layers)
        return configs, chains

    async def prune(self, all: bool) -> int:
        rows = self.db.list()
        if all:
            drop = rows
        else:
            configs, chains = await self._used()
            drop = [
                e for e in rows
                if e.config_digest not in configs and (not e.chain_id or e.chain_id not in chains)
            ]  # fmt: skip
        self.db.delete(drop)
        keep = {e.config_digest for e in self.db.list()}
        try:
            held = await self.stores.leases.list_resources(CACHE_LEASE)
        except errors.NotFound:
            return len(drop)
        for r in held:
            if r.type == "content" and r.id not in keep:
                with contextlib.suppress(errors.NotFound):
                    await self.stores.leases.delete_resource(CACHE_LEASE, r)
        if not keep:
            with contextlib.suppress(errors.NotFound):
                await self.stores.leases.delete(CACHE_LEASE)
        _log.info("build.cache_pruned", entries=len(drop))
        return len(drop)
