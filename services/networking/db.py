"""The networking service's SQLite records: networks, sandboxes, endpoints, pods.

A *sandbox* is a container's network namespace and what it asked for (its
AttachSpec, kept so ``seacan start`` can attach it again); an *endpoint* is
its interface on one network, recorded (state ``adding``) before the CNI ADD
starts, so a crash half-way is found and undone. An address is unique per
network (a unique index), so no two containers ever hold the same one.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from seacan.networking import AttachSpec, Endpoint, Network, NetworkRef, PortMapping
from seacan.services import sqlite

_md = sa.MetaData()

networks = sa.Table(
    "networks",
    _md,
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("id", sa.Text, nullable=False),
    sa.Column("driver", sa.Text, nullable=False),
    sa.Column("subnet", sa.Text, nullable=False),
    sa.Column("gateway", sa.Text, nullable=False),
    sa.Column("internal", sa.Boolean, nullable=False),
    sa.Column("labels", sa.Text, nullable=False),
    sa.Column("options", sa.Text, nullable=False),
    sa.Column("bridge", sa.Text, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
)

sandboxes = sa.Table(
    "sandboxes",
    _md,
    sa.Column("namespace", sa.Text, primary_key=True),
    sa.Column("container", sa.Text, primary_key=True),
    sa.Column("netns", sa.Text, nullable=False),
    sa.Column("spec", sa.Text, nullable=False),  # AttachSpec, JSON
    sa.Column("attached", sa.Boolean, nullable=False),  # namespace and endpoints exist
    sa.Column("started", sa.Boolean, nullable=False),  # its task was seen running
    sa.Column("updated_at", sa.Float, nullable=False),
)

endpoints = sa.Table(
    "endpoints",
    _md,
    sa.Column("namespace", sa.Text, primary_key=True),
    sa.Column("container", sa.Text, primary_key=True),
    sa.Column("network", sa.Text, primary_key=True),
    sa.Column("ifname", sa.Text, nullable=False),
    sa.Column("ip", sa.Text, nullable=True),  # NULL while adding
    sa.Column("mac", sa.Text, nullable=False),
    sa.Column("aliases", sa.Text, nullable=False),
    sa.Column("ports", sa.Text, nullable=False),
    sa.Column("up", sa.Boolean, nullable=False),
    sa.Index("endpoints_address", "network", "ip", unique=True),
)

pods = sa.Table(
    "pods",
    _md,
    sa.Column("namespace", sa.Text, primary_key=True),
    sa.Column("pod", sa.Text, primary_key=True),
    sa.Column("netns", sa.Text, nullable=False),
    sa.Column("own_netns", sa.Boolean, nullable=False),
    sa.Column("network", sa.Text, nullable=False),
    sa.Column("ifname", sa.Text, nullable=False),
    sa.Column("conflist", sa.Text, nullable=False),
    sa.Column("result", sa.Text, nullable=False),
)


def _network(row: Any) -> Network:
    from datetime import UTC, datetime

    return Network(
        name=row.name, id=row.id, driver=row.driver, subnet=row.subnet, gateway=row.gateway,
        internal=row.internal, labels=json.loads(row.labels), options=json.loads(row.options),
        bridge=row.bridge, created_at=datetime.fromtimestamp(row.created_at, UTC),
    )  # fmt: skip


def _endpoint(row: Any) -> Endpoint:
    return Endpoint(
        namespace=row.namespace, container_id=row.container, network=row.network,
        ifname=row.ifname, ip=row.ip or "", mac=row.mac, aliases=tuple(json.loads(row.aliases)),
        ports=tuple(PortMapping(**p) for p in json.loads(row.ports)),
    )  # fmt: skip


def spec_to_json(spec: AttachSpec) -> str:
    return json.dumps(asdict(spec))


def spec_from_json(text: str) -> AttachSpec:
    d = json.loads(text)
    return AttachSpec(
        container_id=d["container_id"],
        networks=tuple(NetworkRef(n["network"], tuple(n["aliases"])) for n in d["networks"]),
        ports=tuple(PortMapping(**p) for p in d["ports"]),
        hostname=d["hostname"],
        dns_servers=tuple(d["dns_servers"]),
        dns_search=tuple(d["dns_search"]),
        dns_options=tuple(d["dns_options"]),
        extra_hosts=tuple(d["extra_hosts"]),
    )


class Sandbox:
    def __init__(self, row: Any) -> None:
        self.namespace: str = row.namespace
        self.container: str = row.container
        self.netns: str = row.netns
        self.spec = spec_from_json(row.spec)
        self.attached: bool = row.attached
        self.started: bool = row.started
        self.updated_at: float = row.updated_at


class Pod:
    def __init__(self, row: Any) -> None:
        self.namespace: str = row.namespace
        self.pod: str = row.pod
        self.netns: str = row.netns
        self.own_netns: bool = row.own_netns
        self.network: str = row.network
        self.ifname: str = row.ifname
        self.conflist: dict[str, Any] = json.loads(row.conflist)
        self.result: dict[str, Any] = json.loads(row.result)


class NetworkDB:
    def __init__(self, path: Path) -> None:
        self._engine = sqlite.open_engine(path, _md)

    def close(self) -> None:
        self._engine.dispose()

    # -- networks --

    def add_network(self, n: Network) -> None:
        with self._engine.begin() as c:
            c.execute(
                sa.insert(networks).values(
                    name=n.name,
                    id=n.id,
                    driver=n.driver,
                    subnet=n.subnet,
                    gateway=n.gateway,
                    internal=n.internal,
                    labels=json.dumps(dict(n.labels)),
                    options=json.dumps(dict(n.options)),
                    bridge=n.bridge,
                    created_at=time.time(),
                )
            )

    def network(self, name: str) -> Network | None:
        with self._engine.connect() as c:
            row = c.execute(sa.select(networks).where(networks.c.name == name)).first()
        return None if row is None else _network(row)

    def networks(self) -> list[Network]:
        with self._engine.connect() as c:
            rows = c.execute(sa.select(networks).order_by(networks.c.name)).all()
        return [_network(r) for r in rows]

    def remove_network(self, name: str) -> None:
        with self._engine.begin() as c:
            c.execute(sa.delete(networks).where(networks.c.name == name))

    # -- sandboxes --

    def put_sandbox(self, ns: str, container: str, netns: str, spec: AttachSpec) -> None:
        values = {"netns": netns, "spec": spec_to_json(spec), "updated_at": time.time()}
        with self._engine.begin() as c:
            done = c.execute(
                sa.update(sandboxes)
                .where(sandboxes.c.namespace == ns, sandboxes.c.container == container)
                .values(**values)
            ).rowcount
            if not done:
                c.execute(
                    sa.insert(sandboxes).values(
                        namespace=ns, container=container, attached=False, started=False, **values
                    )
                )

    def set_sandbox(self, ns: str, container: str, **values: Any) -> None:
        with self._engine.begin() as c:
            c.execute(
                sa.update(sandboxes)
                .where(sandboxes.c.namespace == ns, sandboxes.c.container == container)
                .values(updated_at=time.time(), **values)
            )

    def sandbox(self, ns: str, container: str) -> Sandbox | None:
        with self._engine.connect() as c:
            row = c.execute(
                sa.select(sandboxes).where(
                    sandboxes.c.namespace == ns, sandboxes.c.container == container
                )
            ).first()
        return None if row is None else Sandbox(row)

    def sandboxes(self) -> list[Sandbox]:
        with self._engine.connect() as c:
            return [Sandbox(r) for r in c.execute(sa.select(sandboxes)).all()]

    def remove_sandbox(self, ns: str, container: str) -> None:
        with self._engine.begin() as c:
            c.execute(
                sa.delete(sandboxes).where(
                    sandboxes.c.namespace == ns, sandboxes.c.container == container
                )
            )

    # -- endpoints --

    def add_endpoint(self, e: Endpoint) -> None:
        """Record an endpoint about to be added (no address yet)."""
        with self._engine.begin() as c:
            c.execute(
                sa.insert(endpoints).values(
                    namespace=e.namespace,
                    container=e.container_id,
                    network=e.network,
                    ifname=e.ifname,
                    ip=None,
                    mac="",
                    aliases=json.dumps(list(e.aliases)),
                    ports=json.dumps([asdict(p) for p in e.ports]),
                    up=False,
                )
            )

    def endpoint_up(self, e: Endpoint) -> None:
        with self._engine.begin() as c:
            c.execute(
                sa.update(endpoints)
                .where(
                    endpoints.c.namespace == e.namespace,
                    endpoints.c.container == e.container_id,
                    endpoints.c.network == e.network,
                )
                .values(ip=e.ip or None, mac=e.mac, up=True)
            )

    def endpoints(
        self, *, ns: str | None = None, container: str | None = None, network: str | None = None
    ) -> list[Endpoint]:
        q = sa.select(endpoints).order_by(endpoints.c.ifname)
        if ns is not None:
            q = q.where(endpoints.c.namespace == ns)
        if container is not None:
            q = q.where(endpoints.c.container == container)
        if network is not None:
            q = q.where(endpoints.c.network == network)
        with self._engine.connect() as c:
            return [_endpoint(r) for r in c.execute(q).all()]

    def remove_endpoint(self, ns: str, container: str, network: str) -> None:
        with self._engine.begin() as c:
            c.execute(
                sa.delete(endpoints).where(
                    endpoints.c.namespace == ns,
                    endpoints.c.container == container,
                    endpoints.c.network == network,
                )
            )

    def ports_in_use(self) -> Iterator[tuple[str, PortMapping]]:
        """(container, mapping) for every published port."""
        for e in self.endpoints():
            for p in e.ports:
                yield f"{e.namespace}/{e.container_id}", p

    # -- pods --

    def put_pod(self, ns: str, pod: str, **values: Any) -> None:
        with self._engine.begin() as c:
            c.execute(sa.delete(pods).where(pods.c.namespace == ns, pods.c.pod == pod))
            c.execute(sa.insert(pods).values(namespace=ns, pod=pod, **values))

    def pod(self, ns: str, pod: str) -> Pod | None:
        with self._engine.connect() as c:
            row = c.execute(
                sa.select(pods).where(pods.c.namespace == ns, pods.c.pod == pod)
            ).first()
        return None if row is None else Pod(row)

    def pods(self) -> list[Pod]:
        with self._engine.connect() as c:
            return [Pod(r) for r in c.execute(sa.select(pods)).all()]

    def remove_pod(self, ns: str, pod: str) -> None:
        with self._engine.begin() as c:
            c.execute(sa.delete(pods).where(pods.c.namespace == ns, pods.c.pod == pod))
