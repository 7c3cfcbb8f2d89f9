"""The Containers gRPC service: the conformance suite through RemoteContainers,
the wire as ctr sees it (ListStream one container per message, status codes,
Go zero times, Any payloads byte for byte), and containers as GC roots."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
import pytest
from google.protobuf import any_pb2

from seacan import errors, gc, grpcutil, scope
from seacan.api.services.containers.v1 import containers_pb2 as pb
from seacan.api.services.containers.v1 import containers_pb2_grpc
from seacan.containers import SPEC_TYPE_URL, ContainerStore, testsuite
from seacan.containers.proxy import RemoteContainers
from seacan.services.containers.servicer import register
from seacan.services.containers.store import ContainerStore as LocalContainers
from seacan.services.containers.store import Hooks, NoHooks
from seacan.services.metadata.collector import Collector
from seacan.services.metadata.containers_roots import ContainerRoots
from seacan.services.metadata.db import MetaDB

pytestmark = pytest.mark.integration

NS = "integration"
MD = grpcutil.metadata(NS)


class RecordingHooks:
    def __init__(self) -> None:
        self.namespaces: list[str] = []

    async def ensure_namespace(self, namespace: str, /) -> None:
        self.namespaces.append(namespace)


def run(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run(coro)


@contextlib.asynccontextmanager
async def serving(root: Path, hooks: Hooks | None = None) -> AsyncIterator[grpc.aio.Channel]:
    """The real servicer on a private Unix socket, and a channel to it."""
    root.mkdir(parents=True, exist_ok=True)
    store = LocalContainers.open(root / "containers", hooks or NoHooks())
    server = grpcutil.server()
    register(server, store)
    sock = root / "containers.sock"
    server.add_insecure_port(f"unix:{sock}")
    await server.start()
    channel = grpcutil.channel(sock)
    try:
        yield channel
    finally:
        await channel.close(None)
        await server.stop(None)
        store.close()


@pytest.mark.parametrize("case", testsuite.CASES, ids=testsuite.case_id)
def test_conformance_through_proxy(case: testsuite.Case, tmp_path: Path) -> None:
    n = 0

    @contextlib.asynccontextmanager
    async def make() -> AsyncIterator[ContainerStore]:
        nonlocal n
        n += 1
        async with serving(tmp_path / f"s{n}") as channel:
            yield RemoteContainers(channel)

    run(case(make))


def ctr_container(id: str) -> Any:
    """What ``ctr containers create`` sends (fact sheet §2)."""
    return pb.Container(
        id=id,
        labels={"io.containerd.image.config.stop-signal": "SIGTERM"},
        image="docker.io/library/busybox:latest",
        runtime=pb.Container.Runtime(
            name="io.containerd.runc.v2",
            options=any_pb2.Any(type_url="containerd.runc.v1.Options", value=b""),
        ),
        spec=any_pb2.Any(
            type_url=SPEC_TYPE_URL, value=b'{"ociVersion":"1.0.2-dev","process":{"args":["sh"]}}'
        ),
        snapshotter="overlayfs",
        snapshot_key=id,
    )


def test_wire_as_ctr_sees_it(tmp_path: Path) -> None:
    hooks = RecordingHooks()

    async def main() -> None:
        async with serving(tmp_path, hooks) as channel:
            stub = containers_pb2_grpc.ContainersStub(channel)
            sent = ctr_container("web")
            sent.created_at.seconds = -62135596800  # Go's zero time
            resp = await stub.Create(pb.CreateContainerRequest(container=sent), metadata=MD)
            assert hooks.namespaces == [NS]
            got = resp.container
            assert got.created_at.seconds > 1_600_000_000
            assert got.updated_at == got.created_at
            assert got.spec == sent.spec and got.runtime == sent.runtime
            assert got.runtime.HasField("options") and got.runtime.options.value == b""
            await stub.Create(pb.CreateContainerRequest(container=ctr_container("db")), metadata=MD)

            # ListStream: one container per message, ordered by ID; List: all at once.
            msgs = [m async for m in stub.ListStream(pb.ListContainersRequest(), metadata=MD)]
            assert [m.container.id for m in msgs] == ["db", "web"]
            assert msgs[1].container == got
            listed = await stub.List(pb.ListContainersRequest(filters=["id==web"]), metadata=MD)
            assert list(listed.containers) == [got]
            fetched = await stub.Get(pb.GetContainerRequest(id="web"), metadata=MD)
            assert fetched.container == got

            async def code(aw: Any) -> tuple[grpc.StatusCode, str]:
                with pytest.raises(grpc.aio.AioRpcError) as ei:
                    await aw
                return ei.value.code(), ei.value.details() or ""

            assert await code(stub.Get(pb.GetContainerRequest(id="nope"), metadata=MD)) == (
                grpc.StatusCode.NOT_FOUND,
                f'container "nope" in namespace "{NS}": not found',
            )
            assert await code(
                stub.Create(pb.CreateContainerRequest(container=ctr_container("web")), metadata=MD)
            ) == (grpc.StatusCode.ALREADY_EXISTS, 'container "web": already exists')
            no_runtime = ctr_container("x")
            no_runtime.ClearField("runtime")
            c, msg = await code(
                stub.Create(pb.CreateContainerRequest(container=no_runtime), metadata=MD)
            )
            assert c == grpc.StatusCode.INVALID_ARGUMENT and "Runtime.Name must be set" in msg
            assert await code(stub.Get(pb.GetContainerRequest(id="web"))) == (
                grpc.StatusCode.FAILED_PRECONDITION,
                "namespace is required",
            )
            c, msg = await code(
                stub.Update(pb.UpdateContainerRequest(container=pb.Container()), metadata=MD)
            )
            assert (c, msg) == (grpc.StatusCode.INVALID_ARGUMENT, "Container.ID required")

            # ctr containers label web a=1: Update with mask labels.a
            req = pb.UpdateContainerRequest(container=pb.Container(id="web", labels={"a": "1"}))
            req.update_mask.paths.append("labels.a")
            upd = (await stub.Update(req, metadata=MD)).container
            assert dict(upd.labels) == {
                "a": "1",
                "io.containerd.image.config.stop-signal": "SIGTERM",
            }
            assert upd.spec == got.spec and upd.created_at == got.created_at
            req.update_mask.paths[:] = ["runtime"]
            c, msg = await code(stub.Update(req, metadata=MD))
            assert (c, msg) == (
                grpc.StatusCode.INVALID_ARGUMENT,
                'cannot update "runtime" field on "web"',
            )

            await stub.Delete(pb.DeleteContainerRequest(id="web"), metadata=MD)
            c, _ = await code(stub.Delete(pb.DeleteContainerRequest(id="web"), metadata=MD))
            assert c == grpc.StatusCode.NOT_FOUND

    run(main())


# -- containers as GC roots --------------------------------------------------------


@dataclass(frozen=True)
class Blob:
    digest: str
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Snap:
    name: str
    parent: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)


class FakeContent:
    def __init__(self, blobs: list[Blob]) -> None:
        self.blobs = blobs

    async def list(self, filters: Sequence[str] = ()) -> list[Blob]:
        return list(self.blobs)

    async def delete(self, digest: str) -> None:
        self.blobs = [b for b in self.blobs if b.digest != digest]


class FakeSnapshots:
    def __init__(self, snaps: list[Snap]) -> None:
        self.snaps = snaps

    async def list(self, filters: Sequence[str] = ()) -> list[Snap]:
        return list(self.snaps)

    async def remove(self, key: str) -> None:
        self.snaps = [s for s in self.snaps if s.name != key]

    async def cleanup(self) -> None:
        return None


def test_containers_are_gc_roots_and_an_unreachable_service_aborts(tmp_path: Path) -> None:
    async def main() -> None:
        db = MetaDB(tmp_path / "meta" / "meta.db")
        db.create_namespace(NS, {})
        content = FakeContent([Blob("sha256:ref"), Blob("sha256:img"), Blob("sha256:junk")])
        snaps = FakeSnapshots([Snap("base"), Snap("web", parent="base"), Snap("stray")])
        try:
            async with serving(tmp_path / "srv") as channel:
                scope.set_scope(NS, "")
                remote = RemoteContainers(channel)
                await remote.create(
                    testsuite.container(
                        "web",
                        image="busybox",  # a name only: keeps nothing
                        snapshotter="overlayfs",
                        snapshot_key="web",
                        labels={"containerd.io/gc.ref.content.x": "sha256:ref"},
                    )
                )
                collector = Collector(
                    db, content, {"overlayfs": snaps}, [ContainerRoots(remote)], gather_timeout=5
                )
                removed = {(r.type, r.id) for r in await collector.collect()}
                assert removed == {
                    (gc.CONTENT, "sha256:img"),
                    (gc.CONTENT, "sha256:junk"),
                    ("snapshots/overlayfs", "stray"),
                }
                assert [s.name for s in snaps.snaps] == ["base", "web"]
                assert [b.digest for b in content.blobs] == ["sha256:ref"]

            nowhere = grpcutil.channel(tmp_path / "no-containers.sock")
            try:
                blind = Collector(
                    db,
                    content,
                    {"overlayfs": snaps},
                    [ContainerRoots(RemoteContainers(nowhere))],
                    gather_timeout=5,
                )
                with pytest.raises(errors.Unavailable, match="aborted, nothing was removed"):
                    await blind.collect()
            finally:
                await nowhere.close(None)
            assert [s.name for s in snaps.snaps] == ["base", "web"]
        finally:
            db.close()

    run(main())
