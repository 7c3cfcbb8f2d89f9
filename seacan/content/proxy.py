"""RemoteContent: the content store over gRPC (containerd's content proxy).

Every call carries the current request scope (namespace, lease) and turns
RPC failures back into error kinds, so a caller cannot tell it from the
local store; :mod:`seacan.content.testsuite` checks exactly that.
"""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import grpc
import grpc.aio
from google.protobuf import field_mask_pb2

from seacan import errors, grpcutil
from seacan.api.services.content.v1 import content_pb2 as pb
from seacan.api.services.content.v1 import content_pb2_grpc
from seacan.content import CHUNK, EMPTY_DIGEST, Info, Status

EOF: Any = grpc.aio.EOF


def info_to_pb(info: Info) -> Any:
    return pb.Info(
        digest=info.digest,
        size=info.size,
        created_at=grpcutil.timestamp(info.created_at),
        updated_at=grpcutil.timestamp(info.updated_at),
        labels=dict(info.labels),
    )


def info_from_pb(msg: Any) -> Info:
    return Info(
        digest=msg.digest,
        size=msg.size,
        created_at=grpcutil.from_timestamp(msg.created_at),
        updated_at=grpcutil.from_timestamp(msg.updated_at),
        labels=dict(msg.labels),
    )


def status_to_pb(st: Status) -> Any:
    return pb.Status(
        ref=st.ref,
        offset=st.offset,
        total=st.total,
        expected=st.expected,
        started_at=grpcutil.timestamp(st.started_at),
        updated_at=grpcutil.timestamp(st.updated_at),
    )


def status_from_pb(msg: Any) -> Status:
    return Status(
        ref=msg.ref,
        offset=msg.offset,
        total=msg.total,
        expected=msg.expected,
        started_at=grpcutil.from_timestamp(msg.started_at),
        updated_at=grpcutil.from_timestamp(msg.updated_at),
    )


class RemoteWriter:
    """One Write stream, driven in lock-step: each request waits for its response."""

    def __init__(self, call: Any, ref: str, expected: str) -> None:
        self._call = call
        self._ref = ref
        self._expected = expected
        self._offset = 0
        self._total = 0
        self._digest = EMPTY_DIGEST
        self._started_at: Any = None
        self._updated_at: Any = None
        self._done = False

    @property
    def ref(self) -> str:
        return self._ref

    @property
    def offset(self) -> int:
        return self._offset

    @property
    def digest(self) -> str:
        return self._digest

    async def _send(self, req: Any) -> Any:
        if self._done:
            raise errors.FailedPrecondition(f"writer for ref {self._ref} is closed")
        try:
            async with grpcutil.native_errors():
                await self._call.write(req)
                resp = await self._call.read()
        except BaseException:
            self._done = True
            self._call.cancel()
            raise
        if resp is EOF:
            self._done = True
            raise errors.Unavailable(f"write of {self._ref}: the server ended the stream")
        self._offset = resp.offset
        if resp.digest:
            self._digest = resp.digest
        if resp.total:
            self._total = resp.total
        if resp.action == pb.STAT:
            self._started_at = grpcutil.from_timestamp(resp.started_at)
            self._updated_at = grpcutil.from_timestamp(resp.updated_at)
        return resp

    async def stat(self, first: Any = None) -> None:
        await self._send(first if first is not None else pb.WriteContentRequest(action=pb.STAT))

    async def status(self) -> Status:
        await self.stat()
        return Status(
            ref=self._ref,
            offset=self._offset,
            total=self._total,
            expected=self._expected,
            started_at=self._started_at,
            updated_at=self._updated_at,
        )

    async def write(self, data: bytes) -> int:
        view = memoryview(data)
        for i in range(0, len(view), CHUNK):
            await self._send(
                pb.WriteContentRequest(
                    action=pb.WRITE, offset=self._offset, data=bytes(view[i : i + CHUNK])
                )
            )
        return self._offset

    async def truncate(self, size: int) -> None:
        if size != 0:
            raise errors.InvalidArgument(f"ingest {self._ref}: truncate only supports size 0")
        await self._send(pb.WriteContentRequest(action=pb.WRITE, offset=0))

    async def commit(
        self, size: int = 0, expected: str = "", labels: Mapping[str, str] | None = None
    ) -> str:
        resp = await self._send(
            pb.WriteContentRequest(
                action=pb.COMMIT,
                total=size,
                offset=self._offset,
                expected=expected,
                labels=dict(labels or {}),
            )
        )
        await self.close()
        if size and resp.offset != size:
            raise errors.FailedPrecondition(
                f"unexpected commit size {resp.offset}, expected {size}"
            )
        if expected and resp.digest != expected:
            raise errors.FailedPrecondition(
                f"unexpected commit digest {resp.digest}, expected {expected}"
            )
        return str(resp.digest)

    async def close(self) -> None:
        """End the stream; the server keeps the ingest for a later resume."""
        if self._done:
            return
        self._done = True
        try:
            await self._call.done_writing()
            while await self._call.read() is not EOF:
                pass
        except (grpc.aio.AioRpcError, grpc.aio.UsageError):
            self._call.cancel()


class RemoteContent:
    """Provider, Ingester, Manager and IngestManager over a gRPC channel."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._stub = content_pb2_grpc.ContentStub(channel)

    async def info(self, digest: str) -> Info:
        async with grpcutil.native_errors():
            resp = await self._stub.Info(
                pb.InfoRequest(digest=digest), metadata=grpcutil.scope_metadata()
            )
        return info_from_pb(resp.info)

    async def read(self, digest: str, offset: int = 0, size: int = 0) -> AsyncIterator[bytes]:
        req = pb.ReadContentRequest(digest=digest, offset=offset, size=size)
        call = self._stub.Read(req, metadata=grpcutil.scope_metadata())
        try:
            async with grpcutil.native_errors():
                async for resp in call:
                    yield resp.data
        finally:
            call.cancel()

    async def writer(
        self,
        ref: str,
        total: int = 0,
        expected: str = "",
        labels: Mapping[str, str] | None = None,
    ) -> RemoteWriter:
        if not ref:
            raise errors.InvalidArgument("ref must not be empty")
        call = self._stub.Write(metadata=grpcutil.scope_metadata())
        w = RemoteWriter(call, ref, expected)
        await w.stat(
            pb.WriteContentRequest(
                action=pb.STAT, ref=ref, total=total, expected=expected, labels=dict(labels or {})
            )
        )
        return w

    async def update(self, info: Info, fieldpaths: Sequence[str] = ()) -> Info:
        req = pb.UpdateRequest(
            info=pb.Info(digest=info.digest, size=info.size, labels=dict(info.labels))
        )
        if fieldpaths:
            req.update_mask.CopyFrom(field_mask_pb2.FieldMask(paths=list(fieldpaths)))
        async with grpcutil.native_errors():
            resp = await self._stub.Update(req, metadata=grpcutil.scope_metadata())
        return info_from_pb(resp.info)

    async def list(self, filters: Sequence[str] = ()) -> AsyncIterator[Info]:
        call = self._stub.List(
            pb.ListContentRequest(filters=list(filters)), metadata=grpcutil.scope_metadata()
        )
        try:
            async with grpcutil.native_errors():
                async for resp in call:
                    for msg in resp.info:
                        yield info_from_pb(msg)
        finally:
            call.cancel()

    async def delete(self, digest: str) -> None:
        async with grpcutil.native_errors():
            await self._stub.Delete(
                pb.DeleteContentRequest(digest=digest), metadata=grpcutil.scope_metadata()
            )

    async def status(self, ref: str) -> Status:
        async with grpcutil.native_errors():
            resp = await self._stub.Status(
                pb.StatusRequest(ref=ref), metadata=grpcutil.scope_metadata()
            )
        return status_from_pb(resp.status)

    async def list_statuses(self, filters: Sequence[str] = ()) -> builtins.list[Status]:
        async with grpcutil.native_errors():
            resp = await self._stub.ListStatuses(
                pb.ListStatusesRequest(filters=list(filters)), metadata=grpcutil.scope_metadata()
            )
        return [status_from_pb(s) for s in resp.statuses]

    async def abort(self, ref: str) -> None:
        async with grpcutil.native_errors():
            await self._stub.Abort(pb.AbortRequest(ref=ref), metadata=grpcutil.scope_metadata())
