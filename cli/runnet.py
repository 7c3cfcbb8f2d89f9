"""``seacan run``'s network flags, and the network steps of ``start`` and ``run --rm``.

``--network`` (repeatable) is ``none`` (own namespace, loopback only),
``host``, or network names (default: ``bridge``, made on first use). The
flags are checked and the container attached by :mod:`seacan.engine`: the
networking service makes the namespace and the container's hosts,
resolv.conf and hostname files *before* the container is created.
"""

from __future__ import annotations

import argparse
import contextlib
from typing import TYPE_CHECKING

from seacan import errors

if TYPE_CHECKING:
    from seacan.client import Client


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


async def detach(c: Client, id: str, *, forget: bool = True) -> None:
    """The container's network endpoints go (nothing to do for one without networks)."""
    with contextlib.suppress(errors.SeacanError):
        await c.networking.detach(id, forget=forget)


async def reattach(c: Client, id: str) -> None:
    """Before ``seacan start``: attach a stopped container to its networks again."""
    from seacan.networking import AttachSpec

    with contextlib.suppress(errors.NotFound):
        await c.networking.attach(AttachSpec(container_id=id), again=True)
