"""seacan's own iptables rules: the one module that runs iptables.

filter, chains jumped to first from FORWARD (as Docker's
DOCKER-ISOLATION-STAGE-1/2 and DOCKER-FORWARD): ``SEACAN-ISOLATION`` sends
traffic leaving a network's bridge to ``SEACAN-ISOLATION-2``, which drops it
if it enters the bridge of another network (and, for ``--internal``
networks, any traffic leaving or entering them); ``SEACAN-FORWARD`` accepts
the rest of a network's traffic, so networks work on hosts whose FORWARD
policy is DROP.

nat, as Docker and netavark do beside the CNI bridge plugin (whose
per-container ``ipMasq`` and the portmap plugin cost ~25 iptables execs per
container): ``SEACAN-POSTROUTING`` (from POSTROUTING) holds one network's
masquerade rules, made with the network: its traffic leaving the host, and
traffic DNATed into its bridge from the host's loopback (the bridge has
``route_localnet``) or from the network itself (hairpin).
``SEACAN-DNAT`` (from PREROUTING and OUTPUT, for local destinations) holds
the published ports, one DNAT rule each, tagged with a comment naming the
container; a container's rules are added and removed with ONE
``iptables-restore --noflush``.

Every network rule names its bridge, which is how a network's rules are
found and removed.
"""

from __future__ import annotations

import asyncio
import shlex
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from seacan import errors, log

IPTABLES = "iptables"
RESTORE = "iptables-restore"
SAVE = "iptables-save"
ISOLATION = "SEACAN-ISOLATION"
ISOLATION2 = "SEACAN-ISOLATION-2"
FORWARD = "SEACAN-FORWARD"
DNAT = "SEACAN-DNAT"
POSTROUTING = "SEACAN-POSTROUTING"
LOOPBACK = "127.0.0.0/8"
TIMEOUT = 30.0
# (table, chain, where it is jumped to from, the jump's match)
CHAINS: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    ("filter", ISOLATION2, "", ()),
    ("filter", FORWARD, "FORWARD", ()),
    ("filter", ISOLATION, "FORWARD", ()),  # inserted last: first in FORWARD
    ("nat", DNAT, "PREROUTING", ("-m", "addrtype", "--dst-type", "LOCAL")),
    ("nat", DNAT, "OUTPUT", ("-m", "addrtype", "--dst-type", "LOCAL")),
    ("nat", POSTROUTING, "POSTROUTING", ()),
)
_log = log.get(__name__)


@dataclass(frozen=True, slots=True)
class Port:
    """One published port of a container: ``host_ip:host_port`` -> ``ip:port``."""

    protocol: str
    host_ip: str  # "" = every local address
    host_port: int
    ip: str  # the container's address
    port: int


def rules(bridge: str, internal: bool) -> list[tuple[str, list[str]]]:
    """(chain, rule) pairs of the filter table for one network's bridge."""
    if internal:
        return [
            (ISOLATION, ["-i", bridge, "!", "-o", bridge, "-j", "DROP"]),
            (ISOLATION, ["-o", bridge, "!", "-i", bridge, "-j", "DROP"]),
            (FORWARD, ["-i", bridge, "-o", bridge, "-j", "ACCEPT"]),
        ]
    return [
        (ISOLATION, ["-i", bridge, "!", "-o", bridge, "-j", ISOLATION2]),
        (ISOLATION2, ["-o", bridge, "-j", "DROP"]),
        (FORWARD, ["-i", bridge, "-j", "ACCEPT"]),
        (FORWARD, ["-o", bridge, "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED,DNAT",
                   "-j", "ACCEPT"]),
    ]  # fmt: skip


def nat_rules(bridge: str, subnet: str, internal: bool) -> list[tuple[str, list[str]]]:
    """(chain, rule) pairs of the nat table for one network (none for an internal one)."""
    if internal:
        return []
    return [
        (POSTROUTING, ["-s", subnet, "!", "-o", bridge, "-j", "MASQUERADE"]),
        (POSTROUTING, ["-s", LOOPBACK, "-o", bridge, "-j", "MASQUERADE"]),
        (POSTROUTING, ["-s", subnet, "-o", bridge, "-m", "conntrack", "--ctstate", "DNAT",
                       "-j", "MASQUERADE"]),
    ]  # fmt: skip


def port_rule(p: Port, tag: str) -> list[str]:
    """The DNAT rule of one published port (in :data:`DNAT`), tagged with ``tag``."""
    dst = ["-d", f"{p.host_ip}/32"] if p.host_ip else []
    return [
        *dst, "-p", p.protocol, "-m", p.protocol, "--dport", str(p.host_port),
        "-m", "comment", "--comment", tag,
        "-j", "DNAT", "--to-destination", f"{p.ip}:{p.port}",
    ]  # fmt: skip


def restore_text(op: str, ports: Iterable[Port], tag: str) -> str:
    """``iptables-restore`` input that adds (``-A``) or deletes (``-D``) ``ports``' rules."""
    lines = ["*nat"]
    lines += [shlex.join([op, DNAT, *port_rule(p, tag)]) for p in ports]
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"


async def _exec(argv: Sequence[str], stdin: str | None = None) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        out, err = await asyncio.wait_for(
            proc.communicate(stdin.encode() if stdin is not None else None), TIMEOUT
        )
    except BaseException:
        proc.kill()
        await proc.wait()
        raise
    return proc.returncode or 0, out.decode(), err.decode(errors="replace").strip()


async def _run(*args: str, check: bool = True) -> tuple[int, str]:
    rc, out, err = await _exec([IPTABLES, "-w", "5", *args])
    if check and rc != 0:
        raise errors.Internal(f"iptables {' '.join(args)}: exit status {rc}: {err[-300:]}")
    return rc, out


async def restore(text: str) -> None:
    """One atomic ``iptables-restore --noflush`` (each table commits all or nothing)."""
    rc, _, err = await _exec([RESTORE, "-w", "5", "--noflush"], text)
    if rc != 0:
        raise errors.Internal(f"iptables-restore: exit status {rc}: {err[-300:]}")


async def _save(table: str) -> str:
    rc, out, err = await _exec([SAVE, "-t", table])
    if rc != 0:
        raise errors.Internal(f"iptables-save -t {table}: exit status {rc}: {err[-300:]}")
    return out


async def ensure_chains() -> None:
    """The chains, and the jumps to them (isolation first in FORWARD)."""
    for table, chain, parent, match in CHAINS:
        rc, _ = await _run("-t", table, "-S", chain, check=False)
        if rc != 0:
            await _run("-t", table, "-N", chain, check=False)  # another daemon may race us
        if parent:
            jump = [*match, "-j", chain]
            rc, _ = await _run("-t", table, "-C", parent, *jump, check=False)
            if rc != 0:
                await _run("-t", table, "-I", parent, "1", *jump)


async def add_network(bridge: str, subnet: str, internal: bool) -> None:
    await ensure_chains()
    wanted = [("filter", c, r) for c, r in rules(bridge, internal)]
    wanted += [("nat", c, r) for c, r in nat_rules(bridge, subnet, internal)]
    for table, chain, rule in wanted:
        rc, _ = await _run("-t", table, "-C", chain, *rule, check=False)
        if rc != 0:
            await _run("-t", table, "-A", chain, *rule)
    _log.info("iptables.network_added", bridge=bridge, internal=internal)


async def remove_network(bridge: str) -> None:
    """Delete every rule of seacan's chains that names ``bridge``."""
    for table, chains in (("filter", (ISOLATION, ISOLATION2, FORWARD)), ("nat", (POSTROUTING,))):
        for chain in chains:
            rc, out = await _run("-t", table, "-S", chain, check=False)
            if rc != 0:
                continue
            for line in out.splitlines():
                words = shlex.split(line)
                if words[:2] == ["-A", chain] and bridge in words:
                    await _run("-t", table, "-D", chain, *words[2:], check=False)


async def add_ports(ports: Sequence[Port], tag: str) -> None:
    """The DNAT rules of a container's published ports, in one restore."""
    if ports:
        await restore(restore_text("-A", ports, tag))


async def remove_ports(ports: Sequence[Port], tag: str) -> None:
    """Remove a container's DNAT rules: in one restore, or (some were gone) by their tag."""
    if not ports:
        return
    try:
        await restore(restore_text("-D", ports, tag))
    except errors.Internal:
        await remove_tagged(lambda t: t == tag)


async def tagged() -> list[tuple[str, list[str]]]:
    """(tag, rule) of every rule in :data:`DNAT` that has a comment."""
    out = []
    for line in (await _save("nat")).splitlines():
        words = shlex.split(line)
        if words[:2] == ["-A", DNAT] and "--comment" in words:
            out.append((words[words.index("--comment") + 1], words[2:]))
    return out


async def remove_tagged(match: Callable[[str], bool]) -> list[str]:
    """Delete the :data:`DNAT` rules whose tag ``match(tag)`` accepts; their tags."""
    gone = [(tag, rule) for tag, rule in await tagged() if match(tag)]
    if gone:
        text = "*nat\n" + "".join(shlex.join(["-D", DNAT, *r]) + "\n" for _, r in gone)
        await restore(text + "COMMIT\n")
    return [tag for tag, _ in gone]
