"""The images service process: Images and Diff on ``<state>/sockets/images.sock``.

python -m seacan.services.images [flags]
"""

from __future__ import annotations

import grpc

from seacan import config, grpcutil
from seacan.content.proxy import RemoteContent
from seacan.leases.proxy import RemoteLeases
from seacan.metaclient import MetaClient
from seacan.services import process
from seacan.snapshots.proxy import RemoteSnapshotter

from . import diff_servicer, servicer, transfer_servicer
from .apply import Applier
from .differ import Differ
from .store import ImageStore, MetaHooks
from .transfer import Transferer


async def serve(cfg: config.Config) -> None:
    metadata = grpcutil.channel(cfg.service_socket("metadata"))
    content_ch = grpcutil.channel(cfg.service_socket("content"))
    store = ImageStore.open(cfg.service_root("images"), MetaHooks(MetaClient(metadata)))
    remote_content = RemoteContent(content_ch)
    applier = Applier(remote_content, max_layer_bytes=cfg.limits.max_layer_bytes)
    differ = Differ(remote_content)
    snapshots_ch = grpcutil.channel(cfg.service_socket("snapshots"))
    transferer = Transferer(
        remote_content,
        lambda name: RemoteSnapshotter(snapshots_ch, name),
        store,
        RemoteLeases(metadata),
        applier,
        max_layer_bytes=cfg.limits.max_layer_bytes,
        certs_dir=cfg.config_dir / "certs.d",
    )

    def _register(server: grpc.aio.Server) -> None:
        servicer.register(server, store)
        diff_servicer.register(server, applier, differ)
        transfer_servicer.register(server, transferer)

    try:
        await grpcutil.serve(
            cfg.service_socket("images"),
            _register,
            [servicer.SERVICE, diff_servicer.SERVICE, transfer_servicer.SERVICE],
        )
    finally:
        store.close()
        await snapshots_ch.close(None)
        await content_ch.close(None)
        await metadata.close(None)


def main() -> None:
    process.run("images", serve)


if __name__ == "__main__":
    main()
