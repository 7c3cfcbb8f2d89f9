"""A RunSpec checked and parsed, before anything is made: the pure half of ``run``.

Every malformed flag fails here with the message ``seacan run`` has always
given, so a refused run never leaves anything behind.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

from seacan import errors, scope
from seacan.engine import RunSpec, mounts
from seacan.networking import DEFAULT_NETWORK, PortMapping, parse_extra_host, parse_port_specs
from seacan.runtime.spec import ContainerOptions
from seacan.tasks import DEFAULT_RUNTIME

SPECIAL_NETWORKS = ("none", "host")
_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def random_id() -> str:
    """A fresh container ID: 12 hex digits, as docker shows them."""
    return secrets.token_hex(6)


def parse_memory(text: str) -> int:
    """docker's RAMInBytes: ``64m``, ``1g``, ``512k``, ``1048576``, ``1.5GB``."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b)?", text.strip().lower())
    if m is None:
        raise errors.InvalidArgument(f"invalid memory size {text!r}: want e.g. 64m, 1g")
    return int(float(m.group(1)) * _UNITS[m.group(2)])


def networks_of(spec: RunSpec) -> tuple[str, ...]:
    names = spec.networks or (DEFAULT_NETWORK,)
    special = [n for n in names if n in SPECIAL_NETWORKS]
    if special and len(names) > 1:
        raise errors.InvalidArgument(
            f"--network {special[0]} cannot be combined with other networks"
        )
    return names


@dataclass(frozen=True, slots=True)
class Plan:
    """What a run will make: every flag parsed."""

    id: str
    ref: str  # the normalised image reference
    runtime: str
    options: ContainerOptions  # before networks and volumes are attached
    networks: tuple[str, ...]  # () for --network none|host
    ports: tuple[PortMapping, ...]
    requests: tuple[mounts.MountRequest, ...]
    warnings: tuple[str, ...] = ()


def plan(spec: RunSpec) -> Plan:
    """``spec`` checked; InvalidArgument (or NotFound for a bind source) naming the flag."""
    from seacan.images.archive import normalize_reference

    id = scope.validate_identifier(spec.id or random_id(), "container ID")
    names = networks_of(spec)
    special = names[0] in SPECIAL_NETWORKS
    warnings: list[str] = []
    if special and (spec.publish or spec.publish_all):
        warnings.append(f"published ports are discarded with --network {names[0]}")
    ports = () if special else parse_port_specs(spec.publish)
    if not special:
        for h in spec.add_hosts:
            parse_extra_host(h)
    entrypoint = spec.entrypoint
    if entrypoint is not None and entrypoint in ((), ("",)):
        entrypoint = ()
    options = ContainerOptions(
        args=spec.args,
        entrypoint=entrypoint,
        env=spec.env,
        cwd=spec.workdir or None,
        user=spec.user or None,
        hostname=spec.hostname or None,
        terminal=spec.tty,
        read_only_rootfs=spec.read_only,
        privileged=spec.privileged,
        cap_add=spec.cap_add,
        cap_drop=spec.cap_drop,
        memory_bytes=parse_memory(spec.memory) if spec.memory else None,
        cpus=spec.cpus,
        pids_limit=spec.pids_limit,
        network_mode=names[0] if special else "none",
    )
    requests = mounts.parse_all(spec.volumes, spec.mounts, spec.tmpfs)
    mounts.check_binds(requests)
    return Plan(
        id=id,
        ref=normalize_reference(spec.image),
        runtime=spec.runtime or DEFAULT_RUNTIME,
        options=options,
        networks=() if special else names,
        ports=ports,
        requests=tuple(requests),
        warnings=tuple(warnings),
    )


__all__ = ["SPECIAL_NETWORKS", "Plan", "networks_of", "parse_memory", "plan", "random_id"]
