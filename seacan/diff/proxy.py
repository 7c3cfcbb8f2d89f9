"""RemoteDiff: the Diff service over gRPC (containerd's diff proxy).

Calls carry the current request scope (the service reads and writes content
in that namespace) and turn RPC failures back into error kinds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import grpc.aio
from google.protobuf import any_pb2

from seacan import grpcutil
from seacan.api.services.diff.v1 import diff_pb2 as pb
from seacan.api.services.diff.v1 import diff_pb2_grpc
from seacan.images.proxy import descriptor_from_pb, descriptor_to_pb
from seacan.oci import Descriptor
from seacan.snapshots import Mount
from seacan.snapshots.proxy import mounts_to_pb


def _payload(value: Any) -> any_pb2.Any:
    if isinstance(value, any_pb2.Any):
        return value
    if isinstance(value, bytes):
        return any_pb2.Any(value=value)
    return grpcutil.make_any(value)


class RemoteDiff:
    """:class:`~seacan.diff.Differ` over a gRPC channel."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._stub = diff_pb2_grpc.DiffStub(channel)

    async def apply(
        self,
        desc: Descriptor,
        mounts: Sequence[Mount],
        payloads: Mapping[str, Any] | None = None,
    ) -> Descriptor:
        req = pb.ApplyRequest(diff=descriptor_to_pb(desc), mounts=mounts_to_pb(mounts))
        for key, value in (payloads or {}).items():
            req.payloads[key].CopyFrom(_payload(value))
        async with grpcutil.native_errors():
            resp = await self._stub.Apply(req, metadata=grpcutil.scope_metadata())
        return descriptor_from_pb(resp.applied)

    async def diff(
        self,
        lower: Sequence[Mount],
        upper: Sequence[Mount],
        media_type: str = "",
        ref: str = "",
        labels: Mapping[str, str] | None = None,
    ) -> Descriptor:
        req = pb.DiffRequest(
            left=mounts_to_pb(lower),
            right=mounts_to_pb(upper),
            media_type=media_type,
            ref=ref,
            labels=dict(labels or {}),
        )
        async with grpcutil.native_errors():
            resp = await self._stub.Diff(req, metadata=grpcutil.scope_metadata())
        return descriptor_from_pb(resp.diff)
