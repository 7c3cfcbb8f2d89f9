"""``containerd.task.v2.Task`` over ttrpc: translation between protos and :mod:`task`.

No state, no subprocesses here: parse the request, call :class:`Tasks`,
build the response. Errors are seacan kinds; the ttrpc server maps them.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from google.protobuf import any_pb2, empty_pb2
from google.protobuf.message import Message

from seacan import errors, ttrpc
from seacan.api.runtime.runc.options import oci_pb2
from seacan.api.runtime.task.v2 import shim_pb2 as pb
from seacan.api.types.task import task_pb2
from seacan.shims import metrics
from seacan.shims.events import pack
from seacan.shims.process import Status
from seacan.shims.stdio import StdioPaths
from seacan.shims.task import Tasks, timestamp
from seacan.snapshots import Mount

SERVICE = "containerd.task.v2.Task"
PROCESS_SPEC = "types.containerd.io/opencontainers/runtime-spec/1/Process"
LINUX_RESOURCES = "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources"

_STATUS = {
    Status.CREATED: task_pb2.CREATED,
    Status.RUNNING: task_pb2.RUNNING,
    Status.PAUSED: task_pb2.PAUSED,
    Status.STOPPED: task_pb2.STOPPED,
    Status.DELETED: task_pb2.STOPPED,
}

_EMPTY = empty_pb2.Empty()


def _json_any(a: any_pb2.Any, want: str, what: str) -> dict[str, Any]:
    if a.type_url != want:
        raise errors.InvalidArgument(f"{what}: type {a.type_url!r}, want {want}")
    try:
        doc = json.loads(a.value)
    except ValueError as e:
        raise errors.InvalidArgument(f"{what}: bad JSON: {e}") from e
    if not isinstance(doc, dict):
        raise errors.InvalidArgument(f"{what}: not a JSON object")
    return doc


class TaskService:
    """The shim's ttrpc service; ``shutdown`` is set when the shim should exit."""

    def __init__(self, tasks: Tasks, on_shutdown: Callable[[], None]) -> None:
        self.tasks = tasks
        self._on_shutdown = on_shutdown

    def register(self, server: ttrpc.Server) -> None:
        u = ttrpc.unary
        server.register(
            SERVICE,
            {
                "Create": u(pb.CreateTaskRequest, self.create),
                "Start": u(pb.StartRequest, self.start),
                "State": u(pb.StateRequest, self.state),
                "Delete": u(pb.DeleteRequest, self.delete),
                "Pids": u(pb.PidsRequest, self.pids),
                "Pause": u(pb.PauseRequest, self.pause),
                "Resume": u(pb.ResumeRequest, self.resume),
                "Checkpoint": u(pb.CheckpointTaskRequest, self.checkpoint),
                "Kill": u(pb.KillRequest, self.kill),
                "Exec": u(pb.ExecProcessRequest, self.exec),
                "ResizePty": u(pb.ResizePtyRequest, self.resize_pty),
                "CloseIO": u(pb.CloseIORequest, self.close_io),
                "Update": u(pb.UpdateTaskRequest, self.update),
                "Wait": u(pb.WaitRequest, self.wait),
                "Stats": u(pb.StatsRequest, self.stats),
                "Connect": u(pb.ConnectRequest, self.connect),
                "Shutdown": u(pb.ShutdownRequest, self.shutdown),
            },
        )

    async def create(self, req: pb.CreateTaskRequest, md: ttrpc.Metadata) -> Message:
        if req.checkpoint or req.parent_checkpoint:
            raise errors.NotImplemented_("checkpoint restore is not supported")
        mounts = [Mount(m.type, m.source, m.target, tuple(m.options)) for m in req.rootfs]
        paths = StdioPaths(req.stdin, req.stdout, req.stderr, req.terminal)
        options = req.options if req.HasField("options") else None
        p = await self.tasks.create(req.id, _bundle(req.bundle), mounts, paths, options)
        return pb.CreateTaskResponse(pid=p.pid)

    async def start(self, req: pb.StartRequest, md: ttrpc.Metadata) -> Message:
        p = await self.tasks.start(req.id, req.exec_id)
        return pb.StartResponse(pid=p.pid)

    async def state(self, req: pb.StateRequest, md: ttrpc.Metadata) -> Message:
        p = self.tasks.process(req.id, req.exec_id)
        return pb.StateResponse(
            id=p.id,
            bundle=str(p.container.bundle),
            pid=p.pid,
            status=_STATUS[p.state.status],
            stdin=p.paths.stdin,
            stdout=p.paths.stdout,
            stderr=p.paths.stderr,
            terminal=p.paths.terminal,
            exit_status=p.exit_status,
            exited_at=timestamp(p.exited_at),
            exec_id=req.exec_id,
        )

    async def delete(self, req: pb.DeleteRequest, md: ttrpc.Metadata) -> Message:
        p = await self.tasks.delete(req.id, req.exec_id)
        return pb.DeleteResponse(
            pid=p.pid, exit_status=p.exit_status, exited_at=timestamp(p.exited_at)
        )

    async def pids(self, req: pb.PidsRequest, md: ttrpc.Metadata) -> Message:
        out = []
        for pid, exec_id in await self.tasks.pids(req.id):
            info = task_pb2.ProcessInfo(pid=pid)
            if exec_id:
                info.info.CopyFrom(pack(oci_pb2.ProcessDetails(exec_id=exec_id)))
            out.append(info)
        return pb.PidsResponse(processes=out)

    async def pause(self, req: pb.PauseRequest, md: ttrpc.Metadata) -> Message:
        await self.tasks.pause(req.id)
        return _EMPTY

    async def resume(self, req: pb.ResumeRequest, md: ttrpc.Metadata) -> Message:
        await self.tasks.resume(req.id)
        return _EMPTY

    async def checkpoint(self, req: pb.CheckpointTaskRequest, md: ttrpc.Metadata) -> Message:
        raise errors.NotImplemented_("checkpoint is not supported")

    async def kill(self, req: pb.KillRequest, md: ttrpc.Metadata) -> Message:
        await self.tasks.kill(req.id, req.exec_id, req.signal, req.all)
        return _EMPTY

    async def exec(self, req: pb.ExecProcessRequest, md: ttrpc.Metadata) -> Message:
        spec = _json_any(req.spec, PROCESS_SPEC, "exec process spec")
        paths = StdioPaths(req.stdin, req.stdout, req.stderr, req.terminal)
        await self.tasks.exec(req.id, req.exec_id, paths, spec)
        return _EMPTY

    async def resize_pty(self, req: pb.ResizePtyRequest, md: ttrpc.Metadata) -> Message:
        self.tasks.resize(req.id, req.exec_id, req.width, req.height)
        return _EMPTY

    async def close_io(self, req: pb.CloseIORequest, md: ttrpc.Metadata) -> Message:
        if req.stdin:
            self.tasks.close_io(req.id, req.exec_id)
        return _EMPTY

    async def update(self, req: pb.UpdateTaskRequest, md: ttrpc.Metadata) -> Message:
        resources = _json_any(req.resources, LINUX_RESOURCES, "update resources")
        await self.tasks.update(req.id, resources)
        return _EMPTY

    async def wait(self, req: pb.WaitRequest, md: ttrpc.Metadata) -> Message:
        p = await self.tasks.wait(req.id, req.exec_id)
        return pb.WaitResponse(exit_status=p.exit_status, exited_at=timestamp(p.exited_at))

    async def stats(self, req: pb.StatsRequest, md: ttrpc.Metadata) -> Message:
        data = await self.tasks.stats(req.id)
        return pb.StatsResponse(stats=pack(metrics.to_metrics(data, metrics.sys_block_device)))

    async def connect(self, req: pb.ConnectRequest, md: ttrpc.Metadata) -> Message:
        c = self.tasks.containers.get(req.id)
        return pb.ConnectResponse(shim_pid=os.getpid(), task_pid=c.init.pid if c else 0)

    async def shutdown(self, req: pb.ShutdownRequest, md: ttrpc.Metadata) -> Message:
        if req.now or not self.tasks.containers:
            # Answer first; the owner stops the server afterwards.
            asyncio.get_running_loop().call_soon(self._on_shutdown)
        return _EMPTY


def _bundle(path: str) -> Path:
    if not path:
        raise errors.InvalidArgument("bundle path must not be empty")
    return Path(path)
