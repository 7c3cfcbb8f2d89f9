"""The serving shim and ``delete``: everything heavy :mod:`seacan.shims.main` defers.

``containerd-shim-seacan-v2 start`` runs once per container and only binds a
socket and asks the template to fork; it must not pay for importing asyncio,
protobuf and the Task service. The serving shim (forked from the template,
which imports this module up front) and ``delete`` use what is here.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import os
import signal
import socket
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from seacan import errors, log, ttrpc
from seacan.api.runtime.task.v2 import shim_pb2
from seacan.mount import unmount
from seacan.shims import main as shim_main
from seacan.shims.events import Publisher
from seacan.shims.main import (
    LISTEN_FD,
    PR_SET_CHILD_SUBREAPER,
    SHUTDOWN_FLUSH,
    UNKNOWN_EXIT,
    _serving,
    socket_path,
)
from seacan.shims.service import TaskService
from seacan.shims.task import INIT_PID, ExitRecord, RuntimeConfig, Tasks, timestamp

_log = log.get("seacan.shims.main")


# --- delete ---------------------------------------------------------------------


def cmd_delete(args: argparse.Namespace) -> int:
    bundle = Path(args.bundle or os.getcwd())
    runc = RuntimeConfig.load(bundle, args.namespace).runc(bundle)

    async def runc_delete() -> None:
        try:
            await runc.delete(args.id, force=True)
        except errors.NotFound:
            pass
        except errors.SeacanError as e:
            print(f"runc delete: {e}", file=sys.stderr)

    asyncio.run(runc_delete())
    try:
        unmount(bundle / "rootfs")
    except errors.SeacanError as e:
        print(f"unmount rootfs: {e}", file=sys.stderr)
    path = socket_path(args.address, args.namespace, args.id)
    if not _serving(path):
        with contextlib.suppress(OSError):
            os.unlink(path)
    pid = 0
    with contextlib.suppress(OSError, ValueError):
        pid = int((bundle / INIT_PID).read_text().strip())
    rec = ExitRecord.load(bundle)
    resp = shim_pb2.DeleteResponse(
        pid=pid,
        exit_status=rec.exit_status if rec else UNKNOWN_EXIT,
        exited_at=timestamp(rec.exited_at if rec else datetime.now(UTC)),
    )
    sys.stdout.buffer.write(resp.SerializeToString())
    sys.stdout.flush()
    return 0


# --- serve ----------------------------------------------------------------------


class _LogWriter:
    """stderr for the serving shim: the bundle's ``log`` FIFO, never blocking, never failing."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def write(self, text: str) -> int:
        with contextlib.suppress(OSError):
            os.write(self.fd, text.encode(errors="replace"))
        return len(text)

    def flush(self) -> None:
        pass


def _setup_logging(debug: bool) -> None:
    fd = os.open(os.devnull, os.O_WRONLY)
    with contextlib.suppress(OSError):
        fd = os.open("log", os.O_RDWR | os.O_NONBLOCK)  # containerd reads it; may be absent
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    sys.stdout = sys.stderr = _LogWriter(2)
    log.configure("debug" if debug else "info", json=True)


def _subreaper() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        _log.warning("shim.subreaper_failed", errno=ctypes.get_errno())


class Reaper(asyncio.AbstractChildWatcher):
    """Reaps every child on SIGCHLD; asyncio's subprocesses get their exit, the rest ``on_exit``.

    asyncio's default watcher waits for its own pids only, which would leave
    the container processes (reparented to the subreaper) as zombies, while a
    ``waitpid(-1)`` of ours would steal runc's exit from asyncio. One reaper
    for both avoids that race. asyncio registers a pid right after forking,
    before the loop runs again, so no exit can come before its handler.
    """

    def __init__(self, on_exit: Callable[[int, int], None]) -> None:
        self._on_exit = on_exit
        self._handlers: dict[int, tuple[Callable[..., Any], tuple[Any, ...]]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    def add_child_handler(  # type: ignore[override]
        self, pid: int, callback: Callable[..., Any], *args: Any
    ) -> None:
        self._handlers[pid] = (callback, args)
        self.reap()  # in case it exited already

    def remove_child_handler(self, pid: int) -> bool:
        return self._handlers.pop(pid, None) is not None

    def attach_loop(self, loop: asyncio.AbstractEventLoop | None) -> None:
        if self._loop is not None:
            self._loop.remove_signal_handler(signal.SIGCHLD)
        self._loop = loop
        if loop is not None:
            loop.add_signal_handler(signal.SIGCHLD, self.reap)

    def close(self) -> None:
        self.attach_loop(None)

    def is_active(self) -> bool:
        return self._loop is not None

    def __enter__(self) -> Reaper:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            handler = self._handlers.pop(pid, None)
            if handler is not None:
                callback, args = handler
                callback(pid, os.waitstatus_to_exitcode(status), *args)
            else:
                try:
                    self._on_exit(pid, status)
                except Exception as e:  # one bad exit must not stop reaping
                    _log.error("shim.exit_failed", pid=pid, error=repr(e), exc_info=e)


async def serve(args: argparse.Namespace, listener: socket.socket) -> None:
    loop = asyncio.get_running_loop()
    publisher = Publisher(os.environ.get("TTRPC_ADDRESS", ""), args.namespace)
    publisher.start()
    tasks = Tasks(args.namespace, publisher)
    reaper = Reaper(tasks.on_exit)
    reaper.attach_loop(loop)
    asyncio.set_child_watcher(reaper)
    done = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, done.set)
    server = ttrpc.Server()
    TaskService(tasks, done.set).register(server)
    await server.serve_socket(listener)
    if shim_main.on_serving is not None:
        shim_main.on_serving()
    _log.info("shim.serving", id=args.id, namespace=args.namespace, pid=os.getpid())
    await done.wait()
    _log.info("shim.shutdown", id=args.id, containers=len(tasks.containers))
    await publisher.flush(SHUTDOWN_FLUSH)
    await server.close(grace=0.5)
    await publisher.close()
    reaper.close()


def cmd_serve(args: argparse.Namespace) -> int:
    _setup_logging(args.debug)
    try:
        listener = socket.socket(fileno=LISTEN_FD)
    except OSError as e:
        _log.error("shim.no_listener", error=str(e))
        return 1
    _subreaper()
    try:
        asyncio.run(serve(args, listener))
    finally:
        with contextlib.suppress(OSError):
            os.unlink(socket_path(args.address, args.namespace, args.id))
    return 0
