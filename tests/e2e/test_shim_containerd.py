"""The real containerd (Debian 1.6) runs containers through seacan's shim.

``ctr run --runtime io.containerd.seacan.v2`` makes containerd look up
``containerd-shim-seacan-v2`` on its PATH: a wrapper in a private directory
that runs ``python -m seacan.shims.main`` from this tree. The shim's socket
directory and runc root are private too (``SEACAN_SHIM_SOCKET_DIR``,
``SEACAN_RUNC_ROOT``). Every shim, runc container and mount is removed after
the module, whatever happened.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures import daemon as dm
from tests.fixtures import images as im

pytestmark = pytest.mark.e2e


@pytest.fixture(autouse=True, scope="module")
def _no_cgroups_left() -> Iterator[None]:
    """runc leaves the per-namespace parent cgroup; remove it before and after."""
    dm.remove_cgroups(NS)
    yield
    assert not dm.remove_cgroups(NS), "cgroups still in use after the module"


RUNTIME = "io.containerd.seacan.v2"
NS = "shimtest"

WRAPPER = """#!/bin/sh
PYTHONPATH={repo}${{PYTHONPATH:+:$PYTHONPATH}}
export PYTHONPATH
exec {python} -m seacan.shims.main "$@"
"""


def shim_pids(address: Path) -> list[int]:
    """Serving (or starting) seacan shims that belong to the containerd at ``address``."""
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        argv = dm.cmdline(int(d.name))
        if "seacan.shims.main" in argv and str(address) in argv:
            out.append(int(d.name))
    return out


@pytest.fixture(scope="module")
def ctrd() -> Iterator[dm.Containerd]:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    d = dm.Containerd(key="shim-containerd")
    d.namespace = NS
    d.prepare()
    bindir = d.base / "bin"
    bindir.mkdir()
    wrapper = bindir / "containerd-shim-seacan-v2"
    wrapper.write_text(WRAPPER.format(repo=dm.REPO, python=sys.executable))
    wrapper.chmod(0o755)
    runc_root = d.base / "runc"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PATH", f"{bindir}:{os.environ.get('PATH', '/usr/bin:/bin')}")
        mp.setenv("SEACAN_SHIM_SOCKET_DIR", str(d.base / "s"))
        mp.setenv("SEACAN_RUNC_ROOT", str(runc_root))
        try:
            d.start()
            yield d
        finally:
            d.stop()
            for pid in shim_pids(d.address):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            ns_root = runc_root / NS
            if ns_root.exists():
                r = subprocess.run(
                    ["runc", "--root", str(ns_root), "list", "-q"], capture_output=True, text=True
                )
                for cid in r.stdout.split():
                    subprocess.run(
                        ["runc", "--root", str(ns_root), "delete", "--force", cid],
                        capture_output=True,
                    )
            left = d.cleanup()
            assert not left, f"mounts left behind: {left}"


@pytest.fixture(scope="module")
def image(ctrd: dm.Containerd) -> str:
    a = im.write_busybox_oci(ctrd.base / "busybox.tar")
    ctrd.ctr_ok("images", "import", a.path)
    return a.name


def tasks(d: dm.Containerd) -> dict[str, dict[str, str]]:
    return {row["TASK"]: row for row in dm.table(d.ctr_ok("tasks", "ls"))}


def wait_status(d: dm.Containerd, id: str, status: str, timeout: float = 10.0) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    row: dict[str, str] = {}
    while time.monotonic() < deadline:
        row = tasks(d).get(id, {})
        if row.get("STATUS") == status:
            return row
        time.sleep(0.05)
    raise AssertionError(f"task {id} not {status}: {row}\n{d.log_tail()}")


def remove(d: dm.Containerd, id: str) -> None:
    """Best-effort removal of a test's container (after a failure)."""
    if id not in d.ctr_ok("containers", "ls", "-q").split():
        return
    d.run_ctr("tasks", "kill", "-s", "SIGKILL", id)
    with contextlib.suppress(AssertionError):
        wait_status(d, id, "STOPPED", 5)
    d.run_ctr("tasks", "rm", "-f", id)
    d.run_ctr("containers", "rm", id)


def test_run_rm_prints_output(ctrd: dm.Containerd, image: str) -> None:
    r = ctrd.run_ctr("run", "--rm", "--runtime", RUNTIME, image, "rm1", "echo", "hello")
    assert r.returncode == 0, dm.describe(r) + ctrd.log_tail()
    assert r.stdout.strip() == "hello", dm.describe(r)
    assert "rm1" not in ctrd.ctr_ok("containers", "ls")
    assert not shim_pids(ctrd.address), "the shim did not exit after Shutdown"


def test_run_rm_exit_status(ctrd: dm.Containerd, image: str) -> None:
    r = ctrd.run_ctr("run", "--rm", "--runtime", RUNTIME, image, "rm3", "sh", "-c", "exit 3")
    assert r.returncode == 3, dm.describe(r) + ctrd.log_tail()


def test_detached_exec_kill_rm(ctrd: dm.Containerd, image: str) -> None:
    try:
        ctrd.ctr_ok("run", "-d", "--runtime", RUNTIME, image, "d1", "sleep", "1000")
        row = wait_status(ctrd, "d1", "RUNNING")
        assert int(row["PID"]) > 0
        r = ctrd.run_ctr("tasks", "exec", "--exec-id", "e1", "d1", "echo", "hi")
        assert r.returncode == 0 and r.stdout.strip() == "hi", dm.describe(r)
        r = ctrd.run_ctr("tasks", "exec", "--exec-id", "e2", "d1", "sh", "-c", "exit 5")
        assert r.returncode == 5, dm.describe(r)
        ps = ctrd.ctr_ok("tasks", "ps", "d1")
        assert row["PID"] in ps, ps
        ctrd.ctr_ok("tasks", "kill", "-s", "SIGKILL", "d1")
        wait_status(ctrd, "d1", "STOPPED")
        ctrd.ctr_ok("tasks", "rm", "d1")
        ctrd.ctr_ok("containers", "rm", "d1")
        assert "d1" not in tasks(ctrd)
    finally:
        remove(ctrd, "d1")


def test_pause_resume(ctrd: dm.Containerd, image: str) -> None:
    try:
        ctrd.ctr_ok("run", "-d", "--runtime", RUNTIME, image, "p1", "sleep", "1000")
        wait_status(ctrd, "p1", "RUNNING")
        ctrd.ctr_ok("tasks", "pause", "p1")
        wait_status(ctrd, "p1", "PAUSED")
        ctrd.ctr_ok("tasks", "resume", "p1")
        wait_status(ctrd, "p1", "RUNNING")
    finally:
        remove(ctrd, "p1")


def test_containerd_restart_keeps_task(ctrd: dm.Containerd, image: str) -> None:
    try:
        ctrd.ctr_ok("run", "-d", "--runtime", RUNTIME, image, "r1", "sleep", "1000")
        before = wait_status(ctrd, "r1", "RUNNING")
        ctrd.kill9()
        assert dm.alive(int(before["PID"])), "the container died with containerd"
        ctrd.start()
        after = wait_status(ctrd, "r1", "RUNNING")
        assert after["PID"] == before["PID"]
        ctrd.ctr_ok("tasks", "kill", "-s", "SIGKILL", "r1")
        wait_status(ctrd, "r1", "STOPPED")
        ctrd.ctr_ok("tasks", "rm", "r1")
        ctrd.ctr_ok("containers", "rm", "r1")
    finally:
        remove(ctrd, "r1")


def test_shim_never_imports_grpc() -> None:
    code = (
        "import sys, seacan.shims.main, seacan.shims.service, seacan.shims.task;"
        "print('grpc' in sys.modules)"
    )
    r = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=dm.env(), cwd=dm.REPO
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "False"


def test_events_in_order(ctrd: dm.Containerd, image: str) -> None:
    ev = subprocess.Popen(
        ctrd.ctr_argv("events"), stdout=subprocess.PIPE, text=True, env=dm.env(), cwd=dm.REPO
    )
    try:
        time.sleep(0.3)
        r = ctrd.run_ctr("run", "--rm", "--runtime", RUNTIME, image, "ev1", "true")
        assert r.returncode == 0, dm.describe(r)
        time.sleep(0.3)
    finally:
        ev.terminate()
        out, _ = ev.communicate(timeout=10)
    topics = [line.split()[5] for line in out.splitlines() if " ev1" in line or '"ev1"' in line]
    tasks_topics = [t for t in topics if t.startswith("/tasks/")]
    assert tasks_topics == ["/tasks/create", "/tasks/start", "/tasks/exit", "/tasks/delete"], out


def test_tty_with_resize(ctrd: dm.Containerd, image: str) -> None:
    import fcntl
    import pty
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 31, 97, 0, 0))
    try:
        argv = ctrd.ctr_argv(
            "run", "--rm", "-t", "--runtime", RUNTIME, image, "tty1",
            "sh", "-c", "tty; exit 4",
        )  # fmt: skip
        proc = subprocess.Popen(
            argv, stdin=slave, stdout=slave, stderr=slave, env=dm.env(), start_new_session=True
        )
        os.close(slave)
        slave = -1
        out = b""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
        code = proc.wait(30)
    finally:
        os.close(master)
        if slave >= 0:
            os.close(slave)
        remove(ctrd, "tty1")
    text = out.decode(errors="replace")
    # busybox-static's ``stty size`` fails even on a host pty, so the size is
    # checked in tests/unit/test_shim_stdio.py; here: a pty, output, exit status.
    assert "/dev/pts/" in text, text
    assert code == 4, text
