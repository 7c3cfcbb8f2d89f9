"""A shim killed while seacand runs: the task service cleans up as containerd does.

``kill -9`` of a running container's shim (seacan's own, and Debian's
``containerd-shim-runc-v2``) closes its ttrpc connection; the tasks service
then runs the shim binary's ``delete`` action (``runc delete --force``: the
container dies), publishes ``/tasks/exit`` (137, or the status the shim had
recorded) and keeps the task as stopped until it is deleted. A user sees the
container's process gone, ``seacan ps -a`` saying ``Exited (137)``, the exit
event in ``seacan events``, ``seacan rm`` working, and nothing left behind.
The events subscriber also sees ``/containers/delete`` from the containers
service.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from google.protobuf import any_pb2, empty_pb2

from seacan.api.services.events.v1 import events_pb2 as epb
from seacan.api.services.events.v1 import events_pb2_grpc
from tests.fixtures import daemon as dm
from tests.fixtures import images as im

pytestmark = pytest.mark.e2e

RUNTIMES = ("io.containerd.runc.v2", "io.containerd.seacan.v2")
CID = "victim"
WITHIN = 10.0  # seconds for the cleanup to show
STARTED: dict[int, str] = {}  # container PIDs this test started (killed at teardown if alive)


@pytest.fixture(params=RUNTIMES, ids=("runc", "seacan"))
def runtime(request: pytest.FixtureRequest) -> str:
    rt: str = request.param
    return rt


@pytest.fixture
def cli(
    seacand: dm.Seacand, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ns: str
) -> Iterator[dm.Seacand]:
    seacand.namespace = ns
    monkeypatch.setenv("SEACAN_FIFO_DIR", str(seacand.base / "fifo"))
    monkeypatch.setenv("SEACAN_LOG_DIR", str(tmp_path / "logs"))
    archive = tmp_path / "busybox.tar"
    im.write_busybox_oci(archive)
    seacand.seacan_ok("images", "import", archive)
    yield seacand
    for cid in seacand.run_seacan("ps", "-a", "-q").stdout.split():
        seacand.run_seacan("rm", "-f", cid)
    # A failed cleanup must not leave the container running: end it by PID.
    for pid, born in STARTED.items():
        if dm.alive(pid, born):
            os.kill(pid, signal.SIGKILL)
    dm.wait_gone(STARTED, 5)
    STARTED.clear()


class Events:
    """``seacan events`` in the background, its output in a file."""

    def __init__(self, d: dm.Seacand, out: Path) -> None:
        self.d, self.out = d, out
        with open(out, "wb") as f:
            self.proc = subprocess.Popen(
                d.seacan_argv("events"),
                stdout=f,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=dm.REPO,
                env=dm.env(),
            )

    def text(self) -> str:
        return self.out.read_text(errors="replace")

    def wait_subscribed(self) -> None:
        """Publish probes on the main socket until one shows: the subscription is live."""
        ch = grpc.insecure_channel(f"unix:{self.d.address}")
        try:
            stub = events_pb2_grpc.EventsStub(ch)
            event = any_pb2.Any(
                type_url="google.protobuf.Empty", value=empty_pb2.Empty().SerializeToString()
            )
            md = (("containerd-namespace", self.d.namespace),)
            deadline = time.monotonic() + WITHIN
            while "/seacan-test/probe" not in self.text():
                assert self.proc.poll() is None, self.text()
                assert time.monotonic() < deadline, f"seacan events never subscribed: {self.text()}"
                stub.Publish(
                    epb.PublishRequest(topic="/seacan-test/probe", event=event), metadata=md
                )
                time.sleep(0.2)
        finally:
            ch.close()

    def lines(self, topic: str) -> list[str]:
        return [ln for ln in self.text().splitlines() if f" {topic} " in ln]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def events(cli: dm.Seacand, tmp_path: Path) -> Iterator[Events]:
    ev = Events(cli, tmp_path / "events.log")
    try:
        ev.wait_subscribed()
        yield ev
    finally:
        ev.stop()


def until(what: str, check: Callable[[], object], timeout: float = WITHIN) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"not within {timeout:.0f}s: {what}"
        time.sleep(0.1)


def ppid(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])


def start_time(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]


def task_pid(d: dm.Seacand, cid: str) -> int:
    rows = {r["TASK"]: r for r in dm.table(d.ctr_ok("tasks", "ls"))}
    pid = int(rows[cid]["PID"])
    with contextlib.suppress(OSError):
        STARTED[pid] = start_time(pid)
    return pid


def status(d: dm.Seacand, cid: str) -> str:
    rows = {r["CONTAINER"]: r for r in dm.table(d.seacan_ok("ps", "-a"))}
    return rows.get(cid, {}).get("STATUS", "")


def kill_shim(shim: int, runtime: str) -> None:
    """SIGKILL ``shim`` (the parent of the container's init), after checking it is one."""
    argv = dm.cmdline(shim)
    if runtime == "io.containerd.runc.v2":
        assert argv[0].endswith("containerd-shim-runc-v2") and CID in argv, argv
    else:  # forked from the shim template, whose command line it keeps
        assert "seacan.shims.template" in argv, argv
    os.kill(shim, signal.SIGKILL)


def runc_state(d: dm.Seacand, runtime: str) -> Path:
    """Where the runtime's shim keeps runc state for this container."""
    if runtime == "io.containerd.runc.v2":
        return dm.RUNC_SHIM_ROOT / d.namespace / CID
    return d.state / "runc" / d.namespace / CID


def shim_socket(d: dm.Seacand, runtime: str) -> Path:
    name = hashlib.sha256(f"{d.address}/{d.namespace}/{CID}".encode()).hexdigest()
    base = Path("/run/containerd/s") if runtime == "io.containerd.runc.v2" else d.state / "s"
    return base / name


def leftovers(d: dm.Seacand, runtime: str) -> list[str]:
    left: list[str] = []
    for p in (
        runc_state(d, runtime),
        shim_socket(d, runtime),
        d.state / "tasks" / d.namespace / CID,
        d.root / "tasks" / d.namespace / CID,
    ):
        if p.exists() or p.is_symlink():
            left.append(str(p))
    for controller in dm.CGROUP_ROOT.iterdir():
        cg = controller / d.namespace / CID
        if cg.exists():
            left.append(str(cg))
    left += dm.mounts_under([d.root, d.state], d.mount_views())
    return left


def test_killed_shim_is_cleaned_up(cli: dm.Seacand, events: Events, runtime: str) -> None:
    d = cli
    out = d.seacan_ok(
        "run", "--runtime", runtime, "-d", "--network", "none", "--name", CID,
        "busybox", "sleep", "1000",
    )  # fmt: skip
    assert out.strip() == CID
    pid = task_pid(d, CID)
    born = start_time(pid)
    assert status(d, CID) == "Up"
    waiting = subprocess.Popen(
        d.seacan_argv("wait", CID), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL, cwd=dm.REPO, env=dm.env(), text=True,
    )  # fmt: skip
    time.sleep(1.0)  # let its Wait reach the shim

    shim = ppid(pid)
    kill_shim(shim, runtime)

    until("the container's process is gone", lambda: not dm.alive(pid, born))
    until("the shim is gone", lambda: not dm.alive(shim))
    until("ps -a shows Exited (137)", lambda: status(d, CID) == "Exited (137)")
    assert d.seacan_ok("wait", CID) == "137\n"
    out, _ = waiting.communicate(timeout=WITHIN)
    assert (waiting.returncode, out) == (0, "137\n"), "a Wait pending on the dead shim"
    until("/tasks/exit was delivered", lambda: events.lines("/tasks/exit"))
    (exit_line,) = events.lines("/tasks/exit")
    assert f'"container_id":"{CID}"' in exit_line.replace(" ", ""), exit_line
    assert '"exit_status":137' in exit_line.replace(" ", ""), exit_line
    # a dead task takes no orders, but says why
    r = d.run_seacan("exec", CID, "true")
    assert r.returncode != 0 and "shim died" in r.stderr, dm.describe(r)

    d.seacan_ok("rm", CID)
    assert d.seacan_ok("ps", "-a", "-q") == ""
    until("/containers/delete was delivered", lambda: events.lines("/containers/delete"))
    assert events.lines("/tasks/delete"), events.text()
    assert leftovers(d, runtime) == []


def test_exit_before_the_shim_died_is_kept(cli: dm.Seacand, events: Events, runtime: str) -> None:
    """A container that had exited (3) keeps that status when its shim dies, even
    across a restart of the tasks service; only ``rm`` ends the stopped task."""
    d = cli
    d.seacan_ok(
        "run", "--runtime", runtime, "-d", "--network", "none",
        "--name", CID, "busybox", "sh", "-c", "trap 'exit 3' TERM; while true; do sleep 0.1; done",
    )  # fmt: skip
    pid = task_pid(d, CID)
    shim = ppid(pid)
    d.seacan_ok("kill", "-s", "TERM", CID)
    until("the container exits (3)", lambda: status(d, CID) == "Exited (3)")
    kill_shim(shim, runtime)
    until("the shim is gone", lambda: not dm.alive(shim))
    until("the dead shim is noticed", lambda: len(events.lines("/tasks/exit")) >= 2)
    assert '"exit_status":3' in events.lines("/tasks/exit")[-1].replace(" ", "")
    assert status(d, CID) == "Exited (3)"
    assert d.seacan_ok("wait", CID) == "3\n"

    tasks_pid = d.services()["tasks"]
    os.kill(tasks_pid, signal.SIGKILL)
    d.wait_service("tasks", not_pid=tasks_pid)
    assert status(d, CID) == "Exited (3)"
    assert d.seacan_ok("wait", CID) == "3\n"

    d.seacan_ok("rm", CID)
    assert d.seacan_ok("ps", "-a", "-q") == ""
    assert leftovers(d, runtime) == []
