"""The networking service's implementation: networks, attachments, pods, cleanup.

Each operation runs under one lock (CNI plugins and IPAM are not meant to
race, and a port or subnet check must hold until it is used). Order of an
attach: claim the ports, record the sandbox and each endpoint (``adding``),
write the files, make the namespace (up to here: :meth:`prepare`, which can
be asked for alone, so the container is created in the namespace while
:meth:`attach` does the rest), CNI ADD per network, mark the endpoint up,
then the sandbox attached; any failure undoes all of it. Detach runs the same list
backwards, and so does :meth:`reconcile`, which the service runs at start
(an Attach cut short by a crash is undone at once), after every events
re-subscription and periodically: a sandbox whose container is gone, or whose
task is not running, is torn down (after a grace period for one that
never started: ``seacan run`` attaches before it creates the container).
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import errno
import hashlib
import json
import shutil
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from seacan import config, errors, log
from seacan.networking import (
    DEFAULT_NETWORK,
    DRIVERS,
    Attachment,
    AttachSpec,
    Endpoint,
    Network,
    NetworkRef,
    PodNetwork,
    PortMapping,
    parse_extra_host,
    validate_name,
)

from . import conf, iptables, netlink
from .cni import CNI, Runtime
from .db import NetworkDB, Sandbox

_log = log.get(__name__)

GRACE = 30.0  # seconds a sandbox may wait for its container and task to appear
MAX_HOSTNAME = 63

# (namespace, container) -> "running" | "stopped" | "gone"
TaskState = Callable[[str, str], Awaitable[str]]


def sandbox_key(ns: str, container: str) -> str:
    """The CNI container ID and netns file name of a container: readable and unique."""
    h = hashlib.sha256(f"{ns}/{container}".encode()).hexdigest()[:12]
    return f"{container[:40]}-{h}"


class NetworkManager:
    def __init__(self, cfg: config.Config, db: NetworkDB, task_state: TaskState) -> None:
        self.db = db
        self.task_state = task_state
        self.scope_key = str(cfg.root)
        # Tags this daemon's DNAT rules (another daemon on the host has its own).
        self.rule_prefix = "seacan-" + hashlib.sha256(self.scope_key.encode()).hexdigest()[:8] + "-"
        self.netns_dir = cfg.state / "netns"
        self.files_dir = cfg.state / "networking" / "containers"
        self.ipam_dir = cfg.service_root("networking") / "ipam"
        self.conf_dir = cfg.config_dir / "networks"
        self.cni = CNI(cfg.cni_plugin_dirs, cfg.state / "networking" / "cni-cache")
        self.lock = asyncio.Lock()

    # -- networks -------------------------------------------------------------

    def conflist_path(self, name: str) -> Path:
        return self.conf_dir / f"{name}.conflist"

    def _conflist(self, net: Network) -> dict[str, Any]:
        return conf.conflist(net, str(self.ipam_dir))

    def _write_conflist(self, net: Network) -> None:
        path = self.conflist_path(net.name)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self._conflist(net), indent=2) + "\n")
        tmp.replace(path)

    async def create(self, req: Network) -> Network:
        async with self.lock:
            return await self._create(req)

    async def _create(self, req: Network) -> Network:
        validate_name(req.name)
        if self.db.network(req.name) is not None:
            raise errors.AlreadyExists(f"network {req.name!r} already exists")
        driver = req.driver or "bridge"
        if driver not in DRIVERS:
            raise errors.InvalidArgument(
                f"unknown network driver {driver!r}: want {', '.join(DRIVERS)}"
            )
        existing = self.db.networks()
        if req.subnet:
            subnet = str(conf.parse_subnet(req.subnet))
            other = conf.overlapping(subnet, existing)
            if other is not None:
                raise errors.FailedPrecondition(
                    f"subnet {subnet} overlaps network {other.name!r} ({other.subnet})"
                )
        else:
            if req.gateway:
                raise errors.InvalidArgument("--gateway needs --subnet")
            routes = await asyncio.to_thread(netlink.routed_networks)
            subnet = conf.free_subnet(existing, routes, start=self.scope_key)
        net = replace(
            req,
            driver=driver,
            subnet=subnet,
            gateway=conf.gateway_for(subnet, req.gateway),
            id=conf.network_id(self.scope_key, req.name),
            bridge=conf.bridge_name(self.scope_key, req.name) if driver == "bridge" else "",
            labels=dict(req.labels),
            options=dict(req.options),
        )
        self._conflist(net)  # validates driver options before anything is written
        self.db.add_network(net)
        try:
            self._write_conflist(net)
            if net.bridge:
                await iptables.add_network(net.bridge, net.subnet, net.internal)
        except BaseException:
            await self._remove_network_resources(net)
            self.db.remove_network(net.name)
            raise
        _log.info("network.created", network=net.name, subnet=subnet, bridge=net.bridge)
        return await self.get(net.name)

    async def get(self, name: str) -> Network:
        net = self.db.network(name)
        if net is None:
            raise errors.NotFound(f"network {name!r} not found")
        return replace(
            net,
            conflist=str(self.conflist_path(name)),
            endpoints=tuple(self.db.endpoints(network=name)),
        )

    async def list(self) -> builtins.list[Network]:
        return [await self.get(n.name) for n in self.db.networks()]

    async def remove(self, name: str) -> None:
        async with self.lock:
            net = self.db.network(name)
            if net is None:
                raise errors.NotFound(f"network {name!r} not found")
            users = self.db.endpoints(network=name)
            if users:
                names = ", ".join(sorted({e.container_id for e in users}))
                raise errors.FailedPrecondition(
                    f"network {name!r} has active endpoints ({names}): disconnect them first"
                )
            await self._remove_network_resources(net)
            self.db.remove_network(name)
            _log.info("network.removed", network=name)

    async def _remove_network_resources(self, net: Network) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.conflist_path(net.name).unlink()
        if net.bridge:
            await iptables.remove_network(net.bridge)
            await asyncio.to_thread(netlink.delete_link, net.bridge)
        shutil.rmtree(self.ipam_dir / net.name, ignore_errors=True)

    async def prune(self) -> builtins.list[str]:
        removed = []
        for n in self.db.networks():
            if n.name == DEFAULT_NETWORK or self.db.endpoints(network=n.name):
                continue
            with contextlib.suppress(errors.FailedPrecondition, errors.NotFound):
                await self.remove(n.name)
                removed.append(n.name)
        return removed

    async def _network_for_use(self, name: str) -> Network:
        net = self.db.network(name)
        if net is None and name == DEFAULT_NETWORK:
            return await self._create(Network(name=DEFAULT_NETWORK))
        if net is None:
            raise errors.NotFound(f"network {name!r} not found")
        return net

    # -- attachments ------------------------------------------------------------

    def _files(self, ns: str, container: str) -> Path:
        return self.files_dir / ns / container

    def _netns(self, ns: str, container: str) -> Path:
        return self.netns_dir / sandbox_key(ns, container)

    def _runtime(
        self, ns: str, container: str, ifname: str, ports: Sequence[PortMapping]
    ) -> Runtime:
        caps: dict[str, Any] = {}
        if ports:
            caps["portMappings"] = [
                {"hostPort": p.host_port, "containerPort": p.container_port,
                 "protocol": p.protocol, "hostIP": p.host_ip}
                for p in ports
            ]  # fmt: skip
        return Runtime(
            container_id=sandbox_key(ns, container),
            netns=str(self._netns(ns, container)),
            ifname=ifname,
            args=(("IgnoreUnknown", "1"), ("K8S_POD_NAMESPACE", ns), ("K8S_POD_NAME", container)),
            capability_args=caps,
        )

    def _attachment(self, ns: str, sb: Sandbox) -> Attachment:
        files = self._files(ns, sb.container)
        return Attachment(
            netns_path=sb.netns,
            hosts_path=str(files / "hosts"),
            resolv_conf_path=str(files / "resolv.conf"),
            hostname_path=str(files / "hostname"),
            hostname=self._hostname(sb.spec),
            endpoints=tuple(self.db.endpoints(ns=ns, container=sb.container)),
        )

    @staticmethod
    def _hostname(spec: AttachSpec) -> str:
        return spec.hostname or spec.container_id[:MAX_HOSTNAME]

    async def attach(self, ns: str, spec: AttachSpec, *, again: bool = False) -> Attachment:
        async with self.lock:
            old = self.db.sandbox(ns, spec.container_id)
            if again:
                if old is None:
                    raise errors.NotFound(f"container {spec.container_id!r} has no networks")
                spec = old.spec
            if old is not None and self._prepared(old):
                return await self._connect_endpoints(ns, old.spec)
            if old is not None and old.attached and again:
                return self._attachment(ns, old)
            await self._make_room(ns, old, spec)
            return await self._connect_endpoints(ns, await self._prepare(ns, spec))

    async def prepare(self, ns: str, spec: AttachSpec) -> Attachment:
        """Attach's first half (see :meth:`_prepare`); an Attach of the container completes it."""
        async with self.lock:
            old = self.db.sandbox(ns, spec.container_id)
            await self._make_room(ns, old, spec)
            if old is not None and self._prepared(old):  # prepared again: anew
                await self._detach(ns, spec.container_id, forget=True)
            spec = await self._prepare(ns, spec)
            sb = self.db.sandbox(ns, spec.container_id)
            assert sb is not None
            return self._attachment(ns, sb)

    async def _make_room(self, ns: str, old: Sandbox | None, spec: AttachSpec) -> None:
        """Refuse a container attached already (but forget one whose container is gone)."""
        if old is None or not old.attached:
            return
        if await self.task_state(ns, spec.container_id) != "gone":
            raise errors.AlreadyExists(
                f"container {spec.container_id!r} is already attached to networks"
            )
        await self._detach(ns, spec.container_id, forget=True)

    @staticmethod
    def _prepared(sb: Sandbox) -> bool:
        """Whether Prepare made ``sb`` and no Attach completed it yet (its namespace exists)."""
        return not sb.attached and netlink.is_netns(Path(sb.netns))

    def _untouched(self, sb: Sandbox) -> bool:
        """Whether ``sb`` is only prepared: its namespace made, no CNI ADD begun."""
        if not self._prepared(sb):
            return False
        eps = self.db.endpoints(ns=sb.namespace, container=sb.container)
        return not any(
            e.ip
            or self.cni.cached(e.network, self._runtime(sb.namespace, sb.container, e.ifname, ()))
            for e in eps
        )

    async def _prepare(self, ns: str, spec: AttachSpec) -> AttachSpec:
        """Check ``spec``, claim its ports, record the sandbox and its endpoints (before any
        CNI ADD), write the files and make the namespace; ``spec`` with its host ports."""
        t0 = time.monotonic()
        if not spec.networks:
            raise errors.InvalidArgument("attach: no network given")
        if len(spec.hostname) > MAX_HOSTNAME:
            raise errors.InvalidArgument(f"hostname {spec.hostname!r} is longer than 63 chars")
        for h in spec.extra_hosts:
            parse_extra_host(h)
        seen: set[str] = set()
        nets = []
        for ref in spec.networks:
            if ref.network in seen:
                raise errors.InvalidArgument(f"network {ref.network!r} given twice")
            seen.add(ref.network)
            nets.append(await self._network_for_use(ref.network))
        # Ports are published on the first network; an internal one has no way in (Docker
        # discards them too; the CLI warns).
        wanted = () if nets[0].internal else spec.ports
        ports = await asyncio.to_thread(self._claim_ports, ns, spec.container_id, wanted)
        spec = replace(spec, ports=ports)
        cid = spec.container_id
        netns = self._netns(ns, cid)
        # The namespace is made (in a thread) while the records and files are written: one
        # made without its record (a crash) is an orphan the next start removes.
        made = asyncio.create_task(asyncio.to_thread(netlink.create_netns, netns),
                                   name=f"netns {cid}")  # fmt: skip
        try:
            self.db.put_sandbox(ns, cid, str(netns), spec)
            for i, ref in enumerate(spec.networks):
                self.db.add_endpoint(Endpoint(ns, cid, ref.network, f"eth{i}", aliases=ref.aliases,
                                              ports=ports if i == 0 else ()))  # fmt: skip
            self._write_files(ns, spec, [])
            await asyncio.wait([made])  # not ``await made``: a cancel would leave it running
            made.result()
        except BaseException:
            await asyncio.wait([made])  # a thread cannot be stopped: wait, then undo it all
            with contextlib.suppress(errors.SeacanError, OSError):
                await self._detach(ns, cid, forget=True)
            raise
        _log.debug("container.prepare_timing", container=cid, ms=_ms(t0))
        return spec

    async def _connect_endpoints(self, ns: str, spec: AttachSpec) -> Attachment:
        """Attach's second half: CNI ADD of every recorded endpoint, then attached."""
        cid = spec.container_id
        t0 = time.monotonic()
        timing: dict[str, float] = {}
        try:
            for ep in self.db.endpoints(ns=ns, container=cid):
                net = self.db.network(ep.network)
                if net is None:
                    raise errors.NotFound(f"network {ep.network!r} not found")
                await self._endpoint_up(net, ep)
                timing[f"{ep.ifname}_ms"] = _ms(t0)
            self.db.set_sandbox(ns, cid, attached=True)
        except BaseException:
            with contextlib.suppress(errors.SeacanError, OSError):
                await self._detach(ns, cid, forget=True)
            raise
        self._refresh_hosts(ns, [r.network for r in spec.networks])
        sb = self.db.sandbox(ns, cid)
        assert sb is not None
        _log.debug("container.attach_timing", container=cid, total_ms=_ms(t0), **timing)
        _log.info("container.attached", namespace=ns, container=cid,
                  networks=[r.network for r in spec.networks])  # fmt: skip
        return self._attachment(ns, sb)

    async def _add_endpoint(
        self, ns: str, container: str, net: Network, ref: NetworkRef, ifname: str,
        ports: Sequence[PortMapping],
    ) -> Endpoint:  # fmt: skip
        ep = Endpoint(ns, container, net.name, ifname, aliases=ref.aliases, ports=tuple(ports))
        self.db.add_endpoint(ep)
        return await self._endpoint_up(net, ep)

    async def _endpoint_up(self, net: Network, ep: Endpoint) -> Endpoint:
        """CNI ADD of a recorded endpoint, its address recorded, its ports published."""
        ns, container = ep.namespace, ep.container_id
        result = await self.cni.add(
            self._conflist(net), self._runtime(ns, container, ep.ifname, ep.ports)
        )
        ip, mac = conf.result_endpoint(result, ep.ifname)
        ep = replace(ep, ip=ip, mac=mac)
        self.db.endpoint_up(ep)
        rules = _dnat_ports(ep)
        if rules and net.bridge:
            t0 = time.monotonic()
            netlink.route_localnet(net.bridge)
            await iptables.add_ports(rules, self._rule_tag(ns, container))
            _log.debug("ports.published", container=container, rules=len(rules), ms=_ms(t0))
        return ep

    def _rule_tag(self, ns: str, container: str) -> str:
        """The comment on a container's DNAT rules: this daemon's prefix, then the container."""
        return self.rule_prefix + hashlib.sha256(f"{ns}/{container}".encode()).hexdigest()[:12]

    def _claim_ports(
        self, ns: str, container: str, ports: Sequence[PortMapping]
    ) -> tuple[PortMapping, ...]:
        """The ports with free host ports chosen; FailedPrecondition for one in use."""
        used = list(self.db.ports_in_use())
        out: list[PortMapping] = []
        for p in ports:
            for owner, q in [*used, *((f"{ns}/{container}", o) for o in out)]:
                same_ip = not p.host_ip or not q.host_ip or p.host_ip == q.host_ip
                if (
                    p.host_port
                    and q.host_port == p.host_port
                    and q.protocol == p.protocol
                    and same_ip
                ):
                    raise errors.FailedPrecondition(
                        f"host port {p.host_ip or '0.0.0.0'}:{p.host_port}/{p.protocol} is already "
                        f"published by container {owner.partition('/')[2]!r}"
                    )
            out.append(replace(p, host_port=_bind_test(p)))
        return tuple(out)

    def _write_files(self, ns: str, spec: AttachSpec, own: Sequence[Endpoint]) -> None:
        files = self._files(ns, spec.container_id)
        files.mkdir(parents=True, exist_ok=True)
        hostname = self._hostname(spec)
        _write_in_place(files / "hostname", hostname + "\n")
        try:
            host_resolv = Path("/etc/resolv.conf").read_text()
        except OSError:
            host_resolv = ""
        _write_in_place(
            files / "resolv.conf",
            conf.resolv_conf(host_resolv, spec.dns_servers, spec.dns_search, spec.dns_options),
        )
        peers = [
            e
            for net in {o.network for o in own}
            for e in self.db.endpoints(ns=ns, network=net)
            if e.container_id != spec.container_id
        ]
        extra = [parse_extra_host(h) for h in spec.extra_hosts]
        _write_in_place(files / "hosts", conf.hosts_file(hostname, own, peers, extra))

    def _refresh_hosts(self, ns: str, networks: Sequence[str]) -> None:
        """Rewrite the hosts files of every container on ``networks`` (they follow peers)."""
        containers = {e.container_id for n in networks for e in self.db.endpoints(ns=ns, network=n)}
        for cid in sorted(containers):
            sb = self.db.sandbox(ns, cid)
            if sb is not None:
                with contextlib.suppress(OSError):
                    self._write_files(ns, sb.spec, self.db.endpoints(ns=ns, container=cid))

    async def detach(self, ns: str, container: str, *, forget: bool = False) -> None:
        async with self.lock:
            if self.db.sandbox(ns, container) is None:
                if forget:
                    return
                raise errors.NotFound(f"container {container!r} has no networks")
            await self._detach(ns, container, forget=forget)

    async def _detach(self, ns: str, container: str, *, forget: bool) -> None:
        """Undo the container's attachment, backwards; the first failure is raised at the end."""
        failures: list[errors.SeacanError] = []
        eps = self.db.endpoints(ns=ns, container=container)
        for ep in reversed(eps):
            try:
                await self._remove_endpoint(ns, container, ep)
            except errors.SeacanError as e:
                _log.warning("endpoint.del_failed", container=container, network=ep.network,
                             error=str(e))  # fmt: skip
                failures.append(e)
        await asyncio.to_thread(netlink.delete_netns, self._netns(ns, container))
        if forget and not failures:
            self.db.remove_sandbox(ns, container)
            shutil.rmtree(self._files(ns, container), ignore_errors=True)
        else:
            self.db.set_sandbox(ns, container, attached=False, started=False)
        self._refresh_hosts(ns, [e.network for e in eps])
        _log.info("container.detached", namespace=ns, container=container, forget=forget)
        if failures:
            raise failures[0]

    async def _remove_endpoint(self, ns: str, container: str, ep: Endpoint) -> None:
        net = self.db.network(ep.network)
        conflist = self._conflist(net) if net is not None else None
        await iptables.remove_ports(_dnat_ports(ep), self._rule_tag(ns, container))
        await self.cni.delete(
            conflist, self._runtime(ns, container, ep.ifname, ep.ports), ep.network
        )
        self.db.remove_endpoint(ns, container, ep.network)

    async def connect(
        self, ns: str, network: str, container: str, aliases: Sequence[str]
    ) -> Endpoint:
        async with self.lock:
            sb = self.db.sandbox(ns, container)
            if sb is None:
                raise errors.NotFound(
                    f"container {container!r} has no networks (run it with --network)"
                )
            if any(r.network == network for r in sb.spec.networks):
                raise errors.AlreadyExists(
                    f"container {container!r} is already on network {network!r}"
                )
            net = await self._network_for_use(network)
            ref = NetworkRef(network, tuple(aliases))
            spec = replace(sb.spec, networks=(*sb.spec.networks, ref))
            self.db.put_sandbox(ns, container, sb.netns, spec)
            ep = Endpoint(ns, container, network, aliases=tuple(aliases))
            if sb.attached:
                taken = {e.ifname for e in self.db.endpoints(ns=ns, container=container)}
                ifname = next(f"eth{i}" for i in range(64) if f"eth{i}" not in taken)
                try:
                    ep = await self._add_endpoint(ns, container, net, ref, ifname, ())
                except BaseException:
                    with contextlib.suppress(errors.SeacanError):
                        await self._remove_endpoint(ns, container, replace(ep, ifname=ifname))
                    self.db.put_sandbox(ns, container, sb.netns, sb.spec)
                    raise
                self._refresh_hosts(ns, [network, *(r.network for r in sb.spec.networks)])
            return ep

    async def disconnect(self, ns: str, network: str, container: str) -> None:
        async with self.lock:
            sb = self.db.sandbox(ns, container)
            if sb is None or not any(r.network == network for r in sb.spec.networks):
                raise errors.NotFound(f"container {container!r} is not on network {network!r}")
            for ep in self.db.endpoints(ns=ns, container=container, network=network):
                await self._remove_endpoint(ns, container, ep)
            spec = replace(
                sb.spec, networks=tuple(r for r in sb.spec.networks if r.network != network)
            )
            self.db.put_sandbox(ns, container, sb.netns, spec)
            self._refresh_hosts(ns, [network, *(r.network for r in spec.networks)])

    # -- events and reconciliation -------------------------------------------------

    async def task_started(self, ns: str, container: str) -> None:
        async with self.lock:
            sb = self.db.sandbox(ns, container)
            if sb is not None and sb.attached:
                self.db.set_sandbox(ns, container, started=True)

    async def task_exited(self, ns: str, container: str) -> None:
        async with self.lock:
            sb = self.db.sandbox(ns, container)
            if sb is not None and (sb.attached or self.db.endpoints(ns=ns, container=container)):
                await self._detach(ns, container, forget=False)

    async def reconcile(self, *, at_start: bool = False) -> None:
        """Tear down what no live container needs (see the module doc).

        The lock is held per sandbox, not while the containers and tasks services
        are asked about each (an Attach would wait for all of that); a sandbox
        that changed meanwhile is left to the next round. Orphans (namespaces,
        CNI results, rules and leases no record accounts for: what a crash leaves)
        are swept only at start, before the service serves: the sweep reads every
        rule (``iptables-save``), which can wait for the host's xtables lock.
        """
        for sb in self.db.sandboxes():
            state = "unknown"
            if sb.attached:
                state = await self.task_state(sb.namespace, sb.container)
            async with self.lock:
                now = time.time()
                cur = self.db.sandbox(sb.namespace, sb.container)
                if cur is None or cur.updated_at != sb.updated_at or cur.attached != sb.attached:
                    continue
                has_eps = bool(self.db.endpoints(ns=sb.namespace, container=sb.container))
                if not sb.attached:
                    # At start, a young Prepare (no CNI ADD begun) is left for its Attach.
                    fresh = at_start and now - sb.updated_at < GRACE and self._untouched(sb)
                    if (has_eps or netlink.is_netns(Path(sb.netns))) and (
                        (at_start and not fresh) or now - sb.updated_at > GRACE
                    ):
                        await self._cleanup(sb, forget=False, why="attach cut short")
                    continue
                young = not sb.started and now - sb.updated_at < GRACE
                if state == "unknown":
                    continue
                if state == "running":
                    if not sb.started:
                        self.db.set_sandbox(sb.namespace, sb.container, started=True)
                elif not young:
                    await self._cleanup(sb, forget=state == "gone", why=f"task {state}")
        for sb in self.db.sandboxes():
            if sb.attached or self.db.endpoints(ns=sb.namespace, container=sb.container):
                continue
            if await self.task_state(sb.namespace, sb.container) != "gone":
                continue
            async with self.lock:
                cur = self.db.sandbox(sb.namespace, sb.container)
                if cur is None or cur.updated_at != sb.updated_at:
                    continue
                self.db.remove_sandbox(sb.namespace, sb.container)
                shutil.rmtree(self._files(sb.namespace, sb.container), ignore_errors=True)
        if at_start:
            async with self.lock:
                await self._orphans()

    async def _cleanup(self, sb: Sandbox, *, forget: bool, why: str) -> None:
        _log.info("container.cleanup", namespace=sb.namespace, container=sb.container, why=why)
        try:
            await self._detach(sb.namespace, sb.container, forget=forget)
        except errors.SeacanError as e:
            _log.warning("container.cleanup_failed", container=sb.container, error=str(e))

    async def _orphans(self) -> None:
        """Namespaces, cached CNI results and leases no record accounts for."""
        known = {sandbox_key(s.namespace, s.container) for s in self.db.sandboxes()}
        known |= {sandbox_key(p.namespace, p.pod) for p in self.db.pods()}
        for entry in self.cni.cached_entries():
            cid = str(entry.get("containerId", ""))
            if cid in known or not entry.get("config"):
                continue
            rt = Runtime(cid, str(entry.get("netns", "")), str(entry.get("ifName", "")))
            with contextlib.suppress(errors.SeacanError):
                await self.cni.delete(None, rt, str(entry.get("networkName", "")))
        tags = {self._rule_tag(s.namespace, s.container) for s in self.db.sandboxes()}
        try:
            await iptables.remove_tagged(lambda t: t.startswith(self.rule_prefix) and t not in tags)
        except errors.SeacanError as e:
            _log.warning("orphan_rules.failed", error=str(e))
        if self.netns_dir.is_dir():
            for p in self.netns_dir.iterdir():
                if p.name not in known:
                    await asyncio.to_thread(netlink.delete_netns, p)
        if self.ipam_dir.is_dir():
            for lease in self.ipam_dir.glob("*/*"):
                if not lease.name[0].isdigit():
                    continue  # last_reserved_ip.0, lock
                with contextlib.suppress(OSError):
                    if lease.read_text().split()[0] not in known:
                        lease.unlink()

    async def sync_networks(self) -> None:
        """Every network's conflist and rules, as recorded (after a crash or a wiped config dir)."""
        async with self.lock:
            for net in self.db.networks():
                self._write_conflist(net)
                if net.bridge:
                    await iptables.add_network(net.bridge, net.subnet, net.internal)

    async def shutdown(self) -> None:
        """Remove the bridges (and their rules) of networks nobody uses; they come back on use."""
        async with self.lock:
            for net in self.db.networks():
                if net.bridge and not self.db.endpoints(network=net.name):
                    with contextlib.suppress(errors.SeacanError):
                        await iptables.remove_network(net.bridge)
                    with contextlib.suppress(errors.SeacanError):
                        await asyncio.to_thread(netlink.delete_link, net.bridge)

    # -- pods (CRI) -----------------------------------------------------------------

    async def setup_pod(
        self, ns: str, pod: str, conf_dir: str, netns_path: str, ports: Sequence[PortMapping],
        cni_args: dict[str, str],
    ) -> PodNetwork:  # fmt: skip
        async with self.lock:
            if self.db.pod(ns, pod) is not None:
                raise errors.AlreadyExists(f"pod {pod!r} already has a network")
            conflist = _load_cni_dir(Path(conf_dir))
            own = not netns_path
            netns = Path(netns_path) if netns_path else self._netns(ns, pod)
            if own:
                await asyncio.to_thread(netlink.create_netns, netns)
            rt = Runtime(
                sandbox_key(ns, pod), str(netns), "eth0",
                (("IgnoreUnknown", "1"), ("K8S_POD_NAMESPACE", ns), ("K8S_POD_NAME", pod),
                 *sorted(cni_args.items())),
                {"portMappings": [{"hostPort": p.host_port, "containerPort": p.container_port,
                                   "protocol": p.protocol, "hostIP": p.host_ip} for p in ports]}
                if ports else {},
            )  # fmt: skip
            self.db.put_pod(ns, pod, netns=str(netns), own_netns=own, network=conflist["name"],
                            ifname="eth0", conflist=json.dumps(conflist), result="{}")  # fmt: skip
            try:
                result = await self.cni.add(conflist, rt)
            except BaseException:
                with contextlib.suppress(errors.SeacanError):
                    await self._teardown_pod(ns, pod)
                raise
            self.db.put_pod(ns, pod, netns=str(netns), own_netns=own, network=conflist["name"],
                            ifname="eth0", conflist=json.dumps(conflist),
                            result=json.dumps(result))  # fmt: skip
            return await self.pod_status(ns, pod)

    async def pod_status(self, ns: str, pod: str) -> PodNetwork:
        p = self.db.pod(ns, pod)
        if p is None:
            raise errors.NotFound(f"pod {pod!r} has no network")
        ips = tuple(str(i.get("address", "")) for i in p.result.get("ips", []))
        return PodNetwork(pod, p.netns, p.network, p.ifname, ips, json.dumps(p.result))

    async def teardown_pod(self, ns: str, pod: str) -> None:
        async with self.lock:
            if self.db.pod(ns, pod) is None:
                return  # idempotent, as the CRI's StopPodSandbox
            await self._teardown_pod(ns, pod)

    async def _teardown_pod(self, ns: str, pod: str) -> None:
        p = self.db.pod(ns, pod)
        assert p is not None
        rt = Runtime(sandbox_key(ns, pod), p.netns, p.ifname)
        await self.cni.delete(p.conflist, rt, p.network)
        if p.own_netns:
            await asyncio.to_thread(netlink.delete_netns, Path(p.netns))
        self.db.remove_pod(ns, pod)


def _load_cni_dir(d: Path) -> dict[str, Any]:
    """The first network configuration of a CNI config dir (by file name), as a conflist."""
    if not d.is_absolute():
        raise errors.InvalidArgument(f"CNI config dir {str(d)!r} must be an absolute path")
    try:
        files = sorted(p for p in d.iterdir() if p.suffix in (".conflist", ".conf", ".json"))
    except OSError as e:
        raise errors.NotFound(f"CNI config dir {d}: {e.strerror}") from None
    for f in files:
        try:
            data = json.loads(f.read_text())
        except ValueError as e:
            raise errors.InvalidArgument(f"CNI config {f}: {e}") from None
        if "plugins" not in data:  # a single-plugin .conf
            data = {"cniVersion": data.get("cniVersion", conf.CNI_VERSION),
                    "name": data.get("name", f.stem), "plugins": [data]}  # fmt: skip
        if not data.get("name") or not data.get("plugins"):
            raise errors.InvalidArgument(f"CNI config {f}: needs a name and plugins")
        return dict(data)
    raise errors.NotFound(f"no CNI network configuration in {d}")


def _ms(since: float) -> float:
    return round((time.monotonic() - since) * 1000, 1)


def _dnat_ports(ep: Endpoint) -> list[iptables.Port]:
    """The DNAT rules of an endpoint's published ports (IPv4: the networks' family)."""
    ip = ep.ip.split("/")[0]
    if not ip or ":" in ip:
        return []
    return [
        iptables.Port(p.protocol, "" if p.host_ip == "0.0.0.0" else p.host_ip, p.host_port, ip,
                      p.container_port)
        for p in ep.ports
        if ":" not in p.host_ip
    ]  # fmt: skip


def _bind_test(p: PortMapping) -> int:
    """Bind the host port to see that it is free (0: pick a free one); the port number."""
    kind = socket.SOCK_STREAM if p.protocol == "tcp" else socket.SOCK_DGRAM
    fam = socket.AF_INET6 if ":" in p.host_ip else socket.AF_INET
    s = socket.socket(fam, kind)
    try:
        if kind == socket.SOCK_STREAM:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((p.host_ip or ("::" if fam == socket.AF_INET6 else "0.0.0.0"), p.host_port))
        return int(s.getsockname()[1])
    except OSError as e:
        where = f"{p.host_ip or '0.0.0.0'}:{p.host_port}/{p.protocol}"
        if e.errno == errno.EADDRINUSE:
            raise errors.FailedPrecondition(f"host port {where} is already in use") from None
        raise errors.InvalidArgument(f"cannot publish on {where}: {e.strerror}") from None
    finally:
        s.close()


def _write_in_place(path: Path, text: str) -> None:
    """Rewrite a file keeping its inode (it is bind-mounted into containers)."""
    with open(path, "a+") as f:
        f.seek(0)
        f.truncate()
        f.write(text)
