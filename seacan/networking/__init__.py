"""Networking: named networks, container attachments and pod networks (CNI).

A *network* is a CNI conflist seacan writes (driver ``bridge``, ``macvlan``
or ``ipvlan``; host-local addresses). A container *attaches* to one or more
networks: the networking service makes its network namespace, adds an
interface per network (``eth0``, ``eth1``...), publishes its ports and
writes its ``/etc/hosts``, ``/etc/resolv.conf`` and ``/etc/hostname``,
which the container gets as bind mounts::

    a = await net.attach(AttachSpec("web", networks=(NetworkRef("front", ("www",)),),
                                    ports=parse_port_specs(["127.0.0.1:8080:80"])))
    opts = replace(opts, network_mode=a.netns_path, mounts=opts.mounts + a.mounts())
    ...
    await net.detach("web")

Implementations: the networking service (``seacan.services.networking``)
and :class:`seacan.networking.proxy.RemoteNetworking`.
"""

from __future__ import annotations

import builtins
import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from seacan import errors

DEFAULT_NETWORK = "bridge"
DRIVERS = ("bridge", "macvlan", "ipvlan")
NAME_PATTERN = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*")
MAX_NAME = 64


def validate_name(name: str) -> str:
    """Docker's network name rule (no ``/``: a name is also a file name)."""
    if not name or len(name) > MAX_NAME or not NAME_PATTERN.fullmatch(name):
        raise errors.InvalidArgument(
            f"invalid network name {name!r}: want {NAME_PATTERN.pattern}, at most {MAX_NAME} chars"
        )
    if name in ("none", "host"):
        raise errors.InvalidArgument(f"network name {name!r} is reserved")
    return name


# Host names as they are written into /etc/hosts and /etc/hostname: no spaces,
# newlines or '#' can ever reach those files (a value is one word of one line).
HOST_PATTERN = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*", re.ASCII)
MAX_HOST = 255
DNS_OPTION_PATTERN = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.:+-]*", re.ASCII)


def validate_host(name: str, what: str = "host name") -> str:
    """A host name, alias or search domain that can be written as one word of a line."""
    if len(name) > MAX_HOST or not HOST_PATTERN.fullmatch(name):
        raise errors.InvalidArgument(
            f"invalid {what} {name[:80]!r}: want {HOST_PATTERN.pattern}, at most {MAX_HOST} chars"
        )
    return name


def validate_dns_server(addr: str) -> str:
    try:
        return str(ipaddress.ip_address(addr))
    except ValueError:
        raise errors.InvalidArgument(f"invalid --dns {addr[:80]!r}: want an IP address") from None


def validate_dns_option(option: str) -> str:
    if len(option) > MAX_HOST or not DNS_OPTION_PATTERN.fullmatch(option):
        raise errors.InvalidArgument(
            f"invalid --dns-option {option[:80]!r}: want e.g. ndots:2 (one word, no spaces)"
        )
    return option


@dataclass(frozen=True, slots=True)
class PortMapping:
    host_port: int
    container_port: int
    protocol: str = "tcp"
    host_ip: str = ""  # "" = every host address

    def __str__(self) -> str:
        host = f"{self.host_ip}:" if self.host_ip else ""
        return f"{host}{self.host_port}->{self.container_port}/{self.protocol}"


_PORT_SPEC = re.compile(
    r"(?:(?P<ip>\[[0-9a-fA-F:.]+\]|[0-9.]+):)??(?:(?P<host>\d*):)?(?P<cont>\d+)(?:/(?P<proto>\w+))?",
    re.ASCII,
)


def _port(text: str, spec: str) -> int:
    n = int(text) if len(text) <= 5 else 0
    if not 1 <= n <= 65535:
        raise errors.InvalidArgument(f"invalid port {text} in {spec!r}: want 1-65535")
    return n


def parse_port_spec(spec: str) -> PortMapping:
    """docker's ``-p``: ``[ip:][hostPort:]containerPort[/tcp|udp]``; host port 0 = any free."""
    m = _PORT_SPEC.fullmatch(spec.strip())
    if m is None:
        raise errors.InvalidArgument(
            f"invalid port spec {spec!r}: want [ip:][hostPort:]containerPort[/tcp|udp]"
        )
    proto = (m.group("proto") or "tcp").lower()
    if proto not in ("tcp", "udp"):
        raise errors.InvalidArgument(f"invalid protocol {proto!r} in {spec!r}: want tcp or udp")
    ip = (m.group("ip") or "").strip("[]")
    if ip:
        try:
            ip = str(ipaddress.ip_address(ip))
        except ValueError:
            raise errors.InvalidArgument(f"invalid host IP {ip!r} in {spec!r}") from None
    host = m.group("host") or ""
    return PortMapping(
        host_port=_port(host, spec) if host else 0,
        container_port=_port(m.group("cont"), spec),
        protocol=proto,
        host_ip=ip,
    )


def parse_port_specs(specs: Sequence[str]) -> tuple[PortMapping, ...]:
    return tuple(parse_port_spec(s) for s in specs)


def exposed_ports(image_config: Mapping[str, Any]) -> tuple[PortMapping, ...]:
    """``-P``: the image's ExposedPorts (``"80/tcp"``) on any free host port."""
    out = []
    for key in sorted((image_config.get("ExposedPorts") or {}).keys()):
        port, _, proto = str(key).partition("/")
        out.append(parse_port_spec(f"{port}/{proto or 'tcp'}"))
    return tuple(out)


def parse_extra_host(text: str) -> tuple[str, str]:
    """``--add-host host:ip`` (or ``host=ip``) as (host, ip)."""
    sep = "=" if "=" in text else ":"
    host, _, ip = text.partition(sep)
    try:
        ip = str(ipaddress.ip_address(ip.strip("[]")))
    except ValueError:
        raise errors.InvalidArgument(f"invalid --add-host {text!r}: want HOST:IP") from None
    if not host:
        raise errors.InvalidArgument(f"invalid --add-host {text!r}: want HOST:IP")
    validate_host(host, "--add-host name")
    return host, ip


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A container's interface on one network."""

    namespace: str
    container_id: str
    network: str
    ifname: str = ""
    ip: str = ""  # CIDR
    mac: str = ""
    aliases: tuple[str, ...] = ()
    ports: tuple[PortMapping, ...] = ()

    @property
    def address(self) -> str:
        return self.ip.partition("/")[0]


@dataclass(frozen=True, slots=True)
class Network:
    name: str
    id: str = ""
    driver: str = "bridge"
    subnet: str = ""
    gateway: str = ""
    internal: bool = False
    labels: Mapping[str, str] = field(default_factory=dict)
    options: Mapping[str, str] = field(default_factory=dict)
    bridge: str = ""
    created_at: datetime | None = None
    conflist: str = ""
    endpoints: tuple[Endpoint, ...] = ()


@dataclass(frozen=True, slots=True)
class NetworkRef:
    network: str
    aliases: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for a in self.aliases:
            validate_host(a, "network alias")


@dataclass(frozen=True, slots=True)
class AttachSpec:
    """What a container asks for (``seacan run``'s network flags)."""

    container_id: str
    networks: tuple[NetworkRef, ...] = ()
    ports: tuple[PortMapping, ...] = ()
    hostname: str = ""
    dns_servers: tuple[str, ...] = ()
    dns_search: tuple[str, ...] = ()
    dns_options: tuple[str, ...] = ()
    extra_hosts: tuple[str, ...] = ()  # "host:ip"

    def __post_init__(self) -> None:
        """Every value that ends up in hosts, resolv.conf or hostname is checked here."""
        if self.hostname:
            validate_host(self.hostname, "hostname")
        for s in self.dns_servers:
            validate_dns_server(s)
        for d in self.dns_search:
            if d != ".":  # Docker's "no search domains"
                validate_host(d, "--dns-search domain")
        for o in self.dns_options:
            validate_dns_option(o)
        for h in self.extra_hosts:
            parse_extra_host(h)


@dataclass(frozen=True, slots=True)
class Attachment:
    """Where an attached container's network lives on the host."""

    netns_path: str
    hosts_path: str
    resolv_conf_path: str
    hostname_path: str
    hostname: str
    endpoints: tuple[Endpoint, ...] = ()

    def mounts(self) -> tuple[dict[str, Any], ...]:
        """The OCI bind mounts of the container's hosts, resolv.conf and hostname files."""
        return tuple(
            {"destination": dst, "type": "bind", "source": src, "options": ["rbind", "rprivate"]}
            for dst, src in (
                ("/etc/hosts", self.hosts_path),
                ("/etc/resolv.conf", self.resolv_conf_path),
                ("/etc/hostname", self.hostname_path),
            )
        )


@dataclass(frozen=True, slots=True)
class PodNetwork:
    pod_id: str
    netns_path: str
    network: str = ""
    ifname: str = ""
    ips: tuple[str, ...] = ()
    cni_result: str = ""


class Networks(Protocol):
    async def create(self, network: Network) -> Network: ...

    async def get(self, name: str) -> Network: ...

    async def list(self) -> builtins.list[Network]: ...

    async def remove(self, name: str) -> None: ...

    async def prune(self) -> builtins.list[str]: ...


class Attacher(Protocol):
    async def attach(self, spec: AttachSpec, *, again: bool = False) -> Attachment: ...

    async def prepare(self, spec: AttachSpec) -> Attachment:
        """Attach's first half: the namespace and files exist (no addresses yet); create the
        container in it while :meth:`attach` of the same container completes it."""
        ...

    async def detach(self, container_id: str, *, forget: bool = False) -> None: ...

    async def connect(
        self, network: str, container_id: str, aliases: Sequence[str] = ()
    ) -> Endpoint: ...

    async def disconnect(self, network: str, container_id: str) -> None: ...


class Pods(Protocol):
    async def setup_pod(
        self,
        pod_id: str,
        cni_conf_dir: str,
        netns_path: str = "",
        ports: Sequence[PortMapping] = (),
        cni_args: Mapping[str, str] | None = None,
    ) -> PodNetwork: ...

    async def teardown_pod(self, pod_id: str) -> None: ...

    async def pod_status(self, pod_id: str) -> PodNetwork: ...


__all__ = [
    "DEFAULT_NETWORK",
    "DRIVERS",
    "AttachSpec",
    "Attacher",
    "Attachment",
    "Endpoint",
    "Network",
    "NetworkRef",
    "Networks",
    "PodNetwork",
    "Pods",
    "PortMapping",
    "exposed_ports",
    "parse_extra_host",
    "parse_port_spec",
    "parse_port_specs",
    "validate_dns_option",
    "validate_dns_server",
    "validate_host",
    "validate_name",
]
