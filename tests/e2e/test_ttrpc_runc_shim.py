"""seacan.ttrpc's client against an independent peer: Debian's real
containerd-shim-runc-v2 (Go ttrpc), started the way containerd starts it.

The runc shim hard-codes its socket directory, ``/run/containerd/s/``; the
socket name is sha256(<address>/<namespace>/<id>), so a namespace derived from
the test id keeps it private. The test kills the shim by PID and removes its
socket whatever happens.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from google.protobuf import empty_pb2

from seacan import errors, ttrpc
from seacan.api.runtime.task.v2 import shim_pb2 as pb

pytestmark = pytest.mark.e2e

SHIM = Path("/usr/bin/containerd-shim-runc-v2")
SOCKET_DIR = Path("/run/containerd/s")
TASK = "containerd.task.v2.Task"


@dataclass
class Shim:
    address: str  # unix:///run/containerd/s/<hash>
    pid: int  # the peer of its socket: the long-running shim, not the `start` process


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def shim_pid(ns: str) -> int | None:
    """The long-running shim of namespace ``ns`` (unique to this test).

    The socket's SO_PEERCRED would name the `start` process that bound it and
    has exited; so look for the re-executed shim's argv.
    """
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if (
            argv[0] == bytes(SHIM)
            and b"start" not in argv
            and argv[1:3] == [b"-namespace", ns.encode()]
        ):
            return int(proc.name)
    return None


def kill_shim(sock: Path, ns: str) -> None:
    pid = shim_pid(ns)
    if pid and alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.02)
    with contextlib.suppress(FileNotFoundError):
        sock.unlink()


@pytest.fixture
def runc_shim(request: pytest.FixtureRequest) -> Iterator[Shim]:
    if not SHIM.exists():
        pytest.skip(f"needs {SHIM} (Debian package containerd)")
    tag = hashlib.sha256(request.node.nodeid.encode()).hexdigest()[:10]
    ns, task_id = f"sc-ttrpc-{tag}", "t1"
    with tempfile.TemporaryDirectory(prefix="sc-", dir="/tmp") as tmp:
        fake_containerd = f"{tmp}/containerd.sock"  # nothing listens here
        sock = SOCKET_DIR / hashlib.sha256(f"{fake_containerd}/{ns}/{task_id}".encode()).hexdigest()
        kill_shim(sock, ns)  # a crashed earlier run must not be reused
        bundle = Path(tmp, "bundle")
        (bundle / "rootfs").mkdir(parents=True)
        spec = {
            "ociVersion": "1.0.2",
            "process": {"args": ["/bin/true"], "cwd": "/"},
            "root": {"path": "rootfs"},
            "linux": {"namespaces": [{"type": "mount"}]},
        }
        (bundle / "config.json").write_text(json.dumps(spec))
        # The shim writes its log to the bundle's `log` FIFO; hold it open as
        # containerd does (O_RDWR | O_NONBLOCK) so the shim never blocks on it.
        os.mkfifo(bundle / "log")
        log_fd = os.open(bundle / "log", os.O_RDWR | os.O_NONBLOCK)
        try:
            out = subprocess.run(
                [str(SHIM), "-namespace", ns, "-address", fake_containerd,
                 "-publish-binary", "/bin/true", "-id", task_id, "start"],
                cwd=bundle,
                env={**os.environ, "TTRPC_ADDRESS": f"{fake_containerd}.ttrpc"},
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=20,
                check=False,
            )  # fmt: skip
            assert out.returncode == 0, out.stderr.decode()
            address = out.stdout.decode().strip()
            assert address == f"unix://{sock}"
            pid = shim_pid(ns)
            assert pid is not None and alive(pid)
            yield Shim(address, pid)
        finally:
            kill_shim(sock, ns)
            os.close(log_fd)


def test_real_runc_shim_answers_our_client(runc_shim: Shim) -> None:
    async def main() -> None:
        async with await ttrpc.Client.connect(runc_shim.address, timeout=5) as client:
            conn = await client.call(
                TASK, "Connect", pb.ConnectRequest(id="t1"), pb.ConnectResponse, timeout=5
            )
            assert conn.shim_pid == runc_shim.pid
            assert alive(conn.shim_pid)
            assert conn.task_pid == 0  # no task was created
            # containerd 1.6's runc shim leaves `version` empty (later ones set it).

            # Concurrent calls on one connection, answered by a Go ttrpc server.
            many = await asyncio.gather(
                *(
                    client.call(TASK, "Connect", pb.ConnectRequest(id="t1"), pb.ConnectResponse)
                    for _ in range(20)
                )
            )
            assert {m.shim_pid for m in many} == {runc_shim.pid}

            # errdefs.ErrNotFound travels as NOT_FOUND and comes back as our kind.
            with pytest.raises(errors.NotFound) as nf:
                await client.call(
                    TASK, "State", pb.StateRequest(id="nope"), pb.StateResponse, timeout=5
                )
            assert "not created" in nf.value.message or "not found" in nf.value.message

            # Go ttrpc's wording for what it does not serve.
            with pytest.raises(errors.NotImplemented_, match=r"^method Bogus$"):
                await client.call(TASK, "Bogus", pb.StateRequest(), pb.StateResponse)
            with pytest.raises(errors.NotImplemented_, match=r"^service x\.Nope$"):
                await client.call("x.Nope", "State", pb.StateRequest(), pb.StateResponse)

            # Shutdown may answer or just close the connection (containerd
            # ignores ttrpc.ErrClosed here too).
            with contextlib.suppress(errors.Unavailable):
                await client.call(
                    TASK,
                    "Shutdown",
                    pb.ShutdownRequest(id="t1", now=True),
                    empty_pb2.Empty,
                    timeout=5,
                )

        deadline = time.monotonic() + 10
        while alive(runc_shim.pid) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert not alive(runc_shim.pid), "the shim did not exit on Shutdown"
        sock = Path(runc_shim.address.removeprefix("unix://"))
        assert not sock.exists(), "the shim left its socket behind"

    asyncio.run(main())
