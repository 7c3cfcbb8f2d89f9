"""containerd.services.diff.v1.Diff: protobuf <-> the applier and the differ.

Translation only; the interceptor in :mod:`seacan.grpcutil` sets the request
scope (the namespace the layer blobs are read from and written to) and
turns error kinds into status codes.
"""

from __future__ import annotations

from typing import Any

import grpc

from seacan.api.services.diff.v1 import diff_pb2 as pb
from seacan.api.services.diff.v1 import diff_pb2_grpc
from seacan.diff import Applier, Comparer
from seacan.images.proxy import descriptor_from_pb, descriptor_to_pb
from seacan.snapshots.proxy import mounts_from_pb

SERVICE = "containerd.services.diff.v1.Diff"

Ctx = Any  # grpc.aio.ServicerContext; Any keeps mypy happy with or without grpc-stubs


class DiffServicer:
    def __init__(self, applier: Applier, comparer: Comparer) -> None:
        self._applier = applier
        self._comparer = comparer

    async def Apply(self, request: Any, context: Ctx) -> Any:  # noqa: N802
        applied = await self._applier.apply(
            descriptor_from_pb(request.diff),
            mounts_from_pb(request.mounts),
            dict(request.payloads),
        )
        return pb.ApplyResponse(applied=descriptor_to_pb(applied))

    async def Diff(self, request: Any, context: Ctx) -> Any:  # noqa: N802
        desc = await self._comparer.diff(
            mounts_from_pb(request.left),
            mounts_from_pb(request.right),
            media_type=request.media_type,
            ref=request.ref,
            labels=dict(request.labels),
        )
        return pb.DiffResponse(diff=descriptor_to_pb(desc))


def register(server: grpc.aio.Server, applier: Applier, comparer: Comparer) -> None:
    diff_pb2_grpc.add_DiffServicer_to_server(DiffServicer(applier, comparer), server)
