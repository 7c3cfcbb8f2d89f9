"""The engine: "run a container" as one operation, above the stores (dockerd above containerd).

:class:`RunSpec` is everything ``seacan run`` takes, as the user gave it
(flags are parsed and checked by :mod:`seacan.engine.plan` before anything
is made). :mod:`seacan.engine.run` does the orchestration against a
:class:`seacan.client.Client`: resolve the image, attach volumes and
networks, prepare the rootfs, create the container and its task, start it,
concurrently where the data allows, and undo everything on failure::

    started = await run.run_detached(client, RunSpec("busybox", args=("httpd", "-f")))

The engine service (``seacan.services.engine``) runs it for a thin CLI in one
request (``seacan.services.engine.v1.Engine/Run``; :mod:`seacan.engine.wire`
converts). This module imports nothing heavy: the CLI's fast path builds a
RunSpec without grpcio or asyncio. The values are NamedTuples, not dataclasses:
importing :mod:`dataclasses` costs that start ~7 ms.
"""

from __future__ import annotations

from typing import NamedTuple

# Where detached logs go unless the client says otherwise: as seacan.cio.LOG_DIR_ENV
# (read here so the CLI's fast path need not import seacan.cio, which imports asyncio).
LOG_DIR_ENV = "SEACAN_LOG_DIR"


class RunSpec(NamedTuple):
    """``seacan run``'s flags, unparsed (``-e K`` already taken from the caller's environment)."""

    image: str
    id: str = ""  # --name; "" makes a random ID
    args: tuple[str, ...] = ()
    entrypoint: tuple[str, ...] | None = None  # None: the image's; (): none
    env: tuple[str, ...] = ()
    workdir: str = ""
    user: str = ""
    hostname: str = ""
    tty: bool = False
    interactive: bool = False
    read_only: bool = False
    privileged: bool = False
    cap_add: tuple[str, ...] = ()
    cap_drop: tuple[str, ...] = ()
    memory: str = ""  # e.g. "64m"
    cpus: float | None = None
    pids_limit: int | None = None
    runtime: str = ""  # "" is seacan's own (seacan.tasks.DEFAULT_RUNTIME)
    networks: tuple[str, ...] = ()  # () is the default network
    publish: tuple[str, ...] = ()  # -p specs
    publish_all: bool = False
    dns: tuple[str, ...] = ()
    dns_search: tuple[str, ...] = ()
    dns_options: tuple[str, ...] = ()
    add_hosts: tuple[str, ...] = ()
    network_aliases: tuple[str, ...] = ()
    volumes: tuple[str, ...] = ()  # -v specs
    mounts: tuple[str, ...] = ()  # --mount specs
    tmpfs: tuple[str, ...] = ()  # --tmpfs specs
    log_dir: str = ""  # the caller's $SEACAN_LOG_DIR ("" is the default)


class Started(NamedTuple):
    """A container running detached: its ID, its task's PID, and what the user should read."""

    id: str
    pid: int
    warnings: tuple[str, ...] = ()


__all__ = ["LOG_DIR_ENV", "RunSpec", "Started"]
