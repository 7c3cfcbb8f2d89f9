"""Building images: Dockerfile builds with a layer cache, and commit.

The build service (``seacan.services.build``) implements it; clients use
:class:`seacan.build.proxy.RemoteBuilder` (``Client.build``)::

    opts = BuildOptions(tags=("app:1",), build_args={"V": "2"})
    async for ev in client.build.build(opts, tar_chunks):
        match ev:
            case Stream(text): print(text, end="")       # "Step 1/3 : FROM busybox"
            case Output(data): sys.stdout.buffer.write(data)   # RUN output
            case StepDone(): ...                          # number, cached, seconds, image ID
            case Result(image_id=i): print("built", i)

The context is an uncompressed tar stream (``.dockerignore`` applied by the
client; the service applies it again). Errors arrive as error kinds: a
Dockerfile error names the file and line (``Dockerfile:3: ...``).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import NamedTuple

# The values are NamedTuples, not dataclasses: importing dataclasses costs
# ``seacan build`` (which uses them without protobuf or grpcio) ~7 ms.
_EMPTY: Mapping[str, str] = MappingProxyType({})


class BuildOptions(NamedTuple):
    tags: tuple[str, ...] = ()
    dockerfile: str = "Dockerfile"  # path inside the context
    dockerfile_content: bytes = b""  # the Dockerfile itself (wins over ``dockerfile``)
    build_args: Mapping[str, str] = _EMPTY
    target: str = ""
    no_cache: bool = False
    pull: bool = False
    labels: Mapping[str, str] = _EMPTY
    platform: str = ""
    network: str = "host"  # for RUN: "host" or "none"
    source_date_epoch: int | None = None


class Stream(NamedTuple):
    """Text as Docker's classic builder prints it."""

    text: str


class Output(NamedTuple):
    """Bytes a RUN step wrote."""

    data: bytes


class StepDone(NamedTuple):
    step: int
    steps: int
    cached: bool
    seconds: float
    image_id: str


class Result(NamedTuple):
    image_id: str  # sha256:<config digest>
    manifest_digest: str
    tags: tuple[str, ...]


Event = Stream | Output | StepDone | Result


class CommitOptions(NamedTuple):
    container_id: str
    reference: str = ""
    changes: tuple[str, ...] = ()
    message: str = ""
    author: str = ""


__all__ = ["BuildOptions", "CommitOptions", "Event", "Output", "Result", "StepDone", "Stream"]
