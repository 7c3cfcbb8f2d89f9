"""The metadata service process: Namespaces, Leases and GC on one socket.

python -m seacan.services.metadata [flags]

The garbage collector reaches the content, snapshots and images services
through their proxies; while one of them is not up, a collection aborts
without removing anything.
"""

from __future__ import annotations

import asyncio

import grpc

from seacan import config, grpcutil
from seacan.containers.proxy import RemoteContainers
from seacan.content.proxy import RemoteContent
from seacan.images.proxy import RemoteImages
from seacan.services import process
from seacan.snapshots.proxy import RemoteSnapshotter

from .collector import Collector, ImageRoots, PeerOccupancy
from .containers_roots import ContainerRoots
from .db import MetaDB
from .leases import LeaseStore
from .namespaces import NamespaceStore
from .servicer import SERVICES, register


async def serve(cfg: config.Config) -> None:
    db = MetaDB(cfg.service_root("metadata") / "meta.db")
    channels = {
        name: grpcutil.channel(cfg.service_socket(name))
        for name in ("content", "snapshots", "images", "containers")
    }
    content = RemoteContent(channels["content"])
    snapshotters = {
        config.DEFAULT_SNAPSHOTTER: RemoteSnapshotter(
            channels["snapshots"], config.DEFAULT_SNAPSHOTTER
        )
    }
    images = RemoteImages(channels["images"])
    containers = RemoteContainers(channels["containers"])
    collector = Collector(
        db, content, snapshotters, [ImageRoots(images), ContainerRoots(containers)]
    )
    namespaces = NamespaceStore(db, PeerOccupancy(content, snapshotters, images, containers))
    leases = LeaseStore(db, collector.collect)

    def _register(server: grpc.aio.Server) -> None:
        register(server, namespaces, leases, collector)

    try:
        async with asyncio.TaskGroup() as tg:
            timer = tg.create_task(collector.run_periodic(cfg.gc_interval), name="gc.timer")
            await grpcutil.serve(cfg.service_socket("metadata"), _register, SERVICES)
            timer.cancel()
    finally:
        for ch in channels.values():
            await ch.close(None)
        db.close()


def main() -> None:
    process.run("metadata", serve)


if __name__ == "__main__":
    main()
