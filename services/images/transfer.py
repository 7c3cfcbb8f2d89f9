"""Transfer: pull images from registries into seacand, and push them back.

Pull, under a lease (``containerd.io/gc.expire`` = now + 1h) so the garbage
collector cannot race it::

    1. resolve the reference (HEAD of the manifest) -> the target descriptor;
    2. the index (if any) and the manifest for the platform, then the config:
       fetched (or read from the content store when present), verified and
       stored with containerd's labels: ``containerd.io/gc.ref.content.m.<i>``
       on an index, ``...config`` and ``...l.<i>`` on a manifest, and
       ``containerd.io/distribution.source.<domain>=<repo>`` on every blob;
    3. the layers: up to :data:`CONCURRENCY` downloads at a time into the
       content store (ingest ref ``layer-<digest>``, resumed after a crash),
       while the unpacker applies them bottom up. A layer whose parent is
       already applied when its download starts is *streamed*: each chunk
       goes to the content ingest and to the tar extractor at once, so
       downloading and unpacking overlap. Others are applied from the store
       as soon as they and every layer below them are there. Every blob is
       verified twice (by the registry client and by the content store's
       commit), every layer's uncompressed digest against the config;
    4. only then the image record is created (or its target updated).

Any failure before 4 leaves no image record and no committed bad blob (a
blob whose bytes were complete but wrong is aborted; a partial download
stays as a resumable ingest). Snapshots committed for the layers below stay
under the lease until it expires, as with containerd.

Push walks the image (the index and all its manifests when every one is
present, else the manifest for the platform), asks the registry for each
blob (HEAD), mounts it from another repository of the same registry when a
``containerd.io/distribution.source.<domain>`` label names one, uploads the
rest (:data:`CONCURRENCY` at a time), then the manifests bottom up, then the
tag.

Progress goes to the caller as :class:`seacan.transfer.Progress` events.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from seacan import content, errors, leases, log, oci, scope
from seacan.content.proxy import RemoteContent
from seacan.diff import Applier as ApplierProtocol
from seacan.distribution import reference
from seacan.distribution.auth import Credentials
from seacan.distribution.registry import Registry
from seacan.images import Image, ImageStore, archive
from seacan.images import unpack as unpacker
from seacan.leases.proxy import RemoteLeases
from seacan.mount import with_temp_mount
from seacan.snapshots import Mount, Snapshotter
from seacan.transfer import Kind, Progress, PullRequest, PushRequest, RegistryOptions

from . import bridge
from .apply import Target, extract, plan_target

_log = log.get(__name__)

CONCURRENCY = 3  # blobs in flight at a time, as containerd's default
LEASE_TTL = timedelta(hours=1)
LABEL_SOURCE = "containerd.io/distribution.source."
LABEL_UNCOMPRESSED = unpacker.LABEL_UNCOMPRESSED
MAX_JSON = unpacker.MAX_JSON
WRITE_CHUNK = content.CHUNK  # bytes per content Write message
REPORT_EVERY = 0.2  # seconds between DOWNLOADING/UPLOADING events of one blob

Emit = Callable[[Progress], None]


async def _events(work: Callable[[Emit], Awaitable[None]]) -> AsyncIterator[Progress]:
    """Run ``work(emit)`` as a task and yield what it emits; its error is raised last."""
    queue: asyncio.Queue[Progress | None] = asyncio.Queue()

    async def main() -> None:
        try:
            await work(queue.put_nowait)
        finally:
            queue.put_nowait(None)

    task = asyncio.create_task(main(), name="transfer")
    try:
        while (p := await queue.get()) is not None:
            yield p
        await task
    finally:
        if not task.done():
            await bridge.stop(task)


def _first(eg: BaseExceptionGroup[Any]) -> BaseException:
    """The first error of a task group (its siblings were cancelled because of it)."""
    e: BaseException = eg
    while isinstance(e, BaseExceptionGroup):
        e = e.exceptions[0]
    return e


@contextlib.asynccontextmanager
async def _tasks() -> AsyncIterator[asyncio.TaskGroup]:
    """A TaskGroup that raises its first error as it is, not wrapped in a group."""
    try:
        async with asyncio.TaskGroup() as tg:
            yield tg
    except BaseExceptionGroup as eg:
        raise _first(eg) from None


class _Meter:
    """Emits progress of one blob, at most every :data:`REPORT_EVERY` seconds."""

    def __init__(self, emit: Emit, kind: Kind, desc: oci.Descriptor, start: int = 0) -> None:
        self._emit = emit
        self._kind = kind
        self._desc = desc
        self.current = start
        self._last = 0.0

    def add(self, n: int) -> None:
        self.current += n
        now = time.monotonic()
        if now - self._last >= REPORT_EVERY:
            self._last = now
            self._emit(
                Progress(
                    self._kind,
                    self._desc.digest,
                    self._desc.media_type,
                    self.current,
                    self._desc.size,
                )
            )


def _ref_key(desc: oci.Descriptor) -> str:
    """containerd's ``remotes.MakeRefKey``: the ingest ref for a blob."""
    if desc.media_type in oci.MANIFEST_TYPES or desc.media_type in oci.INDEX_TYPES:
        kind = "manifest"
    elif desc.media_type in oci.CONFIG_TYPES:
        kind = "config"
    elif oci.is_layer(desc.media_type):
        kind = "layer"
    else:
        kind = "unknown"
    return f"{kind}-{desc.digest}"


def _registry(host: str, opts: RegistryOptions, certs_dir: Path) -> Registry:
    creds = dict(opts.credentials)

    def lookup(h: str) -> Credentials | None:
        return creds.get(h) or creds.get(reference.registry_host(h))

    return Registry(
        host,
        credentials=lookup,
        certs_dir=certs_dir,
        insecure=(host,) if opts.insecure else (),
        plain_http=opts.plain_http,
    )


@dataclasses.dataclass(eq=False)
class _Job:
    """One layer of a pull: its blob, its place, and who fetches it."""

    index: int
    layer: unpacker.Layer
    claimed: bool = False  # a downloader or the streaming unpacker took it
    stored: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)


class Transferer:
    """Pull and push (:class:`seacan.transfer.Transfer`) inside the images service."""

    def __init__(
        self,
        store: RemoteContent,
        snapshotter: Callable[[str], Snapshotter],
        images: ImageStore,
        lease_manager: RemoteLeases,
        applier: ApplierProtocol,
        *,
        max_layer_bytes: int,
        certs_dir: Path,
    ) -> None:
        self.content = store
        self.snapshotter = snapshotter
        self.images = images
        self.leases = lease_manager
        self.applier = applier
        self.max_layer_bytes = max_layer_bytes
        self.certs_dir = certs_dir

    def pull(self, request: PullRequest) -> AsyncIterator[Progress]:
        return _events(lambda emit: self._pull(request, emit))

    def push(self, request: PushRequest) -> AsyncIterator[Progress]:
        return _events(lambda emit: self._push(request, emit))

    async def login(self, host: str, registry: RegistryOptions) -> None:
        """``GET /v2/`` with the credentials, from here (this daemon's certs.d counts)."""
        async with _registry(reference.registry_host(host), registry, self.certs_dir) as reg:
            await reg.ping()

    # --- pull ---------------------------------------------------------------------

    async def _pull(self, req: PullRequest, emit: Emit) -> None:
        ref = reference.parse(req.ref)
        name = str(ref)
        ns = scope.namespace_required()
        host = reference.registry_host(ref.domain)
        emit(Progress(Kind.RESOLVING, name=name))
        async with _registry(host, req.registry, self.certs_dir) as reg:
            target = await reg.resolve(ref)
            emit(
                Progress(Kind.RESOLVED, target.digest, target.media_type, 0, target.size, name=name)
            )
            try:
                before = (await self.images.get(name)).target.digest
            except errors.NotFound:
                before = ""
            lease = await self.leases.create(leases.random_id(), leases.expire_in(LEASE_TTL))
            scope.set_scope(ns, lease.id)
            started = time.monotonic()
            try:
                puller = _Puller(self, reg, ref, req, emit)
                await puller.run(target)
                image = Image(name=name, labels=dict(req.labels), target=target)
                try:
                    await self.images.create(image)
                except errors.AlreadyExists:
                    await self.images.update(image, ["target"])
            finally:
                scope.set_scope(ns, "")
                try:
                    await self.leases.delete(lease.id)
                except errors.SeacanError as e:
                    _log.warning("transfer.lease_delete_failed", lease=lease.id, error=str(e))
        _log.info(
            "transfer.pulled",
            name=name,
            digest=target.digest,
            seconds=round(time.monotonic() - started, 3),
        )
        if before == target.digest:
            message = f"Image is up to date for {name}"
        else:
            message = f"Downloaded newer image for {name}"
        emit(Progress(Kind.DONE, name=name, image_digest=target.digest, message=message))

    # --- push ---------------------------------------------------------------------

    async def _push(self, req: PushRequest, emit: Emit) -> None:
        ref = reference.parse(req.ref)
        source = str(reference.parse(req.source)) if req.source else str(ref)
        image = await self.images.get(source)
        host = reference.registry_host(ref.domain)
        emit(Progress(Kind.RESOLVING, name=str(ref)))
        async with _registry(host, req.registry, self.certs_dir) as reg:
            pusher = _Pusher(self, reg, ref, emit)
            top = await pusher.run(image.target, req.platform or oci.host_platform())
        emit(
            Progress(
                Kind.DONE,
                top.digest,
                top.media_type,
                top.size,
                top.size,
                name=str(ref),
                image_digest=top.digest,
                message=f"{ref.object}: digest: {top.digest} size: {top.size}",
            )
        )


class _Puller:
    def __init__(
        self, t: Transferer, reg: Registry, ref: reference.Reference, req: PullRequest, emit: Emit
    ) -> None:
        self.t = t
        self.reg = reg
        self.ref = ref
        self.repo = ref.path
        self.req = req
        self.emit = emit
        self.platform = req.platform or oci.host_platform()
        self.source = {LABEL_SOURCE + ref.domain: ref.path}
        self.sem = asyncio.Semaphore(CONCURRENCY)
        self.sn = t.snapshotter(req.snapshotter)

    async def run(self, target: oci.Descriptor) -> None:
        mdesc, manifest = await self._manifest(target, depth=0)
        config_desc = manifest.config
        if config_desc.media_type not in oci.CONFIG_TYPES:
            raise errors.InvalidArgument(
                f"manifest {mdesc.digest}: config media type {config_desc.media_type!r} "
                "is not an image config"
            )
        config = oci.parse_config(
            await self._json(config_desc, "image config"), f"image config {config_desc.digest}"
        )
        layers = list(manifest.layers)
        for d in layers:
            if not oci.is_layer(d.media_type):
                raise errors.InvalidArgument(
                    f"manifest {mdesc.digest}: layer {d.digest} has media type "
                    f"{d.media_type!r}, which cannot be unpacked"
                )
        if len(layers) != len(config.diff_ids):
            raise errors.InvalidArgument(
                f"manifest {mdesc.digest} has {len(layers)} layers but its config "
                f"{config_desc.digest} lists {len(config.diff_ids)} diff IDs"
            )
        chains = oci.chain_ids(config.diff_ids)
        jobs = [
            _Job(i, unpacker.Layer(blob, diff, chain))
            for i, (blob, diff, chain) in enumerate(
                zip(layers, config.diff_ids, chains, strict=True)
            )
        ]
        await self._layers(jobs)
        if self.req.unpack and chains:
            key = unpacker.LABEL_SNAPSHOT_REF + self.req.snapshotter
            await self.t.content.update(
                content.Info(config_desc.digest, config_desc.size, labels={key: chains[-1]}),
                ["labels." + key],
            )

    # -- manifests and config

    async def _json(
        self, desc: oci.Descriptor, what: str, labels: Mapping[str, str] | None = None
    ) -> bytes:
        """A small blob (index, manifest, config): from the store, else fetched and stored."""
        if desc.size > MAX_JSON:
            raise errors.InvalidArgument(
                f"{what} {desc.digest} is {desc.size} bytes, over {MAX_JSON}"
            )
        all_labels = {**self.source, **(labels or {})}
        data = await self._stored(desc)
        if data is not None:
            self.emit(Progress(Kind.EXISTS, desc.digest, desc.media_type, desc.size, desc.size))
        else:
            self.emit(Progress(Kind.DOWNLOADING, desc.digest, desc.media_type, 0, desc.size))
            if desc.media_type in oci.MANIFEST_TYPES or desc.media_type in oci.INDEX_TYPES:
                data = await self.reg.fetch_manifest(self.repo, desc)
            else:
                data = b"".join([c async for c in self.reg.fetch_blob(self.repo, desc)])
            if len(data) != desc.size or oci.digest_of(data) != desc.digest:
                raise errors.FailedPrecondition(
                    f"{what} {desc.digest}: the registry sent {len(data)} bytes "
                    f"with digest {oci.digest_of(data)}"
                )
            await content.write_blob(
                self.t.content,
                _ref_key(desc),
                data,
                expected=desc.digest,
                labels=all_labels,
                media_type=desc.media_type,
            )
            self.emit(Progress(Kind.DOWNLOADED, desc.digest, desc.media_type, desc.size, desc.size))
        await self.t.content.update(
            content.Info(desc.digest, desc.size, labels=all_labels),
            ["labels." + k for k in all_labels],
        )
        return data

    async def _stored(self, desc: oci.Descriptor) -> bytes | None:
        try:
            await self.t.content.info(desc.digest)
            return await content.read_blob(self.t.content, desc.digest)
        except errors.NotFound:
            return None

    async def _manifest(
        self, desc: oci.Descriptor, depth: int
    ) -> tuple[oci.Descriptor, oci.Manifest]:
        if desc.media_type in oci.MANIFEST_TYPES:
            data = await self._json(desc, "manifest")
            manifest = oci.parse_manifest(data, f"manifest {desc.digest}")
            await self._label(desc, [manifest.config, *manifest.layers])
            return desc, manifest
        if desc.media_type not in oci.INDEX_TYPES:
            raise errors.InvalidArgument(
                f"{self.ref}: media type {desc.media_type!r} is not an image index or manifest"
            )
        if depth > 4:
            raise errors.InvalidArgument(f"index {desc.digest}: indexes nested too deep")
        index = oci.parse_index(await self._json(desc, "index"), f"index {desc.digest}")
        await self._label(desc, index.manifests)
        chosen = self._pick(index)
        if chosen is None:
            have = sorted(
                {str(oci.normalize_platform(d.platform)) for d in index.manifests if d.platform}
            )
            raise errors.NotFound(
                f"{self.ref}: no manifest for {self.platform} in index {desc.digest} "
                f"(platforms: {', '.join(have) or 'none'})"
            )
        return await self._manifest(chosen, depth + 1)

    def _pick(self, index: oci.Index) -> oci.Descriptor | None:
        """The entry for the platform: an exact variant first, then the first match."""
        best: tuple[int, int, oci.Descriptor] | None = None
        for i, d in enumerate(index.manifests):
            if d.media_type not in oci.MANIFEST_TYPES and d.media_type not in oci.INDEX_TYPES:
                continue
            if d.platform is None:
                rank = 2  # says nothing: take it only if nothing else fits
            elif "unknown" in (d.platform.os, d.platform.architecture):
                continue
            elif oci.platform_matches(self.platform, d.platform):
                w = oci.normalize_platform(self.platform)
                rank = 0 if oci.normalize_platform(d.platform).variant == w.variant else 1
            else:
                continue
            if best is None or (rank, i) < best[:2]:
                best = (rank, i, d)
        return best[2] if best else None

    async def _label(self, desc: oci.Descriptor, children: Any) -> None:
        labels = archive.child_gc_labels(children)
        if labels:
            await self.t.content.update(
                content.Info(desc.digest, desc.size, labels=labels),
                ["labels." + k for k in labels],
            )

    # -- layers

    async def _is_unpacked(self, chain_id: str) -> bool:
        try:
            await self.sn.stat(chain_id)
        except errors.NotFound:
            return False
        return True

    async def _layers(self, jobs: list[_Job]) -> None:
        for job in jobs:
            with contextlib.suppress(errors.NotFound):
                await self.t.content.info(job.layer.blob.digest)
                await self._add_source(job.layer.blob)
                job.claimed = True
                job.stored.set()
                d = job.layer.blob
                self.emit(Progress(Kind.EXISTS, d.digest, d.media_type, d.size, d.size))
        unpacked = [False] * len(jobs)
        if self.req.unpack:
            for job in jobs:
                unpacked[job.index] = await self._is_unpacked(job.layer.chain_id)
        # The lowest layer to apply streams (claimed before any downloader starts).
        stream_first = None
        if self.req.unpack:
            stream_first = next((j for j in jobs if not unpacked[j.index]), None)
            if stream_first is not None and stream_first.claimed:
                stream_first = None
            if stream_first is not None:
                stream_first.claimed = True
        async with _tasks() as tg:
            if self.req.unpack:
                tg.create_task(self._unpack(jobs, unpacked, stream_first), name="transfer.unpack")
            for job in jobs:
                if not job.claimed:
                    tg.create_task(self._download(job), name=f"transfer.{job.layer.blob.digest}")

    async def _add_source(self, desc: oci.Descriptor) -> None:
        await self.t.content.update(
            content.Info(desc.digest, desc.size, labels=self.source),
            ["labels." + k for k in self.source],
        )

    async def _download(self, job: _Job) -> None:
        async with self.sem:
            if job.claimed:
                return
            job.claimed = True
            await self._fetch(job.layer.blob, None)
            job.stored.set()

    async def _unpack(self, jobs: list[_Job], unpacked: list[bool], first: _Job | None) -> None:
        parent = ""
        for job in jobs:
            d = job.layer.blob
            if unpacked[job.index]:
                self.emit(Progress(Kind.UNPACKED, d.digest, d.media_type, d.size, d.size))
                parent = job.layer.chain_id
                continue
            streaming = job is first
            if not streaming and not job.claimed:
                job.claimed = streaming = True  # its download has not started: stream it
            applier: ApplierProtocol = self.t.applier
            if streaming:
                applier = _StreamingApplier(self, job)
            else:
                self.emit(Progress(Kind.WAITING, d.digest, d.media_type, 0, d.size))
                await job.stored.wait()
            self.emit(Progress(Kind.EXTRACTING, d.digest, d.media_type, 0, d.size))
            await unpacker.apply_layer(self.sn, applier, job.layer, parent, job.index)
            job.stored.set()
            await self.t.content.update(
                content.Info(
                    d.digest, d.size, labels={unpacker.LABEL_UNCOMPRESSED: job.layer.diff_id}
                ),
                ["labels." + unpacker.LABEL_UNCOMPRESSED],
            )
            self.emit(Progress(Kind.UNPACKED, d.digest, d.media_type, d.size, d.size))
            parent = job.layer.chain_id

    async def _fetch(
        self, desc: oci.Descriptor, tee: Callable[[bytes], Awaitable[None]] | None
    ) -> bool:
        """Download ``desc`` into the content store; False when it was there already.

        ``tee`` (only from offset 0) also gets every chunk. A resumed ingest
        continues where it stopped; an ingest that turns out wrong (complete but
        not the right digest) is aborted, so a retry starts afresh.
        """
        ref = _ref_key(desc)
        labels = dict(self.source)
        try:
            w = await content.open_writer(self.t.content, ref, desc.size, desc.digest, labels)
        except errors.AlreadyExists:
            self.emit(Progress(Kind.EXISTS, desc.digest, desc.media_type, desc.size, desc.size))
            return False
        complete = bad = False
        try:
            offset = w.offset
            if offset > desc.size or (tee is not None and offset):
                await w.truncate(0)
                offset = 0
            meter = _Meter(self.emit, Kind.DOWNLOADING, desc, offset)
            meter.add(0)
            buf: list[bytes] = []
            pending = 0
            async for chunk in self.reg.fetch_blob(self.repo, desc, offset):
                if tee is not None:
                    await tee(chunk)
                buf.append(chunk)
                pending += len(chunk)
                if pending >= WRITE_CHUNK:
                    await w.write(b"".join(buf))
                    meter.add(pending)
                    buf, pending = [], 0
            if buf:
                await w.write(b"".join(buf))
                meter.add(pending)
            complete = True
            with contextlib.suppress(errors.AlreadyExists):
                await w.commit(desc.size, desc.digest, labels)
        except BaseException:
            bad = complete or w.offset >= desc.size
            raise
        finally:
            await w.close()
            if bad:  # all the bytes came, and they were wrong: start afresh next time
                await self._abort(ref)
        self.emit(Progress(Kind.DOWNLOADED, desc.digest, desc.media_type, desc.size, desc.size))
        return True

    async def _abort(self, ref: str) -> None:
        """Drop an ingest; while its Write stream is still ending it is locked: retry."""
        for delay in (0.02, 0.05, 0.1, 0.2, 0.5, 1.0):
            try:
                await self.t.content.abort(ref)
                return
            except errors.Unavailable:  # "ref ... locked" until the server saw the stream end
                await asyncio.sleep(delay)
            except errors.SeacanError as e:  # NotFound: already gone
                _log.debug("transfer.abort", ref=ref, error=str(e))
                return
        _log.warning("transfer.abort_failed", ref=ref)


class _StreamingApplier:
    """Diff.Apply for one layer whose bytes come from the registry as they download.

    Each chunk goes to the content ingest and to the extractor; the layer is
    committed to the content store once the download is complete and verified.
    """

    def __init__(self, puller: _Puller, job: _Job) -> None:
        self._p = puller
        self._job = job

    async def apply(
        self,
        desc: oci.Descriptor,
        mounts: Sequence[Mount],
        payloads: Mapping[str, Any] | None = None,
    ) -> oci.Descriptor:
        declared = oci.layer_compression(desc.media_type)
        if declared is None:
            raise errors.InvalidArgument(
                f"layer {desc.digest}: unsupported media type {desc.media_type!r}"
            )
        target = plan_target(mounts)
        if target is not None:
            diff_id, size = await self._run(desc, mounts, target, declared)
        else:
            async with with_temp_mount(mounts) as root:
                diff_id, size = await self._run(desc, mounts, Target(str(root)), declared)
        return oci.Descriptor(media_type=oci.OCI_LAYER, digest=diff_id, size=size)

    async def _run(
        self, desc: oci.Descriptor, mounts: Sequence[Mount], target: Target, declared: str
    ) -> tuple[str, int]:
        queue: asyncio.Queue[bytes | None] = asyncio.Queue(8)
        limit = self._p.t.max_layer_bytes

        async def source() -> AsyncIterator[bytes]:
            while (chunk := await queue.get()) is not None:
                yield chunk

        def work(get: Callable[[], bytes]) -> tuple[str, int]:
            return extract(get, target, layer=desc.digest, declared=declared, limit=limit)

        extractor = asyncio.create_task(
            bridge.run_reading(source(), work), name=f"transfer.extract.{desc.digest}"
        )

        async def offer(chunk: bytes | None) -> None:
            if extractor.done():
                await extractor  # raises its error; a finished one needs no more
                return
            try:
                queue.put_nowait(chunk)
                return
            except asyncio.QueueFull:
                pass
            put = asyncio.ensure_future(queue.put(chunk))
            await asyncio.wait({put, extractor}, return_when=asyncio.FIRST_COMPLETED)
            if not put.done():
                put.cancel()
                await extractor

        try:
            fetched = await self._p._fetch(desc, offer)
            if not fetched:
                # Stored meanwhile by someone else: read it from the store instead.
                await bridge.stop(extractor)
                applied = await self._p.t.applier.apply(desc, mounts)
                return applied.digest, applied.size
            await offer(None)
            return await extractor
        finally:
            if not extractor.done():
                await bridge.stop(extractor)


class _Pusher:
    def __init__(self, t: Transferer, reg: Registry, ref: reference.Reference, emit: Emit) -> None:
        self.t = t
        self.reg = reg
        self.ref = ref
        self.repo = ref.path
        self.emit = emit
        self.sem = asyncio.Semaphore(CONCURRENCY)
        self.source_key = LABEL_SOURCE + ref.domain

    async def _present(self, desc: oci.Descriptor) -> bool:
        try:
            await self.t.content.info(desc.digest)
        except errors.NotFound:
            return False
        return True

    async def _read_json(self, desc: oci.Descriptor) -> bytes:
        if desc.size > MAX_JSON:
            raise errors.InvalidArgument(f"{desc.digest} is {desc.size} bytes, over {MAX_JSON}")
        try:
            return await content.read_blob(self.t.content, desc.digest)
        except errors.NotFound:
            raise errors.NotFound(
                f"{desc.media_type} {desc.digest} is not in the content store"
            ) from None

    async def run(self, target: oci.Descriptor, platform: oci.Platform) -> oci.Descriptor:
        """Push the image; the descriptor that was tagged."""
        manifests: list[tuple[oci.Descriptor, bytes]] = []  # bottom up
        blobs: dict[str, oci.Descriptor] = {}
        top = target
        if target.media_type in oci.INDEX_TYPES:
            index = oci.parse_index(await self._read_json(target), f"index {target.digest}")
            children = [d for d in index.manifests if d.media_type in oci.MANIFEST_TYPES]
            present = [await self._present(d) for d in children]
            if all(present):
                for d in children:
                    await self._walk_manifest(d, manifests, blobs)
                manifests.append((target, await self._read_json(target)))
            else:
                # Only part of the index is here (a pull takes one platform): push that.
                top, _ = await unpacker.resolve_manifest(self.t.content, target, platform)
                await self._walk_manifest(top, manifests, blobs)
        else:
            await self._walk_manifest(target, manifests, blobs)
        async with _tasks() as tg:
            for d in blobs.values():
                tg.create_task(self._blob(d), name=f"transfer.push.{d.digest}")
        for i, (d, body) in enumerate(manifests):
            last = i == len(manifests) - 1
            tag = self.ref.object if last else d.digest
            self.emit(Progress(Kind.UPLOADING, d.digest, d.media_type, 0, d.size))
            got = await self.reg.push_manifest(self.repo, tag, d.media_type, body)
            if got and got != d.digest:
                raise errors.FailedPrecondition(
                    f"{self.ref}: the registry stored manifest {d.digest} as {got}"
                )
            await self._add_source(d)
            self.emit(Progress(Kind.PUSHED, d.digest, d.media_type, d.size, d.size))
        return top

    async def _walk_manifest(
        self,
        desc: oci.Descriptor,
        manifests: list[tuple[oci.Descriptor, bytes]],
        blobs: dict[str, oci.Descriptor],
    ) -> None:
        body = await self._read_json(desc)
        m = oci.parse_manifest(body, f"manifest {desc.digest}")
        for d in (m.config, *m.layers):
            if not await self._present(d):
                raise errors.NotFound(
                    f"{self.ref}: blob {d.digest} of manifest {desc.digest} is not in the "
                    "content store"
                )
            blobs.setdefault(d.digest, d)
        manifests.append((desc, body))

    async def _blob(self, desc: oci.Descriptor) -> None:
        """HEAD, then a mount from a repository it came from, else an upload."""
        async with self.sem:
            if await self.reg.blob_exists(self.repo, desc.digest, for_push=True) is not None:
                self.emit(Progress(Kind.EXISTS, desc.digest, desc.media_type, desc.size, desc.size))
                return
            info = await self.t.content.info(desc.digest)
            repos = info.labels.get(self.source_key, "").split(",")
            for from_repo in [r for r in repos if r and r != self.repo]:
                if await self.reg.mount_blob(self.repo, desc, from_repo):
                    self.emit(
                        Progress(
                            Kind.MOUNTED,
                            desc.digest,
                            desc.media_type,
                            desc.size,
                            desc.size,
                            message=f"Mounted from {from_repo}",
                        )
                    )
                    await self._add_source(desc)
                    return
            meter = _Meter(self.emit, Kind.UPLOADING, desc)
            meter.add(0)

            async def chunks(offset: int) -> AsyncIterator[bytes]:
                meter.current = offset
                async for chunk in self.t.content.read(desc.digest, offset):
                    meter.add(len(chunk))
                    yield chunk

            await self.reg.push_blob(self.repo, desc, chunks)
            await self._add_source(desc)
            self.emit(Progress(Kind.PUSHED, desc.digest, desc.media_type, desc.size, desc.size))

    async def _add_source(self, desc: oci.Descriptor) -> None:
        """Remember that ``desc`` is in this repository (for later mounts), as containerd."""
        info = await self.t.content.info(desc.digest)
        repos = [r for r in info.labels.get(self.source_key, "").split(",") if r]
        if self.repo in repos:
            return
        value = ",".join(sorted([*repos, self.repo]))
        await self.t.content.update(
            content.Info(desc.digest, desc.size, labels={self.source_key: value}),
            ["labels." + self.source_key],
        )
