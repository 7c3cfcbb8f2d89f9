"""Flag values shared by several commands, in a module that imports nothing heavy
(``seacan build``'s fast path uses it)."""

from __future__ import annotations

from collections.abc import Sequence

from seacan import errors


def parse_labels(items: Sequence[str]) -> dict[str, str]:
    """``KEY=VALUE`` arguments (``KEY`` alone is an empty value, as ctr)."""
    out: dict[str, str] = {}
    for item in items:
        key, _, value = item.partition("=")
        if not key:
            raise errors.InvalidArgument(f"invalid label {item!r}: want KEY=VALUE")
        out[key] = value
    return out
