"""Builder.Commit: an image from a container's current file system (``docker commit``).

::

    container -> its snapshot and the image it was made from
    Diff(view of the snapshot's parent, the snapshot's mounts) -> one new layer
    the image's config + ``--change`` instructions + a history entry -> config, manifest
    -> the image record (when a reference is given)
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

from seacan import errors, leases, oci, scope
from seacan.build import CommitOptions
from seacan.dockerfile import parser as dfparser
from seacan.images import unpack as unpacker
from seacan.images.archive import normalize_reference

from . import image
from .engine import BUILD_LEASE_TTL, State, apply_metadata
from .stores import Stores

CHANGES = frozenset(
    {"CMD", "ENTRYPOINT", "ENV", "EXPOSE", "LABEL", "ONBUILD", "USER", "VOLUME", "WORKDIR",
     "STOPSIGNAL", "HEALTHCHECK", "SHELL"}
)  # fmt: skip


def parse_changes(changes: Sequence[str]) -> list[dfparser.Instruction]:
    out = []
    for c in changes:
        try:
            instr = dfparser.parse_trigger(c)
        except errors.InvalidArgument as e:
            raise errors.InvalidArgument(f"--change {c!r}: {e.message}") from None
        if instr.cmd not in CHANGES:
            raise errors.InvalidArgument(f"--change {c!r}: {instr.cmd} is not supported by commit")
        out.append(instr)
    return out


async def commit(stores: Stores, opts: CommitOptions) -> tuple[str, str]:
    """The new image's ID (config digest) and manifest digest."""
    changes = parse_changes(opts.changes)
    if opts.reference:
        image.check_tags([opts.reference])
    cont = await stores.containers.get(opts.container_id)
    if not cont.snapshot_key:
        raise errors.FailedPrecondition(f"container {opts.container_id!r} has no snapshot")
    if not cont.image:
        raise errors.FailedPrecondition(f"container {opts.container_id!r} names no image")
    try:
        img = await stores.images.get(normalize_reference(cont.image))
    except errors.NotFound:
        raise errors.FailedPrecondition(
            f"the image of container {opts.container_id!r} ({cont.image}) no longer exists"
        ) from None
    ns = scope.namespace_required()
    lease = await stores.leases.create(leases.random_id(), leases.expire_in(BUILD_LEASE_TTL))
    scope.set_scope(ns, lease.id)
    try:
        return await _commit(stores, opts, changes, cont.snapshot_key, img.target)
    finally:
        scope.set_scope(ns, "")
        with contextlib.suppress(errors.SeacanError):
            await stores.leases.delete(lease.id)


async def _commit(
    stores: Stores,
    opts: CommitOptions,
    changes: list[dfparser.Instruction],
    key: str,
    target: oci.Descriptor,
) -> tuple[str, str]:
    parts = await unpacker.read_image(stores.content, target, oci.host_platform())
    config = await image.load_config(stores, parts.config_desc.digest)
    layers = [image.layer_of(x.blob, x.diff_id) for x in parts.layers]
    parent = (await stores.snapshots.stat(key)).parent
    view = f"commit-{key}-parent"[:200]
    lower = await stores.snapshots.view(view, parent) if parent else []
    try:
        desc = await stores.diff.diff(lower, await stores.snapshots.mounts(key))
    finally:
        if parent:
            await image.remove_quietly(stores, view)
    diff_id = await image.diff_id_of(stores, desc)
    state = State(config, [*layers, image.layer_of(desc, diff_id)], "", "")
    for instr in changes:
        if instr.cmd == "WORKDIR":
            state.run["WorkingDir"] = instr.args[0] if instr.args else "/"
        else:
            apply_metadata(state, instr, {}, {}, set())
    created = image.timestamp(None)
    state.config["created"] = created
    if opts.author:
        state.config["author"] = opts.author
    state.config["rootfs"] = {"type": "layers", "diff_ids": [x["diff_id"] for x in state.layers]}
    h = {"created": created, "created_by": "seacan commit " + opts.container_id}
    if opts.message:
        h["comment"] = opts.message
    if opts.author:
        h["author"] = opts.author
    state.config["history"] = [*(state.config.get("history") or []), h]
    digest, size = await image.write_config(stores, state.config, "", state.layers)
    mdesc = await image.write_manifest(stores, digest, size, state.layers)
    if opts.reference:
        await image.tag(stores, [opts.reference], mdesc)
    return digest, mdesc.digest
