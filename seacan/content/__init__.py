"""Content: the content-addressed blob store, as containerd splits it.

A blob is named by the digest of its bytes (``sha256:<hex>``). Blobs are
written through an *ingest*, a resumable upload keyed by a caller-chosen
``ref``; committing an ingest verifies its size and digest and makes the
blob visible in the caller's namespace. The store has four roles, and a
caller depends on the narrowest one it needs:

- :class:`Provider` reads blobs (``info``, ``read``);
- :class:`Ingester` opens a :class:`Writer` for a ref;
- :class:`Manager` updates labels, lists and deletes blobs;
- :class:`IngestManager` inspects and aborts ingests.

Writing a blob by hand::

    w = await store.writer("layer-sha256:ab...", total=len(data), expected=dgst)
    try:
        await w.write(data)            # any number of times; appends
        await w.commit(len(data), dgst, labels={"a": "b"})
    finally:
        await w.close()                # releases the ref; a partial ingest stays resumable

``writer`` raises AlreadyExists when ``expected`` is already stored (the
blob then becomes visible in the caller's namespace) and Unavailable while
another writer holds the ref. :func:`write_blob` does all of that, treating
AlreadyExists as success. Implementations: the local store
(``seacan.services.content.store``) and :class:`seacan.content.proxy.RemoteContent`;
both pass :mod:`seacan.content.testsuite`. The namespace and lease come from
the request scope (:mod:`seacan.scope`).
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import AsyncIterable, AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, runtime_checkable

from seacan import errors
from seacan import labels as labels_
from seacan.oci import Descriptor

CHUNK = 1 << 20  # the size of Write and Read messages, as containerd uses
EMPTY_DIGEST = "sha256:" + hashlib.sha256(b"").hexdigest()
MAX_LABEL_BYTES = labels_.MAX_LABEL_BYTES
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


@dataclass(frozen=True, slots=True)
class Info:
    """A committed blob as its namespace sees it."""

    digest: str
    size: int
    created_at: datetime | None = None
    updated_at: datetime | None = None
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Status:
    """An ingest in progress (or left behind, resumable)."""

    ref: str
    offset: int
    total: int = 0
    expected: str = ""
    started_at: datetime | None = None
    updated_at: datetime | None = None


class Writer(Protocol):
    """One open ingest. Only one writer holds a ref at a time."""

    @property
    def ref(self) -> str: ...

    @property
    def offset(self) -> int:
        """Bytes written so far (the size of the ingest)."""
        ...

    @property
    def digest(self) -> str:
        """The digest of the bytes written so far."""
        ...

    async def status(self) -> Status: ...

    async def write(self, data: bytes) -> int:
        """Append ``data``; returns the new offset."""
        ...

    async def truncate(self, size: int) -> None:
        """Drop what was written; only ``size == 0`` is supported."""
        ...

    async def commit(
        self, size: int = 0, expected: str = "", labels: Mapping[str, str] | None = None
    ) -> str:
        """Verify (``size`` 0 and ``expected`` "" skip a check), publish, return the digest.

        FailedPrecondition on a size or digest mismatch (the ingest stays, and
        the writer is closed); AlreadyExists if the namespace already has the blob.
        """
        ...

    async def close(self) -> None:
        """Release the ref without committing; the ingest stays resumable."""
        ...


@runtime_checkable
class Provider(Protocol):
    async def info(self, digest: str) -> Info: ...

    def read(self, digest: str, offset: int = 0, size: int = 0) -> AsyncIterator[bytes]:
        """The blob's bytes from ``offset``; ``size <= 0`` reads to the end.

        Chunks are at most :data:`CHUNK` bytes. NotFound for an unknown blob,
        OutOfRange when ``offset`` is past the end.
        """
        ...


class Ingester(Protocol):
    async def writer(
        self,
        ref: str,
        total: int = 0,
        expected: str = "",
        labels: Mapping[str, str] | None = None,
    ) -> Writer:
        """Open (or resume) the ingest ``ref``.

        ``labels`` only matter when ``expected`` is already stored: the blob is
        then made visible with them and AlreadyExists is raised.
        """
        ...


class Manager(Protocol):
    async def update(self, info: Info, fieldpaths: Sequence[str] = ()) -> Info:
        """Change labels: paths ``labels`` or ``labels.<key>``; none replaces all."""
        ...

    def list(self, filters: Sequence[str] = ()) -> AsyncIterator[Info]: ...

    async def delete(self, digest: str) -> None: ...


class IngestManager(Protocol):
    async def status(self, ref: str) -> Status: ...

    async def list_statuses(self, filters: Sequence[str] = ()) -> list[Status]: ...

    async def abort(self, ref: str) -> None: ...


class Store(Provider, Ingester, Manager, IngestManager, Protocol):
    """All four roles: what the local store and the gRPC proxy implement."""


def validate_digest(digest: str) -> str:
    """InvalidArgument unless ``digest`` is ``sha256:`` and 64 lowercase hex digits."""
    if not _DIGEST.match(digest):
        raise errors.InvalidArgument(f"invalid digest {digest!r}")
    return digest


def validate_labels(labels: Mapping[str, str]) -> None:
    """containerd's label rule (see :mod:`seacan.labels`)."""
    labels_.validate(labels)


async def read_blob(provider: Provider, digest: str) -> bytes:
    """The whole blob, for small ones (manifests, configs, indexes)."""
    return b"".join([chunk async for chunk in provider.read(digest)])


async def open_writer(
    ingester: Ingester,
    ref: str,
    total: int = 0,
    expected: str = "",
    labels: Mapping[str, str] | None = None,
    *,
    wait: float = 60.0,
) -> Writer:
    """``ingester.writer``, retried with back-off while the ref is locked (as OpenWriter does)."""
    delay = 0.01
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    while True:
        try:
            return await ingester.writer(ref, total, expected, labels)
        except errors.Unavailable:
            if loop.time() + delay > deadline:
                raise
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)


async def _chunks(data: bytes | AsyncIterable[bytes], start: int = 0) -> AsyncIterator[bytes]:
    if isinstance(data, bytes):
        view = memoryview(data)
        for i in range(start, len(view), CHUNK):
            yield bytes(view[i : i + CHUNK])
        return
    async for chunk in data:
        yield chunk


async def write_blob(
    ingester: Ingester,
    ref: str,
    data: bytes | AsyncIterable[bytes],
    *,
    expected: str = "",
    total: int = 0,
    labels: Mapping[str, str] | None = None,
    media_type: str = "",
) -> Descriptor:
    """Write ``data`` as one blob and commit it; AlreadyExists counts as success.

    A leftover ingest under ``ref`` is resumed when ``data`` is ``bytes`` (and
    rewritten from the start if the leftover turns out not to match);
    otherwise it is truncated first. ``total`` defaults to ``len(data)``.
    """
    if isinstance(data, bytes) and not total:
        total = len(data)
    for attempt in range(2):
        try:
            w = await open_writer(ingester, ref, total, expected, labels)
        except errors.AlreadyExists:
            if not expected:
                raise
            size = total
            if not size and isinstance(ingester, Provider):
                size = (await ingester.info(expected)).size
            return Descriptor(media_type=media_type, digest=expected, size=size, annotations={})
        resumed = attempt == 0 and isinstance(data, bytes) and 0 < w.offset <= len(data)
        try:
            start = w.offset if resumed else 0
            if w.offset and not resumed:
                await w.truncate(0)
            async for chunk in _chunks(data, start):
                if chunk:
                    await w.write(chunk)
            size = w.offset
            try:
                digest = await w.commit(total, expected, labels)
            except errors.AlreadyExists:
                digest = w.digest
            return Descriptor(media_type=media_type, digest=digest, size=size, annotations={})
        except errors.FailedPrecondition:
            if not resumed:
                raise
            # The leftover ingest held other bytes: start over from zero, once.
        finally:
            await w.close()
    raise AssertionError("unreachable")


__all__ = [
    "CHUNK",
    "EMPTY_DIGEST",
    "MAX_LABEL_BYTES",
    "Info",
    "IngestManager",
    "Ingester",
    "Manager",
    "Provider",
    "Status",
    "Store",
    "Writer",
    "open_writer",
    "read_blob",
    "validate_digest",
    "validate_labels",
    "write_blob",
]
