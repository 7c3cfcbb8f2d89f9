"""The shim's containers and their processes: runc, the state table, exits.

One :class:`Tasks` per shim process. Each container has an *init* process
(the one ``runc create`` makes) and any number of *exec'd* processes. Every
move is checked against :mod:`seacan.shims.process` before runc runs, and
recorded after it succeeded.

Exits: the shim is the child subreaper of everything it starts, so every
process of its containers ends up as its child; the reaper (``main``) hands
each ``(pid, wait status)`` to :meth:`Tasks.on_exit`. An exit is matched to
its process by pid; an exit that arrives before its process is known (the
pid file is read after runc returns) or while the process is being started
is held back and applied once the start was published, so TaskStart always
comes before TaskExit. The init process's exit waits (briefly) for the exits
of the container's exec'd processes, so theirs are published first, as
containerd does. A signalled process exits with 128 + signal.

On disk, in the bundle: ``init.pid``, ``exit.json`` (the init process's pid,
exit status and time, for a ``delete`` run by a restarted client) and
``seacan-runtime.json`` (the runc binary and root, for the same ``delete``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from google.protobuf import any_pb2, timestamp_pb2

from seacan import errors, log
from seacan.api.events import task_pb2 as ev
from seacan.api.runtime.runc.options import oci_pb2
from seacan.api.types import mount_pb2
from seacan.mount import mount_all, unmount
from seacan.shims.events import Publisher
from seacan.shims.process import Op, ProcessState, Status
from seacan.shims.runc import Runc
from seacan.shims.stdio import ProcessIO, StdioPaths
from seacan.snapshots import Mount

_log = log.get("seacan.shims.task")

INIT_PID = "init.pid"
EXIT_FILE = "exit.json"
RUNTIME_FILE = "seacan-runtime.json"
RUNC_ROOT_ENV = "SEACAN_RUNC_ROOT"
DEFAULT_RUNC_ROOT = "/run/seacan/runc"
RUNC_OPTIONS = "containerd.runc.v1.Options"
EXEC_EXITS_GRACE = 2.0  # how long an init exit waits for its execs' exits
IO_GRACE = 2.0  # how long delete waits for output still being copied
_MAX_EARLY = 1024


def exit_code(wait_status: int) -> int:
    """The exit status containerd reports: the code, or 128 + signal."""
    if os.WIFSIGNALED(wait_status):
        return 128 + os.WTERMSIG(wait_status)
    if os.WIFEXITED(wait_status):
        return os.WEXITSTATUS(wait_status)
    return 255


def timestamp(at: datetime | None) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    if at is not None:
        ts.FromDatetime(at)
    return ts


@dataclass(frozen=True, slots=True)
class RuntimeConfig:
    """Which OCI runtime binary, with which ``--root`` (from ``containerd.runc.v1.Options``)."""

    binary: str
    root: Path
    systemd_cgroup: bool = False

    @classmethod
    def from_options(cls, options: any_pb2.Any | None, namespace: str) -> RuntimeConfig:
        opts = oci_pb2.Options()
        if options is not None and options.type_url.endswith(RUNC_OPTIONS) and options.value:
            opts.ParseFromString(options.value)
        base = opts.root or os.environ.get(RUNC_ROOT_ENV) or DEFAULT_RUNC_ROOT
        return cls(opts.binary_name or "runc", Path(base) / namespace, opts.systemd_cgroup)

    @classmethod
    def load(cls, bundle: Path, namespace: str) -> RuntimeConfig:
        try:
            doc = json.loads((bundle / RUNTIME_FILE).read_text())
            return cls(doc["binary"], Path(doc["root"]), bool(doc.get("systemd_cgroup")))
        except (OSError, ValueError, KeyError):
            return cls.from_options(None, namespace)

    def save(self, bundle: Path) -> None:
        doc = {"binary": self.binary, "root": str(self.root), "systemd_cgroup": self.systemd_cgroup}
        _write_atomic(bundle / RUNTIME_FILE, json.dumps(doc))

    def runc(self, bundle: Path) -> Runc:
        return Runc(
            self.root, bundle / "log.json", binary=self.binary, systemd_cgroup=self.systemd_cgroup
        )


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    except OSError as e:
        raise errors.Internal(f"write {path}: {e.strerror}") from e


@dataclass(frozen=True, slots=True)
class ExitRecord:
    pid: int
    exit_status: int
    exited_at: datetime

    @classmethod
    def load(cls, bundle: Path) -> ExitRecord | None:
        try:
            doc = json.loads((bundle / EXIT_FILE).read_text())
            return cls(
                int(doc["pid"]), int(doc["exit_status"]), datetime.fromisoformat(doc["exited_at"])
            )
        except (OSError, ValueError, KeyError):
            return None

    def save(self, bundle: Path) -> None:
        doc = {
            "pid": self.pid,
            "exit_status": self.exit_status,
            "exited_at": self.exited_at.isoformat(),
        }
        _write_atomic(bundle / EXIT_FILE, json.dumps(doc))


class Process:
    """The init process (``exec_id == ""``) or an exec'd one."""

    def __init__(
        self, container: Container, exec_id: str, paths: StdioPaths, spec: dict[str, Any] | None
    ) -> None:
        self.container = container
        self.exec_id = exec_id
        self.paths = paths
        self.spec = spec
        self.state = ProcessState(Status.CREATED, exec=bool(exec_id))
        self.pid = 0
        self.exit_status = 0
        self.exited_at: datetime | None = None
        self.io: ProcessIO | None = None
        self.starting = False
        self.exited = asyncio.Event()

    @property
    def id(self) -> str:
        """containerd's process id: the exec id, or the container id for init."""
        return self.exec_id or self.container.id

    @property
    def running(self) -> bool:
        return self.pid > 0 and not self.exited.is_set()


class Container:
    def __init__(self, id: str, bundle: Path, runc: Runc, mounted: bool) -> None:
        self.id = id
        self.bundle = bundle
        self.runc = runc
        self.mounted = mounted
        self.init: Process = Process(self, "", StdioPaths(), None)
        self.execs: dict[str, Process] = {}

    def process(self, exec_id: str) -> Process:
        if not exec_id:
            return self.init
        try:
            return self.execs[exec_id]
        except KeyError:
            raise errors.NotFound(f"process {exec_id} in container {self.id} not found") from None

    @property
    def rootfs(self) -> Path:
        return self.bundle / "rootfs"


class Tasks:
    """All containers of one shim, and the exits of their processes."""

    def __init__(self, namespace: str, publisher: Publisher) -> None:
        self.namespace = namespace
        self.publisher = publisher
        self.containers: dict[str, Container] = {}
        self._by_pid: dict[int, Process] = {}
        self._early: dict[int, tuple[int, datetime]] = {}
        self._bg: set[asyncio.Task[None]] = set()

    def container(self, id: str) -> Container:
        try:
            return self.containers[id]
        except KeyError:
            raise errors.NotFound(f"container {id} not found") from None

    def process(self, id: str, exec_id: str = "") -> Process:
        return self.container(id).process(exec_id)

    # --- lifecycle ------------------------------------------------------------

    async def create(
        self,
        id: str,
        bundle: Path,
        rootfs: Sequence[Mount],
        paths: StdioPaths,
        options: any_pb2.Any | None,
    ) -> Process:
        if id in self.containers:
            raise errors.AlreadyExists(f"container {id} already exists")
        cfg = RuntimeConfig.from_options(options, self.namespace)
        cfg.save(bundle)
        runc = cfg.runc(bundle)
        c = Container(id, bundle, runc, mounted=False)
        c.init = p = Process(c, "", paths, None)
        t0 = time.perf_counter()
        timing: dict[str, float] = {}
        try:
            if rootfs:
                c.rootfs.mkdir(exist_ok=True)
                await asyncio.to_thread(mount_all, rootfs, c.rootfs)
                c.mounted = True
            timing["mount_ms"] = _ms(t0)
            p.io = ProcessIO.open(paths)
            p.starting = True  # hold its exit until the pid is known
            pid = await runc.create(
                id,
                bundle,
                pid_file=bundle / INIT_PID,
                console_socket=p.io.console_socket,
                stdio=p.io.runc_stdio,
            )
            timing["runc_ms"] = _ms(t0)
            await p.io.started()
        except BaseException:
            await self._undo_create(c)
            raise
        self.containers[id] = c
        self.publisher.publish(
            "/tasks/create",
            ev.TaskCreate(
                container_id=id,
                bundle=str(bundle),
                rootfs=[
                    mount_pb2.Mount(
                        type=m.type, source=m.source, target=m.target, options=m.options
                    )
                    for m in rootfs
                ],
                io=ev.TaskIO(
                    stdin=paths.stdin,
                    stdout=paths.stdout,
                    stderr=paths.stderr,
                    terminal=paths.terminal,
                ),
                pid=pid,
            ),
        )
        p.starting = False
        self._track(p, pid)
        _log.debug("task.create_timing", container=id, total_ms=_ms(t0), **timing)
        return p

    async def _undo_create(self, c: Container) -> None:
        if c.init.io is not None:
            c.init.io.close()
        with contextlib.suppress(errors.SeacanError):
            await c.runc.delete(c.id, force=True)
        if c.mounted:
            with contextlib.suppress(errors.SeacanError):
                await asyncio.to_thread(unmount, c.rootfs)
            c.mounted = False

    async def start(self, id: str, exec_id: str) -> Process:
        c = self.container(id)
        p = c.process(exec_id)
        p.state.check(Op.START)
        if p.starting:
            raise errors.FailedPrecondition(f"process {p.id} is being started")
        p.starting = True
        try:
            assert p.io is not None
            if exec_id:
                c.init.state.check(Op.EXEC)
                assert p.spec is not None
                p.pid = await c.runc.exec(
                    id,
                    p.spec,
                    pid_file=c.bundle / f"{exec_id}.pid",
                    console_socket=p.io.console_socket,
                    stdio=p.io.runc_stdio,
                )
            else:
                await c.runc.start(id)
            await p.io.started()
            p.state = p.state.apply(Op.START)
            if exec_id:
                self.publisher.publish(
                    "/tasks/exec-started",
                    ev.TaskExecStarted(container_id=id, exec_id=exec_id, pid=p.pid),
                )
            else:
                self.publisher.publish("/tasks/start", ev.TaskStart(container_id=id, pid=p.pid))
        finally:
            p.starting = False
            if p.pid:
                self._track(p, p.pid)
        return p

    async def delete(self, id: str, exec_id: str) -> Process:
        c = self.container(id)
        p = c.process(exec_id)
        deleted = p.state.apply(Op.DELETE)
        if exec_id:
            del c.execs[exec_id]
            self._forget(p)
            if p.io is not None:
                p.io.close()
            p.state = deleted
            return p
        self._forget(p)
        with contextlib.suppress(errors.NotFound):
            await c.runc.delete(id, force=True)
        for proc in [p, *c.execs.values()]:
            if proc.io is not None:
                if not await proc.io.wait(IO_GRACE):
                    _log.warning("task.output_not_closed", container=id, process=proc.id)
                proc.io.close()
        if c.mounted:
            await asyncio.to_thread(unmount, c.rootfs)
            c.mounted = False
        p.state = deleted
        del self.containers[id]
        self.publisher.publish(
            "/tasks/delete",
            ev.TaskDelete(
                container_id=id,
                pid=p.pid,
                exit_status=p.exit_status,
                exited_at=timestamp(p.exited_at),
                id=id,
            ),
        )
        return p

    async def exec(self, id: str, exec_id: str, paths: StdioPaths, spec: dict[str, Any]) -> Process:
        c = self.container(id)
        c.init.state.check(Op.EXEC)
        if not exec_id:
            raise errors.InvalidArgument("exec id must not be empty")
        if exec_id in c.execs:
            raise errors.AlreadyExists(f"id {exec_id}: already exists")
        if paths.terminal:
            spec = {**spec, "terminal": True}
        p = Process(c, exec_id, paths, spec)
        p.io = ProcessIO.open(paths)
        c.execs[exec_id] = p
        self.publisher.publish(
            "/tasks/exec-added", ev.TaskExecAdded(container_id=id, exec_id=exec_id)
        )
        return p

    async def kill(self, id: str, exec_id: str, signal: int, all: bool) -> None:
        c = self.container(id)
        p = c.process(exec_id)
        p.state.check(Op.KILL)
        if exec_id:
            if not p.running:
                raise errors.NotFound("process already finished")
            try:
                os.kill(p.pid, signal)
            except ProcessLookupError:
                raise errors.NotFound("process already finished") from None
            return
        try:
            await c.runc.kill(id, signal, all=all)
        except errors.FailedPrecondition as e:
            raise errors.NotFound(f"process already finished: {e}") from None

    async def wait(self, id: str, exec_id: str) -> Process:
        p = self.process(id, exec_id)
        await p.exited.wait()
        return p

    async def pause(self, id: str) -> None:
        c = self.container(id)
        new = c.init.state.apply(Op.PAUSE)
        await c.runc.pause(id)
        c.init.state = new
        self.publisher.publish("/tasks/paused", ev.TaskPaused(container_id=id))

    async def resume(self, id: str) -> None:
        c = self.container(id)
        new = c.init.state.apply(Op.RESUME)
        await c.runc.resume(id)
        c.init.state = new
        self.publisher.publish("/tasks/resumed", ev.TaskResumed(container_id=id))

    async def pids(self, id: str) -> list[tuple[int, str]]:
        """``(pid, exec id or "")`` of every process in the container."""
        c = self.container(id)
        by_pid = {p.pid: p.exec_id for p in c.execs.values() if p.pid}
        return [(pid, by_pid.get(pid, "")) for pid in await c.runc.ps(id)]

    async def update(self, id: str, resources: dict[str, Any]) -> None:
        c = self.container(id)
        c.init.state.check(Op.UPDATE)
        await c.runc.update(id, resources)

    def resize(self, id: str, exec_id: str, width: int, height: int) -> None:
        p = self.process(id, exec_id)
        p.state.check(Op.RESIZE)
        if p.io is None:
            raise errors.FailedPrecondition(f"process {p.id} has no terminal")
        p.io.resize(width, height)

    def close_io(self, id: str, exec_id: str) -> None:
        p = self.process(id, exec_id)
        if p.io is not None:
            p.io.close_stdin()

    async def stats(self, id: str) -> dict[str, Any]:
        c = self.container(id)
        return await c.runc.stats(id)

    # --- exits ------------------------------------------------------------------

    def on_exit(self, pid: int, wait_status: int) -> None:
        """The reaper saw ``pid`` exit (any child of the shim, known or not)."""
        code, at = exit_code(wait_status), datetime.now(UTC)
        p = self._by_pid.get(pid)
        if p is None or p.starting:
            if len(self._early) >= _MAX_EARLY:
                self._early.pop(next(iter(self._early)))
            self._early[pid] = (code, at)
            return
        self._exited(p, code, at)

    def _track(self, p: Process, pid: int) -> None:
        p.pid = pid
        if p.exited.is_set():
            return
        early = self._early.pop(pid, None)
        if early is not None:
            self._exited(p, *early)
        else:
            self._by_pid[pid] = p

    def _forget(self, p: Process) -> None:
        if self._by_pid.get(p.pid) is p:
            del self._by_pid[p.pid]

    def _exited(self, p: Process, code: int, at: datetime) -> None:
        self._forget(p)
        execs = [e.exited for e in p.container.execs.values() if e.running]
        if p.exec_id or not execs:
            self._finish(p, code, at)
            return

        async def after_execs() -> None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(EXEC_EXITS_GRACE):
                    await asyncio.gather(*(e.wait() for e in execs))
            self._finish(p, code, at)

        t = asyncio.create_task(after_execs())
        self._bg.add(t)
        t.add_done_callback(self._bg.discard)

    def _finish(self, p: Process, code: int, at: datetime) -> None:
        if p.exited.is_set():
            return
        p.state = p.state.apply(Op.EXIT)
        p.exit_status, p.exited_at = code, at
        if not p.exec_id:
            try:
                ExitRecord(p.pid, code, at).save(p.container.bundle)
            except errors.SeacanError as e:
                _log.warning("task.exit_record_failed", container=p.container.id, error=str(e))
        _log.info("task.exit", container=p.container.id, process=p.id, pid=p.pid, status=code)
        self.publisher.publish(
            "/tasks/exit",
            ev.TaskExit(
                container_id=p.container.id,
                id=p.id,
                pid=p.pid,
                exit_status=code,
                exited_at=timestamp(at),
            ),
        )
        p.exited.set()


def _ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000, 1)
