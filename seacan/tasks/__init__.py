"""Tasks: what runs in a container, as containerd's Tasks API shows it.

A task is the container's init process (``exec_id == ""``) plus any exec'd
processes. The client side is :class:`seacan.tasks.proxy.RemoteTasks`; the
values here are what it returns::

    t = await tasks.create(CreateOptions("web", rootfs=mounts, stdout=fifo))
    waiter = asyncio.ensure_future(tasks.wait("web"))   # Wait before Start
    await tasks.start("web")
    exit = await waiter                                   # Exit(status=0, ...)
    await tasks.delete("web")

Error kinds as everywhere: NotFound for a missing container or task,
FailedPrecondition for an operation the process's state forbids.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from seacan.containers import AnyValue
from seacan.snapshots import Mount

PROCESS_SPEC_TYPE_URL = "types.containerd.io/opencontainers/runtime-spec/1/Process"
LINUX_RESOURCES_TYPE_URL = "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources"
DEFAULT_RUNTIME = "io.containerd.seacan.v2"
RUNC_RUNTIME = "io.containerd.runc.v2"
LABEL_STOP_SIGNAL = "io.containerd.image.config.stop-signal"


class Status(enum.IntEnum):
    """containerd.v1.types.Status."""

    UNKNOWN = 0
    CREATED = 1
    RUNNING = 2
    STOPPED = 3
    PAUSED = 4
    PAUSING = 5


@dataclass(frozen=True, slots=True)
class Process:
    """A task's process (``id`` is the exec ID, empty for the init process)."""

    container_id: str
    id: str = ""
    pid: int = 0
    status: Status = Status.UNKNOWN
    stdin: str = ""
    stdout: str = ""
    stderr: str = ""
    terminal: bool = False
    exit_status: int = 0
    exited_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Exit:
    """How a process ended (Wait, Delete)."""

    status: int
    exited_at: datetime | None = None
    pid: int = 0


@dataclass(frozen=True, slots=True)
class ProcessInfo:
    pid: int
    info: AnyValue | None = None


@dataclass(frozen=True, slots=True)
class Metric:
    id: str
    timestamp: datetime | None = None
    data: AnyValue | None = None


@dataclass(frozen=True, slots=True)
class CreateOptions:
    """Tasks.Create's request: the container, its rootfs mounts and stdio URIs."""

    container_id: str
    rootfs: Sequence[Mount] = ()
    stdin: str = ""
    stdout: str = ""
    stderr: str = ""
    terminal: bool = False
    options: AnyValue | None = None
    runtime_path: str = ""


@dataclass(frozen=True, slots=True)
class ExecOptions:
    """Tasks.Exec's request: ``spec`` is the process spec JSON (``PROCESS_SPEC_TYPE_URL``)."""

    container_id: str
    exec_id: str
    spec: bytes
    stdin: str = ""
    stdout: str = ""
    stderr: str = ""
    terminal: bool = False
    annotations: dict[str, str] = field(default_factory=dict)


__all__ = [
    "DEFAULT_RUNTIME",
    "LABEL_STOP_SIGNAL",
    "LINUX_RESOURCES_TYPE_URL",
    "PROCESS_SPEC_TYPE_URL",
    "RUNC_RUNTIME",
    "CreateOptions",
    "ExecOptions",
    "Exit",
    "Metric",
    "Process",
    "ProcessInfo",
    "Status",
]
