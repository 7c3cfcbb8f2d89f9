"""The OCI Distribution spec v1.1, without I/O: routes, names, digests, ranges,
error codes and manifest references.

Everything here is pure so it can be tested as tables (tests/unit/test_registry_spec.py).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

# Media types a manifest may be pushed with (the Content-Type it is served with).
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MANIFEST_TYPES = frozenset({OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST})
INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_LIST})

# name and tag grammar from the spec
_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
NAME_RE = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
TAG_RE = re.compile(r"[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}")
DIGEST_RE = re.compile(r"sha256:[a-f0-9]{64}")
MAX_NAME = 255


# --- errors ---------------------------------------------------------------------

STATUS: dict[str, int] = {
    "BLOB_UNKNOWN": 404,
    "BLOB_UPLOAD_INVALID": 400,
    "BLOB_UPLOAD_UNKNOWN": 404,
    "DIGEST_INVALID": 400,
    "MANIFEST_BLOB_UNKNOWN": 400,
    "MANIFEST_INVALID": 400,
    "MANIFEST_UNKNOWN": 404,
    "NAME_INVALID": 400,
    "NAME_UNKNOWN": 404,
    "SIZE_INVALID": 400,
    "UNAUTHORIZED": 401,
    "DENIED": 403,
    "UNSUPPORTED": 405,
    "TOOMANYREQUESTS": 429,
    "PAGINATION_NUMBER_INVALID": 400,
}


class RegistryError(Exception):
    """One error of the spec's table: answered as ``{"errors": [...]}``."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        status: int | None = None,
        detail: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status if status is not None else STATUS[code]
        self.detail = detail
        self.headers = headers or {}

    def body(self) -> bytes:
        err: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.detail is not None:
            err["detail"] = self.detail
        return json.dumps({"errors": [err]}).encode()


# --- names, tags, digests -------------------------------------------------------


def check_name(name: str) -> str:
    if len(name) > MAX_NAME or not NAME_RE.fullmatch(name):
        raise RegistryError("NAME_INVALID", f"invalid repository name {name!r}", detail=name)
    return name


def is_digest(ref: str) -> bool:
    return ":" in ref


def check_digest(digest: str) -> str:
    """A sha256 digest, the only algorithm stored; anything else is DIGEST_INVALID."""
    if not DIGEST_RE.fullmatch(digest):
        raise RegistryError("DIGEST_INVALID", f"invalid digest {digest!r}", detail=digest)
    return digest


def check_tag(tag: str) -> str:
    if not TAG_RE.fullmatch(tag):
        raise RegistryError("MANIFEST_INVALID", f"invalid tag {tag!r}", detail=tag)
    return tag


# --- routes ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Route:
    """What a ``/v2/...`` path addresses. ``kind`` is one of: base, catalog,
    manifest, blob, uploads (start), upload (session), tags, referrers."""

    kind: str
    name: str = ""
    ref: str = ""


_ROUTES = (
    ("uploads", re.compile(r"(?P<name>.+)/blobs/uploads/?")),
    ("upload", re.compile(r"(?P<name>.+)/blobs/uploads/(?P<ref>[^/]+)")),
    ("blob", re.compile(r"(?P<name>.+)/blobs/(?P<ref>[^/]+)")),
    ("manifest", re.compile(r"(?P<name>.+)/manifests/(?P<ref>[^/]+)")),
    ("tags", re.compile(r"(?P<name>.+)/tags/list")),
    ("referrers", re.compile(r"(?P<name>.+)/referrers/(?P<ref>[^/]+)")),
)


def parse_route(raw_path: str) -> Route | None:
    """The route of a raw (still percent-encoded) request path; None if not ours.

    The raw path is used so that ``..`` reaches the name check instead of being
    folded away by URL normalisation.
    """
    path = unquote(raw_path.split("?", 1)[0])
    if path in ("/v2", "/v2/"):
        return Route("base")
    if not path.startswith("/v2/"):
        return None
    rest = path[4:]
    if rest in ("_catalog", "_catalog/"):
        return Route("catalog")
    for kind, rx in _ROUTES:
        m = rx.fullmatch(rest)
        if m:
            return Route(kind, m.group("name"), m.groupdict().get("ref") or "")
    return None


# --- ranges ---------------------------------------------------------------------


MAX_DIGITS = 18  # a number with more digits (any size past 10**18) is refused


def _is_number(text: str) -> bool:
    """ASCII digits only (``"²".isdigit()`` is true), and few enough for ``int``."""
    return text.isascii() and text.isdigit() and len(text) <= MAX_DIGITS


def parse_content_range(value: str) -> tuple[int, int]:
    """A chunk's ``Content-Range: <start>-<end>`` (inclusive; ``bytes `` prefix allowed)."""
    v = value.strip()
    if v.startswith("bytes"):
        v = v[5:].strip(" =")
    start, sep, end = v.partition("-")
    end = end.split("/", 1)[0]
    if not sep or not _is_number(start) or not _is_number(end) or int(end) < int(start):
        raise RegistryError(
            "BLOB_UPLOAD_INVALID", f"invalid Content-Range {value!r}", status=416, detail=value
        )
    return int(start), int(end)


def upload_range(offset: int) -> str:
    """The ``Range`` header of an upload holding ``offset`` bytes (distribution's form)."""
    return f"0-{max(offset - 1, 0)}"


# --- pagination -----------------------------------------------------------------


def paginate(
    items: list[str], n: str | None, last: str | None, base: str
) -> tuple[list[str], str | None]:
    """The page after ``last`` of at most ``n`` sorted items, and the Link header if more."""
    items = sorted(items)
    if last:
        items = [i for i in items if i > last]
    if n is None or n == "":
        return items, None
    if not _is_number(n):
        raise RegistryError("PAGINATION_NUMBER_INVALID", f"invalid page size n={n[:40]!r}")
    size = int(n)
    page = items[:size]
    if size == 0 or len(items) <= size:
        return page, None
    return page, f'<{base}?n={size}&last={page[-1]}>; rel="next"'


# --- manifests ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Manifest:
    """What the registry must know about a pushed manifest."""

    media_type: str
    blobs: tuple[str, ...] = ()  # config and layers that must exist in the repository
    manifests: tuple[str, ...] = ()  # an index's children that must exist
    subject: str | None = None
    artifact_type: str | None = None
    annotations: dict[str, str] = field(default_factory=dict)


def _base_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def _digests(items: Any, what: str, *, skip_foreign: bool = False) -> tuple[str, ...]:
    if items is None:
        return ()
    if not isinstance(items, list):
        raise RegistryError("MANIFEST_INVALID", f"manifest {what} is not a list")
    out: list[str] = []
    for d in items:
        if not isinstance(d, dict) or not isinstance(d.get("digest"), str):
            raise RegistryError("MANIFEST_INVALID", f"manifest {what} entry has no digest")
        if skip_foreign and (d.get("urls") or "foreign" in str(d.get("mediaType", ""))):
            continue  # a foreign layer lives elsewhere, as distribution allows
        out.append(_descriptor_digest(d["digest"]))
    return tuple(out)


def _descriptor_digest(digest: str) -> str:
    try:
        return check_digest(digest)
    except RegistryError:
        raise RegistryError(
            "MANIFEST_INVALID", f"manifest names an invalid digest {digest!r}"
        ) from None


def parse_manifest(body: bytes, content_type: str | None) -> Manifest:
    """Check a pushed manifest: JSON, a known media type agreeing with its
    ``mediaType`` field, and well-formed references. Raises MANIFEST_INVALID."""
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise RegistryError("MANIFEST_INVALID", "manifest is not valid JSON") from None
    except RecursionError:
        raise RegistryError("MANIFEST_INVALID", "manifest JSON is nested too deep") from None
    if not isinstance(doc, dict):
        raise RegistryError("MANIFEST_INVALID", "manifest is not a JSON object")
    header = _base_type(content_type)
    field_type = doc.get("mediaType")
    if field_type is not None and not isinstance(field_type, str):
        raise RegistryError("MANIFEST_INVALID", "manifest mediaType is not a string")
    if header in MANIFEST_TYPES:
        if field_type and field_type != header:
            raise RegistryError(
                "MANIFEST_INVALID",
                f"Content-Type {header} does not match the manifest's mediaType {field_type}",
            )
        media_type = header
    elif field_type in MANIFEST_TYPES:
        media_type = str(field_type)
    else:
        raise RegistryError(
            "MANIFEST_INVALID", f"unsupported manifest media type {header or field_type!r}"
        )
    if doc.get("schemaVersion") != 2:
        raise RegistryError("MANIFEST_INVALID", "manifest schemaVersion is not 2")
    subject = doc.get("subject")
    subject_digest = None
    if subject is not None:
        if not isinstance(subject, dict) or not isinstance(subject.get("digest"), str):
            raise RegistryError("MANIFEST_INVALID", "manifest subject has no digest")
        subject_digest = _descriptor_digest(subject["digest"])
    annotations = doc.get("annotations") or {}
    if not isinstance(annotations, dict):
        raise RegistryError("MANIFEST_INVALID", "manifest annotations is not an object")
    artifact_type = doc.get("artifactType")
    if media_type in INDEX_TYPES:
        return Manifest(
            media_type,
            manifests=_digests(doc.get("manifests"), "manifests"),
            subject=subject_digest,
            artifact_type=artifact_type if isinstance(artifact_type, str) else None,
            annotations=annotations,
        )
    config = doc.get("config")
    if not isinstance(config, dict):
        raise RegistryError("MANIFEST_INVALID", "manifest has no config descriptor")
    if not isinstance(artifact_type, str):
        config_type = config.get("mediaType")
        artifact_type = config_type if isinstance(config_type, str) else None
    layers = doc.get("layers")
    if layers is None and media_type == DOCKER_MANIFEST:
        raise RegistryError("MANIFEST_INVALID", "manifest has no layers")
    return Manifest(
        media_type,
        blobs=_digests([config], "config") + _digests(layers, "layers", skip_foreign=True),
        subject=subject_digest,
        artifact_type=artifact_type,
        annotations=annotations,
    )
