"""The content service process.

python -m seacan.services.content [flags]          serve Content on its socket
python -m seacan.services.content verify [flags]   re-hash every blob; exit 1 on damage
"""

from __future__ import annotations

import asyncio
import sys

import grpc

from seacan import config, grpcutil
from seacan.metaclient import MetaClient, NoHooks
from seacan.services import process

from .db import ContentDB
from .servicer import SERVICE, register
from .store import ContentStore


async def serve(cfg: config.Config) -> None:
    metadata = grpcutil.channel(cfg.service_socket("metadata"))
    store = ContentStore.open(
        cfg.service_root("content"),
        MetaClient(metadata),
        max_blob_bytes=cfg.limits.max_blob_bytes,
    )

    def _register(server: grpc.aio.Server) -> None:
        register(server, store)

    try:
        await grpcutil.serve(cfg.service_socket("content"), _register, [SERVICE])
    finally:
        store.close()
        await metadata.close(None)


async def _verify(cfg: config.Config) -> int:
    # No recovery here: the service may be running and own the ingests.
    root = cfg.service_root("content")
    store = ContentStore(
        root, ContentDB(root / "meta.db"), NoHooks(), max_blob_bytes=cfg.limits.max_blob_bytes
    )
    try:
        damaged = await store.verify()
    finally:
        store.close()
    for d in damaged:
        print(f"{d.digest}: {d.reason}")
    return 1 if damaged else 0


def main() -> None:
    if sys.argv[1:2] == ["verify"]:
        cfg, _ = process.parse(sys.argv[2:])
        raise SystemExit(asyncio.run(_verify(cfg)))
    process.run("content", serve)


if __name__ == "__main__":
    main()
