"""Image configs, manifests and records as the builder writes them.

A config is written after every step (its digest is Docker's image ID, the
cache's parent key). Its blob carries gc labels for the top snapshot and
each layer, so anything holding the config (the cache lease, a manifest)
holds the whole image. The manifest is written once, at the end, and image
records are created only then.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from seacan import content, errors, oci
from seacan.images import Image
from seacan.images.archive import normalize_reference

from .stores import SNAPSHOTTER, Stores

LABEL_SNAPSHOT = "containerd.io/gc.ref.snapshot." + SNAPSHOTTER
LABEL_CONTENT = "containerd.io/gc.ref.content."
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

Layer = dict[str, Any]  # {"mediaType", "digest", "size", "diff_id"}


def timestamp(epoch: int | None) -> str:
    """RFC 3339 in UTC: now, or SOURCE_DATE_EPOCH when given."""
    if epoch is not None:
        return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def chain_id(parent: str, diff_id: str) -> str:
    if not parent:
        return diff_id
    return "sha256:" + hashlib.sha256(f"{parent} {diff_id}".encode()).hexdigest()


def scratch_config(platform: oci.Platform) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "architecture": platform.architecture,
        "os": platform.os,
        "config": {"Env": [DEFAULT_PATH]},
        "rootfs": {"type": "layers", "diff_ids": []},
        "history": [],
    }
    if platform.variant:
        cfg["variant"] = platform.variant
    return cfg


def encode(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


async def write_config(
    stores: Stores, config: Mapping[str, Any], chain: str, layers: Sequence[Layer]
) -> tuple[str, int]:
    """Store the config blob (with gc labels); its digest and size."""
    data = encode(config)
    digest = oci.digest_of(data)
    labels = {f"{LABEL_CONTENT}l.{i}": layer["digest"] for i, layer in enumerate(layers)}
    if chain:
        labels[LABEL_SNAPSHOT] = chain
    if not await _write_new(stores, f"build-config-{digest}", data, digest, labels) and labels:
        # stored before (an identical step): it gets the labels too
        await stores.content.update(
            content.Info(digest=digest, size=len(data), labels=labels),
            [f"labels.{k}" for k in labels],
        )
    return digest, len(data)


async def _write_new(
    stores: Stores, ref: str, data: bytes, digest: str, labels: Mapping[str, str]
) -> bool:
    """Write a small blob in one writer stream; False when it was stored already."""
    try:
        w = await content.open_writer(stores.content, ref, len(data), digest, labels)
    except errors.AlreadyExists:
        return False
    try:
        if w.offset:
            await w.truncate(0)
        await w.write(data)
        try:
            await w.commit(len(data), digest, labels)
        except errors.AlreadyExists:
            return False
        return True
    finally:
        await w.close()


async def load_config(stores: Stores, digest: str) -> dict[str, Any]:
    try:
        data = await content.read_blob(stores.content, digest)
    except errors.NotFound:
        raise errors.NotFound(f"image config {digest} not found in the content store") from None
    obj = json.loads(data)
    if not isinstance(obj, dict):
        raise errors.InvalidArgument(f"image config {digest} is not a JSON object")
    return obj


def manifest_of(
    config_digest: str, config_size: int, layers: Sequence[Layer]
) -> tuple[oci.Descriptor, bytes, dict[str, str]]:
    """The image manifest: its descriptor, bytes and gc labels."""
    manifest = {
        "schemaVersion": 2,
        "mediaType": oci.OCI_MANIFEST,
        "config": {"mediaType": oci.OCI_CONFIG, "digest": config_digest, "size": config_size},
        "layers": [
            {"mediaType": x["mediaType"], "digest": x["digest"], "size": x["size"]} for x in layers
        ],
    }
    data = encode(manifest)
    digest = oci.digest_of(data)
    labels = {f"{LABEL_CONTENT}config": config_digest}
    labels.update({f"{LABEL_CONTENT}l.{i}": x["digest"] for i, x in enumerate(layers)})
    return oci.Descriptor(oci.OCI_MANIFEST, digest, len(data)), data, labels


async def write_manifest(
    stores: Stores, config_digest: str, config_size: int, layers: Sequence[Layer]
) -> oci.Descriptor:
    desc, data, labels = manifest_of(config_digest, config_size, layers)
    await _write_new(stores, f"build-manifest-{desc.digest}", data, desc.digest, labels)
    return desc


async def stored(stores: Stores, digest: str) -> bool:
    """Whether the content store holds ``digest``."""
    try:
        await stores.content.info(digest)
    except errors.NotFound:
        return False
    return True


async def target_of(stores: Stores, name: str) -> str:
    """The digest the image record ``name`` (normalized) points at; "" when there is none."""
    try:
        return (await stores.images.get(name)).target.digest
    except errors.NotFound:
        return ""


async def tag(
    stores: Stores,
    names: Sequence[str],
    target: oci.Descriptor,
    current: Mapping[str, str] | None = None,
) -> list[str]:
    """Create or move each image record to ``target``; the normalized names. ``current``
    (from :func:`target_of`) spares the records that name ``target`` already and says
    which to create rather than move."""
    out = []
    for raw in names:
        name = normalize_reference(raw)
        now = (current or {}).get(name)
        out.append(name)
        if now == target.digest:
            continue
        img = Image(name=name, target=target)
        if now != "":  # a rebuild moves a tag: try that first (unless there was none)
            with contextlib.suppress(errors.NotFound):
                await stores.images.update(img, ["target"])
                continue
        try:
            await stores.images.create(img)
        except errors.AlreadyExists:  # created meanwhile
            await stores.images.update(img, ["target"])
    return out


def check_tags(names: Sequence[str]) -> None:
    """InvalidArgument for a tag that is not a valid reference (before any work)."""
    for raw in names:
        try:
            normalize_reference(raw)
        except errors.SeacanError as e:
            raise errors.InvalidArgument(f"invalid tag {raw!r}: {e}") from None


async def diff_id_of(stores: Stores, desc: oci.Descriptor) -> str:
    info = await stores.content.info(desc.digest)
    diff_id = info.labels.get(oci.LABEL_UNCOMPRESSED, "")
    if not diff_id:
        raise errors.Internal(f"layer {desc.digest} has no {oci.LABEL_UNCOMPRESSED} label")
    return diff_id


def layer_of(desc: oci.Descriptor, diff_id: str) -> Layer:
    return {"mediaType": desc.media_type, "digest": desc.digest, "size": desc.size,
            "diff_id": diff_id}  # fmt: skip


async def remove_quietly(stores: Stores, key: str) -> None:
    with contextlib.suppress(errors.SeacanError):
        await stores.snapshots.remove(key)
