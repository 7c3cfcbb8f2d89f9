"""Images: named pointers to content, per namespace, as containerd keeps them.

An image record is a name (``docker.io/library/busybox:latest``), a target
:class:`~seacan.oci.Descriptor` (an index or a manifest in the content
store) and labels. The record says nothing about whether the blobs exist or
the layers are unpacked; the garbage collector keeps alive whatever an image
targets (and what its ``containerd.io/gc.ref.*`` labels name).

The store (:class:`ImageStore`) behaves as containerd's images service::

    img = await store.create(Image(name="x", target=desc))  # AlreadyExists if "x" exists
    img = await store.get("x")                                # NotFound: 'image "x": not found'
    await store.update(Image(name="x", labels={"a": "1"}), ["labels.a"])
    await store.update(Image(name="x", target=new_desc), ["target"])
    await store.update(img)                                   # no paths: labels, target replaced
    [i.name for i in await store.list(["labels.a==1"])]       # containerd's filter grammar
    await store.delete("x", sync=True)                        # sync: collect garbage first

Update field paths: ``labels``, ``labels.<key>`` (everything after the first
dot is the key), ``target``, ``annotations``, ``annotations.<key>`` (the
target's annotations); anything else is InvalidArgument. A label set to
``""`` is removed. ``created_at`` and ``updated_at`` are the server's.
List filters: ``name``, ``target.digest``, ``target.mediatype``,
``labels.<key>``, ``annotations.<key>``.

Implementations: the images service's store (``seacan.services.images.store``)
and :class:`seacan.images.proxy.RemoteImages`; both pass
:mod:`seacan.images.testsuite`. The namespace comes from the request scope.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, runtime_checkable

from seacan.oci import Descriptor

EMPTY_TARGET = Descriptor(media_type="", digest="", size=0)


@dataclass(frozen=True, slots=True)
class Image:
    """An image record as its namespace sees it."""

    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    target: Descriptor = EMPTY_TARGET
    created_at: datetime | None = None
    updated_at: datetime | None = None


@runtime_checkable
class ImageStore(Protocol):
    """containerd's image store, in the request's namespace."""

    async def get(self, name: str) -> Image: ...

    async def list(self, filters: Sequence[str] = ()) -> builtins.list[Image]:
        """Images matching any of ``filters`` (all when empty), sorted by name."""
        ...

    async def create(self, image: Image) -> Image: ...

    async def update(self, image: Image, fieldpaths: Sequence[str] = ()) -> Image: ...

    async def delete(self, name: str, sync: bool = False) -> None: ...


__all__ = ["EMPTY_TARGET", "Image", "ImageStore"]
