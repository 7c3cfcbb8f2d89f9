"""Containers as garbage-collection roots (containerd's ``metadata/gc.go``).

A container keeps alive its snapshot (``snapshot_key`` in its
``snapshotter``) and whatever its ``containerd.io/gc.ref.*`` labels name.
Its ``image`` is only a name: as in containerd, it keeps nothing (the image
record is a root of its own). The containers service is reached through
its proxy (:class:`seacan.containers.proxy.RemoteContainers` fits
:class:`ContainerPeer`); when it cannot answer, ``roots`` raises a
SeacanError (Unavailable) and the collector aborts the whole collection.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from typing import Protocol

from seacan import gc
from seacan.gc import Ref, Root

from .collector import Listing, listed


class ContainerInfo(Protocol):
    @property
    def id(self) -> str: ...

    @property
    def labels(self) -> Mapping[str, str]: ...

    @property
    def snapshotter(self) -> str: ...

    @property
    def snapshot_key(self) -> str: ...


class ContainerPeer(Protocol):
    def list(self, filters: Sequence[str] = ...) -> Listing[ContainerInfo]: ...


def container_root(c: ContainerInfo) -> Root:
    refs: tuple[Ref, ...] = ()
    if c.snapshotter and c.snapshot_key:
        refs = (Ref(gc.snapshots_type(c.snapshotter), c.snapshot_key),)
    return Root(f"container {c.id}", refs, dict(c.labels))


class ContainerRoots:
    """Each container keeps its snapshot and what its ``gc.ref.*`` labels name."""

    name = "containers"

    def __init__(self, containers: ContainerPeer) -> None:
        self._containers = containers

    async def roots(self) -> builtins.list[Root]:
        return [container_root(c) for c in await listed(self._containers.list())]
