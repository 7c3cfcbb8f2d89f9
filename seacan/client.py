"""The client library: one connection to seacand's main socket, every store behind it.

seacand serves the containerd v1 API on one socket and forwards each call to
the service that owns it, so a client needs one channel and the proxies::

    async with await Client.connect("/run/seacan/seacan.sock", "default") as c:
        print(await c.version())
        async with c.lease():                  # everything below is held from GC
            await content.write_blob(c.content, "ref", data, expected=dgst)
        async for info in c.content.list():
            ...

``connect`` fails fast with Unavailable (``cannot connect to seacand at
<address>: ...``) when nothing listens on the socket. The client sets the
request scope (:func:`seacan.scope.set_scope`) once; every proxy call carries
the namespace, and the lease while inside :meth:`Client.lease`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cached_property
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from seacan import errors, log, scope
from seacan import leases as leases_

# The proxies, grpc and the protobuf modules are imported when first used:
# a command pays only for the stores it touches.
if TYPE_CHECKING:
    import grpc.aio

    from seacan.build.proxy import RemoteBuilder
    from seacan.containers.proxy import RemoteContainers
    from seacan.content.proxy import RemoteContent
    from seacan.diff.proxy import RemoteDiff
    from seacan.events.proxy import RemoteEvents
    from seacan.images.proxy import RemoteImages
    from seacan.leases.proxy import RemoteLeases
    from seacan.metaclient import MetaClient
    from seacan.namespaces.proxy import RemoteNamespaces
    from seacan.networking.proxy import RemoteNetworking
    from seacan.snapshots.proxy import RemoteSnapshotter
    from seacan.tasks.proxy import RemoteTasks
    from seacan.transfer.proxy import RemoteTransfer
    from seacan.volumes.proxy import RemoteVolumes

_log = log.get(__name__)

DEFAULT_SNAPSHOTTER = "overlayfs"
CONNECT_TIMEOUT = 10.0  # seconds, as ctr's --connect-timeout
# How long a client's own lease lives if the client dies before deleting it.
LEASE_TTL = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class Version:
    version: str
    revision: str


@dataclass(frozen=True, slots=True)
class Plugin:
    type: str
    id: str
    requires: tuple[str, ...] = ()
    platforms: tuple[str, ...] = ()
    exports: Mapping[str, str] = field(default_factory=dict)
    capabilities: tuple[str, ...] = ()
    init_error: str = ""


class Introspection:
    """containerd's Introspection service: the server's UUID and its plugins."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        from seacan.api.services.introspection.v1 import introspection_pb2_grpc as ipb_grpc

        self._stub = ipb_grpc.IntrospectionStub(channel)

    async def server_uuid(self) -> str:
        from google.protobuf import empty_pb2

        from seacan import grpcutil

        async with grpcutil.native_errors():
            resp = await self._stub.Server(empty_pb2.Empty(), metadata=grpcutil.scope_metadata())
        return str(resp.uuid)

    async def plugins(self, filters: Sequence[str] = ()) -> list[Plugin]:
        from seacan import grpcutil
        from seacan.api.services.introspection.v1 import introspection_pb2 as ipb

        async with grpcutil.native_errors():
            resp = await self._stub.Plugins(
                ipb.PluginsRequest(filters=list(filters)), metadata=grpcutil.scope_metadata()
            )
        out = []
        for p in resp.plugins:
            out.append(
                Plugin(
                    type=p.type,
                    id=p.id,
                    requires=tuple(p.requires),
                    platforms=tuple(
                        "/".join(x for x in (q.os, q.architecture, q.variant) if x)
                        for q in p.platforms
                    ),
                    exports=dict(p.exports),
                    capabilities=tuple(p.capabilities),
                    init_error=p.init_err.message if p.HasField("init_err") else "",
                )
            )
        return out


def probe(address: Path) -> None:
    """Unavailable, naming the address and the reason, unless something listens there."""
    from seacan import h2grpc  # the one place these messages are made

    h2grpc.connect(str(address)).close()


class Client:
    """One channel to seacand and the stores behind it, in one namespace.

    Make it with :meth:`connect` (inside the running event loop).
    """

    def __init__(
        self,
        address: Path | str,
        namespace: str = "default",
        *,
        owner_socket: Callable[[str], Path] | None = None,
    ) -> None:
        """``owner_socket``: for a service calling others, each store is reached on its
        owner's own socket (``config.service_socket``: one hop less than through the
        router; calls wait while that service restarts)."""
        self.address = Path(address)
        self.namespace = scope.validate_identifier(namespace, "namespace")
        from seacan import grpcutil

        self._channel = grpcutil.channel(self.address)
        self._owner_socket = owner_socket
        self._owned: dict[str, grpc.aio.Channel] = {}
        scope.set_scope(self.namespace, "")

    def _ch(self, owner: str) -> grpc.aio.Channel:
        """The channel for the stores of seacand's process ``owner``."""
        if self._owner_socket is None:
            return self._channel
        ch = self._owned.get(owner)
        if ch is None:
            from seacan import grpcutil

            ch = self._owned[owner] = grpcutil.channel(
                self._owner_socket(owner), wait_for_ready=True
            )
        return ch

    @cached_property
    def content(self) -> RemoteContent:
        from seacan.content.proxy import RemoteContent

        return RemoteContent(self._ch("content"))

    @cached_property
    def snapshots(self) -> RemoteSnapshotter:
        return self.snapshotter(DEFAULT_SNAPSHOTTER)

    @cached_property
    def images(self) -> RemoteImages:
        from seacan.images.proxy import RemoteImages

        return RemoteImages(self._ch("images"))

    @cached_property
    def diff(self) -> RemoteDiff:
        from seacan.diff.proxy import RemoteDiff

        return RemoteDiff(self._ch("images"))

    @cached_property
    def namespaces(self) -> RemoteNamespaces:
        from seacan.namespaces.proxy import RemoteNamespaces

        return RemoteNamespaces(self._ch("metadata"))

    @cached_property
    def leases(self) -> RemoteLeases:
        from seacan.leases.proxy import RemoteLeases

        return RemoteLeases(self._ch("metadata"))

    @cached_property
    def gc(self) -> MetaClient:
        from seacan.metaclient import MetaClient

        return MetaClient(self._ch("metadata"))

    @cached_property
    def containers(self) -> RemoteContainers:
        from seacan.containers.proxy import RemoteContainers

        return RemoteContainers(self._ch("containers"))

    @cached_property
    def tasks(self) -> RemoteTasks:
        from seacan.tasks.proxy import RemoteTasks

        return RemoteTasks(self._ch("tasks"))

    @cached_property
    def events(self) -> RemoteEvents:
        from seacan.events.proxy import RemoteEvents

        return RemoteEvents(self._ch("tasks"))

    @cached_property
    def build(self) -> RemoteBuilder:
        from seacan.build.proxy import RemoteBuilder

        return RemoteBuilder(self._ch("build"))

    @cached_property
    def networking(self) -> RemoteNetworking:
        from seacan.networking.proxy import RemoteNetworking

        return RemoteNetworking(self._ch("networking"))

    @cached_property
    def volumes(self) -> RemoteVolumes:
        from seacan.volumes.proxy import RemoteVolumes

        return RemoteVolumes(self._ch("volumes"))

    @cached_property
    def transfer(self) -> RemoteTransfer:
        from seacan.transfer.proxy import RemoteTransfer

        return RemoteTransfer(self._ch("images"))

    @cached_property
    def introspection(self) -> Introspection:
        return Introspection(self._channel)

    @classmethod
    async def connect(
        cls,
        address: Path | str,
        namespace: str = "default",
        *,
        timeout: float = CONNECT_TIMEOUT,
    ) -> Client:
        """A client whose channel is ready; Unavailable when seacand does not answer."""
        path = Path(address)
        scope.validate_identifier(namespace, "namespace")
        await asyncio.to_thread(probe, path)
        client = cls(path, namespace)
        try:
            await asyncio.wait_for(client._channel.channel_ready(), timeout)
        except TimeoutError:
            await client.close()
            raise errors.Unavailable(
                f"cannot connect to seacand at {path}: no answer within {timeout:g}s"
            ) from None
        return client

    def snapshotter(self, name: str) -> RemoteSnapshotter:
        """The proxy for another snapshotter than overlayfs."""
        from seacan.snapshots.proxy import RemoteSnapshotter

        return RemoteSnapshotter(self._ch("snapshots"), name)

    def set_namespace(self, namespace: str) -> None:
        """Work in ``namespace`` from now on (the current lease is kept)."""
        self.namespace = scope.validate_identifier(namespace, "namespace")
        scope.set_scope(self.namespace, scope.lease())

    async def version(self) -> Version:
        from google.protobuf import empty_pb2

        from seacan import grpcutil
        from seacan.api.services.version.v1 import version_pb2_grpc as vpb_grpc

        async with grpcutil.native_errors():
            resp = await vpb_grpc.VersionStub(self._channel).Version(
                empty_pb2.Empty(), metadata=grpcutil.scope_metadata()
            )
        return Version(version=resp.version, revision=resp.revision)

    @contextlib.asynccontextmanager
    async def lease(
        self,
        expire: timedelta | None = LEASE_TTL,
        *,
        id: str = "",
        labels: Mapping[str, str] | None = None,
    ) -> AsyncIterator[leases_.Lease]:
        """A lease for the block: created, set in the scope, deleted afterwards.

        ``expire`` (label ``containerd.io/gc.expire``) bounds how long the
        lease outlives a client that dies inside the block.
        """
        all_labels = dict(labels or {})
        if expire is not None:
            all_labels.update(leases_.expire_in(expire))
        lease = await self.leases.create(id or leases_.random_id(), all_labels)
        before = scope.lease()
        scope.set_scope(self.namespace, lease.id)
        try:
            yield lease
        finally:
            scope.set_scope(self.namespace, before)
            try:
                await self.leases.delete(lease.id)
            except errors.SeacanError as e:
                _log.warning("lease.delete_failed", lease=lease.id, error=str(e))

    async def close(self) -> None:
        for ch in (self._channel, *self._owned.values()):
            await ch.close()

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


__all__ = ["CONNECT_TIMEOUT", "LEASE_TTL", "Client", "Introspection", "Plugin", "Version", "probe"]
