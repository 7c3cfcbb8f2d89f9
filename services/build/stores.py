"""The services the builder works through: gRPC proxies on their owners' sockets.

The builder talks to each service process directly (``<state>/sockets/<owner>.sock``),
as the other services do, not through seacand's router: one hop less on every call.
Calls wait while a service is being restarted (gRPC's wait-for-ready), as the
router makes its callers wait.
"""

from __future__ import annotations

from collections.abc import Callable
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
    channels: tuple[grpc.aio.Channel, ...]
    content: RemoteContent
    snapshots: RemoteSnapshotter
    images: RemoteImages
    diff: RemoteDiff
    leases: RemoteLeases
    containers: RemoteContainers
    tasks: RemoteTasks
    transfer: RemoteTransfer

    @classmethod
    def connect(cls, socket_of: Callable[[str], Path]) -> Stores:
        """Proxies over a channel to each owner's socket, ``socket_of(owner)`` (seacand's
        process names: content, snapshots, images, metadata, containers, tasks). Call
        inside the loop."""
        chans: dict[str, grpc.aio.Channel] = {}

        def ch(owner: str) -> grpc.aio.Channel:
            if owner not in chans:
                chans[owner] = grpcutil.channel(socket_of(owner), wait_for_ready=True)
            return chans[owner]

        return cls(
            content=RemoteContent(ch("content")),
            snapshots=RemoteSnapshotter(ch("snapshots"), SNAPSHOTTER),
            images=RemoteImages(ch("images")),
            diff=RemoteDiff(ch("images")),
            leases=RemoteLeases(ch("metadata")),
            containers=RemoteContainers(ch("containers")),
            tasks=RemoteTasks(ch("tasks")),
            transfer=RemoteTransfer(ch("images")),
            channels=tuple(chans.values()),
        )

    async def close(self) -> None:
        for ch in self.channels:
            await ch.close()
