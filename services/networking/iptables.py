"""seacan's own filter rules: the one module that runs iptables.

Chains jumped to first from FORWARD (as Docker's DOCKER-ISOLATION-STAGE-1/2
and DOCKER-FORWARD): ``SEACAN-ISOLATION`` sends traffic leaving a network's
bridge to ``SEACAN-ISOLATION-2``, which drops it if it enters the bridge of
another network (and, for ``--internal`` networks, any traffic leaving
or entering them); ``SEACAN-FORWARD`` accepts the rest of a network's
traffic, so networks work on hosts whose FORWARD policy is DROP. Every rule
names its bridge, which is how a network's rules are found and removed.
NAT (masquerade, published ports) belongs to the CNI plugins.
"""

from __future__ import annotations

import asyncio
import shlex

from seacan import errors, log

IPTABLES = "iptables"
ISOLATION = "SEACAN-ISOLATION"
ISOLATION2 = "SEACAN-ISOLATION-2"
FORWARD = "SEACAN-FORWARD"
TIMEOUT = 30.0
_log = log.get(__name__)


def rules(bridge: str, internal: bool) -> list[tuple[str, list[str]]]:
    """(chain, rule) pairs for one network's bridge."""
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


async def _run(*args: str, check: bool = True) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        IPTABLES, "-w", "5", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        out, err = await asyncio.wait_for(proc.communicate(), TIMEOUT)
    except BaseException:
        proc.kill()
        await proc.wait()
        raise
    if check and proc.returncode != 0:
        raise errors.Internal(
            f"iptables {' '.join(args)}: exit status {proc.returncode}: "
            f"{err.decode(errors='replace').strip()[-300:]}"
        )
    return proc.returncode or 0, out.decode()


async def ensure_chains() -> None:
    """The chains, and FORWARD's jumps to them (isolation first)."""
    rc, _ = await _run("-S", ISOLATION2, check=False)
    if rc != 0:
        await _run("-N", ISOLATION2, check=False)
    for chain in (FORWARD, ISOLATION):
        rc, _ = await _run("-S", chain, check=False)
        if rc != 0:
            await _run("-N", chain, check=False)  # another daemon may have made it meanwhile
        rc, _ = await _run("-C", "FORWARD", "-j", chain, check=False)
        if rc != 0:
            await _run("-I", "FORWARD", "1", "-j", chain)


async def add_network(bridge: str, internal: bool) -> None:
    await ensure_chains()
    for chain, rule in rules(bridge, internal):
        rc, _ = await _run("-C", chain, *rule, check=False)
        if rc != 0:
            await _run("-A", chain, *rule)
    _log.info("iptables.network_added", bridge=bridge, internal=internal)


async def remove_network(bridge: str) -> None:
    """Delete every rule of seacan's chains that names ``bridge``."""
    for chain in (ISOLATION, ISOLATION2, FORWARD):
        rc, out = await _run("-S", chain, check=False)
        if rc != 0:
            continue
        for line in out.splitlines():
            words = shlex.split(line)
            if words[:2] == ["-A", chain] and bridge in words:
                await _run("-D", chain, *words[2:], check=False)
