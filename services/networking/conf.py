"""Pure planning: conflists for networks, subnets, bridge names, the per-container files.

Nothing here touches the system; the manager feeds it facts (host routes,
existing networks, resolv.conf text) and writes what it returns.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from seacan import errors
from seacan.networking import Endpoint, Network

CNI_VERSION = "1.0.0"
BRIDGE_PREFIX = "sc-"
# Where subnets come from when none is given (Docker's default pools).
POOL = [f"172.{n}.0.0/16" for n in range(17, 32)] + [f"192.168.{n}.0/20" for n in range(0, 256, 16)]
FALLBACK_DNS = ("8.8.8.8", "8.8.4.4")
HOSTS_HEADER = (
    "127.0.0.1\tlocalhost\n"
    "::1\tlocalhost ip6-localhost ip6-loopback\n"
    "fe00::0\tip6-localnet\n"
    "ff00::0\tip6-mcastprefix\n"
    "ff02::1\tip6-allnodes\n"
    "ff02::2\tip6-allrouters\n"
)


def bridge_name(scope_key: str, network: str) -> str:
    """``sc-<hash>`` (15 chars, IFNAMSIZ-1), unique per daemon (``scope_key``) and network."""
    h = hashlib.sha256(f"{scope_key}\0{network}".encode()).hexdigest()
    return BRIDGE_PREFIX + h[: 15 - len(BRIDGE_PREFIX)]


def network_id(scope_key: str, network: str) -> str:
    return hashlib.sha256(f"{scope_key}\0network\0{network}".encode()).hexdigest()


def parse_subnet(text: str) -> ipaddress.IPv4Network:
    try:
        net = ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise errors.InvalidArgument(f"invalid subnet {text!r}: want e.g. 10.1.2.0/24") from None
    if not isinstance(net, ipaddress.IPv4Network):
        raise errors.InvalidArgument(f"subnet {text!r}: only IPv4 subnets are supported")
    if net.prefixlen > 30:
        raise errors.InvalidArgument(f"subnet {text!r} is too small: want /30 or larger")
    if str(net) != text:
        raise errors.InvalidArgument(f"invalid subnet {text!r}: did you mean {net}?")
    return net


def overlapping(subnet: str, networks: Iterable[Network]) -> Network | None:
    """The first of ``networks`` whose subnet overlaps ``subnet``."""
    mine = ipaddress.ip_network(subnet)
    for n in networks:
        if n.subnet and mine.overlaps(ipaddress.ip_network(n.subnet)):
            return n
    return None


def free_subnet(networks: Sequence[Network], routes: Sequence[str], start: str = "") -> str:
    """The first pool subnet that overlaps neither a network nor a host route.

    The search starts at a place derived from ``start`` (the daemon's root), so
    daemons sharing a host seldom race for the same subnet.
    """
    taken = [ipaddress.ip_network(n.subnet) for n in networks if n.subnet]
    for r in routes:
        with_route = ipaddress.ip_network(r, strict=False)
        if with_route.prefixlen > 0 and with_route.version == 4:
            taken.append(with_route)
    first = int(hashlib.sha256(start.encode()).hexdigest(), 16) % len(POOL) if start else 0
    for cand in POOL[first:] + POOL[:first]:
        net = ipaddress.ip_network(cand)
        if not any(net.overlaps(t) for t in taken):
            return cand
    raise errors.ResourceExhausted("no free subnet left in the default pools: give --subnet")


def gateway_for(subnet: str, gateway: str) -> str:
    net = ipaddress.ip_network(subnet)
    if not gateway:
        return str(next(net.hosts()))
    try:
        gw = ipaddress.ip_address(gateway)
    except ValueError:
        raise errors.InvalidArgument(f"invalid gateway {gateway!r}") from None
    if gw not in net or gw in (net.network_address, net.broadcast_address):
        raise errors.InvalidArgument(f"gateway {gateway} is not a host address of {subnet}")
    return str(gw)


def conflist(net: Network, ipam_dir: str) -> dict[str, Any]:
    """The CNI conflist for ``net`` (its subnet, gateway and bridge already chosen)."""
    ipam: dict[str, Any] = {
        "type": "host-local",
        "dataDir": ipam_dir,
        "ranges": [[{"subnet": net.subnet, "gateway": net.gateway}]],
        "routes": [] if net.internal else [{"dst": "0.0.0.0/0"}],
    }
    plugins: list[dict[str, Any]]
    if net.driver == "bridge":
        # Masquerade and published ports are seacan's own rules (iptables.py), made once
        # per network and in one iptables-restore per container, not the plugins' execs.
        plugins = [
            {
                "type": "bridge",
                "bridge": net.bridge,
                "isGateway": not net.internal,
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": ipam,
            },
        ]
    elif net.driver in ("macvlan", "ipvlan"):
        parent = net.options.get("parent", "")
        if not parent:
            raise errors.InvalidArgument(f"a {net.driver} network needs -o parent=INTERFACE")
        plugin: dict[str, Any] = {"type": net.driver, "master": parent, "ipam": ipam}
        plugin["mode"] = net.options.get(
            f"{net.driver}_mode", "bridge" if net.driver == "macvlan" else "l2"
        )
        plugins = [plugin]
    else:
        raise errors.InvalidArgument(
            f"unknown network driver {net.driver!r}: want bridge, macvlan or ipvlan"
        )
    return {"cniVersion": CNI_VERSION, "name": net.name, "plugins": plugins}


def result_endpoint(result: Mapping[str, Any], ifname: str) -> tuple[str, str]:
    """(ip CIDR, mac) of ``ifname`` in a CNI result."""
    ifaces = result.get("interfaces") or []
    ip = mac = ""
    for i, iface in enumerate(ifaces):
        if iface.get("name") == ifname and iface.get("sandbox"):
            mac = str(iface.get("mac", ""))
            for entry in result.get("ips") or []:
                if entry.get("interface") == i:
                    ip = str(entry.get("address", ""))
                    break
    if not ip and result.get("ips"):
        ip = str(result["ips"][0].get("address", ""))
    return ip, mac


# -- the per-container files ----------------------------------------------------


def hosts_file(
    hostname: str,
    own: Sequence[Endpoint],
    peers: Sequence[Endpoint],
    extra_hosts: Sequence[tuple[str, str]],
) -> str:
    """``/etc/hosts``: localhost, --add-host entries, the container, then its peers by name."""
    lines = [HOSTS_HEADER]
    lines += [f"{ip}\t{host}\n" for host, ip in extra_hosts]
    for e in own:
        if e.address:
            lines.append(f"{e.address}\t{hostname}\n")
    seen: set[tuple[str, str]] = set()
    for p in peers:
        if not p.address or (p.address, p.container_id) in seen:
            continue
        seen.add((p.address, p.container_id))
        names = [p.container_id, *(a for a in p.aliases if a != p.container_id)]
        lines.append(f"{p.address}\t{' '.join(names)}\n")
    return "".join(lines)


def resolv_conf(
    host_text: str,
    servers: Sequence[str] = (),
    search: Sequence[str] = (),
    options: Sequence[str] = (),
) -> str:
    """The container's resolv.conf: the host's, minus loopback resolvers (useless in a netns)."""
    host_servers: list[str] = []
    host_search: list[str] = []
    host_options: list[str] = []
    for line in host_text.splitlines():
        words = line.split()
        if not words or words[0].startswith(("#", ";")):
            continue
        if words[0] == "nameserver" and len(words) > 1:
            host_servers.append(words[1])
        elif words[0] in ("search", "domain"):
            host_search = words[1:]
        elif words[0] == "options":
            host_options += words[1:]
    if not servers:
        servers = [s for s in host_servers if not _loopback(s)] or list(FALLBACK_DNS)
    out = [f"nameserver {s}\n" for s in servers]
    if search or host_search:
        out.append("search " + " ".join(search or host_search) + "\n")
    if options or host_options:
        out.append("options " + " ".join(options or host_options) + "\n")
    return "".join(out)


def _loopback(addr: str) -> bool:
    try:
        return ipaddress.ip_address(addr.split("%")[0]).is_loopback
    except ValueError:
        return True
