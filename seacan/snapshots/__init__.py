"""Snapshots: filesystems built from layers, as containerd's snapshotters make them.

A snapshotter hands out *mounts*. It never mounts anything itself: the caller
mounts what it gets (:mod:`seacan.mount`), or the diff applier writes a
layer straight into the directory a mount names. Every snapshot is in one
of three states (:class:`Kind`):

- ACTIVE: writable, made by :meth:`Snapshotter.prepare` on top of a parent;
- VIEW: read-only, made by :meth:`Snapshotter.view`;
- COMMITTED: frozen, made from an ACTIVE snapshot by :meth:`Snapshotter.commit`;
  only a committed snapshot can be a parent.

Keys are the caller's names for snapshots. They are per namespace (the
request scope, :mod:`seacan.scope`) and may hold any characters. A committed
snapshot's key is the name it was committed under; ACTIVE and VIEW
snapshots keep the key they were made with. Keys and names share one space:
preparing key ``k`` fails with AlreadyExists while any snapshot ``k`` exists.

Unpacking an image, layer by layer (what the unpacker does)::

    parent = ""
    for layer, chain_id in zip(layers, oci.chain_ids(diff_ids)):
        try:
            await sn.stat(chain_id)                   # unpacked before: reuse it
        except errors.NotFound:
            key = f"extract-{nonce} {chain_id}"       # any string will do as a key
            mounts = await sn.prepare(key, parent)
            await differ.apply(layer, mounts)         # writes into the upper directory
            await sn.commit(chain_id, key)            # the key is gone; chain_id remains
        parent = chain_id

Running a container on the top layer::

    mounts = await sn.prepare("my-container", top_chain_id)
    mount_all(mounts, bundle / "rootfs")              # writes go to the container's layer
    ...
    unmount(bundle / "rootfs")
    await sn.remove("my-container")

Saving what the container changed as a new layer: diff the parent's view
(``await sn.view("tmp-view", top_chain_id)``) against ``mounts``, or commit
the container's snapshot: ``await sn.commit("my-image-layer", "my-container")``.

Inspecting a committed layer read-only: ``await sn.view("look", chain_id)``
returns a bind mount of that layer with ``ro``; remove the view afterwards.

Errors, as containerd gives them:

- NotFound: ``snapshot <key> does not exist``, or a parent that does not exist;
- AlreadyExists: ``snapshot "<key>": already exists`` (on prepare, view, commit);
- FailedPrecondition: committing what is not ACTIVE, mounts of a COMMITTED
  snapshot, removing a snapshot with children;
- InvalidArgument: a parent that is not committed, an empty key, a label too
  big, an update of anything but labels.

Implementations: the overlay snapshotter (``seacan.services.snapshots.overlay``)
and :class:`seacan.snapshots.proxy.RemoteSnapshotter`; both pass
:mod:`seacan.snapshots.testsuite`.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, runtime_checkable

from seacan import errors
from seacan import labels as labels_

MAX_LABEL_BYTES = labels_.MAX_LABEL_BYTES


class Kind(enum.IntEnum):
    """A snapshot's state; the numbers are the wire enum's."""

    UNKNOWN = 0
    VIEW = 1
    ACTIVE = 2
    COMMITTED = 3

    @property
    def filter_name(self) -> str:
        """The value the ``kind`` filter field compares with: ``active``, ``view``, ..."""
        return self.name.lower()


@dataclass(frozen=True, slots=True)
class Info:
    """A snapshot as its namespace sees it. ``name`` is the key (or the committed name)."""

    name: str
    parent: str = ""
    kind: Kind = Kind.UNKNOWN
    created_at: datetime | None = None
    updated_at: datetime | None = None
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Mount:
    """One mount(2) call: what ``mount -t <type> -o <options> <source> <target>`` would do.

    ``target`` is carried on the wire but not interpreted (as in containerd 1.6):
    :func:`seacan.mount.mount_all` mounts everything on the directory it is given.
    """

    type: str
    source: str
    target: str = ""
    options: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Usage:
    """Disk use of a snapshot's own layer: bytes allocated and inodes."""

    size: int = 0
    inodes: int = 0


@runtime_checkable
class Snapshotter(Protocol):
    """The ten calls of containerd's snapshotter, in the request's namespace."""

    async def stat(self, key: str) -> Info:
        """The snapshot ``key``; NotFound if it does not exist."""
        ...

    async def update(self, info: Info, fieldpaths: Sequence[str] = ()) -> Info:
        """Change labels: paths ``labels`` or ``labels.<key>``; none replaces all labels.

        An empty label value removes the label. Name, parent and kind never change.
        """
        ...

    async def usage(self, key: str) -> Usage:
        """Disk use; measured now for an ACTIVE snapshot, recorded at commit otherwise."""
        ...

    async def mounts(self, key: str) -> list[Mount]:
        """The mounts of an ACTIVE or VIEW snapshot (FailedPrecondition for COMMITTED)."""
        ...

    async def prepare(
        self, key: str, parent: str = "", labels: Mapping[str, str] | None = None
    ) -> list[Mount]:
        """A new ACTIVE snapshot on top of the committed ``parent`` ("" for none)."""
        ...

    async def view(
        self, key: str, parent: str = "", labels: Mapping[str, str] | None = None
    ) -> list[Mount]:
        """A new read-only VIEW of the committed ``parent``."""
        ...

    async def commit(self, name: str, key: str, labels: Mapping[str, str] | None = None) -> None:
        """Freeze the ACTIVE snapshot ``key`` as ``name`` with ``labels``; ``key`` is gone."""
        ...

    async def remove(self, key: str) -> None:
        """Delete a snapshot; FailedPrecondition while it has children."""
        ...

    def list(self, filters: Sequence[str] = ()) -> AsyncIterator[Info]:
        """Snapshots matching ``filters``: fields ``name``, ``parent``, ``kind``, ``labels.*``."""
        ...

    async def cleanup(self) -> None:
        """Reclaim disk space that no snapshot uses any more (any namespace)."""
        ...


def validate_key(key: str, what: str = "key") -> str:
    if not key:
        raise errors.InvalidArgument(f"snapshot {what} must not be empty")
    return key


def validate_labels(labels: Mapping[str, str]) -> None:
    """containerd's label rule (see :mod:`seacan.labels`)."""
    labels_.validate(labels)


def filter_fields(info: Info) -> dict[str, str]:
    """The top-level fields a List filter sees (labels go separately)."""
    return {"name": info.name, "parent": info.parent, "kind": info.kind.filter_name}


__all__ = [
    "MAX_LABEL_BYTES",
    "Info",
    "Kind",
    "Mount",
    "Snapshotter",
    "Usage",
    "filter_fields",
    "validate_key",
    "validate_labels",
]
