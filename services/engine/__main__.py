"""The engine service process: Engine on ``<state>/sockets/engine.sock``.

python -m seacan.services.engine [flags]

It keeps no state of its own: each Run calls the other services through one
client, on each owner's own socket (not through the router), in the request's
namespace.
"""

from __future__ import annotations

import copy

import grpc

from seacan import config, grpcutil, mount, scope
from seacan.client import Client
from seacan.services import process

from . import servicer


def in_request_namespace(shared: Client) -> Client:
    """``shared`` (its channel and proxies) working in the current request's namespace."""
    c = copy.copy(shared)
    c.set_namespace(scope.namespace_required())
    return c


async def serve(cfg: config.Config) -> None:
    shared = Client(cfg.address, owner_socket=cfg.service_socket)

    def _register(server: grpc.aio.Server) -> None:
        servicer.register(server, lambda: in_request_namespace(shared))

    try:
        await grpcutil.serve(cfg.service_socket("engine"), _register, [servicer.SERVICE])
    finally:
        await shared.close()


def main() -> None:
    # The rootfs is mounted here for user lookups: in a mount namespace of the
    # engine's own, so a kill -9 half-way leaves no mount on the host.
    mount.private_mount_namespace()
    process.run("engine", serve)


if __name__ == "__main__":
    main()
