"""The local content store: blobs on disk, visibility per namespace.

Layout under the service root (``cfg.service_root("content")``)::

    blobs/sha256/<hex>          committed blobs, read-only (0444), shared by all namespaces
    ingest/<sha256(key)>/       one resumable ingest; key = "<namespace>/<ref>"
        ref                     the key
        data                    the bytes so far
        startedat, updatedat    ISO 8601 timestamps
        total                   the expected size, when known
    meta.db                     which namespace sees which blob (db.py)

A commit fsyncs the data, verifies size and digest, makes the file read-only
and renames it into ``blobs/`` (then fsyncs the directory) before the
namespace's record is written, so nothing half-written is ever visible.
Deleting a blob drops the namespace's record and unlinks the file once no
namespace sees it. Leases and namespaces live in the metadata service; the
store reaches them through :class:`Hooks`.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import errno
import hashlib
import os
import shutil
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from seacan import errors, log, scope
from seacan import filters as _filters
from seacan.content import (
    CHUNK,
    Info,
    Status,
    validate_digest,
    validate_labels,
)
from seacan.metaclient import Hooks, NoHooks

from .db import ContentDB

_log = log.get(__name__)
T = TypeVar("T")

# Chunks at least this big are written, hashed and read in a worker thread:
# hashlib and file I/O release the GIL, so concurrent streams use both cores.
_THREAD_MIN = 256 << 10
_TMP_MARK = ".tmp"


@dataclass(frozen=True, slots=True)
class Damage:
    """A blob that :func:`verify` found wrong."""

    digest: str
    reason: str


def _now() -> datetime:
    return datetime.now(UTC)


@contextlib.contextmanager
def _os_errors(what: str) -> Iterator[None]:
    """OSError as an error kind: a full disk is ResourceExhausted, the rest Internal."""
    try:
        yield
    except OSError as e:
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise errors.ResourceExhausted(f"{what}: no space left on device") from e
        raise errors.Internal(f"{what}: {e}") from e


async def _maybe_thread(big: bool, fn: Callable[..., T], *args: object) -> T:
    """``fn(*args)``, in a worker thread when ``big``.

    A cancelled caller still waits for the thread to finish: it may be using
    a file descriptor that the caller's cleanup is about to close.
    """
    if not big:
        return fn(*args)
    fut = asyncio.get_running_loop().run_in_executor(None, fn, *args)
    try:
        return await asyncio.shield(fut)
    except asyncio.CancelledError:
        await asyncio.wait([fut])
        raise


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text()
    except (FileNotFoundError, NotADirectoryError):
        return None


def _read_time(path: Path) -> datetime | None:
    text = _read_text(path)
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.strip())
    except ValueError:
        return None


def _hash_file(path: Path, *, missing_ok: bool = False) -> tuple[hashlib._Hash, int]:
    h = hashlib.sha256()
    n = 0
    try:
        f = path.open("rb")
    except FileNotFoundError:
        if missing_ok:
            return h, n
        raise
    with f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
            n += len(chunk)
    return h, n


def recover(root: Path) -> None:
    """Startup cleanup: drop partial blob files; keep every usable ingest (resumable)."""
    blobs, ingest = root / "blobs" / "sha256", root / "ingest"
    with _os_errors(f"content store {root}"):
        blobs.mkdir(parents=True, exist_ok=True)
        ingest.mkdir(parents=True, exist_ok=True)
        for p in blobs.iterdir():
            if _TMP_MARK in p.name:
                _log.warning("content.partial_blob_removed", path=str(p))
                p.unlink(missing_ok=True)
        for d in ingest.iterdir():
            key = _read_text(d / "ref")
            if not key or d.name != hashlib.sha256(key.encode()).hexdigest():
                _log.warning("content.broken_ingest_removed", path=str(d))
                shutil.rmtree(d, ignore_errors=True)


def verify(root: Path) -> list[Damage]:
    """Re-hash every blob under ``root``; the ones whose bytes do not match their name."""
    bad: list[Damage] = []
    blobs = root / "blobs" / "sha256"
    if not blobs.is_dir():
        return bad
    for p in sorted(blobs.iterdir()):
        digest = "sha256:" + p.name
        try:
            validate_digest(digest)
        except errors.InvalidArgument:
            bad.append(Damage(digest, "not a blob name"))
            continue
        try:
            h, _ = _hash_file(p)
        except OSError as e:
            bad.append(Damage(digest, f"unreadable: {e.strerror}"))
            continue
        actual = "sha256:" + h.hexdigest()
        if actual != digest:
            bad.append(Damage(digest, f"digest mismatch: content hashes to {actual}"))
    return bad


class LocalWriter:
    """An open ingest: the data file's descriptor, the running digest, the ref lock."""

    def __init__(
        self,
        store: ContentStore,
        namespace: str,
        ref: str,
        path: Path,
        *,
        fd: int,
        hasher: hashlib._Hash,
        offset: int,
        total: int,
        expected: str,
        started_at: datetime,
        updated_at: datetime,
    ) -> None:
        self._store = store
        self._ns = namespace
        self._ref = ref
        self._path = path
        self._fd: int | None = fd
        self._hasher = hasher
        self._offset = offset
        self._total = total
        self._expected = expected
        self._started_at = started_at
        self._updated_at = updated_at

    @property
    def ref(self) -> str:
        return self._ref

    @property
    def offset(self) -> int:
        return self._offset

    @property
    def total(self) -> int:
        return self._total

    @property
    def expected(self) -> str:
        return self._expected

    @property
    def started_at(self) -> datetime:
        return self._started_at

    @property
    def updated_at(self) -> datetime:
        return self._updated_at

    @property
    def digest(self) -> str:
        return "sha256:" + self._hasher.hexdigest()

    async def status(self) -> Status:
        return Status(
            ref=self._ref,
            offset=self._offset,
            total=self._total,
            expected=self._expected,
            started_at=self._started_at,
            updated_at=self._updated_at,
        )

    def _open_fd(self) -> int:
        if self._fd is None:
            raise errors.FailedPrecondition(f"writer for ref {self._ref} is closed")
        return self._fd

    async def set_total(self, total: int) -> None:
        """The size the client announced (it may come in any message)."""
        if total <= 0 or total == self._total:
            return
        self._store.check_total(self._ref, total)
        self._total = total
        with _os_errors(f"ingest {self._ref}"):
            (self._path / "total").write_text(str(total))

    async def set_expected(self, expected: str, labels: Mapping[str, str] | None = None) -> None:
        """The digest the client announced; AlreadyExists (and the ingest is gone) if stored."""
        validate_digest(expected)
        self._expected = expected
        if await self._store.adopt(self._ns, expected, labels or {}):
            self._release(remove=True)
            raise errors.AlreadyExists(f"content {expected}: already exists")

    async def write(self, data: bytes) -> int:
        fd = self._open_fd()
        end = self._offset + len(data)
        self._store.check_size(self._ref, end)
        with _os_errors(f"ingest {self._ref}: write"):
            await _maybe_thread(len(data) >= _THREAD_MIN, self._append, fd, data)
        self._offset = end
        self._updated_at = _now()
        return end

    def _append(self, fd: int, data: bytes) -> None:
        _write_all(fd, data)
        self._hasher.update(data)

    async def truncate(self, size: int) -> None:
        fd = self._open_fd()
        if size != 0:
            raise errors.InvalidArgument(f"ingest {self._ref}: truncate only supports size 0")
        with _os_errors(f"ingest {self._ref}: truncate"):
            os.ftruncate(fd, 0)
        self._hasher = hashlib.sha256()
        self._offset = 0
        self._updated_at = _now()

    async def commit(
        self, size: int = 0, expected: str = "", labels: Mapping[str, str] | None = None
    ) -> str:
        fd = self._open_fd()
        if expected:
            validate_digest(expected)
        labels = dict(labels or {})
        validate_labels(labels)
        self._fd = None  # a commit closes the writer whatever its outcome
        published = False
        try:
            with _os_errors(f"ingest {self._ref}: sync"):
                await asyncio.to_thread(_sync_close, fd)
            if size > 0 and size != self._offset:
                raise errors.FailedPrecondition(
                    f"unexpected commit size {self._offset}, expected {size}"
                )
            digest = self.digest
            if expected and expected != digest:
                raise errors.FailedPrecondition(
                    f"unexpected commit digest {digest}, expected {expected}"
                )
            try:
                await self._store.publish(self._ns, self._path, digest, self._offset, labels)
            except errors.AlreadyExists:
                published = True  # the namespace had it: the ingest is done with too
                raise
            published = True
            return digest
        finally:
            self._release(remove=published)

    async def close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            with contextlib.suppress(OSError):
                os.close(fd)
                (self._path / "updatedat").write_text(self._updated_at.isoformat())
        self._release(remove=False)

    def abandon(self, *, remove: bool) -> None:
        """Close without writing anything more; ``remove`` deletes the ingest too."""
        self._release(remove=remove)

    def _release(self, *, remove: bool) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None
        if remove:
            shutil.rmtree(self._path, ignore_errors=True)
        self._store.unlock(self._ns, self._ref, self)


def _sync_close(fd: int) -> None:
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class ContentStore:
    """Provider, Ingester, Manager and IngestManager over one directory.

    Open it with :meth:`open`. Every call works in the request's namespace
    (``scope.namespace_required()``); under a lease, committed and adopted
    blobs are added to the lease through ``hooks``.
    """

    def __init__(self, root: Path, db: ContentDB, hooks: Hooks, *, max_blob_bytes: int) -> None:
        self._root = root
        self._blobs = root / "blobs" / "sha256"
        self._ingest = root / "ingest"
        self._db = db
        self._hooks = hooks
        self._max = max_blob_bytes
        # (namespace, ref) -> its open writer; None while the ingest is being opened.
        self._active: dict[tuple[str, str], LocalWriter | None] = {}
        # Held while a blob file and its records change together (publish,
        # adopt, delete), so a delete never unlinks a file being published.
        self._blob_lock = asyncio.Lock()

    @classmethod
    def open(
        cls, root: Path, hooks: Hooks | None = None, *, max_blob_bytes: int = 64 << 30
    ) -> ContentStore:
        """Recover ``root`` after a crash and open its database."""
        recover(root)
        db = ContentDB(root / "meta.db")
        return cls(root, db, hooks or NoHooks(), max_blob_bytes=max_blob_bytes)

    def close(self) -> None:
        for w in builtins.list(self._active.values()):
            if w is not None:
                w.abandon(remove=False)
        self._db.close()

    @property
    def root(self) -> Path:
        return self._root

    # -- paths and limits

    def blob_path(self, digest: str) -> Path:
        return self._blobs / validate_digest(digest).removeprefix("sha256:")

    def _ingest_path(self, key: str) -> Path:
        return self._ingest / hashlib.sha256(key.encode()).hexdigest()

    def check_total(self, ref: str, total: int) -> None:
        if total > self._max:
            raise errors.InvalidArgument(
                f"ingest {ref}: total size {total} exceeds the maximum blob size {self._max}"
            )

    def check_size(self, ref: str, size: int) -> None:
        if size > self._max:
            raise errors.ResourceExhausted(
                f"ingest {ref}: {size} bytes exceed the maximum blob size {self._max}"
            )

    def _visible(self, ns: str, digest: str) -> Info:
        info = self._db.get(ns, validate_digest(digest))
        if info is None:
            raise errors.NotFound(f"content digest {digest} not found")
        return info

    # -- Provider

    async def info(self, digest: str) -> Info:
        return self._visible(scope.namespace_required(), digest)

    async def read(self, digest: str, offset: int = 0, size: int = 0) -> AsyncIterator[bytes]:
        info = self._visible(scope.namespace_required(), digest)
        if offset < 0:
            raise errors.InvalidArgument(f"read of {digest}: negative offset {offset}")
        if offset > info.size:
            raise errors.OutOfRange(
                f"read of {digest}: offset {offset} is beyond the size {info.size}"
            )
        end = info.size if size <= 0 else min(info.size, offset + size)
        try:
            f = self.blob_path(digest).open("rb", buffering=0)
        except FileNotFoundError:
            raise errors.NotFound(f"content digest {digest} not found") from None
        except OSError as e:
            raise errors.Internal(f"read of {digest}: {e}") from e
        with f:
            f.seek(offset)
            pos = offset
            while pos < end:
                n = min(CHUNK, end - pos)
                with _os_errors(f"read of {digest}"):
                    data = await _maybe_thread(n >= _THREAD_MIN, f.read, n)
                if not data:
                    break
                pos += len(data)
                yield data

    # -- Ingester

    async def writer(
        self,
        ref: str,
        total: int = 0,
        expected: str = "",
        labels: Mapping[str, str] | None = None,
    ) -> LocalWriter:
        ns = scope.namespace_required()
        if not ref:
            raise errors.InvalidArgument("ref must not be empty")
        if expected:
            validate_digest(expected)
        self.check_total(ref, total)
        validate_labels(labels or {})
        await self._hooks.ensure_namespace(ns)
        if expected and await self.adopt(ns, expected, labels or {}):
            raise errors.AlreadyExists(f"content {expected}: already exists")
        if (ns, ref) in self._active:
            raise errors.Unavailable(f"ref {ref} locked")
        self._active[(ns, ref)] = None
        try:
            w = await self._open_ingest(ns, ref, total, expected)
        except BaseException:
            del self._active[(ns, ref)]
            raise
        self._active[(ns, ref)] = w
        return w

    async def _open_ingest(self, ns: str, ref: str, total: int, expected: str) -> LocalWriter:
        key = f"{ns}/{ref}"
        path = self._ingest_path(key)
        data = path / "data"
        with _os_errors(f"ingest {ref}"):
            resumed = self._resumable(path, key)
            if resumed is None:
                shutil.rmtree(path, ignore_errors=True)
                path.mkdir(parents=True)
                started_at = updated_at = _now()
                (path / "startedat").write_text(started_at.isoformat())
                (path / "updatedat").write_text(started_at.isoformat())
                if total > 0:
                    (path / "total").write_text(str(total))
                (path / "ref").write_text(key)  # last: a dir with a ref is a complete ingest
                hasher, offset = hashlib.sha256(), 0
            else:
                started_at, updated_at, old_total = resumed
                if total > 0 and total != old_total:
                    (path / "total").write_text(str(total))
                total = total or old_total
                # Resuming re-hashes what is there (the thread opens its own file).
                hasher, offset = await asyncio.to_thread(_hash_file, data, missing_ok=True)
                _log.info("content.ingest_resumed", ref=ref, namespace=ns, offset=offset)
            fd = os.open(data, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
        return LocalWriter(
            self,
            ns,
            ref,
            path,
            fd=fd,
            hasher=hasher,
            offset=offset,
            total=total,
            expected=expected,
            started_at=started_at,
            updated_at=updated_at,
        )

    @staticmethod
    def _resumable(path: Path, key: str) -> tuple[datetime, datetime, int] | None:
        """An existing ingest's (started_at, updated_at, total), or None to start afresh."""
        if _read_text(path / "ref") != key:
            return None
        started_at = _read_time(path / "startedat")
        if started_at is None:
            return None
        try:
            total = int(_read_text(path / "total") or 0)
        except ValueError:
            total = 0
        return started_at, _read_time(path / "updatedat") or started_at, total

    def unlock(self, ns: str, ref: str, w: LocalWriter) -> None:
        if self._active.get((ns, ref)) is w:
            del self._active[(ns, ref)]

    async def adopt(self, ns: str, digest: str, labels: Mapping[str, str]) -> bool:
        """If ``digest`` is on disk (any namespace), make it visible in ``ns``; whether it was."""
        path = self.blob_path(digest)
        if not path.exists():
            return False
        lease = scope.lease()
        if lease:
            await self._hooks.add_lease_resource(lease, digest, "content")
        async with self._blob_lock:
            try:
                size = path.stat().st_size
            except FileNotFoundError:
                return False  # deleted meanwhile: the caller writes it again
            if self._db.add(ns, digest, size, labels, _now()):
                _log.info("content.adopted", digest=digest, namespace=ns)
        return True

    async def publish(
        self, ns: str, ingest: Path, digest: str, size: int, labels: Mapping[str, str]
    ) -> None:
        """Move a verified ingest into ``blobs/`` and record it; AlreadyExists if ``ns`` had it."""
        lease = scope.lease()
        if lease:  # before the blob is visible, so GC never sees it unreferenced
            await self._hooks.add_lease_resource(lease, digest, "content")
        target = self.blob_path(digest)
        async with self._blob_lock:
            with _os_errors(f"commit of {digest}"):
                if not target.exists():
                    os.rename(ingest / "data", target)
                    os.chmod(target, 0o444)
                    await asyncio.to_thread(_fsync_dir, self._blobs)
            added = self._db.add(ns, digest, size, labels, _now())
        if not added:
            raise errors.AlreadyExists(f"content {digest}: already exists")
        _log.info("content.committed", digest=digest, size=size, namespace=ns)

    # -- Manager

    async def update(self, info: Info, fieldpaths: Sequence[str] = ()) -> Info:
        ns = scope.namespace_required()
        current = self._visible(ns, info.digest)
        labels = dict(current.labels)
        if not fieldpaths:
            labels = dict(info.labels)
        for path in fieldpaths:
            if path == "labels":
                labels = dict(info.labels)
            elif path.startswith("labels."):
                key = path.split(".", 1)[1]
                value = info.labels.get(key, "")
                if value:
                    labels[key] = value
                else:
                    labels.pop(key, None)
            else:
                raise errors.InvalidArgument(
                    f"cannot update {path!r} field on content info {info.digest!r}"
                )
        labels = {k: v for k, v in labels.items() if v}
        validate_labels(labels)
        updated = self._db.set_labels(ns, info.digest, labels, _now())
        if updated is None:
            raise errors.NotFound(f"content digest {info.digest} not found")
        return updated

    async def list(self, filters: Sequence[str] = ()) -> AsyncIterator[Info]:
        ns = scope.namespace_required()
        flt = _filters.parse(filters)
        for info in self._db.list(ns):
            fields = {"digest": info.digest, "size": str(info.size)}
            if flt.match(_filters.lookup_from(fields, info.labels)):
                yield info

    async def delete(self, digest: str) -> None:
        ns = scope.namespace_required()
        validate_digest(digest)
        async with self._blob_lock:
            if not self._db.remove(ns, digest):
                raise errors.NotFound(f"content digest {digest} not found")
            if not self._db.referenced(digest):
                with _os_errors(f"delete of {digest}"):
                    self.blob_path(digest).unlink(missing_ok=True)
        _log.info("content.deleted", digest=digest, namespace=ns)

    # -- IngestManager

    async def status(self, ref: str) -> Status:
        ns = scope.namespace_required()
        st = self._status(ns, ref)
        if st is None:
            raise errors.NotFound(f"ingest {ref} not found")
        return st

    def _status(self, ns: str, ref: str) -> Status | None:
        w = self._active.get((ns, ref))
        if w is not None:
            return Status(
                ref=ref,
                offset=w.offset,
                total=w.total,
                expected=w.expected,
                started_at=w.started_at,
                updated_at=w.updated_at,
            )
        path = self._ingest_path(f"{ns}/{ref}")
        found = self._resumable(path, f"{ns}/{ref}")
        if found is None:
            return None
        started_at, updated_at, total = found
        try:
            offset = (path / "data").stat().st_size
        except FileNotFoundError:
            offset = 0
        return Status(ref, offset, total, "", started_at, updated_at)

    async def list_statuses(self, filters: Sequence[str] = ()) -> builtins.list[Status]:
        ns = scope.namespace_required()
        flt = _filters.parse(filters)
        prefix = ns + "/"
        out: builtins.list[Status] = []
        with _os_errors("list of ingests"):
            dirs = sorted(self._ingest.iterdir())
        for d in dirs:
            key = _read_text(d / "ref")
            if not key or not key.startswith(prefix):
                continue
            ref = key.removeprefix(prefix)
            st = self._status(ns, ref)
            if st is not None and flt.match(_filters.lookup_from({"ref": ref}, {})):
                out.append(st)
        return out

    async def abort(self, ref: str) -> None:
        ns = scope.namespace_required()
        if (ns, ref) in self._active:
            raise errors.Unavailable(f"ref {ref} locked")
        path = self._ingest_path(f"{ns}/{ref}")
        if _read_text(path / "ref") != f"{ns}/{ref}":
            raise errors.NotFound(f"ingest {ref} not found")
        with _os_errors(f"abort of {ref}"):
            shutil.rmtree(path)
        _log.info("content.aborted", ref=ref, namespace=ns)

    # -- checks

    async def verify(self) -> builtins.list[Damage]:
        """Blobs whose bytes do not match their digest, and records without a blob."""
        bad = await asyncio.to_thread(verify, self._root)
        for digest in sorted(self._db.digests()):
            if not self.blob_path(digest).exists():
                bad.append(Damage(digest, "recorded but missing from blobs/"))
        return bad
