"""Transfer: pull and push images between seacand and registries.

One call per transfer, in the shape of containerd 1.7's Transfer service;
the daemon does the work and streams :class:`Progress` back::

    req = PullRequest(ref="127.0.0.1:5000/library/busybox:latest",
                      registry=RegistryOptions(credentials={"127.0.0.1:5000": creds}))
    async for p in client.transfer.pull(req):
        print(p.kind.name, p.digest, p.current, p.total)
    # the last event is DONE, with the image name and its target digest

Credentials travel in the request (the client resolved them from its
Docker config, as Docker's ``X-Registry-Auth``), keyed by registry host.
Implementations: the images service's ``transfer`` module and
:class:`seacan.transfer.proxy.RemoteTransfer`.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from seacan.distribution.auth import Credentials
from seacan.oci import Platform


class Kind(enum.IntEnum):
    """What a progress event reports (the proto's ``Progress.Kind``)."""

    UNKNOWN = 0
    RESOLVING = 1
    RESOLVED = 2
    WAITING = 3
    DOWNLOADING = 4
    DOWNLOADED = 5
    EXTRACTING = 6
    UNPACKED = 7
    EXISTS = 8
    MOUNTED = 9
    UPLOADING = 10
    PUSHED = 11
    DONE = 12


@dataclass(frozen=True, slots=True)
class Progress:
    """One event; ``digest``/``media_type`` name the blob, ``name``/``image_digest`` the image."""

    kind: Kind
    digest: str = ""
    media_type: str = ""
    current: int = 0
    total: int = 0
    name: str = ""
    image_digest: str = ""
    message: str = ""


@dataclass(frozen=True, slots=True)
class RegistryOptions:
    """How to reach the registry: credentials per host, plain HTTP, TLS verification."""

    credentials: Mapping[str, Credentials] = field(default_factory=dict)
    plain_http: bool = False
    insecure: bool = False


@dataclass(frozen=True, slots=True)
class PullRequest:
    ref: str
    platform: Platform | None = None  # None: the host's
    registry: RegistryOptions = field(default_factory=RegistryOptions)
    unpack: bool = True
    snapshotter: str = "overlayfs"
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PushRequest:
    ref: str
    source: str = ""  # the local image; "" means the image named ``ref``
    platform: Platform | None = None
    registry: RegistryOptions = field(default_factory=RegistryOptions)


class Transfer(Protocol):
    def pull(self, request: PullRequest) -> AsyncIterator[Progress]: ...

    def push(self, request: PushRequest) -> AsyncIterator[Progress]: ...

    async def login(self, host: str, registry: RegistryOptions) -> None:
        """Check the credentials in ``registry`` for ``host`` (PermissionDenied if refused)."""
        ...


__all__ = [
    "Credentials",
    "Kind",
    "Progress",
    "PullRequest",
    "PushRequest",
    "RegistryOptions",
    "Transfer",
]
