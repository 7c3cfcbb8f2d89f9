"""The shim template (a zygote): serving shims are forked from it, not exec'd.

python -m seacan.shims.template --socket PATH [--parent-pid PID]

The tasks service runs one template per daemon (``<state>/shim-template.sock``;
shims find it through ``SEACAN_SHIM_TEMPLATE``). It imports everything a
serving shim needs (protobuf, the generated messages, :mod:`seacan.ttrpc`,
``seacan.shims.*``), freezes the garbage collector's view of that heap, then
accepts requests in a plain blocking loop (no asyncio, no threads: forking
is only safe from a single-threaded process without an event loop).

A request, from ``containerd-shim-seacan-v2 start`` (:func:`request`), is one
``sendmsg``: a 4-byte big-endian length, a JSON header ``{"argv", "env",
"cwd", "namespace", "id"}``, and two descriptors with ``SCM_RIGHTS``: the
shim's bound listening socket and the write end of a result pipe. The
template forks; the child starts a new session and forks the serving shim,
sends ``{"pid": N}`` back on the connection and exits, so the shim is
reparented to init (or the nearest subreaper) and outlives the template.
The shim resets signals, environment and descriptors (the listener becomes
fd 3, as in a spawned shim), writes ``ready`` into the result pipe once it
serves, and runs :func:`seacan.shims.main.main` with a fresh event loop.

So that a request does not wait for the two forks and the reset (~10 ms of
copy-on-write faults), the template keeps one *spare*: a shim forked that way
ahead of time, detached and reset, blocked on a socket pair to the template.
A request is handed to the spare (the same header and descriptors, passed
on), the requester gets the spare's pid, and the next spare is forked once
no request came for :data:`SPARE_DELAY` (a request before that is forked
for, as without a spare). A spare whose template is gone sees EOF and exits; a spare that
cannot be reached makes the template fork for the request as above.

The template dies with its parent (PR_SET_PDEATHSIG); shims do not, as the
death signal is not inherited across fork. It never imports grpcio.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import json
import os
import select
import signal
import socket
import struct
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

# No collections while the shared heap is built: a collection frees objects
# and leaves holes in pages the shims would then fill (and so copy). Only in
# the template itself: the tasks service imports this module for request().
if __name__ == "__main__":
    gc.disable()

from seacan import log
from seacan.shims import main as shim_main

TEMPLATE_ENV = "SEACAN_SHIM_TEMPLATE"
PR_SET_PDEATHSIG = 1
HEADER = struct.Struct(">I")
MAX_HEADER = 1 << 20
REQUEST_TIMEOUT = 5.0
READY = b"ready\n"
SPARE_DELAY = 0.25  # seconds without a request before the next spare is forked

_log = log.get("seacan.shims.template")


# --- client side (the `start` process) -----------------------------------------


class TemplateError(Exception):
    """The template could not start a shim (the caller falls back to a spawn)."""


def _recv_exact(conn: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = conn.recv(n - len(buf))
        if not chunk:
            raise TemplateError("connection closed")
        buf += chunk
    return buf


def _read_reply(conn: socket.socket) -> dict[str, Any]:
    (size,) = HEADER.unpack(_recv_exact(conn, HEADER.size))
    if size > MAX_HEADER:
        raise TemplateError(f"reply too large ({size} bytes)")
    reply = json.loads(_recv_exact(conn, size))
    if not isinstance(reply, dict):
        raise TemplateError(f"bad reply {reply!r}")
    return reply


def _send(conn: socket.socket, obj: object, fds: Sequence[int] = ()) -> None:
    body = json.dumps(obj).encode()
    data = HEADER.pack(len(body)) + body
    sent = socket.send_fds(conn, [data], list(fds)) if fds else conn.send(data)
    if sent < len(data):
        conn.sendall(data[sent:])


def request(
    path: str,
    listener: int,
    argv: Sequence[str],
    namespace: str,
    id: str,
    timeout: float = REQUEST_TIMEOUT,
    *,
    env: dict[str, str] | None = None,
    cwd: str | None = None,
) -> int:
    """Have the template at ``path`` fork a serving shim on ``listener``; its pid once it serves.

    The shim gets ``env`` and ``cwd`` (default: this process's).

    Raises :class:`TemplateError` (or ``OSError``) when no shim was started;
    a shim that was forked but failed before serving is killed first.
    """
    r, w = os.pipe()
    pid = 0
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(timeout)
            conn.connect(path)
            header = {
                "argv": list(argv),
                "env": dict(os.environ) if env is None else env,
                "cwd": os.getcwd() if cwd is None else cwd,
                "namespace": namespace,
                "id": id,
            }
            _send(conn, header, [listener, w])
            os.close(w)
            w = -1
            reply = _read_reply(conn)
        if "error" in reply:
            raise TemplateError(str(reply["error"]))
        pid = int(reply["pid"])
        ready, _, _ = select.select([r], [], [], timeout)
        status = os.read(r, 64) if ready else b""
        if status != READY:
            raise TemplateError(f"shim {pid} did not start: {status.decode(errors='replace')!r}")
        return pid
    except BaseException:
        if pid > 0:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        raise
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)


# --- template side ------------------------------------------------------------------


def _die_with_parent(parent_pid: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if parent_pid and os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)


def _receive(conn: socket.socket) -> tuple[dict[str, Any], list[int]]:
    data, fds, _, _ = socket.recv_fds(conn, 65536, 4)
    try:
        if len(data) < HEADER.size:
            data += _recv_exact(conn, HEADER.size - len(data))
        (size,) = HEADER.unpack(data[: HEADER.size])
        if size > MAX_HEADER:
            raise TemplateError(f"request too large ({size} bytes)")
        body = data[HEADER.size :]
        if len(body) < size:
            body += _recv_exact(conn, size - len(body))
        header = json.loads(body)
        if not isinstance(header, dict) or not isinstance(header.get("argv"), list):
            raise TemplateError("bad request header")
        if len(fds) != 2:
            raise TemplateError(f"expected 2 descriptors, got {len(fds)}")
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise
    return header, fds


def _reset() -> None:
    """In the detached grandchild, before it knows its request: undo the template's setup."""
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a fresh interpreter
    signal.pthread_sigmask(signal.SIG_SETMASK, set())
    os.umask(0o022)
    gc.enable()  # the shared heap stays frozen (gc.freeze in serve)
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):  # stdin, stdout, stderr from /dev/null
        os.dup2(null, fd)
    if null > 2:
        os.close(null)


def _become_shim(header: dict[str, Any], listener: int, result: int) -> int:
    """In the detached grandchild, reset (:func:`_reset`): take the request's place, serve."""
    # Descriptors: the listener on fd 3, the result pipe kept, nothing else.
    if listener != shim_main.LISTEN_FD:  # it can be: a spare closed the template's sockets
        os.dup2(listener, shim_main.LISTEN_FD, inheritable=False)
    keep = 100
    os.dup2(result, keep, inheritable=False)
    os.closerange(shim_main.LISTEN_FD + 1, keep)
    os.closerange(keep + 1, 65536)
    result = keep
    os.environ.clear()
    os.environ.update({str(k): str(v) for k, v in dict(header.get("env", {})).items()})
    os.chdir(str(header.get("cwd", "/")))
    argv = [str(a) for a in header["argv"]]
    sys.argv = ["containerd-shim-seacan-v2", *argv]
    shim_main.on_serving = lambda: _signal_ready(result)
    return shim_main.main(argv)


def _signal_ready(fd: int) -> None:
    with contextlib.suppress(OSError):
        os.write(fd, READY)
        os.close(fd)


def _run_shim(header: dict[str, Any], listener: int, result: int) -> NoReturn:
    """In the detached grandchild, reset: serve as the request says, then exit."""
    code = 1
    try:
        code = _become_shim(header, listener, result)
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    except BaseException as e:
        with contextlib.suppress(Exception):
            _log.error("template.shim_failed", error=repr(e), exc_info=e)
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
    os._exit(code)


def _fork_detached(close: Sequence[socket.socket], report: socket.socket) -> bool:
    """Fork a grandchild in a session of its own, reparented away from the template.

    True in the grandchild (``close`` closed, :func:`_reset` done); False in
    the template once the intermediate has sent ``{"pid": N}`` on ``report``
    and exited. TemplateError when that failed.
    """
    child = os.fork()
    if child == 0:  # the intermediate: new session, fork, report, exit
        code, shim = 1, -1
        try:
            for s in close:
                s.close()
            os.setsid()
            shim = os.fork()
            if shim > 0:
                _send(report, {"pid": shim})
                code = 0
        finally:
            if shim != 0:
                os._exit(code)
        try:
            _reset()
        except BaseException:
            os._exit(1)
        return True
    _, status = os.waitpid(child, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise TemplateError(f"fork failed (status {status})")
    return False


def _fork_shim(
    conn: socket.socket, listen: socket.socket, header: dict[str, Any], listener: int, result: int
) -> None:
    """Fork a shim for this request (no spare took it); its pid goes to ``conn``."""
    if _fork_detached([listen], conn):
        conn.close()
        _run_shim(header, listener, result)


class Spare:
    """A shim forked ahead of its request, waiting on a socket pair (see the module doc)."""

    def __init__(self, listen: socket.socket) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            if _fork_detached([listen, ours], theirs):
                self._wait(theirs)
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        self.sock = ours
        self.sock.settimeout(REQUEST_TIMEOUT)
        self.pid = int(_read_reply(ours)["pid"])

    @staticmethod
    def _wait(sock: socket.socket) -> NoReturn:
        """In the spare: block until a request (or EOF: the template is gone), then serve it."""
        import asyncio  # loaded already (serving); not at module level: ``start`` imports us

        with contextlib.suppress(Exception):  # pay the copy-on-write faults of the start now
            shim_main.parse(["-id", "spare"])
            asyncio.new_event_loop().close()
        try:
            header, (listener, result) = _receive(sock)
        except BaseException:
            os._exit(0)
        sock.close()
        _run_shim(header, listener, result)

    def hand(self, header: dict[str, Any], listener: int, result: int) -> int:
        """Pass a request on; the spare's pid (it serves from now on)."""
        _send(self.sock, header, [listener, result])
        return self.pid

    def close(self) -> None:
        self.sock.close()


def serve(path: str) -> None:
    # Preload all a serving shim imports (not at module level: the light
    # ``start`` process imports this module for :func:`request`).
    from seacan.shims import serving  # noqa: F401

    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    listen = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listen.bind(path)
    os.chmod(path, 0o600)
    listen.listen(64)
    _log.info("template.serving", socket=path, pid=os.getpid())
    # Everything loaded so far is shared with the shims: keep the collector
    # from touching (and so copying) those pages in every child.
    gc.freeze()
    pid = os.getpid()
    spare: Spare | None = None
    try:
        while True:
            # The next spare once no request came for a while: not while the last shim
            # starts (and runs runc), which the forks would slow down on a busy host.
            if spare is None and not select.select([listen], [], [], SPARE_DELAY)[0]:
                spare = _new_spare(listen)
                continue
            conn, _ = listen.accept()
            with conn:
                conn.settimeout(REQUEST_TIMEOUT)
                try:
                    spent = _handle(conn, listen, spare)
                except (OSError, ValueError, TemplateError) as e:
                    spent = False
                    _log.warning("template.request_failed", error=repr(e))
                    with contextlib.suppress(OSError):
                        _send(conn, {"error": str(e)})
            if spare is not None and spent:
                spare.close()
                spare = None
    finally:
        if os.getpid() == pid:
            with contextlib.suppress(OSError):
                os.unlink(path)


def _new_spare(listen: socket.socket) -> Spare | None:
    try:
        return Spare(listen)
    except (OSError, ValueError, KeyError, TemplateError) as e:
        _log.warning("template.spare_failed", error=repr(e))
        return None


def _handle(conn: socket.socket, listen: socket.socket, spare: Spare | None) -> bool:
    """One request: to ``spare`` if it takes it, else to a shim forked now; whether ``spare``
    is spent (used, or found dead)."""
    header, (listener, result) = _receive(conn)
    try:
        if spare is not None:
            try:
                shim = spare.hand(header, listener, result)
            except OSError as e:  # the spare died: fork as if there were none
                _log.warning("template.spare_gone", pid=spare.pid, error=repr(e))
            else:
                _send(conn, {"pid": shim})
                return True
        _fork_shim(conn, listen, header, listener, result)
        return spare is not None
    finally:
        os.close(listener)
        os.close(result)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="seacan-shim-template")
    p.add_argument("--socket", required=True)
    p.add_argument("--parent-pid", type=int, default=0)
    p.add_argument("--log-level", default="info")
    a = p.parse_args(argv)
    _die_with_parent(a.parent_pid)
    log.configure(a.log_level)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with contextlib.suppress(KeyboardInterrupt):
        serve(a.socket)
    return 0


if __name__ == "__main__":
    sys.exit(main())
