"""The containers service process: Containers on ``<state>/sockets/containers.sock``.

python -m seacan.services.containers [flags]
"""

from __future__ import annotations

import grpc

from seacan import config, grpcutil
from seacan.events.proxy import RemoteEvents
from seacan.metaclient import MetaClient
from seacan.services import process

from . import servicer
from .store import ContainerStore


async def serve(cfg: config.Config) -> None:
    metadata = grpcutil.channel(cfg.service_socket("metadata"))
    events = grpcutil.channel(cfg.service_socket("tasks"))
    store = ContainerStore.open(
        cfg.service_root("containers"), MetaClient(metadata), RemoteEvents(events)
    )

    def _register(server: grpc.aio.Server) -> None:
        servicer.register(server, store)

    try:
        await grpcutil.serve(cfg.service_socket("containers"), _register, [servicer.SERVICE])
    finally:
        store.close()
        await metadata.close(None)
        await events.close(None)


def main() -> None:
    process.run("containers", serve)


if __name__ == "__main__":
    main()
