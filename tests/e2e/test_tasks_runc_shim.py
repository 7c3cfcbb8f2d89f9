"""The tasks service against Debian's real ``containerd-shim-runc-v2`` (root).

The tasks service runs as its own process (``python -m seacan.services.tasks``)
in a private root/state; container records come from a minimal fake
Containers server in this test process (Get only), so the test does not
depend on the rest of seacand. The runc shim hard-codes ``/run/containerd/s``
(sockets) and ``/run/containerd/runc/<ns>`` (runc root), so every test uses
its own namespace and cleans up by PID and by name: shims killed, runc
containers force-deleted, rootfs unmounted, sockets removed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import any_pb2

from seacan.api.services.containers.v1 import containers_pb2 as cpb
from seacan.api.services.containers.v1 import containers_pb2_grpc
from seacan.api.services.events.v1 import events_pb2 as epb
from seacan.api.services.events.v1 import events_pb2_grpc
from seacan.api.services.tasks.v1 import tasks_pb2 as pb
from seacan.api.services.tasks.v1 import tasks_pb2_grpc
from seacan.api.types import mount_pb2
from seacan.api.types.task import task_pb2 as tpb
from tests.fixtures import daemon as dm

pytestmark = pytest.mark.e2e


@pytest.fixture(autouse=True, scope="module")
def _no_cgroups_left() -> Iterator[None]:
    """runc leaves the per-namespace parent cgroup; remove it before and after."""
    dm.remove_cgroups("seacan-test")
    yield
    assert not dm.remove_cgroups("seacan-test"), "cgroups still in use after the module"


SHIM = Path("/usr/bin/containerd-shim-runc-v2")
RUNC = shutil.which("runc") or "/usr/sbin/runc"
SPEC_URL = "types.containerd.io/opencontainers/runtime-spec/1/Spec"
PROCESS_URL = "types.containerd.io/opencontainers/runtime-spec/1/Process"
TIMEOUT = 20.0


class FakeContainers(containers_pb2_grpc.ContainersServicer):
    def __init__(self) -> None:
        self.records: dict[tuple[str, str], Any] = {}

    def Get(self, request: Any, context: Any) -> Any:  # noqa: N802
        ns = dict(context.invocation_metadata()).get("containerd-namespace", "")
        c = self.records.get((ns, request.id))
        if c is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f'container "{request.id}": not found')
        return cpb.GetContainerResponse(container=c)


@dataclass
class Env:
    base: Path
    ns: str
    containers: FakeContainers
    proc: subprocess.Popen[bytes] | None = None
    ids: list[str] = field(default_factory=list)

    @property
    def root(self) -> Path:
        return self.base / "root"

    @property
    def state(self) -> Path:
        return self.base / "state"

    @property
    def address(self) -> Path:
        return self.state / "seacan.sock"

    @property
    def socket(self) -> Path:
        return self.state / "sockets" / "tasks.sock"

    def start(self) -> None:
        log = open(self.base / "tasks.log", "ab")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "seacan.services.tasks", "--root", str(self.root),
             "--state", str(self.state), "--address", str(self.address),
             "--log-level", "debug"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            cwd=dm.REPO, start_new_session=True,
        )  # fmt: skip
        log.close()
        deadline = time.monotonic() + TIMEOUT
        while dm.health_status(self.socket, timeout=1.0) != "SERVING":
            assert self.proc.poll() is None, self.log_tail()
            assert time.monotonic() < deadline, self.log_tail()
            time.sleep(0.05)

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def log_tail(self) -> str:
        return (self.base / "tasks.log").read_text(errors="replace")[-4000:]

    def rootfs(self) -> Path:
        rootfs = self.base / "busybox"
        if not rootfs.exists():
            (rootfs / "bin").mkdir(parents=True)
            shutil.copy2("/bin/busybox", rootfs / "bin" / "busybox")
            for tool in ("sh", "echo", "sleep", "cat", "true"):
                os.symlink("busybox", rootfs / "bin" / tool)
            for d in ("proc", "dev", "sys", "tmp", "etc"):
                (rootfs / d).mkdir()
        return rootfs

    def add_container(self, id: str, args: list[str]) -> None:
        spec_dir = self.base / f"spec-{id}"
        spec_dir.mkdir()
        subprocess.run([RUNC, "spec"], cwd=spec_dir, check=True)
        spec = json.loads((spec_dir / "config.json").read_text())
        spec["process"]["terminal"] = False
        spec["process"]["args"] = args
        spec["root"] = {"path": "rootfs", "readonly": False}
        spec["linux"]["cgroupsPath"] = f"/seacan-test/{self.ns}-{id}"
        self.containers.records[(self.ns, id)] = cpb.Container(
            id=id,
            runtime=cpb.Container.Runtime(name="io.containerd.runc.v2"),
            spec=any_pb2.Any(type_url=SPEC_URL, value=json.dumps(spec).encode()),
        )
        self.ids.append(id)

    def fifo(self, name: str) -> tuple[str, int]:
        path = self.base / name
        os.mkfifo(path)
        return str(path), os.open(path, os.O_RDONLY | os.O_NONBLOCK)

    def cleanup(self) -> None:
        self.stop()
        for pid in shim_pids(self.ns):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        runc_root = Path("/run/containerd/runc") / self.ns
        for id in self.ids:
            subprocess.run([RUNC, "--root", str(runc_root), "delete", "-f", id],
                           capture_output=True, check=False)  # fmt: skip
            sock = hashlib.sha256(f"{self.address}/{self.ns}/{id}".encode()).hexdigest()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(f"/run/containerd/s/{sock}")
            with contextlib.suppress(OSError):
                Path(f"/sys/fs/cgroup/memory/seacan-test/{self.ns}-{id}").rmdir()
        shutil.rmtree(runc_root, ignore_errors=True)
        dm.unmount_under(self.base)
        shutil.rmtree(self.base, ignore_errors=True)


def shim_pids(ns: str) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            argv = dm.cmdline(int(d.name))
            if argv and argv[0].endswith("containerd-shim-runc-v2") and ns in argv:
                out.append(int(d.name))
    return out


@pytest.fixture
def env(request: pytest.FixtureRequest) -> Iterator[Env]:
    if not SHIM.exists():
        pytest.skip(f"needs {SHIM}")
    base = dm.short_base(request.node.nodeid)
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    containers = FakeContainers()
    server = grpc.server(futures.ThreadPoolExecutor(4))
    containers_pb2_grpc.add_ContainersServicer_to_server(containers, server)
    e = Env(base, dm.namespace_for(request.node.name, "tk"), containers)
    e.socket.parent.mkdir(parents=True)
    server.add_insecure_port(f"unix:{e.state / 'sockets' / 'containers.sock'}")
    server.start()
    try:
        e.start()
        yield e
    except BaseException:
        print(e.log_tail())
        raise
    finally:
        if e.proc is not None and e.proc.poll() is None:
            print(e.log_tail())
        e.cleanup()
        server.stop(None)


@contextlib.contextmanager
def stubs(e: Env) -> Iterator[tuple[Any, Any, tuple[tuple[str, str], ...]]]:
    ch = grpc.insecure_channel(f"unix:{e.socket}")
    try:
        yield (
            tasks_pb2_grpc.TasksStub(ch),
            events_pb2_grpc.EventsStub(ch),
            (("containerd-namespace", e.ns),),
        )
    finally:
        ch.close()


def bind(rootfs: Path) -> list[Any]:
    return [mount_pb2.Mount(type="bind", source=str(rootfs), options=["rbind", "rw"])]


def read_all(fd: int, timeout: float = 5.0) -> bytes:
    """Read a FIFO until its writer closes it."""
    data = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            time.sleep(0.02)
            continue
        if not chunk and data:
            break
        data += chunk
        if not chunk:
            time.sleep(0.02)
    return data


class Collector:
    """Subscribe in a thread; collect envelopes."""

    def __init__(self, events: Any, md: Any, filters: list[str]) -> None:
        self.items: list[Any] = []
        self.call = events.Subscribe(epb.SubscribeRequest(filters=filters), metadata=md)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        with contextlib.suppress(grpc.RpcError):
            for env in self.call:
                self.items.append(env)

    def topics(self) -> list[str]:
        return [e.topic for e in self.items]

    def wait_for(self, topic: str, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while topic not in self.topics() and time.monotonic() < deadline:
            time.sleep(0.05)

    def close(self) -> None:
        self.call.cancel()


def test_run_rm_path(env: Env) -> None:
    """ctr run --rm: Create, Wait before Start, output, exit status, Delete, events."""
    env.add_container("c1", ["sh", "-c", "echo hello; exit 3"])
    out_path, out_fd = env.fifo("c1-stdout")
    err_path, err_fd = env.fifo("c1-stderr")
    with stubs(env) as (tasks, events, md):
        sub = Collector(events, md, [f"namespace=={env.ns}", 'topic~="/tasks/"'])
        time.sleep(0.2)
        created = tasks.Create(
            pb.CreateTaskRequest(
                container_id="c1", rootfs=bind(env.rootfs()), stdout=out_path, stderr=err_path
            ),
            metadata=md,
            timeout=TIMEOUT,
        )
        assert created.pid > 0
        waiting = tasks.Wait.future(pb.WaitRequest(container_id="c1"), metadata=md)
        time.sleep(0.1)
        assert tasks.Get(pb.GetRequest(container_id="c1"), metadata=md).process.status == (
            tpb.CREATED
        )
        tasks.Start(pb.StartRequest(container_id="c1"), metadata=md, timeout=TIMEOUT)
        assert waiting.result(timeout=TIMEOUT).exit_status == 3
        assert read_all(out_fd) == b"hello\n"
        got = tasks.Get(pb.GetRequest(container_id="c1"), metadata=md).process
        assert (got.status, got.exit_status, got.pid) == (tpb.STOPPED, 3, created.pid)
        deleted = tasks.Delete(pb.DeleteTaskRequest(container_id="c1"), metadata=md)
        assert deleted.exit_status == 3
        with pytest.raises(grpc.RpcError) as ei:
            tasks.Get(pb.GetRequest(container_id="c1"), metadata=md)
        assert ei.value.code() == grpc.StatusCode.NOT_FOUND
        assert "task c1 not found" in (ei.value.details() or "")
        sub.wait_for("/tasks/delete")
        sub.close()
        topics = [t for t in sub.topics() if t in ("/tasks/create", "/tasks/start",
                                                   "/tasks/exit", "/tasks/delete")]  # fmt: skip
        assert topics == ["/tasks/create", "/tasks/start", "/tasks/exit", "/tasks/delete"]
        assert sub.items[0].event.type_url == "containerd.events.TaskCreate"
        assert not (env.state / "tasks" / env.ns / "c1").exists()
        os.close(out_fd)
        os.close(err_fd)


def test_missing_container_and_runtime(env: Env) -> None:
    with stubs(env) as (tasks, _, md):
        with pytest.raises(grpc.RpcError) as ei:
            tasks.Create(pb.CreateTaskRequest(container_id="nope"), metadata=md)
        assert ei.value.code() == grpc.StatusCode.NOT_FOUND
        env.add_container("c2", ["true"])
        env.containers.records[(env.ns, "c2")].runtime.name = "io.containerd.nosuch.v9"
        with pytest.raises(grpc.RpcError) as ei:
            tasks.Create(pb.CreateTaskRequest(container_id="c2"), metadata=md)
        assert ei.value.code() == grpc.StatusCode.NOT_FOUND
        assert not (env.state / "tasks" / env.ns / "c2").exists()


def test_detached_exec_kill(env: Env) -> None:
    """ctr run -d, tasks ls/ps/exec/metrics/kill/rm."""
    env.add_container("d1", ["sleep", "1000"])
    with stubs(env) as (tasks, _, md):
        pid = tasks.Create(
            pb.CreateTaskRequest(container_id="d1", rootfs=bind(env.rootfs())),
            metadata=md,
            timeout=TIMEOUT,
        ).pid
        tasks.Start(pb.StartRequest(container_id="d1"), metadata=md, timeout=TIMEOUT)
        listed = tasks.List(pb.ListTasksRequest(filter=""), metadata=md).tasks
        assert [(t.id, t.pid, t.status) for t in listed] == [("d1", pid, tpb.RUNNING)]
        pids = tasks.ListPids(pb.ListPidsRequest(container_id="d1"), metadata=md).processes
        assert pid in [p.pid for p in pids]

        out_path, out_fd = env.fifo("e1-stdout")
        err_path, err_fd = env.fifo("e1-stderr")
        proc = {"args": ["sh", "-c", "echo from-exec; exit 5"], "cwd": "/", "env": ["PATH=/bin"]}
        tasks.Exec(
            pb.ExecProcessRequest(
                container_id="d1",
                exec_id="e1",
                stdout=out_path,
                stderr=err_path,
                spec=any_pb2.Any(type_url=PROCESS_URL, value=json.dumps(proc).encode()),
            ),
            metadata=md,
            timeout=TIMEOUT,
        )
        waiting = tasks.Wait.future(pb.WaitRequest(container_id="d1", exec_id="e1"), metadata=md)
        tasks.Start(pb.StartRequest(container_id="d1", exec_id="e1"), metadata=md)
        assert waiting.result(timeout=TIMEOUT).exit_status == 5
        assert read_all(out_fd) == b"from-exec\n"
        os.close(out_fd)
        os.close(err_fd)
        got = tasks.Get(pb.GetRequest(container_id="d1", exec_id="e1"), metadata=md).process
        assert (got.id, got.status, got.exit_status) == ("e1", tpb.STOPPED, 5)
        tasks.DeleteProcess(pb.DeleteProcessRequest(container_id="d1", exec_id="e1"), metadata=md)

        metrics = tasks.Metrics(pb.MetricsRequest(filters=["id==d1"]), metadata=md).metrics
        assert [m.id for m in metrics] == ["d1"]
        assert metrics[0].data.type_url.startswith("io.containerd.cgroups.")

        with pytest.raises(grpc.RpcError) as ei:
            tasks.Delete(pb.DeleteTaskRequest(container_id="d1"), metadata=md)
        assert ei.value.code() == grpc.StatusCode.FAILED_PRECONDITION

        waiting = tasks.Wait.future(pb.WaitRequest(container_id="d1"), metadata=md)
        tasks.Kill(pb.KillRequest(container_id="d1", signal=9), metadata=md)
        assert waiting.result(timeout=TIMEOUT).exit_status == 137
        assert tasks.Delete(pb.DeleteTaskRequest(container_id="d1"), metadata=md).exit_status == 137
        assert tasks.List(pb.ListTasksRequest(), metadata=md).tasks == []


def test_restart_reconnects(env: Env) -> None:
    """kill -9 the tasks service: running tasks keep their PID; an exit while down is kept."""
    env.add_container("r1", ["sleep", "1000"])
    env.add_container("r2", ["sh", "-c", "read x; exit 7"])
    in_path = str(env.base / "r2-stdin")
    os.mkfifo(in_path)
    in_fd = os.open(in_path, os.O_RDWR | os.O_NONBLOCK)
    _, out_fd = env.fifo("r2-stdout")
    _, err_fd = env.fifo("r2-stderr")
    r2_io: dict[str, Any] = {"stdin": in_path, "stdout": str(env.base / "r2-stdout"),
             "stderr": str(env.base / "r2-stderr")}  # fmt: skip
    with stubs(env) as (tasks, _, md):
        pids = {}
        for id, io in (("r1", dict[str, Any]()), ("r2", r2_io)):
            pids[id] = tasks.Create(
                pb.CreateTaskRequest(container_id=id, rootfs=bind(env.rootfs()), **io),
                metadata=md,
                timeout=TIMEOUT,
            ).pid
            tasks.Start(pb.StartRequest(container_id=id), metadata=md, timeout=TIMEOUT)
    env.kill9()
    os.write(in_fd, b"go\n")  # r2 exits while the service is down
    time.sleep(0.5)
    env.start()
    with stubs(env) as (tasks, _, md):
        r1 = tasks.Get(pb.GetRequest(container_id="r1"), metadata=md).process
        assert (r1.status, r1.pid) == (tpb.RUNNING, pids["r1"])
        r2 = tasks.Get(pb.GetRequest(container_id="r2"), metadata=md).process
        assert (r2.status, r2.exit_status, r2.pid) == (tpb.STOPPED, 7, pids["r2"])
        tasks.Delete(pb.DeleteTaskRequest(container_id="r2"), metadata=md)
        waiting = tasks.Wait.future(pb.WaitRequest(container_id="r1"), metadata=md)
        tasks.Kill(pb.KillRequest(container_id="r1", signal=9), metadata=md)
        assert waiting.result(timeout=TIMEOUT).exit_status == 137
        tasks.Delete(pb.DeleteTaskRequest(container_id="r1"), metadata=md)
    for fd in (in_fd, out_fd, err_fd):
        os.close(fd)
    assert stat.S_ISDIR(os.stat(env.state).st_mode)
