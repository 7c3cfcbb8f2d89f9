from seacan.api.types import platform_pb2 as _platform_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Credentials(_message.Message):
    __slots__ = ("host", "username", "password", "identity_token")
    HOST_FIELD_NUMBER: _ClassVar[int]
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    PASSWORD_FIELD_NUMBER: _ClassVar[int]
    IDENTITY_TOKEN_FIELD_NUMBER: _ClassVar[int]
    host: str
    username: str
    password: str
    identity_token: str
    def __init__(self, host: _Optional[str] = ..., username: _Optional[str] = ..., password: _Optional[str] = ..., identity_token: _Optional[str] = ...) -> None: ...

class RegistryOptions(_message.Message):
    __slots__ = ("credentials", "plain_http", "insecure")
    CREDENTIALS_FIELD_NUMBER: _ClassVar[int]
    PLAIN_HTTP_FIELD_NUMBER: _ClassVar[int]
    INSECURE_FIELD_NUMBER: _ClassVar[int]
    credentials: _containers.RepeatedCompositeFieldContainer[Credentials]
    plain_http: bool
    insecure: bool
    def __init__(self, credentials: _Optional[_Iterable[_Union[Credentials, _Mapping]]] = ..., plain_http: _Optional[bool] = ..., insecure: _Optional[bool] = ...) -> None: ...

class PullRequest(_message.Message):
    __slots__ = ("ref", "platform", "registry", "unpack", "snapshotter", "labels")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    REF_FIELD_NUMBER: _ClassVar[int]
    PLATFORM_FIELD_NUMBER: _ClassVar[int]
    REGISTRY_FIELD_NUMBER: _ClassVar[int]
    UNPACK_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOTTER_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    ref: str
    platform: _platform_pb2.Platform
    registry: RegistryOptions
    unpack: bool
    snapshotter: str
    labels: _containers.ScalarMap[str, str]
    def __init__(self, ref: _Optional[str] = ..., platform: _Optional[_Union[_platform_pb2.Platform, _Mapping]] = ..., registry: _Optional[_Union[RegistryOptions, _Mapping]] = ..., unpack: _Optional[bool] = ..., snapshotter: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ...) -> None: ...

class PushRequest(_message.Message):
    __slots__ = ("ref", "source", "platform", "registry")
    REF_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    PLATFORM_FIELD_NUMBER: _ClassVar[int]
    REGISTRY_FIELD_NUMBER: _ClassVar[int]
    ref: str
    source: str
    platform: _platform_pb2.Platform
    registry: RegistryOptions
    def __init__(self, ref: _Optional[str] = ..., source: _Optional[str] = ..., platform: _Optional[_Union[_platform_pb2.Platform, _Mapping]] = ..., registry: _Optional[_Union[RegistryOptions, _Mapping]] = ...) -> None: ...

class LoginRequest(_message.Message):
    __slots__ = ("host", "registry")
    HOST_FIELD_NUMBER: _ClassVar[int]
    REGISTRY_FIELD_NUMBER: _ClassVar[int]
    host: str
    registry: RegistryOptions
    def __init__(self, host: _Optional[str] = ..., registry: _Optional[_Union[RegistryOptions, _Mapping]] = ...) -> None: ...

class LoginResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Progress(_message.Message):
    __slots__ = ("kind", "digest", "media_type", "current", "total", "name", "image_digest", "message")
    class Kind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        UNKNOWN: _ClassVar[Progress.Kind]
        RESOLVING: _ClassVar[Progress.Kind]
        RESOLVED: _ClassVar[Progress.Kind]
        WAITING: _ClassVar[Progress.Kind]
        DOWNLOADING: _ClassVar[Progress.Kind]
        DOWNLOADED: _ClassVar[Progress.Kind]
        EXTRACTING: _ClassVar[Progress.Kind]
        UNPACKED: _ClassVar[Progress.Kind]
        EXISTS: _ClassVar[Progress.Kind]
        MOUNTED: _ClassVar[Progress.Kind]
        UPLOADING: _ClassVar[Progress.Kind]
        PUSHED: _ClassVar[Progress.Kind]
        DONE: _ClassVar[Progress.Kind]
    UNKNOWN: Progress.Kind
    RESOLVING: Progress.Kind
    RESOLVED: Progress.Kind
    WAITING: Progress.Kind
    DOWNLOADING: Progress.Kind
    DOWNLOADED: Progress.Kind
    EXTRACTING: Progress.Kind
    UNPACKED: Progress.Kind
    EXISTS: Progress.Kind
    MOUNTED: Progress.Kind
    UPLOADING: Progress.Kind
    PUSHED: Progress.Kind
    DONE: Progress.Kind
    KIND_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    MEDIA_TYPE_FIELD_NUMBER: _ClassVar[int]
    CURRENT_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    IMAGE_DIGEST_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    kind: Progress.Kind
    digest: str
    media_type: str
    current: int
    total: int
    name: str
    image_digest: str
    message: str
    def __init__(self, kind: _Optional[_Union[Progress.Kind, str]] = ..., digest: _Optional[str] = ..., media_type: _Optional[str] = ..., current: _Optional[int] = ..., total: _Optional[int] = ..., name: _Optional[str] = ..., image_digest: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...
