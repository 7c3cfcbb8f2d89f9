"""containerd's label rules and label-map field-mask updates, in one place."""

from __future__ import annotations

from collections.abc import Mapping

from seacan import errors

MAX_LABEL_BYTES = 4096


def validate(labels: Mapping[str, str], what: str = "") -> None:
    """Each key plus value at most 4096 bytes, keys not empty (labels/validate.go)."""
    prefix = f"{what}: " if what else ""
    for key, value in labels.items():
        if not key:
            raise errors.InvalidArgument(f"{prefix}label key must not be empty")
        if len(key.encode()) + len(value.encode()) > MAX_LABEL_BYTES:
            raise errors.InvalidArgument(
                f"{prefix}label key and value greater than maximum size "
                f"({MAX_LABEL_BYTES} bytes), key: {key[:64]}"
            )
