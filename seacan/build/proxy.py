"""RemoteBuilder: the Builder service over grpc.aio (the conversions are in .wire)."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from typing import Any

import grpc.aio

from seacan import grpcutil
from seacan.api.services.build.v1 import build_pb2 as pb
from seacan.api.services.build.v1 import build_pb2_grpc

from . import BuildOptions, CommitOptions, Event
from .wire import CHUNK, event_from_pb, options_to_pb


class RemoteBuilder:
    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._stub = build_pb2_grpc.BuilderStub(channel)

    async def build(
        self, opts: BuildOptions, context: AsyncIterable[bytes]
    ) -> AsyncIterator[Event]:
        """Send the options and the context tar; the progress events."""

        async def requests() -> AsyncIterator[Any]:
            yield pb.BuildRequest(options=options_to_pb(opts))
            async for chunk in context:
                for i in range(0, len(chunk), CHUNK):
                    yield pb.BuildRequest(context=chunk[i : i + CHUNK])

        call = self._stub.Build(requests(), metadata=grpcutil.scope_metadata())
        try:
            async with grpcutil.native_errors():
                async for msg in call:
                    yield event_from_pb(msg)
        finally:
            call.cancel()

    async def commit(self, opts: CommitOptions) -> tuple[str, str]:
        """The new image's ID and manifest digest."""
        req = pb.CommitRequest(
            container_id=opts.container_id,
            reference=opts.reference,
            changes=list(opts.changes),
            message=opts.message,
            author=opts.author,
        )
        async with grpcutil.native_errors():
            resp = await self._stub.Commit(req, metadata=grpcutil.scope_metadata())
        return str(resp.image_id), str(resp.manifest_digest)

    async def prune(self, all: bool = False) -> int:
        async with grpcutil.native_errors():
            resp = await self._stub.Prune(
                pb.PruneRequest(all=all), metadata=grpcutil.scope_metadata()
            )
        return int(resp.entries)
