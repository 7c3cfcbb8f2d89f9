"""The task manager: one shim per task, found again after a restart.

containerd's runtime v2 manager in Python. ``create`` makes the bundle,
starts the shim binary (``start``), connects over ttrpc and asks the shim to
create the task; every later call goes to that shim. ``load`` runs at start:
it walks the bundles, reconnects to every shim in parallel with short
deadlines, and cleans up after a shim that is gone (``delete`` subcommand,
then TaskExit and TaskDelete with the status it reports, or 255).

A shim that dies while we run (its ttrpc connection closes and it was not
us closing it) is cleaned up the same way, as containerd's shim manager
does: ``<shim> delete`` (``runc delete --force``: the container dies too),
then TaskExit with the status the shim had recorded (its own ``exit.json``,
or the TaskExit it had published before it died), or 137. The task then
stays, stopped, with that status (``dead-exit`` in its bundle, so it
survives a restart) until it is deleted, which publishes TaskDelete; a
Wait that was pending on the dead shim answers with that status.

Events about tasks (TaskCreate, TaskStart, TaskExit, TaskDelete, exec
events) are published by the shims themselves; the manager publishes only
for a shim that died (as containerd's ``cleanupAfterDeadShim``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol, TypeVar

from google.protobuf import any_pb2, empty_pb2
from google.protobuf.message import DecodeError, Message

from seacan import errors, grpcutil, log, scope
from seacan.api.events import task_pb2 as epb
from seacan.api.runtime.task.v2 import shim_pb2 as spb
from seacan.api.types import mount_pb2
from seacan.api.types.task import task_pb2 as tpb
from seacan.containers import Container
from seacan.events import TASK_DELETE, TASK_EXIT, Envelope, any_of

from . import shim_client
from .bundle import Bundle, walk
from .events import Exchange
from .shim_client import Cmdline, LogReader, ShimClient

R = TypeVar("R", bound=Message)

CONNECT_TIMEOUT = 2.0  # dialling a shim's socket on load
LOAD_TIMEOUT = 5.0  # Connect on load (io.containerd.timeout.shim.load)
SHUTDOWN_TIMEOUT = 3.0
DEAD_SHIM_STATUS = 255
SETTLE_TIMEOUT = 10.0  # a call that saw its shim go waits this long for the cleanup

_log = log.get("seacan.tasks")

RUNNING_STATES = (tpb.RUNNING, tpb.PAUSED, tpb.PAUSING)


class ContainerLookup(Protocol):
    async def get(self, id: str, /) -> Container: ...


@dataclass(slots=True)
class Task:
    bundle: Bundle
    binary: str
    shim: ShimClient | None  # None: its shim had died before this process started
    pid: int
    logs: LogReader | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    # The init process's exit as its shim published it (the truth, if the shim dies later).
    last_exit: epb.TaskExit | None = None
    # Once the shim died: what its cleanup reported (pid, exit status, time).
    exited: spb.DeleteResponse | None = None
    # Set once the end of the shim's connection has been dealt with.
    settled: asyncio.Event = field(default_factory=asyncio.Event)
    watcher: asyncio.Task[None] | None = None

    @property
    def id(self) -> str:
        return self.bundle.id


@dataclass(frozen=True, slots=True)
class CreateOptions:
    rootfs: Sequence[mount_pb2.Mount] = ()
    stdin: str = ""
    stdout: str = ""
    stderr: str = ""
    terminal: bool = False
    options: any_pb2.Any | None = None
    runtime_path: str = ""


class TaskManager:
    def __init__(
        self,
        state: Path,
        root: Path,
        containers: ContainerLookup,
        cmdline: Cmdline,
        exchange: Exchange,
    ) -> None:
        self._state = state
        self._root = root
        self._containers = containers
        self._cmdline = cmdline
        self._exchange = exchange
        self._tasks: dict[tuple[str, str], Task] = {}
        self._creating: set[tuple[str, str]] = set()
        exchange.observe(self._on_event)

    # -- lookup ------------------------------------------------------------------

    def get(self, id: str) -> Task:
        """The task of container ``id`` in the request's namespace."""
        task = self._tasks.get((scope.namespace_required(), id))
        if task is None:
            raise errors.NotFound(f"task {id} not found")
        return task

    def all(self) -> list[Task]:
        ns = scope.namespace_required()
        return [t for (n, _), t in sorted(self._tasks.items()) if n == ns]

    async def call(
        self, id: str, method: str, req: Message, resp: type[R], timeout: float | None = None
    ) -> R:
        """Call the shim of task ``id`` (a task whose shim died refuses)."""
        task = self.get(id)
        if task.exited is not None or task.shim is None:
            if method in ("Kill", "Delete"):
                raise errors.NotFound(f"task {id}: process already finished (its shim died)")
            raise errors.FailedPrecondition(f"task {id} is stopped: its shim died")
        return await task.shim.call(method, req, resp, timeout)

    async def state(self, id: str, exec_id: str = "") -> spb.StateResponse:
        task = self.get(id)
        if task.exited is None:
            try:
                return await self.call(
                    id,
                    "State",
                    spb.StateRequest(id=id, exec_id=exec_id),
                    spb.StateResponse,
                    shim_client.STATE_TIMEOUT,
                )
            except errors.Unavailable:
                if not await self._settled(task):
                    raise
        exited = self._exited(task, exec_id)
        return spb.StateResponse(
            id=id,
            bundle=str(task.bundle.path),
            pid=exited.pid,
            status=tpb.STOPPED,
            exit_status=exited.exit_status,
            exited_at=exited.exited_at,
        )

    async def wait(self, id: str, exec_id: str = "") -> spb.WaitResponse:
        """Until the process ends; a dead shim's task answers with its recorded exit."""
        task = self.get(id)
        if task.exited is None:
            try:
                req = spb.WaitRequest(id=id, exec_id=exec_id)
                return await self.call(id, "Wait", req, spb.WaitResponse)
            except errors.Unavailable:
                if not await self._settled(task):
                    raise
        exited = self._exited(task, exec_id)
        return spb.WaitResponse(exit_status=exited.exit_status, exited_at=exited.exited_at)

    def _exited(self, task: Task, exec_id: str) -> spb.DeleteResponse:
        assert task.exited is not None
        if exec_id and exec_id != task.id:
            raise errors.NotFound(f"process {exec_id}: not found (task {task.id}'s shim died)")
        return task.exited

    async def _settled(self, task: Task) -> bool:
        """After a call failed as Unavailable: whether that was the shim dying (now cleaned up)."""
        if task.shim is not None and task.shim.closed:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(SETTLE_TIMEOUT):
                    await task.settled.wait()
        return task.exited is not None

    # -- create / delete -----------------------------------------------------------

    async def create(self, id: str, opts: CreateOptions) -> int:
        ns = scope.namespace_required()
        scope.validate_identifier(id, "container id")
        key = (ns, id)
        if key in self._tasks or key in self._creating:
            raise errors.AlreadyExists(f"task {id}: already exists")
        self._creating.add(key)
        try:
            container = await self._containers.get(id)
            task = await self._create(ns, container, opts)
            self._tasks[key] = task
            self._watch(task)
            return task.pid
        finally:
            self._creating.discard(key)

    async def _create(self, ns: str, container: Container, opts: CreateOptions) -> Task:
        binary = shim_client.resolve_binary(opts.runtime_path or container.runtime.name)
        if container.spec is None:
            raise errors.InvalidArgument(f"container {container.id}: no spec")
        options = opts.options
        if options is None and container.runtime.options is not None:
            o = container.runtime.options
            options = any_pb2.Any(type_url=o.type_url, value=o.value)
        t0 = time.perf_counter()
        timing: dict[str, float] = {}
        bundle = Bundle.at(self._state, self._root, ns, container.id)
        bundle.create(container.spec.value)
        timing["bundle_ms"] = _ms(t0)
        logs = LogReader(bundle)
        shim: ShimClient | None = None
        try:
            bundle.write_shim_binary(binary)
            stdin = options.SerializeToString() if options is not None else b""
            address = await shim_client.start(binary, bundle, self._cmdline, stdin)
            timing["shim_ms"] = _ms(t0)
            bundle.write_address(address)
            shim = await ShimClient.connect(address, ns)
            timing["connect_ms"] = _ms(t0)
            req = spb.CreateTaskRequest(
                id=container.id,
                bundle=str(bundle.path),
                rootfs=list(opts.rootfs),
                terminal=opts.terminal,
                stdin=opts.stdin,
                stdout=opts.stdout,
                stderr=opts.stderr,
            )
            if opts.options is not None:
                req.options.CopyFrom(opts.options)
            created = await shim.call("Create", req, spb.CreateTaskResponse)
            timing["create_ms"] = _ms(t0)
            await shim.call("Connect", spb.ConnectRequest(id=container.id), spb.ConnectResponse)
            _log.debug("task.create_timing", task=container.id, total_ms=_ms(t0), **timing)
            _log.info("task.created", namespace=ns, task=container.id, pid=created.pid)
            return Task(bundle, binary, shim, created.pid, logs)
        except BaseException:
            await self._abandon(bundle, binary, shim, logs)
            raise

    async def _abandon(
        self, bundle: Bundle, binary: str, shim: ShimClient | None, logs: LogReader | None
    ) -> None:
        """Undo a failed create: stop the shim, let it clean up, remove the bundle."""
        with contextlib.suppress(Exception):
            if shim is not None:
                await self._shutdown(bundle.id, shim)
            if bundle.address:
                await shim_client.delete(binary, bundle, self._cmdline)
        if logs is not None:
            logs.close()
        bundle.remove()

    async def _shutdown(self, id: str, shim: ShimClient) -> None:
        with contextlib.suppress(errors.SeacanError):
            await shim.call(
                "Shutdown", spb.ShutdownRequest(id=id), empty_pb2.Empty, SHUTDOWN_TIMEOUT
            )
        await shim.close()

    async def delete(self, id: str) -> spb.DeleteResponse:
        """Delete a stopped (or never started) task and its shim."""
        ns = scope.namespace_required()
        task = self.get(id)
        async with task.lock:
            if self._tasks.get((ns, id)) is not task:
                raise errors.NotFound(f"task {id} not found")
            if task.exited is not None:
                resp = task.exited
                self._publish_delete(task.bundle, resp)
            else:
                resp = await self._delete_live(task)
            self._forget(task)
            _log.info("task.deleted", namespace=ns, task=id, exit_status=resp.exit_status)
            return resp

    async def _delete_live(self, task: Task) -> spb.DeleteResponse:
        shim, id = task.shim, task.id
        assert shim is not None
        vanished = False
        try:
            req = spb.StateRequest(id=id)
            st = await shim.call("State", req, spb.StateResponse, shim_client.STATE_TIMEOUT)
            if st.status in RUNNING_STATES:
                name = tpb.Status.Name(st.status).lower()
                raise errors.FailedPrecondition(f"task must be stopped before deletion: {name}")
            resp = await shim.call("Delete", spb.DeleteRequest(id=id), spb.DeleteResponse)
        except (errors.Unavailable, errors.DeadlineExceeded) as e:
            if not shim.closed and isinstance(e, errors.DeadlineExceeded):
                raise
            vanished = True  # died before the watcher got to it: clean up as it would
            resp = await self._cleanup_dead(task.bundle, task.binary)
            self._publish_exit(task.bundle, resp)
            self._publish_delete(task.bundle, resp)
        if task.watcher is not None:
            task.watcher.cancel()  # the connection's end is ours from here
        if not vanished:
            await self._shutdown(id, shim)
        else:
            await shim.close()
        return resp

    def _forget(self, task: Task) -> None:
        """Drop a deleted task: its watcher, log reader, bundle and entry."""
        if task.watcher is not None:
            task.watcher.cancel()
        task.settled.set()
        if task.logs is not None:
            task.logs.close()
        task.bundle.remove()
        del self._tasks[(task.bundle.namespace, task.id)]

    # -- a shim that dies ------------------------------------------------------------

    def _watch(self, task: Task) -> None:
        task.watcher = asyncio.get_running_loop().create_task(
            self._watch_shim(task), name=f"watch shim {task.bundle.namespace}/{task.id}"
        )

    async def _watch_shim(self, task: Task) -> None:
        """containerd's cleanupAfterDeadShim, for a shim whose connection closed under us."""
        assert task.shim is not None
        try:
            await task.shim.wait_closed()
            async with task.lock:
                if self._tasks.get((task.bundle.namespace, task.id)) is task and not task.exited:
                    await self._bury(task)
        except Exception as e:  # the task stays as it was; a later call reports the shim gone
            _log.error("task.dead_shim_cleanup_failed", task=task.id, error=repr(e), exc_info=e)
        finally:
            task.settled.set()

    async def _bury(self, task: Task) -> None:
        bundle = task.bundle
        _log.warning("task.shim_died", namespace=bundle.namespace, task=task.id, pid=task.pid)
        resp = await self._cleanup_dead(bundle, task.binary)
        last = task.last_exit
        if last is not None:  # it had exited before its shim died: that status, not 137
            resp = spb.DeleteResponse(
                pid=last.pid, exit_status=last.exit_status, exited_at=last.exited_at
            )
        if not resp.pid:
            resp.pid = task.pid
        try:
            bundle.write_dead_exit(resp.SerializeToString())
        except OSError as e:  # only a restart of this service would forget it
            _log.warning("task.dead_exit_unsaved", task=task.id, error=str(e))
        task.exited = resp
        if task.logs is not None:
            task.logs.close()
            task.logs = None
        self._publish_exit(bundle, resp)
        _log.info(
            "task.dead_shim_cleaned", namespace=bundle.namespace, task=task.id,
            exit_status=resp.exit_status,
        )  # fmt: skip

    def _on_event(self, env: Envelope) -> None:
        """Remember each task's init exit, as its shim reports it."""
        if env.topic != TASK_EXIT:
            return
        try:
            ex = epb.TaskExit.FromString(env.event.value)
        except DecodeError:
            return
        task = self._tasks.get((env.namespace, ex.container_id))
        if task is not None and task.exited is None and ex.id in ("", ex.container_id):
            task.last_exit = ex

    async def _cleanup_dead(self, bundle: Bundle, binary: str) -> spb.DeleteResponse:
        """``<shim> delete`` for a shim that is gone: what it reports, or 255."""
        try:
            if not binary:
                raise errors.NotFound("no shim binary recorded")
            resp = await shim_client.delete(binary, bundle, self._cmdline)
        except errors.SeacanError as e:
            _log.warning("task.cleanup_failed", task=bundle.id, error=str(e))
            resp = spb.DeleteResponse(exit_status=DEAD_SHIM_STATUS)
            resp.exited_at.FromDatetime(datetime.now(UTC))
        shim_client.remove_stale_socket(bundle.address)
        return resp

    def _publish_exit(self, bundle: Bundle, resp: spb.DeleteResponse) -> None:
        event = epb.TaskExit(
            container_id=bundle.id,
            id=bundle.id,
            pid=resp.pid,
            exit_status=resp.exit_status,
            exited_at=resp.exited_at,
        )
        self._publish(bundle.namespace, TASK_EXIT, event)

    def _publish_delete(self, bundle: Bundle, resp: spb.DeleteResponse) -> None:
        event = epb.TaskDelete(
            container_id=bundle.id,
            pid=resp.pid,
            exit_status=resp.exit_status,
            exited_at=resp.exited_at,
        )
        self._publish(bundle.namespace, TASK_DELETE, event)

    def _publish(self, ns: str, topic: str, msg: Message) -> None:
        self._exchange.deliver(Envelope(grpcutil.now(), ns, topic, any_of(msg)))

    # -- restart -------------------------------------------------------------------

    async def load(self) -> None:
        """Reconnect to every shim with a bundle, in parallel; clean up the dead."""
        bundles = list(walk(self._state, self._root))
        if not bundles:
            return
        results = await asyncio.gather(*(self._load_one(b) for b in bundles))
        alive = sum(1 for r in results if r)
        _log.info("tasks.loaded", alive=alive, cleaned=len(bundles) - alive)

    async def _load_one(self, bundle: Bundle) -> bool:
        binary = bundle.shim_binary
        address = bundle.address
        dead = bundle.dead_exit
        if dead is not None:
            with contextlib.suppress(DecodeError):
                exited = spb.DeleteResponse.FromString(dead)
                task = Task(bundle, binary, None, exited.pid, exited=exited)
                task.settled.set()
                self._tasks[(bundle.namespace, bundle.id)] = task
                return True
        shim: ShimClient | None = None
        try:
            if not address:
                raise errors.NotFound("no shim address")
            async with asyncio.timeout(LOAD_TIMEOUT):
                shim = await ShimClient.connect(address, bundle.namespace, CONNECT_TIMEOUT)
                conn = await shim.call(
                    "Connect", spb.ConnectRequest(id=bundle.id), spb.ConnectResponse
                )
        except (errors.SeacanError, TimeoutError) as e:
            _log.warning("task.shim_dead", namespace=bundle.namespace, task=bundle.id, error=str(e))
            if shim is not None:
                await shim.close()
            if address or binary:
                resp = await self._cleanup_dead(bundle, binary)
                if address:
                    self._publish_exit(bundle, resp)
                    self._publish_delete(bundle, resp)
            bundle.remove()
            return False
        task = Task(bundle, binary, shim, conn.task_pid, LogReader(bundle))
        self._tasks[(bundle.namespace, bundle.id)] = task
        self._watch(task)
        _log.info("task.reconnected", namespace=bundle.namespace, task=bundle.id, pid=conn.task_pid)
        return True

    async def close(self) -> None:
        """Drop the connections (the shims and their tasks keep running)."""
        watchers = [t.watcher for t in self._tasks.values() if t.watcher is not None]
        for w in watchers:
            w.cancel()  # first: closing the connections below is not a shim dying
        await asyncio.gather(*watchers, return_exceptions=True)
        for task in self._tasks.values():
            if task.logs is not None:
                task.logs.close()
            if task.shim is not None:
                await task.shim.close()
        self._tasks.clear()


def _ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000, 1)
