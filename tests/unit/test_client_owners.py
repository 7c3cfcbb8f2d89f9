"""A Client made for a service reaches each store on the socket of the process
that owns it, the same table seacand's router uses (supervisor OWNERS)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from seacan.client import Client
from seacan.services.supervisor.main import OWNERS

pytestmark = pytest.mark.unit

# Client attribute -> the gRPC service its proxy calls.
SERVICE_OF = {
    "content": "containerd.services.content.v1.Content",
    "snapshots": "containerd.services.snapshots.v1.Snapshots",
    "images": "containerd.services.images.v1.Images",
    "diff": "containerd.services.diff.v1.Diff",
    "namespaces": "containerd.services.namespaces.v1.Namespaces",
    "leases": "containerd.services.leases.v1.Leases",
    "gc": "seacan.services.gc.v1.GC",
    "containers": "containerd.services.containers.v1.Containers",
    "tasks": "containerd.services.tasks.v1.Tasks",
    "events": "containerd.services.events.v1.Events",
    "build": "seacan.services.build.v1.Builder",
    "networking": "seacan.services.networking.v1.Networking",
    "volumes": "seacan.services.volumes.v1.Volumes",
    "transfer": "seacan.services.transfer.v1.Transfer",
}


@pytest.mark.parametrize("attr", sorted(SERVICE_OF))
def test_each_proxy_uses_its_owners_socket(attr: str) -> None:
    async def check() -> None:
        c = Client("/nonexistent/main.sock", owner_socket=lambda o: Path(f"/nonexistent/{o}.sock"))
        try:
            getattr(c, attr)
            [owner] = c._owned
            assert SERVICE_OF[attr] in OWNERS[owner]
        finally:
            await c.close()

    asyncio.run(check())


def test_without_owner_sockets_everything_goes_to_the_main_socket() -> None:
    async def check() -> None:
        c = Client("/nonexistent/main.sock")
        try:
            for attr in SERVICE_OF:
                getattr(c, attr)
            assert c._owned == {}
        finally:
            await c.close()

    asyncio.run(check())
