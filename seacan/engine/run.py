"""Run a container: the one home of ``seacan run``'s orchestration.

:func:`create` makes the container, :func:`start` its detached task,
:func:`run_detached` both. What depends on what (each box one RPC or a few)::

    lease ──────────────────────┐
    image get + manifest/config ┼─> unpacked? ─> Snapshots.Prepare ─┐ (mounts returned)
    container absent? ──────────┼─> volumes (copy-up needs the chain)┼─> temp mount, OCI spec
                                └─> Networking.Prepare ──────────────┘        │
                                      └─> Networking.Attach ──┐     Containers.Create
                                                              │               │
                      lease deleted (in the background)       │         Tasks.Create
                                                              └───────> Tasks.Start

Networking.Prepare makes the namespace, claims the ports and writes the
hosts files; the CNI plugins (Networking.Attach) then connect it while the
container and its task are created, and the task starts only once that is
done (:meth:`Created.networked`), so the workload never sees a half-made
network.

Every branch runs to its end (none is cancelled half-way, so nothing is
half-made behind our back); on any failure what was made is undone: the
task, the container, the snapshot, the volume references and the network
endpoints. Volumes and networks wait for the check that no container has
the ID, so a failed run never touches another container's.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
from collections import OrderedDict
from collections.abc import Awaitable, Coroutine, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

from seacan import cio, errors, leases, log, logformat, oci, scope
from seacan.client import DEFAULT_SNAPSHOTTER, LEASE_TTL, Client
from seacan.containers import SPEC_TYPE_URL, AnyValue, Container, Runtime
from seacan.engine import RunSpec, Started, mounts
from seacan.engine.plan import Plan, plan
from seacan.images import unpack as unpacker
from seacan.networking import AttachSpec, NetworkRef, exposed_ports
from seacan.runtime.spec import ContainerOptions
from seacan.snapshots import Mount
from seacan.tasks import DEFAULT_RUNTIME, LABEL_STOP_SIGNAL, CreateOptions
from seacan.volumes import CopyUp

_log = log.get(__name__)
T = TypeVar("T")

LABEL_LOG_FORMAT = "seacan/log-format"
DEFAULT_STOP_SIGNAL = "SIGTERM"


def log_format_for(runtime: str) -> str:
    """The detached log format a runtime writes: CRI records with seacan's shim, else raw."""
    return logformat.FORMAT_CRI if runtime == DEFAULT_RUNTIME else logformat.FORMAT_RAW


def log_format_of(labels: Mapping[str, str]) -> str:
    """A container's log format (its ``seacan/log-format`` label; raw without one)."""
    fmt = labels.get(LABEL_LOG_FORMAT, logformat.FORMAT_RAW)
    return fmt if fmt in logformat.FORMATS else logformat.FORMAT_RAW


@dataclass(slots=True)
class _Made:
    """What a run has made so far (what to undo)."""

    id: str
    snapshot: bool = False
    volumes: bool = False
    networks: bool = False
    container: bool = False
    task: bool = False

    async def undo(self, c: Client) -> None:
        """Remove it all: task, container, then snapshot, volume references and endpoints."""
        if self.task:
            await _quietly(c.tasks.delete(self.id), "task")
        if self.container:
            await _quietly(c.containers.delete(self.id), "container")
        await asyncio.gather(
            _quietly(c.snapshots.remove(self.id), "snapshot") if self.snapshot else _nothing(),
            _quietly(c.volumes.release(self.id, remove_anonymous=True), "volumes")
            if self.volumes
            else _nothing(),
            _quietly(c.networking.detach(self.id, forget=True), "networks")
            if self.networks
            else _nothing(),
        )


async def _nothing() -> None:
    return None


async def _quietly(op: Coroutine[Any, Any, Any], what: str) -> None:
    try:
        await op
    except errors.NotFound:
        pass
    except errors.SeacanError as e:
        _log.warning("run.undo_failed", what=what, error=str(e))


def _spawn(coro: Coroutine[Any, Any, T], name: str) -> asyncio.Task[T]:
    t = asyncio.ensure_future(coro)
    t.set_name(name)
    return t


@dataclass(slots=True)
class Created:
    """A container made by :func:`create`; its task is not created yet."""

    id: str
    container: Container
    rootfs: tuple[Mount, ...]
    terminal: bool
    warnings: tuple[str, ...]
    made: _Made
    lease_gone: asyncio.Task[None]
    attached: asyncio.Task[None] | None = None  # Networking.Attach, still running maybe

    async def networked(self) -> None:
        """Until the container's networks are connected (its task may start then)."""
        if self.attached is not None:
            await asyncio.shield(self.attached)

    async def create_task(self, op: Awaitable[T]) -> T:
        """``op`` (the task's creation, while the networks connect), then
        :meth:`networked`. When both fail, the network's error is raised: a
        failed Attach removes the namespace the task was being created in."""
        try:
            got = await op
        except BaseException:
            await _settled(self.attached)
            a = self.attached
            if a is not None and not a.cancelled() and (e := a.exception()) is not None:
                raise e from None
            raise
        await self.networked()
        return got

    async def undo(self, c: Client) -> None:
        await _settled(self.attached)
        await self.made.undo(c)

    async def settle(self) -> None:
        """Until the lease that held the rootfs during creation is deleted."""
        await self.lease_gone


async def _settled(t: asyncio.Task[Any] | None) -> None:
    """Until ``t`` has ended, whatever its outcome (before undoing what it made)."""
    if t is not None:
        await asyncio.wait([t])


async def _absent(c: Client, id: str) -> None:
    with contextlib.suppress(errors.NotFound):
        await c.containers.get(id)
        raise errors.AlreadyExists(f"container {id!r} already exists")


# An image's manifest and config by its target digest: content-addressed, so
# they never change; reading them again costs a run two content reads.
_PARTS: OrderedDict[str, unpacker.ImageParts] = OrderedDict()
_PARTS_MAX = 64
# (namespace, chain ID) of image snapshots seen to exist, so a run skips the
# Stat; a Prepare that finds one gone forgets it and unpacks again.
_CHAINS: set[tuple[str, str]] = set()
_CHAINS_MAX = 1024


async def _image(c: Client, ref: str) -> tuple[oci.Descriptor, unpacker.ImageParts]:
    try:
        img = await c.images.get(ref)
    except errors.NotFound:
        raise errors.NotFound(f"image {ref!r} not found (import it first)") from None
    parts = _PARTS.get(img.target.digest)
    if parts is None:
        parts = await unpacker.read_image(c.content, img.target, oci.host_platform())
        _PARTS[img.target.digest] = parts
        while len(_PARTS) > _PARTS_MAX:
            _PARTS.popitem(last=False)
    return img.target, copy.deepcopy(parts)  # nothing downstream can change the cached one


async def _in_lease(c: Client, lease_t: asyncio.Task[leases.Lease]) -> None:
    """This task's calls carry the run's lease."""
    scope.set_scope(c.namespace, (await lease_t).id)


async def _unpacked(
    c: Client,
    image_t: asyncio.Task[tuple[oci.Descriptor, unpacker.ImageParts]],
    lease_t: asyncio.Task[leases.Lease],
) -> None:
    """The image's top snapshot exists (one Stat when it was unpacked before)."""
    target, parts = await image_t
    if not parts.chain_id or (c.namespace, parts.chain_id) in _CHAINS:
        return
    await _unpack_missing(c, target, parts, lease_t)


async def _unpack_missing(
    c: Client,
    target: oci.Descriptor,
    parts: unpacker.ImageParts,
    lease_t: asyncio.Task[leases.Lease],
) -> None:
    with contextlib.suppress(errors.NotFound):
        await c.snapshots.stat(parts.chain_id)
        _remember_chain(c.namespace, parts.chain_id)
        return
    await _in_lease(c, lease_t)
    await unpacker.unpack(c.content, c.snapshots, c.diff, target)
    _remember_chain(c.namespace, parts.chain_id)


def _remember_chain(namespace: str, chain: str) -> None:
    if len(_CHAINS) >= _CHAINS_MAX:
        _CHAINS.clear()
    _CHAINS.add((namespace, chain))


async def _prepare(
    c: Client,
    made: _Made,
    image_t: asyncio.Task[tuple[oci.Descriptor, unpacker.ImageParts]],
    unpacked_t: asyncio.Task[None],
    lease_t: asyncio.Task[leases.Lease],
) -> tuple[Mount, ...]:
    target, parts = await image_t
    await unpacked_t
    await _in_lease(c, lease_t)
    try:
        rootfs = await c.snapshots.prepare(made.id, parts.chain_id)
    except errors.NotFound:
        key = (c.namespace, parts.chain_id)
        if key not in _CHAINS:
            raise
        _CHAINS.discard(key)  # removed since we saw it: unpack it again
        await _unpack_missing(c, target, parts, lease_t)
        rootfs = await c.snapshots.prepare(made.id, parts.chain_id)
    made.snapshot = True
    return tuple(rootfs)


async def _volumes(
    c: Client,
    p: Plan,
    made: _Made,
    absent_t: asyncio.Task[None],
    image_t: asyncio.Task[tuple[oci.Descriptor, unpacker.ImageParts]],
    unpacked_t: asyncio.Task[None],
    lease_t: asyncio.Task[leases.Lease],
) -> tuple[dict[str, Any], ...]:
    """The OCI mounts of ``-v``, ``--mount``, ``--tmpfs`` and the image's VOLUMEs, in that order."""
    _, parts = await image_t
    reqs = [*p.requests, *mounts.image_volumes(parts.config.config, p.requests)]
    if not any(r.type == "volume" for r in reqs):
        return tuple(mounts.oci_mount(r) for r in reqs)
    await absent_t
    await unpacked_t  # a copy-up reads the image's top snapshot
    await _in_lease(c, lease_t)
    made.volumes = True
    out = []
    for r in reqs:
        if r.type != "volume":
            out.append(mounts.oci_mount(r))
            continue
        copy = None
        if not r.nocopy and parts.chain_id:
            copy = CopyUp(r.target, DEFAULT_SNAPSHOTTER, parts.chain_id)
        vol, _ = await c.volumes.acquire(
            r.source, p.id, options=r.volume_options, labels=r.volume_labels, copy_up=copy
        )
        out.append(mounts.oci_mount(r, vol.mountpoint))
    return tuple(out)


async def _networks(
    c: Client,
    spec: RunSpec,
    p: Plan,
    made: _Made,
    absent_t: asyncio.Task[None],
    image_t: asyncio.Task[tuple[oci.Descriptor, unpacker.ImageParts]],
) -> tuple[ContainerOptions, tuple[str, ...], asyncio.Task[None] | None]:
    """The options joined to the container's prepared networks, warnings for the user,
    and the Attach that connects them, running."""
    if not p.networks:
        return p.options, (), None
    ports = p.ports
    if spec.publish_all:
        _, parts = await image_t
        given = {(m.container_port, m.protocol) for m in ports}  # -p wins over -P, as Docker
        exposed = exposed_ports(parts.config.config or {})
        ports += tuple(m for m in exposed if (m.container_port, m.protocol) not in given)
    await absent_t
    made.networks = True
    att = await c.networking.prepare(
        AttachSpec(
            container_id=p.id,
            networks=tuple(NetworkRef(n, spec.network_aliases) for n in p.networks),
            ports=ports,
            hostname=spec.hostname,
            dns_servers=spec.dns,
            dns_search=spec.dns_search,
            dns_options=spec.dns_options,
            extra_hosts=spec.add_hosts,
        )
    )
    warnings: tuple[str, ...] = ()
    if ports and not any(e.ports for e in att.endpoints):
        warnings = (f"published ports are discarded on internal network {p.networks[0]!r}",)
    opts = replace(
        p.options,
        network_mode=att.netns_path,
        hostname=att.hostname,
        mounts=(*p.options.mounts, *att.mounts()),
    )
    return opts, warnings, _spawn(_attach(c, p.id), "run.attach")


async def _attach(c: Client, id: str) -> None:
    await c.networking.attach(AttachSpec(container_id=id))


async def _oci_spec(
    c: Client,
    p: Plan,
    image_t: asyncio.Task[tuple[oci.Descriptor, unpacker.ImageParts]],
    rootfs_t: asyncio.Task[tuple[Mount, ...]],
    volumes_t: asyncio.Task[tuple[dict[str, Any], ...]],
    networks_t: asyncio.Task[tuple[ContainerOptions, tuple[str, ...], asyncio.Task[None] | None]],
) -> tuple[bytes, ContainerOptions]:
    """The rootfs is mounted (for user lookups) while networks and volumes are attached."""
    from seacan.runtime.spec import build_spec

    _, parts = await image_t
    etc = await _etc_files(parts.chain_id, rootfs_t)
    vols = await volumes_t
    opts, _, _ = await networks_t
    opts = replace(opts, mounts=(*opts.mounts, *vols))
    spec = build_spec(opts, parts.config.config, etc.get, cgroups_path=f"/{c.namespace}/{p.id}")
    return json.dumps(spec).encode(), opts


# The image's /etc/passwd and /etc/group by its top snapshot (chain ID): a new
# container's rootfs is that snapshot plus an empty upper layer, so they are
# the image's, and a chain ID names its content. Read once through a mount.
_ETC: OrderedDict[str, dict[str, bytes | None]] = OrderedDict()
_ETC_MAX = 64


async def _etc_files(
    chain: str, rootfs_t: asyncio.Task[tuple[Mount, ...]]
) -> dict[str, bytes | None]:
    """``passwd`` and ``group`` of the rootfs (for user lookups), None when absent."""
    from seacan import mount
    from seacan.runtime import users

    rootfs = await rootfs_t
    files = _ETC.get(chain) if chain else None
    if files is None:
        async with mount.with_temp_mount(rootfs) as root:
            try:
                files = {n: users.read_etc_file(root, n) for n in ("passwd", "group")}
            except errors.InvalidArgument as e:
                raise errors.InvalidArgument(f"user: {e.message}") from e
        if chain:
            _ETC[chain] = files
            while len(_ETC) > _ETC_MAX:
                _ETC.popitem(last=False)
    return files


async def create(c: Client, spec: RunSpec, labels: Mapping[str, str] | None = None) -> Created:
    """The container ``spec`` describes, with its rootfs, volumes and networks; no task yet."""
    p = plan(spec)
    made = _Made(p.id)
    lease_t = _spawn(c.leases.create(leases.random_id(), leases.expire_in(LEASE_TTL)), "run.lease")
    absent_t = _spawn(_absent(c, p.id), "run.absent")
    image_t = _spawn(_image(c, p.ref), "run.image")
    unpacked_t = _spawn(_unpacked(c, image_t, lease_t), "run.unpacked")
    rootfs_t = _spawn(_prepare(c, made, image_t, unpacked_t, lease_t), "run.prepare")
    volumes_t = _spawn(_volumes(c, p, made, absent_t, image_t, unpacked_t, lease_t), "run.volumes")
    networks_t = _spawn(_networks(c, spec, p, made, absent_t, image_t), "run.networks")
    spec_t = _spawn(_oci_spec(c, p, image_t, rootfs_t, volumes_t, networks_t), "run.spec")
    # In this order the first failure is the one reported.
    branches = (absent_t, image_t, lease_t, unpacked_t, rootfs_t, volumes_t, networks_t, spec_t)
    try:
        await asyncio.gather(*branches, return_exceptions=True)
        for t in branches:
            if t.exception() is not None:
                raise t.exception()  # type: ignore[misc]
        oci_spec, opts = spec_t.result()
        config = image_t.result()[1].config.config
        all_labels = {
            LABEL_STOP_SIGNAL: str(config.get("StopSignal") or DEFAULT_STOP_SIGNAL),
            LABEL_LOG_FORMAT: log_format_for(p.runtime),
            **(labels or {}),
        }
        cont = await c.containers.create(
            Container(
                id=p.id,
                labels=all_labels,
                image=p.ref,
                runtime=Runtime(p.runtime),
                spec=AnyValue(SPEC_TYPE_URL, oci_spec),
                snapshotter=DEFAULT_SNAPSHOTTER,
                snapshot_key=p.id,
            )
        )
        made.container = True
    except BaseException:
        for t in branches:
            t.cancel()  # only those still waiting: every branch has ended unless we were cancelled
        if networks_t.done() and not networks_t.cancelled() and not networks_t.exception():
            await _settled(networks_t.result()[2])
        await made.undo(c)
        if lease_t.done() and not lease_t.cancelled() and lease_t.exception() is None:
            await _quietly(c.leases.delete(lease_t.result().id), "lease")
        raise
    lease_gone = _spawn(_quietly(c.leases.delete(lease_t.result().id), "lease"), "run.unlease")
    _, net_warnings, attached = networks_t.result()
    warnings = (*p.warnings, *net_warnings)
    return Created(
        p.id, cont, rootfs_t.result(), opts.terminal, warnings, made, lease_gone, attached
    )


async def start(c: Client, created: Created, log_dir: str = "") -> int:
    """The container's task, writing to its log file, started; its PID."""
    log = Path(log_dir or cio.log_dir()) / c.namespace / f"{created.id}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    uri = cio.log_uri(log)
    if log_format_of(created.container.labels) == logformat.FORMAT_CRI:
        uri += "?format=cri"
    t = created.terminal
    created.made.task = True
    await created.create_task(
        c.tasks.create(
            CreateOptions(
                created.id, created.rootfs, stdout=uri, stderr="" if t else uri, terminal=t
            )
        )
    )
    return await c.tasks.start(created.id)


async def run_detached(c: Client, spec: RunSpec) -> Started:
    """``seacan run -d``: the container made and its task started; undone on failure."""
    created = await create(c, spec)
    try:
        pid = await start(c, created, spec.log_dir)
    except BaseException:
        await created.undo(c)
        raise
    finally:
        await created.settle()
    return Started(created.id, pid, created.warnings)


__all__ = [
    "DEFAULT_STOP_SIGNAL",
    "LABEL_LOG_FORMAT",
    "Created",
    "create",
    "log_format_for",
    "log_format_of",
    "run_detached",
    "start",
]
