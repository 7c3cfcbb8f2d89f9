"""seacan networks: create, ls, inspect, rm, prune, connect, disconnect (``docker network``).

seacan network create [--driver bridge|macvlan|ipvlan] [--subnet CIDR] [--gateway IP]
                      [--internal] [-o parent=IF] [--label K=V] NAME
seacan network ls [-q] [--format json]
seacan network inspect NAME...
seacan network rm NAME...               refused while containers are attached
seacan network prune [-f]               networks no container uses (not ``bridge``)
seacan network connect [--alias A] NET CONTAINER
seacan network disconnect NET CONTAINER
seacan port CONTAINER [PORT[/PROTO]]    published ports, as ``docker port`` prints them
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
from seacan.networking import Network, PortMapping


def _options(items: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not key or not eq:
            raise errors.InvalidArgument(f"invalid network option {item!r}: want KEY=VALUE")
        out[key] = value
    return out


def inspect_json(n: Network) -> dict[str, Any]:
    """A network as ``docker network inspect`` prints it (the fields that apply)."""
    return {
        "Name": n.name,
        "Id": n.id,
        "Created": n.created_at.isoformat() if n.created_at else "",
        "Driver": n.driver,
        "IPAM": {"Driver": "host-local", "Config": [{"Subnet": n.subnet, "Gateway": n.gateway}]},
        "Internal": n.internal,
        "Options": dict(n.options),
        "Labels": dict(n.labels),
        "Bridge": n.bridge,
        "ConfList": n.conflist,
        "Containers": {
            f"{e.namespace}/{e.container_id}": {
                "Name": e.container_id,
                "Interface": e.ifname,
                "IPv4Address": e.ip,
                "MacAddress": e.mac,
                "Aliases": list(e.aliases),
                "Ports": [str(p) for p in e.ports],
            }
            for e in n.endpoints
        },
    }


async def create(c: Client, a: argparse.Namespace) -> int:
    net = await c.networking.create(
        Network(
            name=a.name,
            driver=a.driver,
            subnet=a.subnet,
            gateway=a.gateway,
            internal=a.internal,
            labels=parse_labels(a.label),
            options=_options(a.opt),
        )
    )
    write(net.id + "\n")
    return 0


async def ls(c: Client, a: argparse.Namespace) -> int:
    nets = await c.networking.list()
    if a.quiet:
        write("".join(n.name + "\n" for n in nets))
    elif a.format == "json":
        write(output.to_json([inspect_json(n) for n in nets]))
    else:
        rows = [(n.id[:12], n.name, n.driver, n.subnet, str(len(n.endpoints))) for n in nets]
        write(output.table(["NETWORK ID", "NAME", "DRIVER", "SUBNET", "CONTAINERS"], rows))
    return 0


async def inspect(c: Client, a: argparse.Namespace) -> int:
    out: list[dict[str, Any]] = []

    async def one(name: str) -> None:
        out.append(inspect_json(await c.networking.get(name)))

    code = await output.each(a.names, one)
    write(output.to_json(out))
    return code


async def rm(c: Client, a: argparse.Namespace) -> int:
    async def one(name: str) -> None:
        await c.networking.remove(name)
        write(name + "\n")

    return await output.each(a.names, one)


async def prune(c: Client, a: argparse.Namespace) -> int:
    if not a.force:
        sys.stderr.write(
            "WARNING! This will remove all custom networks not used by at least one container.\n"
            "Are you sure you want to continue? [y/N] "
        )
        sys.stderr.flush()
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            return 0
    removed = await c.networking.prune()
    if removed:
        write("Deleted Networks:\n" + "".join(n + "\n" for n in removed))
    return 0


async def connect(c: Client, a: argparse.Namespace) -> int:
    await c.containers.get(a.container)
    ep = await c.networking.connect(a.network, a.container, a.alias)
    if ep.ip:
        write(f"{ep.container_id} {ep.network} {ep.ifname} {ep.ip}\n")
    return 0


async def disconnect(c: Client, a: argparse.Namespace) -> int:
    await c.networking.disconnect(a.network, a.container)
    return 0


async def published(c: Client, container: str) -> list[PortMapping]:
    """The ports ``container`` (of the client's namespace) publishes, by container port."""
    await c.containers.get(container)
    ports = [
        p
        for n in await c.networking.list()
        for e in n.endpoints
        if e.namespace == c.namespace and e.container_id == container
        for p in e.ports
    ]
    return sorted(ports, key=lambda p: (p.container_port, p.protocol, p.host_ip, p.host_port))


async def port(c: Client, a: argparse.Namespace) -> int:
    ports = await published(c, a.container)
    if a.port:
        num, _, proto = a.port.partition("/")
        want = f"{num}/{proto or 'tcp'}"
        ports = [p for p in ports if f"{p.container_port}/{p.protocol}" == want]
        if not ports:
            raise errors.NotFound(f"no public port {want!r} published for {a.container!r}")
        write("".join(f"{p.host_ip or '0.0.0.0'}:{p.host_port}\n" for p in ports))
        return 0
    write("".join(
        f"{p.container_port}/{p.protocol} -> {p.host_ip or '0.0.0.0'}:{p.host_port}\n"
        for p in ports
    ))  # fmt: skip
    return 0


def register(subs: Subparsers) -> None:
    p = subs.add_parser(
        "port",
        help="list a container's published ports",
        description="list a container's published ports (as docker port)",
    )
    p.set_defaults(func=port, noun_parser=p)
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("port", nargs="?", default="", metavar="PORT[/PROTO]")
    vs = noun(subs, "networks", ["network", "net"], "manage networks")
    p = verb(vs, "create", create, "create a network")
    p.add_argument("-d", "--driver", default="bridge", choices=("bridge", "macvlan", "ipvlan"))
    p.add_argument("--subnet", default="", metavar="CIDR")
    p.add_argument("--gateway", default="", metavar="IP")
    p.add_argument("--internal", action="store_true", help="no access to or from outside")
    p.add_argument("-o", "--opt", action="append", default=[], metavar="K=V",
                   help="driver options: parent=IF (macvlan, ipvlan)")  # fmt: skip
    p.add_argument("--label", action="append", default=[], metavar="K=V")
    p.add_argument("name", metavar="NAME")
    p = verb(vs, "ls", ls, "list networks", ["list"])
    p.add_argument("-q", "--quiet", action="store_true", help="print only the names")
    add_format(p)
    p = verb(vs, "inspect", inspect, "show networks as JSON")
    p.add_argument("names", nargs="+", metavar="NAME")
    p = verb(vs, "rm", rm, "remove networks", ["remove"])
    p.add_argument("names", nargs="+", metavar="NAME")
    p = verb(vs, "prune", prune, "remove unused networks")
    p.add_argument("-f", "--force", action="store_true", help="do not ask for confirmation")
    p = verb(vs, "connect", connect, "connect a container to a network")
    p.add_argument("--alias", action="append", default=[], metavar="NAME")
    p.add_argument("network", metavar="NETWORK")
    p.add_argument("container", metavar="CONTAINER")
    p = verb(vs, "disconnect", disconnect, "disconnect a container from a network")
    p.add_argument("network", metavar="NETWORK")
    p.add_argument("container", metavar="CONTAINER")
