"""The registry's file storage without HTTP: commit, dedup, resume, gc."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from seacan.services.registry import spec
from seacan.services.registry.spec import RegistryError
from seacan.services.registry.storage import Storage

pytestmark = pytest.mark.unit


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


async def chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for p in parts:
        yield p


async def put_blob(st: Storage, name: str, data: bytes) -> str:
    up = st.start_upload(name)
    await st.append(up, chunks(data))
    await st.commit_upload(up, digest(data))
    return digest(data)


def manifest(config: str, layers: list[str]) -> bytes:
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": spec.OCI_MANIFEST,
            "config": {"mediaType": "c", "digest": config, "size": 1},
            "layers": [{"mediaType": "l", "digest": d, "size": 1} for d in layers],
        }
    ).encode()


def test_commit_dedup_and_links(tmp_path: Path) -> None:
    async def main() -> None:
        st = Storage(tmp_path)
        d = await put_blob(st, "a", b"same")
        assert await put_blob(st, "b", b"same") == d
        assert [p.name for p in st.blobs.iterdir()] == [d.split(":")[1]]
        assert st.blob("a", d)[1] == 4 and st.has_blob("b", d)
        assert not st.has_blob("c", d)
        assert st.mount_blob("c", d, "a") and st.has_blob("c", d)
        assert not st.mount_blob("c", digest(b"other"), "a")
        assert list(st.uploads.iterdir()) == []

    asyncio.run(main())


def test_wrong_digest_ends_the_session(tmp_path: Path) -> None:
    async def main() -> None:
        st = Storage(tmp_path)
        up = st.start_upload("a")
        await st.append(up, chunks(b"abc"))
        with pytest.raises(RegistryError) as e:
            await st.commit_upload(up, digest(b"abd"))
        assert e.value.code == "DIGEST_INVALID"
        assert list(st.blobs.iterdir()) == [] and list(st.uploads.iterdir()) == []
        with pytest.raises(RegistryError):
            await st.upload("a", up.uuid)

    asyncio.run(main())


def test_resume_after_restart_rehashes(tmp_path: Path) -> None:
    async def main() -> None:
        up = Storage(tmp_path).start_upload("a")
        await Storage(tmp_path).append(up, chunks(b"hello ", b"wor"))
        st = Storage(tmp_path)  # a new process: nothing in memory
        resumed = await st.upload("a", up.uuid)
        assert resumed.size == 9
        with pytest.raises(RegistryError):
            await st.upload("b", up.uuid)  # another repository's session
        await st.append(resumed, chunks(b"ld"))
        await st.commit_upload(resumed, digest(b"hello world"))
        assert st.blob("a", digest(b"hello world"))[1] == 11

    asyncio.run(main())


def test_gc(tmp_path: Path) -> None:
    async def main() -> None:
        st = Storage(tmp_path)
        cfg, layer, loose = [await put_blob(st, "a", x) for x in (b"c", b"l", b"x")]
        m = manifest(cfg, [layer])
        md = st.put_manifest("a", "v1", m, spec.OCI_MANIFEST)
        other = await put_blob(st, "b", b"only b")
        st.put_manifest("b", "v1", manifest(other, []), spec.OCI_MANIFEST)
        st.delete_manifest("b", "v1")  # the tag only: the manifest still holds the blob
        # a repository with an upload in progress keeps its linked blobs
        busy = await put_blob(st, "c", b"busy")
        st.start_upload("c")
        result = st.gc(dry_run=True)
        assert result.removed == [loose] and (st.blobs / loose.split(":")[1]).exists()
        assert st.gc().removed == [loose]
        assert not st.has_blob("a", loose)
        assert {f"sha256:{p.name}" for p in st.blobs.iterdir()} >= {cfg, layer, md, other, busy}
        assert st.gc().removed == []

    asyncio.run(main())


def test_index_needs_its_manifests(tmp_path: Path) -> None:
    async def main() -> None:
        st = Storage(tmp_path)
        cfg = await put_blob(st, "a", b"c")
        md = st.put_manifest("a", "v1", manifest(cfg, []), spec.OCI_MANIFEST)
        index = json.dumps(
            {"schemaVersion": 2, "mediaType": spec.OCI_INDEX, "manifests": [{"digest": md}]}
        ).encode()
        with pytest.raises(RegistryError) as e:
            st.put_manifest("b", "v1", index, spec.OCI_INDEX)
        assert e.value.code == "MANIFEST_BLOB_UNKNOWN"
        assert st.put_manifest("a", "multi", index, None) == digest(index)
        assert st.manifest("a", "multi").media_type == spec.OCI_INDEX

    asyncio.run(main())
