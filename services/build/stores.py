"""The services the builder works through: gRPC proxies on seacand's main socket."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import grpc.aio

from seacan import grpcutil
from seacan.containers.proxy import RemoteContainers
from seacan.content.proxy import RemoteContent
from seacan.diff.proxy import RemoteDiff
from seacan.images.proxy import RemoteImages
from seacan.leases.proxy import RemoteLeases
from seacan.snapshots.proxy import RemoteSnapshotter
from seacan.tasks.proxy import RemoteTasks
from seacan.transfer.proxy import RemoteTransfer

SNAPSHOTTER = "overlayfs"


@dataclass(frozen=True, slots=True)
class Stores:
    channel: grpc.aio.Channel
    content: RemoteContent
    snapshots: RemoteSnapshotter
    images: RemoteImages
    diff: RemoteDiff
    leases: RemoteLeases
    containers: RemoteContainers
    tasks: RemoteTasks
    transfer: RemoteTransfer

    @classmethod
    def connect(cls, address: Path) -> Stores:
        """Proxies over one channel to seacand (call inside the loop)."""
        ch = grpcutil.channel(address)
        return cls(
            channel=ch,
            content=RemoteContent(ch),
            snapshots=RemoteSnapshotter(ch, SNAPSHOTTER),
            images=RemoteImages(ch),
            diff=RemoteDiff(ch),
            leases=RemoteLeases(ch),
            containers=RemoteContainers(ch),
            tasks=RemoteTasks(ch),
            transfer=RemoteTransfer(ch),
        )

    async def close(self) -> None:
        await self.channel.close()
