"""seacan version, namespaces, content, snapshots, leases and prune."""

from __future__ import annotations

import argparse
import asyncio
import platform
import re
import sys
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import seacan
from seacan import content, errors, leases, scope
from seacan.cli import output
from seacan.cli.flags import parse_labels
from seacan.client import Client
from seacan.snapshots import Info as SnapshotInfo
from seacan.snapshots import Kind

if TYPE_CHECKING:
    from seacan import gc

Subparsers = Any  # argparse._SubParsersAction, which has no public type


def noun(subs: Subparsers, name: str, aliases: Sequence[str], help_: str) -> Subparsers:
    p = subs.add_parser(name, aliases=list(aliases), help=help_, description=help_)
    p.set_defaults(noun_parser=p, func=None)
    return p.add_subparsers(dest="verb", metavar="COMMAND")


def verb(
    verbs: Subparsers,
    name: str,
    func: Any,
    help_: str,
    aliases: Sequence[str] = (),
) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = verbs.add_parser(
        name, aliases=list(aliases), help=help_, description=help_
    )
    p.set_defaults(func=func)
    return p


def add_format(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", choices=("table", "json"), default="table", help="output format")


def add_quiet(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("-q", "--quiet", action="store_true", help=f"print only the {what}")


def write(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


# --- version --------------------------------------------------------------------


async def version(c: Client, a: argparse.Namespace) -> int:
    write(f"Client:\n  Version:  {seacan.__version__}\n  Python:   {platform.python_version()}\n\n")
    v = await c.version()
    uuid = await c.introspection.server_uuid()
    write(f"Server:\n  Version:  {v.version}\n  Revision: {v.revision}\n  UUID: {uuid}\n")
    return 0


# --- namespaces -----------------------------------------------------------------


async def namespaces_ls(c: Client, a: argparse.Namespace) -> int:
    spaces = sorted(await c.namespaces.list(), key=lambda n: n.name)
    if a.quiet:
        write("".join(n.name + "\n" for n in spaces))
    elif a.format == "json":
        write(output.to_json(spaces))
    else:
        write(
            output.table(
                ["NAME", "LABELS"], [(n.name, output.labels_text(n.labels)) for n in spaces]
            )
        )
    return 0


async def namespaces_create(c: Client, a: argparse.Namespace) -> int:
    scope.validate_identifier(a.name, "namespace")
    await c.namespaces.create(a.name, parse_labels(a.labels))
    return 0


async def namespaces_label(c: Client, a: argparse.Namespace) -> int:
    from seacan.namespaces import Namespace

    labels = parse_labels(a.labels)
    await c.namespaces.update(Namespace(a.name, labels), ["labels." + k for k in labels])
    return 0


async def namespaces_rm(c: Client, a: argparse.Namespace) -> int:
    code = 0
    for name in a.names:
        try:
            await c.namespaces.delete(name)
        except errors.SeacanError as e:
            print(f"seacan: {e}", file=sys.stderr)
            code = 1
            continue
        write(name + "\n")
    return code


# --- content --------------------------------------------------------------------


async def content_ls(c: Client, a: argparse.Namespace) -> int:
    infos = [i async for i in c.content.list(a.filters)]
    if a.quiet:
        write("".join(i.digest + "\n" for i in infos))
    elif a.format == "json":
        write(output.to_json(infos))
    else:
        rows = [
            (
                i.digest,
                output.human_size(i.size),
                output.age(i.created_at),
                output.labels_text(i.labels),
            )
            for i in infos
        ]
        write(output.table(["DIGEST", "SIZE", "AGE", "LABELS"], rows))
    return 0


async def content_get(c: Client, a: argparse.Namespace) -> int:
    content.validate_digest(a.digest)
    out = sys.stdout.buffer
    async for chunk in c.content.read(a.digest):
        await asyncio.to_thread(out.write, chunk)
    await asyncio.to_thread(out.flush)
    return 0


async def content_rm(c: Client, a: argparse.Namespace) -> int:
    code = 0
    for digest in a.digests:
        try:
            content.validate_digest(digest)
            await c.content.delete(digest)
        except errors.SeacanError as e:
            print(f"seacan: {e}", file=sys.stderr)
            code = 1
            continue
        write(digest + "\n")
    return code


# --- snapshots ------------------------------------------------------------------


def kind_text(kind: Kind) -> str:
    """ctr's spelling: ``Committed``, ``Active``, ``View``."""
    return kind.name.capitalize()


async def _snapshots(c: Client, a: argparse.Namespace) -> list[SnapshotInfo]:
    sn = c.snapshotter(a.snapshotter)
    return sorted([i async for i in sn.list(getattr(a, "filters", ()))], key=lambda i: i.name)


async def snapshots_ls(c: Client, a: argparse.Namespace) -> int:
    infos = await _snapshots(c, a)
    if a.quiet:
        write("".join(i.name + "\n" for i in infos))
    elif a.format == "json":
        write(output.to_json(infos))
    else:
        rows = [(i.name, i.parent, kind_text(i.kind)) for i in infos]
        write(output.table(["KEY", "PARENT", "KIND"], rows))
    return 0


def tree_lines(infos: Sequence[SnapshotInfo]) -> list[str]:
    """ctr's ``snapshots tree``: roots first, each child indented under its parent."""
    names = {i.name for i in infos}
    children: dict[str, list[str]] = {}
    for i in infos:
        if i.parent and i.parent in names:
            children.setdefault(i.parent, []).append(i.name)
    roots = [i.name for i in infos if not i.parent or i.parent not in names]
    lines: list[str] = []

    def visit(name: str, level: int) -> None:
        prefix = "  " * level + ("\\_" if level else "")
        lines.append(f"{prefix} {name}")
        for child in sorted(children.get(name, [])):
            visit(child, level + 1)

    for r in sorted(roots):
        visit(r, 0)
    return lines


async def snapshots_tree(c: Client, a: argparse.Namespace) -> int:
    write("".join(line + "\n" for line in tree_lines(await _snapshots(c, a))))
    return 0


async def snapshots_info(c: Client, a: argparse.Namespace) -> int:
    write(output.to_json(await c.snapshotter(a.snapshotter).stat(a.key)))
    return 0


async def snapshots_rm(c: Client, a: argparse.Namespace) -> int:
    sn = c.snapshotter(a.snapshotter)
    code = 0
    for key in a.keys:
        try:
            await sn.remove(key)
        except errors.SeacanError as e:
            print(f"seacan: {e}", file=sys.stderr)
            code = 1
            continue
        write(key + "\n")
    return code


async def snapshots_usage(c: Client, a: argparse.Namespace) -> int:
    sn = c.snapshotter(a.snapshotter)
    keys = list(a.keys) or [i.name for i in await _snapshots(c, a)]
    rows = []
    for key in keys:
        u = await sn.usage(key)
        rows.append((key, output.human_size(u.size), str(u.inodes)))
    if a.format == "json":
        write(output.to_json([{"key": k, "size": s, "inodes": int(n)} for k, s, n in rows]))
    else:
        write(output.table(["KEY", "SIZE", "INODES"], rows))
    return 0


# --- leases ---------------------------------------------------------------------


async def leases_ls(c: Client, a: argparse.Namespace) -> int:
    items = sorted(await c.leases.list(a.filters), key=lambda x: x.id)
    if a.quiet:
        write("".join(x.id + "\n" for x in items))
    elif a.format == "json":
        write(output.to_json(items))
    else:
        rows = [
            (
                x.id,
                x.created_at.strftime("%Y-%m-%dT%H:%M:%SZ") if x.created_at else "-",
                output.labels_text(x.labels),
            )
            for x in items
        ]
        write(output.table(["ID", "CREATED", "LABELS"], rows))
    return 0


def parse_duration(text: str) -> timedelta:
    """``90s``, ``10m``, ``24h``, ``1h30m``, as Go's ParseDuration (units s, m, h)."""
    parts = re.findall(r"(\d+(?:\.\d+)?)(h|m|s)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise errors.InvalidArgument(f"invalid duration {text!r}: want e.g. 30m, 24h, 1h30m")
    scale = {"h": 3600, "m": 60, "s": 1}
    return timedelta(seconds=sum(float(n) * scale[u] for n, u in parts))


async def leases_create(c: Client, a: argparse.Namespace) -> int:
    labels = parse_labels(a.labels)
    if a.expires:
        labels.update(leases.expire_in(parse_duration(a.expires)))
    lease = await c.leases.create(a.id or leases.random_id(), labels)
    write(lease.id + "\n")
    return 0


async def leases_rm(c: Client, a: argparse.Namespace) -> int:
    code = 0
    for i, lid in enumerate(a.ids):
        try:
            await c.leases.delete(lid, sync=a.sync and i == len(a.ids) - 1)
        except errors.SeacanError as e:
            print(f"seacan: {e}", file=sys.stderr)
            code = 1
            continue
        write(lid + "\n")
    return code


# --- prune ----------------------------------------------------------------------


def removed_line(r: gc.Removed, namespace: str, dry_run: bool) -> str:
    verb_ = "would remove" if dry_run else "removed"
    where = "" if r.namespace == namespace else f" (namespace {r.namespace})"
    return f"{verb_} {r.type} {r.id}{where}"


async def prune(c: Client, a: argparse.Namespace) -> int:
    try:
        removed = await c.gc.collect_garbage(dry_run=a.dry_run)
    except errors.NotImplemented_:
        raise errors.NotImplemented_(
            f"prune: the daemon at {c.address} has no garbage collection service "
            "(containerd collects garbage on its own)"
        ) from None
    write("".join(removed_line(r, c.namespace, a.dry_run) + "\n" for r in removed))
    return 0


# --- the parsers ----------------------------------------------------------------


def _snapshotter_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--snapshotter", default="overlayfs", help="snapshotter name (default %(default)s)"
    )


def register(subs: Subparsers) -> None:
    p = subs.add_parser("version", help="print the client and server versions")
    p.set_defaults(func=version, noun_parser=p)

    ns = noun(subs, "namespaces", ["namespace", "ns"], "manage namespaces")
    p = verb(ns, "ls", namespaces_ls, "list namespaces", ["list"])
    add_quiet(p, "names")
    add_format(p)
    p = verb(ns, "create", namespaces_create, "create a namespace")
    p.add_argument("name")
    p.add_argument("labels", nargs="*", metavar="LABEL=VALUE")
    p = verb(ns, "label", namespaces_label, "set (or, with an empty value, remove) labels")
    p.add_argument("name")
    p.add_argument("labels", nargs="*", metavar="LABEL=VALUE")
    p = verb(ns, "rm", namespaces_rm, "remove empty namespaces", ["remove", "delete"])
    p.add_argument("names", nargs="+", metavar="NAME")

    ct = noun(subs, "content", [], "manage the content store")
    p = verb(ct, "ls", content_ls, "list blobs", ["list"])
    add_quiet(p, "digests")
    add_format(p)
    p.add_argument("filters", nargs="*", metavar="FILTER")
    p = verb(ct, "get", content_get, "write a blob to stdout")
    p.add_argument("digest")
    p = verb(ct, "rm", content_rm, "remove blobs", ["remove", "delete", "del"])
    p.add_argument("digests", nargs="+", metavar="DIGEST")

    sn = noun(subs, "snapshots", ["snapshot"], "manage snapshots")
    p = verb(sn, "ls", snapshots_ls, "list snapshots", ["list"])
    add_quiet(p, "keys")
    add_format(p)
    _snapshotter_flag(p)
    p.add_argument("filters", nargs="*", metavar="FILTER")
    p = verb(sn, "tree", snapshots_tree, "show snapshots as a tree")
    _snapshotter_flag(p)
    p = verb(sn, "info", snapshots_info, "show a snapshot as JSON")
    _snapshotter_flag(p)
    p.add_argument("key")
    p = verb(sn, "rm", snapshots_rm, "remove snapshots", ["remove", "delete", "del"])
    _snapshotter_flag(p)
    p.add_argument("keys", nargs="+", metavar="KEY")
    p = verb(sn, "usage", snapshots_usage, "show disk usage of snapshots")
    _snapshotter_flag(p)
    add_format(p)
    p.add_argument("keys", nargs="*", metavar="KEY")

    ls = noun(subs, "leases", ["lease"], "manage leases")
    p = verb(ls, "ls", leases_ls, "list leases", ["list"])
    add_quiet(p, "IDs")
    add_format(p)
    p.add_argument("filters", nargs="*", metavar="FILTER")
    p = verb(ls, "create", leases_create, "create a lease")
    p.add_argument("--id", default="", help="the lease ID (default: random)")
    p.add_argument("--expires", default="24h", help="expire after this long; '' never")
    p.add_argument("labels", nargs="*", metavar="LABEL=VALUE")
    p = verb(ls, "rm", leases_rm, "remove leases", ["remove", "delete"])
    p.add_argument("--sync", action="store_true", help="collect garbage before returning")
    p.add_argument("ids", nargs="+", metavar="ID")

    p = subs.add_parser(
        "prune",
        help="remove everything nothing references (garbage collection)",
        description="Collect garbage now, in every namespace; print what was removed.",
    )
    p.add_argument("--dry-run", action="store_true", help="only print what would be removed")
    p.set_defaults(func=prune, noun_parser=p)
