"""Containers that run: the real ``ctr`` drives tasks through seacand.

ctr's default runtime is ``io.containerd.runc.v2``, so these tests run
containers through Debian's own ``containerd-shim-runc-v2`` (an independent
shim speaking the shim v2 contract) under seacand's Tasks service: real
runc, real overlayfs, real namespaces. Every test uses a namespace of its
own and removes its containers; the runc shim keeps its sockets under
``/run/containerd/s`` (hard-coded by that shim), keyed by our namespace.
"""

from __future__ import annotations

import contextlib
import os
import pty
import re
import select
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures import daemon as dm
from tests.fixtures import images as im

pytestmark = pytest.mark.e2e

IMAGE = im.BUSYBOX_NAME
RUNC_SHIM_ROOT = Path("/run/containerd/runc")


def tasks(d: dm.Daemon, ns: str) -> dict[str, dict[str, str]]:
    return {row["TASK"]: row for row in dm.table(d.ctr_ok("tasks", "ls", ns=ns))}


def wait_status(
    d: dm.Daemon, ns: str, cid: str, status: str, timeout: float = 15
) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    row: dict[str, str] = {}
    while time.monotonic() < deadline:
        row = tasks(d, ns).get(cid, {})
        if row.get("STATUS") == status:
            return row
        time.sleep(0.1)
    raise AssertionError(f"task {cid} never reached {status}: {row}")


@contextlib.contextmanager
def cleanup(d: dm.Daemon, ns: str) -> Iterator[None]:
    """Remove every task and container of ``ns``, even when the test failed."""
    try:
        yield
    finally:
        for row in dm.table(d.run_ctr("tasks", "ls", ns=ns).stdout):
            d.run_ctr("tasks", "kill", "-s", "SIGKILL", row["TASK"], ns=ns)
        for row in dm.table(d.run_ctr("containers", "ls", ns=ns).stdout):
            cid = row["CONTAINER"]
            d.run_ctr("tasks", "rm", "-f", cid, ns=ns)
            d.run_ctr("containers", "rm", cid, ns=ns)
        # the runc shim's own state directory for our namespace (empty by now)
        with contextlib.suppress(OSError):
            (RUNC_SHIM_ROOT / ns).rmdir()


@pytest.fixture
def ready(seacand_module: dm.Seacand, ns: str, busybox_oci: im.Archive) -> Iterator[dm.Seacand]:
    seacand_module.ctr_ok("images", "import", busybox_oci.path, ns=ns)
    with cleanup(seacand_module, ns):
        yield seacand_module


RUNTIMES = ["io.containerd.runc.v2", "io.containerd.seacan.v2"]


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_run_rm_prints_and_exits(ready: dm.Seacand, ns: str, runtime: str) -> None:
    rt = ("--runtime", runtime)
    r = ready.run_ctr("run", *rt, "--rm", IMAGE, "hello1", "echo", "hello", ns=ns)
    assert r.returncode == 0, dm.describe(r)
    assert r.stdout == "hello\n"
    r = ready.run_ctr("run", *rt, "--rm", IMAGE, "exit3", "sh", "-c", "exit 3", ns=ns)
    assert r.returncode == 3, dm.describe(r)
    # --rm leaves nothing behind
    assert tasks(ready, ns) == {}
    assert dm.table(ready.ctr_ok("containers", "ls", ns=ns)) == []
    snaps = ready.snapshots(ns)
    assert "hello1" not in snaps and "exit3" not in snaps


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_detached_lifecycle(ready: dm.Seacand, ns: str, runtime: str) -> None:
    ready.ctr_ok("run", "--runtime", runtime, "-d", IMAGE, "d1", "sleep", "1000", ns=ns)
    row = wait_status(ready, ns, "d1", "RUNNING")
    pid = int(row["PID"])
    assert Path(f"/proc/{pid}").exists()

    ps = dm.table(ready.ctr_ok("tasks", "ps", "d1", ns=ns))
    assert [int(p["PID"]) for p in ps] == [pid]

    out = ready.ctr_ok(
        "tasks", "exec", "--exec-id", "e1", "d1", "sh", "-c", "echo hi; id -u", ns=ns
    )
    assert out == "hi\n0\n"

    metrics = ready.ctr_ok("tasks", "metrics", "d1", ns=ns)
    assert re.search(r"memory\.usage_in_bytes\s+\d+", metrics), metrics
    assert re.search(r"pids\.current\s+[1-9]", metrics), metrics

    ready.ctr_ok("tasks", "pause", "d1", ns=ns)
    assert tasks(ready, ns)["d1"]["STATUS"] == "PAUSED"
    ready.ctr_ok("tasks", "resume", "d1", ns=ns)
    assert tasks(ready, ns)["d1"]["STATUS"] == "RUNNING"

    # a running task cannot be removed
    r = ready.run_ctr("tasks", "rm", "d1", ns=ns)
    assert r.returncode != 0 and "running" in r.stderr, dm.describe(r)

    ready.ctr_ok("tasks", "kill", "-s", "SIGKILL", "d1", ns=ns)
    wait_status(ready, ns, "d1", "STOPPED")
    r = ready.run_ctr("tasks", "rm", "d1", ns=ns)
    assert r.returncode == 0, dm.describe(r)
    assert "exit code 137" in r.stderr
    ready.ctr_ok("containers", "rm", "d1", ns=ns)
    assert not Path(f"/proc/{pid}").exists()


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_events_in_order(ready: dm.Seacand, ns: str, runtime: str) -> None:
    ev = subprocess.Popen(
        ready.ctr_argv("events", ns=ns), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        time.sleep(0.5)
        ready.ctr_ok("run", "--runtime", runtime, "--rm", IMAGE, "ev1", "true", ns=ns)
        time.sleep(1.0)
    finally:
        ev.terminate()
        out, _ = ev.communicate(timeout=10)
    topics = re.findall(r" (/(?:tasks|containers)/\S+) ", out)
    assert topics == [
        "/containers/create",
        "/tasks/create",
        "/tasks/start",
        "/tasks/exit",
        "/tasks/delete",
        "/containers/delete",
    ], out


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_run_with_terminal(ready: dm.Seacand, ns: str, runtime: str) -> None:
    master, slave = pty.openpty()
    try:
        argv = ready.ctr_argv(
            "run",
            "--runtime",
            runtime,
            "-t",
            "--rm",
            IMAGE,
            "tty1",
            "sh",
            "-c",
            "tty; echo x",
            ns=ns,
        )
        p = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
        os.close(slave)
        slave = -1
        out = b""
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            r, _, _ = select.select([master], [], [], 0.5)
            if r:
                try:
                    chunk = os.read(master, 4096)
                except OSError:
                    break
                if not chunk:
                    break
                out += chunk
            elif p.poll() is not None:
                break
        assert p.wait(10) == 0, out
        text = out.decode(errors="replace")
        assert re.search(r"/dev/pts/\d+", text), text
        assert "\nx" in text.replace("\r", "")
    finally:
        os.close(master)
        if slave >= 0:
            os.close(slave)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_restart_keeps_containers(
    seacand: dm.Seacand, ns: str, busybox_oci: im.Archive, tmp_path: Path, runtime: str
) -> None:
    """20 running containers survive kill -9 of seacand; one that exits meanwhile reports 7."""
    d = seacand
    d.ctr_ok("images", "import", busybox_oci.path, ns=ns)
    with cleanup(d, ns):
        names = [f"r{i}" for i in range(20)]
        for name in names:
            log = tmp_path / f"{name}.log"
            d.ctr_ok(
                "run", "--runtime", runtime, "-d", "--log-uri", f"file://{log}", IMAGE, name,
                "sh", "-c", f"echo before-{name}; sleep 4; echo after-{name}; sleep 1000",
                ns=ns,
            )  # fmt: skip
        d.ctr_ok(
            "run",
            "--runtime",
            runtime,
            "-d",
            IMAGE,
            "quitter",
            "sh",
            "-c",
            "sleep 2; exit 7",
            ns=ns,
        )
        before = {n: wait_status(d, ns, n, "RUNNING")["PID"] for n in names}

        d.kill9()
        time.sleep(3)  # "quitter" exits while the daemon is down
        d.start()

        after = tasks(d, ns)
        for n in names:
            assert after[n]["STATUS"] == "RUNNING", after[n]
            assert after[n]["PID"] == before[n], (n, before[n], after[n])
        wait_status(d, ns, "quitter", "STOPPED")
        r = d.run_ctr("tasks", "rm", "quitter", ns=ns)
        assert r.returncode == 0 and "exit code 7" in r.stderr, dm.describe(r)

        # output is still collected, before and after the restart
        deadline = time.monotonic() + 15
        for n in names:
            log = tmp_path / f"{n}.log"
            while f"after-{n}" not in log.read_text() and time.monotonic() < deadline:
                time.sleep(0.2)
            text = log.read_text()
            assert f"before-{n}" in text and f"after-{n}" in text, (n, text)

        # and the reconnected shims still obey
        d.ctr_ok("tasks", "kill", "-s", "SIGKILL", "r0", ns=ns)
        wait_status(d, ns, "r0", "STOPPED")


def _ppid(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])


def test_dead_shim_is_cleaned_up_on_restart(
    seacand: dm.Seacand, ns: str, busybox_oci: im.Archive
) -> None:
    """A shim that died while seacand was down: its task is deleted, its process gone."""
    d = seacand
    d.ctr_ok("images", "import", busybox_oci.path, ns=ns)
    with cleanup(d, ns):
        d.ctr_ok(
            "run",
            "--runtime",
            "io.containerd.seacan.v2",
            "-d",
            IMAGE,
            "orphan",
            "sleep",
            "1000",
            ns=ns,
        )
        pid = int(wait_status(d, ns, "orphan", "RUNNING")["PID"])
        shim = _ppid(pid)
        assert "seacan" in " ".join(dm.cmdline(shim)), dm.cmdline(shim)

        d.kill9()
        os.kill(shim, 9)
        d.start()

        deadline = time.monotonic() + 15
        while "orphan" in tasks(d, ns) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert "orphan" not in tasks(d, ns)
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not Path(f"/proc/{pid}").exists(), "the container outlived its cleaned-up shim"
        d.ctr_ok("containers", "rm", "orphan", ns=ns)
