"""seacan tasks: start, ls, ps, kill, exec, pause, resume, metrics, rm, attach (ctr's grammar).

Also the task life cycle ``run``, ``start`` and ``exec`` share:

* attached: FIFOs (:mod:`seacan.cio`), Create, copy, **Wait before Start**,
  Start, SIGINT/SIGTERM forwarded as Kill, the exit status returned, the
  output drained, the FIFO directory removed;
* detached: ``file://`` log URIs, Create, Start.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from seacan import cio, errors, logformat
from seacan.cli import output
from seacan.cli.commands import Subparsers, add_format, add_quiet, noun, verb, write
from seacan.cli.containers import spec_of
from seacan.client import DEFAULT_SNAPSHOTTER, Client
from seacan.containers import Container
from seacan.engine.plan import random_id
from seacan.engine.run import LABEL_LOG_FORMAT, log_format_for, log_format_of
from seacan.tasks import CreateOptions, ExecOptions, Exit

DRAIN_TIMEOUT = 5.0  # seconds to wait for the shim to close its FIFO ends after an exit


def parse_signal(text: str) -> int:
    """``9``, ``KILL``, ``SIGKILL``, ``sigkill`` -> 9; InvalidArgument otherwise."""
    t = text.strip().upper()
    if t.isdigit():
        n = int(t)
        if 0 < n < 65:
            return n
    else:
        name = t if t.startswith("SIG") else "SIG" + t
        with contextlib.suppress(KeyError):
            return int(signal.Signals[name])
    raise errors.InvalidArgument(f"invalid signal {text!r}")


def exit_code(status: int) -> int:
    """The status a shell would report (docker: 0..255)."""
    return status if 0 <= status <= 255 else 255


Starter = Callable[[], Awaitable[int]]


async def run_attached(
    c: Client,
    id: str,
    *,
    exec_id: str = "",
    interactive: bool,
    terminal: bool,
    create: Callable[[cio.FifoSet], Awaitable[None]],
) -> Exit:
    """Create (via ``create``), attach, wait, start; until the process exits."""
    loop = asyncio.get_running_loop()
    background: set[asyncio.Task[Any]] = set()

    def spawn(coro: Awaitable[Any], name: str) -> None:
        t = asyncio.ensure_future(coro)
        t.set_name(name)
        background.add(t)
        t.add_done_callback(background.discard)

    async def close_stdin() -> None:
        with contextlib.suppress(errors.SeacanError):
            await c.tasks.close_io(id, exec_id)

    async def forward(sig: int) -> None:
        with contextlib.suppress(errors.SeacanError):
            await c.tasks.kill(id, sig, exec_id=exec_id)

    def on_signal(sig: int) -> None:
        spawn(forward(sig), "forward")

    async def resize() -> None:
        size = cio.terminal_size(sys.stdin.fileno()) or cio.terminal_size(sys.stdout.fileno())
        if size is not None:
            with contextlib.suppress(errors.SeacanError):
                await c.tasks.resize_pty(id, size[0], size[1], exec_id)

    fifos = cio.new_fifo_set(id, stdin=interactive, terminal=terminal)
    with fifos, cio.Attached(fifos) as io:
        await create(fifos)
        io.start(
            sys.stdin.fileno() if interactive else None,
            sys.stdout.fileno(),
            sys.stderr.fileno(),
            close_stdin,
        )
        waiter = asyncio.ensure_future(c.tasks.wait(id, exec_id))
        await asyncio.sleep(0)  # the Wait call goes out before Start
        try:
            with contextlib.ExitStack() as stack:
                if terminal and interactive:
                    stack.enter_context(cio.raw_terminal(sys.stdin.fileno()))
                for sig in (signal.SIGINT, signal.SIGTERM):
                    loop.add_signal_handler(sig, on_signal, sig)
                    stack.callback(loop.remove_signal_handler, sig)
                if terminal:
                    loop.add_signal_handler(signal.SIGWINCH, lambda: spawn(resize(), "resize"))
                    stack.callback(loop.remove_signal_handler, signal.SIGWINCH)
                await c.tasks.start(id, exec_id)
                if terminal:
                    await resize()
                result = await waiter
                await io.wait(DRAIN_TIMEOUT)
            return result
        finally:
            waiter.cancel()
            for t in list(background):
                t.cancel()


async def create_task_attached(c: Client, id: str, *, interactive: bool, terminal: bool) -> Exit:
    """A new task for container ``id`` with our stdio; until it exits. The task is kept."""
    cont = await c.containers.get(id)
    rootfs = await c.snapshotter(cont.snapshotter or DEFAULT_SNAPSHOTTER).mounts(cont.snapshot_key)

    async def create(f: cio.FifoSet) -> None:
        await c.tasks.create(
            CreateOptions(
                id, rootfs, stdin=f.stdin, stdout=f.stdout, stderr=f.stderr, terminal=terminal
            )
        )

    return await run_attached(c, id, interactive=interactive, terminal=terminal, create=create)


async def start_detached(c: Client, id: str, cont: Container | None = None) -> int:
    """A new task for container ``id`` (``cont``, when just made) writing to its log file;
    started. Its PID.

    The log is in the container's format (:func:`log_format_of`): for CRI the
    URI says ``?format=cri`` and seacan's shim writes timestamped records.
    """
    cont = cont or await c.containers.get(id)
    rootfs = await c.snapshotter(cont.snapshotter or DEFAULT_SNAPSHOTTER).mounts(cont.snapshot_key)
    log = cio.log_path(c.namespace, id)
    log.parent.mkdir(parents=True, exist_ok=True)
    uri = cio.log_uri(log)
    if log_format_of(cont.labels) == logformat.FORMAT_CRI:
        uri += "?format=cri"
    terminal = bool(spec_of(cont).get("process", {}).get("terminal"))
    await c.tasks.create(
        CreateOptions(id, rootfs, stdout=uri, stderr="" if terminal else uri, terminal=terminal)
    )
    try:
        return await c.tasks.start(id)
    except BaseException:
        with contextlib.suppress(errors.SeacanError):
            await c.tasks.delete(id)
        raise


def exec_spec(
    container_spec: dict[str, Any],
    args: list[str],
    *,
    terminal: bool,
    env: list[str] = [],  # noqa: B006 - never mutated
    cwd: str = "",
    user: str = "",
) -> bytes:
    """The process spec for an exec: the container's process with ``args`` and overrides."""
    proc: dict[str, Any] = dict(container_spec.get("process") or {})
    if not args:
        raise errors.InvalidArgument("exec: a command is required")
    proc["args"] = list(args)
    proc["terminal"] = terminal
    if env:
        keys = {e.partition("=")[0] for e in env}
        proc["env"] = [e for e in proc.get("env", []) if e.partition("=")[0] not in keys] + env
    if cwd:
        proc["cwd"] = cwd
    if user:
        uid, _, gid = user.partition(":")
        if not uid.isdigit() or (gid and not gid.isdigit()):
            raise errors.InvalidArgument(f"exec: user {user!r}: want UID[:GID] (numeric)")
        proc["user"] = {"uid": int(uid), "gid": int(gid or 0)}
    return json.dumps(proc).encode()


async def exec_attached(
    c: Client,
    id: str,
    args: list[str],
    *,
    exec_id: str = "",
    interactive: bool = False,
    terminal: bool = False,
    env: list[str] = [],  # noqa: B006 - never mutated
    cwd: str = "",
    user: str = "",
) -> int:
    cont = await c.containers.get(id)
    spec = exec_spec(spec_of(cont), args, terminal=terminal, env=env, cwd=cwd, user=user)
    eid = exec_id or "exec-" + random_id()

    async def create(f: cio.FifoSet) -> None:
        await c.tasks.exec(
            ExecOptions(id, eid, spec, f.stdin, f.stdout, f.stderr, terminal=terminal)
        )

    try:
        result = await run_attached(
            c, id, exec_id=eid, interactive=interactive, terminal=terminal, create=create
        )
    finally:
        with contextlib.suppress(errors.SeacanError):
            await c.tasks.delete_process(id, eid)
    return exit_code(result.status)


# --- commands ----------------------------------------------------------------------


async def tasks_start(c: Client, a: argparse.Namespace) -> int:
    if a.detach:
        await start_detached(c, a.id)
        return 0
    cont = await c.containers.get(a.id)
    terminal = bool(spec_of(cont).get("process", {}).get("terminal"))
    result = await create_task_attached(c, a.id, interactive=True, terminal=terminal)
    with contextlib.suppress(errors.SeacanError):
        await c.tasks.delete(a.id)
    return exit_code(result.status)


async def tasks_ls(c: Client, a: argparse.Namespace) -> int:
    items = sorted(await c.tasks.list(), key=lambda t: t.container_id)
    if a.quiet:
        write("".join(t.container_id + "\n" for t in items))
    elif a.format == "json":
        write(output.to_json(items))
    else:
        rows = [(t.container_id, str(t.pid), t.status.name) for t in items]
        write(output.table(["TASK", "PID", "STATUS"], rows))
    return 0


async def tasks_ps(c: Client, a: argparse.Namespace) -> int:
    procs = await c.tasks.list_pids(a.id)
    rows = [(str(p.pid), p.info.type_url if p.info else "-") for p in procs]
    write(output.table(["PID", "INFO"], rows))
    return 0


async def tasks_kill(c: Client, a: argparse.Namespace) -> int:
    sig = parse_signal(a.signal) if a.signal else await stop_signal(c, a.id)
    await c.tasks.kill(a.id, sig, exec_id=a.exec_id, all=a.all)
    return 0


async def stop_signal(c: Client, id: str) -> int:
    from seacan.tasks import LABEL_STOP_SIGNAL

    cont = await c.containers.get(id)
    return parse_signal(cont.labels.get(LABEL_STOP_SIGNAL) or "SIGTERM")


async def tasks_exec(c: Client, a: argparse.Namespace) -> int:
    return await exec_attached(
        c, a.id, a.command, exec_id=a.exec_id, interactive=a.tty, terminal=a.tty, cwd=a.cwd
    )


async def tasks_pause(c: Client, a: argparse.Namespace) -> int:
    await c.tasks.pause(a.id)
    return 0


async def tasks_resume(c: Client, a: argparse.Namespace) -> int:
    await c.tasks.resume(a.id)
    return 0


def metric_rows(metrics: list[Any]) -> list[tuple[str, str, str, str]]:
    return [
        (
            m.id,
            output._plain(m.timestamp) or "-",
            m.data.type_url if m.data else "-",
            str(len(m.data.value)) if m.data else "0",
        )
        for m in metrics
    ]


async def tasks_metrics(c: Client, a: argparse.Namespace) -> int:
    metrics = await c.tasks.metrics([f"id=={a.id}"] if a.id else [])
    if a.format == "json":
        write(output.to_json(metrics))
        return 0
    write(output.table(["ID", "TIMESTAMP"], [r[:2] for r in metric_rows(metrics)]))
    from seacan.tasks import stats

    for m in metrics:
        write(output.table(["METRIC", "VALUE"], list(stats.decode(m.data).rows)))
    return 0


async def tasks_rm(c: Client, a: argparse.Namespace) -> int:
    if a.force:
        with contextlib.suppress(errors.NotFound, errors.FailedPrecondition):
            await c.tasks.kill(a.id, signal.SIGKILL, all=True)
            await c.tasks.wait(a.id)
    result = await c.tasks.delete(a.id)
    write(f"{a.id}: exit status {result.status}\n" if a.verbose else "")
    return 0


async def tasks_attach(c: Client, a: argparse.Namespace) -> int:
    proc = await c.tasks.get(a.id)
    if proc.stdout.startswith("file://") or not proc.stdout:
        raise errors.FailedPrecondition(
            f"task {a.id!r} is not attachable: its output goes to {proc.stdout or '/dev/null'}"
        )
    fifos = cio.FifoSet(
        Path(proc.stdout).parent, proc.stdin, proc.stdout, proc.stderr, proc.terminal
    )
    with cio.Attached(fifos) as io:  # not ``with fifos``: the FIFOs belong to whoever made them
        io.start(
            sys.stdin.fileno() if proc.stdin else None, sys.stdout.fileno(), sys.stderr.fileno()
        )
        with cio.raw_terminal(sys.stdin.fileno()) if proc.terminal else contextlib.nullcontext():
            result = await c.tasks.wait(a.id)
        await io.wait(DRAIN_TIMEOUT)
    return exit_code(result.status)


def register(subs: Subparsers) -> None:
    ts = noun(subs, "tasks", ["task", "t"], "manage tasks")
    p = verb(ts, "start", tasks_start, "start a container's task")
    p.add_argument("-d", "--detach", action="store_true", help="detach; output to the log file")
    p.add_argument("id", metavar="ID")
    p = verb(ts, "ls", tasks_ls, "list tasks", ["list"])
    add_quiet(p, "IDs")
    add_format(p)
    p = verb(ts, "ps", tasks_ps, "list a task's processes")
    p.add_argument("id", metavar="ID")
    p = verb(ts, "kill", tasks_kill, "signal a task")
    p.add_argument("-s", "--signal", default="", help="signal (default: the stop signal)")
    p.add_argument("-a", "--all", action="store_true", help="signal every process")
    p.add_argument("--exec-id", default="", help="signal this exec process")
    p.add_argument("id", metavar="ID")
    p = verb(ts, "exec", tasks_exec, "run another process in a task")
    p.add_argument("--exec-id", required=True, help="the exec process's ID")
    p.add_argument("-t", "--tty", action="store_true", help="allocate a terminal")
    p.add_argument("--cwd", default="", help="working directory")
    p.add_argument("id", metavar="ID")
    p.add_argument("command", nargs=argparse.REMAINDER, metavar="CMD")
    p = verb(ts, "pause", tasks_pause, "pause a task")
    p.add_argument("id", metavar="ID")
    p = verb(ts, "resume", tasks_resume, "resume a paused task")
    p.add_argument("id", metavar="ID")
    p = verb(ts, "metrics", tasks_metrics, "show a task's metrics", ["metric"])
    add_format(p)
    p.add_argument("id", metavar="ID")
    p = verb(ts, "rm", tasks_rm, "delete a stopped task", ["remove", "delete", "del"])
    p.add_argument("-f", "--force", action="store_true", help="kill it first")
    p.add_argument("-v", "--verbose", action="store_true", help="print the exit status")
    p.add_argument("id", metavar="ID")
    p = verb(ts, "attach", tasks_attach, "attach to a task's FIFOs")
    p.add_argument("id", metavar="ID")


__all__ = [
    "LABEL_LOG_FORMAT",
    "create_task_attached",
    "exec_attached",
    "exec_spec",
    "exit_code",
    "log_format_for",
    "log_format_of",
    "parse_signal",
    "register",
    "run_attached",
    "start_detached",
]
