"""The build service process on ``<state>/sockets/build.sock``.

python -m seacan.services.build [flags]

It works through the sockets of the services that own content, snapshots,
diff, images, leases, containers, tasks and transfer (not through seacand's
router), and keeps its cache index in ``<root>/build/cache.db``.
"""

from __future__ import annotations

import grpc

from seacan import config, grpcutil
from seacan.services import process

from .builder import Builder
from .db import CacheDB
from .servicer import SERVICE, register
from .stores import Stores


async def serve(cfg: config.Config) -> None:
    root = cfg.service_root("build")
    root.mkdir(parents=True, exist_ok=True)
    db = CacheDB(root / "cache.db")
    stores = Stores.connect(cfg.service_socket)
    builder = Builder(root, stores, db, cfg.limits.max_context_bytes, cfg.limits.max_blob_bytes)

    def _register(server: grpc.aio.Server) -> None:
        register(server, builder)

    try:
        await grpcutil.serve(cfg.service_socket("build"), _register, [SERVICE])
    finally:
        db.close()
        await stores.close()


def main() -> None:
    process.run("build", serve)


if __name__ == "__main__":
    main()
