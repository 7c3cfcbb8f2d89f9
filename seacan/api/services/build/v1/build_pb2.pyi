from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class BuildOptions(_message.Message):
    __slots__ = ("tags", "dockerfile", "dockerfile_content", "build_args", "target", "no_cache", "pull", "labels", "platform", "network", "has_source_date_epoch", "source_date_epoch")
    class BuildArgsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    TAGS_FIELD_NUMBER: _ClassVar[int]
    DOCKERFILE_FIELD_NUMBER: _ClassVar[int]
    DOCKERFILE_CONTENT_FIELD_NUMBER: _ClassVar[int]
    BUILD_ARGS_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    NO_CACHE_FIELD_NUMBER: _ClassVar[int]
    PULL_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    PLATFORM_FIELD_NUMBER: _ClassVar[int]
    NETWORK_FIELD_NUMBER: _ClassVar[int]
    HAS_SOURCE_DATE_EPOCH_FIELD_NUMBER: _ClassVar[int]
    SOURCE_DATE_EPOCH_FIELD_NUMBER: _ClassVar[int]
    tags: _containers.RepeatedScalarFieldContainer[str]
    dockerfile: str
    dockerfile_content: bytes
    build_args: _containers.ScalarMap[str, str]
    target: str
    no_cache: bool
    pull: bool
    labels: _containers.ScalarMap[str, str]
    platform: str
    network: str
    has_source_date_epoch: bool
    source_date_epoch: int
    def __init__(self, tags: _Optional[_Iterable[str]] = ..., dockerfile: _Optional[str] = ..., dockerfile_content: _Optional[bytes] = ..., build_args: _Optional[_Mapping[str, str]] = ..., target: _Optional[str] = ..., no_cache: _Optional[bool] = ..., pull: _Optional[bool] = ..., labels: _Optional[_Mapping[str, str]] = ..., platform: _Optional[str] = ..., network: _Optional[str] = ..., has_source_date_epoch: _Optional[bool] = ..., source_date_epoch: _Optional[int] = ...) -> None: ...

class BuildRequest(_message.Message):
    __slots__ = ("options", "context")
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    options: BuildOptions
    context: bytes
    def __init__(self, options: _Optional[_Union[BuildOptions, _Mapping]] = ..., context: _Optional[bytes] = ...) -> None: ...

class BuildProgress(_message.Message):
    __slots__ = ("stream", "output", "step_done", "result")
    STREAM_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    STEP_DONE_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    stream: str
    output: bytes
    step_done: StepDone
    result: BuildResult
    def __init__(self, stream: _Optional[str] = ..., output: _Optional[bytes] = ..., step_done: _Optional[_Union[StepDone, _Mapping]] = ..., result: _Optional[_Union[BuildResult, _Mapping]] = ...) -> None: ...

class StepDone(_message.Message):
    __slots__ = ("step", "steps", "cached", "seconds", "image_id")
    STEP_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    CACHED_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    IMAGE_ID_FIELD_NUMBER: _ClassVar[int]
    step: int
    steps: int
    cached: bool
    seconds: float
    image_id: str
    def __init__(self, step: _Optional[int] = ..., steps: _Optional[int] = ..., cached: _Optional[bool] = ..., seconds: _Optional[float] = ..., image_id: _Optional[str] = ...) -> None: ...

class BuildResult(_message.Message):
    __slots__ = ("image_id", "manifest_digest", "tags")
    IMAGE_ID_FIELD_NUMBER: _ClassVar[int]
    MANIFEST_DIGEST_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    image_id: str
    manifest_digest: str
    tags: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, image_id: _Optional[str] = ..., manifest_digest: _Optional[str] = ..., tags: _Optional[_Iterable[str]] = ...) -> None: ...

class CommitRequest(_message.Message):
    __slots__ = ("container_id", "reference", "changes", "message", "author")
    CONTAINER_ID_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_FIELD_NUMBER: _ClassVar[int]
    CHANGES_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    AUTHOR_FIELD_NUMBER: _ClassVar[int]
    container_id: str
    reference: str
    changes: _containers.RepeatedScalarFieldContainer[str]
    message: str
    author: str
    def __init__(self, container_id: _Optional[str] = ..., reference: _Optional[str] = ..., changes: _Optional[_Iterable[str]] = ..., message: _Optional[str] = ..., author: _Optional[str] = ...) -> None: ...

class CommitResponse(_message.Message):
    __slots__ = ("image_id", "manifest_digest")
    IMAGE_ID_FIELD_NUMBER: _ClassVar[int]
    MANIFEST_DIGEST_FIELD_NUMBER: _ClassVar[int]
    image_id: str
    manifest_digest: str
    def __init__(self, image_id: _Optional[str] = ..., manifest_digest: _Optional[str] = ...) -> None: ...

class PruneRequest(_message.Message):
    __slots__ = ("all",)
    ALL_FIELD_NUMBER: _ClassVar[int]
    all: bool
    def __init__(self, all: _Optional[bool] = ...) -> None: ...

class PruneResponse(_message.Message):
    __slots__ = ("entries",)
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    entries: int
    def __init__(self, entries: _Optional[int] = ...) -> None: ...
