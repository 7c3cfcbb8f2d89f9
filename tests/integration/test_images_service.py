"""The Images and Diff gRPC services: the image conformance suite (local and through
RemoteImages), the hooks (namespace creation, Delete{sync}), and Diff.Apply / Diff.Diff
through RemoteDiff with the real content service behind them."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import io
import os
import shutil
import tarfile
from collections.abc import AsyncIterator, Coroutine
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
import pytest

from seacan import content, errors, grpcutil, oci, scope
from seacan.api.services.images.v1 import images_pb2 as ipb
from seacan.api.services.images.v1 import images_pb2_grpc
from seacan.content.proxy import RemoteContent
from seacan.diff.proxy import RemoteDiff
from seacan.images import Image, ImageStore, testsuite
from seacan.images.proxy import RemoteImages
from seacan.services.content.servicer import register as register_content
from seacan.services.content.store import ContentStore
from seacan.services.images import diff_servicer, servicer
from seacan.services.images.apply import Applier
from seacan.services.images.differ import Differ
from seacan.services.images.store import ImageStore as LocalImages
from seacan.services.images.store import NoHooks
from seacan.snapshots import Mount
from tests.fixtures import images as im

NS = "integration"


def run(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run(coro)


class RecordingHooks:
    def __init__(self) -> None:
        self.namespaces: list[str] = []
        self.collections = 0

    async def ensure_namespace(self, namespace: str, /) -> None:
        self.namespaces.append(namespace)

    async def collect_garbage(self) -> None:
        self.collections += 1


@contextlib.asynccontextmanager
async def serving(
    root: Path, hooks: Any = None, *, max_layer_bytes: int = 1 << 30
) -> AsyncIterator[grpc.aio.Channel]:
    """Images + Diff (and the content service they read from) on private sockets."""
    root.mkdir(parents=True, exist_ok=True)
    cstore = ContentStore.open(root / "content")
    csrv = grpcutil.server()
    register_content(csrv, cstore)
    csock = root / "content.sock"
    csrv.add_insecure_port(f"unix:{csock}")
    await csrv.start()
    cchan = grpcutil.channel(csock)

    istore = LocalImages.open(root / "images", hooks or NoHooks())
    remote_content = RemoteContent(cchan)
    isrv = grpcutil.server()
    servicer.register(isrv, istore)
    diff_servicer.register(
        isrv,
        Applier(remote_content, max_layer_bytes=max_layer_bytes, sync=False),
        Differ(remote_content),
    )
    isock = root / "images.sock"
    isrv.add_insecure_port(f"unix:{isock}")
    await isrv.start()
    ichan = grpcutil.channel(isock)
    try:
        yield ichan
    finally:
        await ichan.close(None)
        await isrv.stop(None)
        istore.close()
        await cchan.close(None)
        await csrv.stop(None)
        cstore.close()


# -- the image store ------------------------------------------------------------


@pytest.mark.unit
@pytest.mark.parametrize("case", testsuite.CASES, ids=testsuite.case_id)
def test_conformance_local(case: testsuite.Case, tmp_path: Path) -> None:
    n = 0

    @contextlib.asynccontextmanager
    async def make() -> AsyncIterator[ImageStore]:
        nonlocal n
        n += 1
        store = LocalImages.open(tmp_path / f"s{n}", NoHooks())
        try:
            yield store
        finally:
            store.close()

    run(case(make))


@pytest.mark.integration
@pytest.mark.parametrize("case", testsuite.CASES, ids=testsuite.case_id)
def test_conformance_through_proxy(case: testsuite.Case, tmp_path: Path) -> None:
    n = 0

    @contextlib.asynccontextmanager
    async def make() -> AsyncIterator[ImageStore]:
        nonlocal n
        n += 1
        async with serving(tmp_path / f"s{n}") as channel:
            yield RemoteImages(channel)

    run(case(make))


@pytest.mark.integration
def test_create_ensures_namespace_and_delete_sync_collects(tmp_path: Path) -> None:
    hooks = RecordingHooks()

    async def main() -> None:
        async with serving(tmp_path, hooks) as channel:
            images = RemoteImages(channel)
            scope.set_scope("made-here", "")
            await images.create(Image(name="x", target=testsuite.target()))
            assert hooks.namespaces == ["made-here"]
            await images.delete("x")
            assert hooks.collections == 0
            await images.create(Image(name="x", target=testsuite.target()))
            await images.delete("x", sync=True)
            assert hooks.collections == 1

    run(main())


@pytest.mark.integration
def test_wire_errors_and_go_zero_times(tmp_path: Path) -> None:
    """What ctr sees: status codes, and Go's zero timestamps on input are ignored."""

    async def main() -> None:
        async with serving(tmp_path) as channel:
            stub = images_pb2_grpc.ImagesStub(channel)
            md = grpcutil.metadata(NS)
            with pytest.raises(grpc.aio.AioRpcError) as ei:
                await stub.Get(ipb.GetImageRequest(name="nope"), metadata=md)
            assert ei.value.code() == grpc.StatusCode.NOT_FOUND
            assert ei.value.details() == 'image "nope": not found'
            with pytest.raises(grpc.aio.AioRpcError) as ei:
                await stub.List(ipb.ListImagesRequest(filters=[]))
            assert ei.value.code() == grpc.StatusCode.FAILED_PRECONDITION

            target = ipb.Image(name="x").target
            target.media_type, target.digest, target.size = (
                oci.OCI_MANIFEST,
                testsuite.digest("m"),
                5,
            )
            img = ipb.Image(name="x", target=target)
            img.created_at.seconds = -62135596800  # Go's zero time
            created = await stub.Create(ipb.CreateImageRequest(image=img), metadata=md)
            assert created.image.created_at.seconds > 1_600_000_000
            # ctr import: Update with mask ["target"] of an absent image -> NOT_FOUND.
            req = ipb.UpdateImageRequest(image=ipb.Image(name="y", target=target))
            req.update_mask.paths.append("target")
            with pytest.raises(grpc.aio.AioRpcError) as ei:
                await stub.Update(req, metadata=md)
            assert ei.value.code() == grpc.StatusCode.NOT_FOUND
            with pytest.raises(grpc.aio.AioRpcError) as ei:
                await stub.Create(ipb.CreateImageRequest(image=img), metadata=md)
            assert ei.value.code() == grpc.StatusCode.ALREADY_EXISTS
            assert ei.value.details() == 'image "x": already exists'

    run(main())


# -- Diff.Apply and Diff.Diff -------------------------------------------------


@contextlib.asynccontextmanager
async def diff_env(tmp_path: Path, **kw: Any) -> AsyncIterator[tuple[RemoteDiff, RemoteContent]]:
    """RemoteDiff and RemoteContent (for putting layers in) against one server pair."""
    async with serving(tmp_path / "srv", **kw) as ichan:
        cchan = grpcutil.channel(tmp_path / "srv" / "content.sock")
        try:
            yield RemoteDiff(ichan), RemoteContent(cchan)
        finally:
            await cchan.close(None)


def _bind(path: Path) -> list[Mount]:
    return [Mount("bind", str(path), "", ("rw", "rbind"))]


@pytest.mark.integration
def test_apply_over_grpc(tmp_path: Path) -> None:
    layer = im.make_layer(
        [
            im.directory("etc"),
            im.file("etc/hello", b"hello\n", 0o640),
            im.symlink("etc/link", "hello"),
            im.file("big.bin", os.urandom(3 << 20)),
        ]
    )
    target = tmp_path / "fs"
    target.mkdir()

    async def main() -> None:
        scope.set_scope(NS, "")
        async with diff_env(tmp_path) as (diff, store):
            desc = await content.write_blob(
                store,
                "layer",
                layer.blob.data,
                expected=layer.blob.digest,
                media_type=layer.blob.media_type,
            )
            applied = await diff.apply(desc, _bind(target))
            assert applied == oci.Descriptor(
                media_type=oci.OCI_LAYER, digest=layer.diff_id, size=applied.size
            )
            assert applied.size % 512 == 0 and applied.size > 3 << 20

            # A missing blob: NotFound from the content service, through Diff.
            missing = oci.Descriptor(oci.OCI_LAYER_GZIP, testsuite.digest("gone"), 10)
            with pytest.raises(errors.NotFound):
                await diff.apply(missing, _bind(tmp_path / "fs2"))
            unknown = oci.Descriptor("application/x-foo", layer.blob.digest, layer.blob.size)
            with pytest.raises(errors.InvalidArgument, match="application/x-foo"):
                await diff.apply(unknown, _bind(target))

    run(main())
    assert (target / "etc/hello").read_bytes() == b"hello\n"
    assert os.stat(target / "etc/hello").st_mode & 0o7777 == 0o640
    assert os.readlink(target / "etc/link") == "hello"
    assert os.stat(target / "etc").st_mtime == im.MTIME


@pytest.mark.integration
def test_apply_bad_layer_over_grpc(tmp_path: Path) -> None:
    sentinel = tmp_path / "sentinel"
    sentinel.mkdir()
    layer = im.make_layer([im.file(im.CLIMB + str(sentinel).lstrip("/") + "/x", b"escaped\n")])
    target = tmp_path / "fs"
    target.mkdir()

    async def main() -> None:
        scope.set_scope(NS, "")
        async with diff_env(tmp_path) as (diff, store):
            desc = await content.write_blob(
                store, "layer", layer.blob.data, media_type=layer.blob.media_type
            )
            with pytest.raises(errors.InvalidArgument) as ei:
                await diff.apply(desc, _bind(target))
            assert f"layer {desc.digest}" in str(ei.value)
            assert "path escapes the root" in str(ei.value)

    run(main())
    assert list(sentinel.iterdir()) == []


@pytest.mark.integration
def test_apply_limit_over_grpc(tmp_path: Path) -> None:
    layer = im.make_layer([im.file("zeros", bytes(4 << 20))], level=9)
    target = tmp_path / "fs"
    target.mkdir()

    async def main() -> None:
        scope.set_scope(NS, "")
        async with diff_env(tmp_path, max_layer_bytes=1 << 20) as (diff, store):
            desc = await content.write_blob(
                store, "layer", layer.blob.data, media_type=layer.blob.media_type
            )
            with pytest.raises(errors.InvalidArgument, match="exceeds the limit"):
                await diff.apply(desc, _bind(target))

    run(main())


def _entries(data: bytes) -> list[tuple[str, str]]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tf:
        return [(m.name, m.type.decode() or "0") for m in tf.getmembers()]


@pytest.mark.integration
def test_diff_between_bind_trees_round_trips(tmp_path: Path) -> None:
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    for d in (lower, upper):
        (d / "etc").mkdir(parents=True)
        (d / "etc/keep").write_text("same\n")
        os.utime(d / "etc/keep", (im.MTIME, im.MTIME))
        os.utime(d / "etc", (im.MTIME, im.MTIME))
    (lower / "etc/old").write_text("removed\n")
    (lower / "gone").mkdir()
    (upper / "etc/new").write_text("added\n")
    (upper / "etc/keep").chmod(0o600)

    async def main() -> None:
        scope.set_scope(NS, "")
        async with diff_env(tmp_path) as (diff, store):
            desc = await diff.diff(_bind(lower), _bind(upper), labels={"x": "y"})
            assert desc.media_type == oci.OCI_LAYER_GZIP
            info = await store.info(desc.digest)
            assert info.size == desc.size
            assert info.labels["x"] == "y"
            data = await content.read_blob(store, desc.digest)
            raw = gzip.decompress(data)
            assert info.labels[oci.LABEL_UNCOMPRESSED] == oci.digest_of(raw)
            assert _entries(raw) == [
                ("etc", "5"),  # unchanged, but the parent of changes
                ("etc/keep", "0"),  # mode changed
                ("etc/new", "0"),
                ("etc/.wh.old", "0"),
                (".wh.gone", "0"),
            ]
            # Same input, same bytes.
            again = await diff.diff(_bind(lower), _bind(upper), ref="again")
            assert again.digest == desc.digest
            # Applying the diff on a copy of lower gives upper.
            copy = tmp_path / "copy"
            shutil.copytree(lower, copy, symlinks=True)
            await diff.apply(desc, _bind(copy))
            plain = await diff.diff(_bind(lower), _bind(upper), media_type=oci.OCI_LAYER)
            assert plain.media_type == oci.OCI_LAYER
            assert oci.digest_of(await content.read_blob(store, plain.digest)) == plain.digest
            with pytest.raises(errors.InvalidArgument, match="media type"):
                await diff.diff(_bind(lower), _bind(upper), media_type="text/plain")

    run(main())
    copy = tmp_path / "copy"
    assert sorted(p.name for p in copy.iterdir()) == ["etc"]
    assert sorted(p.name for p in (copy / "etc").iterdir()) == ["keep", "new"]
    assert os.stat(copy / "etc/keep").st_mode & 0o777 == 0o600
    assert (copy / "etc/new").read_text() == "added\n"
