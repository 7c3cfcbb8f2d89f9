"""RemoteTasks: containerd's Tasks service over gRPC, the client's view of running things.

Every call carries the current request scope (namespace) and turns RPC
failures back into error kinds. Values are :mod:`seacan.tasks`'s dataclasses.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import Any

import grpc.aio
from google.protobuf import any_pb2

from seacan import grpcutil
from seacan.api.services.tasks.v1 import tasks_pb2 as pb
from seacan.api.services.tasks.v1 import tasks_pb2_grpc
from seacan.containers import AnyValue
from seacan.snapshots.proxy import mounts_to_pb
from seacan.tasks import (
    LINUX_RESOURCES_TYPE_URL,
    PROCESS_SPEC_TYPE_URL,
    CreateOptions,
    ExecOptions,
    Exit,
    Metric,
    Process,
    ProcessInfo,
    Status,
)


def _any(value: AnyValue) -> any_pb2.Any:
    return any_pb2.Any(type_url=value.type_url, value=value.value)


def _any_value(msg: Any, present: bool) -> AnyValue | None:
    return AnyValue(msg.type_url, bytes(msg.value)) if present else None


def process_from_pb(msg: Any) -> Process:
    return Process(
        container_id=msg.container_id,
        id=msg.id,
        pid=msg.pid,
        status=Status(msg.status) if msg.status in Status._value2member_map_ else Status.UNKNOWN,
        stdin=msg.stdin,
        stdout=msg.stdout,
        stderr=msg.stderr,
        terminal=msg.terminal,
        exit_status=msg.exit_status,
        exited_at=grpcutil.from_timestamp(msg.exited_at),
    )


class RemoteTasks:
    """The Tasks service over a gRPC channel."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._stub = tasks_pb2_grpc.TasksStub(channel)

    async def _call(self, method: str, req: Any) -> Any:
        async with grpcutil.native_errors():
            return await getattr(self._stub, method)(req, metadata=grpcutil.scope_metadata())

    async def create(self, opts: CreateOptions) -> int:
        """Create the task (the shim and the init process, not started); its PID."""
        req = pb.CreateTaskRequest(
            container_id=opts.container_id,
            rootfs=mounts_to_pb(opts.rootfs),
            stdin=opts.stdin,
            stdout=opts.stdout,
            stderr=opts.stderr,
            terminal=opts.terminal,
            runtime_path=opts.runtime_path,
        )
        if opts.options is not None:
            req.options.CopyFrom(_any(opts.options))
        resp = await self._call("Create", req)
        return int(resp.pid)

    async def start(self, container_id: str, exec_id: str = "") -> int:
        resp = await self._call(
            "Start", pb.StartRequest(container_id=container_id, exec_id=exec_id)
        )
        return int(resp.pid)

    async def delete(self, container_id: str) -> Exit:
        resp = await self._call("Delete", pb.DeleteTaskRequest(container_id=container_id))
        return Exit(resp.exit_status, grpcutil.from_timestamp(resp.exited_at), resp.pid)

    async def delete_process(self, container_id: str, exec_id: str) -> Exit:
        resp = await self._call(
            "DeleteProcess", pb.DeleteProcessRequest(container_id=container_id, exec_id=exec_id)
        )
        return Exit(resp.exit_status, grpcutil.from_timestamp(resp.exited_at), resp.pid)

    async def get(self, container_id: str, exec_id: str = "") -> Process:
        resp = await self._call("Get", pb.GetRequest(container_id=container_id, exec_id=exec_id))
        return process_from_pb(resp.process)

    async def list(self, filter: str = "") -> builtins.list[Process]:
        resp = await self._call("List", pb.ListTasksRequest(filter=filter))
        return [process_from_pb(t) for t in resp.tasks]

    async def kill(
        self, container_id: str, signal: int, *, exec_id: str = "", all: bool = False
    ) -> None:
        await self._call(
            "Kill",
            pb.KillRequest(container_id=container_id, exec_id=exec_id, signal=signal, all=all),
        )

    async def exec(self, opts: ExecOptions) -> None:
        await self._call(
            "Exec",
            pb.ExecProcessRequest(
                container_id=opts.container_id,
                exec_id=opts.exec_id,
                stdin=opts.stdin,
                stdout=opts.stdout,
                stderr=opts.stderr,
                terminal=opts.terminal,
                spec=any_pb2.Any(type_url=PROCESS_SPEC_TYPE_URL, value=opts.spec),
            ),
        )

    async def resize_pty(
        self, container_id: str, width: int, height: int, exec_id: str = ""
    ) -> None:
        await self._call(
            "ResizePty",
            pb.ResizePtyRequest(
                container_id=container_id, exec_id=exec_id, width=width, height=height
            ),
        )

    async def close_io(self, container_id: str, exec_id: str = "", stdin: bool = True) -> None:
        await self._call(
            "CloseIO", pb.CloseIORequest(container_id=container_id, exec_id=exec_id, stdin=stdin)
        )

    async def pause(self, container_id: str) -> None:
        await self._call("Pause", pb.PauseTaskRequest(container_id=container_id))

    async def resume(self, container_id: str) -> None:
        await self._call("Resume", pb.ResumeTaskRequest(container_id=container_id))

    async def list_pids(self, container_id: str) -> builtins.list[ProcessInfo]:
        resp = await self._call("ListPids", pb.ListPidsRequest(container_id=container_id))
        return [ProcessInfo(p.pid, _any_value(p.info, p.HasField("info"))) for p in resp.processes]

    async def update(
        self,
        container_id: str,
        resources: bytes | None = None,
        annotations: dict[str, str] | None = None,
    ) -> None:
        """Update resources (LinuxResources JSON) and/or annotations."""
        req = pb.UpdateTaskRequest(container_id=container_id, annotations=annotations or {})
        if resources is not None:
            req.resources.CopyFrom(any_pb2.Any(type_url=LINUX_RESOURCES_TYPE_URL, value=resources))
        await self._call("Update", req)

    async def wait(self, container_id: str, exec_id: str = "") -> Exit:
        """Until the process exits (accepted before Start)."""
        resp = await self._call("Wait", pb.WaitRequest(container_id=container_id, exec_id=exec_id))
        return Exit(resp.exit_status, grpcutil.from_timestamp(resp.exited_at))

    async def metrics(self, filters: Sequence[str] = ()) -> builtins.list[Metric]:
        resp = await self._call("Metrics", pb.MetricsRequest(filters=list(filters)))
        return [
            Metric(
                m.id, grpcutil.from_timestamp(m.timestamp), _any_value(m.data, m.HasField("data"))
            )
            for m in resp.metrics
        ]
