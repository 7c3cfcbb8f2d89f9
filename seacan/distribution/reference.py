"""Image references with Docker's normalisation (distribution/reference).

::

    parse("busybox")                -> docker.io/library/busybox:latest
    parse("user/app@sha256:...")    -> docker.io/user/app@sha256:...
    parse("localhost:5000/a/b:1")   -> localhost:5000/a/b:1
    familiar(parse("busybox"))      -> busybox:latest

A first component is a domain when it contains ``.`` or ``:``, is
``localhost``, or has an uppercase letter (as Docker decides). A reference
with neither tag nor digest gets ``latest``. Errors are InvalidArgument
naming the reference and what is wrong with it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from seacan import errors

DEFAULT_DOMAIN = "docker.io"
LEGACY_DEFAULT_DOMAIN = "index.docker.io"
DEFAULT_REGISTRY_HOST = "registry-1.docker.io"
OFFICIAL_PREFIX = "library/"
DEFAULT_TAG = "latest"
NAME_TOTAL_LENGTH_MAX = 255

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*"
_PATH = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = re.compile(
    rf"^(?:\[[0-9a-fA-F:]+\]|{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*)(?::[0-9]+)?$"
)
_TAG = re.compile(r"^[\w][\w.-]{0,127}$")
_DIGEST = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[0-9a-fA-F]{32,}$")
_HEX_DIGESTS = {"sha256": 64, "sha384": 96, "sha512": 128}
_IDENTIFIER = re.compile(r"^[a-f0-9]{64}$")


@dataclass(frozen=True, slots=True)
class Reference:
    """A normalised reference: ``domain/path[:tag][@digest]``."""

    domain: str
    path: str
    tag: str | None = None
    digest: str | None = None

    @property
    def repository(self) -> str:
        """``domain/path``: the name without tag or digest."""
        return f"{self.domain}/{self.path}"

    @property
    def object(self) -> str:
        """What to ask the registry for: the digest when there is one, else the tag."""
        return self.digest or self.tag or DEFAULT_TAG

    def __str__(self) -> str:
        out = self.repository
        if self.tag:
            out += ":" + self.tag
        if self.digest:
            out += "@" + self.digest
        return out


def _split_domain(name: str) -> tuple[str, str]:
    first, slash, rest = name.partition("/")
    if not slash or (
        "." not in first and ":" not in first and first != "localhost" and first.lower() == first
    ):
        domain, remainder = DEFAULT_DOMAIN, name
    else:
        domain, remainder = first, rest
    if domain == LEGACY_DEFAULT_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in remainder:
        remainder = OFFICIAL_PREFIX + remainder
    return domain, remainder


def _validate_digest(text: str, digest: str) -> str:
    algorithm, _, hexpart = digest.partition(":")
    want = _HEX_DIGESTS.get(algorithm)
    if not _DIGEST.match(digest) or want is None:
        raise errors.InvalidArgument(f"invalid reference {text!r}: invalid digest {digest!r}")
    if len(hexpart) != want or hexpart != hexpart.lower():
        raise errors.InvalidArgument(
            f"invalid reference {text!r}: digest {digest!r} must be {algorithm}:"
            f" and {want} lowercase hex digits"
        )
    return digest


def parse(text: str) -> Reference:
    """Parse and normalise ``text``; InvalidArgument naming the problem."""
    if not text:
        raise errors.InvalidArgument("invalid reference: empty")
    if _IDENTIFIER.match(text):
        raise errors.InvalidArgument(
            f"invalid repository name ({text}), cannot specify 64-byte hexadecimal strings"
        )
    rest, at, digest = text.partition("@")
    name, tag = rest, None
    colon = rest.rfind(":")
    if colon > rest.rfind("/"):
        name, tag = rest[:colon], rest[colon + 1 :]
    if not name:
        raise errors.InvalidArgument(f"invalid reference {text!r}: no repository name")
    if tag is not None and not _TAG.match(tag):
        raise errors.InvalidArgument(f"invalid reference {text!r}: invalid tag {tag!r}")
    if at:
        _validate_digest(text, digest)
    domain, path = _split_domain(name)
    if path.lower() != path:
        raise errors.InvalidArgument(
            f"invalid reference format: repository name ({path}) must be lowercase"
        )
    if not _DOMAIN.match(domain):
        raise errors.InvalidArgument(f"invalid reference {text!r}: invalid domain {domain!r}")
    if not _PATH.match(path):
        raise errors.InvalidArgument(f"invalid reference {text!r}: invalid repository {path!r}")
    if len(domain) + 1 + len(path) > NAME_TOTAL_LENGTH_MAX:
        raise errors.InvalidArgument(
            f"invalid reference {text!r}: repository name longer than {NAME_TOTAL_LENGTH_MAX}"
        )
    if tag is None and not at:
        tag = DEFAULT_TAG
    return Reference(domain=domain, path=path, tag=tag, digest=digest if at else None)


def familiar_name(ref: Reference) -> str:
    """The short name Docker shows: ``busybox``, ``user/app``, ``localhost:5000/x``."""
    if ref.domain != DEFAULT_DOMAIN:
        return ref.repository
    path = ref.path
    if path.startswith(OFFICIAL_PREFIX) and "/" not in path[len(OFFICIAL_PREFIX) :]:
        path = path[len(OFFICIAL_PREFIX) :]
    return path


def familiar(ref: Reference) -> str:
    """The short form Docker shows: ``busybox:latest``, ``user/app@sha256:...``."""
    out = familiar_name(ref)
    if ref.tag:
        out += ":" + ref.tag
    if ref.digest:
        out += "@" + ref.digest
    return out


def registry_host(domain: str) -> str:
    """The host to connect to for a domain: Docker Hub's is ``registry-1.docker.io``."""
    return DEFAULT_REGISTRY_HOST if domain in (DEFAULT_DOMAIN, LEGACY_DEFAULT_DOMAIN) else domain


__all__ = [
    "DEFAULT_DOMAIN",
    "DEFAULT_TAG",
    "Reference",
    "familiar",
    "familiar_name",
    "parse",
    "registry_host",
]
