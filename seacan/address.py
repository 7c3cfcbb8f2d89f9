"""Where seacand's main socket is: the default and ``$SEACAN_ADDRESS``.

Its own module, importing nothing, because every ``seacan`` command needs it
at start and :mod:`seacan.config` (dataclasses, pathlib) costs a CLI start
about 10 ms.
"""

from __future__ import annotations

import os

DEFAULT_STATE = "/run/seacan"
DEFAULT_ADDRESS = DEFAULT_STATE + "/seacan.sock"


def from_env() -> str:
    """``$SEACAN_ADDRESS``, else the default main socket."""
    return os.environ.get("SEACAN_ADDRESS", DEFAULT_ADDRESS)
