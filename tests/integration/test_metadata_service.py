"""The metadata service over real gRPC: Namespaces and Leases through their
proxies, MetaClient, and garbage collection against the real content and
snapshots and images services (each on its own socket, each calling back into
metadata through MetaClient, as under seacand). A wrapper around the
snapshotter injects removal failures."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
from collections.abc import AsyncIterator, Coroutine, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import grpc.aio
import pytest

from seacan import errors, gc, grpcutil, leases, oci, scope
from seacan.content import read_blob, write_blob
from seacan.content.proxy import RemoteContent
from seacan.images import Image
from seacan.images.proxy import RemoteImages
from seacan.leases import Resource
from seacan.leases.proxy import RemoteLeases
from seacan.metaclient import MetaClient
from seacan.namespaces import Namespace
from seacan.namespaces.proxy import RemoteNamespaces
from seacan.oci import Descriptor
from seacan.services.content.servicer import register as register_content
from seacan.services.content.store import ContentStore
from seacan.services.images.servicer import register as register_images
from seacan.services.images.store import ImageStore, MetaHooks
from seacan.services.metadata import servicer
from seacan.services.metadata.collector import (
    Collector,
    ImageRoots,
    PeerOccupancy,
)
from seacan.services.metadata.db import MetaDB
from seacan.services.metadata.leases import LeaseStore
from seacan.services.metadata.namespaces import NamespaceStore
from seacan.services.snapshots.overlay import OverlaySnapshotter
from seacan.services.snapshots.servicer import register as register_snapshots
from seacan.snapshots import Info
from seacan.snapshots.proxy import RemoteSnapshotter

pytestmark = pytest.mark.integration

NS = "meta-test"
DAY = timedelta(hours=24)
OVL = gc.snapshots_type("overlayfs")


def run(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run(coro)


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


# -- fault injection -------------------------------------------------------------


class Flaky:
    """The real snapshotter, with removals of chosen keys failing; counts Cleanup calls."""

    def __init__(self, inner: RemoteSnapshotter) -> None:
        self.inner = inner
        self.fail: set[str] = set()
        self.cleanups = 0

    def list(self, filters: Sequence[str] = ()) -> AsyncIterator[Info]:
        return self.inner.list(filters)

    async def remove(self, key: str) -> None:
        if key in self.fail:
            raise errors.Internal(f"remove {key}: device or resource busy")
        await self.inner.remove(key)

    async def cleanup(self) -> None:
        self.cleanups += 1
        await self.inner.cleanup()


# -- the service under test ---------------------------------------------------


@dataclass
class Env:
    channel: grpc.aio.Channel
    content_channel: grpc.aio.Channel
    snapshots: Flaky
    images: RemoteImages
    db: MetaDB
    content_root: Path

    @property
    def namespaces(self) -> RemoteNamespaces:
        return RemoteNamespaces(self.channel)

    @property
    def leases(self) -> RemoteLeases:
        return RemoteLeases(self.channel)

    @property
    def content(self) -> RemoteContent:
        return RemoteContent(self.content_channel)

    @property
    def meta(self) -> MetaClient:
        return MetaClient(self.channel)

    @property
    def snap(self) -> RemoteSnapshotter:
        return self.snapshots.inner

    async def committed(self, name: str, parent: str = "", **labels: str) -> None:
        await self.snap.prepare(f"prep-{name}", parent)
        await self.snap.commit(name, f"prep-{name}", labels)

    async def snapshot_names(self) -> set[str]:
        return {i.name async for i in self.snap.list()}

    async def add_image(self, name: str, manifest: str) -> None:
        target = Descriptor(oci.OCI_MANIFEST, manifest, (await self.content.info(manifest)).size)
        await self.images.create(Image(name=name, target=target))


@contextlib.asynccontextmanager
async def serving(tmp: Path) -> AsyncIterator[Env]:
    """Metadata, content and snapshots servers on private sockets; the latter
    two call back into metadata through MetaClient, as in seacand."""
    socks = {
        name: tmp / f"{name[0]}.sock" for name in ("metadata", "content", "snapshots", "images")
    }
    channels = {name: grpcutil.channel(sock) for name, sock in socks.items()}
    hooks_channel = grpcutil.channel(socks["metadata"])  # the services' own client
    content_store = ContentStore.open(tmp / "content", MetaClient(hooks_channel))
    overlay = OverlaySnapshotter.open(tmp / "overlayfs", MetaClient(hooks_channel), index_off=True)
    content = RemoteContent(channels["content"])
    image_store = ImageStore.open(tmp / "images", MetaHooks(MetaClient(hooks_channel)))
    snaps = Flaky(RemoteSnapshotter(channels["snapshots"]))
    images = RemoteImages(channels["images"])
    db = MetaDB(tmp / "metadata" / "meta.db")
    collector = Collector(
        db, content, {"overlayfs": snaps}, [ImageRoots(images)], gather_timeout=10
    )
    ns_store = NamespaceStore(db, PeerOccupancy(content, {"overlayfs": snaps}, images))
    lease_store = LeaseStore(db, collector.collect)

    servers = {name: grpcutil.server() for name in socks}
    servicer.register(servers["metadata"], ns_store, lease_store, collector)
    register_content(servers["content"], content_store)
    register_snapshots(servers["snapshots"], overlay)
    register_images(servers["images"], image_store)
    for name, srv in servers.items():
        srv.add_insecure_port(f"unix:{socks[name]}")
        await srv.start()
    try:
        yield Env(channels["metadata"], channels["content"], snaps, images, db, tmp / "content")
    finally:
        for ch in (*channels.values(), hooks_channel):
            await ch.close(None)
        for srv in servers.values():
            await srv.stop(None)
        content_store.close()
        overlay.close()
        image_store.close()
        db.close()


async def put(env: Env, data: bytes, labels: dict[str, str] | None = None) -> str:
    d = digest_of(data)
    await write_blob(env.content, f"ref-{d}", data, expected=d, labels=labels)
    return d


async def exists(env: Env, digest: str) -> bool:
    try:
        await env.content.info(digest)
    except errors.NotFound:
        return False
    return True


# -- namespaces -----------------------------------------------------------------


def test_namespace_lifecycle(tmp_path: Path) -> None:
    async def main() -> None:
        async with serving(tmp_path) as env:
            nss = env.namespaces
            created = await nss.create("alpha", {"containerd.io/defaults/snapshotter": "overlayfs"})
            assert created == Namespace(
                "alpha", {"containerd.io/defaults/snapshotter": "overlayfs"}
            )
            await nss.create("beta")
            got = await nss.get("alpha")
            assert got.labels == {"containerd.io/defaults/snapshotter": "overlayfs"}
            assert [n.name for n in await nss.list()] == ["alpha", "beta"]
            assert [
                n.name for n in await nss.list('labels."containerd.io/defaults/snapshotter"')
            ] == ["alpha"]
            assert [n.name for n in await nss.list("name~=^b")] == ["beta"]

            with pytest.raises(errors.AlreadyExists, match='namespace "alpha": already exists'):
                await nss.create("alpha")
            with pytest.raises(errors.NotFound, match='namespace "nope": not found'):
                await nss.get("nope")
            with pytest.raises(errors.InvalidArgument):
                await nss.create("bad..name")
            with pytest.raises(errors.InvalidArgument, match="maximum size"):
                await nss.create("big", {"k": "v" * 5000})
            with pytest.raises(errors.InvalidArgument, match="parse error"):
                await nss.list("name==")

            await nss.delete("beta")
            with pytest.raises(errors.NotFound):
                await nss.delete("beta")
            assert [n.name for n in await nss.list()] == ["alpha"]

    run(main())


def test_namespace_update_masks(tmp_path: Path) -> None:
    async def main() -> None:
        async with serving(tmp_path) as env:
            nss = env.namespaces
            await nss.create("ns1", {"a": "1", "b": "2"})
            # one key through its path; others untouched
            upd = await nss.update(Namespace("ns1", {"a": "10", "zzz": "ignored"}), ["labels.a"])
            assert upd.labels == {"a": "10", "b": "2"}
            # an empty value under a path deletes the label
            upd = await nss.update(Namespace("ns1", {}), ["labels.b"])
            assert upd.labels == {"a": "10"}
            # keys with dots and slashes: only the "labels." prefix is stripped
            key = "containerd.io/defaults/runtime"
            upd = await nss.update(
                Namespace("ns1", {key: "io.containerd.runc.v2"}), [f"labels.{key}"]
            )
            assert upd.labels == {"a": "10", key: "io.containerd.runc.v2"}
            # "labels" or no mask replaces all
            assert (await nss.update(Namespace("ns1", {"x": "y"}), ["labels"])).labels == {"x": "y"}
            assert (await nss.update(Namespace("ns1", {"p": "q"}))).labels == {"p": "q"}
            assert (await nss.get("ns1")).labels == {"p": "q"}
            with pytest.raises(errors.InvalidArgument, match='cannot update "name" field'):
                await nss.update(Namespace("ns1", {}), ["name"])
            with pytest.raises(errors.NotFound):
                await nss.update(Namespace("ghost", {"a": "b"}), ["labels.a"])

    run(main())


def test_namespace_delete_refused_while_objects_remain(tmp_path: Path) -> None:
    async def main() -> None:
        async with serving(tmp_path) as env:
            scope.set_scope("busy", "")
            blob = await put(env, b"a blob")  # the content service creates the namespace
            assert (await env.namespaces.get("busy")).name == "busy"
            await env.add_image("docker.io/library/x:1", blob)
            await env.committed("s1")
            msg = (
                'namespace "busy" must be empty, but it still has images, blobs, '
                'snapshots on "overlayfs" snapshotter'
            )
            with pytest.raises(errors.FailedPrecondition) as exc:
                await env.namespaces.delete("busy")
            assert str(exc.value) == msg

            await env.images.delete("docker.io/library/x:1")
            await env.snap.remove("s1")
            await env.content.delete(blob)
            await env.namespaces.delete("busy")
            with pytest.raises(errors.NotFound):
                await env.namespaces.get("busy")

    run(main())


# -- leases ---------------------------------------------------------------------


def test_lease_lifecycle_and_resources(tmp_path: Path) -> None:
    async def main() -> None:
        async with serving(tmp_path) as env:
            scope.set_scope(NS, "")
            ls = env.leases
            random = await ls.create(labels=leases.expire_in(DAY))
            assert re.fullmatch(r"\d+-[A-Za-z0-9_-]{4}", random.id)
            assert random.created_at is not None
            assert leases.LABEL_EXPIRE in random.labels
            mine = await ls.create("pull-1", {"purpose": "pull"})
            with pytest.raises(errors.AlreadyExists, match='lease "pull-1": already exists'):
                await ls.create("pull-1")
            # creating a lease makes its namespace visible to Namespaces.Get
            assert (await env.namespaces.get(NS)).name == NS

            assert {lease.id for lease in await ls.list()} == {random.id, mine.id}
            assert [lease.id for lease in await ls.list(["labels.purpose==pull"])] == ["pull-1"]
            assert [lease.id for lease in await ls.list(["id==nope", "id==pull-1"])] == ["pull-1"]

            d = "sha256:" + "a" * 64
            for r in (Resource(d, "content"), Resource("ref-1", "ingests"), Resource("k", OVL)):
                await ls.add_resource("pull-1", r)
            await ls.add_resource("pull-1", Resource(d, "content"))  # idempotent
            assert await ls.list_resources("pull-1") == [
                Resource(d, "content"),
                Resource("ref-1", "ingests"),
                Resource("k", OVL),
            ]
            await ls.delete_resource("pull-1", Resource("ref-1", "ingests"))
            assert Resource("ref-1", "ingests") not in await ls.list_resources("pull-1")

            with pytest.raises(errors.InvalidArgument):
                await ls.add_resource("pull-1", Resource("not-a-digest", "content"))
            with pytest.raises(errors.InvalidArgument):
                await ls.add_resource("pull-1", Resource("k", "snapshots"))
            with pytest.raises(errors.NotImplemented_):
                await ls.add_resource("pull-1", Resource("x", "volumes"))
            for call in (
                ls.add_resource("ghost", Resource(d, "content")),
                ls.delete_resource("ghost", Resource(d, "content")),
                ls.list_resources("ghost"),
                ls.delete("ghost"),
            ):
                with pytest.raises(errors.NotFound, match='lease "ghost": not found'):
                    await call

            await ls.delete("pull-1")
            assert [lease.id for lease in await ls.list()] == [random.id]

    run(main())


def test_leases_are_per_namespace_and_need_one(tmp_path: Path) -> None:
    async def main() -> None:
        async with serving(tmp_path) as env:
            scope.set_scope("one", "")
            await env.leases.create("shared-id")
            scope.set_scope("two", "")
            assert await env.leases.list() == []
            await env.leases.create("shared-id")  # no clash across namespaces
            scope.set_scope("", "")
            with pytest.raises(errors.FailedPrecondition, match="namespace is required"):
                await env.leases.list()

    run(main())


# -- MetaClient ---------------------------------------------------------------------


def test_metaclient_ensure_namespace_and_lease_resources(tmp_path: Path) -> None:
    async def main() -> None:
        async with serving(tmp_path) as env:
            meta = env.meta
            await meta.ensure_namespace("fresh")
            await meta.ensure_namespace("fresh")  # cached, and AlreadyExists is fine anyway
            await env.namespaces.create("made")
            await MetaClient(env.channel).ensure_namespace("made")
            assert {n.name for n in await env.namespaces.list()} == {"fresh", "made"}

            scope.set_scope("fresh", "")
            await env.leases.create("l1")
            await meta.add_lease_resource("l1", "sha256:" + "b" * 64, "content")
            assert await env.leases.list_resources("l1") == [
                Resource("sha256:" + "b" * 64, "content")
            ]
            with pytest.raises(errors.NotFound):
                await meta.add_lease_resource("missing", "sha256:" + "b" * 64, "content")

    run(main())


# -- garbage collection -------------------------------------------------------------


def test_gc_keeps_what_images_and_leases_hold_and_removes_the_rest(tmp_path: Path) -> None:
    async def main() -> None:
        async with serving(tmp_path) as env:
            scope.set_scope(NS, "")
            await env.leases.create("pull")
            scope.set_scope(NS, "pull")  # blobs written now are held by the lease
            layer = await put(env, b"layer")
            config = await put(env, b"config", {"containerd.io/gc.ref.snapshot.overlayfs": "chain"})
            manifest = await put(
                env,
                b"manifest",
                {
                    "containerd.io/gc.ref.content.config": config,
                    "containerd.io/gc.ref.content.l.0": layer,
                },
            )
            scope.set_scope(NS, "")
            stray = await put(env, b"stray, written without a lease")
            pinned = await put(env, b"pinned", {"containerd.io/gc.root": "1"})
            await env.committed("base")
            await env.committed("chain", "base")
            await env.committed("orphan-parent")
            await env.snap.prepare("orphan-child", "orphan-parent")  # an active one
            assert {r.id for r in await env.leases.list_resources("pull")} == {
                layer,
                config,
                manifest,
            }

            # dry run: reports, removes nothing
            would = await env.meta.collect_garbage(dry_run=True)
            assert [(r.namespace, r.type, r.id) for r in would] == [
                (NS, OVL, "orphan-child"),
                (NS, OVL, "orphan-parent"),
                (NS, "content", stray),
            ]
            assert await exists(env, stray)

            # while the lease lives, only the stray blob and orphans go
            removed = await env.meta.collect_garbage()
            assert {(r.namespace, r.type, r.id) for r in removed} == {
                (NS, OVL, "orphan-child"),
                (NS, OVL, "orphan-parent"),
                (NS, "content", stray),
            }
            assert [r.id for r in removed][:2] == ["orphan-child", "orphan-parent"]
            assert not await exists(env, stray)
            assert await read_blob(env.content, manifest) == b"manifest"
            assert await exists(env, pinned)
            assert await env.snapshot_names() == {"base", "chain"}
            assert env.snapshots.cleanups == 1

            # the image takes over from the lease; a synchronous delete collects at once
            await env.add_image("docker.io/library/app:1", manifest)
            await env.leases.delete("pull", sync=True)
            assert all([await exists(env, d) for d in (manifest, config, layer, pinned)])
            assert await env.snapshot_names() == {"base", "chain"}

            # deleting the image with sync collects at once (images -> GC through
            # MetaClient): everything not pinned goes
            await env.images.delete("docker.io/library/app:1", sync=True)
            assert await env.snapshot_names() == set()
            for d in (manifest, config, layer):
                assert not await exists(env, d)
            assert await exists(env, pinned)
            assert not (env.content_root / "blobs" / "sha256" / layer.split(":")[1]).exists()

    run(main())


def test_gc_deletes_expired_leases_first(tmp_path: Path) -> None:
    async def main() -> None:
        async with serving(tmp_path) as env:
            scope.set_scope(NS, "")
            await env.leases.create("old", {leases.LABEL_EXPIRE: "2000-01-01T00:00:00Z"})
            await env.leases.create("new", leases.expire_in(DAY))
            scope.set_scope(NS, "old")
            held_by_old = await put(env, b"old lease")
            await env.snap.prepare("work-old")  # the snapshots service adds it to the lease
            scope.set_scope(NS, "new")
            held_by_new = await put(env, b"new lease")
            await env.snap.prepare("work-new")
            scope.set_scope(NS, "")
            assert Resource("work-new", OVL) in await env.leases.list_resources("new")

            removed = await env.meta.collect_garbage()
            assert [(r.type, r.id) for r in removed] == [
                ("leases", "old"),
                (OVL, "work-old"),
                ("content", held_by_old),
            ]
            assert [lease.id for lease in await env.leases.list()] == ["new"]
            assert await exists(env, held_by_new)
            assert await env.snapshot_names() == {"work-new"}

    run(main())


def test_gc_aborts_when_a_root_source_is_unreachable_or_hangs(tmp_path: Path) -> None:
    class Hanging:
        name = "containers"

        async def roots(self) -> list[gc.Root]:
            await asyncio.sleep(3600)
            return []

    async def main() -> None:
        async with serving(tmp_path) as env:
            scope.set_scope(NS, "")
            blob = await put(env, b"maybe referenced by an image we cannot see")
            nowhere = grpcutil.channel(tmp_path / "no-images.sock")
            blind = ImageRoots(RemoteImages(nowhere))
            for sources, timeout in (([blind], 10.0), ([Hanging()], 0.2)):
                c = Collector(
                    env.db,
                    env.content,
                    {"overlayfs": env.snapshots},
                    sources,
                    gather_timeout=timeout,
                )
                with pytest.raises(errors.Unavailable, match="aborted, nothing was removed"):
                    await c.collect()
                with pytest.raises(errors.Unavailable):
                    await c.collect(dry_run=True)
            await nowhere.close(None)
            assert await exists(env, blob)
            assert env.snapshots.cleanups == 0

            # with every source answering, the same blob goes
            assert [r.id for r in await env.meta.collect_garbage()] == [blob]

    run(main())


def test_gc_failed_removal_is_logged_and_the_sweep_goes_on(tmp_path: Path) -> None:
    async def main() -> None:
        async with serving(tmp_path) as env:
            scope.set_scope(NS, "")
            await env.committed("p")
            await env.committed("busy", "p")
            await env.committed("free", "p")
            await env.committed("alone")
            env.snapshots.fail.add("busy")
            blob = await put(env, b"content still goes")

            removed = await env.meta.collect_garbage()
            assert {r.id for r in removed} == {"free", "alone", blob}
            assert await env.snapshot_names() == {"p", "busy"}  # "p" skipped: its child is stuck
            assert env.snapshots.cleanups == 1

            env.snapshots.fail.clear()
            assert [r.id for r in await env.meta.collect_garbage()] == ["busy", "p"]

    run(main())


def test_gc_runs_one_collection_at_a_time(tmp_path: Path) -> None:
    async def main() -> None:
        async with serving(tmp_path) as env:
            scope.set_scope(NS, "")
            blob = await put(env, b"once")
            results = await asyncio.gather(*(env.meta.collect_garbage() for _ in range(3)))
            assert sorted(len(r) for r in results) == [0, 0, 1]
            assert not await exists(env, blob)

    run(main())
