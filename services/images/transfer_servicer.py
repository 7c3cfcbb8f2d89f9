"""seacan.services.transfer.v1.Transfer: protobuf <-> the Transferer.

Translation only; the interceptor in :mod:`seacan.grpcutil` sets the request
scope and turns error kinds into status codes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc

from seacan.api.services.transfer.v1 import transfer_pb2 as pb
from seacan.api.services.transfer.v1 import transfer_pb2_grpc
from seacan.transfer import Transfer
from seacan.transfer.proxy import progress_to_pb, pull_from_pb, push_from_pb, registry_from_pb

SERVICE = "seacan.services.transfer.v1.Transfer"

Ctx = Any  # grpc.aio.ServicerContext; Any keeps mypy happy with or without grpc-stubs


class TransferServicer:
    def __init__(self, transfer: Transfer) -> None:
        self._transfer = transfer

    async def Pull(self, request: Any, context: Ctx) -> AsyncIterator[Any]:  # noqa: N802
        async for p in self._transfer.pull(pull_from_pb(request)):
            yield progress_to_pb(p)

    async def Push(self, request: Any, context: Ctx) -> AsyncIterator[Any]:  # noqa: N802
        async for p in self._transfer.push(push_from_pb(request)):
            yield progress_to_pb(p)

    async def Login(self, request: Any, context: Ctx) -> Any:  # noqa: N802
        await self._transfer.login(request.host, registry_from_pb(request.registry))
        return pb.LoginResponse()


def register(server: grpc.aio.Server, transfer: Transfer) -> None:
    transfer_pb2_grpc.add_TransferServicer_to_server(TransferServicer(transfer), server)
