"""The runc adapter against the real runc (root), plus its plumbing with fakes.

Each e2e test builds a busybox bundle in its own tmp dir, runs runc with a
private ``--root`` and a cgroup path of its own, and in a ``finally`` force-
deletes its containers and removes any cgroup directory runc left behind.
The timeout/cancel tests use a fake runtime binary (a Python script that
ignores SIGTERM) and need no root.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from seacan import errors
from seacan.shims import runc
from seacan.shims.runc import Runc, Stdio

T = TypeVar("T")
CGROUP_ROOT = Path("/sys/fs/cgroup")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


# --- bundles ------------------------------------------------------------------


def make_bundle(path: Path, args: list[str], cgroups_path: str) -> Path:
    rootfs = path / "rootfs"
    (rootfs / "bin").mkdir(parents=True)
    shutil.copy2("/bin/busybox", rootfs / "bin" / "busybox")
    for tool in ("sh", "sleep", "echo", "cat"):
        (rootfs / "bin" / tool).symlink_to("busybox")
    config = {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": False,
            "user": {"uid": 0, "gid": 0},
            "args": args,
            "env": ["PATH=/bin"],
            "cwd": "/",
        },
        "root": {"path": "rootfs", "readonly": False},
        "hostname": "sc",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {
                "destination": "/dev",
                "type": "tmpfs",
                "source": "tmpfs",
                "options": ["nosuid", "strictatime", "mode=755", "size=65536k"],
            },
        ],
        "linux": {
            "namespaces": [{"type": t} for t in ("pid", "mount", "ipc", "uts", "network")],
            "cgroupsPath": cgroups_path,
        },
    }
    (path / "config.json").write_text(json.dumps(config))
    return path


@dataclass
class Env:
    rt: Runc
    tmp: Path
    prefix: str  # container ids and cgroup paths start with it

    def bundle(self, name: str, args: list[str]) -> Path:
        return make_bundle(self.tmp / f"bundle-{name}", args, f"/{self.prefix}-{name}")

    def id(self, name: str) -> str:
        return f"{self.prefix}-{name}"


@pytest.fixture
def env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Env]:
    prefix = "sc-" + hashlib.sha256(request.node.nodeid.encode()).hexdigest()[:8]
    root = tmp_path / "runc-root"
    e = Env(Runc(root, tmp_path / "runc-log.json", timeout=20), tmp_path, prefix)
    try:
        yield e
    finally:
        if root.exists():
            for cid in os.listdir(root):
                subprocess.run(
                    ["runc", "--root", str(root), "delete", "--force", cid],
                    capture_output=True,
                    timeout=20,
                )
        for d in CGROUP_ROOT.glob(f"*/{prefix}-*"):
            with contextlib.suppress(OSError):
                d.rmdir()


def read_until(fd: int, want: bytes, timeout: float = 10.0) -> bytes:
    """Read ``fd`` until ``want`` shows up (or EOF); blocks, tests only."""
    data = b""
    deadline = time.monotonic() + timeout
    while want not in data:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            break
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        data += chunk
    return data


async def wait_status(rt: Runc, cid: str, status: str, timeout: float = 10.0) -> runc.State:
    deadline = time.monotonic() + timeout
    while True:
        st = await rt.state(cid)
        if st.status == status or time.monotonic() > deadline:
            return st
        await asyncio.sleep(0.05)


# --- e2e: real runc -------------------------------------------------------------


@pytest.mark.e2e
def test_lifecycle(env: Env) -> None:
    rt, cid = env.rt, env.id("life")
    bundle = env.bundle("life", ["sh", "-c", "echo started; exec sleep 1000"])

    async def main() -> None:
        r, w = os.pipe()
        try:
            pid = await rt.create(cid, bundle, pid_file=env.tmp / "init.pid", stdio=Stdio(stdout=w))
            os.close(w)
            w = -1
            st = await rt.state(cid)
            assert (st.id, st.status, st.pid) == (cid, "created", pid)
            assert pid > 0 and Path(st.bundle) == bundle
            assert st.created.tzinfo is not None

            await rt.start(cid)
            assert b"started" in read_until(r, b"started")
            assert (await rt.state(cid)).status == "running"
            assert [s.id for s in await rt.list()] == [cid]

            await rt.pause(cid)
            assert (await rt.state(cid)).status == "paused"
            await rt.resume(cid)
            assert (await rt.state(cid)).status == "running"

            assert await rt.ps(cid) == [pid]

            er, ew = os.pipe()
            try:
                spec = {
                    "args": ["echo", "hi"],
                    "cwd": "/",
                    "env": ["PATH=/bin"],
                    "user": {"uid": 0, "gid": 0},
                    "terminal": False,
                }
                epid = await rt.exec(
                    cid, spec, pid_file=env.tmp / "exec.pid", stdio=Stdio(stdout=ew)
                )
                os.close(ew)
                ew = -1
                assert epid > 0 and epid != pid
                assert read_until(er, b"\n", timeout=10) == b"hi\n"
            finally:
                os.close(er)
                if ew >= 0:
                    os.close(ew)

            stats = await rt.stats(cid)
            assert stats["memory"]["usage"]["usage"] > 0
            assert "cpu" in stats and "pids" in stats
            assert stats["pids"]["current"] >= 1

            await rt.update(cid, {"pids": {"limit": 64}})
            assert (await rt.stats(cid))["pids"]["limit"] == 64

            await rt.kill(cid, signal.SIGKILL)
            assert (await wait_status(rt, cid, "stopped")).status == "stopped"
            assert read_until(r, b"never") == b""  # the container's stdout closed
            await rt.delete(cid)
            with pytest.raises(errors.NotFound, match=cid):
                await rt.state(cid)
            assert await rt.list() == []
        finally:
            os.close(r)
            if w >= 0:
                os.close(w)

    run(main())


@pytest.mark.e2e
def test_errors(env: Env) -> None:
    rt, cid = env.rt, env.id("err")
    bundle = env.bundle("err", ["sleep", "1000"])

    async def main() -> None:
        ghost = env.id("ghost")
        with pytest.raises(errors.NotFound) as nf:
            await rt.start(ghost)
        assert ghost in str(nf.value) and "does not exist" in str(nf.value)
        with pytest.raises(errors.NotFound):
            await rt.kill(ghost, signal.SIGTERM)

        await rt.create(cid, bundle, pid_file=env.tmp / "a.pid")
        with pytest.raises(errors.AlreadyExists, match=cid):
            await rt.create(cid, bundle, pid_file=env.tmp / "b.pid")

        await rt.start(cid)
        with pytest.raises(errors.FailedPrecondition, match=cid):
            await rt.resume(cid)  # not paused
        with pytest.raises(errors.FailedPrecondition, match=cid):
            await rt.delete(cid)  # running, no force
        with pytest.raises(errors.FailedPrecondition, match=cid):
            await rt.start(cid)  # already running

        await rt.kill(cid, signal.SIGKILL)
        await wait_status(rt, cid, "stopped")
        with pytest.raises(errors.FailedPrecondition, match="not running"):
            await rt.kill(cid, signal.SIGKILL)
        await rt.delete(cid)

        other = env.id("force")
        await rt.create(other, env.bundle("force", ["sleep", "1000"]), pid_file=env.tmp / "c.pid")
        await rt.start(other)
        await rt.delete(other, force=True)
        with pytest.raises(errors.NotFound):
            await rt.state(other)

    run(main())


@pytest.mark.e2e
def test_exec_foreground_exit_status(env: Env) -> None:
    rt, cid = env.rt, env.id("fg")
    bundle = env.bundle("fg", ["sleep", "1000"])

    async def main() -> None:
        await rt.create(cid, bundle, pid_file=env.tmp / "init.pid")
        await rt.start(cid)
        spec = {
            "args": ["sh", "-c", "exit 3"],
            "cwd": "/",
            "env": ["PATH=/bin"],
            "user": {"uid": 0, "gid": 0},
        }
        code = await rt.exec(cid, spec, pid_file=env.tmp / "e.pid", detach=False)
        assert code == 3
        await rt.delete(cid, force=True)

    run(main())


# --- plumbing, with a fake runtime binary (no root) ------------------------------

FAKE = """#!{python}
import os, signal, sys, time
open({pidfile!r}, "w").write(str(os.getpid()))
signal.signal(signal.SIGTERM, signal.SIG_IGN if {ignore_term} else signal.SIG_DFL)
time.sleep(60)
"""


def fake_runtime(tmp: Path, ignore_term: bool) -> tuple[Runc, Path]:
    pidfile = tmp / "fake.pid"
    script = tmp / "fake-runc"
    script.write_text(
        FAKE.format(python=sys.executable, pidfile=str(pidfile), ignore_term=ignore_term)
    )
    script.chmod(0o755)
    return Runc(tmp / "root", tmp / "log.json", binary=str(script), timeout=0.5), pidfile


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.mark.unit
def test_timeout_terms_then_kills(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runc, "KILL_GRACE", 0.3)
    rt, pidfile = fake_runtime(tmp_path, ignore_term=True)
    t0 = time.monotonic()
    with pytest.raises(errors.DeadlineExceeded, match="c1: runc state timed out"):
        run(rt.state("c1"))
    assert time.monotonic() - t0 < 5
    assert gone(int(pidfile.read_text()))


@pytest.mark.unit
def test_cancel_stops_the_runtime(tmp_path: Path) -> None:
    rt, pidfile = fake_runtime(tmp_path, ignore_term=False)
    rt.timeout = 30

    async def main() -> None:
        task = asyncio.create_task(rt.start("c1"))
        while not pidfile.exists() or not pidfile.read_text():
            await asyncio.sleep(0.02)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run(main())
    assert gone(int(pidfile.read_text()))


@pytest.mark.unit
def test_missing_binary(tmp_path: Path) -> None:
    rt = Runc(tmp_path, tmp_path / "log.json", binary=str(tmp_path / "no-such-runc"))
    with pytest.raises(errors.Internal, match="no-such-runc"):
        run(rt.state("c1"))


@pytest.mark.unit
def test_log_error_after_offset(tmp_path: Path) -> None:
    log = tmp_path / "log.json"
    old = json.dumps({"level": "error", "msg": "old failure"}) + "\n"
    log.write_text(
        old
        + json.dumps({"level": "warning", "msg": "noise"})
        + "\nnot json\n"
        + json.dumps({"level": "error", "msg": " container does not exist \n"})
        + "\n"
        + json.dumps({"level": "info", "msg": "later"})
        + "\n"
    )
    assert runc.last_log_error(log, len(old)) == "container does not exist"
    assert runc.last_log_error(log, log.stat().st_size) == ""
    assert runc.last_log_error(tmp_path / "absent", 0) == ""


@pytest.mark.unit
@pytest.mark.parametrize(
    ("message", "kind"),
    [
        ("container does not exist", errors.NotFound),
        ('exec: "nope": executable file not found in $PATH', errors.NotFound),
        ("container with given ID already exists", errors.AlreadyExists),
        ("container not running", errors.FailedPrecondition),
        ("container not paused", errors.FailedPrecondition),
        ("cannot delete container c that is not stopped: running", errors.FailedPrecondition),
        ("cannot start an already running container", errors.FailedPrecondition),
        ("cannot allocate memory", errors.Internal),
        ("open /x/config.json: no such file or directory", errors.Internal),
    ],
)
def test_error_mapping(message: str, kind: type[errors.SeacanError]) -> None:
    e = runc.error_for("c1", "start", message)
    assert type(e) is kind
    assert str(e) == f"container c1: runc start: {message}"


@pytest.mark.unit
def test_state_parses_go_time() -> None:
    st = runc.State.from_json(
        {
            "id": "c",
            "pid": 7,
            "status": "running",
            "bundle": "/b",
            "created": "2024-05-06T07:08:09.123456789Z",
        }
    )
    assert st.created.microsecond == 123456 and st.created.utcoffset() is not None
