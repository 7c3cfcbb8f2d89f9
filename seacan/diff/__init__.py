"""Diff: turning layers into filesystems and filesystems into layers.

Two roles, as containerd splits them:

- :class:`Applier` unpacks a layer blob (from the content store) into the
  directory a snapshot's mounts name, and returns the *applied* descriptor:
  ``application/vnd.oci.image.layer.v1.tar`` with the digest and size of the
  uncompressed tar (the layer's diff ID, which the image config lists)::

      mounts = await snapshotter.prepare(key, parent)
      applied = await differ.apply(layer_desc, mounts)
      assert applied.digest == config.diff_ids[i]

- :class:`Comparer` writes the difference between two mounted filesystems
  as a new layer blob into the content store and returns its descriptor
  (the blob carries the label ``containerd.io/uncompressed=<diff ID>``)::

      desc = await differ.diff(await sn.view("v", parent), await sn.mounts(key))

Layers are hostile input: Apply refuses, with InvalidArgument naming the
layer and the entry, anything that would write outside the target (``..``,
absolute names, symlinks leading out, hard links out), device nodes,
corrupt or truncated streams, and layers that expand past the configured
limit. Implementations: the images service (``seacan.services.images``) and
:class:`seacan.diff.proxy.RemoteDiff`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from seacan.oci import Descriptor
from seacan.snapshots import Mount


@runtime_checkable
class Applier(Protocol):
    async def apply(
        self,
        desc: Descriptor,
        mounts: Sequence[Mount],
        payloads: Mapping[str, Any] | None = None,
    ) -> Descriptor:
        """Unpack ``desc`` onto ``mounts``; the applied (uncompressed) descriptor."""
        ...


@runtime_checkable
class Comparer(Protocol):
    async def diff(
        self,
        lower: Sequence[Mount],
        upper: Sequence[Mount],
        media_type: str = "",
        ref: str = "",
        labels: Mapping[str, str] | None = None,
    ) -> Descriptor:
        """A layer of what changed from ``lower`` to ``upper``, written to the content store.

        ``media_type`` picks the compression (default
        ``application/vnd.oci.image.layer.v1.tar+gzip``); ``ref`` names the
        ingest; ``labels`` go on the blob.
        """
        ...


class Differ(Applier, Comparer, Protocol):
    """Both roles: what the service and :class:`~seacan.diff.proxy.RemoteDiff` implement."""


__all__ = ["Applier", "Comparer", "Differ"]
