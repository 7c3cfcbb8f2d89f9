"""Request scope: the namespace and lease that travel with a request.

They arrive as gRPC metadata (``containerd-namespace``, ``containerd-lease``),
land here through one server interceptor (:mod:`seacan.grpcutil`), and are
*required* where data is touched, not in servicers.
"""

from __future__ import annotations

import contextvars
import re

from seacan import errors

NAMESPACE_HEADER = "containerd-namespace"
LEASE_HEADER = "containerd-lease"

_namespace: contextvars.ContextVar[str] = contextvars.ContextVar("namespace", default="")
_lease: contextvars.ContextVar[str] = contextvars.ContextVar("lease", default="")

_IDENTIFIER = re.compile(r"^[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*$")
MAX_IDENTIFIER = 76


def validate_identifier(value: str, what: str = "identifier") -> str:
    """containerd's identifier rule, for namespaces, container and lease IDs."""
    if not value:
        raise errors.InvalidArgument(f"{what} must not be empty")
    if len(value) > MAX_IDENTIFIER:
        raise errors.InvalidArgument(
            f"{what} {value!r} greater than maximum length ({MAX_IDENTIFIER} characters)"
        )
    if not _IDENTIFIER.match(value):
        raise errors.InvalidArgument(f"{what} {value!r} must match {_IDENTIFIER.pattern}")
    return value


def set_scope(namespace: str, lease: str) -> None:
    _namespace.set(namespace)
    _lease.set(lease)


def namespace_required() -> str:
    """The request's namespace; FailedPrecondition when the caller sent none."""
    ns = _namespace.get()
    if not ns:
        raise errors.FailedPrecondition("namespace is required")
    validate_identifier(ns, "namespace")
    return ns


def namespace_optional() -> str:
    return _namespace.get()


def lease() -> str:
    """The request's lease ID, or ``""``."""
    return _lease.get()
