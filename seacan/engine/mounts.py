"""``seacan run``'s storage flags, as Docker reads them: ``-v``, ``--mount``, ``--tmpfs``.

Parsing is pure (:func:`parse_volume`, :func:`parse_mount`, :func:`parse_tmpfs`
return :class:`MountRequest`), so a malformed flag fails before anything is
made; :mod:`seacan.engine.run` then checks bind sources, acquires the volumes
and turns each request into an OCI mount (:func:`oci_mount`)::

    -v data:/var/lib/x:ro         volume "data", read-only
    -v /srv/www:/www              bind of a host path (it must exist)
    -v /cache                     anonymous volume
    --mount type=volume,source=data,target=/x,volume-opt=type=tmpfs,volume-opt=device=tmpfs
    --mount type=bind,src=/srv,dst=/srv,readonly,bind-propagation=rslave
    --mount type=tmpfs,target=/scratch,tmpfs-size=64m,tmpfs-mode=1777
    --tmpfs /run:size=16m,mode=755
"""

from __future__ import annotations

import csv
import os
import posixpath
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from seacan import errors, volumes

PROPAGATIONS = ("private", "rprivate", "shared", "rshared", "slave", "rslave")
TMPFS_DEFAULTS = ("nosuid", "nodev", "noexec")
_TRUE = ("", "1", "true")
_FALSE = ("0", "false")
_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


@dataclass(frozen=True, slots=True)
class MountRequest:
    """One mount a user asked for (``type``: volume, bind or tmpfs)."""

    type: str
    target: str
    source: str = ""  # volume name ("" anonymous) or host path
    readonly: bool = False
    propagation: str = ""  # binds only
    nonrecursive: bool = False  # binds only
    nocopy: bool = False  # volumes only
    volume_options: Mapping[str, str] = field(default_factory=dict)
    volume_labels: Mapping[str, str] = field(default_factory=dict)
    tmpfs_options: tuple[str, ...] = ()


def _target(target: str, what: str) -> str:
    if not target:
        raise errors.InvalidArgument(f"{what}: the target (container path) is missing")
    if not target.startswith("/"):
        raise errors.InvalidArgument(f"{what}: mount path {target!r} must be absolute")
    clean = posixpath.normpath(target)
    if clean.startswith("//"):
        clean = clean[1:]
    if clean == "/":
        raise errors.InvalidArgument(f"{what}: the destination cannot be '/'")
    return clean


def _size(text: str, what: str) -> int:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b)?", text.strip().lower())
    if m is None:
        raise errors.InvalidArgument(f"{what}: invalid size {text!r} (want e.g. 64m, 1g)")
    return int(float(m.group(1)) * _UNITS[m.group(2)])


def _bool(key: str, value: str | None, what: str) -> bool:
    v = (value or "").lower()
    if value is None or v in _TRUE:
        return True
    if v in _FALSE:
        return False
    raise errors.InvalidArgument(f"{what}: invalid value {value!r} for {key} (want true or false)")


def parse_volume(spec: str) -> MountRequest:
    """``-v [SOURCE:]TARGET[:MODE]``: a named or anonymous volume, or a bind of a host path."""
    what = f"invalid volume specification {spec!r}"
    parts = spec.split(":")
    mode = ""
    if len(parts) == 1:
        source, target = "", parts[0]
    elif len(parts) == 2 and parts[0].startswith("/") and not parts[1].startswith("/"):
        source, target, mode = "", parts[0], parts[1]  # /path:ro, an anonymous volume
    elif len(parts) == 2:
        source, target = parts
    elif len(parts) == 3:
        source, target, mode = parts
        if not source:
            raise errors.InvalidArgument(f"{what}: the source is empty")
    else:
        raise errors.InvalidArgument(f"{what}: too many ':'")
    if len(parts) > 1 and not source and not mode:
        raise errors.InvalidArgument(f"{what}: the source is empty")
    target = _target(target, what)
    kind = "bind" if source.startswith("/") else "volume"
    if kind == "volume" and source:
        try:
            volumes.validate_name(source)
        except errors.InvalidArgument as e:
            raise errors.InvalidArgument(f"{what}: {e}") from None
    readonly, propagation, nocopy = False, "", False
    seen_rw = False
    for m in filter(None, mode.split(",")) if mode else ():
        if m in ("ro", "rw"):
            if seen_rw:
                raise errors.InvalidArgument(f"{what}: more than one of ro/rw in {mode!r}")
            seen_rw, readonly = True, m == "ro"
        elif m in PROPAGATIONS and kind == "bind" and not propagation:
            propagation = m
        elif m == "nocopy" and kind == "volume" and not nocopy:
            nocopy = True
        elif m in ("z", "Z"):
            continue  # SELinux relabelling: nothing to do without SELinux
        else:
            raise errors.InvalidArgument(f"{what}: invalid mode {m!r} for a {kind}")
    if mode == "" and len(parts) == 3:
        raise errors.InvalidArgument(f"{what}: the mode is empty")
    return MountRequest(
        kind, target, source, readonly=readonly, propagation=propagation, nocopy=nocopy
    )


def parse_mount(spec: str) -> MountRequest:
    """``--mount type=volume|bind|tmpfs,source=...,target=...,...`` (Docker's keys)."""
    what = f"invalid --mount {spec!r}"
    try:
        fields = next(csv.reader([spec]))
    except (csv.Error, StopIteration) as e:
        raise errors.InvalidArgument(f"{what}: {e}") from None
    kind, source, target = "volume", "", ""
    readonly, propagation, nonrecursive, nocopy = False, "", False, False
    vopts: dict[str, str] = {}
    vlabels: dict[str, str] = {}
    tsize: int | None = None
    tmode: int | None = None
    used: set[str] = set()
    for f in fields:
        key, eq, value = f.partition("=")
        key = key.strip().lower()
        val: str | None = value if eq else None
        if key not in ("readonly", "ro", "volume-nocopy", "bind-nonrecursive") and val is None:
            raise errors.InvalidArgument(f"{what}: {f!r} is not key=value")
        used.add(key)
        if key == "type":
            if value not in ("volume", "bind", "tmpfs"):
                raise errors.InvalidArgument(f"{what}: type {value!r}: want volume, bind or tmpfs")
            kind = value
        elif key in ("source", "src"):
            source = value
        elif key in ("target", "destination", "dst"):
            target = value
        elif key in ("readonly", "ro"):
            readonly = _bool(key, val, what)
        elif key == "consistency":
            continue  # Docker accepts it and ignores it on Linux
        elif key == "bind-propagation":
            if value not in PROPAGATIONS:
                raise errors.InvalidArgument(f"{what}: invalid bind-propagation {value!r}")
            propagation = value
        elif key == "bind-nonrecursive":
            nonrecursive = _bool(key, val, what)
        elif key == "volume-nocopy":
            nocopy = _bool(key, val, what)
        elif key in ("volume-opt", "volume-label"):
            k, eq2, v = value.partition("=")
            if not k or not eq2:
                raise errors.InvalidArgument(f"{what}: {key} {value!r} is not KEY=VALUE")
            (vopts if key == "volume-opt" else vlabels)[k] = v
        elif key == "volume-driver":
            volumes.validate_driver(value)
        elif key == "tmpfs-size":
            tsize = _size(value, what)
        elif key == "tmpfs-mode":
            try:
                tmode = int(value, 8)
            except ValueError:
                raise errors.InvalidArgument(f"{what}: tmpfs-mode {value!r} is not octal") from None
        else:
            raise errors.InvalidArgument(f"{what}: unexpected key {key!r}")
    for prefix in ("bind-", "volume-", "tmpfs-"):
        if prefix != kind + "-" and any(k.startswith(prefix) for k in used):
            raise errors.InvalidArgument(f"{what}: {prefix}* options do not apply to type {kind}")
    target = _target(target, what)
    if kind == "bind":
        if not source:
            raise errors.InvalidArgument(f"{what}: a bind mount needs a source")
        if not source.startswith("/"):
            raise errors.InvalidArgument(f"{what}: bind source {source!r} must be absolute")
    elif kind == "volume":
        if source:
            try:
                volumes.validate_name(source)
            except errors.InvalidArgument as e:
                raise errors.InvalidArgument(f"{what}: {e}") from None
        try:
            volumes.validate_options(vopts)
        except errors.InvalidArgument as e:
            raise errors.InvalidArgument(f"{what}: {e}") from None
    elif source:
        raise errors.InvalidArgument(f"{what}: a tmpfs mount takes no source")
    topts: list[str] = []
    if tsize is not None:
        topts.append(f"size={tsize}")
    if tmode is not None:
        topts.append(f"mode={tmode:o}")
    return MountRequest(
        kind, target, source, readonly=readonly, propagation=propagation,
        nonrecursive=nonrecursive, nocopy=nocopy, volume_options=vopts, volume_labels=vlabels,
        tmpfs_options=tuple(topts),
    )  # fmt: skip


def parse_tmpfs(spec: str) -> MountRequest:
    """``--tmpfs /path[:OPTIONS]`` (OPTIONS as mount(8) takes them, e.g. ``size=64m,mode=755``)."""
    what = f"invalid --tmpfs {spec!r}"
    target, _, opts = spec.partition(":")
    options = tuple(o for o in opts.split(",") if o)
    readonly = False
    for o in options:
        if not re.fullmatch(r"[A-Za-z0-9_-]+(=[A-Za-z0-9_.:+-]+)?", o):
            raise errors.InvalidArgument(f"{what}: invalid option {o!r}")
        if o in ("ro", "rw"):
            readonly = o == "ro"
    rest = tuple(o for o in options if o not in ("ro", "rw"))
    return MountRequest("tmpfs", _target(target, what), readonly=readonly, tmpfs_options=rest)


def parse_all(
    volume_specs: Sequence[str], mount_specs: Sequence[str], tmpfs_specs: Sequence[str]
) -> list[MountRequest]:
    """Every storage flag, parsed; InvalidArgument on a malformed one or a repeated target."""
    reqs = [
        *(parse_volume(s) for s in volume_specs),
        *(parse_mount(s) for s in mount_specs),
        *(parse_tmpfs(s) for s in tmpfs_specs),
    ]
    seen: set[str] = set()
    for r in reqs:
        if r.target in seen:
            raise errors.InvalidArgument(f"duplicate mount point: {r.target}")
        seen.add(r.target)
    return reqs


def image_volumes(config: Mapping[str, Any], reqs: Sequence[MountRequest]) -> list[MountRequest]:
    """Anonymous volumes for the image's ``VOLUME`` paths no flag already covers."""
    taken = {r.target for r in reqs}
    out = []
    paths = {posixpath.normpath("/" + str(p).lstrip("/")) for p in config.get("Volumes") or {}}
    for target in sorted(paths):
        if target != "/" and target not in taken:
            taken.add(target)
            out.append(MountRequest("volume", target))
    return out


def oci_mount(r: MountRequest, source: str = "") -> dict[str, Any]:
    """The OCI runtime spec mount for ``r`` (``source``: a volume's host directory)."""
    if r.type == "tmpfs":
        opts = [*TMPFS_DEFAULTS, *r.tmpfs_options]
        if r.readonly:
            opts.append("ro")
        return {"destination": r.target, "type": "tmpfs", "source": "tmpfs", "options": opts}
    bind = "bind" if r.nonrecursive else "rbind"
    opts = [bind, r.propagation or "rprivate", "ro" if r.readonly else "rw"]
    return {"destination": r.target, "type": "bind", "source": source or r.source, "options": opts}


def check_binds(reqs: Sequence[MountRequest]) -> None:
    """A bind of a host path that does not exist is refused (nothing is created)."""
    for r in reqs:
        if r.type == "bind" and not os.path.exists(r.source):
            raise errors.NotFound(
                f"bind source path {r.source!r} does not exist (for mount point {r.target})"
            )
