"""containerd.services.content.v1.Content: protobuf <-> the local store.

Translation only; the interceptor in :mod:`seacan.grpcutil` sets the request
scope and turns error kinds into status codes. Write is the lock-step
protocol of containerd's contentserver: one response per request, always
with the current offset, and the stream ends after COMMIT.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
from google.protobuf import empty_pb2

from seacan import errors, grpcutil
from seacan.api.services.content.v1 import content_pb2 as pb
from seacan.api.services.content.v1 import content_pb2_grpc
from seacan.content.proxy import info_from_pb, info_to_pb, status_to_pb

from .store import ContentStore, LocalWriter

SERVICE = "containerd.services.content.v1.Content"
LIST_BATCH = 100

Ctx = Any  # grpc.aio.ServicerContext; grpcio ships no types


class ContentServicer:
    def __init__(self, store: ContentStore) -> None:
        self._store = store

    async def Info(self, request: Any, context: Ctx) -> Any:  # noqa: N802
        return pb.InfoResponse(info=info_to_pb(await self._store.info(request.digest)))

    async def Update(self, request: Any, context: Ctx) -> Any:  # noqa: N802
        paths = list(request.update_mask.paths) if request.HasField("update_mask") else []
        info = await self._store.update(info_from_pb(request.info), paths)
        return pb.UpdateResponse(info=info_to_pb(info))

    async def List(self, request: Any, context: Ctx) -> AsyncIterator[Any]:  # noqa: N802
        batch: list[Any] = []
        async for info in self._store.list(list(request.filters)):
            batch.append(info_to_pb(info))
            if len(batch) >= LIST_BATCH:
                yield pb.ListContentResponse(info=batch)
                batch = []
        if batch:
            yield pb.ListContentResponse(info=batch)

    async def Delete(self, request: Any, context: Ctx) -> Any:  # noqa: N802
        await self._store.delete(request.digest)
        return empty_pb2.Empty()

    async def Read(self, request: Any, context: Ctx) -> AsyncIterator[Any]:  # noqa: N802
        offset = request.offset
        async for data in self._store.read(request.digest, request.offset, request.size):
            yield pb.ReadContentResponse(offset=offset, data=data)
            offset += len(data)

    async def Status(self, request: Any, context: Ctx) -> Any:  # noqa: N802
        return pb.StatusResponse(status=status_to_pb(await self._store.status(request.ref)))

    async def ListStatuses(self, request: Any, context: Ctx) -> Any:  # noqa: N802
        statuses = await self._store.list_statuses(list(request.filters))
        return pb.ListStatusesResponse(statuses=[status_to_pb(s) for s in statuses])

    async def Abort(self, request: Any, context: Ctx) -> Any:  # noqa: N802
        await self._store.abort(request.ref)
        return empty_pb2.Empty()

    async def Write(  # noqa: N802
        self, request_iterator: AsyncIterator[Any], context: Ctx
    ) -> AsyncIterator[Any]:
        w: LocalWriter | None = None
        total, expected = 0, ""
        try:
            async for req in request_iterator:
                if w is None:
                    if not req.ref:
                        raise errors.InvalidArgument("first message must have a reference")
                    total, expected = req.total, req.expected
                    w = await self._store.writer(req.ref, total, expected, dict(req.labels))
                else:
                    if req.expected:
                        expected = req.expected
                        await w.set_expected(expected, dict(req.labels))
                    if req.total > 0:
                        total = req.total
                        await w.set_total(total)
                if req.action in (pb.WRITE, pb.COMMIT):
                    if req.offset > 0 and req.offset != w.offset:
                        raise errors.OutOfRange(
                            f"write @{req.offset} must occur at current offset {w.offset}"
                        )
                    if req.offset == 0 and w.offset > 0:
                        await w.truncate(0)
                    if req.data:
                        await w.write(req.data)
                    if req.action == pb.COMMIT:
                        await w.commit(total, expected, dict(req.labels))
                elif req.action != pb.STAT:
                    raise errors.InvalidArgument(f"unknown write action {req.action}")
                yield pb.WriteContentResponse(
                    action=req.action,
                    offset=w.offset,
                    total=w.total,
                    digest=w.digest,
                    started_at=grpcutil.timestamp(w.started_at),
                    updated_at=grpcutil.timestamp(w.updated_at),
                )
                if req.action == pb.COMMIT:
                    return
        finally:
            if w is not None:
                await w.close()


def register(server: grpc.aio.Server, store: ContentStore) -> None:
    content_pb2_grpc.add_ContentServicer_to_server(ContentServicer(store), server)
