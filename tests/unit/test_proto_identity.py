"""Wire identity of the generated containerd 1.6 API (seacan.api).

Everything here is read back from the generated descriptors, so a mistake in
proto/ (wrong package, field number, type, streaming shape) fails loudly.
The expected values come from containerd v1.6.20 and ttrpc v1.1.1.
"""

from __future__ import annotations

import importlib
import pkgutil

import pytest
from google.protobuf import descriptor_pool
from google.protobuf.descriptor import Descriptor, FieldDescriptor, ServiceDescriptor

import seacan.api
from seacan import apischema
from seacan.api.runtime.runc.options import oci_pb2
from seacan.api.ttrpc import ttrpc_pb2
from seacan.api.types import descriptor_pb2
from seacan.api.types.task import task_pb2

pytestmark = pytest.mark.unit


def _import_all_generated() -> list[str]:
    """Import every generated module; each registers its file in the default pool."""
    names = sorted(
        info.name
        for info in pkgutil.walk_packages(seacan.api.__path__, prefix="seacan.api.")
        if info.name.endswith(("_pb2", "_pb2_grpc"))
    )
    for name in names:
        importlib.import_module(name)
    return names


GENERATED_MODULES = _import_all_generated()
POOL = descriptor_pool.Default()

U, SS, CS, BI = (False, False), (False, True), (True, False), (True, True)

# service full name -> [(method, (client_streaming, server_streaming))], in declared order
SERVICES: dict[str, list[tuple[str, tuple[bool, bool]]]] = {
    "containerd.services.containers.v1.Containers": [
        ("Get", U),
        ("List", U),
        ("ListStream", SS),
        ("Create", U),
        ("Update", U),
        ("Delete", U),
    ],
    "containerd.services.content.v1.Content": [
        ("Info", U),
        ("Update", U),
        ("List", SS),
        ("Delete", U),
        ("Read", SS),
        ("Status", U),
        ("ListStatuses", U),
        ("Write", BI),
        ("Abort", U),
    ],
    "containerd.services.diff.v1.Diff": [("Apply", U), ("Diff", U)],
    "containerd.services.events.v1.Events": [("Publish", U), ("Forward", U), ("Subscribe", SS)],
    "containerd.services.images.v1.Images": [
        ("Get", U),
        ("List", U),
        ("Create", U),
        ("Update", U),
        ("Delete", U),
    ],
    "containerd.services.introspection.v1.Introspection": [("Plugins", U), ("Server", U)],
    "containerd.services.leases.v1.Leases": [
        ("Create", U),
        ("Delete", U),
        ("List", U),
        ("AddResource", U),
        ("DeleteResource", U),
        ("ListResources", U),
    ],
    "containerd.services.namespaces.v1.Namespaces": [
        ("Get", U),
        ("List", U),
        ("Create", U),
        ("Update", U),
        ("Delete", U),
    ],
    "containerd.services.snapshots.v1.Snapshots": [
        ("Prepare", U),
        ("View", U),
        ("Mounts", U),
        ("Commit", U),
        ("Remove", U),
        ("Stat", U),
        ("Update", U),
        ("List", SS),
        ("Usage", U),
        ("Cleanup", U),
    ],
    "containerd.services.tasks.v1.Tasks": [
        (name, U)
        for name in (
            "Create",
            "Start",
            "Delete",
            "DeleteProcess",
            "Get",
            "List",
            "Kill",
            "Exec",
            "ResizePty",
            "CloseIO",
            "Pause",
            "Resume",
            "ListPids",
            "Checkpoint",
            "Update",
            "Metrics",
            "Wait",
        )
    ],
    "containerd.services.version.v1.Version": [("Version", U)],
}

# seacan's own services on the main socket (issues 4-6), beside seacan.services.gc.v1.GC.
SEACAN_SERVICES: dict[str, list[tuple[str, tuple[bool, bool]]]] = {
    "seacan.services.transfer.v1.Transfer": [("Pull", SS), ("Push", SS), ("Login", U)],
    "seacan.services.networking.v1.Networking": [
        (m, U)
        for m in (
            "Create",
            "Get",
            "List",
            "Remove",
            "Prune",
            "Attach",
            "Prepare",
            "Detach",
            "Connect",
            "Disconnect",
            "SetupPod",
            "TeardownPod",
            "PodStatus",
        )
    ],
    "seacan.services.volumes.v1.Volumes": [
        (m, U) for m in ("Create", "Get", "List", "Remove", "Prune", "Acquire", "Release")
    ],
    "seacan.services.build.v1.Builder": [("Build", BI), ("Commit", U), ("Prune", U)],
    "seacan.services.engine.v1.Engine": [("Run", U)],
}

TTRPC_SERVICES: dict[str, list[tuple[str, tuple[bool, bool]]]] = {
    "containerd.task.v2.Task": [
        (name, U)
        for name in (
            "State",
            "Create",
            "Start",
            "Delete",
            "Pids",
            "Pause",
            "Resume",
            "Checkpoint",
            "Kill",
            "Exec",
            "ResizePty",
            "CloseIO",
            "Update",
            "Wait",
            "Stats",
            "Connect",
            "Shutdown",
        )
    ],
    "containerd.services.events.ttrpc.v1.Events": [("Forward", U)],
}

# (service, method) -> (input full name, output full name), spot checks
METHOD_TYPES: dict[tuple[str, str], tuple[str, str]] = {
    ("containerd.services.version.v1.Version", "Version"): (
        "google.protobuf.Empty",
        "containerd.services.version.v1.VersionResponse",
    ),
    ("containerd.services.introspection.v1.Introspection", "Server"): (
        "google.protobuf.Empty",
        "containerd.services.introspection.v1.ServerResponse",
    ),
    ("containerd.services.events.v1.Events", "Subscribe"): (
        "containerd.services.events.v1.SubscribeRequest",
        "containerd.services.events.v1.Envelope",
    ),
    ("containerd.services.containers.v1.Containers", "ListStream"): (
        "containerd.services.containers.v1.ListContainersRequest",
        "containerd.services.containers.v1.ListContainerMessage",
    ),
    ("containerd.services.tasks.v1.Tasks", "DeleteProcess"): (
        "containerd.services.tasks.v1.DeleteProcessRequest",
        "containerd.services.tasks.v1.DeleteResponse",
    ),
    ("containerd.services.tasks.v1.Tasks", "Exec"): (
        "containerd.services.tasks.v1.ExecProcessRequest",
        "google.protobuf.Empty",
    ),
    ("containerd.services.snapshots.v1.Snapshots", "Commit"): (
        "containerd.services.snapshots.v1.CommitSnapshotRequest",
        "google.protobuf.Empty",
    ),
    ("containerd.task.v2.Task", "Checkpoint"): (
        "containerd.task.v2.CheckpointTaskRequest",
        "google.protobuf.Empty",
    ),
    ("containerd.services.events.ttrpc.v1.Events", "Forward"): (
        "containerd.services.events.ttrpc.v1.ForwardRequest",
        "google.protobuf.Empty",
    ),
}

TS = "google.protobuf.Timestamp"
ANY = "google.protobuf.Any"
SMAP = "map<string,string>"

# Messages checked completely: full name -> {field: (number, type)}.
FULL_MESSAGES: dict[str, dict[str, tuple[int, str]]] = {
    "containerd.types.Descriptor": {
        "media_type": (1, "string"),
        "digest": (2, "string"),
        "size": (3, "int64"),
        "annotations": (5, SMAP),
    },
    "containerd.types.Mount": {
        "type": (1, "string"),
        "source": (2, "string"),
        "target": (3, "string"),
        "options": (4, "repeated string"),
    },
    "containerd.types.Platform": {
        "os": (1, "string"),
        "architecture": (2, "string"),
        "variant": (3, "string"),
    },
    "containerd.types.Metric": {"timestamp": (1, TS), "id": (2, "string"), "data": (3, ANY)},
    "containerd.v1.types.Process": {
        "container_id": (1, "string"),
        "id": (2, "string"),
        "pid": (3, "uint32"),
        "status": (4, "containerd.v1.types.Status"),
        "stdin": (5, "string"),
        "stdout": (6, "string"),
        "stderr": (7, "string"),
        "terminal": (8, "bool"),
        "exit_status": (9, "uint32"),
        "exited_at": (10, TS),
    },
    "containerd.v1.types.ProcessInfo": {"pid": (1, "uint32"), "info": (2, ANY)},
    "containerd.services.images.v1.Image": {
        "name": (1, "string"),
        "labels": (2, SMAP),
        "target": (3, "containerd.types.Descriptor"),
        "created_at": (7, TS),
        "updated_at": (8, TS),
    },
    "containerd.services.containers.v1.Container": {
        "id": (1, "string"),
        "labels": (2, SMAP),
        "image": (3, "string"),
        "runtime": (4, "containerd.services.containers.v1.Container.Runtime"),
        "spec": (5, ANY),
        "snapshotter": (6, "string"),
        "snapshot_key": (7, "string"),
        "created_at": (8, TS),
        "updated_at": (9, TS),
        "extensions": (10, f"map<string,{ANY}>"),
    },
    "containerd.services.containers.v1.Container.Runtime": {
        "name": (1, "string"),
        "options": (2, ANY),
    },
    "containerd.services.content.v1.WriteContentRequest": {
        "action": (1, "containerd.services.content.v1.WriteAction"),
        "ref": (2, "string"),
        "total": (3, "int64"),
        "expected": (4, "string"),
        "offset": (5, "int64"),
        "data": (6, "bytes"),
        "labels": (7, SMAP),
    },
    "containerd.services.content.v1.WriteContentResponse": {
        "action": (1, "containerd.services.content.v1.WriteAction"),
        "started_at": (2, TS),
        "updated_at": (3, TS),
        "offset": (4, "int64"),
        "total": (5, "int64"),
        "digest": (6, "string"),
    },
    "containerd.services.content.v1.Info": {
        "digest": (1, "string"),
        "size": (2, "int64"),
        "created_at": (3, TS),
        "updated_at": (4, TS),
        "labels": (5, SMAP),
    },
    "containerd.services.content.v1.ReadContentRequest": {
        "digest": (1, "string"),
        "offset": (2, "int64"),
        "size": (3, "int64"),
    },
    "containerd.services.content.v1.Status": {
        "started_at": (1, TS),
        "updated_at": (2, TS),
        "ref": (3, "string"),
        "offset": (4, "int64"),
        "total": (5, "int64"),
        "expected": (6, "string"),
    },
    "containerd.services.tasks.v1.CreateTaskRequest": {
        "container_id": (1, "string"),
        "rootfs": (3, "repeated containerd.types.Mount"),
        "stdin": (4, "string"),
        "stdout": (5, "string"),
        "stderr": (6, "string"),
        "terminal": (7, "bool"),
        "checkpoint": (8, "containerd.types.Descriptor"),
        "options": (9, ANY),
        "runtime_path": (10, "string"),
    },
    "containerd.services.tasks.v1.ExecProcessRequest": {
        "container_id": (1, "string"),
        "stdin": (2, "string"),
        "stdout": (3, "string"),
        "stderr": (4, "string"),
        "terminal": (5, "bool"),
        "spec": (6, ANY),
        "exec_id": (7, "string"),
    },
    "containerd.services.tasks.v1.UpdateTaskRequest": {
        "container_id": (1, "string"),
        "resources": (2, ANY),
        "annotations": (3, SMAP),
    },
    "containerd.services.tasks.v1.ListTasksRequest": {"filter": (1, "string")},
    "containerd.services.tasks.v1.DeleteResponse": {
        "id": (1, "string"),
        "pid": (2, "uint32"),
        "exit_status": (3, "uint32"),
        "exited_at": (4, TS),
    },
    "containerd.services.events.v1.Envelope": {
        "timestamp": (1, TS),
        "namespace": (2, "string"),
        "topic": (3, "string"),
        "event": (4, ANY),
    },
    "containerd.services.events.ttrpc.v1.Envelope": {
        "timestamp": (1, TS),
        "namespace": (2, "string"),
        "topic": (3, "string"),
        "event": (4, ANY),
    },
    "containerd.services.events.ttrpc.v1.ForwardRequest": {
        "envelope": (1, "containerd.services.events.ttrpc.v1.Envelope"),
    },
    "containerd.services.namespaces.v1.ListNamespacesRequest": {"filter": (1, "string")},
    "containerd.services.leases.v1.CreateRequest": {"id": (1, "string"), "labels": (3, SMAP)},
    "containerd.services.diff.v1.DiffResponse": {"diff": (3, "containerd.types.Descriptor")},
    "containerd.services.diff.v1.ApplyRequest": {
        "diff": (1, "containerd.types.Descriptor"),
        "mounts": (2, "repeated containerd.types.Mount"),
        "payloads": (3, f"map<string,{ANY}>"),
    },
    "containerd.services.introspection.v1.Plugin": {
        "type": (1, "string"),
        "id": (2, "string"),
        "requires": (3, "repeated string"),
        "platforms": (4, "repeated containerd.types.Platform"),
        "exports": (5, SMAP),
        "capabilities": (6, "repeated string"),
        "init_err": (7, "google.rpc.Status"),
    },
    "containerd.services.snapshots.v1.Info": {
        "name": (1, "string"),
        "parent": (2, "string"),
        "kind": (3, "containerd.services.snapshots.v1.Kind"),
        "created_at": (4, TS),
        "updated_at": (5, TS),
        "labels": (6, SMAP),
    },
    "containerd.services.snapshots.v1.ListSnapshotsRequest": {
        "snapshotter": (1, "string"),
        "filters": (2, "repeated string"),
    },
    "containerd.task.v2.CreateTaskRequest": {
        "id": (1, "string"),
        "bundle": (2, "string"),
        "rootfs": (3, "repeated containerd.types.Mount"),
        "terminal": (4, "bool"),
        "stdin": (5, "string"),
        "stdout": (6, "string"),
        "stderr": (7, "string"),
        "checkpoint": (8, "string"),
        "parent_checkpoint": (9, "string"),
        "options": (10, ANY),
    },
    "containerd.task.v2.StateResponse": {
        "id": (1, "string"),
        "bundle": (2, "string"),
        "pid": (3, "uint32"),
        "status": (4, "containerd.v1.types.Status"),
        "stdin": (5, "string"),
        "stdout": (6, "string"),
        "stderr": (7, "string"),
        "terminal": (8, "bool"),
        "exit_status": (9, "uint32"),
        "exited_at": (10, TS),
        "exec_id": (11, "string"),
    },
    "containerd.task.v2.ConnectResponse": {
        "shim_pid": (1, "uint32"),
        "task_pid": (2, "uint32"),
        "version": (3, "string"),
    },
    "containerd.runc.v1.Options": {
        "no_pivot_root": (1, "bool"),
        "no_new_keyring": (2, "bool"),
        "shim_cgroup": (3, "string"),
        "io_uid": (4, "uint32"),
        "io_gid": (5, "uint32"),
        "binary_name": (6, "string"),
        "root": (7, "string"),
        "criu_path": (8, "string"),
        "systemd_cgroup": (9, "bool"),
        "criu_image_path": (10, "string"),
        "criu_work_path": (11, "string"),
    },
    "containerd.runc.v1.ProcessDetails": {"exec_id": (1, "string")},
    "containerd.events.TaskCreate": {
        "container_id": (1, "string"),
        "bundle": (2, "string"),
        "rootfs": (3, "repeated containerd.types.Mount"),
        "io": (4, "containerd.events.TaskIO"),
        "checkpoint": (5, "string"),
        "pid": (6, "uint32"),
    },
    "containerd.events.TaskExit": {
        "container_id": (1, "string"),
        "id": (2, "string"),
        "pid": (3, "uint32"),
        "exit_status": (4, "uint32"),
        "exited_at": (5, TS),
    },
    "containerd.events.TaskDelete": {
        "container_id": (1, "string"),
        "pid": (2, "uint32"),
        "exit_status": (3, "uint32"),
        "exited_at": (4, TS),
        "id": (5, "string"),
    },
    "containerd.events.ContainerCreate": {
        "id": (1, "string"),
        "image": (2, "string"),
        "runtime": (3, "containerd.events.ContainerCreate.Runtime"),
    },
    "containerd.events.ContainerUpdate": {
        "id": (1, "string"),
        "image": (2, "string"),
        "labels": (3, SMAP),
        "snapshot_key": (4, "string"),
    },
    "containerd.services.images.v1.ImageCreate": {"name": (1, "string"), "labels": (2, SMAP)},
    "containerd.services.images.v1.ImageDelete": {"name": (1, "string")},
    "ttrpc.Request": {
        "service": (1, "string"),
        "method": (2, "string"),
        "payload": (3, "bytes"),
        "timeout_nano": (4, "int64"),
        "metadata": (5, "repeated ttrpc.KeyValue"),
    },
    "ttrpc.Response": {"status": (1, "google.rpc.Status"), "payload": (2, "bytes")},
    "ttrpc.KeyValue": {"key": (1, "string"), "value": (2, "string")},
    "ttrpc.StringList": {"list": (1, "repeated string")},
    "google.rpc.Status": {
        "code": (1, "int32"),
        "message": (2, "string"),
        "details": (3, f"repeated {ANY}"),
    },
}

# Spot checks on messages not listed in full: (message, field, number, type)
FIELD_SPOTS: list[tuple[str, str, int, str]] = [
    (
        "containerd.services.containers.v1.UpdateContainerRequest",
        "update_mask",
        2,
        "google.protobuf.FieldMask",
    ),
    (
        "containerd.services.content.v1.ListContentResponse",
        "info",
        1,
        "repeated containerd.services.content.v1.Info",
    ),
    ("containerd.services.content.v1.ReadContentResponse", "data", 2, "bytes"),
    ("containerd.services.images.v1.DeleteImageRequest", "sync", 2, "bool"),
    ("containerd.services.leases.v1.DeleteRequest", "sync", 2, "bool"),
    (
        "containerd.services.leases.v1.AddResourceRequest",
        "resource",
        2,
        "containerd.services.leases.v1.Resource",
    ),
    ("containerd.services.snapshots.v1.CommitSnapshotRequest", "key", 3, "string"),
    (
        "containerd.services.snapshots.v1.UpdateSnapshotRequest",
        "update_mask",
        3,
        "google.protobuf.FieldMask",
    ),
    ("containerd.services.snapshots.v1.UsageResponse", "inodes", 2, "int64"),
    ("containerd.services.tasks.v1.KillRequest", "signal", 3, "uint32"),
    ("containerd.services.tasks.v1.KillRequest", "all", 4, "bool"),
    ("containerd.services.tasks.v1.CheckpointTaskRequest", "parent_checkpoint", 2, "string"),
    (
        "containerd.services.tasks.v1.CheckpointTaskResponse",
        "descriptors",
        1,
        "repeated containerd.types.Descriptor",
    ),
    (
        "containerd.services.tasks.v1.MetricsResponse",
        "metrics",
        1,
        "repeated containerd.types.Metric",
    ),
    (
        "containerd.services.tasks.v1.ListPidsResponse",
        "processes",
        1,
        "repeated containerd.v1.types.ProcessInfo",
    ),
    ("containerd.services.tasks.v1.WaitResponse", "exited_at", 2, TS),
    ("containerd.services.tasks.v1.ResizePtyRequest", "height", 4, "uint32"),
    ("containerd.services.events.v1.PublishRequest", "event", 2, ANY),
    ("containerd.services.introspection.v1.ServerResponse", "uuid", 1, "string"),
    (
        "containerd.services.namespaces.v1.UpdateNamespaceRequest",
        "update_mask",
        2,
        "google.protobuf.FieldMask",
    ),
    ("containerd.task.v2.DeleteResponse", "exited_at", 3, TS),
    ("containerd.task.v2.ExecProcessRequest", "spec", 7, ANY),
    ("containerd.task.v2.ShutdownRequest", "now", 2, "bool"),
    ("containerd.task.v2.StatsResponse", "stats", 1, ANY),
    ("containerd.runc.v1.CheckpointOptions", "empty_namespaces", 6, "repeated string"),
    ("containerd.runc.v1.CheckpointOptions", "work_path", 9, "string"),
    ("containerd.events.TaskExecStarted", "pid", 3, "uint32"),
    ("containerd.events.TaskCheckpointed", "checkpoint", 2, "string"),
    ("containerd.events.NamespaceUpdate", "labels", 2, SMAP),
    ("containerd.events.SnapshotCommit", "name", 2, "string"),
    ("containerd.events.ContentDelete", "digest", 1, "string"),
    # io.containerd.cgroups.v1 (containerd/cgroups cgroup1/stats/metrics.proto)
    (
        "io.containerd.cgroups.v1.Metrics",
        "hugetlb",
        1,
        "repeated io.containerd.cgroups.v1.HugetlbStat",
    ),
    ("io.containerd.cgroups.v1.Metrics", "memory", 4, "io.containerd.cgroups.v1.MemoryStat"),
    (
        "io.containerd.cgroups.v1.Metrics",
        "network",
        7,
        "repeated io.containerd.cgroups.v1.NetworkStat",
    ),
    (
        "io.containerd.cgroups.v1.Metrics",
        "memory_oom_control",
        9,
        "io.containerd.cgroups.v1.MemoryOomControl",
    ),
    ("io.containerd.cgroups.v1.CPUUsage", "per_cpu", 4, "repeated uint64"),
    ("io.containerd.cgroups.v1.Throttle", "throttled_time", 3, "uint64"),
    ("io.containerd.cgroups.v1.MemoryStat", "hierarchical_swap_limit", 17, "uint64"),
    ("io.containerd.cgroups.v1.MemoryStat", "total_unevictable", 32, "uint64"),
    ("io.containerd.cgroups.v1.MemoryStat", "usage", 33, "io.containerd.cgroups.v1.MemoryEntry"),
    (
        "io.containerd.cgroups.v1.MemoryStat",
        "kernel_tcp",
        36,
        "io.containerd.cgroups.v1.MemoryEntry",
    ),
    ("io.containerd.cgroups.v1.MemoryEntry", "failcnt", 4, "uint64"),
    ("io.containerd.cgroups.v1.HugetlbStat", "pagesize", 4, "string"),
    ("io.containerd.cgroups.v1.PidsStat", "limit", 2, "uint64"),
    (
        "io.containerd.cgroups.v1.BlkIOStat",
        "sectors_recursive",
        8,
        "repeated io.containerd.cgroups.v1.BlkIOEntry",
    ),
    ("io.containerd.cgroups.v1.BlkIOEntry", "value", 5, "uint64"),
    ("io.containerd.cgroups.v1.RdmaEntry", "hca_objects", 3, "uint32"),
    ("io.containerd.cgroups.v1.CgroupStats", "nr_io_wait", 5, "uint64"),
]

ENUMS: dict[str, dict[str, int]] = {
    "containerd.v1.types.Status": {
        "UNKNOWN": 0,
        "CREATED": 1,
        "RUNNING": 2,
        "STOPPED": 3,
        "PAUSED": 4,
        "PAUSING": 5,
    },
    "containerd.services.content.v1.WriteAction": {"STAT": 0, "WRITE": 1, "COMMIT": 2},
    "containerd.services.snapshots.v1.Kind": {
        "UNKNOWN": 0,
        "VIEW": 1,
        "ACTIVE": 2,
        "COMMITTED": 3,
    },
}

EVENT_TYPES = [
    "containerd.events.TaskCreate",
    "containerd.events.TaskStart",
    "containerd.events.TaskExit",
    "containerd.events.TaskDelete",
    "containerd.events.TaskIO",
    "containerd.events.TaskOOM",
    "containerd.events.TaskExecAdded",
    "containerd.events.TaskExecStarted",
    "containerd.events.TaskPaused",
    "containerd.events.TaskResumed",
    "containerd.events.TaskCheckpointed",
    "containerd.events.ContainerCreate",
    "containerd.events.ContainerUpdate",
    "containerd.events.ContainerDelete",
    "containerd.events.SnapshotPrepare",
    "containerd.events.SnapshotCommit",
    "containerd.events.SnapshotRemove",
    "containerd.events.ContentDelete",
    "containerd.events.NamespaceCreate",
    "containerd.events.NamespaceUpdate",
    "containerd.events.NamespaceDelete",
    "containerd.services.images.v1.ImageCreate",
    "containerd.services.images.v1.ImageUpdate",
    "containerd.services.images.v1.ImageDelete",
]

_SCALARS = {
    FieldDescriptor.TYPE_STRING: "string",
    FieldDescriptor.TYPE_BYTES: "bytes",
    FieldDescriptor.TYPE_BOOL: "bool",
    FieldDescriptor.TYPE_INT32: "int32",
    FieldDescriptor.TYPE_INT64: "int64",
    FieldDescriptor.TYPE_UINT32: "uint32",
    FieldDescriptor.TYPE_UINT64: "uint64",
}


def _type_name(field: FieldDescriptor) -> str:
    """Render a field's wire type as in a .proto file (maps and repeated included)."""
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        msg = field.message_type
        assert msg is not None
        if msg.GetOptions().map_entry:
            key = _type_name(msg.fields_by_name["key"])
            value = _type_name(msg.fields_by_name["value"])
            return f"map<{key},{value}>"
        base = msg.full_name
    elif field.type == FieldDescriptor.TYPE_ENUM:
        enum = field.enum_type
        assert enum is not None
        base = enum.full_name
    else:
        base = _SCALARS[field.type]
    return f"repeated {base}" if field.is_repeated else base


def _message(full_name: str) -> Descriptor:
    return POOL.FindMessageTypeByName(full_name)


def _service(full_name: str) -> ServiceDescriptor:
    return POOL.FindServiceByName(full_name)


def _shape_table(service: ServiceDescriptor) -> list[tuple[str, tuple[bool, bool]]]:
    return [(m.name, (bool(m.client_streaming), bool(m.server_streaming))) for m in service.methods]


@pytest.mark.parametrize("service_name", sorted({**SERVICES, **SEACAN_SERVICES, **TTRPC_SERVICES}))
def test_service_methods_and_streaming(service_name: str) -> None:
    expected = {**SERVICES, **SEACAN_SERVICES, **TTRPC_SERVICES}[service_name]
    assert _shape_table(_service(service_name)) == expected


def test_every_proto_was_generated_and_imports() -> None:
    # 26 containerd protos + cgroups v1 metrics.proto + seacan's gc, transfer,
    # networking, volumes, build and engine protos -> one _pb2 and one _pb2_grpc module each
    assert len([n for n in GENERATED_MODULES if n.endswith("_pb2")]) == 33
    assert len([n for n in GENERATED_MODULES if n.endswith("_pb2_grpc")]) == 33


def test_method_counts() -> None:
    assert len(SERVICES) == 11
    assert sum(len(methods) for methods in SERVICES.values()) == 66
    assert len(TTRPC_SERVICES["containerd.task.v2.Task"]) == 17


@pytest.mark.parametrize(("key", "types"), sorted(METHOD_TYPES.items()))
def test_method_io_types(key: tuple[str, str], types: tuple[str, str]) -> None:
    service, method = key
    m = _service(service).methods_by_name[method]
    assert (m.input_type.full_name, m.output_type.full_name) == types


def test_apischema_matches_table() -> None:
    expected = {
        f"/{service}/{method}": shape
        for service, methods in SERVICES.items()
        for method, shape in methods
    }
    # seacan's own services on the main socket
    expected["/seacan.services.gc.v1.GC/Collect"] = (False, False)
    for service, methods in SEACAN_SERVICES.items():
        expected.update({f"/{service}/{method}": shape for method, shape in methods})
    assert apischema.method_shapes() == expected
    assert sorted(apischema.service_names()) == sorted(
        [*SERVICES, *SEACAN_SERVICES, "seacan.services.gc.v1.GC"]
    )
    shapes = apischema.method_shapes()
    assert shapes["/containerd.services.content.v1.Content/Write"] == BI
    assert shapes["/containerd.services.events.v1.Events/Subscribe"] == SS


@pytest.mark.parametrize("name", sorted(FULL_MESSAGES))
def test_full_message_layout(name: str) -> None:
    desc = _message(name)
    actual = {f.name: (f.number, _type_name(f)) for f in desc.fields}
    assert actual == FULL_MESSAGES[name]


@pytest.mark.parametrize(("message", "field", "number", "type_name"), FIELD_SPOTS)
def test_field_spot_checks(message: str, field: str, number: int, type_name: str) -> None:
    f = _message(message).fields_by_name[field]
    assert (f.number, _type_name(f)) == (number, type_name)


@pytest.mark.parametrize("name", sorted(ENUMS))
def test_enum_values(name: str) -> None:
    enum = POOL.FindEnumTypeByName(name)
    assert {v.name: v.number for v in enum.values} == ENUMS[name]


@pytest.mark.parametrize("name", EVENT_TYPES)
def test_event_payload_types_exist(name: str) -> None:
    # The Any type URL of an event is exactly this full name.
    assert _message(name).full_name == name


def test_unused_field_numbers_stay_unused() -> None:
    def numbers(name: str) -> set[int]:
        return {f.number for f in _message(name).fields}

    assert 4 not in numbers("containerd.types.Descriptor")
    assert numbers("containerd.services.images.v1.Image").isdisjoint({4, 5, 6})
    assert 2 not in numbers("containerd.services.tasks.v1.CreateTaskRequest")
    assert numbers("containerd.services.diff.v1.DiffResponse") == {3}
    assert 2 not in numbers("containerd.services.leases.v1.CreateRequest")


def test_descriptor_encoding_matches_hand_computed_bytes() -> None:
    msg = descriptor_pb2.Descriptor(
        media_type="a/b",
        digest="sha256:00",
        size=300,
        annotations={"k": "v"},
    )
    expected = (
        b"\x0a\x03a/b"  # field 1, length-delimited, "a/b"
        + b"\x12\x09sha256:00"  # field 2, length-delimited
        + b"\x18\xac\x02"  # field 3, varint 300
        + b"\x2a\x06"  # field 5 (map entry), 6 bytes
        + b"\x0a\x01k\x12\x01v"  # entry: key=1 "k", value=2 "v"
    )
    assert msg.SerializeToString(deterministic=True) == expected
    decoded = descriptor_pb2.Descriptor.FromString(expected)
    assert decoded == msg
    assert dict(decoded.annotations) == {"k": "v"}


def test_status_enum_is_in_containerd_v1_types() -> None:
    assert task_pb2.Status.DESCRIPTOR.full_name == "containerd.v1.types.Status"
    assert task_pb2.RUNNING == 2
    # Process.status=4 with RUNNING encodes as tag 0x20, value 2.
    assert task_pb2.Process(status=task_pb2.RUNNING).SerializeToString() == b"\x20\x02"


def test_any_with_bare_type_url_roundtrips() -> None:
    # containerd's typeurl uses the bare full name as the Any type URL (no
    # "type.googleapis.com/" prefix), so build and read such Anys by hand:
    # Any.Pack() adds a prefix and Any.Unpack() rejects URLs without a "/".
    from google.protobuf import any_pb2

    details = oci_pb2.ProcessDetails(exec_id="e1")
    packed = any_pb2.Any(type_url=details.DESCRIPTOR.full_name, value=details.SerializeToString())
    assert packed.type_url == "containerd.runc.v1.ProcessDetails"
    assert packed.TypeName() == "containerd.runc.v1.ProcessDetails"
    assert packed.SerializeToString() == (
        b"\x0a\x21containerd.runc.v1.ProcessDetails" + b"\x12\x04" + b"\x0a\x02e1"
    )
    out = oci_pb2.ProcessDetails.FromString(packed.value)
    assert out.exec_id == "e1"


def test_ttrpc_request_encoding() -> None:
    req = ttrpc_pb2.Request(
        service="containerd.task.v2.Task",
        method="State",
        timeout_nano=1,
        metadata=[ttrpc_pb2.KeyValue(key="a", value="b")],
    )
    raw = req.SerializeToString()
    assert raw.startswith(b"\x0a\x17containerd.task.v2.Task\x12\x05State")
    assert raw.endswith(b"\x20\x01\x2a\x06\x0a\x01a\x12\x01b")
