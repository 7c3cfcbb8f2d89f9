"""seacan containers: create, ls, info, rm (ctr's grammar), and the helpers ``run`` shares.

Making a container from an image, as ``ctr run`` does::

    image -> unpack (under a lease) -> Snapshots.Prepare(key=ID, parent=top chain ID)
          -> mount it for a moment to read /etc/passwd and /etc/group -> build_spec
          -> Containers.Create(runtime, spec Any, snapshotter overlayfs, snapshot_key=ID)

The container record holds the snapshot from then on (containers are GC
roots); on any failure the snapshot is removed again.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import secrets
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from seacan import cio, errors, scope
from seacan.cli import output
from seacan.cli.commands import Subparsers, add_format, add_quiet, noun, verb, write
from seacan.client import DEFAULT_SNAPSHOTTER, Client
from seacan.containers import SPEC_TYPE_URL, AnyValue, Container, Runtime
from seacan.runtime.spec import ContainerOptions
from seacan.tasks import DEFAULT_RUNTIME, LABEL_STOP_SIGNAL, Process, Status

DEFAULT_STOP_SIGNAL = "SIGTERM"


def random_id() -> str:
    """A fresh container ID: 12 hex digits, as docker shows them."""
    return secrets.token_hex(6)


def spec_of(c: Container) -> dict[str, Any]:
    """The container's OCI spec as a dict ({} when it has none or it is not JSON)."""
    if c.spec is None or c.spec.type_url != SPEC_TYPE_URL:
        return {}
    try:
        spec = json.loads(c.spec.value)
    except ValueError:
        return {}
    return spec if isinstance(spec, dict) else {}


async def create_container(
    c: Client,
    id: str,
    image_ref: str,
    opts: ContainerOptions | Callable[[], Awaitable[ContainerOptions]],
    *,
    runtime: str = DEFAULT_RUNTIME,
    labels: dict[str, str] | None = None,
) -> Container:
    """A container (and its snapshot) for ``image_ref``, ready for a task.

    ``opts`` may be still on its way (``seacan run`` attaching networks and
    volumes meanwhile): then it is a function, called and awaited once the
    rootfs is prepared and mounted.
    """
    from seacan import mount
    from seacan.images import unpack as unpacker
    from seacan.images.archive import normalize_reference
    from seacan.runtime.spec import build_spec

    scope.validate_identifier(id, "container ID")
    ref = normalize_reference(image_ref)
    try:
        img = await c.images.get(ref)
    except errors.NotFound:
        raise errors.NotFound(f"image {ref!r} not found (import it first)") from None
    with contextlib.suppress(errors.NotFound):
        await c.containers.get(id)
        raise errors.AlreadyExists(f"container {id!r} already exists")
    async with c.lease():
        unpacked = await unpacker.unpack(c.content, c.snapshots, c.diff, img.target)
        mounts = await c.snapshots.prepare(id, unpacked.chain_id)
        try:
            config = unpacked.parts.config.config
            async with mount.with_temp_mount(mounts) as rootfs:
                if not isinstance(opts, ContainerOptions):
                    opts = await opts()
                spec = build_spec(opts, config, rootfs, cgroups_path=f"/{c.namespace}/{id}")
            all_labels = {LABEL_STOP_SIGNAL: str(config.get("StopSignal") or DEFAULT_STOP_SIGNAL)}
            all_labels.update(labels or {})
            return await c.containers.create(
                Container(
                    id=id,
                    labels=all_labels,
                    image=ref,
                    runtime=Runtime(runtime),
                    spec=AnyValue(SPEC_TYPE_URL, json.dumps(spec).encode()),
                    snapshotter=DEFAULT_SNAPSHOTTER,
                    snapshot_key=id,
                )
            )
        except BaseException:
            with contextlib.suppress(errors.SeacanError):
                await c.snapshots.remove(id)
            raise


async def task_of(c: Client, id: str) -> Process | None:
    try:
        return await c.tasks.get(id)
    except errors.NotFound:
        return None


async def remove_container(c: Client, id: str, *, force: bool = False) -> None:
    """Delete the task (stopped, or killed with ``force``), the container, its snapshot and log."""
    cont = await c.containers.get(id)
    task = await task_of(c, id)
    if task is not None:
        if task.status not in (Status.STOPPED, Status.CREATED) and not force:
            raise errors.FailedPrecondition(
                f"cannot remove container {id!r}: its task is {task.status.name.lower()} "
                "(stop it first, or force)"
            )
        if task.status != Status.STOPPED:
            import signal

            with contextlib.suppress(errors.NotFound, errors.FailedPrecondition):
                if task.status == Status.PAUSED:
                    await c.tasks.resume(id)
                await c.tasks.kill(id, signal.SIGKILL, all=True)
            with contextlib.suppress(errors.NotFound):
                await c.tasks.wait(id)
        with contextlib.suppress(errors.NotFound):
            await c.tasks.delete(id)
    await c.containers.delete(id)
    if cont.snapshot_key:
        with contextlib.suppress(errors.NotFound):
            await c.snapshotter(cont.snapshotter or DEFAULT_SNAPSHOTTER).remove(cont.snapshot_key)
    with contextlib.suppress(OSError):
        cio.log_path(c.namespace, id).unlink()


def info_json(cont: Container, task: Process | None = None) -> dict[str, Any]:
    """A container (and its task) as ``containers info`` / ``inspect`` print it."""
    out: dict[str, Any] = {
        "ID": cont.id,
        "Labels": dict(cont.labels),
        "Image": cont.image,
        "Runtime": {"Name": cont.runtime.name},
        "SnapshotKey": cont.snapshot_key,
        "Snapshotter": cont.snapshotter,
        "CreatedAt": output._plain(cont.created_at),
        "UpdatedAt": output._plain(cont.updated_at),
        "Spec": spec_of(cont),
    }
    if task is not None:
        out["Task"] = output._plain(task)
    return out


# --- commands ----------------------------------------------------------------------


async def containers_create(c: Client, a: argparse.Namespace) -> int:
    opts = ContainerOptions(args=tuple(a.command), terminal=a.tty, env=tuple(a.env))
    await create_container(c, a.id, a.image, opts, runtime=a.runtime)
    return 0


async def containers_ls(c: Client, a: argparse.Namespace) -> int:
    items = sorted(await c.containers.list(a.filters), key=lambda x: x.id)
    if a.quiet:
        write("".join(x.id + "\n" for x in items))
    elif a.format == "json":
        write(output.to_json([info_json(x) for x in items]))
    else:
        rows = [(x.id, x.image or "-", x.runtime.name) for x in items]
        write(output.table(["CONTAINER", "IMAGE", "RUNTIME"], rows))
    return 0


async def containers_info(c: Client, a: argparse.Namespace) -> int:
    write(output.to_json(info_json(await c.containers.get(a.id))))
    return 0


async def rm_many(c: Client, ids: Sequence[str], force: bool) -> int:
    code = 0
    for id in ids:
        try:
            await remove_container(c, id, force=force)
        except errors.SeacanError as e:
            print(f"seacan: {e}", file=sys.stderr)
            code = 1
            continue
        write(id + "\n")
    return code


async def containers_rm(c: Client, a: argparse.Namespace) -> int:
    return await rm_many(c, a.ids, a.force)


def register(subs: Subparsers) -> None:
    ct = noun(subs, "containers", ["container", "c"], "manage containers")
    p = verb(ct, "create", containers_create, "create a container from an image")
    p.add_argument("--runtime", default=DEFAULT_RUNTIME, help="runtime (default %(default)s)")
    p.add_argument("-t", "--tty", action="store_true", help="allocate a terminal")
    p.add_argument("--env", action="append", default=[], metavar="K=V", help="environment")
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("id", metavar="ID")
    p.add_argument("command", nargs=argparse.REMAINDER, metavar="CMD")
    p = verb(ct, "ls", containers_ls, "list containers", ["list"])
    add_quiet(p, "IDs")
    add_format(p)
    p.add_argument("filters", nargs="*", metavar="FILTER")
    p = verb(ct, "info", containers_info, "show a container as JSON")
    p.add_argument("id", metavar="ID")
    p = verb(ct, "rm", containers_rm, "remove containers", ["remove", "delete", "del"])
    p.add_argument("-f", "--force", action="store_true", help="kill a running task first")
    p.add_argument("ids", nargs="+", metavar="ID")
