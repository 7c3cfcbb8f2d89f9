from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class RunRequest(_message.Message):
    __slots__ = ("image", "id", "args", "entrypoint_set", "entrypoint", "env", "workdir", "user", "hostname", "tty", "interactive", "read_only", "privileged", "cap_add", "cap_drop", "memory", "cpus", "pids_limit", "runtime", "networks", "publish", "publish_all", "dns", "dns_search", "dns_options", "add_hosts", "network_aliases", "volumes", "mounts", "tmpfs", "log_dir")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    ARGS_FIELD_NUMBER: _ClassVar[int]
    ENTRYPOINT_SET_FIELD_NUMBER: _ClassVar[int]
    ENTRYPOINT_FIELD_NUMBER: _ClassVar[int]
    ENV_FIELD_NUMBER: _ClassVar[int]
    WORKDIR_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    TTY_FIELD_NUMBER: _ClassVar[int]
    INTERACTIVE_FIELD_NUMBER: _ClassVar[int]
    READ_ONLY_FIELD_NUMBER: _ClassVar[int]
    PRIVILEGED_FIELD_NUMBER: _ClassVar[int]
    CAP_ADD_FIELD_NUMBER: _ClassVar[int]
    CAP_DROP_FIELD_NUMBER: _ClassVar[int]
    MEMORY_FIELD_NUMBER: _ClassVar[int]
    CPUS_FIELD_NUMBER: _ClassVar[int]
    PIDS_LIMIT_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_FIELD_NUMBER: _ClassVar[int]
    NETWORKS_FIELD_NUMBER: _ClassVar[int]
    PUBLISH_FIELD_NUMBER: _ClassVar[int]
    PUBLISH_ALL_FIELD_NUMBER: _ClassVar[int]
    DNS_FIELD_NUMBER: _ClassVar[int]
    DNS_SEARCH_FIELD_NUMBER: _ClassVar[int]
    DNS_OPTIONS_FIELD_NUMBER: _ClassVar[int]
    ADD_HOSTS_FIELD_NUMBER: _ClassVar[int]
    NETWORK_ALIASES_FIELD_NUMBER: _ClassVar[int]
    VOLUMES_FIELD_NUMBER: _ClassVar[int]
    MOUNTS_FIELD_NUMBER: _ClassVar[int]
    TMPFS_FIELD_NUMBER: _ClassVar[int]
    LOG_DIR_FIELD_NUMBER: _ClassVar[int]
    image: str
    id: str
    args: _containers.RepeatedScalarFieldContainer[str]
    entrypoint_set: bool
    entrypoint: _containers.RepeatedScalarFieldContainer[str]
    env: _containers.RepeatedScalarFieldContainer[str]
    workdir: str
    user: str
    hostname: str
    tty: bool
    interactive: bool
    read_only: bool
    privileged: bool
    cap_add: _containers.RepeatedScalarFieldContainer[str]
    cap_drop: _containers.RepeatedScalarFieldContainer[str]
    memory: str
    cpus: float
    pids_limit: int
    runtime: str
    networks: _containers.RepeatedScalarFieldContainer[str]
    publish: _containers.RepeatedScalarFieldContainer[str]
    publish_all: bool
    dns: _containers.RepeatedScalarFieldContainer[str]
    dns_search: _containers.RepeatedScalarFieldContainer[str]
    dns_options: _containers.RepeatedScalarFieldContainer[str]
    add_hosts: _containers.RepeatedScalarFieldContainer[str]
    network_aliases: _containers.RepeatedScalarFieldContainer[str]
    volumes: _containers.RepeatedScalarFieldContainer[str]
    mounts: _containers.RepeatedScalarFieldContainer[str]
    tmpfs: _containers.RepeatedScalarFieldContainer[str]
    log_dir: str
    def __init__(self, image: _Optional[str] = ..., id: _Optional[str] = ..., args: _Optional[_Iterable[str]] = ..., entrypoint_set: _Optional[bool] = ..., entrypoint: _Optional[_Iterable[str]] = ..., env: _Optional[_Iterable[str]] = ..., workdir: _Optional[str] = ..., user: _Optional[str] = ..., hostname: _Optional[str] = ..., tty: _Optional[bool] = ..., interactive: _Optional[bool] = ..., read_only: _Optional[bool] = ..., privileged: _Optional[bool] = ..., cap_add: _Optional[_Iterable[str]] = ..., cap_drop: _Optional[_Iterable[str]] = ..., memory: _Optional[str] = ..., cpus: _Optional[float] = ..., pids_limit: _Optional[int] = ..., runtime: _Optional[str] = ..., networks: _Optional[_Iterable[str]] = ..., publish: _Optional[_Iterable[str]] = ..., publish_all: _Optional[bool] = ..., dns: _Optional[_Iterable[str]] = ..., dns_search: _Optional[_Iterable[str]] = ..., dns_options: _Optional[_Iterable[str]] = ..., add_hosts: _Optional[_Iterable[str]] = ..., network_aliases: _Optional[_Iterable[str]] = ..., volumes: _Optional[_Iterable[str]] = ..., mounts: _Optional[_Iterable[str]] = ..., tmpfs: _Optional[_Iterable[str]] = ..., log_dir: _Optional[str] = ...) -> None: ...

class RunResponse(_message.Message):
    __slots__ = ("id", "pid", "warnings")
    ID_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    id: str
    pid: int
    warnings: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, id: _Optional[str] = ..., pid: _Optional[int] = ..., warnings: _Optional[_Iterable[str]] = ...) -> None: ...
