"""seacan images: import, export, ls, rm, tag, inspect, mount, unmount."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from seacan import content, errors, gc, grpcutil, mount, oci, scope
from seacan.cli import distribution, output
from seacan.cli.commands import Subparsers, add_format, add_quiet, noun, verb, write
from seacan.client import Client
from seacan.images import Image, archive
from seacan.images import unpack as unpacker

LABEL_GC_REF_SNAPSHOT = "containerd.io/gc.ref.snapshot."


def _os_error(e: OSError, path: str) -> errors.SeacanError:
    reason = (e.strerror or str(e)).lower()
    if isinstance(e, FileNotFoundError):
        return errors.NotFound(f"{path}: {reason}")
    if isinstance(e, PermissionError):
        return errors.PermissionDenied(f"{path}: {reason}")
    if isinstance(e, IsADirectoryError):
        return errors.InvalidArgument(f"{path}: {reason}")
    return errors.Internal(f"{path}: {reason}")


@contextlib.contextmanager
def _input(path: str) -> Iterator[IO[bytes]]:
    if path == "-":
        yield sys.stdin.buffer
        return
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed below
    except OSError as e:
        raise _os_error(e, path) from None
    with f:
        yield f


@contextlib.contextmanager
def _output(path: str) -> Iterator[IO[bytes]]:
    """stdout for ``-``; else a temporary file renamed to ``path`` only on success."""
    if path == "-":
        if sys.stdout.isatty():
            raise errors.InvalidArgument("refusing to write an archive to a terminal")
        yield sys.stdout.buffer
        return
    target = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent or Path("."))
    except OSError as e:
        raise _os_error(e, path) from None
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


# --- import / export ---------------------------------------------------------------


async def images_import(c: Client, a: argparse.Namespace) -> int:
    opts = archive.ImportOptions(
        base_name=a.base_name,
        digests=a.digests,
        all_platforms=a.all_platforms,
        unpack=not a.no_unpack,
    )
    progress = output.Progress(sys.stdout)
    with _input(a.file) as stream:
        try:
            imported = await archive.import_archive(c, stream, opts, progress)
        finally:
            progress.finish()
    for img in imported:
        write(f"imported {img.name} ({img.target.digest})\n")
    return 0


async def images_export(c: Client, a: argparse.Namespace) -> int:
    opts = archive.ExportOptions(
        platforms=tuple(oci.parse_platform(p) for p in a.platform),
        all_platforms=a.all_platforms,
        manifest_json=not a.skip_manifest_json,
    )
    progress = output.Progress(sys.stderr).quiet_when_piped()
    exporter = archive.Exporter(c.content, opts, progress)
    for ref in a.refs:
        img = await c.images.get(ref)
        await exporter.add(img.name, img.target)
    with _output(a.file) as out:
        try:
            await exporter.write(out)
        finally:
            progress.finish()
    return 0


# --- ls / rm / tag / inspect -------------------------------------------------------


async def image_platforms(provider: content.Provider, target: oci.Descriptor) -> list[str]:
    """The platforms an image offers, as ``ctr images ls`` shows them."""
    found: set[str] = set()

    async def visit(desc: oci.Descriptor, depth: int) -> None:
        if desc.platform is not None:
            if "unknown" not in (desc.platform.os, desc.platform.architecture):
                found.add(str(oci.normalize_platform(desc.platform)))
            return
        if depth > 4:
            return
        try:
            if desc.media_type in oci.INDEX_TYPES:
                data = await content.read_blob(provider, desc.digest)
                for child in oci.parse_index(data).manifests:
                    await visit(child, depth + 1)
            elif desc.media_type in oci.MANIFEST_TYPES:
                data = await content.read_blob(provider, desc.digest)
                await visit(oci.parse_manifest(data).config, depth + 1)
            elif desc.media_type in oci.CONFIG_TYPES:
                cfg = oci.parse_config(await content.read_blob(provider, desc.digest))
                found.add(str(oci.normalize_platform(oci.Platform(cfg.os, cfg.architecture))))
        except (errors.NotFound, errors.InvalidArgument):
            pass

    await visit(target, 0)
    return sorted(found)


async def image_size(
    provider: content.Provider, target: oci.Descriptor, platform: oci.Platform
) -> int | None:
    """Target + the platform's manifest, config and layers (ctr's ``images ls`` size)."""
    try:
        mdesc, manifest = await unpacker.resolve_manifest(provider, target, platform)
    except (errors.NotFound, errors.InvalidArgument):
        return None
    size = target.size if mdesc.digest == target.digest else target.size + mdesc.size
    return size + manifest.config.size + sum(d.size for d in manifest.layers)


async def _list(c: Client, filters: list[str]) -> list[Any]:
    return sorted(await c.images.list(filters), key=lambda i: i.name)


async def images_ls(c: Client, a: argparse.Namespace) -> int:
    imgs = await _list(c, a.filters)
    if a.quiet:
        write("".join(i.name + "\n" for i in imgs))
        return 0
    host = oci.host_platform()
    rows = []
    for img in imgs:
        size = await image_size(c.content, img.target, host)
        plats = await image_platforms(c.content, img.target)
        rows.append((img, size, plats))
    if a.format == "json":
        write(
            output.to_json(
                [
                    {
                        "name": img.name,
                        "type": img.target.media_type,
                        "digest": img.target.digest,
                        "size": size,
                        "platforms": plats,
                        "labels": dict(img.labels),
                        "created_at": img.created_at,
                        "updated_at": img.updated_at,
                    }
                    for img, size, plats in rows
                ]
            )
        )
        return 0
    write(
        output.table(
            ["REF", "TYPE", "DIGEST", "SIZE", "PLATFORMS", "LABELS"],
            [
                (
                    img.name,
                    img.target.media_type,
                    img.target.digest,
                    "-" if size is None else output.human_size(size),
                    ",".join(plats) or "-",
                    output.labels_text(img.labels),
                )
                for img, size, plats in rows
            ],
        )
    )
    return 0


async def images_rm(c: Client, a: argparse.Namespace) -> int:
    code = 0
    for i, ref in enumerate(a.refs):
        try:
            await c.images.delete(ref, sync=a.sync and i == len(a.refs) - 1)
        except errors.SeacanError as e:
            print(f"seacan: {e}", file=sys.stderr)
            code = 1
            continue
        write(ref + "\n")
    return code


async def images_tag(c: Client, a: argparse.Namespace) -> int:
    src = await c.images.get(a.source)
    for dst in a.targets:
        img = Image(name=dst, labels=dict(src.labels), target=src.target)
        try:
            await c.images.create(img)
        except errors.AlreadyExists:
            if not a.force:
                raise errors.AlreadyExists(
                    f'image "{dst}": already exists (use --force to replace it)'
                ) from None
            await c.images.delete(dst)
            await c.images.create(img)
        write(dst + "\n")
    return 0


async def _json_blob(c: Client, digest: str) -> Any:
    try:
        return json.loads(await content.read_blob(c.content, digest))
    except (errors.NotFound, ValueError, UnicodeDecodeError):
        return None


async def images_inspect(c: Client, a: argparse.Namespace) -> int:
    img = await c.images.get(a.ref)
    platform = oci.parse_platform(a.platform) if a.platform else oci.host_platform()
    doc: dict[str, Any] = {
        "name": img.name,
        "labels": dict(img.labels),
        "target": img.target.to_json(),
        "created_at": img.created_at,
        "updated_at": img.updated_at,
        "platforms": await image_platforms(c.content, img.target),
    }
    if img.target.media_type in oci.INDEX_TYPES:
        doc["index"] = await _json_blob(c, img.target.digest)
    try:
        mdesc, manifest = await unpacker.resolve_manifest(c.content, img.target, platform)
    except (errors.NotFound, errors.InvalidArgument) as e:
        doc["error"] = str(e)
    else:
        doc["manifest_descriptor"] = mdesc.to_json()
        doc["manifest"] = await _json_blob(c, mdesc.digest)
        doc["config"] = await _json_blob(c, manifest.config.digest)
    write(output.to_json(doc))
    return 0


# --- mount / unmount ---------------------------------------------------------------


def mount_lease_id(target: Path) -> str:
    """The lease that holds a mounted image's snapshot: named after the target."""
    return "mount-" + hashlib.sha256(str(target).encode()).hexdigest()[:24]


async def images_mount(c: Client, a: argparse.Namespace) -> int:
    target = Path(a.target).absolute()
    if not target.is_dir():
        raise errors.NotFound(f"mount target {target}: not a directory")
    key = str(target)
    platform = oci.parse_platform(a.platform) if a.platform else oci.host_platform()
    img = await c.images.get(a.ref)
    lease_id = mount_lease_id(target)
    labels = {LABEL_GC_REF_SNAPSHOT + c.snapshots.name: key}
    new_lease = created = False
    try:
        await c.leases.create(lease_id, labels)
        new_lease = True
    except errors.AlreadyExists:
        pass  # mounted here before: the lease (and maybe the snapshot) is still there
    scope.set_scope(c.namespace, lease_id)
    try:
        done = await unpacker.unpack(c.content, c.snapshots, c.diff, img.target, platform=platform)
        try:
            # A GC root as well: a mounted snapshot must outlive its lease.
            root = {gc.LABEL_ROOT: grpcutil.now().strftime("%Y-%m-%dT%H:%M:%SZ")}
            if a.rw:
                mounts = await c.snapshots.prepare(key, done.chain_id, root)
            else:
                mounts = await c.snapshots.view(key, done.chain_id, root)
            created = True
        except errors.AlreadyExists:
            mounts = await c.snapshots.mounts(key)
        await asyncio.to_thread(mount.mount_all, mounts, target)
    except BaseException:
        scope.set_scope(c.namespace, "")
        if created:
            with contextlib.suppress(errors.SeacanError):
                await c.snapshots.remove(key)
        if new_lease:
            with contextlib.suppress(errors.SeacanError):
                await c.leases.delete(lease_id)
        raise
    scope.set_scope(c.namespace, "")
    write(f"{target}\n")
    return 0


async def images_unmount(c: Client, a: argparse.Namespace) -> int:
    target = Path(a.target).absolute()
    await asyncio.to_thread(mount.unmount, target)
    if a.rm:
        with contextlib.suppress(errors.NotFound):
            await c.snapshots.remove(str(target))
        with contextlib.suppress(errors.NotFound):
            await c.leases.delete(mount_lease_id(target))
    write(f"{target}\n")
    return 0


# --- the parsers ------------------------------------------------------------------


def register(subs: Subparsers) -> None:
    im = noun(subs, "images", ["image", "i"], "manage images")

    p = verb(im, "import", images_import, "import images from an OCI or docker-save archive")
    p.add_argument(
        "--base-name",
        default="",
        help="prefix for bare reference names; references not under it are skipped",
    )
    p.add_argument("--digests", action="store_true", help="also name each image by digest")
    p.add_argument(
        "--all-platforms",
        action="store_true",
        help="keep and check every platform (only the host's is unpacked)",
    )
    p.add_argument("--no-unpack", action="store_true", help="do not unpack the layers")
    p.add_argument("file", metavar="FILE|-")

    p = verb(im, "export", images_export, "export images as an OCI layout archive")
    p.add_argument(
        "--platform", action="append", default=[], help="export only this platform (repeatable)"
    )
    p.add_argument(
        "--all-platforms", action="store_true", help="export every platform (each must be present)"
    )
    p.add_argument(
        "--skip-manifest-json",
        action="store_true",
        help="leave out the docker-compatible manifest.json",
    )
    p.add_argument("file", metavar="FILE|-")
    p.add_argument("refs", nargs="+", metavar="REF")

    distribution.add_pull_args(verb(im, "pull", distribution.pull, "pull an image"))
    distribution.add_push_args(verb(im, "push", distribution.push, "push an image"))

    p = verb(im, "ls", images_ls, "list images", ["list"])
    add_quiet(p, "names")
    add_format(p)
    p.add_argument("filters", nargs="*", metavar="FILTER")

    p = verb(im, "rm", images_rm, "remove images", ["remove", "delete", "del"])
    p.add_argument("--sync", action="store_true", help="collect garbage before returning")
    p.add_argument("refs", nargs="+", metavar="REF")

    p = verb(im, "tag", images_tag, "give an image more names")
    p.add_argument("--force", action="store_true", help="replace images that exist")
    p.add_argument("source", metavar="SOURCE")
    p.add_argument("targets", nargs="+", metavar="TARGET")

    p = verb(im, "inspect", images_inspect, "show an image, its manifest and config as JSON")
    p.add_argument("--platform", default="", help="the manifest to show (default: host)")
    p.add_argument("ref", metavar="REF")

    p = verb(im, "mount", images_mount, "mount an image's root filesystem on a directory")
    p.add_argument("--rw", action="store_true", help="a writable snapshot (default read-only)")
    p.add_argument("--platform", default="", help="the platform to mount (default: host)")
    p.add_argument("ref", metavar="REF")
    p.add_argument("target", metavar="TARGET")

    p = verb(im, "unmount", images_unmount, "unmount an image mounted with mount", ["umount"])
    p.add_argument("--rm", action="store_true", help="also remove its snapshot and lease")
    p.add_argument("target", metavar="TARGET")
