"""docker-style shortcuts: run, ps, logs, exec, start, stop, kill, rm, wait, pause, unpause,
inspect, events.

``seacan run`` is ``ctr run`` with docker's flags, orchestrated by
:mod:`seacan.engine.run` (image, rootfs, volumes, networks, container, task).
``run -d`` is one request to the engine service (:func:`run_fast`: no asyncio,
no grpcio); attached, the engine makes the container here and the task runs
attached to our stdio, and the command exits with the container's exit
status. Without ``--rm`` the stopped task is deleted (as ctr) and the exit
status kept on the container as the label ``seacan/exit-status``, so ``ps -a``
shows ``Exited (N)``.

The engine also records the detached log format as the label
``seacan/log-format``: ``cri`` with seacan's runtime (its shim writes
timestamped CRI records, so ``logs --timestamps`` works), ``raw`` otherwise
(runc's shim writes raw output).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from seacan import errors, pbwire
from seacan.cli import runnet, runvolumes

# Everything else is imported where it is used: this module is loaded for the
# parser of every docker-style command, and ``run -d``'s fast path (run_fast)
# must not pay for asyncio, grpcio or the proxies.
if TYPE_CHECKING:
    from seacan import logformat
    from seacan.cli.commands import Subparsers
    from seacan.client import Client
    from seacan.containers import Container
    from seacan.engine import RunSpec
    from seacan.engine.run import Created
    from seacan.events import Envelope
    from seacan.runtime.spec import ContainerOptions
    from seacan.tasks import Process, stats

LABEL_EXIT_STATUS = "seacan/exit-status"
STOP_TIMEOUT = 10


def write(text: str) -> None:
    from seacan.cli.commands import write as write_

    write_(text)


def parse_env(items: Sequence[str]) -> tuple[str, ...]:
    """``-e K=V`` (``-e K`` alone is docker's "take K from my environment")."""
    out = []
    for item in items:
        key, eq, _ = item.partition("=")
        if not key:
            raise errors.InvalidArgument(f"invalid environment variable {item!r}")
        if eq:
            out.append(item)
        elif key in os.environ:
            out.append(f"{key}={os.environ[key]}")
    return tuple(out)


def run_spec(a: argparse.Namespace) -> RunSpec:
    """The RunSpec ``seacan run``'s flags describe (checked by the engine, not here)."""
    from seacan.engine import LOG_DIR_ENV, RunSpec

    env = parse_env(a.env)
    if a.rm and a.detach:
        raise errors.InvalidArgument("--rm and -d cannot be combined (yet)")
    entrypoint: tuple[str, ...] | None = None
    if a.entrypoint is not None:
        entrypoint = (a.entrypoint,) if a.entrypoint else ()
    return RunSpec(
        image=a.image, id=a.name, args=tuple(a.command), entrypoint=entrypoint, env=env,
        workdir=a.workdir, user=a.user, hostname=a.hostname, tty=a.tty,
        interactive=a.interactive, read_only=a.read_only, privileged=a.privileged,
        cap_add=tuple(a.cap_add), cap_drop=tuple(a.cap_drop), memory=a.memory, cpus=a.cpus,
        pids_limit=a.pids_limit, runtime=a.runtime, networks=tuple(a.network),
        publish=tuple(a.publish), publish_all=a.publish_all, dns=tuple(a.dns),
        dns_search=tuple(a.dns_search), dns_options=tuple(a.dns_option),
        add_hosts=tuple(a.add_host), network_aliases=tuple(a.network_alias),
        volumes=tuple(a.volume), mounts=tuple(a.mount), tmpfs=tuple(a.tmpfs),
        log_dir=os.environ.get(LOG_DIR_ENV, ""),
    )  # fmt: skip


def run_options(a: argparse.Namespace) -> ContainerOptions:
    """The ContainerOptions ``seacan run``'s flags describe (before networks and volumes)."""
    from seacan.engine import plan

    return plan.plan(run_spec(a)).options


def _warn(warnings: Sequence[str]) -> None:
    for w in warnings:
        print(f"seacan: {w}", file=sys.stderr)


def run_fast(a: argparse.Namespace) -> int | None:
    """``run -d`` in one request to the engine service, without asyncio or grpcio
    (None when not detached: the async handler runs it, with its own stdio)."""
    if not a.detach:
        return None
    from seacan import h2grpc, scope
    from seacan.engine import wire

    req = wire.encode_spec(run_spec(a))
    ns = scope.validate_identifier(a.namespace, "namespace")
    with h2grpc.Channel(a.address, metadata=[(scope.NAMESPACE_HEADER, ns)]) as ch:
        try:
            started = wire.decode_started(ch.unary(wire.RUN, req))
        except pbwire.Malformed as e:
            raise errors.Internal(f"run: a malformed answer from seacand: {e}") from None
    _warn(started.warnings)
    sys.stdout.write(started.id + "\n")
    return 0


async def _remove(c: Client, created: Created) -> None:
    """``run --rm`` after the exit: the container, its volume references and endpoints go."""
    import asyncio

    from seacan.cli import containers as cc

    async def container() -> None:
        await cc.remove_container(c, created.id, force=True)
        if created.made.volumes:
            await c.volumes.release(created.id, remove_anonymous=True)

    async def networks() -> None:  # the task has exited: its network goes meanwhile
        if created.made.networks:
            await runnet.detach(c, created.id)

    removed, _ = await asyncio.gather(container(), networks(), return_exceptions=True)
    if isinstance(removed, BaseException):
        raise removed


async def run(c: Client, a: argparse.Namespace) -> int:
    from seacan import cio
    from seacan.cli import containers as cc
    from seacan.cli import tasks as ct
    from seacan.containers import Container
    from seacan.engine import run as engine
    from seacan.tasks import CreateOptions

    spec = run_spec(a)
    if a.detach:
        started = await engine.run_detached(c, spec)
        _warn(started.warnings)
        write(started.id + "\n")
        return 0
    created = await engine.create(c, spec)
    _warn(created.warnings)
    id = created.id

    async def create(f: cio.FifoSet) -> None:
        await created.create_task(  # the task starts once its networks are connected
            c.tasks.create(
                CreateOptions(id, created.rootfs, stdin=f.stdin, stdout=f.stdout,
                              stderr=f.stderr, terminal=a.tty)
            )
        )  # fmt: skip

    try:
        try:
            result = await ct.run_attached(
                c, id, interactive=a.interactive, terminal=a.tty, create=create
            )
        finally:
            await created.settle()
    except BaseException:
        with contextlib.suppress(errors.SeacanError):
            await cc.remove_container(c, id, force=True)
        await created.undo(c)  # what is left of it
        raise
    if a.rm:
        await _remove(c, created)
    else:
        with contextlib.suppress(errors.SeacanError):
            await c.tasks.delete(id)
        with contextlib.suppress(errors.SeacanError):
            await c.containers.update(
                Container(id=id, labels={LABEL_EXIT_STATUS: str(result.status)}),
                ["labels." + LABEL_EXIT_STATUS],
            )
    return ct.exit_code(result.status)


# --- ps -------------------------------------------------------------------------------


def status_text(cont: Container, task: Process | None) -> str:
    """docker's STATUS column: ``Up``, ``Paused``, ``Created``, ``Exited (N)``."""
    from seacan.tasks import Status

    if task is None:
        code = cont.labels.get(LABEL_EXIT_STATUS)
        return f"Exited ({code})" if code is not None else "Created"
    if task.status == Status.RUNNING:
        return "Up"
    if task.status in (Status.PAUSED, Status.PAUSING):
        return "Up (Paused)"
    if task.status == Status.STOPPED:
        return f"Exited ({task.exit_status})"
    return task.status.name.capitalize()


def command_text(cont: Container) -> str:
    from seacan.cli import containers as cc

    args = cc.spec_of(cont).get("process", {}).get("args") or []
    text = " ".join(str(x) for x in args)
    return '"' + (text if len(text) <= 20 else text[:19] + "…") + '"'


async def ps(c: Client, a: argparse.Namespace) -> int:
    from seacan.cli import output
    from seacan.tasks import Status

    items = sorted(
        await c.containers.list(),
        key=lambda x: x.created_at.timestamp() if x.created_at else 0.0,
        reverse=True,
    )
    procs = {t.container_id: t for t in await c.tasks.list()}
    shown = []
    for cont in items:
        task = procs.get(cont.id)
        running = task is not None and task.status in (
            Status.RUNNING, Status.PAUSED, Status.PAUSING
        )  # fmt: skip
        if a.all or running:
            shown.append((cont, task))
    if a.quiet:
        write("".join(cont.id + "\n" for cont, _ in shown))
        return 0
    rows = [
        (cont.id, cont.image or "-", command_text(cont), output.age(cont.created_at) + " ago",
         status_text(cont, task))
        for cont, task in shown
    ]  # fmt: skip
    write(output.table(["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS"], rows)
          .replace("CONTAINER ID", "CONTAINER ID"))  # fmt: skip
    return 0


# --- stats ----------------------------------------------------------------------------


async def _sample(c: Client, ids: Sequence[str]) -> dict[str, stats.Usage]:
    from seacan.tasks import stats

    metrics = await c.tasks.metrics([f"id=={i}" for i in ids])
    return {m.id: stats.decode(m.data) for m in metrics}


async def stats_(c: Client, a: argparse.Namespace) -> int:
    """docker stats: CPU over a one-second interval, memory, pids; --no-stream prints once."""
    import asyncio

    from seacan.cli import output
    from seacan.tasks import Status

    ids = list(a.ids) or [
        t.container_id for t in await c.tasks.list() if t.status == Status.RUNNING
    ]
    from seacan.tasks import stats

    cpus = os.cpu_count() or 1
    while True:
        t0, before = time.monotonic_ns(), await _sample(c, ids)
        await asyncio.sleep(1.0)
        t1, after = time.monotonic_ns(), await _sample(c, ids)
        rows = []
        for cid in ids:
            if cid not in after:
                raise errors.NotFound(f"no running task for container {cid!r}")
            u = after[cid]
            cpu = stats.cpu_percent(before.get(cid, u), u, t1 - t0, cpus)
            mem_pct = 100.0 * u.memory / u.memory_limit if u.memory_limit else 0.0
            usage = f"{output.human_size(u.memory)} / {output.human_size(u.memory_limit)}"
            rows.append((cid, f"{cpu:.2f}%", usage, f"{mem_pct:.2f}%", str(u.pids)))
        write(output.table(["CONTAINER ID", "CPU %", "MEM USAGE / LIMIT", "MEM %", "PIDS"], rows))
        if a.no_stream:
            return 0


# --- logs -----------------------------------------------------------------------------


def tail_lines(data: bytes, n: int | None) -> bytes:
    """The last ``n`` lines of ``data`` (all when None)."""
    if n is None or n < 0:
        return data
    if n == 0:
        return b""
    lines = data.splitlines(keepends=True)
    return b"".join(lines[-n:])


def _out(data: bytes) -> None:
    if data:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()


class _CriReader:
    """A CRI log file's records as ``logs`` prints them, chunk by chunk."""

    def __init__(self, id: str, timestamps: bool) -> None:
        self.id = id
        self.timestamps = timestamps
        from seacan import logformat

        self.decoder = logformat.Decoder()
        self.at_line_start = True

    def records(self, data: bytes) -> list[logformat.Record]:
        try:
            return self.decoder.feed(data)
        except ValueError as e:
            raise errors.Internal(f"log of container {self.id!r} is not in CRI format: {e}") from e

    def render(self, records: list[logformat.Record]) -> bytes:
        from seacan import logformat

        out = logformat.render(
            records, timestamps=self.timestamps, at_line_start=self.at_line_start
        )
        self.at_line_start = logformat.ends_line(records, self.at_line_start)
        return out


async def logs(c: Client, a: argparse.Namespace) -> int:
    """docker logs: the log file's text; CRI logs (seacan's shim) also have timestamps."""
    import asyncio

    from seacan import cio, logformat
    from seacan.cli import containers as cc
    from seacan.cli import tasks as ct
    from seacan.tasks import Status

    cont = await c.containers.get(a.id)
    cri = ct.log_format_of(cont.labels) == logformat.FORMAT_CRI
    if a.timestamps and not cri:
        rt = cont.runtime.name or "?"
        why = (
            f"runtime {rt} writes raw output"
            if ct.log_format_for(rt) == logformat.FORMAT_RAW
            else f"its log is raw: no {ct.LABEL_LOG_FORMAT}=cri label"
        )
        raise errors.FailedPrecondition(f"logs of container {a.id} have no timestamps ({why})")
    tail = None if a.tail in ("all", "") else int(a.tail)
    path = cio.log_path(c.namespace, a.id)
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        return 0  # never started detached: nothing logged
    reader = _CriReader(a.id, a.timestamps)

    def convert(data: bytes) -> bytes:
        return reader.render(reader.records(data)) if cri else data

    with f:
        if cri:
            _out(reader.render(logformat.tail(reader.records(f.read()), tail)))
        else:
            _out(tail_lines(f.read(), tail))
        while a.follow:
            chunk = f.read()
            if chunk:
                _out(convert(chunk))
                continue
            task = await cc.task_of(c, a.id)
            if task is None or task.status == Status.STOPPED:
                _out(convert(f.read()))
                break
            await asyncio.sleep(0.2)
    return 0


# --- exec / start / stop / kill / rm / wait / pause ----------------------------------


async def exec_(c: Client, a: argparse.Namespace) -> int:
    from seacan.cli import tasks as ct

    return await ct.exec_attached(
        c, a.id, a.command, interactive=a.interactive, terminal=a.tty,
        env=list(parse_env(a.env)), cwd=a.workdir, user=a.user,
    )  # fmt: skip


async def start(c: Client, a: argparse.Namespace) -> int:
    from seacan.cli import containers as cc
    from seacan.cli import tasks as ct
    from seacan.tasks import Status

    code = 0
    for id in a.ids:
        try:
            task = await cc.task_of(c, id)
            if task is not None and task.status != Status.STOPPED:
                write(id + "\n")
                continue
            if task is not None:
                await c.tasks.delete(id)
            await runnet.reattach(c, id)
            await ct.start_detached(c, id)
        except errors.SeacanError as e:
            print(f"seacan: {e}", file=sys.stderr)
            code = 1
            continue
        write(id + "\n")
    return code


async def stop_one(c: Client, id: str, timeout: float) -> None:
    """The stop signal, ``timeout`` seconds' grace, then SIGKILL; until it exited."""
    import asyncio

    from seacan.cli import containers as cc
    from seacan.cli import tasks as ct
    from seacan.tasks import Status

    task = await cc.task_of(c, id)
    if task is None or task.status == Status.STOPPED:
        await c.containers.get(id)
        return
    waiter = asyncio.ensure_future(c.tasks.wait(id))
    try:
        if task.status == Status.PAUSED:
            await c.tasks.resume(id)
        with contextlib.suppress(errors.NotFound, errors.FailedPrecondition):
            await c.tasks.kill(id, await ct.stop_signal(c, id))
        try:
            await asyncio.wait_for(asyncio.shield(waiter), timeout)
        except TimeoutError:
            with contextlib.suppress(errors.NotFound, errors.FailedPrecondition):
                await c.tasks.kill(id, signal.SIGKILL, all=True)
            await waiter
    finally:
        waiter.cancel()


async def stop(c: Client, a: argparse.Namespace) -> int:
    code = 0
    for id in a.ids:
        try:
            await stop_one(c, id, a.time)
        except errors.SeacanError as e:
            print(f"seacan: {e}", file=sys.stderr)
            code = 1
            continue
        write(id + "\n")
    return code


async def kill(c: Client, a: argparse.Namespace) -> int:
    from seacan.cli import tasks as ct

    sig = ct.parse_signal(a.signal)
    code = 0
    for id in a.ids:
        try:
            await c.tasks.kill(id, sig)
        except errors.SeacanError as e:
            print(f"seacan: {e}", file=sys.stderr)
            code = 1
            continue
        write(id + "\n")
    return code


async def rm(c: Client, a: argparse.Namespace) -> int:
    from seacan.cli import containers as cc

    code = await cc.rm_many(c, a.ids, a.force)
    if a.volumes:
        code = max(code, await runvolumes.remove_anonymous(c, a.ids))
    return code


async def wait(c: Client, a: argparse.Namespace) -> int:
    code = 0
    for id in a.ids:
        try:
            result = await c.tasks.wait(id)
        except errors.NotFound:
            cont = await c.containers.get(id)
            write(cont.labels.get(LABEL_EXIT_STATUS, "0") + "\n")
            continue
        except errors.SeacanError as e:
            print(f"seacan: {e}", file=sys.stderr)
            code = 1
            continue
        write(f"{result.status}\n")
    return code


async def pause(c: Client, a: argparse.Namespace) -> int:
    for id in a.ids:
        await c.tasks.pause(id)
        write(id + "\n")
    return 0


async def unpause(c: Client, a: argparse.Namespace) -> int:
    for id in a.ids:
        await c.tasks.resume(id)
        write(id + "\n")
    return 0


async def inspect(c: Client, a: argparse.Namespace) -> int:
    from seacan.cli import containers as cc
    from seacan.cli import output

    out = []
    for id in a.ids:
        cont = await c.containers.get(id)
        out.append(cc.info_json(cont, await cc.task_of(c, id)))
    write(output.to_json(out))
    return 0


# --- events -----------------------------------------------------------------------------


def event_text(env: Envelope) -> str:
    """ctr's line: ``TIMESTAMP NAMESPACE TOPIC {event JSON}``."""
    from google.protobuf import json_format, symbol_database

    import seacan.api.events.container_pb2
    import seacan.api.events.content_pb2
    import seacan.api.events.namespace_pb2
    import seacan.api.events.snapshot_pb2
    import seacan.api.events.task_pb2  # noqa: F401
    from seacan.cli import output

    body: Any = "{}"
    try:
        cls = symbol_database.Default().GetSymbol(env.event.type_url.rpartition("/")[2])
        msg = cls.FromString(env.event.value)
        body = json_format.MessageToJson(msg, indent=None, preserving_proto_field_name=True)
    except (KeyError, ValueError, TypeError):
        body = f'{{"type_url": "{env.event.type_url}"}}'
    return f"{output._plain(env.timestamp)} {env.namespace} {env.topic} {body}"


async def events(c: Client, a: argparse.Namespace) -> int:
    async for env in c.events.subscribe(a.filters):
        write(event_text(env) + "\n")
    return 0


# --- the parsers --------------------------------------------------------------------------


def _cmd(subs: Subparsers, name: str, func: Any, help_: str) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = subs.add_parser(name, help=help_, description=help_)
    p.set_defaults(func=func, noun_parser=p)
    return p


def add_run_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rm", action="store_true", help="remove the container when it exits")
    p.add_argument("-d", "--detach", action="store_true", help="run in the background")
    p.add_argument("-i", "--interactive", action="store_true", help="keep stdin open")
    p.add_argument("-t", "--tty", action="store_true", help="allocate a terminal")
    p.add_argument("--name", default="", help="the container's ID (default: random)")
    p.add_argument("-e", "--env", action="append", default=[], metavar="K=V")
    p.add_argument("-w", "--workdir", default="", metavar="DIR")
    p.add_argument("-u", "--user", default="", metavar="USER[:GROUP]")
    p.add_argument("--entrypoint", default=None, help="override the image's entrypoint")
    p.add_argument("--hostname", default="")
    p.add_argument("-m", "--memory", default="", help="memory limit (e.g. 64m)")
    p.add_argument("--cpus", type=float, default=None, help="CPU limit (e.g. 0.5)")
    p.add_argument("--pids-limit", type=int, default=None)
    p.add_argument("--read-only", action="store_true", help="mount the rootfs read-only")
    p.add_argument("--cap-add", action="append", default=[], metavar="CAP")
    p.add_argument("--cap-drop", action="append", default=[], metavar="CAP")
    p.add_argument("--privileged", action="store_true")
    p.add_argument("--runtime", default="", help="runtime (default io.containerd.seacan.v2)")
    runnet.add_flags(p)
    runvolumes.add_flags(p)
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("command", nargs=argparse.REMAINDER, metavar="CMD")


def register(subs: Subparsers) -> None:
    p = _cmd(subs, "run", run, "run a command in a new container")
    p.set_defaults(fast=run_fast)
    add_run_flags(p)
    p = _cmd(subs, "ps", ps, "list containers")
    p.add_argument("-a", "--all", action="store_true", help="also stopped containers")
    p.add_argument("-q", "--quiet", action="store_true", help="print only IDs")
    p = _cmd(subs, "logs", logs, "print a detached container's output")
    p.add_argument("-f", "--follow", action="store_true")
    p.add_argument("-n", "--tail", default="all", help="lines from the end (default all)")
    p.add_argument("-t", "--timestamps", action="store_true")
    p.add_argument("id", metavar="ID")
    p = _cmd(subs, "exec", exec_, "run a command in a running container")
    p.add_argument("-i", "--interactive", action="store_true")
    p.add_argument("-t", "--tty", action="store_true")
    p.add_argument("-e", "--env", action="append", default=[], metavar="K=V")
    p.add_argument("-u", "--user", default="", metavar="UID[:GID]")
    p.add_argument("-w", "--workdir", default="", metavar="DIR")
    p.add_argument("id", metavar="ID")
    p.add_argument("command", nargs=argparse.REMAINDER, metavar="CMD")
    p = _cmd(subs, "start", start, "start stopped containers (detached)")
    p.add_argument("ids", nargs="+", metavar="ID")
    p = _cmd(subs, "stop", stop, "stop containers: stop signal, grace period, SIGKILL")
    p.add_argument("-t", "--time", type=float, default=STOP_TIMEOUT, metavar="SECONDS")
    p.add_argument("ids", nargs="+", metavar="ID")
    p = _cmd(subs, "kill", kill, "signal containers")
    p.add_argument("-s", "--signal", default="SIGKILL")
    p.add_argument("ids", nargs="+", metavar="ID")
    p = _cmd(subs, "rm", rm, "remove containers")
    p.add_argument("-f", "--force", action="store_true", help="kill a running container first")
    p.add_argument("-v", "--volumes", action="store_true", help="also their anonymous volumes")
    p.add_argument("ids", nargs="+", metavar="ID")
    p = _cmd(subs, "wait", wait, "wait for containers to exit; print their exit status")
    p.add_argument("ids", nargs="+", metavar="ID")
    p = _cmd(subs, "pause", pause, "pause containers")
    p.add_argument("ids", nargs="+", metavar="ID")
    p = _cmd(subs, "unpause", unpause, "resume paused containers")
    p.add_argument("ids", nargs="+", metavar="ID")
    p = _cmd(subs, "inspect", inspect, "show containers as JSON")
    p.add_argument("ids", nargs="+", metavar="ID")
    p = _cmd(subs, "stats", stats_, "show containers' CPU, memory and pids use")
    p.add_argument("--no-stream", action="store_true", help="print once and exit")
    p.add_argument("ids", nargs="*", metavar="ID")
    p = _cmd(subs, "events", events, "print events as they happen")
    p.add_argument("filters", nargs="*", metavar="FILTER")
