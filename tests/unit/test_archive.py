"""Image archives: names, labels, import and export against in-memory stores.

The stores here are small fakes with the real stores' semantics (AlreadyExists
on a known blob, parents must be committed, ...). The same archives go through
seacand in ``tests/integration/test_import_export.py``.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import datetime as dt
import gzip
import hashlib
import io
import json
import random
import tarfile
from collections.abc import AsyncIterator, Coroutine, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pytest

from seacan import content, errors, oci
from seacan.images import Image
from seacan.images import archive as ar
from seacan.images import unpack as unpacker
from seacan.snapshots import Info as SnapInfo
from seacan.snapshots import Kind, Mount, Usage
from tests.fixtures import images as im

pytestmark = pytest.mark.unit

HOST = oci.host_platform()


# --- in-memory stores -------------------------------------------------------------


class FakeWriter:
    def __init__(self, store: FakeContent, ref: str, expected: str) -> None:
        self._store, self.ref, self._expected = store, ref, expected
        self._buf = store.ingests.setdefault(ref, bytearray())

    @property
    def offset(self) -> int:
        return len(self._buf)

    @property
    def digest(self) -> str:
        return "sha256:" + hashlib.sha256(self._buf).hexdigest()

    async def status(self) -> content.Status:
        return content.Status(self.ref, self.offset)

    async def write(self, data: bytes) -> int:
        self._buf += data
        return self.offset

    async def truncate(self, size: int) -> None:
        del self._buf[size:]

    async def commit(
        self, size: int = 0, expected: str = "", labels: Mapping[str, str] | None = None
    ) -> str:
        digest = self.digest
        if size and size != self.offset:
            raise errors.FailedPrecondition(f"unexpected commit size {self.offset}")
        if expected and expected != digest:
            raise errors.FailedPrecondition(f"unexpected commit digest {digest}")
        del self._store.ingests[self.ref]
        if digest in self._store.blobs:
            raise errors.AlreadyExists(f"content {digest}: already exists")
        self._store.blobs[digest] = bytes(self._buf)
        self._store.labels[digest] = dict(labels or {})
        self._store.refs.append(self.ref)
        return digest

    async def close(self) -> None:
        pass


class FakeContent:
    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}
        self.labels: dict[str, dict[str, str]] = {}
        self.ingests: dict[str, bytearray] = {}
        self.refs: list[str] = []

    async def info(self, digest: str) -> content.Info:
        if digest not in self.blobs:
            raise errors.NotFound(f"content {digest}: not found")
        return content.Info(digest, len(self.blobs[digest]), labels=dict(self.labels[digest]))

    async def read(self, digest: str, offset: int = 0, size: int = 0) -> AsyncIterator[bytes]:
        if digest not in self.blobs:
            raise errors.NotFound(f"content {digest}: not found")
        data = self.blobs[digest]
        for i in range(offset, len(data), content.CHUNK):
            yield data[i : i + content.CHUNK]

    async def writer(
        self,
        ref: str,
        total: int = 0,
        expected: str = "",
        labels: Mapping[str, str] | None = None,
    ) -> FakeWriter:
        if expected and expected in self.blobs:
            raise errors.AlreadyExists(f"content {expected}: already exists")
        return FakeWriter(self, ref, expected)

    async def update(self, info: content.Info, fieldpaths: Sequence[str] = ()) -> content.Info:
        if info.digest not in self.blobs:
            raise errors.NotFound(f"content {info.digest}: not found")
        for path in fieldpaths:
            key = path.removeprefix("labels.")
            self.labels[info.digest][key] = info.labels[key]
        return await self.info(info.digest)

    async def list(self, filters: Sequence[str] = ()) -> AsyncIterator[content.Info]:
        for d in sorted(self.blobs):
            yield await self.info(d)

    async def delete(self, digest: str) -> None:
        self.blobs.pop(digest)

    async def status(self, ref: str) -> content.Status:
        return content.Status(ref, len(self.ingests[ref]))

    async def list_statuses(self, filters: Sequence[str] = ()) -> builtins.list[content.Status]:
        return [content.Status(r, len(b)) for r, b in self.ingests.items()]

    async def abort(self, ref: str) -> None:
        if self.ingests.pop(ref, None) is None:
            raise errors.NotFound(f"ingest {ref}: not found")


class FakeSnapshots:
    name = "overlayfs"

    def __init__(self) -> None:
        self.snaps: dict[str, SnapInfo] = {}
        self.calls: list[tuple[str, ...]] = []

    async def stat(self, key: str) -> SnapInfo:
        self.calls.append(("stat", key))
        if key not in self.snaps:
            raise errors.NotFound(f"snapshot {key} does not exist")
        return self.snaps[key]

    async def _new(self, key: str, parent: str, kind: Kind) -> list[Mount]:
        if key in self.snaps:
            raise errors.AlreadyExists(f'snapshot "{key}": already exists')
        if parent and (parent not in self.snaps or self.snaps[parent].kind != Kind.COMMITTED):
            raise errors.NotFound(f"parent snapshot {parent} does not exist")
        self.snaps[key] = SnapInfo(key, parent, kind)
        return [Mount("bind", f"/fake/{key}", options=("rw", "rbind"))]

    async def prepare(
        self, key: str, parent: str = "", labels: Mapping[str, str] | None = None
    ) -> list[Mount]:
        self.calls.append(("prepare", key, parent))
        return await self._new(key, parent, Kind.ACTIVE)

    async def view(
        self, key: str, parent: str = "", labels: Mapping[str, str] | None = None
    ) -> list[Mount]:
        return await self._new(key, parent, Kind.VIEW)

    async def mounts(self, key: str) -> list[Mount]:
        return [Mount("bind", f"/fake/{key}")]

    async def commit(self, name: str, key: str, labels: Mapping[str, str] | None = None) -> None:
        self.calls.append(("commit", name, key))
        if name in self.snaps:
            raise errors.AlreadyExists(f'snapshot "{name}": already exists')
        info = self.snaps.pop(key)
        self.snaps[name] = SnapInfo(name, info.parent, Kind.COMMITTED)

    async def remove(self, key: str) -> None:
        self.calls.append(("remove", key))
        self.snaps.pop(key)

    async def update(self, info: SnapInfo, fieldpaths: Sequence[str] = ()) -> SnapInfo:
        return info

    async def usage(self, key: str) -> Usage:
        return Usage()

    async def list(self, filters: Sequence[str] = ()) -> AsyncIterator[SnapInfo]:
        for info in list(self.snaps.values()):
            yield info

    async def cleanup(self) -> None:
        pass


class FakeDiff:
    """Apply = hash the uncompressed layer (what the real differ returns)."""

    def __init__(self, store: FakeContent) -> None:
        self._store = store
        self.applied: list[str] = []
        self.fail: dict[str, errors.SeacanError] = {}
        self.lie = False

    async def apply(
        self, desc: oci.Descriptor, mounts: Sequence[Mount], payloads: Any = None
    ) -> oci.Descriptor:
        if desc.digest in self.fail:
            raise self.fail[desc.digest]
        data = self._store.blobs[desc.digest]
        raw = gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
        self.applied.append(desc.digest)
        digest = oci.digest_of(raw + (b"x" if self.lie else b""))
        return oci.Descriptor(oci.OCI_LAYER, digest, len(raw))


class FakeImages:
    def __init__(self) -> None:
        self.images: dict[str, Image] = {}

    async def get(self, name: str) -> Image:
        if name not in self.images:
            raise errors.NotFound(f'image "{name}": not found')
        return self.images[name]

    async def list(self, filters: Sequence[str] = ()) -> list[Image]:
        return sorted(self.images.values(), key=lambda i: i.name)

    async def create(self, image: Image) -> Image:
        if image.name in self.images:
            raise errors.AlreadyExists(f'image "{image.name}": already exists')
        self.images[image.name] = image
        return image

    async def update(self, image: Image, fieldpaths: Sequence[str] = ()) -> Image:
        old = self.images[image.name]
        self.images[image.name] = Image(image.name, old.labels, image.target)
        return self.images[image.name]

    async def delete(self, name: str, sync: bool = False) -> None:
        del self.images[name]


class FakeStores:
    def __init__(self, store: FakeContent | None = None) -> None:
        self.content = store or FakeContent()
        self.snapshots = FakeSnapshots()
        self.diff = FakeDiff(self.content)
        self.images = FakeImages()
        self.leases: list[tuple[str, bool]] = []  # (expire label, still held)

    @contextlib.asynccontextmanager
    async def lease(self, expire: dt.timedelta | None = None) -> AsyncIterator[str]:
        self.leases.append((str(expire), True))
        try:
            yield "lease-1"
        finally:
            self.leases[-1] = (str(expire), False)


T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def import_file(stores: FakeStores, path: Path, **opts: Any) -> list[ar.ImportedImage]:
    with open(path, "rb") as f:
        return run(ar.import_archive(stores, f, ar.ImportOptions(**opts)))


def import_bytes(stores: FakeStores, data: bytes, **opts: Any) -> list[ar.ImportedImage]:
    return run(ar.import_archive(stores, io.BytesIO(data), ar.ImportOptions(**opts)))


# --- references -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ref", "normalized"),
    [
        ("busybox", "docker.io/library/busybox:latest"),
        ("busybox:1.36", "docker.io/library/busybox:1.36"),
        ("library/busybox:latest", "docker.io/library/busybox:latest"),
        ("me/app", "docker.io/me/app:latest"),
        ("index.docker.io/me/app:v1", "docker.io/me/app:v1"),
        ("localhost/app", "localhost/app:latest"),
        ("localhost:5000/a/b:c", "localhost:5000/a/b:c"),
        ("registry.example.com/team/app:1.0", "registry.example.com/team/app:1.0"),
        ("app@sha256:" + "a" * 64, "docker.io/library/app@sha256:" + "a" * 64),
        ("app:1@sha256:" + "b" * 64, "docker.io/library/app@sha256:" + "b" * 64),
    ],
)
def test_normalize_reference(ref: str, normalized: str) -> None:
    assert ar.normalize_reference(ref) == normalized


@pytest.mark.parametrize(
    ("ref", "problem"),
    [
        ("", "empty"),
        ("Busybox", "lowercase"),
        ("a" * 64, "64-byte hexadecimal"),
        ("busybox:la test", "invalid reference format"),
        ("busy//box", "invalid reference format"),
        ("x/" + "a" * 300, "longer than 255"),
    ],
)
def test_bad_references_are_refused(ref: str, problem: str) -> None:
    with pytest.raises(errors.InvalidArgument, match=problem):
        ar.normalize_reference(ref)


@pytest.mark.parametrize(
    ("name", "familiar"),
    [
        ("docker.io/library/busybox:latest", "busybox:latest"),
        ("docker.io/library/busybox", "busybox:latest"),
        ("docker.io/me/app:1", "me/app:1"),
        ("ghcr.io/me/app:1", "ghcr.io/me/app:1"),
    ],
)
def test_familiar_reference(name: str, familiar: str) -> None:
    assert ar.familiar_reference(name) == familiar


@pytest.mark.parametrize(
    ("name", "ref"),
    [
        ("docker.io/library/busybox:latest", "latest"),
        ("localhost:5000/x:v2", "v2"),
        ("docker.io/x/y:t@sha256:" + "c" * 64, "t"),
        ("docker.io/x/y@sha256:" + "c" * 64, ""),
        ("docker.io/library/busybox", ""),
        ("busybox", ""),
    ],
)
def test_oci_ref_name(name: str, ref: str) -> None:
    assert ar.oci_ref_name(name) == ref


def _desc(annotations: Mapping[str, str], digest: str = "sha256:" + "1" * 64) -> oci.Descriptor:
    return oci.Descriptor(oci.OCI_MANIFEST, digest, 10, dict(annotations))


def test_image_names_follow_ctr() -> None:
    day = dt.date(2024, 5, 1)
    full = _desc({oci.ANNOTATION_IMAGE_NAME: "docker.io/library/a:1", oci.ANNOTATION_REF_NAME: "1"})
    bare = _desc({oci.ANNOTATION_REF_NAME: "latest"}, "sha256:" + "2" * 64)
    other = _desc({oci.ANNOTATION_REF_NAME: "example.com/b:2"}, "sha256:" + "3" * 64)
    anon = _desc({}, "sha256:" + "4" * 64)
    names = [n for n, _ in ar.image_names([full, bare, other, anon], today=day)]
    assert names == ["docker.io/library/a:1", "import-2024-05-01:latest", "example.com/b:2"]

    # --base-name: bare names get it; full names must start with it.
    names = [n for n, _ in ar.image_names([bare, other], base_name="example.com/b")]
    assert names == ["example.com/b:latest", "example.com/b:2"]
    names = [n for n, _ in ar.image_names([other], base_name="example.com/bb")]
    assert names == []

    # --digests adds <prefix>@<digest> for every entry, named or not.
    names = [n for n, _ in ar.image_names([full, anon], digests=True, today=day)]
    assert names == [
        "docker.io/library/a:1",
        f"import-2024-05-01@{full.digest}",
        f"import-2024-05-01@{anon.digest}",
    ]


# --- GC labels, JSON, docker manifests -----------------------------------------------


def test_child_gc_labels_match_containerd() -> None:
    d = "sha256:" + "5" * 64
    children = [
        oci.Descriptor(oci.OCI_CONFIG, d, 1),
        oci.Descriptor(oci.OCI_LAYER_GZIP, d, 1),
        oci.Descriptor(oci.DOCKER_LAYER, d, 1),
    ]
    assert ar.child_gc_labels(children) == {
        "containerd.io/gc.ref.content.config": d,
        "containerd.io/gc.ref.content.l.0": d,
        "containerd.io/gc.ref.content.l.1": d,
    }
    index_children = [
        oci.Descriptor(oci.OCI_MANIFEST, d, 1),
        oci.Descriptor(oci.DOCKER_MANIFEST, d, 1),
        oci.Descriptor(oci.OCI_INDEX, d, 1),
        oci.Descriptor("application/vnd.in-toto+json", d, 1),
    ]
    assert ar.child_gc_labels(index_children) == {
        "containerd.io/gc.ref.content.m.0": d,
        "containerd.io/gc.ref.content.m.1": d,
        "containerd.io/gc.ref.content.0": d,
        "containerd.io/gc.ref.content.1": d,
    }


def test_go_json_escapes_like_go() -> None:
    assert ar.go_json({"a": "<&>", "b": [1, 2]}) == b'{"a":"\\u003c\\u0026\\u003e","b":[1,2]}'


def test_docker_manifest_is_byte_identical_to_containerds() -> None:
    """The fixture's docker manifest is what ctr writes (checked against containerd)."""
    image = im.busybox_image(docker=True)
    layer = image.layers[0].blob
    got = ar.docker_manifest(
        oci.Descriptor(oci.DOCKER_CONFIG, image.config.digest, image.config.size),
        [oci.Descriptor(ar.docker_layer_media_type(layer.data[:8]), layer.digest, layer.size)],
    )
    assert got == image.manifest.data


def test_docker_layer_media_type_by_magic() -> None:
    assert ar.docker_layer_media_type(b"\x1f\x8b\x08\x00") == oci.DOCKER_LAYER_GZIP
    assert ar.docker_layer_media_type(b"\x28\xb5\x2f\xfd") == oci.OCI_LAYER_ZSTD
    assert ar.docker_layer_media_type(b"bin/\0\0\0") == oci.DOCKER_LAYER


def test_parse_docker_manifest_names_the_problem() -> None:
    good = b'[{"Config":"c.json","RepoTags":null,"Layers":["a/layer.tar"]}]'
    assert ar.parse_docker_manifest(good) == [ar.DockerManifest("c.json", (), ("a/layer.tar",))]
    with pytest.raises(errors.InvalidArgument, match="missing Config"):
        ar.parse_docker_manifest(b'[{"RepoTags":[]}]')
    with pytest.raises(errors.InvalidArgument, match="invalid JSON"):
        ar.parse_docker_manifest(b"[{")


# --- import ------------------------------------------------------------------------


def assert_like_ctr(stores: FakeStores, a: im.Archive) -> None:
    """Blobs stored, labels as ctr sets them, layers unpacked, the image created."""
    s = stores.content
    assert set(a.blobs) <= set(s.blobs)
    img = stores.images.images[a.name]
    assert (img.target.digest, img.target.media_type) == (a.target_digest, a.target_media_type)
    manifest = json.loads(s.blobs[a.manifest_digest])
    labels = s.labels[a.manifest_digest]
    assert labels["containerd.io/gc.ref.content.config"] == a.config_digest
    for i, layer in enumerate(a.layer_digests):
        assert labels[f"containerd.io/gc.ref.content.l.{i}"] == layer
        assert s.labels[layer]["containerd.io/uncompressed"] == a.diff_ids[i]
    assert len(manifest["layers"]) == len(a.layer_digests)
    assert s.labels[a.config_digest]["containerd.io/gc.ref.snapshot.overlayfs"] == a.chain_ids[-1]
    snaps = stores.snapshots.snaps
    parent = ""
    for chain in a.chain_ids:
        assert snaps[chain].kind == Kind.COMMITTED and snaps[chain].parent == parent
        parent = chain
    assert not [k for k in snaps if k.startswith("extract-")], "extract snapshot left"
    assert stores.leases and not stores.leases[-1][1], "the lease was not released"
    assert stores.leases[-1][0] == str(dt.timedelta(hours=1))


def test_import_oci_layout(tmp_path: Path) -> None:
    a = im.write_multilayer(tmp_path / "layers.tar")
    stores = FakeStores()
    [got] = import_file(stores, a.path)
    assert got == ar.ImportedImage(a.name, got.target, a.chain_ids[-1])
    assert got.target.annotations[oci.ANNOTATION_IMAGE_NAME] == a.name
    assert_like_ctr(stores, a)
    # Streamed as ctr does: one ingest per blob, ref tar-blobs/sha256/<hex>.
    assert sorted(stores.content.refs) == sorted(
        "tar-blobs/sha256/" + d.split(":")[1] for d in a.blobs
    )


def test_import_docker_save_archive(tmp_path: Path) -> None:
    a = im.write_busybox_docker(tmp_path / "busybox-docker.tar")
    stores = FakeStores()
    [got] = import_file(stores, a.path)
    assert got.name == "docker.io/library/busybox:latest"
    assert got.target.digest == a.target_digest  # the manifest containerd would write
    assert got.target.annotations == {
        oci.ANNOTATION_IMAGE_NAME: "docker.io/library/busybox:latest",
        oci.ANNOTATION_REF_NAME: "latest",
    }
    assert_like_ctr(stores, a)
    # Docker's v1 metadata files are not stored.
    assert len(stores.content.blobs) == 3


def test_import_gzip_compressed_archive(tmp_path: Path) -> None:
    a = im.write_hello(tmp_path / "hello.tar")
    gz = tmp_path / "hello.tar.gz"
    gz.write_bytes(gzip.compress(a.path.read_bytes()))
    stores = FakeStores()
    [got] = import_file(stores, gz)
    assert got.target.digest == a.target_digest
    assert_like_ctr(stores, a)


def test_import_multiplatform_keeps_index_unpacks_host(tmp_path: Path) -> None:
    a = im.write_multiplatform(tmp_path / "multi.tar")
    stores = FakeStores()
    [got] = import_file(stores, a.path)
    assert got.target.media_type == oci.OCI_INDEX and got.target.digest == a.target_digest
    assert_like_ctr(stores, a)
    index_labels = stores.content.labels[a.target_digest]
    # Only the host manifest is labelled (ctr filters by platform).
    assert index_labels == {"containerd.io/gc.ref.content.m.0": a.manifest_digest}
    assert not set(a.other_chain_ids) & set(stores.snapshots.snaps)

    stores = FakeStores()
    import_file(stores, a.path, all_platforms=True)
    labels = stores.content.labels[a.target_digest]
    assert len([k for k in labels if ".m." in k]) == 2
    assert not set(a.other_chain_ids) & set(stores.snapshots.snaps)


def test_import_twice_skips_unpacked_layers_and_updates_the_image(tmp_path: Path) -> None:
    a = im.write_hello(tmp_path / "hello.tar")
    stores = FakeStores()
    import_file(stores, a.path)
    applied = list(stores.diff.applied)
    import_file(stores, a.path)
    assert stores.diff.applied == applied, "an unpacked layer was applied again"
    assert list(stores.images.images) == [a.name]


def test_import_of_an_image_for_another_platform(tmp_path: Path) -> None:
    host, other = im.host_platform(), im.other_platform()
    img = im.make_image([im.make_layer([im.file("x", b"x")])], platform=other)
    index = im.make_index([img.manifest.descriptor(platform=other)])
    path = tmp_path / "other.tar"
    path.write_bytes(
        im.tar_bytes(
            im.oci_layout_entries(
                im.top_index(index, "docker.io/library/other:1"),
                ((b.digest, b.data) for b in [index, *img.blobs]),
            )
        )
    )
    stores = FakeStores()
    with pytest.raises(errors.NotFound, match=f"no manifest for {host}.*--all-platforms"):
        import_file(stores, path)
    assert not stores.images.images
    [got] = import_file(stores, path, all_platforms=True)
    assert got.chain_id == "" and got.name == "docker.io/library/other:1"


def test_import_digests_and_base_name(tmp_path: Path) -> None:
    image = im.hello_image()
    index = {
        "schemaVersion": 2,
        "manifests": [image.manifest.descriptor({oci.ANNOTATION_REF_NAME: "v1"})],
    }
    path = tmp_path / "bare.tar"
    path.write_bytes(
        im.tar_bytes(im.oci_layout_entries(index, ((b.digest, b.data) for b in image.blobs)))
    )
    stores = FakeStores()
    names = [i.name for i in import_file(stores, path, base_name="me/app", digests=True)]
    assert names == ["me/app:v1", f"me/app@{image.manifest.digest}"]
    assert sorted(stores.images.images) == sorted(names)


def test_import_without_names_is_an_error(tmp_path: Path) -> None:
    image = im.hello_image()
    index = {"schemaVersion": 2, "manifests": [image.manifest.descriptor()]}
    path = tmp_path / "anon.tar"
    path.write_bytes(
        im.tar_bytes(im.oci_layout_entries(index, ((b.digest, b.data) for b in image.blobs)))
    )
    with pytest.raises(errors.InvalidArgument, match=r"names no image.*--digests"):
        import_file(FakeStores(), path)


# --- bad archives ------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["corrupt", "truncated", "digest-mismatch", "missing-blob"])
def test_bad_archive_errors_name_the_problem(tmp_path: Path, kind: str) -> None:
    bad = im.write_bad(tmp_path / "in.tar", kind, tmp_path / "sentinel")
    stores = FakeStores()
    with pytest.raises(errors.SeacanError) as exc:
        import_file(stores, bad.path)
    assert not im.unmatched(bad.patterns, str(exc.value)), str(exc.value)
    assert not stores.images.images, "an image was created"
    assert not stores.snapshots.snaps, "a snapshot was created"
    assert not stores.content.ingests, "an ingest was left"
    assert stores.leases and not stores.leases[-1][1]


def test_digest_mismatch_of_a_streamed_blob(tmp_path: Path) -> None:
    big = b"\x00" * (ar.SMALL + 10)
    wrong = "sha256:" + "0" * 64
    path = tmp_path / "big.tar"
    path.write_bytes(im.tar_bytes([im.file("blobs/sha256/" + "0" * 64, big)]))
    stores = FakeStores()
    with pytest.raises(errors.InvalidArgument, match="digest mismatch") as exc:
        import_file(stores, path)
    assert wrong.split(":")[1] in str(exc.value)
    assert not stores.content.ingests and not stores.content.blobs


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"", "archive is empty"),
        (b"hello, not a tar" * 64, "not a tar archive"),
        (b"\x1f\x8b\x08\x00garbage" * 10, "corrupt|not a tar"),
        (
            gzip.compress(im.tar_bytes([im.file("a", random.Random(1).randbytes(9000))]))[:4000],
            "truncated",
        ),
        (im.tar_bytes([im.file("a.txt", b"a")]), "unrecognized image archive"),
        (
            im.tar_bytes([im.file("oci-layout", b'{"imageLayoutVersion":"9.9"}')]),
            "unsupported OCI image layout version",
        ),
        (
            im.tar_bytes([im.file("oci-layout", b'{"imageLayoutVersion":"1.0.0"}')]),
            "missing index.json",
        ),
        (im.tar_bytes([im.file("index.json", b"{")]), "index.json: invalid JSON"),
        (im.tar_bytes([im.file("blobs/sha512/" + "a" * 128, b"x")]), "unsupported digest"),
        (im.tar_bytes([im.file("blobs/sha256/xyz", b"x")]), "not a sha256 digest"),
    ],
    # ids from the problem alone: gzip data carries the time, and xdist workers must agree
    ids=lambda v: v if isinstance(v, str) else "data",
)
def test_malformed_archives(data: bytes, problem: str) -> None:
    stores = FakeStores()
    with pytest.raises(errors.InvalidArgument, match=problem):
        import_bytes(stores, data)
    assert not stores.images.images


def test_docker_archive_missing_layer_file(tmp_path: Path) -> None:
    image = im.hello_image()
    entries = [
        e for e in im.docker_archive_entries(image, ["hello:1"]) if not e.name.endswith("layer.tar")
    ]
    with pytest.raises(errors.InvalidArgument, match=r"layer 0 of entry 0 .*layer.tar not found"):
        import_bytes(FakeStores(), im.tar_bytes(entries))


def test_entry_over_the_size_limit() -> None:
    data = im.tar_bytes([im.file("blobs/sha256/" + "1" * 64, b"x" * 100)])
    with pytest.raises(errors.InvalidArgument, match="over the limit of 50 bytes"):
        import_bytes(FakeStores(), data, max_blob_bytes=50)


def test_blob_with_the_wrong_size_is_refused(tmp_path: Path) -> None:
    image = im.hello_image()
    manifest = json.loads(image.manifest.data)
    manifest["layers"][0]["size"] += 1
    mdata = im.canonical_json(manifest)
    mdesc = im.Blob.of(im.OCI_MANIFEST, mdata)
    index = im.top_index(mdesc, "docker.io/library/sized:1")
    blobs = [(mdesc.digest, mdata), *((b.digest, b.data) for b in image.blobs[1:])]
    stores = FakeStores()
    with pytest.raises(errors.InvalidArgument, match="descriptor says"):
        import_bytes(stores, im.tar_bytes(im.oci_layout_entries(index, blobs)))
    assert not stores.images.images


def test_blob_missing_from_archive_but_in_store_is_fine(tmp_path: Path) -> None:
    a = im.write_hello(tmp_path / "hello.tar")
    image = im.hello_image()
    layer = image.layers[0].blob
    store = FakeContent()
    store.blobs[layer.digest] = layer.data
    store.labels[layer.digest] = {}
    entries = im.oci_layout_entries(
        im.top_index(image.manifest, a.name),
        ((b.digest, b.data) for b in image.blobs if b.digest != layer.digest),
    )
    stores = FakeStores(store)
    import_bytes(stores, im.tar_bytes(entries))
    assert_like_ctr(stores, a)


def test_failed_unpack_leaves_no_image_and_no_extract_snapshot(tmp_path: Path) -> None:
    a = im.write_multilayer(tmp_path / "layers.tar")
    stores = FakeStores()
    stores.diff.fail[a.layer_digests[1]] = errors.InvalidArgument("layer: entry ../x escapes")
    with pytest.raises(errors.InvalidArgument, match=r"layer 1 .*entry \.\./x escapes"):
        import_file(stores, a.path)
    assert not stores.images.images
    assert set(stores.snapshots.snaps) == {a.chain_ids[0]}  # the complete layer below stays
    removed = [c for c in stores.snapshots.calls if c[0] == "remove"]
    assert len(removed) == 1 and removed[0][1].startswith("extract-")


def test_wrong_diff_id_is_an_error_naming_the_layer(tmp_path: Path) -> None:
    a = im.write_hello(tmp_path / "hello.tar")
    stores = FakeStores()
    stores.diff.lie = True
    with pytest.raises(
        errors.InvalidArgument, match=f"layer 0 \\({a.layer_digests[0]}\\).*diff ID"
    ):
        import_file(stores, a.path)
    assert not stores.images.images and not stores.snapshots.snaps


def test_unpack_calls_in_containerds_order(tmp_path: Path) -> None:
    a = im.write_multilayer(tmp_path / "layers.tar")
    stores = FakeStores()
    import_file(stores, a.path)
    calls = stores.snapshots.calls
    parent = ""
    i = 0
    for chain in a.chain_ids:
        assert calls[i] == ("stat", chain)
        op, key, par = calls[i + 1]
        assert op == "prepare" and key.startswith("extract-") and key.endswith(" " + chain)
        assert par == parent
        assert calls[i + 2] == ("commit", chain, key)
        parent = chain
        i += 3


def test_extract_key_format() -> None:
    key = unpacker.extract_key("sha256:" + "a" * 64)
    prefix, chain = key.split(" ")
    assert prefix.startswith("extract-") and chain == "sha256:" + "a" * 64


# --- export ------------------------------------------------------------------------


def export(stores: FakeStores, names: Sequence[str], **opts: Any) -> bytes:
    buf = io.BytesIO()
    imgs = [(n, stores.images.images[n].target) for n in names]
    run(ar.export_archive(stores.content, imgs, buf, ar.ExportOptions(**opts)))
    return buf.getvalue()


def tar_members(data: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tf:
        return {
            m.name: (tf.extractfile(m).read() if m.isfile() else b"")  # type: ignore[union-attr]
            for m in tf.getmembers()
        }


def test_export_writes_an_oci_layout_and_manifest_json(tmp_path: Path) -> None:
    a = im.write_multilayer(tmp_path / "layers.tar")
    stores = FakeStores()
    import_file(stores, a.path)
    data = export(stores, [a.name])
    members = tar_members(data)
    names = list(members)
    assert names == sorted(names)
    assert names[:2] == ["blobs", "blobs/sha256"]  # tarfile drops the trailing "/"
    assert json.loads(members["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads(members["index.json"])
    [entry] = index["manifests"]
    assert entry["digest"] == a.target_digest
    assert entry["annotations"] == {
        oci.ANNOTATION_IMAGE_NAME: a.name,
        oci.ANNOTATION_REF_NAME: "latest",
    }
    [docker] = json.loads(members["manifest.json"])
    assert docker["RepoTags"] == ["layers:latest"]
    assert docker["Config"] == "blobs/sha256/" + a.config_digest.split(":")[1]
    assert docker["Layers"] == ["blobs/sha256/" + d.split(":")[1] for d in a.layer_digests]
    for d in a.blobs:
        blob = members["blobs/sha256/" + d.split(":")[1]]
        assert oci.digest_of(blob) == d
    # Deterministic: the same export gives the same bytes.
    assert export(stores, [a.name]) == data


def test_export_reimport_gives_identical_digests(tmp_path: Path) -> None:
    for a in (
        im.write_busybox_docker(tmp_path / "d.tar"),
        im.write_multiplatform(tmp_path / "m.tar"),
    ):
        stores = FakeStores()
        import_file(stores, a.path)
        data = export(stores, [a.name])
        again = FakeStores()
        [got] = import_bytes(again, data)
        assert got.name == a.name and got.target.digest == a.target_digest
        assert set(a.blobs) <= set(again.content.blobs)


def test_export_default_leaves_out_platforms_not_in_the_store(tmp_path: Path) -> None:
    a = im.write_multiplatform(tmp_path / "m.tar")
    stores = FakeStores()
    import_file(stores, a.path)
    other_manifest = next(d for d in a.other_blobs if d not in a.blobs)
    other_blobs = [d for d in a.other_blobs if d != other_manifest]
    for d in other_blobs:  # as if collected: only the other platform's manifest is left
        stores.content.blobs.pop(d, None)
    members = tar_members(export(stores, [a.name]))
    got = {"sha256:" + n.split("/")[-1] for n in members if n.startswith("blobs/sha256/")}
    assert got == set(a.blobs)
    with pytest.raises(errors.NotFound, match="not found in the content store"):
        export(stores, [a.name], all_platforms=True)
    members = tar_members(export(stores, [a.name], platforms=(HOST,)))
    assert "blobs/sha256/" + a.manifest_digest.split(":")[1] in members


def test_export_two_images_and_two_names(tmp_path: Path) -> None:
    h = im.write_hello(tmp_path / "h.tar")
    m = im.write_multilayer(tmp_path / "m.tar")
    stores = FakeStores()
    import_file(stores, h.path)
    import_file(stores, m.path)
    stores.images.images["example.com/hello:2"] = Image(
        "example.com/hello:2", {}, stores.images.images[h.name].target
    )
    members = tar_members(export(stores, [h.name, m.name, "example.com/hello:2"]))
    index = json.loads(members["index.json"])
    assert [e["annotations"][oci.ANNOTATION_IMAGE_NAME] for e in index["manifests"]] == [
        h.name,
        m.name,
        "example.com/hello:2",
    ]
    tags = sorted(t for e in json.loads(members["manifest.json"]) for t in e["RepoTags"])
    assert tags == ["example.com/hello:2", "hello:latest", "layers:latest"]
    again = FakeStores()
    names = sorted(i.name for i in import_bytes(again, b"".join([tar_bytes_of(members)])))
    assert names == sorted([h.name, m.name, "example.com/hello:2"])


def tar_bytes_of(members: dict[str, bytes]) -> bytes:
    return im.tar_bytes(
        im.directory(n) if n.startswith("blobs") and len(n) < 14 else im.file(n, d)
        for n, d in members.items()
    )


def _docker_oci_style(image: im.Image, tag: str) -> list[im.Entry]:
    """A docker-save archive with layers under blobs/sha256/ (newer docker), no oci-layout."""
    hexes = [ly.blob.digest.split(":")[1] for ly in image.layers]
    cfg = image.config.digest.split(":")[1]
    manifest = [
        {
            "Config": f"blobs/sha256/{cfg}",
            "RepoTags": [tag],
            "Layers": [f"blobs/sha256/{h}" for h in hexes],
        }
    ]
    return [
        im.file(f"blobs/sha256/{cfg}", image.config.data),
        *(
            im.file(f"blobs/sha256/{h}", ly.blob.data)
            for h, ly in zip(hexes, image.layers, strict=True)
        ),
        im.file("manifest.json", json.dumps(manifest).encode()),
    ]


def test_docker_archive_with_blob_paths_and_a_layer_already_stored() -> None:
    gz = im.make_layer([im.file("big.bin", random.Random(3).randbytes(ar.SMALL + 100))])
    image = im.make_image([gz], docker=True)
    assert image.layers[0].blob.media_type == oci.DOCKER_LAYER_GZIP
    stores = FakeStores()
    stores.content.blobs[gz.blob.digest] = gz.blob.data  # streamed before: skipped now
    stores.content.labels[gz.blob.digest] = {}
    [got] = import_bytes(stores, im.tar_bytes(_docker_oci_style(image, "me/big:1")))
    assert got.name == "docker.io/me/big:1"
    assert got.target.digest == image.manifest.digest  # gzip media type found in the store


def test_docker_archive_with_symlinked_layers() -> None:
    layer = im.make_layer([im.file("a", b"a")], compress=False)
    image = im.make_image([layer, layer], docker=True)
    entries = im.docker_archive_entries(image, ["twice:1"])
    # docker save links a repeated layer to the first copy
    first, second = [e.name for e in entries if e.name.endswith("/layer.tar")]
    d1 = first.split("/")[0]
    entries = [im.symlink(e.name, f"../{d1}/layer.tar") if e.name == second else e for e in entries]
    stores = FakeStores()
    [got] = import_bytes(stores, im.tar_bytes(entries))
    assert got.target.digest == image.manifest.digest
    assert got.chain_id == image.chain_ids[-1]
