"""The one module that runs the OCI runtime binary (runc, or crun by name).

Every call is ``asyncio.create_subprocess_exec`` with an argv list, never a
shell, under a timeout. A failed call raises a seacan error kind whose
message names the container and carries runc's own message: runc writes its
errors as JSON lines to ``--log <file> --log-format json`` and this module
reads the last ``error`` entry written during the call (falling back to the
tail of stderr). On timeout or cancellation the runtime gets SIGTERM, a
grace period, then SIGKILL; a killed ``create`` can leave a half-made
container behind, which ``delete(id, force=True)`` removes.

Mapping of runc's messages to kinds::

    "does not exist", "not found"                     NotFound
    "already exists"                                  AlreadyExists
    "not running", "not paused", "not stopped",
    "cannot ... running/paused/stopped/created"       FailedPrecondition
    anything else                                     Internal
    no answer within the timeout                      DeadlineExceeded

Stdio: ``create`` and ``exec`` hand already-open file descriptors to runc as
its stdin/stdout/stderr, which the container's process inherits. A stream
left as ``None`` is ``/dev/null``, never a pipe of ours: the container would
hold a pipe open for its whole life.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import json
import os
import re
import signal as signals
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from seacan import errors

DEFAULT_TIMEOUT = 30.0
KILL_GRACE = 2.0
_STDERR_TAIL = 2048

_FAILED_PRECONDITION = re.compile(
    r"not (running|paused|stopped|created)|cannot .*\b(running|paused|stopped|created)\b"
)


@dataclass(frozen=True, slots=True)
class State:
    """``runc state``: what the runtime knows of one container."""

    id: str
    pid: int
    status: str  # "created", "running", "paused", "stopped"
    bundle: str
    created: datetime

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> State:
        return cls(
            id=doc["id"],
            pid=int(doc.get("pid", 0)),
            status=doc["status"],
            bundle=doc.get("bundle", ""),
            created=_parse_time(doc["created"]),
        )


@dataclass(frozen=True, slots=True)
class Stdio:
    """Open file descriptors the runtime (and so the process) gets as fds 0, 1, 2."""

    stdin: int | None = None
    stdout: int | None = None
    stderr: int | None = None


def _parse_time(text: str) -> datetime:
    # Go writes RFC 3339 with nanoseconds; datetime keeps microseconds.
    m = re.fullmatch(r"(.*T\d\d:\d\d:\d\d)(\.\d+)?(.*)", text)
    if m is None:
        return datetime.fromisoformat(text)
    frac = (m.group(2) or "")[:7]
    return datetime.fromisoformat(m.group(1) + frac + m.group(3))


def error_for(container: str, command: str, message: str) -> errors.SeacanError:
    """The error kind for runc's ``message`` about ``container``."""
    text = f"container {container}: runc {command}: {message}"
    low = message.lower()
    if "does not exist" in low or "not found" in low:
        return errors.NotFound(text)
    if "already exists" in low:
        return errors.AlreadyExists(text)
    if _FAILED_PRECONDITION.search(low):
        return errors.FailedPrecondition(text)
    return errors.Internal(text)


def last_log_error(log: Path, offset: int) -> str:
    """The last error message runc wrote to its JSON ``log`` after ``offset``."""
    try:
        with log.open("rb") as f:
            f.seek(offset)
            data = f.read()
    except FileNotFoundError:
        return ""
    found = ""
    for line in data.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("level") in ("error", "fatal"):
            found = str(entry.get("msg", "")).strip()
    return found


class Runc:
    """An OCI runtime binary with its global options.

    ``root`` is the runtime's state directory (``--root``; private per test,
    per namespace in production); ``log`` receives its JSON log lines.
    """

    def __init__(
        self,
        root: Path,
        log: Path,
        *,
        binary: str = "runc",
        timeout: float = DEFAULT_TIMEOUT,
        systemd_cgroup: bool = False,
    ) -> None:
        self.root = Path(root)
        self.log = Path(log)
        self.binary = binary
        self.timeout = timeout
        self.systemd_cgroup = systemd_cgroup

    # --- lifecycle ------------------------------------------------------------

    async def create(
        self,
        id: str,
        bundle: Path,
        *,
        pid_file: Path,
        console_socket: Path | None = None,
        stdio: Stdio | None = None,
        no_pivot: bool = False,
    ) -> int:
        """``runc create`` (which always detaches); returns the init pid from ``pid_file``."""
        args = ["create", "--bundle", str(bundle), "--pid-file", str(pid_file)]
        if console_socket is not None:
            args += ["--console-socket", str(console_socket)]
        if no_pivot:
            args.append("--no-pivot")
        await self._run(id, [*args, id], stdio=stdio or Stdio())
        return _read_pid(id, pid_file)

    async def start(self, id: str) -> None:
        await self._run(id, ["start", id])

    async def state(self, id: str) -> State:
        out = await self._run(id, ["state", id])
        return State.from_json(self._json(id, "state", out))

    async def kill(self, id: str, signal: int, all: bool = False) -> None:
        args = ["kill", "--all"] if all else ["kill"]
        await self._run(id, [*args, id, str(int(signal))])

    async def delete(self, id: str, force: bool = False) -> None:
        args = ["delete", "--force"] if force else ["delete"]
        await self._run(id, [*args, id])

    async def exec(
        self,
        id: str,
        process_spec: dict[str, Any],
        *,
        pid_file: Path,
        console_socket: Path | None = None,
        detach: bool = True,
        stdio: Stdio | None = None,
    ) -> int:
        """``runc exec --process``: the new pid if ``detach``, else the process's exit status."""
        fd, spec_path = tempfile.mkstemp(prefix="runc-process-", suffix=".json")
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(process_spec, f)
            args = ["exec", "--process", spec_path, "--pid-file", str(pid_file)]
            if console_socket is not None:
                args += ["--console-socket", str(console_socket)]
            if detach:
                args.append("--detach")
                await self._run(id, [*args, id], stdio=stdio or Stdio())
                return _read_pid(id, pid_file)
            return await self._run_status(id, [*args, id], stdio or Stdio())
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(spec_path)

    async def pause(self, id: str) -> None:
        await self._run(id, ["pause", id])

    async def resume(self, id: str) -> None:
        await self._run(id, ["resume", id])

    # --- inspection and limits --------------------------------------------------

    async def ps(self, id: str) -> list[int]:
        out = await self._run(id, ["ps", "--format", "json", id])
        pids = self._json(id, "ps", out) or []
        return [int(p) for p in pids]

    async def update(self, id: str, resources: dict[str, Any]) -> None:
        """``runc update --resources -``: ``resources`` is an OCI ``linux.resources`` object."""
        await self._run(id, ["update", "--resources", "-", id], input=json.dumps(resources))

    async def stats(self, id: str) -> dict[str, Any]:
        """``runc events --stats``: the ``data`` object (cpu, memory, pids, blkio...)."""
        out = await self._run(id, ["events", "--stats", id])
        doc = self._json(id, "events", out)
        data = doc.get("data") if isinstance(doc, dict) else None
        if not isinstance(data, dict):
            raise errors.Internal(f"container {id}: runc events: no stats in {out[:200]!r}")
        return data

    async def list(self) -> builtins.list[State]:
        out = await self._run("*", ["list", "--format", "json"])
        return [State.from_json(d) for d in self._json("*", "list", out) or []]

    # --- running the binary ---------------------------------------------------

    def _argv(self, args: Sequence[str]) -> builtins.list[str]:
        argv = [self.binary, "--root", str(self.root), "--log", str(self.log)]
        argv += ["--log-format", "json"]
        if self.systemd_cgroup:
            argv.append("--systemd-cgroup")
        return [*argv, *args]

    async def _run(
        self,
        id: str,
        args: Sequence[str],
        *,
        stdio: Stdio | None = None,
        input: str | None = None,
    ) -> bytes:
        """Run one command to completion; its stdout (``b""`` when ``stdio`` is given)."""
        offset = _size(self.log)
        if stdio is not None:
            # The process inherits these streams: wait for runc only, never read them.
            proc = await self._spawn(
                id,
                args,
                stdin=_fd(stdio.stdin),
                stdout=_fd(stdio.stdout),
                stderr=_fd(stdio.stderr),
            )
            await self._wait(id, args[0], proc, proc.wait())
            out, err = b"", b""
        else:
            proc = await self._spawn(
                id,
                args,
                stdin=asyncio.subprocess.PIPE if input is not None else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            data = input.encode() if input is not None else None
            out, err = await self._wait(id, args[0], proc, proc.communicate(data))
        if proc.returncode != 0:
            raise self._failure(id, args[0], proc.returncode, err, offset)
        return out

    async def _run_status(self, id: str, args: Sequence[str], stdio: Stdio) -> int:
        """Run a foreground ``exec``: the process's exit status, unless runc itself failed."""
        offset = _size(self.log)
        proc = await self._spawn(
            id, args, stdin=_fd(stdio.stdin), stdout=_fd(stdio.stdout), stderr=_fd(stdio.stderr)
        )
        code: int = await self._wait(id, args[0], proc, proc.wait())
        if code != 0 and last_log_error(self.log, offset):
            raise self._failure(id, args[0], code, b"", offset)
        return code

    async def _spawn(
        self, id: str, args: Sequence[str], **streams: Any
    ) -> asyncio.subprocess.Process:
        try:
            return await asyncio.create_subprocess_exec(*self._argv(args), **streams)
        except OSError as e:
            raise errors.Internal(
                f"container {id}: cannot run OCI runtime {self.binary!r}: {e.strerror or e}"
            ) from e

    async def _wait(self, id: str, command: str, proc: asyncio.subprocess.Process, aw: Any) -> Any:
        """Await ``aw`` under the timeout; on timeout or cancel stop runc: TERM, grace, KILL."""
        try:
            async with asyncio.timeout(self.timeout):
                return await aw
        except TimeoutError:
            await _stop(proc)
            raise errors.DeadlineExceeded(
                f"container {id}: runc {command} timed out after {self.timeout:g}s"
            ) from None
        except asyncio.CancelledError:
            await _stop(proc)
            raise

    def _failure(
        self, id: str, command: str, code: int | None, stderr: bytes, offset: int
    ) -> errors.SeacanError:
        message = last_log_error(self.log, offset)
        if not message:
            tail = stderr[-_STDERR_TAIL:].decode(errors="replace").strip()
            message = tail.splitlines()[-1] if tail else f"exit status {code}"
        return error_for(id, command, message)

    @staticmethod
    def _json(id: str, command: str, out: bytes) -> Any:
        try:
            return json.loads(out)
        except ValueError:
            raise errors.Internal(
                f"container {id}: runc {command}: unreadable output {out[:200]!r}"
            ) from None


async def _stop(proc: asyncio.subprocess.Process) -> None:
    """SIGTERM, a grace period, then SIGKILL; reaps the process either way."""
    if proc.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signals.SIGTERM)
    try:
        await asyncio.shield(asyncio.wait_for(proc.wait(), KILL_GRACE))
        return
    except TimeoutError:
        pass
    with contextlib.suppress(ProcessLookupError):
        proc.kill()
    await asyncio.shield(proc.wait())


def _fd(fd: int | None) -> int:
    return asyncio.subprocess.DEVNULL if fd is None else fd


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _read_pid(id: str, pid_file: Path) -> int:
    try:
        return int(Path(pid_file).read_text().strip())
    except (OSError, ValueError) as e:
        raise errors.Internal(f"container {id}: cannot read pid file {pid_file}: {e}") from e
