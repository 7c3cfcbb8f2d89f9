"""RemoteNetworking: networks, attachments and pods over gRPC; the shared conversions."""

from __future__ import annotations

import builtins
import json
from collections.abc import Mapping, Sequence
from typing import Any

import grpc.aio

from seacan import grpcutil
from seacan.api.services.networking.v1 import networking_pb2 as pb
from seacan.api.services.networking.v1 import networking_pb2_grpc as pb_grpc

from . import Attachment, AttachSpec, Endpoint, Network, NetworkRef, PodNetwork, PortMapping


def port_to_pb(p: PortMapping) -> Any:
    return pb.PortMapping(
        host_ip=p.host_ip, host_port=p.host_port, container_port=p.container_port,
        protocol=p.protocol,
    )  # fmt: skip


def port_from_pb(m: Any) -> PortMapping:
    return PortMapping(
        host_port=m.host_port, container_port=m.container_port, protocol=m.protocol or "tcp",
        host_ip=m.host_ip,
    )  # fmt: skip


def endpoint_to_pb(e: Endpoint) -> Any:
    return pb.Endpoint(
        namespace=e.namespace, container_id=e.container_id, network=e.network, ifname=e.ifname,
        ip=e.ip, mac=e.mac, aliases=list(e.aliases), ports=[port_to_pb(p) for p in e.ports],
    )  # fmt: skip


def endpoint_from_pb(m: Any) -> Endpoint:
    return Endpoint(
        namespace=m.namespace, container_id=m.container_id, network=m.network, ifname=m.ifname,
        ip=m.ip, mac=m.mac, aliases=tuple(m.aliases), ports=tuple(port_from_pb(p) for p in m.ports),
    )  # fmt: skip


def network_to_pb(n: Network) -> Any:
    return pb.Network(
        name=n.name, id=n.id, driver=n.driver, subnet=n.subnet, gateway=n.gateway,
        internal=n.internal, labels=dict(n.labels), options=dict(n.options), bridge=n.bridge,
        created_at=grpcutil.timestamp(n.created_at), conflist=n.conflist,
        endpoints=[endpoint_to_pb(e) for e in n.endpoints],
    )  # fmt: skip


def network_from_pb(m: Any) -> Network:
    return Network(
        name=m.name, id=m.id, driver=m.driver, subnet=m.subnet, gateway=m.gateway,
        internal=m.internal, labels=dict(m.labels), options=dict(m.options), bridge=m.bridge,
        created_at=grpcutil.from_timestamp(m.created_at), conflist=m.conflist,
        endpoints=tuple(endpoint_from_pb(e) for e in m.endpoints),
    )  # fmt: skip


def attach_spec_to_pb(s: AttachSpec, again: bool = False) -> Any:
    return pb.AttachRequest(
        container_id=s.container_id,
        networks=[
            pb.NetworkAttachment(network=r.network, aliases=list(r.aliases)) for r in s.networks
        ],
        ports=[port_to_pb(p) for p in s.ports], hostname=s.hostname,
        dns_servers=list(s.dns_servers), dns_search=list(s.dns_search),
        dns_options=list(s.dns_options), extra_hosts=list(s.extra_hosts), again=again,
    )  # fmt: skip


def attach_spec_from_pb(m: Any) -> AttachSpec:
    return AttachSpec(
        container_id=m.container_id,
        networks=tuple(NetworkRef(r.network, tuple(r.aliases)) for r in m.networks),
        ports=tuple(port_from_pb(p) for p in m.ports), hostname=m.hostname,
        dns_servers=tuple(m.dns_servers), dns_search=tuple(m.dns_search),
        dns_options=tuple(m.dns_options), extra_hosts=tuple(m.extra_hosts),
    )  # fmt: skip


def attachment_to_pb(a: Attachment) -> Any:
    return pb.AttachResponse(
        netns_path=a.netns_path, hosts_path=a.hosts_path, resolv_conf_path=a.resolv_conf_path,
        hostname_path=a.hostname_path, hostname=a.hostname,
        endpoints=[endpoint_to_pb(e) for e in a.endpoints],
    )  # fmt: skip


def attachment_from_pb(m: Any) -> Attachment:
    return Attachment(
        netns_path=m.netns_path, hosts_path=m.hosts_path, resolv_conf_path=m.resolv_conf_path,
        hostname_path=m.hostname_path, hostname=m.hostname,
        endpoints=tuple(endpoint_from_pb(e) for e in m.endpoints),
    )  # fmt: skip


def pod_to_pb(p: PodNetwork) -> Any:
    return pb.PodNetwork(
        pod_id=p.pod_id, netns_path=p.netns_path, network=p.network, ifname=p.ifname,
        ips=list(p.ips), cni_result=p.cni_result,
    )  # fmt: skip


def pod_from_pb(m: Any) -> PodNetwork:
    return PodNetwork(
        pod_id=m.pod_id, netns_path=m.netns_path, network=m.network, ifname=m.ifname,
        ips=tuple(m.ips), cni_result=m.cni_result,
    )  # fmt: skip


class RemoteNetworking:
    """Networks, Attacher and Pods over a gRPC channel."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._stub = pb_grpc.NetworkingStub(channel)

    async def _call(self, method: str, request: Any) -> Any:
        async with grpcutil.native_errors():
            return await getattr(self._stub, method)(request, metadata=grpcutil.scope_metadata())

    async def create(self, network: Network) -> Network:
        req = pb.CreateNetworkRequest(
            name=network.name, driver=network.driver, subnet=network.subnet,
            gateway=network.gateway, internal=network.internal, labels=dict(network.labels),
            options=dict(network.options),
        )  # fmt: skip
        return network_from_pb((await self._call("Create", req)).network)

    async def get(self, name: str) -> Network:
        resp = await self._call("Get", pb.GetNetworkRequest(name=name))
        return network_from_pb(resp.network)

    async def list(self) -> builtins.list[Network]:
        resp = await self._call("List", pb.ListNetworksRequest())
        return [network_from_pb(n) for n in resp.networks]

    async def remove(self, name: str) -> None:
        await self._call("Remove", pb.RemoveNetworkRequest(name=name))

    async def prune(self) -> builtins.list[str]:
        resp = await self._call("Prune", pb.PruneNetworksRequest())
        return list(resp.removed)

    async def attach(self, spec: AttachSpec, *, again: bool = False) -> Attachment:
        return attachment_from_pb(await self._call("Attach", attach_spec_to_pb(spec, again)))

    async def prepare(self, spec: AttachSpec) -> Attachment:
        return attachment_from_pb(await self._call("Prepare", attach_spec_to_pb(spec)))

    async def detach(self, container_id: str, *, forget: bool = False) -> None:
        await self._call("Detach", pb.DetachRequest(container_id=container_id, forget=forget))

    async def connect(
        self, network: str, container_id: str, aliases: Sequence[str] = ()
    ) -> Endpoint:
        req = pb.ConnectRequest(network=network, container_id=container_id, aliases=list(aliases))
        return endpoint_from_pb(await self._call("Connect", req))

    async def disconnect(self, network: str, container_id: str) -> None:
        await self._call(
            "Disconnect", pb.DisconnectRequest(network=network, container_id=container_id)
        )

    async def setup_pod(
        self,
        pod_id: str,
        cni_conf_dir: str,
        netns_path: str = "",
        ports: Sequence[PortMapping] = (),
        cni_args: Mapping[str, str] | None = None,
    ) -> PodNetwork:
        req = pb.SetupPodRequest(
            pod_id=pod_id, cni_conf_dir=cni_conf_dir, netns_path=netns_path,
            ports=[port_to_pb(p) for p in ports], cni_args=dict(cni_args or {}),
        )  # fmt: skip
        return pod_from_pb(await self._call("SetupPod", req))

    async def teardown_pod(self, pod_id: str) -> None:
        await self._call("TeardownPod", pb.TeardownPodRequest(pod_id=pod_id))

    async def pod_status(self, pod_id: str) -> PodNetwork:
        return pod_from_pb(await self._call("PodStatus", pb.PodStatusRequest(pod_id=pod_id)))


def result_ips(result: Mapping[str, Any]) -> tuple[str, ...]:
    """The addresses (CIDR) of a CNI result."""
    return tuple(str(ip.get("address", "")) for ip in result.get("ips", []) if ip.get("address"))


def result_json(result: Mapping[str, Any]) -> str:
    return json.dumps(result, sort_keys=True)
