"""The Builder service's messages <-> seacan.build's values.

Two codecs over the same ``.proto`` (proto/seacan/api/services/build/v1/build.proto):

- the generated protobuf classes (``*_pb``, ``*_from_pb``), for the servicer and
  :class:`seacan.build.proxy.RemoteBuilder`;
- a hand-written protobuf wire codec for the messages ``seacan build`` sends and
  receives (:func:`build_requests`, :func:`event_from_bytes`), so the CLI's fast
  path (over :mod:`seacan.h2grpc`) imports neither grpcio nor protobuf (~20 ms).
  tests/unit/test_build_wire.py checks it against the generated classes.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from typing import Any

from seacan import errors
from seacan import pbwire as pw

from . import BuildOptions, Event, Output, Result, StepDone, Stream

BUILD = "/seacan.services.build.v1.Builder/Build"
CHUNK = 1 << 20  # context bytes per BuildRequest


# --- with the generated classes -------------------------------------------------------


def options_to_pb(o: BuildOptions) -> Any:
    from seacan.api.services.build.v1 import build_pb2 as pb

    return pb.BuildOptions(
        tags=list(o.tags),
        dockerfile=o.dockerfile,
        dockerfile_content=o.dockerfile_content,
        build_args=dict(o.build_args),
        target=o.target,
        no_cache=o.no_cache,
        pull=o.pull,
        labels=dict(o.labels),
        platform=o.platform,
        network=o.network,
        has_source_date_epoch=o.source_date_epoch is not None,
        source_date_epoch=o.source_date_epoch or 0,
    )


def options_from_pb(o: Any) -> BuildOptions:
    return BuildOptions(
        tags=tuple(o.tags),
        dockerfile=o.dockerfile or "Dockerfile",
        dockerfile_content=bytes(o.dockerfile_content),
        build_args=dict(o.build_args),
        target=o.target,
        no_cache=o.no_cache,
        pull=o.pull,
        labels=dict(o.labels),
        platform=o.platform,
        network=o.network or "host",
        source_date_epoch=o.source_date_epoch if o.has_source_date_epoch else None,
    )


def event_to_pb(ev: Event) -> Any:
    from seacan.api.services.build.v1 import build_pb2 as pb

    if isinstance(ev, Stream):
        return pb.BuildProgress(stream=ev.text)
    if isinstance(ev, Output):
        return pb.BuildProgress(output=ev.data)
    if isinstance(ev, StepDone):
        return pb.BuildProgress(
            step_done=pb.StepDone(
                step=ev.step, steps=ev.steps, cached=ev.cached, seconds=ev.seconds,
                image_id=ev.image_id,
            )
        )  # fmt: skip
    return pb.BuildProgress(
        result=pb.BuildResult(
            image_id=ev.image_id, manifest_digest=ev.manifest_digest, tags=list(ev.tags)
        )
    )


def event_from_pb(m: Any) -> Event:
    if m.HasField("step_done"):
        s = m.step_done
        return StepDone(s.step, s.steps, s.cached, s.seconds, s.image_id)
    if m.HasField("result"):
        r = m.result
        return Result(r.image_id, r.manifest_digest, tuple(r.tags))
    if m.output:
        return Output(bytes(m.output))
    return Stream(m.stream)


# --- by hand (seacan.pbwire) ----------------------------------------------------------


def encode_options(o: BuildOptions) -> bytes:
    """A BuildOptions message, as options_to_pb(o).SerializeToString() parses."""
    return b"".join((
        pw.field_strs(1, o.tags),
        pw.field_str(2, o.dockerfile),
        pw.field_bytes(3, o.dockerfile_content) if o.dockerfile_content else b"",
        pw.field_map(4, o.build_args),
        pw.field_str(5, o.target),
        pw.field_int(6, o.no_cache),
        pw.field_int(7, o.pull),
        pw.field_map(8, o.labels),
        pw.field_str(9, o.platform),
        pw.field_str(10, o.network),
        pw.field_int(11, o.source_date_epoch is not None),
        pw.field_int(12, o.source_date_epoch or 0),
    ))  # fmt: skip


def build_requests(opts: BuildOptions, context: Iterable[bytes]) -> Iterator[bytes]:
    """The Build call's BuildRequest messages: the options, then ``context`` (the tar)
    in pieces of at most CHUNK bytes."""
    yield pw.field_bytes(1, encode_options(opts))
    for chunk in context:
        for i in range(0, len(chunk), CHUNK):
            yield pw.field_bytes(2, chunk[i : i + CHUNK])


def event_from_bytes(data: bytes) -> Event:
    """A serialized BuildProgress as its event (as event_from_pb)."""
    try:
        f = pw.fields(data)
        if 3 in f:
            s = pw.fields(f[3][-1])
            return StepDone(
                step=pw.last_int(s, 1),
                steps=pw.last_int(s, 2),
                cached=bool(pw.last_int(s, 3)),
                seconds=pw.double(s[4][-1]) if 4 in s else 0.0,
                image_id=pw.last_str(s, 5),
            )
        if 4 in f:
            r = pw.fields(f[4][-1])
            return Result(
                image_id=pw.last_str(r, 1),
                manifest_digest=pw.last_str(r, 2),
                tags=pw.strs(r, 3),
            )
        if f.get(2, [b""])[-1]:
            return Output(bytes(f[2][-1]))
        return Stream(pw.last_str(f, 1))
    except (pw.Malformed, UnicodeDecodeError, struct.error):
        raise errors.Internal("build: a malformed progress message from the server") from None
