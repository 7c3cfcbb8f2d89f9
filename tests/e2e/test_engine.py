"""The engine service: ``seacan run -d`` in one request (Engine/Run), and its undo.

Each test has its own seacand and namespace, picks free host ports, and
checks what a user would: the port that answers, ``ps``, the volumes and
networks that name the container, and that a failed run leaves no
container, snapshot, endpoint or volume reference behind.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from seacan.api.services.engine.v1 import engine_pb2 as pb
from tests.fixtures import daemon as dm
from tests.fixtures import images as im

pytestmark = pytest.mark.e2e

HTTPD = ("sh", "-c", "mkdir -p /www && echo hi > /www/index.html && exec httpd -f -p 80 -h /www")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def curl(port: int, timeout: float = 15.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        r = subprocess.run(["curl", "-s", "-m", "2", f"http://127.0.0.1:{port}/"],
                           capture_output=True, text=True)  # fmt: skip
        if r.returncode == 0 or time.monotonic() > deadline:
            return r.stdout if r.returncode == 0 else f"<curl exit {r.returncode}>"
        time.sleep(0.1)


@pytest.fixture
def d(seacand: dm.Seacand, ns: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
      ) -> Iterator[dm.Seacand]:  # fmt: skip
    seacand.namespace = ns
    monkeypatch.setenv("SEACAN_FIFO_DIR", str(seacand.base / "fifo"))
    monkeypatch.setenv("SEACAN_LOG_DIR", str(tmp_path / "logs"))
    seacand.seacan_ok("images", "import", im.write_busybox_oci(tmp_path / "b.tar").path)
    yield seacand
    for cid in seacand.seacan_ok("ps", "-a", "-q").split():
        seacand.run_seacan("rm", "-f", "-v", cid)
    for name in seacand.seacan_ok("network", "ls", "-q").split():
        seacand.run_seacan("network", "rm", name)
    for name in seacand.seacan_ok("volume", "ls", "-q").split():
        seacand.run_seacan("volume", "rm", name)
    netns = seacand.state / "netns"
    assert not (netns.exists() and any(netns.iterdir())), sorted(netns.iterdir())


def state(d: dm.Seacand) -> tuple[set[str], set[str], set[str], int]:
    """Containers, active snapshots, network endpoints (over every network), netns count."""
    conts = set(d.seacan_ok("ps", "-a", "-q").split())
    snaps = {k for k, row in d.snapshots().items() if row["KIND"] == "Active"}
    eps: set[str] = set()
    for name in d.seacan_ok("network", "ls", "-q").split():
        info = json.loads(d.seacan_ok("network", "inspect", name))[0]
        eps |= {c.get("Name", k) for k, c in (info.get("Containers") or {}).items()}
    netns = d.state / "netns"
    return conts, snaps, eps, len(list(netns.iterdir())) if netns.exists() else 0


def test_run_d_publish_answers(d: dm.Seacand) -> None:
    port = free_port()
    out = d.seacan_ok("run", "-d", "--name", "web", "-p", f"127.0.0.1:{port}:80", "busybox", *HTTPD)
    assert out == "web\n"
    assert curl(port) == "hi\n"
    assert "web" in d.seacan_ok("ps", "-q").split()
    logs = d.seacan_ok("logs", "web")  # the log went where this CLI's SEACAN_LOG_DIR says
    assert logs == ""
    assert Path(os.environ["SEACAN_LOG_DIR"], d.namespace, "web.log").exists()
    d.seacan_ok("rm", "-f", "web")
    assert curl(port, timeout=0).startswith("<curl exit")


def test_engine_run_over_grpc(d: dm.Seacand) -> None:
    """Engine/Run on the main socket: a random ID, the PID, warnings; the container runs."""
    port = free_port()
    req = pb.RunRequest(image="busybox", publish=[f"127.0.0.1:{port}:80"], args=list(HTTPD),
                        log_dir=os.environ["SEACAN_LOG_DIR"])  # fmt: skip
    with grpc.insecure_channel(f"unix:{d.address}") as ch:
        call = ch.unary_unary(
            "/seacan.services.engine.v1.Engine/Run",
            request_serializer=pb.RunRequest.SerializeToString,
            response_deserializer=pb.RunResponse.FromString,
        )
        resp = call(req, metadata=[("containerd-namespace", d.namespace)], timeout=60)
        assert len(resp.id) == 12 and resp.pid > 0 and not resp.warnings
        assert curl(port) == "hi\n"
        host = pb.RunRequest(image="busybox", networks=["host"], publish=["8080:80"],
                             args=["sleep", "30"])  # fmt: skip
        resp2 = call(host, metadata=[("containerd-namespace", d.namespace)], timeout=60)
        assert list(resp2.warnings) == ["published ports are discarded with --network host"]
        with pytest.raises(grpc.RpcError) as e:
            call(pb.RunRequest(image="busybox", memory="lots"),
                 metadata=[("containerd-namespace", d.namespace)], timeout=60)  # fmt: skip
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(d.seacan_ok("ps", "-q").split()) == {resp.id, resp2.id}


def test_run_d_with_volumes_and_named_networks(d: dm.Seacand, tmp_path: Path) -> None:
    d.seacan_ok("network", "create", "--subnet", "10.251.7.0/24", "front")
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_text("from host\n")
    port = free_port()
    script = "cat /src/f > /data/copy && " + HTTPD[2]
    d.seacan_ok("run", "-d", "--name", "web", "--network", "front", "--network-alias", "www",
                "-p", f"127.0.0.1:{port}:80", "-v", "data:/data", "-v", f"{src}:/src:ro",
                "--tmpfs", "/scratch", "busybox", "sh", "-c", script)  # fmt: skip
    assert curl(port) == "hi\n"
    vol = json.loads(d.seacan_ok("volume", "inspect", "data"))[0]
    assert Path(vol["Mountpoint"], "copy").read_text() == "from host\n"
    info = json.loads(d.seacan_ok("network", "inspect", "front"))[0]
    assert len(info["Containers"]) == 1
    out = d.seacan_ok("run", "--rm", "--network", "front", "busybox",
                      "wget", "-q", "-O", "-", "http://www/")  # fmt: skip
    assert out == "hi\n"
    assert "tmpfs /scratch" in d.seacan_ok("exec", "web", "cat", "/proc/mounts")


def test_rm_with_detach_is_refused(d: dm.Seacand) -> None:
    r = d.run_seacan("run", "--rm", "-d", "busybox", "true")
    assert r.returncode == 1 and r.stderr == "seacan: --rm and -d cannot be combined (yet)\n"
    r = d.run_seacan("run", "-d", "-p", "99999:80", "busybox", "true")
    assert r.returncode == 1, dm.describe(r)
    assert r.stderr == "seacan: invalid port 99999 in '99999:80': want 1-65535\n"
    r = d.run_seacan("run", "-d", "--mount", "type=nope,target=/x", "busybox", "true")
    assert r.returncode == 1
    assert r.stderr.startswith("seacan: invalid --mount 'type=nope,target=/x': type 'nope'")
    assert d.seacan_ok("ps", "-a", "-q") == ""


def test_failed_runs_leave_nothing(d: dm.Seacand, tmp_path: Path) -> None:
    port = free_port()
    d.seacan_ok("run", "-d", "--name", "web", "-p", f"127.0.0.1:{port}:80", "busybox", *HTTPD)
    assert curl(port) == "hi\n"
    before = state(d)
    vols_before = d.seacan_ok("volume", "ls", "-q")
    cases = [
        (("run", "-d", "--name", "x1", "nosuchimage"),
         "seacan: image 'docker.io/library/nosuchimage:latest' not found (import it first)\n"),
        (("run", "-d", "--name", "x2", "-v", "anon-vol:/d", "-p", f"127.0.0.1:{port}:80",
          "busybox", "true"), None),
        (("run", "-d", "--name", "x3", "-v", f"{tmp_path}/missing:/x", "busybox", "true"),
         f"seacan: bind source path '{tmp_path}/missing' does not exist (for mount point /x)\n"),
        (("run", "-d", "--name", "web", "-v", "other:/d", "busybox", "true"),
         "seacan: container 'web' already exists\n"),
    ]  # fmt: skip
    for argv, err in cases:
        r = d.run_seacan(*argv)
        assert r.returncode == 1, dm.describe(r)
        if err is not None:
            assert r.stderr == err
        assert state(d) == before, argv
        vols = d.seacan_ok("volume", "ls", "-q")
        assert vols in (vols_before, vols_before + "anon-vol\n"), vols  # a named volume may stay
        if "anon-vol" in vols:
            assert json.loads(d.seacan_ok("volume", "inspect", "anon-vol"))[0].get("UsedBy") in (
                None, [],
            )  # fmt: skip
    assert curl(port) == "hi\n"  # the first container is untouched


def test_engine_killed_and_restarted(d: dm.Seacand) -> None:
    pid = d.services()["engine"]
    os.kill(pid, signal.SIGKILL)
    d.wait_service("engine", not_pid=pid)
    port = free_port()
    d.seacan_ok("run", "-d", "--name", "web", "-p", f"127.0.0.1:{port}:80", "busybox", *HTTPD)
    assert curl(port) == "hi\n"


def test_run_d_after_the_images_snapshots_were_removed_unpacks_again(d: dm.Seacand) -> None:
    # The engine remembers the image's snapshots between runs; removing them by
    # hand must not break the next run (it unpacks the image again).
    d.seacan_ok("run", "-d", "--name", "one", "busybox", "sleep", "60")
    d.seacan_ok("rm", "-f", "one")
    committed = [k for k, row in d.snapshots().items() if row["KIND"] == "Committed"]
    assert committed
    for key in sorted(committed, key=len):  # busybox has one layer; remove top-down anyway
        d.seacan_ok("snapshots", "rm", key)
    assert not [k for k, row in d.snapshots().items() if row["KIND"] == "Committed"]
    d.seacan_ok("run", "-d", "--name", "two", "busybox", "sleep", "60")
    assert d.seacan_ok("ps", "-q").split() == ["two"]
    assert [k for k, row in d.snapshots().items() if row["KIND"] == "Committed"] == committed


def test_the_engines_temporary_mounts_never_reach_the_host(d: dm.Seacand) -> None:
    # The engine mounts a rootfs for user lookups; it does so in a mount namespace
    # of its own, so even a kill -9 half-way cannot leave a mount on the host.
    engine = d.services()["engine"]
    assert os.readlink(f"/proc/{engine}/ns/mnt") != os.readlink("/proc/self/ns/mnt")
    assert os.readlink(f"/proc/{d.pid}/ns/mnt") == os.readlink("/proc/self/ns/mnt")
    before = Path("/proc/self/mountinfo").read_text().count("seacan-mount-")
    d.seacan_ok("run", "-d", "--name", "u", "busybox", "sleep", "60")  # a first run mounts
    assert d.seacan_ok("ps", "-q").split() == ["u"]
    assert Path("/proc/self/mountinfo").read_text().count("seacan-mount-") == before
