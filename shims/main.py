"""``containerd-shim-seacan-v2``: containerd's shim v2 binary contract.

containerd runs the binary three ways (flags as Go's ``flag`` package spells
them, one dash)::

    shim -namespace NS -address A -publish-binary B -id ID [-debug] start
        cwd = the bundle. Prints the ttrpc address of a serving shim
        (``unix:///run/seacan/s/<sha256(A/NS/ID)>``) and exits 0. A shim
        already serving there is reused; otherwise this process binds the
        socket, writes ``address`` into the bundle and spawns the serving
        shim (its own session, the socket as fd 3), which outlives it.
    shim -namespace NS -address A -publish-binary B -id ID [-debug]
        (the serving shim, as spawned by ``start``): the Task service.
    shim -namespace NS -address A -publish-binary B -id ID -bundle DIR delete
        cwd = the bundle. Cleans up after a shim that is gone: ``runc delete
        --force``, unmount ``rootfs``; prints a protobuf DeleteResponse
        (pid, exit status: the recorded one or 137, exited_at) on stdout.

Environment: ``TTRPC_ADDRESS`` (where events go, set by containerd),
``SEACAN_SHIM_SOCKET_DIR`` (default ``/run/seacan/s``) and
``SEACAN_RUNC_ROOT`` (default ``/run/seacan/runc``; the namespace is
appended).

The serving shim is the child subreaper of its containers, reaps every child
itself (the asyncio child watcher is replaced by :class:`Reaper`, so runc's
own exits still reach asyncio's subprocess code), logs JSON lines to the
bundle's ``log`` FIFO that containerd reads, and exits after a Shutdown once
no container is left. It imports protobuf, never grpcio.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import hashlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from seacan import errors, log, ttrpc
from seacan.api.runtime.task.v2 import shim_pb2
from seacan.mount import unmount
from seacan.shims.events import Publisher
from seacan.shims.service import TaskService
from seacan.shims.task import INIT_PID, ExitRecord, RuntimeConfig, Tasks, timestamp

_log = log.get("seacan.shims.main")

SOCKET_DIR_ENV = "SEACAN_SHIM_SOCKET_DIR"
DEFAULT_SOCKET_DIR = "/run/seacan/s"
LISTEN_FD = 3
PR_SET_CHILD_SUBREAPER = 36
UNKNOWN_EXIT = 137
SHUTDOWN_FLUSH = 2.0
TEMPLATE_ENV = "SEACAN_SHIM_TEMPLATE"

# Called once the serving shim accepts connections (the template's readiness report).
on_serving: Callable[[], None] | None = None


def parse(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="containerd-shim-seacan-v2", allow_abbrev=False)
    for name in ("namespace", "address", "publish-binary", "id", "bundle", "socket"):
        p.add_argument(f"-{name}", f"--{name}", dest=name.replace("-", "_"), default="")
    p.add_argument("-debug", "--debug", action="store_true")
    p.add_argument("action", nargs="?", default="", choices=["", "start", "delete"])
    args, unknown = p.parse_known_args(list(argv))
    if unknown:
        print(f"seacan shim: ignoring arguments {unknown}", file=sys.stderr)
    return args


def socket_path(address: str, namespace: str, id: str) -> str:
    """Where the shim for (containerd address, namespace, container) listens."""
    base = os.environ.get(SOCKET_DIR_ENV) or DEFAULT_SOCKET_DIR
    key = os.path.join(address, namespace, id)
    return os.path.join(base, hashlib.sha256(key.encode()).hexdigest())


def _serving(path: str) -> bool:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(1.0)
    try:
        s.connect(path)
        return True
    except OSError:
        return False
    finally:
        s.close()


# --- start ----------------------------------------------------------------------


def cmd_start(args: argparse.Namespace) -> int:
    with contextlib.suppress(OSError):
        sys.stdin.buffer.read()  # the options Any; Create carries them again
    path = socket_path(args.address, args.namespace, args.id)
    address = "unix://" + path
    if _serving(path):
        sys.stdout.write(address)
        return 0
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    os.makedirs(os.path.dirname(path), mode=0o711, exist_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(path)
    sock.listen(128)
    Path("address").write_text(address)
    serve_argv = ["-namespace", args.namespace, "-id", args.id, "-address", args.address]
    serve_argv += ["-publish-binary", args.publish_binary]
    if args.debug:
        serve_argv.append("-debug")
    if _start_from_template(sock, serve_argv, args):
        sys.stdout.write(address)
        return 0
    if sock.fileno() != LISTEN_FD:
        os.dup2(sock.fileno(), LISTEN_FD, inheritable=False)
    try:
        subprocess.Popen(
            [sys.executable, "-m", "seacan.shims.main", *serve_argv],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            pass_fds=(LISTEN_FD,),
            start_new_session=True,
            cwd=os.getcwd(),
        )
    except OSError as e:
        os.unlink(path)
        print(f"seacan shim: cannot start the shim: {e}", file=sys.stderr)
        return 1
    sys.stdout.write(address)
    return 0


def _start_from_template(
    sock: socket.socket, serve_argv: list[str], args: argparse.Namespace
) -> bool:
    """Fork the serving shim from the template named by ``SEACAN_SHIM_TEMPLATE``, if it answers."""
    path = os.environ.get(TEMPLATE_ENV, "")
    if not path or not os.path.exists(path):
        return False
    from seacan.shims import template  # only the start path needs it

    try:
        template.request(path, sock.fileno(), serve_argv, args.namespace, args.id)
    except (OSError, ValueError, KeyError, template.TemplateError) as e:
        print(f"seacan shim: template {path}: {e}; spawning", file=sys.stderr)
        return False
    return True


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
    if on_serving is not None:
        on_serving()
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


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    if not args.id:
        print("seacan shim: -id is required", file=sys.stderr)
        return 1
    if args.action == "start":
        return cmd_start(args)
    if args.action == "delete":
        return cmd_delete(args)
    return cmd_serve(args)


if __name__ == "__main__":
    sys.exit(main())
