"""seacan containers: create, ls, info, rm (ctr's grammar), and the helpers ``run`` shares.

``containers create`` makes a container from an image through
:func:`seacan.engine.run.create` (as ``seacan run --network none`` without
starting it): the rootfs is a snapshot the container record holds from then
on (containers are GC roots).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Sequence
from typing import Any

from seacan import cio, errors
from seacan.cli import output
from seacan.cli.commands import Subparsers, add_format, add_quiet, noun, verb, write
from seacan.client import DEFAULT_SNAPSHOTTER, Client
from seacan.containers import SPEC_TYPE_URL, Container
from seacan.tasks import DEFAULT_RUNTIME, Process, Status


def spec_of(c: Container) -> dict[str, Any]:
    """The container's OCI spec as a dict ({} when it has none or it is not JSON)."""
    if c.spec is None or c.spec.type_url != SPEC_TYPE_URL:
        return {}
    try:
        spec = json.loads(c.spec.value)
    except ValueError:
        return {}
    return spec if isinstance(spec, dict) else {}


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
    from seacan.engine import RunSpec
    from seacan.engine import run as engine

    spec = RunSpec(
        a.image, a.id, args=tuple(a.command), env=tuple(a.env), tty=a.tty, runtime=a.runtime,
        networks=("none",),
    )  # fmt: skip
    created = await engine.create(c, spec)
    await created.settle()
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
