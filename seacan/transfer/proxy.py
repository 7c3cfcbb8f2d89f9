"""RemoteTransfer: the Transfer service over gRPC, and the protobuf conversions.

The conversions are shared with the servicer (one home for them).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc.aio

from seacan import grpcutil
from seacan.api.services.transfer.v1 import transfer_pb2 as pb
from seacan.api.services.transfer.v1 import transfer_pb2_grpc
from seacan.api.types import platform_pb2
from seacan.oci import Platform
from seacan.transfer import (
    Credentials,
    Kind,
    Progress,
    PullRequest,
    PushRequest,
    RegistryOptions,
)


def platform_to_pb(p: Platform | None) -> Any:
    if p is None:
        return None
    return platform_pb2.Platform(os=p.os, architecture=p.architecture, variant=p.variant)


def platform_from_pb(msg: Any, present: bool) -> Platform | None:
    if not present or not (msg.os or msg.architecture):
        return None
    return Platform(msg.os, msg.architecture, msg.variant)


def registry_to_pb(r: RegistryOptions) -> Any:
    return pb.RegistryOptions(
        credentials=[
            pb.Credentials(
                host=host,
                username=c.username,
                password=c.password,
                identity_token=c.identity_token,
            )
            for host, c in sorted(r.credentials.items())
        ],
        plain_http=r.plain_http,
        insecure=r.insecure,
    )


def registry_from_pb(msg: Any) -> RegistryOptions:
    return RegistryOptions(
        credentials={
            c.host: Credentials(
                username=c.username, password=c.password, identity_token=c.identity_token
            )
            for c in msg.credentials
        },
        plain_http=msg.plain_http,
        insecure=msg.insecure,
    )


def pull_to_pb(r: PullRequest) -> Any:
    return pb.PullRequest(
        ref=r.ref,
        platform=platform_to_pb(r.platform),
        registry=registry_to_pb(r.registry),
        unpack=r.unpack,
        snapshotter=r.snapshotter,
        labels=dict(r.labels),
    )


def pull_from_pb(msg: Any) -> PullRequest:
    return PullRequest(
        ref=msg.ref,
        platform=platform_from_pb(msg.platform, msg.HasField("platform")),
        registry=registry_from_pb(msg.registry),
        unpack=msg.unpack,
        snapshotter=msg.snapshotter or "overlayfs",
        labels=dict(msg.labels),
    )


def push_to_pb(r: PushRequest) -> Any:
    return pb.PushRequest(
        ref=r.ref,
        source=r.source,
        platform=platform_to_pb(r.platform),
        registry=registry_to_pb(r.registry),
    )


def push_from_pb(msg: Any) -> PushRequest:
    return PushRequest(
        ref=msg.ref,
        source=msg.source,
        platform=platform_from_pb(msg.platform, msg.HasField("platform")),
        registry=registry_from_pb(msg.registry),
    )


def progress_to_pb(p: Progress) -> Any:
    return pb.Progress(
        kind=pb.Progress.Kind.Name(int(p.kind)),
        digest=p.digest,
        media_type=p.media_type,
        current=p.current,
        total=p.total,
        name=p.name,
        image_digest=p.image_digest,
        message=p.message,
    )


def progress_from_pb(msg: Any) -> Progress:
    try:
        kind = Kind(msg.kind)
    except ValueError:
        kind = Kind.UNKNOWN
    return Progress(
        kind=kind,
        digest=msg.digest,
        media_type=msg.media_type,
        current=msg.current,
        total=msg.total,
        name=msg.name,
        image_digest=msg.image_digest,
        message=msg.message,
    )


class RemoteTransfer:
    """:class:`~seacan.transfer.Transfer` over a gRPC channel."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._stub = transfer_pb2_grpc.TransferStub(channel)

    async def _stream(self, call: Any) -> AsyncIterator[Progress]:
        try:
            async with grpcutil.native_errors():
                async for msg in call:
                    yield progress_from_pb(msg)
        finally:
            call.cancel()

    def pull(self, request: PullRequest) -> AsyncIterator[Progress]:
        call = self._stub.Pull(pull_to_pb(request), metadata=grpcutil.scope_metadata())
        return self._stream(call)

    def push(self, request: PushRequest) -> AsyncIterator[Progress]:
        call = self._stub.Push(push_to_pb(request), metadata=grpcutil.scope_metadata())
        return self._stream(call)

    async def login(self, host: str, registry: RegistryOptions) -> None:
        req = pb.LoginRequest(host=host, registry=registry_to_pb(registry))
        async with grpcutil.native_errors():
            await self._stub.Login(req, metadata=grpcutil.scope_metadata())
