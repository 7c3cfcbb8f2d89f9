"""Volumes: data directories that outlive containers, as Docker's local driver keeps them.

A volume has a name (Docker's rule ``[a-zA-Z0-9][a-zA-Z0-9_.-]+``, so it
can never be a path: no ``/``, no ``..``), a driver (``local``), labels and
driver options, and lives per namespace at a host directory, its
``mountpoint``. It is *in use* while a container, running or not,
references it; only unused volumes can be removed::

    v = await volumes.create("data", labels={"a": "1"})
    v = await volumes.acquire("data", "web", target="/etc", snapshotter="overlayfs",
                              parent=chain_id)     # records "web", copies /etc up if empty
    await volumes.remove("data")                   # FailedPrecondition: in use by web
    await volumes.release("web", remove_anonymous=True)   # after "web" was deleted

Anonymous volumes (``-v /path``, an image's ``VOLUME``) get a random 64-hex
name and the label :data:`LABEL_ANONYMOUS`. Local driver options, as
Docker's: ``type``, ``device`` and ``o`` (mount options); a volume with
options is mounted (``mount -t type -o o device mountpoint``) when first
used and unmounted when no container uses it any more.

Implementations: the volumes service's store (``seacan.services.volumes``)
and :class:`seacan.volumes.proxy.RemoteVolumes`.
"""

from __future__ import annotations

import builtins
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from seacan import errors

DRIVER_LOCAL = "local"
LABEL_ANONYMOUS = "com.docker.volume.anonymous"
NAME_PATTERN = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]+")
MAX_NAME = 255
LOCAL_OPTIONS = ("type", "device", "o")


def validate_name(name: str) -> str:
    """Docker's volume name rule; InvalidArgument naming the problem."""
    if not name:
        raise errors.InvalidArgument("volume name must not be empty")
    if len(name) > MAX_NAME:
        raise errors.InvalidArgument(f"volume name {name[:20]!r}...: longer than {MAX_NAME}")
    if len(name) == 1 and name.isalnum() and name.isascii():
        raise errors.InvalidArgument(
            f"invalid volume name {name!r}: too short, at least two characters"
        )
    if not NAME_PATTERN.fullmatch(name):
        hint = " (to bind a host directory, give an absolute path)" if "/" in name else ""
        raise errors.InvalidArgument(
            f"invalid volume name {name!r}: only {NAME_PATTERN.pattern} is allowed{hint}"
        )
    return name


def validate_driver(driver: str) -> str:
    if driver not in ("", DRIVER_LOCAL):
        raise errors.InvalidArgument(f"volume driver {driver!r}: only {DRIVER_LOCAL!r} exists")
    return DRIVER_LOCAL


def validate_options(options: Mapping[str, str]) -> dict[str, str]:
    """The local driver's options: type, device, o; type and device go together."""
    for key in options:
        if key not in LOCAL_OPTIONS:
            raise errors.InvalidArgument(
                f"invalid volume option {key!r}: the local driver takes {', '.join(LOCAL_OPTIONS)}"
            )
    if options and not (options.get("type") and options.get("device")):
        missing = "type" if not options.get("type") else "device"
        raise errors.InvalidArgument(f"volume options: missing required option {missing!r}")
    return dict(options)


@dataclass(frozen=True, slots=True)
class Volume:
    name: str
    driver: str = DRIVER_LOCAL
    labels: Mapping[str, str] = field(default_factory=dict)
    options: Mapping[str, str] = field(default_factory=dict)
    mountpoint: str = ""
    created_at: datetime | None = None
    containers: tuple[str, ...] = ()

    @property
    def anonymous(self) -> bool:
        return LABEL_ANONYMOUS in self.labels


@dataclass(frozen=True, slots=True)
class CopyUp:
    """Fill an empty volume from ``target`` in the image's committed snapshot ``parent``."""

    target: str
    snapshotter: str
    parent: str


@dataclass(frozen=True, slots=True)
class Pruned:
    removed: tuple[str, ...]
    reclaimed_bytes: int


class VolumeStore(Protocol):
    async def create(
        self,
        name: str,
        *,
        driver: str = "",
        labels: Mapping[str, str] | None = None,
        options: Mapping[str, str] | None = None,
    ) -> Volume: ...

    async def get(self, name: str) -> Volume: ...

    async def list(self, filters: Sequence[str] = ()) -> list[Volume]: ...

    async def remove(self, name: str, *, force: bool = False) -> None: ...

    async def prune(self, filters: Sequence[str] = (), *, all: bool = False) -> Pruned: ...

    async def acquire(
        self,
        name: str,
        container_id: str,
        *,
        driver: str = "",
        labels: Mapping[str, str] | None = None,
        options: Mapping[str, str] | None = None,
        copy_up: CopyUp | None = None,
    ) -> tuple[Volume, bool]: ...

    async def release(
        self, container_id: str, *, remove_anonymous: bool = False
    ) -> builtins.list[str]: ...


__all__ = [
    "DRIVER_LOCAL",
    "LABEL_ANONYMOUS",
    "CopyUp",
    "Pruned",
    "Volume",
    "VolumeStore",
    "validate_driver",
    "validate_name",
    "validate_options",
]
