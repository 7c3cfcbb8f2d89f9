import datetime

from google.protobuf import empty_pb2 as _empty_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PortMapping(_message.Message):
    __slots__ = ("host_ip", "host_port", "container_port", "protocol")
    HOST_IP_FIELD_NUMBER: _ClassVar[int]
    HOST_PORT_FIELD_NUMBER: _ClassVar[int]
    CONTAINER_PORT_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    host_ip: str
    host_port: int
    container_port: int
    protocol: str
    def __init__(self, host_ip: _Optional[str] = ..., host_port: _Optional[int] = ..., container_port: _Optional[int] = ..., protocol: _Optional[str] = ...) -> None: ...

class Endpoint(_message.Message):
    __slots__ = ("namespace", "container_id", "network", "ifname", "ip", "mac", "aliases", "ports")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    CONTAINER_ID_FIELD_NUMBER: _ClassVar[int]
    NETWORK_FIELD_NUMBER: _ClassVar[int]
    IFNAME_FIELD_NUMBER: _ClassVar[int]
    IP_FIELD_NUMBER: _ClassVar[int]
    MAC_FIELD_NUMBER: _ClassVar[int]
    ALIASES_FIELD_NUMBER: _ClassVar[int]
    PORTS_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    container_id: str
    network: str
    ifname: str
    ip: str
    mac: str
    aliases: _containers.RepeatedScalarFieldContainer[str]
    ports: _containers.RepeatedCompositeFieldContainer[PortMapping]
    def __init__(self, namespace: _Optional[str] = ..., container_id: _Optional[str] = ..., network: _Optional[str] = ..., ifname: _Optional[str] = ..., ip: _Optional[str] = ..., mac: _Optional[str] = ..., aliases: _Optional[_Iterable[str]] = ..., ports: _Optional[_Iterable[_Union[PortMapping, _Mapping]]] = ...) -> None: ...

class Network(_message.Message):
    __slots__ = ("name", "id", "driver", "subnet", "gateway", "internal", "labels", "options", "bridge", "created_at", "conflist", "endpoints")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class OptionsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    DRIVER_FIELD_NUMBER: _ClassVar[int]
    SUBNET_FIELD_NUMBER: _ClassVar[int]
    GATEWAY_FIELD_NUMBER: _ClassVar[int]
    INTERNAL_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    BRIDGE_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    CONFLIST_FIELD_NUMBER: _ClassVar[int]
    ENDPOINTS_FIELD_NUMBER: _ClassVar[int]
    name: str
    id: str
    driver: str
    subnet: str
    gateway: str
    internal: bool
    labels: _containers.ScalarMap[str, str]
    options: _containers.ScalarMap[str, str]
    bridge: str
    created_at: _timestamp_pb2.Timestamp
    conflist: str
    endpoints: _containers.RepeatedCompositeFieldContainer[Endpoint]
    def __init__(self, name: _Optional[str] = ..., id: _Optional[str] = ..., driver: _Optional[str] = ..., subnet: _Optional[str] = ..., gateway: _Optional[str] = ..., internal: _Optional[bool] = ..., labels: _Optional[_Mapping[str, str]] = ..., options: _Optional[_Mapping[str, str]] = ..., bridge: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., conflist: _Optional[str] = ..., endpoints: _Optional[_Iterable[_Union[Endpoint, _Mapping]]] = ...) -> None: ...

class CreateNetworkRequest(_message.Message):
    __slots__ = ("name", "driver", "subnet", "gateway", "internal", "labels", "options")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class OptionsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    DRIVER_FIELD_NUMBER: _ClassVar[int]
    SUBNET_FIELD_NUMBER: _ClassVar[int]
    GATEWAY_FIELD_NUMBER: _ClassVar[int]
    INTERNAL_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    name: str
    driver: str
    subnet: str
    gateway: str
    internal: bool
    labels: _containers.ScalarMap[str, str]
    options: _containers.ScalarMap[str, str]
    def __init__(self, name: _Optional[str] = ..., driver: _Optional[str] = ..., subnet: _Optional[str] = ..., gateway: _Optional[str] = ..., internal: _Optional[bool] = ..., labels: _Optional[_Mapping[str, str]] = ..., options: _Optional[_Mapping[str, str]] = ...) -> None: ...

class NetworkResponse(_message.Message):
    __slots__ = ("network",)
    NETWORK_FIELD_NUMBER: _ClassVar[int]
    network: Network
    def __init__(self, network: _Optional[_Union[Network, _Mapping]] = ...) -> None: ...

class GetNetworkRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ListNetworksRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListNetworksResponse(_message.Message):
    __slots__ = ("networks",)
    NETWORKS_FIELD_NUMBER: _ClassVar[int]
    networks: _containers.RepeatedCompositeFieldContainer[Network]
    def __init__(self, networks: _Optional[_Iterable[_Union[Network, _Mapping]]] = ...) -> None: ...

class RemoveNetworkRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class PruneNetworksRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class PruneNetworksResponse(_message.Message):
    __slots__ = ("removed",)
    REMOVED_FIELD_NUMBER: _ClassVar[int]
    removed: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, removed: _Optional[_Iterable[str]] = ...) -> None: ...

class NetworkAttachment(_message.Message):
    __slots__ = ("network", "aliases")
    NETWORK_FIELD_NUMBER: _ClassVar[int]
    ALIASES_FIELD_NUMBER: _ClassVar[int]
    network: str
    aliases: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, network: _Optional[str] = ..., aliases: _Optional[_Iterable[str]] = ...) -> None: ...

class AttachRequest(_message.Message):
    __slots__ = ("container_id", "networks", "ports", "hostname", "dns_servers", "dns_search", "dns_options", "extra_hosts", "again")
    CONTAINER_ID_FIELD_NUMBER: _ClassVar[int]
    NETWORKS_FIELD_NUMBER: _ClassVar[int]
    PORTS_FIELD_NUMBER: _ClassVar[int]
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    DNS_SERVERS_FIELD_NUMBER: _ClassVar[int]
    DNS_SEARCH_FIELD_NUMBER: _ClassVar[int]
    DNS_OPTIONS_FIELD_NUMBER: _ClassVar[int]
    EXTRA_HOSTS_FIELD_NUMBER: _ClassVar[int]
    AGAIN_FIELD_NUMBER: _ClassVar[int]
    container_id: str
    networks: _containers.RepeatedCompositeFieldContainer[NetworkAttachment]
    ports: _containers.RepeatedCompositeFieldContainer[PortMapping]
    hostname: str
    dns_servers: _containers.RepeatedScalarFieldContainer[str]
    dns_search: _containers.RepeatedScalarFieldContainer[str]
    dns_options: _containers.RepeatedScalarFieldContainer[str]
    extra_hosts: _containers.RepeatedScalarFieldContainer[str]
    again: bool
    def __init__(self, container_id: _Optional[str] = ..., networks: _Optional[_Iterable[_Union[NetworkAttachment, _Mapping]]] = ..., ports: _Optional[_Iterable[_Union[PortMapping, _Mapping]]] = ..., hostname: _Optional[str] = ..., dns_servers: _Optional[_Iterable[str]] = ..., dns_search: _Optional[_Iterable[str]] = ..., dns_options: _Optional[_Iterable[str]] = ..., extra_hosts: _Optional[_Iterable[str]] = ..., again: _Optional[bool] = ...) -> None: ...

class AttachResponse(_message.Message):
    __slots__ = ("netns_path", "hosts_path", "resolv_conf_path", "hostname_path", "hostname", "endpoints")
    NETNS_PATH_FIELD_NUMBER: _ClassVar[int]
    HOSTS_PATH_FIELD_NUMBER: _ClassVar[int]
    RESOLV_CONF_PATH_FIELD_NUMBER: _ClassVar[int]
    HOSTNAME_PATH_FIELD_NUMBER: _ClassVar[int]
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    ENDPOINTS_FIELD_NUMBER: _ClassVar[int]
    netns_path: str
    hosts_path: str
    resolv_conf_path: str
    hostname_path: str
    hostname: str
    endpoints: _containers.RepeatedCompositeFieldContainer[Endpoint]
    def __init__(self, netns_path: _Optional[str] = ..., hosts_path: _Optional[str] = ..., resolv_conf_path: _Optional[str] = ..., hostname_path: _Optional[str] = ..., hostname: _Optional[str] = ..., endpoints: _Optional[_Iterable[_Union[Endpoint, _Mapping]]] = ...) -> None: ...

class DetachRequest(_message.Message):
    __slots__ = ("container_id", "forget")
    CONTAINER_ID_FIELD_NUMBER: _ClassVar[int]
    FORGET_FIELD_NUMBER: _ClassVar[int]
    container_id: str
    forget: bool
    def __init__(self, container_id: _Optional[str] = ..., forget: _Optional[bool] = ...) -> None: ...

class ConnectRequest(_message.Message):
    __slots__ = ("network", "container_id", "aliases")
    NETWORK_FIELD_NUMBER: _ClassVar[int]
    CONTAINER_ID_FIELD_NUMBER: _ClassVar[int]
    ALIASES_FIELD_NUMBER: _ClassVar[int]
    network: str
    container_id: str
    aliases: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, network: _Optional[str] = ..., container_id: _Optional[str] = ..., aliases: _Optional[_Iterable[str]] = ...) -> None: ...

class DisconnectRequest(_message.Message):
    __slots__ = ("network", "container_id")
    NETWORK_FIELD_NUMBER: _ClassVar[int]
    CONTAINER_ID_FIELD_NUMBER: _ClassVar[int]
    network: str
    container_id: str
    def __init__(self, network: _Optional[str] = ..., container_id: _Optional[str] = ...) -> None: ...

class SetupPodRequest(_message.Message):
    __slots__ = ("pod_id", "cni_conf_dir", "netns_path", "ports", "cni_args")
    class CniArgsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    POD_ID_FIELD_NUMBER: _ClassVar[int]
    CNI_CONF_DIR_FIELD_NUMBER: _ClassVar[int]
    NETNS_PATH_FIELD_NUMBER: _ClassVar[int]
    PORTS_FIELD_NUMBER: _ClassVar[int]
    CNI_ARGS_FIELD_NUMBER: _ClassVar[int]
    pod_id: str
    cni_conf_dir: str
    netns_path: str
    ports: _containers.RepeatedCompositeFieldContainer[PortMapping]
    cni_args: _containers.ScalarMap[str, str]
    def __init__(self, pod_id: _Optional[str] = ..., cni_conf_dir: _Optional[str] = ..., netns_path: _Optional[str] = ..., ports: _Optional[_Iterable[_Union[PortMapping, _Mapping]]] = ..., cni_args: _Optional[_Mapping[str, str]] = ...) -> None: ...

class TeardownPodRequest(_message.Message):
    __slots__ = ("pod_id",)
    POD_ID_FIELD_NUMBER: _ClassVar[int]
    pod_id: str
    def __init__(self, pod_id: _Optional[str] = ...) -> None: ...

class PodStatusRequest(_message.Message):
    __slots__ = ("pod_id",)
    POD_ID_FIELD_NUMBER: _ClassVar[int]
    pod_id: str
    def __init__(self, pod_id: _Optional[str] = ...) -> None: ...

class PodNetwork(_message.Message):
    __slots__ = ("pod_id", "netns_path", "network", "ifname", "ips", "cni_result")
    POD_ID_FIELD_NUMBER: _ClassVar[int]
    NETNS_PATH_FIELD_NUMBER: _ClassVar[int]
    NETWORK_FIELD_NUMBER: _ClassVar[int]
    IFNAME_FIELD_NUMBER: _ClassVar[int]
    IPS_FIELD_NUMBER: _ClassVar[int]
    CNI_RESULT_FIELD_NUMBER: _ClassVar[int]
    pod_id: str
    netns_path: str
    network: str
    ifname: str
    ips: _containers.RepeatedScalarFieldContainer[str]
    cni_result: str
    def __init__(self, pod_id: _Optional[str] = ..., netns_path: _Optional[str] = ..., network: _Optional[str] = ..., ifname: _Optional[str] = ..., ips: _Optional[_Iterable[str]] = ..., cni_result: _Optional[str] = ...) -> None: ...
