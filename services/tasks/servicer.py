"""containerd.services.tasks.v1.Tasks: protobuf <-> the task manager and its shims.

Translation only: each call becomes the shim v2 request for the task's
shim; answers become the v1 messages ctr expects. Wait is a long-lived
unary call and may arrive before Start (ctr run does that).
"""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
from google.protobuf import empty_pb2

from seacan import errors, filters, grpcutil, log, scope
from seacan.api.runtime.task.v2 import shim_pb2 as spb
from seacan.api.services.tasks.v1 import tasks_pb2 as pb
from seacan.api.services.tasks.v1 import tasks_pb2_grpc
from seacan.api.types import metrics_pb2
from seacan.api.types.task import task_pb2 as tpb

from .manager import CreateOptions, Task, TaskManager

SERVICE = "containerd.services.tasks.v1.Tasks"

Ctx = Any  # grpc.aio.ServicerContext; grpcio ships no types
Empty = empty_pb2.Empty

_log = log.get("seacan.tasks")


def process_from_state(container_id: str, st: spb.StateResponse, exec_id: str = "") -> Any:
    return tpb.Process(
        container_id=container_id,
        id=exec_id or st.exec_id or container_id,
        pid=st.pid,
        status=st.status,
        stdin=st.stdin,
        stdout=st.stdout,
        stderr=st.stderr,
        terminal=st.terminal,
        exit_status=st.exit_status,
        exited_at=st.exited_at,
    )


def delete_response(id: str, resp: spb.DeleteResponse) -> Any:
    return pb.DeleteResponse(
        id=id, pid=resp.pid, exit_status=resp.exit_status, exited_at=resp.exited_at
    )


class TasksServicer:
    def __init__(self, manager: TaskManager) -> None:
        self._m = manager

    async def Create(self, request: Any, context: Ctx) -> Any:  # noqa: N802
        if request.HasField("checkpoint") and request.checkpoint.digest:
            raise errors.NotImplemented_("checkpoint restore is not supported")
        opts = CreateOptions(
            rootfs=list(request.rootfs),
            stdin=request.stdin,
            stdout=request.stdout,
            stderr=request.stderr,
            terminal=request.terminal,
            options=request.options if request.HasField("options") else None,
            runtime_path=request.runtime_path,
        )
        pid = await self._m.create(request.container_id, opts)
        return pb.CreateTaskResponse(container_id=request.container_id, pid=pid)

    async def Start(self, request: Any, context: Ctx) -> Any:  # noqa: N802
        resp = await self._m.call(
            request.container_id,
            "Start",
            spb.StartRequest(id=request.container_id, exec_id=request.exec_id),
            spb.StartResponse,
        )
        return pb.StartResponse(pid=resp.pid)

    async def Delete(self, request: Any, context: Ctx) -> Any:  # noqa: N802
        resp = await self._m.delete(request.container_id)
        return delete_response(request.container_id, resp)

    async def DeleteProcess(self, request: Any, context: Ctx) -> Any:  # noqa: N802
        if not request.exec_id:
            raise errors.InvalidArgument("exec_id is required")
        resp = await self._m.call(
            request.container_id,
            "Delete",
            spb.DeleteRequest(id=request.container_id, exec_id=request.exec_id),
            spb.DeleteResponse,
        )
        return delete_response(request.exec_id, resp)

    async def Get(self, request: Any, context: Ctx) -> Any:  # noqa: N802
        st = await self._m.state(request.container_id, request.exec_id)
        return pb.GetResponse(process=process_from_state(request.container_id, st, request.exec_id))

    async def List(self, request: Any, context: Ctx) -> Any:  # noqa: N802
        flt = filters.parse(request.filter)
        tasks = [
            t
            for t in self._m.all()
            if flt.match(filters.lookup_from({"id": t.id, "container_id": t.id}, {}))
        ]
        states = await asyncio.gather(*(self._m.state(t.id) for t in tasks), return_exceptions=True)
        out = []
        for t, st in zip(tasks, states, strict=True):
            if isinstance(st, BaseException):
                _log.warning("task.state_failed", task=t.id, error=str(st))
                continue
            out.append(process_from_state(t.id, st))
        return pb.ListTasksResponse(tasks=out)

    async def Kill(self, request: Any, context: Ctx) -> Any:  # noqa: N802
        await self._m.call(
            request.container_id,
            "Kill",
            spb.KillRequest(
                id=request.container_id,
                exec_id=request.exec_id,
                signal=request.signal,
                all=request.all,
            ),
            Empty,
        )
        return Empty()

    async def Exec(self, request: Any, context: Ctx) -> Any:  # noqa: N802
        scope.validate_identifier(request.exec_id, "exec id")
        req = spb.ExecProcessRequest(
            id=request.container_id,
            exec_id=request.exec_id,
            terminal=request.terminal,
            stdin=request.stdin,
            stdout=request.stdout,
            stderr=request.stderr,
        )
        if request.HasField("spec"):
            req.spec.CopyFrom(request.spec)
        await self._m.call(request.container_id, "Exec", req, Empty)
        return Empty()

    async def ResizePty(self, request: Any, context: Ctx) -> Any:  # noqa: N802
        req = spb.ResizePtyRequest(
            id=request.container_id,
            exec_id=request.exec_id,
            width=request.width,
            height=request.height,
        )
        await self._m.call(request.container_id, "ResizePty", req, Empty)
        return Empty()

    async def CloseIO(self, request: Any, context: Ctx) -> Any:  # noqa: N802
        req = spb.CloseIORequest(
            id=request.container_id, exec_id=request.exec_id, stdin=request.stdin
        )
        await self._m.call(request.container_id, "CloseIO", req, Empty)
        return Empty()

    async def Pause(self, request: Any, context: Ctx) -> Any:  # noqa: N802
        req = spb.PauseRequest(id=request.container_id)
        await self._m.call(request.container_id, "Pause", req, Empty)
        return Empty()

    async def Resume(self, request: Any, context: Ctx) -> Any:  # noqa: N802
        req = spb.ResumeRequest(id=request.container_id)
        await self._m.call(request.container_id, "Resume", req, Empty)
        return Empty()

    async def ListPids(self, request: Any, context: Ctx) -> Any:  # noqa: N802
        resp = await self._m.call(
            request.container_id,
            "Pids",
            spb.PidsRequest(id=request.container_id),
            spb.PidsResponse,
        )
        return pb.ListPidsResponse(processes=list(resp.processes))

    async def Checkpoint(self, request: Any, context: Ctx) -> Any:  # noqa: N802
        raise errors.NotImplemented_("checkpoint is not supported")

    async def Update(self, request: Any, context: Ctx) -> Any:  # noqa: N802
        req = spb.UpdateTaskRequest(id=request.container_id, annotations=dict(request.annotations))
        if request.HasField("resources"):
            req.resources.CopyFrom(request.resources)
        await self._m.call(request.container_id, "Update", req, Empty)
        return Empty()

    async def Metrics(self, request: Any, context: Ctx) -> Any:  # noqa: N802
        flt = filters.parse(list(request.filters))
        ns = scope.namespace_required()
        tasks = [
            t
            for t in self._m.all()
            if t.exited is None
            and flt.match(filters.lookup_from({"id": t.id, "namespace": ns}, {}))
        ]
        stats = await asyncio.gather(*(self._stats(t) for t in tasks), return_exceptions=True)
        out = []
        for t, st in zip(tasks, stats, strict=True):
            if isinstance(st, BaseException):
                _log.warning("task.stats_failed", task=t.id, error=str(st))
                continue
            out.append(st)
        return pb.MetricsResponse(metrics=out)

    async def _stats(self, task: Task) -> Any:
        resp = await self._m.call(
            task.id, "Stats", spb.StatsRequest(id=task.id), spb.StatsResponse, 5.0
        )
        return metrics_pb2.Metric(
            timestamp=grpcutil.timestamp(grpcutil.now()), id=task.id, data=resp.stats
        )

    async def Wait(self, request: Any, context: Ctx) -> Any:  # noqa: N802
        resp = await self._m.wait(request.container_id, request.exec_id)
        return pb.WaitResponse(exit_status=resp.exit_status, exited_at=resp.exited_at)


def register(server: grpc.aio.Server, manager: TaskManager) -> None:
    tasks_pb2_grpc.add_TasksServicer_to_server(TasksServicer(manager), server)
