"""``seacan run``'s network flags, and the attach that comes before the container.

``--network`` (repeatable) is ``none`` (own namespace, loopback only, as
before), ``host``, or network names (default: ``bridge``, made on first
use). For networks, the networking service makes the namespace and the
container's hosts, resolv.conf and hostname files *before* the container
is created; the container's spec joins that namespace and bind-mounts the
files. On any later failure the caller detaches.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from dataclasses import replace

from seacan import errors
from seacan.client import Client
from seacan.images import unpack as unpacker
from seacan.networking import (
    DEFAULT_NETWORK,
    AttachSpec,
    NetworkRef,
    PortMapping,
    exposed_ports,
    parse_extra_host,
    parse_port_specs,
)
from seacan.runtime.spec import ContainerOptions

SPECIAL = ("none", "host")


def add_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--network", "--net", action="append", default=[], metavar="NETWORK",
                   help="none, host, or a network name (repeatable; default bridge)")  # fmt: skip
    p.add_argument("-p", "--publish", action="append", default=[],
                   metavar="[IP:]HOSTPORT:PORT[/PROTO]", help="publish a port")  # fmt: skip
    p.add_argument("-P", "--publish-all", action="store_true",
                   help="publish the image's exposed ports on free host ports")  # fmt: skip
    p.add_argument("--dns", action="append", default=[], metavar="IP")
    p.add_argument("--dns-search", action="append", default=[], metavar="DOMAIN")
    p.add_argument("--dns-option", action="append", default=[], metavar="OPTION")
    p.add_argument("--add-host", action="append", default=[], metavar="HOST:IP")
    p.add_argument("--network-alias", action="append", default=[], metavar="NAME")


def networks_of(a: argparse.Namespace) -> list[str]:
    names: list[str] = a.network or [DEFAULT_NETWORK]
    special = [n for n in names if n in SPECIAL]
    if special and len(names) > 1:
        raise errors.InvalidArgument(
            f"--network {special[0]} cannot be combined with other networks"
        )
    return names


def mode(a: argparse.Namespace) -> str:
    """The ContainerOptions network mode before attaching ("none" stands in for networks)."""
    names = networks_of(a)
    return names[0] if names[0] in SPECIAL else "none"


async def _ports(c: Client, a: argparse.Namespace) -> tuple[PortMapping, ...]:
    ports = parse_port_specs(a.publish)
    if a.publish_all:
        from seacan.images.archive import normalize_reference

        img = await c.images.get(normalize_reference(a.image))
        parts = await unpacker.read_image(c.content, img.target, None)
        given = {(p.container_port, p.protocol) for p in ports}  # -p wins over -P, as Docker
        exposed = exposed_ports(parts.config.config or {})
        ports += tuple(p for p in exposed if (p.container_port, p.protocol) not in given)
    return ports


async def attach(
    c: Client, id: str, a: argparse.Namespace, opts: ContainerOptions
) -> ContainerOptions:
    """Attach ``id`` to its networks; ``opts`` joined to them (unchanged for none and host)."""
    names = networks_of(a)
    if names[0] in SPECIAL:
        if a.publish or a.publish_all:
            print(f"seacan: published ports are discarded with --network {names[0]}",
                  file=sys.stderr)  # fmt: skip
        return opts
    for h in a.add_host:
        parse_extra_host(h)
    with contextlib.suppress(errors.NotFound):
        await c.containers.get(id)
        raise errors.AlreadyExists(f"container {id!r} already exists")
    spec = AttachSpec(
        container_id=id,
        networks=tuple(NetworkRef(n, tuple(a.network_alias)) for n in names),
        ports=await _ports(c, a),
        hostname=a.hostname,
        dns_servers=tuple(a.dns),
        dns_search=tuple(a.dns_search),
        dns_options=tuple(a.dns_option),
        extra_hosts=tuple(a.add_host),
    )
    att = await c.networking.attach(spec)
    if spec.ports and not any(e.ports for e in att.endpoints):
        print(f"seacan: published ports are discarded on internal network {names[0]!r}",
              file=sys.stderr)  # fmt: skip
    return replace(
        opts,
        network_mode=att.netns_path,
        hostname=att.hostname,
        mounts=(*opts.mounts, *att.mounts()),
    )


async def detach(c: Client, id: str, *, forget: bool = True) -> None:
    """Undo :func:`attach` (nothing to do for a container without networks)."""
    with contextlib.suppress(errors.SeacanError):
        await c.networking.detach(id, forget=forget)


async def reattach(c: Client, id: str) -> None:
    """Before ``seacan start``: attach a stopped container to its networks again."""
    with contextlib.suppress(errors.NotFound):
        await c.networking.attach(AttachSpec(container_id=id), again=True)
