"""RunSpec <-> ``seacan.services.engine.v1.RunRequest``; Started <-> RunResponse.

Two codecs over proto/seacan/api/services/engine/v1/engine.proto: the generated
classes (``*_pb``) for the servicer, and by hand (:mod:`seacan.pbwire`) for
the CLI's fast path, which then imports neither protobuf nor grpcio
(tests/unit/test_pbwire.py checks one against the other).
"""

from __future__ import annotations

from typing import Any

from seacan import pbwire as pw
from seacan.engine import RunSpec, Started

RUN = "/seacan.services.engine.v1.Engine/Run"

_LISTS = (
    "args", "env", "cap_add", "cap_drop", "networks", "publish", "dns", "dns_search",
    "dns_options", "add_hosts", "network_aliases", "volumes", "mounts", "tmpfs",
)  # fmt: skip
_SCALARS = (
    "image", "id", "workdir", "user", "hostname", "tty", "interactive", "read_only",
    "privileged", "memory", "runtime", "publish_all", "log_dir",
)  # fmt: skip


def spec_to_pb(spec: RunSpec) -> Any:
    from seacan.api.services.engine.v1 import engine_pb2 as pb

    fields: dict[str, Any] = {k: getattr(spec, k) for k in _SCALARS}
    fields.update({k: list(getattr(spec, k)) for k in _LISTS})
    req = pb.RunRequest(
        **fields, entrypoint_set=spec.entrypoint is not None, entrypoint=list(spec.entrypoint or ())
    )
    if spec.cpus is not None:
        req.cpus = spec.cpus
    if spec.pids_limit is not None:
        req.pids_limit = spec.pids_limit
    return req


def spec_from_pb(req: Any) -> RunSpec:
    fields: dict[str, Any] = {k: getattr(req, k) for k in _SCALARS}
    fields.update({k: tuple(getattr(req, k)) for k in _LISTS})
    return RunSpec(
        **fields,
        entrypoint=tuple(req.entrypoint) if req.entrypoint_set else None,
        cpus=req.cpus if req.HasField("cpus") else None,
        pids_limit=req.pids_limit if req.HasField("pids_limit") else None,
    )


def started_to_pb(s: Started) -> Any:
    from seacan.api.services.engine.v1 import engine_pb2 as pb

    return pb.RunResponse(id=s.id, pid=s.pid, warnings=list(s.warnings))


def started_from_pb(resp: Any) -> Started:
    return Started(resp.id, resp.pid, tuple(resp.warnings))


# --- by hand ------------------------------------------------------------------------


def encode_spec(spec: RunSpec) -> bytes:
    """A RunRequest, as spec_to_pb(spec).SerializeToString() parses."""
    s = spec
    return b"".join((
        pw.field_str(1, s.image), pw.field_str(2, s.id), pw.field_strs(3, s.args),
        pw.field_int(4, s.entrypoint is not None), pw.field_strs(5, s.entrypoint or ()),
        pw.field_strs(6, s.env), pw.field_str(7, s.workdir), pw.field_str(8, s.user),
        pw.field_str(9, s.hostname), pw.field_int(10, s.tty), pw.field_int(11, s.interactive),
        pw.field_int(12, s.read_only), pw.field_int(13, s.privileged),
        pw.field_strs(14, s.cap_add), pw.field_strs(15, s.cap_drop), pw.field_str(16, s.memory),
        pw.field_optional_double(17, s.cpus), pw.field_optional_int(18, s.pids_limit),
        pw.field_str(19, s.runtime), pw.field_strs(20, s.networks), pw.field_strs(21, s.publish),
        pw.field_int(22, s.publish_all), pw.field_strs(23, s.dns), pw.field_strs(24, s.dns_search),
        pw.field_strs(25, s.dns_options), pw.field_strs(26, s.add_hosts),
        pw.field_strs(27, s.network_aliases), pw.field_strs(28, s.volumes),
        pw.field_strs(29, s.mounts), pw.field_strs(30, s.tmpfs), pw.field_str(31, s.log_dir),
    ))  # fmt: skip


def decode_started(data: bytes) -> Started:
    """A serialized RunResponse (as started_from_pb)."""
    f = pw.fields(data)
    return Started(pw.last_str(f, 1), pw.last_int(f, 2), pw.strs(f, 3))


__all__ = [
    "RUN",
    "decode_started",
    "encode_spec",
    "spec_from_pb",
    "spec_to_pb",
    "started_from_pb",
    "started_to_pb",
]
