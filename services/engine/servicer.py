"""seacan.services.engine.v1.Engine: protobuf <-> :mod:`seacan.engine.run`.

Translation only; the interceptor in :mod:`seacan.grpcutil` sets the request
scope and turns error kinds into status codes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc

from seacan.api.services.engine.v1 import engine_pb2_grpc
from seacan.client import Client
from seacan.engine import run, wire

SERVICE = "seacan.services.engine.v1.Engine"

Ctx = Any  # grpc.aio.ServicerContext; grpcio ships no types


class EngineServicer:
    def __init__(self, client: Callable[[], Client]) -> None:
        self._client = client  # a client in the request's namespace

    async def Run(self, request: Any, context: Ctx) -> Any:  # noqa: N802
        started = await run.run_detached(self._client(), wire.spec_from_pb(request))
        return wire.started_to_pb(started)


def register(server: grpc.aio.Server, client: Callable[[], Client]) -> None:
    engine_pb2_grpc.add_EngineServicer_to_server(EngineServicer(client), server)
