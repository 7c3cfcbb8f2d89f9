"""Containers: metadata records of what to run, per namespace, as containerd keeps them.

A container record names a runtime (``io.containerd.runc.v2``), carries the
OCI runtime spec as an opaque ``Any`` (ctr sends the spec JSON under
``types.containerd.io/opencontainers/runtime-spec/1/Spec``), optionally an
image name and a snapshot (``snapshotter`` + ``snapshot_key``), labels and
extensions. It says nothing about whether anything runs: that is a task.
``Any`` payloads (spec, runtime options, extensions) are stored as they came,
type URL and bytes, never decoded.

The store (:class:`ContainerStore`) behaves as containerd's containers
service (``metadata/containers.go``)::

    c = await store.create(Container(id="web", runtime=Runtime("io.containerd.runc.v2"),
                                     spec=AnyValue(SPEC_TYPE_URL, b"{}")))
    await store.get("web")            # NotFound: 'container "web" in namespace "ns": not found'
    await store.update(Container(id="web", labels={"a": "1"}), ["labels.a"])
    await store.update(c2)            # no paths: labels, spec, extensions, image, snapshotkey
    [c.id for c in await store.list(["labels.a==1", "runtime.name==io.containerd.runc.v2"])]
    await store.delete("web")

Create requires a valid identifier as ID, a runtime name, a spec, and a
snapshotter whenever a snapshot key is given; labels obey the 4 KiB rule.
Update field paths: ``labels``, ``labels.<key>`` (the key is everything
after the first dot), ``spec``, ``image``, ``snapshotkey``, ``extensions``,
``extensions.<key>``; anything else is InvalidArgument. Without paths,
``snapshotter`` and ``runtime.name`` must be unchanged (immutable). A label
set to ``""`` is removed. ``created_at`` and ``updated_at`` are the
server's. List filters: ``id``, ``image``, ``runtime.name``, ``labels.<key>``.

Implementations: the containers service's store
(``seacan.services.containers.store``) and
:class:`seacan.containers.proxy.RemoteContainers`; both pass
:mod:`seacan.containers.testsuite`. The namespace comes from the request scope.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, runtime_checkable

SPEC_TYPE_URL = "types.containerd.io/opencontainers/runtime-spec/1/Spec"
RUNC_OPTIONS_TYPE_URL = "containerd.runc.v1.Options"


@dataclass(frozen=True, slots=True)
class AnyValue:
    """A ``google.protobuf.Any`` kept undecoded: its type URL and its bytes."""

    type_url: str
    value: bytes = b""


@dataclass(frozen=True, slots=True)
class Runtime:
    """Which runtime runs the container, and its options (None: not sent)."""

    name: str = ""
    options: AnyValue | None = None


@dataclass(frozen=True, slots=True)
class Container:
    """A container record as its namespace sees it. ``spec`` None means unset."""

    id: str
    labels: Mapping[str, str] = field(default_factory=dict)
    image: str = ""
    runtime: Runtime = field(default_factory=Runtime)
    spec: AnyValue | None = None
    snapshotter: str = ""
    snapshot_key: str = ""
    created_at: datetime | None = None
    updated_at: datetime | None = None
    extensions: Mapping[str, AnyValue] = field(default_factory=dict)


@runtime_checkable
class ContainerStore(Protocol):
    """containerd's container store, in the request's namespace."""

    async def get(self, id: str) -> Container: ...

    async def list(self, filters: Sequence[str] = ()) -> builtins.list[Container]:
        """Containers matching any of ``filters`` (containerd's grammar), ordered by ID."""
        ...

    async def create(self, container: Container) -> Container:
        """AlreadyExists if the ID is taken; InvalidArgument if the record is incomplete."""
        ...

    async def update(self, container: Container, fieldpaths: Sequence[str] = ()) -> Container:
        """Change the fields ``fieldpaths`` name (see the module docstring)."""
        ...

    async def delete(self, id: str) -> None: ...


__all__ = [
    "RUNC_OPTIONS_TYPE_URL",
    "SPEC_TYPE_URL",
    "AnyValue",
    "Container",
    "ContainerStore",
    "Runtime",
]
