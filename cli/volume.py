"""seacan volumes: create, ls, inspect, rm, prune (Docker's ``docker volume``).

seacan volume create [--label K=V] [--opt K=V] [--driver local] [NAME]
seacan volume ls [-q] [--filter label=K[=V]|dangling=true|name=S|driver=local]
seacan volume inspect NAME...
seacan volume rm [-f] NAME...           refused while a container uses the volume
seacan volume prune [-f] [-a] [--filter label=K[=V]]
                                        unused anonymous volumes (-a: named ones too)
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from seacan import errors
from seacan.cli import output
from seacan.cli.commands import Subparsers, add_format, noun, verb, write
from seacan.cli.flags import parse_labels
from seacan.client import Client
from seacan.volumes import Volume


def _options(items: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not key or not eq:
            raise errors.InvalidArgument(f"invalid volume option {item!r}: want KEY=VALUE")
        out[key] = value
    return out


def inspect_json(v: Volume) -> dict[str, Any]:
    """A volume as ``docker volume inspect`` prints it (plus the containers using it)."""
    return {
        "CreatedAt": v.created_at.isoformat() if v.created_at else "",
        "Driver": v.driver,
        "Labels": dict(v.labels),
        "Mountpoint": v.mountpoint,
        "Name": v.name,
        "Options": dict(v.options),
        "Scope": "local",
        "UsedBy": list(v.containers),
    }


async def create(c: Client, a: argparse.Namespace) -> int:
    v = await c.volumes.create(
        a.name, driver=a.driver, labels=parse_labels(a.label), options=_options(a.opt)
    )
    write(v.name + "\n")
    return 0


async def ls(c: Client, a: argparse.Namespace) -> int:
    vols = await c.volumes.list(a.filter)
    if a.quiet:
        write("".join(v.name + "\n" for v in vols))
    elif a.format == "json":
        write(output.to_json([inspect_json(v) for v in vols]))
    else:
        write(output.table(["DRIVER", "VOLUME NAME"], [(v.driver, v.name) for v in vols]))
    return 0


async def inspect(c: Client, a: argparse.Namespace) -> int:
    out: list[dict[str, Any]] = []

    async def one(name: str) -> None:
        out.append(inspect_json(await c.volumes.get(name)))

    code = await output.each(a.names, one)
    write(output.to_json(out))
    return code


async def rm(c: Client, a: argparse.Namespace) -> int:
    async def one(name: str) -> None:
        await c.volumes.remove(name, force=a.force)
        write(name + "\n")

    return await output.each(a.names, one)


async def prune(c: Client, a: argparse.Namespace) -> int:
    if not a.force:
        what = "all local volumes" if a.all else "all anonymous local volumes"
        sys.stderr.write(
            f"WARNING! This will remove {what} not used by at least one container.\n"
            "Are you sure you want to continue? [y/N] "
        )
        sys.stderr.flush()
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            return 0
    pruned = await c.volumes.prune(a.filter, all=a.all)
    if pruned.removed:
        write("Deleted Volumes:\n" + "".join(n + "\n" for n in pruned.removed) + "\n")
    write(f"Total reclaimed space: {output.human_size(pruned.reclaimed_bytes)}\n")
    return 0


def register(subs: Subparsers) -> None:
    vs = noun(subs, "volumes", ["volume", "vol"], "manage volumes")
    p = verb(vs, "create", create, "create a volume (a random name when none is given)")
    p.add_argument("-d", "--driver", default="local", help="volume driver (only %(default)s)")
    p.add_argument("--label", action="append", default=[], metavar="K=V")
    p.add_argument(
        "-o", "--opt", action="append", default=[], metavar="K=V",
        help="driver options: type=tmpfs, device=tmpfs, o=size=64m (as mount(8))",
    )  # fmt: skip
    p.add_argument("name", nargs="?", default="", metavar="NAME")
    p = verb(vs, "ls", ls, "list volumes", ["list"])
    p.add_argument("-q", "--quiet", action="store_true", help="print only the names")
    p.add_argument("-f", "--filter", action="append", default=[], metavar="KEY=VALUE")
    add_format(p)
    p = verb(vs, "inspect", inspect, "show volumes as JSON")
    p.add_argument("names", nargs="+", metavar="NAME")
    p = verb(vs, "rm", rm, "remove volumes", ["remove"])
    p.add_argument("-f", "--force", action="store_true", help="no error for a missing volume")
    p.add_argument("names", nargs="+", metavar="NAME")
    p = verb(vs, "prune", prune, "remove unused volumes")
    p.add_argument("-f", "--force", action="store_true", help="do not ask for confirmation")
    p.add_argument("-a", "--all", action="store_true", help="named volumes too")
    p.add_argument("--filter", action="append", default=[], metavar="label=K[=V]")
