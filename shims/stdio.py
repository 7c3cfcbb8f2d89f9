"""A process's stdio inside the shim: what runc gets, and the copying.

The client names each stream by a URI (containerd's ``cio``):

* a plain path or ``fifo://path``: a FIFO the client reads (or writes, for
  stdin). The process never gets the FIFO itself: it gets a pipe, and the
  shim copies between pipe and FIFO with asyncio. The shim opens each FIFO
  read-write, so opening never blocks and a writer never sees EPIPE when the
  client goes away (containerd's shim keeps a reader open for the same
  reason): a process survives its client.
* ``file:///path``: a log file, opened for appending and handed to the
  process directly (no copying).
* ``file:///path?format=cri``: a log file in the Kubernetes CRI format
  (:mod:`seacan.logformat`): the process gets a pipe, and the shim writes
  each line as ``TIME STREAM F|P TEXT``. (containerd's runc shim ignores the
  query and writes raw output.)
* empty: ``/dev/null``.

With a terminal, runc creates the pty inside the container and sends its
master over a Unix socket (``--console-socket``) with SCM_RIGHTS; the shim
copies master -> stdout and stdin -> master, and resizes with TIOCSWINSZ.

Stdin ends only with ``close_stdin`` (containerd's CloseIO): the shim closes
its end of the process's stdin pipe (or sends EOF, ^D, on a terminal).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import os
import shutil
import socket
import struct
import tempfile
import termios
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlparse

from seacan import errors, log, logformat
from seacan.shims.runc import Stdio

_log = log.get("seacan.shims.stdio")

_CHUNK = 32 << 10
CONSOLE_TIMEOUT = 30.0


@dataclass(frozen=True, slots=True)
class StdioPaths:
    """What the client asked for (kept to answer State)."""

    stdin: str = ""
    stdout: str = ""
    stderr: str = ""
    terminal: bool = False


def _kind(uri: str) -> tuple[str, str]:
    """``("", "")``, ``("fifo", path)``, ``("file", path)`` or ``("cri", path)``."""
    if not uri:
        return "", ""
    u = urlparse(uri)
    if u.scheme in ("", "fifo"):
        return "fifo", u.path if u.scheme else uri
    if u.scheme == "file":
        fmt = parse_qs(u.query).get("format", [logformat.FORMAT_RAW])[-1]
        if fmt == logformat.FORMAT_CRI:
            return "cri", u.path
        if fmt != logformat.FORMAT_RAW:
            raise errors.InvalidArgument(f"stdio log format {fmt!r} ({uri}): want cri or raw")
        return "file", u.path
    raise errors.NotImplemented_(f"stdio scheme {u.scheme!r} ({uri}) is not supported")


def _open_fifo(path: str) -> int:
    try:
        fd = os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as e:
        raise errors.NotFound(f"stdio fifo {path}: {e.strerror}") from e
    return fd


def _open_log(path: str) -> int:
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
    except OSError as e:
        raise errors.InvalidArgument(f"stdio log file {path}: {e.strerror}") from e


def _nonblock(fd: int) -> None:
    os.set_blocking(fd, False)


def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


async def _readable(fd: int) -> None:
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[None] = loop.create_future()
    loop.add_reader(fd, _wake, fut)
    try:
        await fut
    finally:
        loop.remove_reader(fd)


async def _writable(fd: int) -> None:
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[None] = loop.create_future()
    loop.add_writer(fd, _wake, fut)
    try:
        await fut
    finally:
        loop.remove_writer(fd)


async def read_some(fd: int) -> bytes:
    """Up to a chunk from a non-blocking fd; ``b""`` at EOF (EIO on a pty master is EOF)."""
    while True:
        try:
            return os.read(fd, _CHUNK)
        except BlockingIOError:
            await _readable(fd)
        except OSError as e:
            if e.errno == errno.EIO:
                return b""
            raise


async def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
        except BlockingIOError:
            await _writable(fd)
            continue
        view = view[n:]


async def copy(src: int, dst: int, what: str) -> None:
    """Copy until EOF on ``src``; a broken ``dst`` is dropped, ``src`` still drained."""
    broken = False
    try:
        while data := await read_some(src):
            if broken:
                continue
            try:
                await write_all(dst, data)
            except OSError as e:
                _log.warning("stdio.write_failed", stream=what, error=str(e))
                broken = True
    except OSError as e:
        _log.warning("stdio.read_failed", stream=what, error=str(e))


async def copy_cri(src: int, dst: int, stream: str) -> None:
    """Copy until EOF on ``src`` into the log ``dst``, as CRI records of ``stream``."""
    enc = logformat.Encoder(stream)
    broken = False

    async def put(data: bytes) -> None:
        nonlocal broken
        if broken or not data:
            return
        try:
            await write_all(dst, data)
        except OSError as e:
            _log.warning("stdio.write_failed", stream=stream, error=str(e))
            broken = True

    try:
        while data := await read_some(src):
            await put(enc.feed(data))
    except OSError as e:
        _log.warning("stdio.read_failed", stream=stream, error=str(e))
    await put(enc.flush())


class ProcessIO:
    """The stdio of one process: fds for runc, the copy tasks, the console.

    ``open`` -> pass ``runc_stdio`` (and ``console_socket``) to runc ->
    ``started`` (after runc returned) -> ... -> ``wait`` / ``close``.
    """

    def __init__(self, paths: StdioPaths) -> None:
        self.paths = paths
        self.runc_stdio = Stdio()
        self.console_socket: Path | None = None
        self._console_dir: str | None = None
        self._console_listener: socket.socket | None = None
        self._console_task: asyncio.Task[int] | None = None
        self.console: int | None = None
        self._give: list[int] = []  # fds runc inherits; closed once runc returned
        self._own: list[int] = []  # fds the shim keeps until close
        self._stdin_w: int | None = None
        self._stdin_task: asyncio.Task[None] | None = None
        self._out_tasks: list[asyncio.Task[None]] = []

    @classmethod
    def open(cls, paths: StdioPaths) -> ProcessIO:
        io = cls(paths)
        try:
            io._open()
        except BaseException:
            io.close()
            raise
        return io

    def _open(self) -> None:
        p = self.paths
        if p.terminal:
            self._console_dir = tempfile.mkdtemp(prefix="scs-", dir="/tmp")
            self.console_socket = Path(self._console_dir) / "c.sock"
            lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self._console_listener = lsock
            lsock.bind(str(self.console_socket))
            lsock.listen(1)
            lsock.setblocking(False)
            self._console_task = asyncio.create_task(self._receive_console())
            return
        stdin = self._input(p.stdin)
        stdout = self._output(p.stdout, "stdout")
        stderr = self._output(p.stderr, "stderr")
        self.runc_stdio = Stdio(stdin=stdin, stdout=stdout, stderr=stderr)

    def _input(self, uri: str) -> int | None:
        kind, path = _kind(uri)
        if kind == "":
            return None
        if kind != "fifo":
            raise errors.InvalidArgument(f"stdin must be a fifo, not {uri}")
        fifo = _open_fifo(path)
        self._own.append(fifo)
        r, w = os.pipe2(os.O_CLOEXEC)
        self._give.append(r)
        self._stdin_w = w
        self._own.append(w)
        _nonblock(w)
        self._stdin_task = asyncio.create_task(copy(fifo, w, "stdin"))
        return r

    def _output(self, uri: str, what: str) -> int | None:
        kind, path = _kind(uri)
        if kind == "":
            return None
        if kind == "file":
            fd = _open_log(path)
            self._give.append(fd)
            return fd
        if kind == "cri":
            logfd = _open_log(path)
            self._own.append(logfd)
            r, w = os.pipe2(os.O_CLOEXEC)
            self._give.append(w)
            self._own.append(r)
            _nonblock(r)
            self._out_tasks.append(asyncio.create_task(self._pump_cri(r, logfd, what)))
            return w
        fifo = _open_fifo(path)
        self._own.append(fifo)
        r, w = os.pipe2(os.O_CLOEXEC)
        self._give.append(w)
        self._own.append(r)
        _nonblock(r)
        self._out_tasks.append(asyncio.create_task(self._pump(r, fifo, what)))
        return w

    async def _pump(self, src: int, fifo: int, what: str) -> None:
        await copy(src, fifo, what)
        # EOF: close our FIFO end so the client sees EOF too.
        self._close_fd(fifo)

    async def _pump_cri(self, src: int, logfd: int, what: str) -> None:
        await copy_cri(src, logfd, what)
        self._close_fd(src)
        self._close_fd(logfd)

    async def _receive_console(self) -> int:
        assert self._console_listener is not None
        loop = asyncio.get_running_loop()
        conn, _ = await loop.sock_accept(self._console_listener)
        with conn:
            conn.setblocking(True)
            conn.settimeout(CONSOLE_TIMEOUT)
            _, fds, _, _ = await asyncio.to_thread(socket.recv_fds, conn, 4096, 1)
        if not fds:
            raise errors.Internal("console socket: runc sent no pty master")
        return fds[0]

    async def started(self) -> None:
        """After runc returned: drop runc's fds; with a terminal, start copying the pty."""
        for fd in list(self._give):
            self._close_fd(fd)
        if self._console_task is None:
            return
        try:
            async with asyncio.timeout(CONSOLE_TIMEOUT):
                master = await self._console_task
        except TimeoutError:
            raise errors.DeadlineExceeded("console socket: no pty master from runc") from None
        finally:
            self._close_console_listener()
        self.console = master
        self._own.append(master)
        _nonblock(master)
        p = self.paths
        kind, path = _kind(p.stdin)
        if kind == "fifo":
            fifo = _open_fifo(path)
            self._own.append(fifo)
            self._stdin_task = asyncio.create_task(copy(fifo, master, "stdin"))
        kind, path = _kind(p.stdout)
        if kind == "fifo":
            out = _open_fifo(path)
            self._own.append(out)
            self._out_tasks.append(asyncio.create_task(self._pump(master, out, "console")))
        elif kind == "file":
            out = _open_log(path)
            self._own.append(out)
            self._out_tasks.append(asyncio.create_task(copy(master, out, "console")))
        elif kind == "cri":
            out = _open_log(path)
            self._own.append(out)
            self._out_tasks.append(asyncio.create_task(copy_cri(master, out, "stdout")))
        else:
            self._out_tasks.append(asyncio.create_task(copy(master, -1, "console")))

    def resize(self, width: int, height: int) -> None:
        if self.console is None:
            raise errors.FailedPrecondition("process has no terminal")
        try:
            fcntl.ioctl(self.console, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))
        except OSError as e:
            raise errors.Internal(f"resize pty: {e.strerror}") from e

    def close_stdin(self) -> None:
        if self._stdin_task is not None:
            self._stdin_task.cancel()
            self._stdin_task = None
        if self.console is not None:
            with contextlib.suppress(OSError):
                os.write(self.console, b"\x04")
        if self._stdin_w is not None:
            self._close_fd(self._stdin_w)
            self._stdin_w = None

    async def wait(self, timeout: float) -> bool:
        """Until the output is copied (the process and its children closed it)."""
        if self._out_tasks:
            _, pending = await asyncio.wait(self._out_tasks, timeout=timeout)
            return not pending
        return True

    def close(self) -> None:
        self.close_stdin()
        for t in self._out_tasks:
            t.cancel()
        if self._console_task is not None and not self._console_task.done():
            self._console_task.cancel()
        self._close_console_listener()
        for fd in [*self._give, *self._own]:
            self._close_fd(fd)
        self._give.clear()
        self._own.clear()

    def _close_console_listener(self) -> None:
        if self._console_listener is not None:
            self._console_listener.close()
            self._console_listener = None
        if self._console_dir is not None:
            shutil.rmtree(self._console_dir, ignore_errors=True)
            self._console_dir = None

    def _close_fd(self, fd: int) -> None:
        """Close an fd this object owns (once: a number may be reused after)."""
        held = False
        for lst in (self._give, self._own):
            if fd in lst:
                lst.remove(fd)
                held = True
        if not held:
            return
        with contextlib.suppress(OSError, RuntimeError):
            loop = asyncio.get_running_loop()
            loop.remove_reader(fd)
            loop.remove_writer(fd)
        with contextlib.suppress(OSError):
            os.close(fd)
