"""The shim's stdio copying, pty resize, exit statuses and reaper, without runc."""

from __future__ import annotations

import asyncio
import fcntl
import os
import pty
import signal
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest

from seacan.shims import stdio
from seacan.shims.main import Reaper, parse, socket_path
from seacan.shims.task import exit_code

pytestmark = pytest.mark.unit


def test_exit_code_of_wait_status() -> None:
    pid = os.fork()
    if pid == 0:
        os._exit(3)
    _, status = os.waitpid(pid, 0)
    assert exit_code(status) == 3
    pid = os.fork()
    if pid == 0:
        os.kill(os.getpid(), signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    assert exit_code(status) == 128 + 9


def test_copy_fifo_roundtrip(tmp_path: Path) -> None:
    fifo = tmp_path / "out"
    os.mkfifo(fifo)

    async def run() -> bytes:
        reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        io = stdio.ProcessIO.open(stdio.StdioPaths(stdout=str(fifo)))
        w = io.runc_stdio.stdout
        assert w is not None
        proc = await asyncio.create_subprocess_exec("sh", "-c", "echo hello", stdout=w)
        await proc.wait()
        await io.started()
        assert await io.wait(5)
        io.close()
        os.set_blocking(reader, True)
        data = os.read(reader, 100)
        assert os.read(reader, 100) == b""  # the shim closed its end: EOF for the client
        os.close(reader)
        return data

    assert asyncio.run(run()) == b"hello\n"


def test_resize_sets_the_window_size() -> None:
    master, slave = pty.openpty()
    try:
        io = stdio.ProcessIO(stdio.StdioPaths(terminal=True))
        io.console = master
        io.resize(97, 31)
        rows, cols, _, _ = struct.unpack("HHHH", fcntl.ioctl(slave, termios.TIOCGWINSZ, b"\0" * 8))
        assert (rows, cols) == (31, 97)
    finally:
        os.close(master)
        os.close(slave)


def test_reaper_serves_asyncio_and_reports_the_rest() -> None:
    seen: list[tuple[int, int]] = []

    async def run() -> tuple[int | None, int]:
        loop = asyncio.get_running_loop()
        reaper = Reaper(lambda pid, status: seen.append((pid, exit_code(status))))
        reaper.attach_loop(loop)
        asyncio.set_child_watcher(reaper)
        try:
            orphan = subprocess.Popen(["sh", "-c", "exit 7"])  # not asyncio's: reported
            proc = await asyncio.create_subprocess_exec("sh", "-c", "exit 5")
            code = await proc.wait()
            for _ in range(100):
                if seen:
                    break
                await asyncio.sleep(0.02)
            return code, orphan.pid
        finally:
            reaper.close()
            asyncio.set_child_watcher(None)

    code, orphan = asyncio.run(run())
    assert code == 5
    assert seen == [(orphan, 7)]


def test_flags_as_containerd_passes_them(monkeypatch: pytest.MonkeyPatch) -> None:
    argv = [
        "-namespace",
        "ns",
        "-address",
        "/a.sock",
        "-publish-binary",
        "/bin/c",
        "-id",
        "c1",
        "-debug",
        "start",
    ]
    args = parse(argv)
    assert (args.namespace, args.address, args.publish_binary, args.id) == (
        "ns",
        "/a.sock",
        "/bin/c",
        "c1",
    )
    assert args.debug and args.action == "start"
    monkeypatch.setenv("SEACAN_SHIM_SOCKET_DIR", "/tmp/x")
    p = socket_path("/a.sock", "ns", "c1")
    assert p.startswith("/tmp/x/") and len(p) == len("/tmp/x/") + 64
    assert socket_path("/a.sock", "ns", "c2") != p


def test_shim_module_never_imports_grpc() -> None:
    code = "import sys, seacan.shims.main; print('grpc' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "False"
