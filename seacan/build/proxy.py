"""RemoteBuilder: the Builder service over gRPC, and the protobuf converters it shares
with the servicer."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from typing import Any

import grpc.aio

from seacan import grpcutil
from seacan.api.services.build.v1 import build_pb2 as pb
from seacan.api.services.build.v1 import build_pb2_grpc

from . import BuildOptions, CommitOptions, Event, Output, Result, StepDone, Stream

CHUNK = 1 << 20


def options_to_pb(o: BuildOptions) -> Any:
    return pb.BuildOptions(
        tags=list(o.tags),
        dockerfile=o.dockerfile,
        dockerfile_content=o.dockerfile_content,
        build_args=dict(o.build_args),
        target=o.target,
        no_cache=o.no_cache,
        pull=o.pull,
        labels=dict(o.labels),
        platform=o.platform,
        network=o.network,
        has_source_date_epoch=o.source_date_epoch is not None,
        source_date_epoch=o.source_date_epoch or 0,
    )


def options_from_pb(o: Any) -> BuildOptions:
    return BuildOptions(
        tags=tuple(o.tags),
        dockerfile=o.dockerfile or "Dockerfile",
        dockerfile_content=bytes(o.dockerfile_content),
        build_args=dict(o.build_args),
        target=o.target,
        no_cache=o.no_cache,
        pull=o.pull,
        labels=dict(o.labels),
        platform=o.platform,
        network=o.network or "host",
        source_date_epoch=o.source_date_epoch if o.has_source_date_epoch else None,
    )


def event_to_pb(ev: Event) -> Any:
    if isinstance(ev, Stream):
        return pb.BuildProgress(stream=ev.text)
    if isinstance(ev, Output):
        return pb.BuildProgress(output=ev.data)
    if isinstance(ev, StepDone):
        return pb.BuildProgress(
            step_done=pb.StepDone(
                step=ev.step, steps=ev.steps, cached=ev.cached, seconds=ev.seconds,
                image_id=ev.image_id,
            )
        )  # fmt: skip
    return pb.BuildProgress(
        result=pb.BuildResult(
            image_id=ev.image_id, manifest_digest=ev.manifest_digest, tags=list(ev.tags)
        )
    )


def event_from_pb(m: Any) -> Event:
    if m.HasField("step_done"):
        s = m.step_done
        return StepDone(s.step, s.steps, s.cached, s.seconds, s.image_id)
    if m.HasField("result"):
        r = m.result
        return Result(r.image_id, r.manifest_digest, tuple(r.tags))
    if m.output:
        return Output(bytes(m.output))
    return Stream(m.stream)


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
