"""OCI image types: media types, descriptors, index/manifest/config JSON, platforms.

Parsing validates, and an error names what is wrong (InvalidArgument)::

    idx = oci.parse_index(data)                  # index or Docker manifest list
    m = oci.parse_manifest(data)                 # OCI or Docker schema 2 manifest
    cfg = oci.parse_config(data)                 # cfg.diff_ids, cfg.config["Env"]
    oci.chain_ids(cfg.diff_ids)                  # snapshot names, as containerd's unpacker

``chain_ids`` follows the OCI image spec: ``chainID(1) = diffID(1)`` and
``chainID(n) = sha256(chainID(n-1) + " " + diffID(n))``.
"""

from __future__ import annotations

import hashlib
import json
import platform as _platform
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from seacan import errors

# -- media types -------------------------------------------------------------

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = OCI_LAYER + "+gzip"
OCI_LAYER_ZSTD = OCI_LAYER + "+zstd"
OCI_LAYER_NONDIST = "application/vnd.oci.image.layer.nondistributable.v1.tar"
OCI_LAYER_NONDIST_GZIP = OCI_LAYER_NONDIST + "+gzip"
OCI_LAYER_NONDIST_ZSTD = OCI_LAYER_NONDIST + "+zstd"

DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
DOCKER_LAYER_GZIP = DOCKER_LAYER + ".gzip"
DOCKER_LAYER_ZSTD = DOCKER_LAYER + ".zstd"
DOCKER_LAYER_FOREIGN = "application/vnd.docker.image.rootfs.foreign.diff.tar"
DOCKER_LAYER_FOREIGN_GZIP = DOCKER_LAYER_FOREIGN + ".gzip"

INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})
MANIFEST_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
CONFIG_TYPES = frozenset({OCI_CONFIG, DOCKER_CONFIG})

# Annotations and labels with a meaning.
ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"
ANNOTATION_IMAGE_NAME = "io.containerd.image.name"
LABEL_UNCOMPRESSED = "containerd.io/uncompressed"

_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")

# Python's platform.machine() -> GOARCH (and the default variant).
_GOARCH: dict[str, tuple[str, str]] = {
    "x86_64": ("amd64", ""),
    "amd64": ("amd64", ""),
    "aarch64": ("arm64", "v8"),
    "arm64": ("arm64", "v8"),
    "armv7l": ("arm", "v7"),
    "armv6l": ("arm", "v6"),
    "i386": ("386", ""),
    "i686": ("386", ""),
    "ppc64le": ("ppc64le", ""),
    "s390x": ("s390x", ""),
    "riscv64": ("riscv64", ""),
}


def layer_compression(media_type: str) -> str | None:
    """The compression a layer media type declares: "gzip", "zstd", "" (plain tar).

    None when ``media_type`` is not a layer type seacan can unpack. Docker's
    plain ``...rootfs.diff.tar`` layers are often gzip anyway; callers sniff.
    """
    table = {
        OCI_LAYER: "",
        OCI_LAYER_NONDIST: "",
        DOCKER_LAYER: "",
        DOCKER_LAYER_FOREIGN: "",
        OCI_LAYER_GZIP: "gzip",
        OCI_LAYER_NONDIST_GZIP: "gzip",
        DOCKER_LAYER_GZIP: "gzip",
        DOCKER_LAYER_FOREIGN_GZIP: "gzip",
        OCI_LAYER_ZSTD: "zstd",
        OCI_LAYER_NONDIST_ZSTD: "zstd",
        DOCKER_LAYER_ZSTD: "zstd",
    }
    if media_type in table:
        return table[media_type]
    # Unregistered suffixes on a known base: "<base>+gzip", "<base>+zstd".
    base, plus, ext = media_type.partition("+")
    if plus and base in (OCI_LAYER, OCI_LAYER_NONDIST, DOCKER_LAYER) and ext in ("gzip", "zstd"):
        return ext
    return None


def is_layer(media_type: str) -> bool:
    return layer_compression(media_type) is not None


# -- value types ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Platform:
    """``os/architecture[/variant]``, as in an index entry or an image config."""

    os: str
    architecture: str
    variant: str = ""
    os_version: str = ""
    os_features: tuple[str, ...] = ()

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"architecture": self.architecture, "os": self.os}
        if self.os_version:
            out["os.version"] = self.os_version
        if self.os_features:
            out["os.features"] = list(self.os_features)
        if self.variant:
            out["variant"] = self.variant
        return out


@dataclass(frozen=True, slots=True)
class Descriptor:
    """A pointer to a blob: what it is, its digest, its size."""

    media_type: str
    digest: str
    size: int
    annotations: Mapping[str, str] = field(default_factory=dict)
    urls: tuple[str, ...] = ()
    platform: Platform | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": self.size,
        }
        if self.urls:
            out["urls"] = list(self.urls)
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        if self.platform is not None:
            out["platform"] = self.platform.to_json()
        return out


@dataclass(frozen=True, slots=True)
class Index:
    """An OCI image index or a Docker manifest list."""

    media_type: str
    manifests: tuple[Descriptor, ...]
    annotations: Mapping[str, str] = field(default_factory=dict)
    schema_version: int = 2


@dataclass(frozen=True, slots=True)
class Manifest:
    """An OCI image manifest or a Docker schema 2 manifest."""

    media_type: str
    config: Descriptor
    layers: tuple[Descriptor, ...]
    annotations: Mapping[str, str] = field(default_factory=dict)
    schema_version: int = 2


@dataclass(frozen=True, slots=True)
class ImageConfig:
    """The parts of an image config seacan reads; ``config`` is the raw run config."""

    architecture: str
    os: str
    diff_ids: tuple[str, ...]
    variant: str = ""
    created: str = ""
    author: str = ""
    config: Mapping[str, Any] = field(default_factory=dict)
    history: tuple[Mapping[str, Any], ...] = ()

    @property
    def platform(self) -> Platform:
        return Platform(self.os, self.architecture, self.variant)


# -- validation and parsing ----------------------------------------------------


def validate_digest(digest: str, what: str = "digest") -> str:
    """InvalidArgument unless ``digest`` is ``sha256:`` and 64 lowercase hex digits."""
    if not isinstance(digest, str) or not _DIGEST.match(digest):
        raise errors.InvalidArgument(f"{what}: invalid digest {digest!r}: want sha256:<64 hex>")
    return digest


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _load(data: bytes | str, what: str) -> dict[str, Any]:
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise errors.InvalidArgument(f"{what}: invalid JSON: {e}") from None
    if not isinstance(obj, dict):
        raise errors.InvalidArgument(f"{what}: JSON object expected, got {type(obj).__name__}")
    return obj


def _get(obj: Mapping[str, Any], key: str, kind: type | tuple[type, ...], what: str) -> Any:
    if key not in obj or obj[key] is None:
        raise errors.InvalidArgument(f"{what}: missing field {key!r}")
    value = obj[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise errors.InvalidArgument(f"{what}: field {key!r} has the wrong type")
    return value


def _opt(obj: Mapping[str, Any], key: str, kind: type, default: Any, what: str) -> Any:
    if obj.get(key) is None:
        return default
    value = obj[key]
    if not isinstance(value, kind):
        raise errors.InvalidArgument(f"{what}: field {key!r} has the wrong type")
    return value


def _strmap(obj: Mapping[str, Any], key: str, what: str) -> dict[str, str]:
    m = _opt(obj, key, dict, {}, what)
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in m.items()):
        raise errors.InvalidArgument(f"{what}: field {key!r} must map strings to strings")
    return dict(m)


def parse_platform_json(obj: Any, what: str = "platform") -> Platform:
    if not isinstance(obj, dict):
        raise errors.InvalidArgument(f"{what}: JSON object expected")
    features = _opt(obj, "os.features", list, [], what)
    return Platform(
        os=_get(obj, "os", str, what),
        architecture=_get(obj, "architecture", str, what),
        variant=_opt(obj, "variant", str, "", what),
        os_version=_opt(obj, "os.version", str, "", what),
        os_features=tuple(str(f) for f in features),
    )


def parse_descriptor(obj: Any, what: str = "descriptor") -> Descriptor:
    """A descriptor from its JSON object; InvalidArgument naming the bad field."""
    if not isinstance(obj, dict):
        raise errors.InvalidArgument(f"{what}: JSON object expected")
    size = _get(obj, "size", int, what)
    if size < 0:
        raise errors.InvalidArgument(f"{what}: negative size {size}")
    platform = obj.get("platform")
    urls = _opt(obj, "urls", list, [], what)
    return Descriptor(
        media_type=_get(obj, "mediaType", str, what),
        digest=validate_digest(_get(obj, "digest", str, what), what),
        size=size,
        annotations=_strmap(obj, "annotations", what),
        urls=tuple(str(u) for u in urls),
        platform=None if platform is None else parse_platform_json(platform, f"{what}: platform"),
    )


def _schema_version(obj: Mapping[str, Any], what: str) -> int:
    version = _get(obj, "schemaVersion", int, what)
    if version != 2:
        raise errors.InvalidArgument(f"{what}: unsupported schemaVersion {version}")
    return int(version)


def parse_index(data: bytes | str, what: str = "index") -> Index:
    """An OCI index or Docker manifest list; a missing mediaType means OCI."""
    obj = _load(data, what)
    version = _schema_version(obj, what)
    media_type = _opt(obj, "mediaType", str, OCI_INDEX, what)
    if media_type not in INDEX_TYPES:
        raise errors.InvalidArgument(f"{what}: unexpected mediaType {media_type!r}")
    manifests = _get(obj, "manifests", list, what)
    return Index(
        media_type=media_type,
        manifests=tuple(
            parse_descriptor(d, f"{what}: manifests[{i}]") for i, d in enumerate(manifests)
        ),
        annotations=_strmap(obj, "annotations", what),
        schema_version=version,
    )


def parse_manifest(data: bytes | str, what: str = "manifest") -> Manifest:
    """An OCI or Docker schema 2 manifest; a missing mediaType means OCI."""
    obj = _load(data, what)
    version = _schema_version(obj, what)
    media_type = _opt(obj, "mediaType", str, OCI_MANIFEST, what)
    if media_type not in MANIFEST_TYPES:
        raise errors.InvalidArgument(f"{what}: unexpected mediaType {media_type!r}")
    layers = _opt(obj, "layers", list, [], what)
    return Manifest(
        media_type=media_type,
        config=parse_descriptor(_get(obj, "config", dict, what), f"{what}: config"),
        layers=tuple(parse_descriptor(d, f"{what}: layers[{i}]") for i, d in enumerate(layers)),
        annotations=_strmap(obj, "annotations", what),
        schema_version=version,
    )


def parse_config(data: bytes | str, what: str = "image config") -> ImageConfig:
    """An image config: platform, ``rootfs.diff_ids`` (validated), the run config."""
    obj = _load(data, what)
    rootfs = _get(obj, "rootfs", dict, what)
    rtype = _get(rootfs, "type", str, f"{what}: rootfs")
    if rtype != "layers":
        raise errors.InvalidArgument(f"{what}: rootfs type {rtype!r}, want 'layers'")
    diff_ids = _opt(rootfs, "diff_ids", list, [], f"{what}: rootfs")
    for i, d in enumerate(diff_ids):
        validate_digest(d, f"{what}: rootfs.diff_ids[{i}]")
    history = _opt(obj, "history", list, [], what)
    return ImageConfig(
        architecture=_get(obj, "architecture", str, what),
        os=_get(obj, "os", str, what),
        diff_ids=tuple(diff_ids),
        variant=_opt(obj, "variant", str, "", what),
        created=_opt(obj, "created", str, "", what),
        author=_opt(obj, "author", str, "", what),
        config=_opt(obj, "config", dict, {}, what),
        history=tuple(h for h in history if isinstance(h, dict)),
    )


def sniff_media_type(data: bytes) -> str:
    """The media type a JSON blob declares, or "" (Docker archives often omit it)."""
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return ""
    if not isinstance(obj, dict):
        return ""
    mt = obj.get("mediaType")
    if isinstance(mt, str) and mt:
        return mt
    if isinstance(obj.get("manifests"), list):
        return OCI_INDEX
    if isinstance(obj.get("config"), dict) and "layers" in obj:
        return OCI_MANIFEST
    return ""


# -- chain IDs -----------------------------------------------------------------


def chain_ids(diff_ids: Sequence[str]) -> list[str]:
    """The chain ID of each layer prefix: the snapshot names an unpacker uses."""
    out: list[str] = []
    for d in diff_ids:
        validate_digest(d, "diff ID")
        if not out:
            out.append(d)
        else:
            out.append(digest_of(f"{out[-1]} {d}".encode()))
    return out


# -- platforms -----------------------------------------------------------------


def normalize_platform(p: Platform) -> Platform:
    """containerd's normalization: lowercase, GOARCH names, default variants."""
    os_ = p.os.lower()
    arch = p.architecture.lower()
    variant = p.variant.lower()
    if arch in ("x86_64", "x86-64"):
        arch, variant = "amd64", ""
    elif arch in ("aarch64", "arm64"):
        arch = "arm64"
        if variant in ("8", "v8"):
            variant = ""
    elif arch == "armhf":
        arch, variant = "arm", "v7"
    elif arch == "armel":
        arch, variant = "arm", "v6"
    elif arch == "arm":
        variant = {"": "v7", "5": "v5", "6": "v6", "7": "v7", "8": "v8"}.get(variant, variant)
    elif arch in ("i386", "i686"):
        arch = "386"
    elif arch == "amd64" and variant == "v1":
        variant = ""
    return Platform(os_, arch, variant, p.os_version, p.os_features)


def host_platform() -> Platform:
    """The platform this machine runs: ``linux/amd64``, ``linux/arm64/v8``, ..."""
    machine = _platform.machine().lower()
    arch, variant = _GOARCH.get(machine, (machine, ""))
    return Platform("linux", arch, variant)


def platform_matches(want: Platform, have: Platform) -> bool:
    """Whether an image for ``have`` runs on ``want`` (after normalizing both).

    An empty variant on ``have`` matches any variant wanted (most images do
    not state one); arm64 ``v8`` equals no variant.
    """
    w, h = normalize_platform(want), normalize_platform(have)
    if w.os != h.os or w.architecture != h.architecture:
        return False
    return not h.variant or w.variant == h.variant


def parse_platform(spec: str) -> Platform:
    """``os[/arch[/variant]]`` or just ``arch``, as ``--platform`` takes it."""
    parts = spec.strip().split("/")
    if not spec.strip() or len(parts) > 3 or any(not p for p in parts):
        raise errors.InvalidArgument(f"invalid platform {spec!r}: want os/arch[/variant]")
    if len(parts) == 1:
        host = host_platform()
        if parts[0].lower() == host.os:
            return normalize_platform(host)
        return normalize_platform(Platform(host.os, parts[0]))
    return normalize_platform(Platform(parts[0], parts[1], parts[2] if len(parts) == 3 else ""))


__all__ = [
    "ANNOTATION_IMAGE_NAME",
    "ANNOTATION_REF_NAME",
    "CONFIG_TYPES",
    "DOCKER_CONFIG",
    "DOCKER_LAYER",
    "DOCKER_LAYER_FOREIGN",
    "DOCKER_LAYER_FOREIGN_GZIP",
    "DOCKER_LAYER_GZIP",
    "DOCKER_LAYER_ZSTD",
    "DOCKER_MANIFEST",
    "DOCKER_MANIFEST_LIST",
    "INDEX_TYPES",
    "LABEL_UNCOMPRESSED",
    "MANIFEST_TYPES",
    "OCI_CONFIG",
    "OCI_INDEX",
    "OCI_LAYER",
    "OCI_LAYER_GZIP",
    "OCI_LAYER_NONDIST",
    "OCI_LAYER_NONDIST_GZIP",
    "OCI_LAYER_NONDIST_ZSTD",
    "OCI_LAYER_ZSTD",
    "OCI_MANIFEST",
    "Descriptor",
    "ImageConfig",
    "Index",
    "Manifest",
    "Platform",
    "chain_ids",
    "digest_of",
    "host_platform",
    "is_layer",
    "layer_compression",
    "normalize_platform",
    "parse_config",
    "parse_descriptor",
    "parse_index",
    "parse_manifest",
    "parse_platform",
    "parse_platform_json",
    "platform_matches",
    "sniff_media_type",
    "validate_digest",
]
