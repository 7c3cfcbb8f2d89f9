"""seacan volume commands (being written)."""

from __future__ import annotations

from seacan.cli.commands import Subparsers


def register(subs: Subparsers) -> None:
    del subs
