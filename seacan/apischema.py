"""Call shapes of the containerd v1 gRPC API served on the main socket.

Derived from the generated descriptors in :mod:`seacan.api`, so a raw-bytes
gRPC front can register every method with the right streaming shape without
hand-maintained tables.  The gRPC health service is not listed here; it comes
from grpcio-health-checking.
"""

from __future__ import annotations

import functools
import importlib
from types import ModuleType

from google.protobuf.descriptor import FileDescriptor, ServiceDescriptor

from seacan.api.services.containers.v1 import containers_pb2
from seacan.api.services.content.v1 import content_pb2
from seacan.api.services.diff.v1 import diff_pb2
from seacan.api.services.events.v1 import events_pb2
from seacan.api.services.gc.v1 import gc_pb2
from seacan.api.services.images.v1 import images_pb2
from seacan.api.services.introspection.v1 import introspection_pb2
from seacan.api.services.leases.v1 import leases_pb2
from seacan.api.services.namespaces.v1 import namespaces_pb2
from seacan.api.services.snapshots.v1 import snapshots_pb2
from seacan.api.services.tasks.v1 import tasks_pb2
from seacan.api.services.version.v1 import version_pb2

# The generated modules whose services are exposed on the main gRPC socket.
MAIN_SOCKET_MODULES: tuple[ModuleType, ...] = (
    containers_pb2,
    content_pb2,
    diff_pb2,
    events_pb2,
    gc_pb2,
    images_pb2,
    introspection_pb2,
    leases_pb2,
    namespaces_pb2,
    snapshots_pb2,
    tasks_pb2,
    version_pb2,
)


# seacan's own services on the main socket: seacan.services.<name>.v1, generated
# from proto/seacan/api/services/<name>/v1/<name>.proto.
SEACAN_SERVICES = ("transfer", "networking", "volumes", "build", "engine")


def _seacan_modules() -> tuple[ModuleType, ...]:
    found = []
    for name in SEACAN_SERVICES:
        try:
            found.append(importlib.import_module(f"seacan.api.services.{name}.v1.{name}_pb2"))
        except ModuleNotFoundError:
            continue
    return tuple(found)


def _services() -> list[ServiceDescriptor]:
    found: list[ServiceDescriptor] = []
    for module in (*MAIN_SOCKET_MODULES, *_seacan_modules()):
        file_desc: FileDescriptor = module.DESCRIPTOR
        by_name = file_desc.services_by_name
        found.extend(by_name[name] for name in sorted(by_name))
    return found


@functools.cache
def _shapes() -> tuple[tuple[str, tuple[bool, bool]], ...]:
    entries: list[tuple[str, tuple[bool, bool]]] = []
    for service in _services():
        for method in service.methods:
            path = f"/{service.full_name}/{method.name}"
            entries.append((path, (bool(method.client_streaming), bool(method.server_streaming))))
    return tuple(entries)


def service_names() -> tuple[str, ...]:
    """Full service names on the main socket, e.g. ``containerd.services.content.v1.Content``."""
    return tuple(service.full_name for service in _services())


def method_shapes() -> dict[str, tuple[bool, bool]]:
    """Map each full method path to ``(client_streaming, server_streaming)``.

    Keys look like ``/containerd.services.content.v1.Content/Write``.  A fresh
    dict is returned on every call, so callers may modify it.
    """
    return dict(_shapes())
