"""The snapshots service process.

python -m seacan.services.snapshots [flags]     serve Snapshots (overlayfs) on its socket
"""

from __future__ import annotations

import grpc

from seacan import config, grpcutil
from seacan.metaclient import MetaClient
from seacan.services import process

from .overlay import OverlaySnapshotter
from .servicer import SERVICE, register


async def serve(cfg: config.Config) -> None:
    metadata = grpcutil.channel(cfg.service_socket("metadata"))
    snapshotter = OverlaySnapshotter.open(
        cfg.service_root("snapshots") / "overlayfs", MetaClient(metadata)
    )

    def _register(server: grpc.aio.Server) -> None:
        register(server, snapshotter)

    try:
        await grpcutil.serve(cfg.service_socket("snapshots"), _register, [SERVICE])
    finally:
        snapshotter.close()
        await metadata.close(None)


def main() -> None:
    process.run("snapshots", serve)


if __name__ == "__main__":
    main()
