"""The start of every service process: flags, logging, parent watch, loop.

seacand runs each service as ``python -m seacan.services.<name> <flags>``;
the same command runs it under systemd (deploy/). A service started by
seacand dies with it (PR_SET_PDEATHSIG), so a restarted seacand never finds
an orphan holding a socket or a database.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import os
import signal
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from seacan import config, errors, log

PR_SET_PDEATHSIG = 1


def _die_with_parent(parent_pid: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)


def parse(argv: list[str] | None = None) -> tuple[config.Config, int]:
    p = argparse.ArgumentParser()
    p.add_argument("--root")
    p.add_argument("--state")
    p.add_argument("--address")
    p.add_argument("--config", type=Path)
    p.add_argument("--log-level")
    p.add_argument("--max-layer-bytes", type=int)
    p.add_argument("--max-blob-bytes", type=int)
    p.add_argument("--gc-interval", type=float)
    p.add_argument("--max-context-bytes", type=int)
    p.add_argument("--config-dir")
    p.add_argument("--cni-plugin-dirs")
    p.add_argument("--parent-pid", type=int, default=0)
    a = p.parse_args(argv)
    cfg = config.load(
        a.config,
        root=a.root,
        state=a.state,
        address=a.address,
        log_level=a.log_level,
        max_layer_bytes=a.max_layer_bytes,
        max_blob_bytes=a.max_blob_bytes,
        gc_interval=a.gc_interval,
        max_context_bytes=a.max_context_bytes,
        config_dir=a.config_dir,
        cni_plugin_dirs=a.cni_plugin_dirs,
    )
    return cfg, int(a.parent_pid)


def run(name: str, serve: Callable[[config.Config], Coroutine[Any, Any, None]]) -> None:
    """Parse flags, configure logging, and serve until told to stop."""
    try:
        cfg, parent = parse()
    except errors.SeacanError as e:
        print(f"seacan-{name}: {e}", file=sys.stderr)
        raise SystemExit(1) from None
    if parent:
        _die_with_parent(parent)
    log.configure(cfg.log_level)
    log.get("seacan.service").info("service.start", service=name, pid=os.getpid())
    asyncio.run(serve(cfg))
