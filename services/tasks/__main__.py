"""The tasks service process: Tasks and Events on ``<state>/sockets/tasks.sock``.

python -m seacan.services.tasks [flags]

It also serves ttrpc ``containerd.services.events.ttrpc.v1.Events/Forward``
on ``<address>.ttrpc`` (the shims' ``TTRPC_ADDRESS``), and on start
reconnects to the shims of running tasks before it answers.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

import grpc

from seacan import config, grpcutil, ttrpc
from seacan.containers.proxy import RemoteContainers
from seacan.services import process

from . import events_servicer, servicer
from .events import Exchange
from .manager import TaskManager
from .shim_client import Cmdline, ShimTemplate


def publish_binary() -> str:
    """What shims get as ``-publish-binary`` (seacan shims do not use it)."""
    return shutil.which("seacand") or shutil.which("true") or "/bin/true"


async def serve(cfg: config.Config) -> None:
    containers = grpcutil.channel(cfg.service_socket("containers"))
    exchange = Exchange()
    ttrpc_address = f"{cfg.address}.ttrpc"
    template = ShimTemplate(cfg.state / "shim-template.sock")
    template.start()
    cmdline = Cmdline(
        str(cfg.address),
        ttrpc_address,
        publish_binary(),
        shim_env=(
            ("SEACAN_SHIM_SOCKET_DIR", str(cfg.state / "s")),
            ("SEACAN_RUNC_ROOT", str(cfg.state / "runc")),
            template.env(),
        ),
    )
    manager = TaskManager(cfg.state, cfg.root, RemoteContainers(containers), cmdline, exchange)
    events_server = ttrpc.Server()
    events_servicer.register_ttrpc(events_server, exchange)
    Path(ttrpc_address).parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(ttrpc_address)  # left by a killed instance
    await events_server.serve_unix(ttrpc_address)

    def _register(server: grpc.aio.Server) -> None:
        servicer.register(server, manager)
        events_servicer.register(server, exchange)

    try:
        await manager.load()
        await grpcutil.serve(
            cfg.service_socket("tasks"),
            _register,
            [servicer.SERVICE, events_servicer.SERVICE],
        )
    finally:
        await events_server.close()
        await manager.close()
        await template.close()
        await containers.close(None)


def main() -> None:
    process.run("tasks", serve)


if __name__ == "__main__":
    main()
