"""seacan.services.build.v1.Builder: protobuf <-> the builder. Translation only."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc

from seacan import errors
from seacan.api.services.build.v1 import build_pb2 as pb
from seacan.api.services.build.v1 import build_pb2_grpc
from seacan.build import CommitOptions
from seacan.build.wire import event_to_pb, options_from_pb

from .builder import Builder

SERVICE = "seacan.services.build.v1.Builder"

Ctx = Any  # grpc.aio.ServicerContext; grpcio ships no types


class BuilderServicer:
    def __init__(self, builder: Builder) -> None:
        self._builder = builder

    async def Build(self, requests: Any, context: Ctx) -> AsyncIterator[Any]:  # noqa: N802
        it = requests.__aiter__()
        try:
            first = await it.__anext__()
        except StopAsyncIteration:
            raise errors.InvalidArgument("build: no options sent") from None
        if not first.HasField("options"):
            raise errors.InvalidArgument("build: the first message must carry the options")
        opts = options_from_pb(first.options)
        if opts.network not in ("host", "none"):
            raise errors.InvalidArgument(f"--network {opts.network!r}: want host or none")

        async def chunks() -> AsyncIterator[bytes]:
            if first.context:
                yield bytes(first.context)
            async for req in it:
                yield bytes(req.context)

        async for ev in self._builder.build(opts, chunks()):
            yield event_to_pb(ev)

    async def Commit(self, request: Any, context: Ctx) -> Any:  # noqa: N802
        image_id, manifest = await self._builder.commit(
            CommitOptions(
                container_id=request.container_id,
                reference=request.reference,
                changes=tuple(request.changes),
                message=request.message,
                author=request.author,
            )
        )
        return pb.CommitResponse(image_id=image_id, manifest_digest=manifest)

    async def Prune(self, request: Any, context: Ctx) -> Any:  # noqa: N802
        return pb.PruneResponse(entries=await self._builder.prune(request.all))


def register(server: grpc.aio.Server, builder: Builder) -> None:
    build_pb2_grpc.add_BuilderServicer_to_server(BuilderServicer(builder), server)
