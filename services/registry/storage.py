"""The registry's storage: plain files under one root, in distribution's shape.

::

    blobs/sha256/<hex>                                  every blob once (dedup)
    repositories/<name>/_layers/sha256/<hex>            empty: the repository has the blob
    repositories/<name>/_manifests/revisions/sha256/<hex>  the manifest's media type
    repositories/<name>/_manifests/tags/<tag>           the digest the tag points at
    repositories/<name>/_referrers/sha256/<subject>/<hex>  the referrer's descriptor (JSON)
    uploads/<uuid>, uploads/<uuid>.json                 an upload in progress, and its repository
    tmp/                                                small files before their rename

Nothing half-written is visible: an upload is hashed as it streams, and on
commit fsynced, checked against the digest and renamed into ``blobs/``; small
files (manifests, tags, links) are written in ``tmp/`` and renamed. A killed
server leaves at most a partial file under ``uploads/``, which a client can
resume (the offset is the file's size; the hash is recomputed from the file).
Every name and digest reaching this module was checked by :mod:`.spec`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import time
import uuid as uuidlib
from collections.abc import AsyncIterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import spec
from .spec import RegistryError

_UUID_RE = re.compile(r"[0-9a-f]{32}")


@dataclass(slots=True)
class Upload:
    uuid: str
    name: str
    path: Path
    hasher: Any  # hashlib's sha256 state (no public type)
    size: int
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


@dataclass(frozen=True, slots=True)
class StoredManifest:
    digest: str
    media_type: str
    body: bytes


@dataclass(frozen=True, slots=True)
class GcResult:
    removed: list[str]
    kept: int


def _hex(digest: str) -> str:
    return digest.split(":", 1)[1]


class Storage:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.blobs = root / "blobs" / "sha256"
        self.repos = root / "repositories"
        self.uploads = root / "uploads"
        self.tmp = root / "tmp"
        for d in (self.blobs, self.repos, self.uploads, self.tmp):
            d.mkdir(parents=True, exist_ok=True)
        self._open: dict[str, Upload] = {}

    def clean_tmp(self) -> None:
        """Remove small files a killed server left before their rename (server start only)."""
        for p in self.tmp.iterdir():
            p.unlink(missing_ok=True)

    # --- small atomic files ---------------------------------------------------

    def _write_atomic(self, path: Path, data: bytes, *, sync: bool = False) -> None:
        tmp = self.tmp / uuidlib.uuid4().hex
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            os.write(fd, data)
            if sync:
                os.fsync(fd)
        finally:
            os.close(fd)
        path.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, path)

    def _repo(self, name: str) -> Path:
        return self.repos / name

    def repo_exists(self, name: str) -> bool:
        r = self._repo(name)
        return (r / "_manifests").is_dir() or (r / "_layers").is_dir()

    # --- blobs ----------------------------------------------------------------

    def blob_path(self, digest: str) -> Path:
        return self.blobs / _hex(digest)

    def _layer_link(self, name: str, digest: str) -> Path:
        return self._repo(name) / "_layers" / "sha256" / _hex(digest)

    def _revision(self, name: str, digest: str) -> Path:
        return self._repo(name) / "_manifests" / "revisions" / "sha256" / _hex(digest)

    def blob(self, name: str, digest: str) -> tuple[Path, int]:
        """The file and size of a blob of ``name``; BLOB_UNKNOWN if it has none."""
        path = self.blob_path(digest)
        linked = self._layer_link(name, digest).exists() or self._revision(name, digest).exists()
        try:
            size = path.stat().st_size if linked else -1
        except FileNotFoundError:
            size = -1
        if size < 0:
            raise RegistryError("BLOB_UNKNOWN", f"blob {digest} unknown to {name}", detail=digest)
        return path, size

    def has_blob(self, name: str, digest: str) -> bool:
        try:
            self.blob(name, digest)
        except RegistryError:
            return False
        return True

    def link_blob(self, name: str, digest: str) -> None:
        link = self._layer_link(name, digest)
        link.parent.mkdir(parents=True, exist_ok=True)
        link.touch()

    def mount_blob(self, name: str, digest: str, source: str) -> bool:
        """Link ``source``'s blob into ``name``; False if the source has no such blob."""
        if not self.has_blob(source, digest):
            return False
        self.link_blob(name, digest)
        return True

    def delete_blob(self, name: str, digest: str) -> None:
        try:
            self._layer_link(name, digest).unlink()
        except FileNotFoundError:
            raise RegistryError(
                "BLOB_UNKNOWN", f"blob {digest} unknown to {name}", detail=digest
            ) from None

    # --- uploads --------------------------------------------------------------

    def start_upload(self, name: str) -> Upload:
        uid = uuidlib.uuid4().hex
        path = self.uploads / uid
        path.touch()
        meta = json.dumps({"name": name, "started": time.time()}).encode()
        self._write_atomic(self.uploads / f"{uid}.json", meta)
        up = Upload(uid, name, path, hashlib.sha256(), 0)
        self._open[uid] = up
        return up

    async def upload(self, name: str, uid: str) -> Upload:
        """An upload session of ``name``; after a restart its hash is recomputed from the file."""
        up = self._open.get(uid)
        if up is not None and up.name == name:
            return up
        unknown = RegistryError("BLOB_UPLOAD_UNKNOWN", f"upload {uid} unknown to {name}")
        if up is not None or not _UUID_RE.fullmatch(uid):
            raise unknown
        try:
            meta = json.loads((self.uploads / f"{uid}.json").read_bytes())
        except (FileNotFoundError, ValueError):
            raise unknown from None
        if meta.get("name") != name:
            raise unknown
        path = self.uploads / uid
        hasher, size = await asyncio.to_thread(_hash_file, path)
        up = self._open.get(uid)  # another request may have resumed it meanwhile
        if up is None:
            up = Upload(uid, name, path, hasher, size)
            self._open[uid] = up
        return up

    async def append(self, up: Upload, chunks: AsyncIterable[bytes]) -> int:
        """Stream ``chunks`` onto the upload, hashing as they come; the bytes written."""
        written = 0
        fd = os.open(up.path, os.O_WRONLY | os.O_APPEND)
        try:
            # Hashing in a thread measured no faster here: the loop does it inline.
            async for chunk in chunks:
                written += _write(fd, up, chunk)
        finally:
            os.close(fd)
        return written

    def cancel_upload(self, up: Upload) -> None:
        self._open.pop(up.uuid, None)
        (self.uploads / f"{up.uuid}.json").unlink(missing_ok=True)
        up.path.unlink(missing_ok=True)

    async def commit_upload(self, up: Upload, digest: str) -> None:
        """Verify, fsync and rename the upload into ``blobs/``, then link it into its repository.

        A digest that does not match ends the session: nothing is stored."""
        got = "sha256:" + up.hasher.hexdigest()
        if got != digest:
            self.cancel_upload(up)
            raise RegistryError(
                "DIGEST_INVALID",
                f"upload has digest {got}, not {digest}",
                detail={"expected": digest, "actual": got},
            )
        await asyncio.to_thread(self._commit_file, up.path, self.blob_path(digest))
        self._open.pop(up.uuid, None)
        (self.uploads / f"{up.uuid}.json").unlink(missing_ok=True)
        self.link_blob(up.name, digest)

    def _commit_file(self, src: Path, dst: Path) -> None:
        if dst.exists():  # deduplicated: the verified blob is already there
            src.unlink(missing_ok=True)
            return
        fd = os.open(src, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(src, dst)
        dfd = os.open(self.blobs, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)

    def open_sessions(self) -> set[str]:
        """Repositories with an upload in progress."""
        names: set[str] = set()
        for p in self.uploads.glob("*.json"):
            try:
                names.add(str(json.loads(p.read_bytes())["name"]))
            except (OSError, ValueError, KeyError):
                continue
        return names

    # --- manifests ------------------------------------------------------------

    def has_manifest(self, name: str, digest: str) -> bool:
        return self._revision(name, digest).exists()

    def put_manifest(self, name: str, ref: str, body: bytes, content_type: str | None) -> str:
        """Store a manifest after checking it and everything it references; its digest."""
        m = spec.parse_manifest(body, content_type)
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        if spec.is_digest(ref):
            if spec.check_digest(ref) != digest:
                raise RegistryError(
                    "DIGEST_INVALID",
                    f"manifest has digest {digest}, not {ref}",
                    detail={"expected": ref, "actual": digest},
                )
        else:
            spec.check_tag(ref)
        for b in m.blobs:
            if not self.has_blob(name, b):
                raise RegistryError(
                    "MANIFEST_BLOB_UNKNOWN", f"manifest references unknown blob {b}", detail=b
                )
        for c in m.manifests:
            if not self.has_manifest(name, c):
                raise RegistryError(
                    "MANIFEST_BLOB_UNKNOWN", f"index references unknown manifest {c}", detail=c
                )
        if not self.blob_path(digest).exists():
            self._write_atomic(self.blob_path(digest), body, sync=True)
        self._write_atomic(self._revision(name, digest), m.media_type.encode())
        if m.subject:
            desc: dict[str, Any] = {"mediaType": m.media_type, "digest": digest, "size": len(body)}
            if m.artifact_type:
                desc["artifactType"] = m.artifact_type
            if m.annotations:
                desc["annotations"] = m.annotations
            self._write_atomic(self._referrer(name, m.subject, digest), json.dumps(desc).encode())
        if not spec.is_digest(ref):
            self._write_atomic(self._tag(name, ref), digest.encode())
        return digest

    def _tag(self, name: str, tag: str) -> Path:
        return self._repo(name) / "_manifests" / "tags" / tag

    def _referrer(self, name: str, subject: str, digest: str) -> Path:
        return self._repo(name) / "_referrers" / "sha256" / _hex(subject) / _hex(digest)

    def resolve(self, name: str, ref: str) -> str:
        """The digest a tag or digest names in ``name``; MANIFEST_UNKNOWN if none."""
        unknown = RegistryError("MANIFEST_UNKNOWN", f"manifest {ref} unknown to {name}", detail=ref)
        if spec.is_digest(ref):
            digest = spec.check_digest(ref)
        else:
            if not spec.TAG_RE.fullmatch(ref):
                raise unknown
            try:
                digest = self._tag(name, ref).read_text().strip()
            except FileNotFoundError:
                raise unknown from None
        if not self.has_manifest(name, digest):
            raise unknown
        return digest

    def manifest(self, name: str, ref: str) -> StoredManifest:
        digest = self.resolve(name, ref)
        try:
            media_type = self._revision(name, digest).read_text()
            body = self.blob_path(digest).read_bytes()
        except FileNotFoundError:
            raise RegistryError("MANIFEST_UNKNOWN", f"manifest {ref} unknown to {name}") from None
        return StoredManifest(digest, media_type, body)

    def delete_manifest(self, name: str, ref: str) -> None:
        """Delete a tag, or a manifest by digest with every tag and referrer entry of it."""
        if not spec.is_digest(ref):
            self.resolve(name, ref)
            self._tag(name, ref).unlink(missing_ok=True)
            return
        m = self.manifest(name, ref)
        for tag in self.tags(name):
            try:
                if self._tag(name, tag).read_text().strip() == m.digest:
                    self._tag(name, tag).unlink(missing_ok=True)
            except FileNotFoundError:
                continue
        try:
            subject = spec.parse_manifest(m.body, m.media_type).subject
        except RegistryError:
            subject = None
        if subject:
            self._referrer(name, subject, m.digest).unlink(missing_ok=True)
        self._revision(name, m.digest).unlink(missing_ok=True)

    def tags(self, name: str) -> list[str]:
        if not self.repo_exists(name):
            raise RegistryError("NAME_UNKNOWN", f"repository {name} not known", detail=name)
        d = self._repo(name) / "_manifests" / "tags"
        return sorted(p.name for p in d.iterdir()) if d.is_dir() else []

    def referrers(self, name: str, subject: str, artifact_type: str | None) -> list[dict[str, Any]]:
        d = self._repo(name) / "_referrers" / "sha256" / _hex(subject)
        out: list[dict[str, Any]] = []
        if not d.is_dir():
            return out
        for p in sorted(d.iterdir()):
            try:
                desc = json.loads(p.read_bytes())
            except (FileNotFoundError, ValueError):
                continue
            if artifact_type is None or desc.get("artifactType") == artifact_type:
                out.append(desc)
        return out

    def repositories(self) -> list[str]:
        names: list[str] = []
        for dirpath, dirnames, _ in os.walk(self.repos):
            if "_manifests" in dirnames or "_layers" in dirnames:
                names.append(os.path.relpath(dirpath, self.repos))
            dirnames[:] = [d for d in dirnames if not d.startswith("_")]
        return sorted(names)

    # --- garbage collection ---------------------------------------------------

    def _manifest_refs(self, digest: str) -> set[str]:
        try:
            doc = json.loads(self.blob_path(digest).read_bytes())
        except (FileNotFoundError, ValueError):
            return set()
        refs: set[str] = set()
        if not isinstance(doc, dict):
            return refs
        items = [doc.get("config"), *(doc.get("layers") or []), *(doc.get("manifests") or [])]
        for d in items:
            if isinstance(d, dict) and isinstance(d.get("digest"), str):
                refs.add(d["digest"])
        return refs

    def _mark(self, keep_linked: set[str]) -> set[str]:
        marked: set[str] = set()
        for name in self.repositories():
            rev = self._repo(name) / "_manifests" / "revisions" / "sha256"
            if rev.is_dir():
                for p in rev.iterdir():
                    digest = f"sha256:{p.name}"
                    marked.add(digest)
                    marked.update(self._manifest_refs(digest))
            layers = self._repo(name) / "_layers" / "sha256"
            if name in keep_linked and layers.is_dir():
                marked.update(f"sha256:{p.name}" for p in layers.iterdir())
        return marked

    def gc(self, *, dry_run: bool = False) -> GcResult:
        """Remove blobs no manifest references, then the repository links to them.

        Safe beside a running server: blobs committed after the sweep began,
        and blobs of repositories with an upload in progress, are kept."""
        start = time.time()
        marked = self._mark(self.open_sessions())
        removed: list[str] = []
        kept = 0
        for p in sorted(self.blobs.iterdir()):
            digest = f"sha256:{p.name}"
            try:
                young = p.stat().st_mtime >= start
            except FileNotFoundError:
                continue
            if digest in marked or young:
                kept += 1
                continue
            removed.append(digest)
        if removed:
            # A manifest pushed while marking may name a candidate: mark again.
            late = self._mark(self.open_sessions())
            removed = [d for d in removed if d not in late]
        if not dry_run:
            gone = {_hex(d) for d in removed}
            for d in removed:
                self.blob_path(d).unlink(missing_ok=True)
            for name in self.repositories():
                layers = self._repo(name) / "_layers" / "sha256"
                if layers.is_dir():
                    for p in layers.iterdir():
                        if p.name in gone:
                            p.unlink(missing_ok=True)
        return GcResult(removed, kept)


def _write(fd: int, up: Upload, chunk: bytes) -> int:
    """Write all of ``chunk`` and hash exactly what was written."""
    view = memoryview(chunk)
    while view:
        n = os.write(fd, view)
        up.hasher.update(view[:n])
        up.size += n
        view = view[n:]
    return len(chunk)


def _hash_file(path: Path) -> tuple[Any, int]:
    h = hashlib.sha256()
    size = 0
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
            size += len(chunk)
    return h, size
