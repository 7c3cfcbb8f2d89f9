"""The build service's implementation: contexts on disk, the engine, commit and prune.

Each build gets ``<root>/contexts/<id>.tar`` (the context as received, when it
is too large to keep in memory) and ``<root>/contexts/<id>/`` (the context
unpacked when a step needs its files, private, removed afterwards) and
``<root>/work/<id>/`` (FIFOs, temporary mounts, downloads). A directory is
removed only when nothing is mounted below it, so a failed unmount can never
make us delete a snapshot's files. Each build's elapsed time is logged
(``build.finished``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from pathlib import Path

from seacan import log
from seacan.build import CommitOptions, Event, Result

from . import commit as committer
from . import context, engine
from .cache import Cache
from .db import CacheDB
from .stores import Stores

_log = log.get(__name__)


def _mounted_under(path: Path) -> list[str]:
    prefix = str(path).rstrip("/") + "/"
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mp = line.split()[4]
            if mp.startswith(prefix) or mp == prefix[:-1]:
                out.append(mp)
    return out


def safe_rmtree(path: Path) -> None:
    if not path.exists():
        return
    busy = _mounted_under(path)
    if busy:
        _log.warning("build.dir_left_mounted", path=str(path), mounts=busy)
        return
    shutil.rmtree(path, ignore_errors=True)


def _rmdir_empty(*dirs: Path) -> bool:
    """Remove empty directories (in order); False when one is not empty or is a mount
    point (then leave the rest to :func:`safe_rmtree`)."""
    for d in dirs:
        try:
            os.rmdir(d)
        except FileNotFoundError:
            continue
        except OSError:
            return False
    return True


class Builder:
    def __init__(
        self,
        root: Path,
        stores: Stores,
        db: CacheDB,
        max_context_bytes: int,
        max_blob_bytes: int = 64 << 30,
    ) -> None:
        self.root = root
        self.stores = stores
        self.cache = Cache(db, stores)
        self.limit = max_context_bytes
        self.max_download = max_blob_bytes
        self.memo: context.Memo = OrderedDict()
        for d in ("contexts", "work"):
            (root / d).mkdir(parents=True, exist_ok=True, mode=0o700)
            for leftover in (root / d).iterdir():  # from a build that died with us
                if leftover.is_dir():
                    safe_rmtree(leftover)
                else:
                    leftover.unlink()

    async def build(
        self, opts: engine.Options, chunks: AsyncIterator[bytes]
    ) -> AsyncIterator[Event]:
        from . import image

        image.check_tags(opts.tags)
        t0 = time.monotonic()
        id = secrets.token_hex(8)
        tar = self.root / "contexts" / f"{id}.tar"
        ctx = self.root / "contexts" / id
        work = self.root / "work" / id
        ctx_: context.Context | None = None
        outcome = "failed"
        try:
            digest, data = await context.receive(chunks, tar, self.limit)
            ctx_ = context.Context(data, ctx, self.limit, opts.dockerfile, digest, self.memo)
            work.mkdir(mode=0o700)
            (work / "fifo").mkdir(mode=0o700)
            async for ev in engine.build_stream(
                self.stores, self.cache, opts, ctx_, work, self.max_download
            ):
                if isinstance(ev, Result):
                    outcome = "built"
                yield ev
        finally:
            with contextlib.suppress(FileNotFoundError):
                tar.unlink()
            if os.path.lexists(ctx):  # unpacked (perhaps half-way, for a refused context)
                await asyncio.to_thread(safe_rmtree, ctx)
            if not _rmdir_empty(work / "fifo", work):
                await asyncio.to_thread(safe_rmtree, work)
            ms = round((time.monotonic() - t0) * 1000, 1)
            _log.info("build.finished", outcome=outcome, ms=ms)

    async def commit(self, opts: CommitOptions) -> tuple[str, str]:
        return await committer.commit(self.stores, opts)

    async def prune(self, all: bool) -> int:
        return await self.cache.prune(all)
