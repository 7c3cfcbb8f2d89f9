"""``seacan run``'s storage flags (``-v``, ``--mount``, ``--tmpfs``) and ``rm -v``.

The flags are parsed by :mod:`seacan.engine.mounts` and the volumes acquired
by :mod:`seacan.engine.run`; the volumes service records the container as a
user of each volume. When the container is gone its references are dropped
and its anonymous volumes removed (``run --rm``, ``rm -v``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from seacan import errors

if TYPE_CHECKING:
    from seacan.client import Client


async def remove_anonymous(c: Client, ids: Sequence[str]) -> int:
    """``rm -v``: the anonymous volumes of removed containers (those still there are skipped)."""
    code = 0
    for id in ids:
        try:
            await c.volumes.release(id, remove_anonymous=True)
        except errors.FailedPrecondition:
            continue  # not removed (its error was printed already)
        except errors.SeacanError as e:
            print(f"seacan: {e}", file=sys.stderr)
            code = 1
    return code


def add_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "-v", "--volume", action="append", default=[], metavar="[SRC:]DST[:MODE]",
        help="a volume (NAME:DST), a host path (/SRC:DST) or an anonymous volume (DST)",
    )  # fmt: skip
    p.add_argument(
        "--mount", action="append", default=[], metavar="type=...,source=...,target=...",
        help="a volume, bind or tmpfs mount (Docker's --mount keys)",
    )  # fmt: skip
    p.add_argument(
        "--tmpfs", action="append", default=[], metavar="DST[:OPTIONS]", help="a tmpfs mount"
    )
