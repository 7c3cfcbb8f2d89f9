"""The volumes service process on ``<state>/sockets/volumes.sock``.

python -m seacan.services.volumes [flags]
"""

from __future__ import annotations

import grpc

from seacan import config, grpcutil
from seacan.services import process


async def serve(cfg: config.Config) -> None:
    def _register(server: grpc.aio.Server) -> None:
        del server

    await grpcutil.serve(cfg.service_socket("volumes"), _register, [])


def main() -> None:
    process.run("volumes", serve)


if __name__ == "__main__":
    main()
