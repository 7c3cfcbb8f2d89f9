"""The shim v2 contract from the daemon's side: the binary and its ttrpc service.

One module for the shim binary (``containerd-shim-<name>-<version>``)::

    binary = resolve_binary("io.containerd.runc.v2")       # PATH lookup
    address = await start(binary, bundle, cmdline, options)  # `start` prints it
    shim = await ShimClient.connect(address, namespace)     # ttrpc
    pid = (await shim.create(req)).pid
    resp = await delete(binary, bundle, cmdline)            # `delete`: cleanup

The runc shim hard-codes its socket root (``/run/containerd/s``) and runc
root; seacan's own shim follows the same contract.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import stat
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from google.protobuf.message import DecodeError, Message

from seacan import errors, log, ttrpc
from seacan.api.runtime.task.v2 import shim_pb2 as spb

from .bundle import Bundle

SERVICE = "containerd.task.v2.Task"
NAMESPACE_TTRPC_HEADER = "containerd-namespace-ttrpc"
START_TIMEOUT = 10.0
DELETE_TIMEOUT = 5.0
STATE_TIMEOUT = 2.0

R = TypeVar("R", bound=Message)

_log = log.get("seacan.tasks.shim")


SEACAN_SHIM = "containerd-shim-seacan-v2"  # seacan's own: started through its template


def binary_name(runtime: str) -> str:
    """``io.containerd.runc.v2`` → ``containerd-shim-runc-v2`` (containerd's rule)."""
    parts = runtime.split(".")
    if len(parts) < 2 or not all(parts[-2:]):
        raise errors.InvalidArgument(f"invalid runtime name {runtime}")
    return f"containerd-shim-{parts[-2]}-{parts[-1]}"


def resolve_binary(runtime: str) -> str:
    """An absolute path as is; else the shim binary next to this Python or on PATH.

    Next to this Python first: that is seacan's own shim of this very
    installation, not a wrapper on PATH (pyenv's shims exec bash twice).
    """
    if os.path.isabs(runtime):
        if os.access(runtime, os.X_OK):
            return runtime
        raise errors.NotFound(f"runtime {runtime!r} binary not installed: file does not exist")
    name = binary_name(runtime)
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if found is None:
        raise errors.NotFound(
            f"runtime {runtime!r} binary not installed {name!r}: file does not exist"
        )
    return found


@dataclass(frozen=True, slots=True)
class Cmdline:
    """What every shim invocation gets: the daemon's addresses and publish binary."""

    address: str  # the main gRPC socket
    ttrpc_address: str  # where shims forward events
    publish_binary: str
    # seacan's own shim keeps its socket and runc state under the daemon's
    # state directory (other shims ignore these variables).
    shim_env: tuple[tuple[str, str], ...] = ()

    def argv(self, binary: str, bundle: Bundle, action: str) -> list[str]:
        argv = [binary, "-namespace", bundle.namespace, "-address", self.address]
        argv += ["-publish-binary", self.publish_binary, "-id", bundle.id]
        if action == "delete":
            argv += ["-bundle", str(bundle.path)]
        return [*argv, action]

    def env(self) -> dict[str, str]:
        env = {**os.environ, "TTRPC_ADDRESS": self.ttrpc_address, "GOMAXPROCS": "2"}
        env.update(self.shim_env)
        return env


async def _run(
    argv: list[str], cwd: Path, env: dict[str, str], stdin: bytes, timeout: float
) -> tuple[bytes, bytes]:
    """Run a shim subcommand; non-zero exit raises with its output."""
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            cwd=cwd,
            env=env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
    except OSError as e:
        raise errors.NotFound(f"{argv[0]}: {e.strerror}") from e
    try:
        async with asyncio.timeout(timeout):
            out, err = await proc.communicate(stdin)
    except (TimeoutError, asyncio.CancelledError) as e:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGKILL)
        await proc.wait()
        if isinstance(e, asyncio.CancelledError):
            raise
        raise errors.DeadlineExceeded(f"{argv[0]} {argv[-1]}: timed out after {timeout}s") from e
    if proc.returncode != 0:
        text = (out + err).decode(errors="replace").strip()[-2000:]
        raise errors.Internal(f"{argv[0]} {argv[-1]}: exit status {proc.returncode}: {text}")
    return out, err


class ShimTemplate:
    """The shim template (``seacan.shims.template``) as a child of this service.

    Restarted when it dies; it dies with this process (PR_SET_PDEATHSIG),
    while the shims it forked are detached and keep running.
    """

    RESTART_DELAY = 0.2
    MAX_RESTART_DELAY = 5.0

    def __init__(self, socket: Path) -> None:
        self.socket = socket
        self.pid = 0
        self._task: asyncio.Task[None] | None = None
        self._proc: asyncio.subprocess.Process | None = None

    def env(self) -> tuple[str, str]:
        """The shims' ``SEACAN_SHIM_TEMPLATE`` entry."""
        return ("SEACAN_SHIM_TEMPLATE", str(self.socket))

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        argv = [sys.executable, "-m", "seacan.shims.template", "--socket", str(self.socket)]
        argv += ["--parent-pid", str(os.getpid())]
        delay = self.RESTART_DELAY
        while True:
            started = asyncio.get_running_loop().time()
            try:
                self._proc = await asyncio.create_subprocess_exec(
                    *argv, stdin=asyncio.subprocess.DEVNULL
                )
            except OSError as e:
                _log.error("shim_template.spawn_failed", error=str(e))
            else:
                self.pid = self._proc.pid
                _log.info("shim_template.started", pid=self.pid, socket=str(self.socket))
                code = await self._proc.wait()
                _log.warning("shim_template.exited", pid=self.pid, code=code)
            if asyncio.get_running_loop().time() - started > 10 * self.MAX_RESTART_DELAY:
                delay = self.RESTART_DELAY
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.MAX_RESTART_DELAY)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        proc = self._proc
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(2.0):
                    await proc.wait()
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()


def parse_address(out: bytes) -> str:
    """The address a shim printed: ``unix://...`` (1.6) or the 1.7 JSON bootstrap."""
    text = out.decode(errors="replace").strip()
    if text.startswith("{"):
        try:
            boot = json.loads(text)
        except ValueError as e:
            raise errors.Internal(f"shim start: bad bootstrap {text!r}") from e
        if int(boot.get("version", 2)) > 2:
            raise errors.Internal(f"shim start: unsupported bootstrap version {boot['version']}")
        if boot.get("protocol", "ttrpc") != "ttrpc":
            raise errors.Internal(f"shim start: unsupported protocol {boot['protocol']!r}")
        text = str(boot.get("address", ""))
    if not text:
        raise errors.Internal("shim start: no address printed")
    return text


async def start(
    binary: str, bundle: Bundle, cmdline: Cmdline, options: bytes, timeout: float = START_TIMEOUT
) -> str:
    """Run ``<shim> ... start`` in the bundle; the ttrpc address it printed.

    seacan's own shim is started without that process (~50 ms): this service
    asks the shim template to fork it, as ``start`` would.
    """
    if os.path.basename(binary) == SEACAN_SHIM:
        from seacan.shims.main import start_in_process

        address = await asyncio.to_thread(
            start_in_process, bundle.namespace, cmdline.address, cmdline.publish_binary,
            bundle.id, str(bundle.path), cmdline.env(),
        )  # fmt: skip
        if address is not None:
            return address
    out, _ = await _run(
        cmdline.argv(binary, bundle, "start"), bundle.path, cmdline.env(), options, timeout
    )
    return parse_address(out)


async def delete(
    binary: str, bundle: Bundle, cmdline: Cmdline, timeout: float = DELETE_TIMEOUT
) -> spb.DeleteResponse:
    """Run ``<shim> ... delete``: the shim cleans up after a dead instance of itself."""
    out, err = await _run(
        cmdline.argv(binary, bundle, "delete"), bundle.path, cmdline.env(), b"", timeout
    )
    if err.strip():
        _log.warning("shim.cleanup_warnings", task=bundle.id, stderr=err.decode(errors="replace"))
    resp = spb.DeleteResponse()
    try:
        resp.ParseFromString(out)
    except DecodeError as e:
        raise errors.Internal(f"{binary} delete: bad response: {e}") from e
    return resp


def remove_stale_socket(address: str) -> None:
    """Remove a dead shim's socket file that nothing listens on any more.

    seacan's shim removes its own in ``delete``; Debian's runc shim leaves
    ``/run/containerd/s/<hash>`` behind when it is killed.
    """
    path = address.removeprefix("unix://")
    if not path.startswith("/"):
        return  # abstract, or not a Unix socket
    try:
        if not stat.S_ISSOCK(os.lstat(path).st_mode):
            return
    except OSError:
        return
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        try:
            s.connect(path)
            return  # something serves there: not ours to remove
        except ConnectionRefusedError:
            pass
        except OSError:
            return
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
        _log.info("shim.socket_removed", path=path)


class ShimClient:
    """The ``containerd.task.v2.Task`` service of one shim, over ttrpc."""

    def __init__(self, client: ttrpc.Client, namespace: str) -> None:
        self._client = client
        self._md = {NAMESPACE_TTRPC_HEADER: namespace}

    @classmethod
    async def connect(cls, address: str, namespace: str, timeout: float = 5.0) -> ShimClient:
        return cls(await ttrpc.Client.connect(address, timeout=timeout), namespace)

    @property
    def closed(self) -> bool:
        return self._client.closed

    async def call(
        self, method: str, req: Message, resp: type[R], timeout: float | None = None
    ) -> R:
        return await self._client.call(
            SERVICE, method, req, resp, timeout=timeout, metadata=self._md
        )

    async def wait_closed(self) -> None:
        """Until the connection closes: our ``close``, or the shim going away."""
        await self._client.wait_closed()

    async def close(self) -> None:
        await self._client.close()


class LogReader:
    """Drains a bundle's ``log`` FIFO into our log, so a shim never blocks on it.

    Opened read-write and non-blocking (as containerd does), so it never sees
    EOF when a shim closes its end and a restarted shim can reopen it.
    """

    def __init__(self, bundle: Bundle) -> None:
        self._task_id = bundle.id
        self._fd = -1
        self._buf = b""
        with contextlib.suppress(OSError):
            self._fd = os.open(bundle.log_fifo, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
            asyncio.get_running_loop().add_reader(self._fd, self._read)

    def _read(self) -> None:
        try:
            data = os.read(self._fd, 65536)
        except BlockingIOError:
            return
        except OSError:
            self.close()
            return
        self._buf += data
        *lines, self._buf = self._buf.split(b"\n")
        for line in lines:
            if line.strip():
                _log.debug("shim.log", task=self._task_id, line=line.decode(errors="replace"))
        if len(self._buf) > 65536:
            self._buf = b""

    def close(self) -> None:
        if self._fd >= 0:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(self._fd)
            os.close(self._fd)
            self._fd = -1
