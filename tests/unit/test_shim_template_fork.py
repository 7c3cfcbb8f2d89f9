"""The shim template: no grpcio, and a forked shim that serves and detaches."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from seacan.shims import template

pytestmark = pytest.mark.unit


def test_template_never_imports_grpc() -> None:
    code = "import sys, seacan.shims.template; print('grpc' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "False"


def _wait_socket(path: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            try:
                s.connect(path)
                return
            except OSError:
                time.sleep(0.05)
    raise AssertionError(f"{path} never accepted")


def _ppid(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_forked_shim_serves_and_outlives_the_template(tmp_path: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="sc-tpl-", dir="/tmp") as short:
        tsock = os.path.join(short, "t.sock")
        ssock = os.path.join(short, "shim.sock")
        tpl = subprocess.Popen(
            [sys.executable, "-m", "seacan.shims.template", "--socket", tsock],
            stdin=subprocess.DEVNULL,
        )
        shim = 0
        try:
            _wait_socket(tsock)
            listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            listener.bind(ssock)
            listener.listen(8)
            cwd = os.getcwd()
            os.chdir(tmp_path)  # the "bundle": no log FIFO here, so logs go nowhere
            try:
                shim = template.request(
                    tsock, listener.fileno(), ["-id", "c1", "-namespace", "n"], "n", "c1"
                )
            finally:
                os.chdir(cwd)
                listener.close()
            assert shim > 0 and shim != tpl.pid
            assert _ppid(shim) != tpl.pid
            assert os.getsid(shim) != os.getsid(tpl.pid)
            tpl.kill()
            tpl.wait(5)
            _wait_socket(ssock)  # still serving with the template gone
            assert Path(f"/proc/{shim}").exists()
        finally:
            if tpl.poll() is None:
                tpl.kill()
                tpl.wait(5)
            if shim:
                os.kill(shim, signal.SIGTERM)
                deadline = time.monotonic() + 10
                while _running(shim) and time.monotonic() < deadline:
                    time.sleep(0.05)
                assert not _running(shim), "the shim ignored SIGTERM"
