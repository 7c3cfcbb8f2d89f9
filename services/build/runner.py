"""RUN: one real container through the containers and tasks services.

::

    mounts = Snapshots.Prepare(key, parent chain)          (done by the caller)
    spec   = build_spec(env, workdir, user, shell, network)   rootfs mounted briefly
    Containers.Create(id, spec, snapshot key) -> Tasks.Create(FIFOs) -> Wait -> Start
    output from the FIFOs streamed to ``emit`` until EOF and exit
    Tasks.Delete, Containers.Delete                         (always, also on cancel)

With host networking the host's ``/etc/resolv.conf`` and ``/etc/hosts``
are bind-mounted read-only (so ``apt-get`` reaches the mirror, as Docker's
builder does); a mount point that runc had to create is removed from the
snapshot's upper directory again, so it never lands in the layer.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seacan import cio, errors, log, scope
from seacan.containers import SPEC_TYPE_URL, AnyValue, Container, Runtime
from seacan.mount import with_temp_mount
from seacan.runtime.spec import ContainerOptions, build_spec
from seacan.snapshots import Mount
from seacan.tasks import DEFAULT_RUNTIME, CreateOptions

from . import fsops
from .stores import SNAPSHOTTER, Stores

_log = log.get(__name__)
HOST_FILES = ("/etc/resolv.conf", "/etc/hosts")
TAIL = 20  # output lines kept for the error of a failing RUN
DRAIN = 5.0


@dataclass(frozen=True, slots=True)
class RunSpec:
    args: tuple[str, ...]
    env: tuple[str, ...]
    cwd: str
    user: str
    network: str  # "host" or "none"


def upper_dir(mounts: Sequence[Mount]) -> str:
    """The directory that holds a prepared snapshot's changes."""
    for m in mounts:
        if m.type == "overlay":
            for o in m.options:
                if o.startswith("upperdir="):
                    return o.partition("=")[2]
        elif "bind" in m.options or "rbind" in m.options or m.type in ("bind", "rbind"):
            return m.source
    raise errors.Internal(f"cannot find the upper directory of mounts {mounts}")


def parent_view(mounts: Sequence[Mount]) -> list[Mount]:
    """The read-only mounts of a prepared overlay snapshot's parent, made from its
    ``lowerdir`` stack as the snapshotter's View would make them (so Diff walks the
    upper directory); [] when ``mounts`` is not one overlay mount with lowers."""
    if len(mounts) != 1 or mounts[0].type != "overlay":
        return []
    opts = [o for o in mounts[0].options if not o.startswith(("upperdir=", "workdir="))]
    lowers = [o.partition("=")[2] for o in opts if o.startswith("lowerdir=")]
    if len(lowers) != 1 or not lowers[0]:
        return []
    stack = lowers[0].split(":")
    if len(stack) == 1:
        return [Mount("bind", stack[0], options=("ro", "rbind"))]
    return [Mount("overlay", "overlay", options=tuple(o for o in opts if o != "rw"))]


def _exists(rootfs: Path, path: str) -> bool:
    root = fsops.open_dir(rootfs)
    try:
        fd, _ = fsops.open_in(root, path)
        os.close(fd)
        return True
    except (FileNotFoundError, NotADirectoryError):
        return False
    finally:
        os.close(root)


def _remove_created(upper: str, paths: Sequence[str]) -> None:
    for p in paths:
        with contextlib.suppress(OSError):
            target = os.path.join(upper, p.lstrip("/"))
            st = os.lstat(target)
            if st.st_size == 0 and not os.path.islink(target):
                os.unlink(target)


class Tail:
    """The last lines of output."""

    def __init__(self) -> None:
        self.data = b""

    def add(self, chunk: bytes) -> None:
        self.data = (self.data + chunk)[-8192:]

    def text(self) -> str:
        lines = self.data.decode(errors="replace").splitlines()[-TAIL:]
        return "\n".join(lines)


async def run(
    stores: Stores,
    mounts: Sequence[Mount],
    snapshot_key: str,
    image_config: dict[str, Any],
    rs: RunSpec,
    fifo_root: Path,
    emit: Callable[[bytes], Awaitable[None]],
    started: Callable[[str], Awaitable[None]],
    then: Callable[[], Awaitable[None]] | None = None,
) -> tuple[int, str]:
    """Run the step's command; its exit status and the tail of its output.

    ``then`` (the diff of the snapshot) runs once the command exited with 0,
    while the stopped task and the container are deleted; both are done when
    this returns.
    """
    cid = secrets.token_hex(6)
    ns = scope.namespace_required()
    extra: list[dict[str, Any]] = []
    created: list[str] = []
    async with with_temp_mount(mounts) as rootfs:
        if rs.network == "host":
            for f in HOST_FILES:
                if os.path.isfile(f):
                    if not await asyncio.to_thread(_exists, rootfs, f):
                        created.append(f)
                    opts = ["rbind", "ro", "nosuid", "nodev", "noexec"]
                    extra.append({"destination": f, "type": "bind", "source": f, "options": opts})
        copts = ContainerOptions(
            args=rs.args, entrypoint=(), env=rs.env, cwd=rs.cwd, user=rs.user,
            network_mode=rs.network, mounts=tuple(extra),
        )  # fmt: skip
        spec = build_spec(copts, {}, rootfs, cgroups_path=f"/{ns}/{cid}")
    await stores.containers.create(
        Container(
            id=cid,
            labels={"seacan/build": "true"},
            runtime=Runtime(DEFAULT_RUNTIME),
            spec=AnyValue(SPEC_TYPE_URL, json.dumps(spec).encode()),
            snapshotter=SNAPSHOTTER,
            snapshot_key=snapshot_key,
        )
    )
    tail = Tail()
    try:
        status = await _task(stores, cid, mounts, fifo_root, emit, started, tail)
    except BaseException:
        with contextlib.suppress(errors.SeacanError):
            await stores.containers.delete(cid)
        raise

    async def remove() -> None:
        with contextlib.suppress(errors.SeacanError):
            await stores.tasks.delete(cid)
        with contextlib.suppress(errors.SeacanError):
            await stores.containers.delete(cid)

    removal = asyncio.ensure_future(remove())
    try:
        if created:  # the container's mount namespace died with its processes
            await asyncio.to_thread(_remove_created, upper_dir(mounts), created)
        if then is not None and status == 0:
            await then()
    finally:
        await removal
    return status, tail.text()


async def _task(
    stores: Stores,
    cid: str,
    mounts: Sequence[Mount],
    fifo_root: Path,
    emit: Callable[[bytes], Awaitable[None]],
    started: Callable[[str], Awaitable[None]],
    tail: Tail,
) -> int:
    """Create and start the task and wait for its exit status; the stopped task is left
    for the caller to delete (on any failure it is killed and deleted here)."""
    fifos = cio.new_fifo_set(cid, stdin=False, terminal=False, root=fifo_root)
    fds: list[int] = []
    pumps: list[asyncio.Task[None]] = []
    exited = False
    created = False
    handed_over = False

    async def pump(fd: int) -> None:
        while data := await cio.read_some(fd):
            tail.add(data)
            await emit(data)

    with fifos:
        try:
            for path in (fifos.stdout, fifos.stderr):
                fds.append(os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC))
            await stores.tasks.create(
                CreateOptions(cid, mounts, stdout=fifos.stdout, stderr=fifos.stderr)
            )
            created = True
            pumps = [asyncio.create_task(pump(fd), name=f"run-output-{cid}") for fd in fds]
            waiter = asyncio.ensure_future(stores.tasks.wait(cid))
            await asyncio.sleep(0)  # Wait goes out before Start
            try:
                await started(cid)
                await stores.tasks.start(cid)
                result = await waiter
            finally:
                waiter.cancel()
            exited = True
            await asyncio.wait(pumps, timeout=DRAIN)
            handed_over = True
            return result.status
        finally:
            for t in pumps:
                t.cancel()
            for fd in fds:
                with contextlib.suppress(OSError):
                    os.close(fd)
            if created and not handed_over:
                if not exited:
                    with contextlib.suppress(errors.SeacanError):
                        await stores.tasks.kill(cid, signal.SIGKILL, all=True)
                    with contextlib.suppress(errors.SeacanError):
                        await asyncio.wait_for(stores.tasks.wait(cid), 10)
                with contextlib.suppress(errors.SeacanError):
                    await stores.tasks.delete(cid)
