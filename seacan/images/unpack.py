"""The client-side unpacker: an image's layers into committed snapshots, as containerd's.

For the manifest that fits the platform, layer by layer (``chainID`` from
:func:`seacan.oci.chain_ids`)::

    Snapshots.Stat(chainID)                       found: unpacked before, skip
    Snapshots.Prepare("extract-<nonce> <chainID>", parent=<previous chainID>)
    Diff.Apply(layer, mounts)                     -> digest of the uncompressed tar
    (the digest must be the config's diff_id for that layer)
    Snapshots.Commit(chainID, key)
    Content.Update(layer, containerd.io/uncompressed=<diffID>)

and at the end ``Content.Update(config, containerd.io/gc.ref.snapshot.<sn>=<top
chainID>)``, which keeps the snapshots alive for as long as the config is.
On any failure the extract snapshot is removed, so nothing half-applied is
left; committed layers below it stay (they are complete, and a lease or the
config label holds them). Run it under a lease.

The helpers :func:`resolve_manifest` and :func:`read_image` pick and read
the manifest and config of an image for a platform; the CLI uses them too.
"""

from __future__ import annotations

import base64
import contextlib
import secrets
import time
from dataclasses import dataclass
from typing import Protocol

from seacan import content, errors, log, oci
from seacan.diff import Applier
from seacan.snapshots import Snapshotter

_log = log.get(__name__)

LABEL_UNCOMPRESSED = oci.LABEL_UNCOMPRESSED
LABEL_SNAPSHOT_REF = "containerd.io/gc.ref.snapshot."
MAX_JSON = 16 << 20  # an index, manifest or config larger than this is refused


class ContentStore(content.Provider, content.Manager, Protocol):
    """What the unpacker needs from the content store: read blobs, set labels."""


class Reporter(Protocol):
    def layer(self, index: int, count: int, desc: oci.Descriptor, applied: bool) -> None:
        """Called after each layer: ``applied`` False when it was unpacked before."""
        ...


@dataclass(frozen=True, slots=True)
class Layer:
    blob: oci.Descriptor
    diff_id: str
    chain_id: str


@dataclass(frozen=True, slots=True)
class ImageParts:
    """The manifest that fits a platform, its config and its layers."""

    manifest_desc: oci.Descriptor
    manifest: oci.Manifest
    config_desc: oci.Descriptor
    config: oci.ImageConfig
    layers: tuple[Layer, ...]

    @property
    def chain_id(self) -> str:
        """The top snapshot's name ("" for an image without layers)."""
        return self.layers[-1].chain_id if self.layers else ""


@dataclass(frozen=True, slots=True)
class Unpacked:
    parts: ImageParts
    applied: int  # layers applied now; the others were unpacked before

    @property
    def chain_id(self) -> str:
        return self.parts.chain_id


async def _read_json(provider: content.Provider, desc: oci.Descriptor, what: str) -> bytes:
    if desc.size > MAX_JSON:
        raise errors.InvalidArgument(f"{what} {desc.digest} is {desc.size} bytes, over {MAX_JSON}")
    try:
        return await content.read_blob(provider, desc.digest)
    except errors.NotFound:
        raise errors.NotFound(f"{what} {desc.digest} not found in the content store") from None


def _platform_rank(want: oci.Platform, have: oci.Platform) -> int:
    """0 for an exact variant match, 1 for a match without a variant."""
    w, h = oci.normalize_platform(want), oci.normalize_platform(have)
    return 0 if w.variant == h.variant else 1


async def resolve_manifest(
    provider: content.Provider,
    target: oci.Descriptor,
    platform: oci.Platform | None,
) -> tuple[oci.Descriptor, oci.Manifest]:
    """The manifest of ``target`` for ``platform`` (None: the first one).

    A manifest target is taken as it is (containerd checks the platform only
    for manifests found in an index). In an index, entries with a platform
    are matched directly; entries without one by their config. NotFound when
    nothing matches, naming the platforms that are there.
    """
    if target.media_type in oci.MANIFEST_TYPES:
        data = await _read_json(provider, target, "manifest")
        return target, oci.parse_manifest(data, f"manifest {target.digest}")
    if target.media_type not in oci.INDEX_TYPES:
        raise errors.InvalidArgument(
            f"{target.digest}: media type {target.media_type!r} is not an image index or manifest"
        )
    seen: list[str] = []
    found = await _search_index(provider, target, platform, seen, depth=0)
    if found is None:
        want = str(platform) if platform is not None else "any platform"
        have = ", ".join(sorted(set(seen))) or "none"
        raise errors.NotFound(
            f"no manifest for {want} in index {target.digest} (platforms: {have})"
        )
    return found


async def _search_index(
    provider: content.Provider,
    index_desc: oci.Descriptor,
    platform: oci.Platform | None,
    seen: list[str],
    depth: int,
) -> tuple[oci.Descriptor, oci.Manifest] | None:
    if depth > 4:
        raise errors.InvalidArgument(f"index {index_desc.digest}: indexes nested too deep")
    data = await _read_json(provider, index_desc, "index")
    index = oci.parse_index(data, f"index {index_desc.digest}")
    candidates: list[tuple[int, int, oci.Descriptor, oci.Manifest | None]] = []
    for i, d in enumerate(index.manifests):
        if d.platform is not None:
            seen.append(str(oci.normalize_platform(d.platform)))
        if d.media_type in oci.INDEX_TYPES:
            if (
                d.platform is not None
                and platform is not None
                and not oci.platform_matches(platform, d.platform)
            ):
                continue
            with contextlib.suppress(errors.NotFound):
                found = await _search_index(provider, d, platform, seen, depth + 1)
                if found is not None:
                    candidates.append((1, i, found[0], found[1]))
            continue
        if d.media_type not in oci.MANIFEST_TYPES:
            continue  # attestations and other artifacts
        if platform is None:
            candidates.append((0, i, d, None))
            continue
        if d.platform is not None:
            if d.platform.os == "unknown" or d.platform.architecture == "unknown":
                continue
            if oci.platform_matches(platform, d.platform):
                candidates.append((_platform_rank(platform, d.platform), i, d, None))
            continue
        # No platform on the entry: the config says which it is.
        m = oci.parse_manifest(await _read_json(provider, d, "manifest"), f"manifest {d.digest}")
        cfg = oci.parse_config(
            await _read_json(provider, m.config, "image config"), f"image config {m.config.digest}"
        )
        seen.append(str(oci.normalize_platform(cfg.platform)))
        if oci.platform_matches(platform, cfg.platform):
            candidates.append((_platform_rank(platform, cfg.platform), i, d, m))
    if not candidates:
        return None
    _, _, desc, manifest = min(candidates, key=lambda c: (c[0], c[1]))
    if manifest is None:
        data = await _read_json(provider, desc, "manifest")
        manifest = oci.parse_manifest(data, f"manifest {desc.digest}")
    return desc, manifest


async def read_image(
    provider: content.Provider, target: oci.Descriptor, platform: oci.Platform | None
) -> ImageParts:
    """Manifest, config and layers (with diff and chain IDs) of ``target`` for ``platform``."""
    mdesc, manifest = await resolve_manifest(provider, target, platform)
    cdesc = manifest.config
    if cdesc.media_type not in oci.CONFIG_TYPES:
        raise errors.InvalidArgument(
            f"manifest {mdesc.digest}: config media type {cdesc.media_type!r} "
            "is not an image config"
        )
    config = oci.parse_config(
        await _read_json(provider, cdesc, "image config"), f"image config {cdesc.digest}"
    )
    layers = [d for d in manifest.layers if oci.is_layer(d.media_type)]
    others = [d for d in manifest.layers if not oci.is_layer(d.media_type)]
    if others:
        raise errors.InvalidArgument(
            f"manifest {mdesc.digest}: layer {others[0].digest} has media type "
            f"{others[0].media_type!r}, which cannot be unpacked"
        )
    if len(layers) != len(config.diff_ids):
        raise errors.InvalidArgument(
            f"manifest {mdesc.digest} has {len(layers)} layers but its config "
            f"{cdesc.digest} lists {len(config.diff_ids)} diff IDs"
        )
    chains = oci.chain_ids(config.diff_ids)
    return ImageParts(
        manifest_desc=mdesc,
        manifest=manifest,
        config_desc=cdesc,
        config=config,
        layers=tuple(
            Layer(blob, diff, chain)
            for blob, diff, chain in zip(layers, config.diff_ids, chains, strict=True)
        ),
    )


def extract_key(chain_id: str) -> str:
    """``extract-<nanoseconds>-<random> <chainID>``, containerd's unpack key."""
    nonce = base64.urlsafe_b64encode(secrets.token_bytes(3)).decode()
    return f"extract-{time.time_ns() % 1_000_000_000}-{nonce} {chain_id}"


async def _is_unpacked(sn: Snapshotter, chain_id: str) -> bool:
    try:
        await sn.stat(chain_id)
    except errors.NotFound:
        return False
    return True


async def apply_layer(
    sn: Snapshotter, differ: Applier, layer: Layer, parent: str, index: int
) -> None:
    """Unpack one layer onto ``parent`` (a chain ID, "" for none) as snapshot ``layer.chain_id``.

    Prepare, apply through ``differ``, check the diff ID, commit; the extract
    snapshot never stays. ``index`` only names the layer in errors.
    """
    for _ in range(3):
        key = extract_key(layer.chain_id)
        try:
            mounts = await sn.prepare(key, parent)
            break
        except errors.AlreadyExists:
            continue  # a key collision: try another nonce
        except errors.SeacanError as e:
            raise type(e)(
                f"failed to prepare the snapshot for layer {index} ({layer.blob.digest}): {e}"
            ) from None
    else:
        raise errors.Internal(f"could not find a free extract key for layer {layer.blob.digest}")
    committed = False
    try:
        try:
            applied = await differ.apply(layer.blob, mounts)
        except errors.SeacanError as e:
            raise type(e)(f"failed to extract layer {index} ({layer.blob.digest}): {e}") from None
        if applied.digest != layer.diff_id:
            raise errors.InvalidArgument(
                f"layer {index} ({layer.blob.digest}): wrong diff ID: the layer unpacks to "
                f"{applied.digest}, the image config says {layer.diff_id}"
            )
        try:
            await sn.commit(layer.chain_id, key)
            committed = True
        except errors.AlreadyExists:
            pass  # unpacked concurrently by someone else: theirs is as good
    finally:
        if not committed:
            try:
                await sn.remove(key)
            except errors.SeacanError as e:
                _log.warning("unpack.cleanup_failed", key=key, error=str(e))


async def unpack(
    store: ContentStore,
    sn: Snapshotter,
    differ: Applier,
    target: oci.Descriptor,
    *,
    platform: oci.Platform | None = None,
    snapshotter: str = "overlayfs",
    reporter: Reporter | None = None,
) -> Unpacked:
    """Unpack ``target`` for ``platform`` (default: the host's). Run it under a lease."""
    parts = await read_image(store, target, platform or oci.host_platform())
    applied = 0
    parent = ""
    for i, layer in enumerate(parts.layers):
        if await _is_unpacked(sn, layer.chain_id):
            done = False
        else:
            await apply_layer(sn, differ, layer, parent, i)
            applied += 1
            done = True
            # Only now is the uncompressed digest verified.
            await store.update(
                content.Info(
                    digest=layer.blob.digest,
                    size=layer.blob.size,
                    labels={LABEL_UNCOMPRESSED: layer.diff_id},
                ),
                ["labels." + LABEL_UNCOMPRESSED],
            )
        if reporter is not None:
            reporter.layer(i, len(parts.layers), layer.blob, done)
        parent = layer.chain_id
    if parts.chain_id:
        key = LABEL_SNAPSHOT_REF + snapshotter
        await store.update(
            content.Info(
                digest=parts.config_desc.digest,
                size=parts.config_desc.size,
                labels={key: parts.chain_id},
            ),
            ["labels." + key],
        )
    _log.debug("unpack.done", target=target.digest, chain_id=parts.chain_id, applied=applied)
    return Unpacked(parts, applied)


__all__ = [
    "LABEL_SNAPSHOT_REF",
    "LABEL_UNCOMPRESSED",
    "Applier",
    "ContentStore",
    "ImageParts",
    "Layer",
    "Unpacked",
    "apply_layer",
    "extract_key",
    "read_image",
    "resolve_manifest",
    "unpack",
]
