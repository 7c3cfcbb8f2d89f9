"""The shim template: no grpcio, and a forked shim that serves and detaches."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
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


def _spares(tsock: str, not_pids: set[int]) -> set[int]:
    """Processes forked from the template at ``tsock`` (its command line) but the given ones."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in not_pids:
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if tsock.encode() in argv and _running(int(entry.name)):
            found.add(int(entry.name))
    return found


def _detached_spares(tsock: str, tpl: int, exclude: set[int]) -> set[int]:
    """The spares, once every one has left the template (a spare is forked twice
    to detach; until then the middle process also shows up, as the template's child)."""
    found = _spares(tsock, exclude)
    return found if all(_ppid(p) != tpl for p in found) else set()


def _until(check: Callable[[], bool], timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_a_spare_takes_each_request_and_a_dead_spare_is_replaced(tmp_path: Path) -> None:
    """The template keeps one shim forked ahead (a spare): a request gets it, the next spare
    is forked after; a spare killed meanwhile makes the template fork for the request; the
    spare dies with the template, the shims do not."""
    with tempfile.TemporaryDirectory(prefix="sc-tpl-", dir="/tmp") as short:
        tsock = os.path.join(short, "t.sock")
        tpl = subprocess.Popen(
            [sys.executable, "-m", "seacan.shims.template", "--socket", tsock],
            stdin=subprocess.DEVNULL,
        )
        shims: list[int] = []

        def request(n: int) -> int:
            ssock = os.path.join(short, f"shim{n}.sock")
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
                listener.bind(ssock)
                listener.listen(8)
                pid = template.request(tsock, listener.fileno(), ["-id", f"c{n}", "-namespace",
                                       "n"], "n", f"c{n}", cwd=str(tmp_path))  # fmt: skip
            shims.append(pid)
            _wait_socket(ssock)
            return pid

        try:
            _wait_socket(tsock)
            assert _until(lambda: len(_detached_spares(tsock, tpl.pid, {tpl.pid})) == 1), "no spare"
            (spare,) = _detached_spares(tsock, tpl.pid, {tpl.pid})
            assert _ppid(spare) != tpl.pid and os.getsid(spare) != os.getsid(tpl.pid)
            assert request(1) == spare  # the spare took it
            assert _until(lambda: len(_detached_spares(tsock, tpl.pid, {tpl.pid, *shims})) == 1), (
                "no next spare"
            )
            (spare2,) = _detached_spares(tsock, tpl.pid, {tpl.pid, *shims})
            os.kill(spare2, signal.SIGKILL)
            assert _until(lambda: not _running(spare2))
            shim2 = request(2)  # forked for the request
            assert shim2 != spare2 and _ppid(shim2) != tpl.pid
            assert _until(lambda: len(_detached_spares(tsock, tpl.pid, {tpl.pid, *shims})) == 1), (
                "no new spare"
            )
            (spare3,) = _detached_spares(tsock, tpl.pid, {tpl.pid, *shims})
            tpl.kill()
            tpl.wait(5)
            assert _until(lambda: not _running(spare3)), "the spare outlived the template"
            assert all(_running(s) for s in shims), "a shim died with the template"
        finally:
            if tpl.poll() is None:
                tpl.kill()
                tpl.wait(5)
            for pid in shims:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGTERM)
            assert _until(lambda: not any(_running(s) for s in shims)), "a shim ignored SIGTERM"
