"""Error kinds, mapped to gRPC status codes once, at the edge.

The tree::

    SeacanError
     +-- NotFound             NOT_FOUND
     +-- AlreadyExists        ALREADY_EXISTS
     +-- FailedPrecondition   FAILED_PRECONDITION
     +-- InvalidArgument      INVALID_ARGUMENT
     +-- OutOfRange           OUT_OF_RANGE
     +-- Unavailable          UNAVAILABLE
     +-- NotImplemented       UNIMPLEMENTED
     +-- Canceled             CANCELLED
     +-- DeadlineExceeded     DEADLINE_EXCEEDED
     +-- ResourceExhausted    RESOURCE_EXHAUSTED
     +-- PermissionDenied     PERMISSION_DENIED
     +-- Internal             INTERNAL   (also the kind of anything unexpected)

A message names the object: ``content sha256:... not found``. Code below the
servicers raises these; servicers and clients never see ``OSError``.
"""

from __future__ import annotations


class SeacanError(Exception):
    """Base of every error kind seacan raises on purpose."""

    code_name = "UNKNOWN"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class NotFound(SeacanError):
    code_name = "NOT_FOUND"


class AlreadyExists(SeacanError):
    code_name = "ALREADY_EXISTS"


class FailedPrecondition(SeacanError):
    code_name = "FAILED_PRECONDITION"


class InvalidArgument(SeacanError):
    code_name = "INVALID_ARGUMENT"


class OutOfRange(SeacanError):
    code_name = "OUT_OF_RANGE"


class Unavailable(SeacanError):
    code_name = "UNAVAILABLE"


class NotImplemented_(SeacanError):  # noqa: N801 - avoid shadowing the builtin constant
    code_name = "UNIMPLEMENTED"


class Canceled(SeacanError):
    code_name = "CANCELLED"


class DeadlineExceeded(SeacanError):
    code_name = "DEADLINE_EXCEEDED"


class ResourceExhausted(SeacanError):
    code_name = "RESOURCE_EXHAUSTED"


class PermissionDenied(SeacanError):
    code_name = "PERMISSION_DENIED"


class Internal(SeacanError):
    code_name = "INTERNAL"


KINDS: dict[str, type[SeacanError]] = {
    k.code_name: k
    for k in (
        NotFound,
        AlreadyExists,
        FailedPrecondition,
        InvalidArgument,
        OutOfRange,
        Unavailable,
        NotImplemented_,
        Canceled,
        DeadlineExceeded,
        ResourceExhausted,
        PermissionDenied,
        Internal,
    )
}


def from_code_name(code_name: str, message: str) -> SeacanError:
    """The kind for a gRPC code name (``"NOT_FOUND"``); unknown codes become Internal."""
    return KINDS.get(code_name, Internal)(message)
