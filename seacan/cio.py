"""Client stdio for tasks, as containerd's ``cio``: FIFOs when attached, log files otherwise.

Attached (``seacan run``, ``tasks start``, ``exec``)::

    fifos = new_fifo_set("web", stdin=True, terminal=False)   # <root>/<random>/web-std{in,out,err}
    with fifos, Attached(fifos) as io:                         # opened O_NONBLOCK, as ctr
        await tasks.create(CreateOptions("web", stdin=fifos.stdin, stdout=fifos.stdout, ...))
        io.start(stdin=0, stdout=1, stderr=2, on_stdin_eof=...)
        ...
        await io.wait()                                        # until the shim closed its ends

The FIFO directory is under ``$SEACAN_FIFO_DIR`` (default ``/run/seacan/fifo``).
Our read ends are opened O_RDONLY|O_NONBLOCK before the task exists (so the
shim's open never blocks), and copying starts after Create, when the shim
holds the write ends: from then on EOF means the shim closed them. Stdin is
opened O_RDWR|O_NONBLOCK so opening never waits for the shim.

Detached (``run -d``, ``start``): stdout and stderr are ``file://`` URIs of
one log file, ``$SEACAN_LOG_DIR/<namespace>/<id>.log`` (default
``/var/lib/seacan/logs``), written by the shim and read by ``seacan logs``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import stat
import tempfile
import termios
import tty
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from seacan import errors, log

_log = log.get(__name__)

FIFO_DIR_ENV = "SEACAN_FIFO_DIR"
DEFAULT_FIFO_DIR = "/run/seacan/fifo"
LOG_DIR_ENV = "SEACAN_LOG_DIR"
DEFAULT_LOG_DIR = "/var/lib/seacan/logs"
CHUNK = 32 << 10


def fifo_root() -> Path:
    return Path(os.environ.get(FIFO_DIR_ENV) or DEFAULT_FIFO_DIR)


def log_dir() -> Path:
    return Path(os.environ.get(LOG_DIR_ENV) or DEFAULT_LOG_DIR)


def log_path(namespace: str, id: str) -> Path:
    """Where a detached container's output goes."""
    return log_dir() / namespace / f"{id}.log"


def log_uri(path: Path) -> str:
    return "file://" + str(path.absolute())


@dataclass(frozen=True, slots=True)
class FifoSet:
    """The FIFO paths handed to the shim (``""``: not wanted) and their directory."""

    dir: Path
    stdin: str
    stdout: str
    stderr: str
    terminal: bool = False

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> FifoSet:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.remove()


def new_fifo_set(id: str, *, stdin: bool, terminal: bool, root: Path | None = None) -> FifoSet:
    """Fresh FIFOs ``<id>-stdin|-stdout|-stderr`` in a new private directory under ``root``.

    With a terminal there is no stderr (the pty carries both), as ctr.
    """
    base = root or fifo_root()
    try:
        base.mkdir(parents=True, exist_ok=True, mode=0o700)
        d = Path(tempfile.mkdtemp(prefix="", dir=base))
    except OSError as e:
        raise errors.Internal(f"fifo directory under {base}: {e.strerror or e}") from None
    try:
        paths = {}
        for name, wanted in (("stdin", stdin), ("stdout", True), ("stderr", not terminal)):
            if wanted:
                p = d / f"{id}-{name}"
                os.mkfifo(p, 0o600)
                paths[name] = str(p)
            else:
                paths[name] = ""
    except OSError as e:
        shutil.rmtree(d, ignore_errors=True)
        raise errors.Internal(f"fifo in {d}: {e.strerror or e}") from None
    return FifoSet(d, paths["stdin"], paths["stdout"], paths["stderr"], terminal)


# -- copying -----------------------------------------------------------------------


async def _wait_fd(fd: int, write: bool) -> None:
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[None] = loop.create_future()

    def ready() -> None:
        if not fut.done():
            fut.set_result(None)

    if write:
        loop.add_writer(fd, ready)
    else:
        loop.add_reader(fd, ready)
    try:
        await fut
    finally:
        if write:
            loop.remove_writer(fd)
        else:
            loop.remove_reader(fd)


def _pollable(fd: int) -> bool:
    """Whether epoll takes ``fd`` (pipes, FIFOs, ttys, sockets; not regular files)."""
    mode = os.fstat(fd).st_mode
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode) or stat.S_ISBLK(mode))


async def read_some(fd: int) -> bytes:
    """Up to CHUNK bytes from ``fd`` (b"" at EOF), waiting without blocking the loop."""
    pollable = _pollable(fd)
    while True:
        if pollable:
            await _wait_fd(fd, write=False)
        else:
            await asyncio.sleep(0)  # a regular file is always readable: let others run
        try:
            return os.read(fd, CHUNK)
        except (BlockingIOError, InterruptedError):
            continue


async def write_all(fd: int, data: bytes) -> None:
    """All of ``data`` to ``fd``, waiting when a non-blocking fd is full."""
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
        except (BlockingIOError, InterruptedError):
            await _wait_fd(fd, write=True)
            continue
        view = view[n:]


async def copy(src: int, dst: int) -> int:
    """Copy until EOF on ``src``; the number of bytes copied."""
    total = 0
    while data := await read_some(src):
        await write_all(dst, data)
        total += len(data)
    return total


class Attached:
    """Our ends of a :class:`FifoSet`, and the copies between them and our stdio."""

    def __init__(self, fifos: FifoSet) -> None:
        self.fifos = fifos
        self._fds: list[int] = []
        self._stdin = self._open(fifos.stdin, os.O_RDWR)
        self._stdout = self._open(fifos.stdout, os.O_RDONLY)
        self._stderr = self._open(fifos.stderr, os.O_RDONLY)
        self._out_tasks: list[asyncio.Task[int]] = []
        self._in_task: asyncio.Task[None] | None = None

    def _open(self, path: str, flags: int) -> int:
        if not path:
            return -1
        try:
            fd = os.open(path, flags | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as e:
            self.close()
            raise errors.Internal(f"open fifo {path}: {e.strerror or e}") from None
        self._fds.append(fd)
        return fd

    def start(
        self,
        stdin: int | None,
        stdout: int,
        stderr: int,
        on_stdin_eof: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """Begin copying (call after the shim opened its ends, i.e. after Create/Exec)."""
        if self._stdout >= 0:
            self._out_tasks.append(asyncio.create_task(copy(self._stdout, stdout), name="stdout"))
        if self._stderr >= 0:
            self._out_tasks.append(asyncio.create_task(copy(self._stderr, stderr), name="stderr"))
        if stdin is not None and self._stdin >= 0:
            self._in_task = asyncio.create_task(self._copy_in(stdin, on_stdin_eof), name="stdin")

    async def _copy_in(self, src: int, on_eof: Callable[[], Awaitable[None]] | None) -> None:
        try:
            await copy(src, self._stdin)
        except OSError as e:
            _log.debug("cio.stdin_failed", error=str(e))
        # Our end closes first (as containerd's cio does): a shim that reads the FIFO
        # (runc's) sees EOF once it closed its own writer on CloseIO.
        if self._stdin in self._fds:
            self._fds.remove(self._stdin)
            with contextlib.suppress(OSError):
                os.close(self._stdin)
            self._stdin = -1
        if on_eof is not None:
            await on_eof()

    async def wait(self, timeout: float | None = None) -> None:
        """Until the output copies reached EOF (the shim closed its ends), at most ``timeout``."""
        if not self._out_tasks:
            return
        done, pending = await asyncio.wait(self._out_tasks, timeout=timeout)
        for t in pending:
            t.cancel()
        for t in done:
            if not t.cancelled() and (e := t.exception()) is not None:
                _log.debug("cio.copy_failed", error=str(e))

    def close(self) -> None:
        for t in [*self._out_tasks, *([self._in_task] if self._in_task else [])]:
            t.cancel()
        for fd in self._fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._fds = []

    def __enter__(self) -> Attached:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


# -- terminals ---------------------------------------------------------------------


@contextlib.contextmanager
def raw_terminal(fd: int) -> Iterator[None]:
    """Our terminal in raw mode for the block (nothing when ``fd`` is not a terminal)."""
    if not os.isatty(fd):
        yield
        return
    saved = termios.tcgetattr(fd)
    tty.setraw(fd)
    try:
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def terminal_size(fd: int) -> tuple[int, int] | None:
    """(columns, rows) of the terminal on ``fd``, None when it is not one."""
    try:
        s = os.get_terminal_size(fd)
    except OSError:
        return None
    return s.columns, s.lines


__all__ = [
    "DEFAULT_FIFO_DIR",
    "DEFAULT_LOG_DIR",
    "FIFO_DIR_ENV",
    "LOG_DIR_ENV",
    "Attached",
    "FifoSet",
    "copy",
    "fifo_root",
    "log_dir",
    "log_path",
    "log_uri",
    "new_fifo_set",
    "raw_terminal",
    "read_some",
    "terminal_size",
    "write_all",
]
