"""The seacan CLI runs containers through seacand: run --rm, exit status, and the -d life cycle.

FIFOs and log files go to the test's own directories (SEACAN_FIFO_DIR,
SEACAN_LOG_DIR); every container is removed afterwards.
"""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from seacan import logformat
from tests.fixtures import daemon as dm
from tests.fixtures import images as im

pytestmark = pytest.mark.e2e

RUNTIMES = ("io.containerd.runc.v2", "io.containerd.seacan.v2")


@pytest.fixture(params=RUNTIMES, ids=("runc", "seacan"))
def runtime(request: pytest.FixtureRequest) -> str:
    rt: str = request.param
    return rt


@pytest.fixture
def cli(
    seacand: dm.Seacand, runtime: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ns: str
) -> Iterator[dm.Seacand]:
    seacand.namespace = ns
    fifo_dir, log_dir = seacand.base / "fifo", tmp_path / "logs"
    monkeypatch.setenv("SEACAN_FIFO_DIR", str(fifo_dir))
    monkeypatch.setenv("SEACAN_LOG_DIR", str(log_dir))
    archive = tmp_path / "busybox.tar"
    im.write_busybox_oci(archive)
    seacand.seacan_ok("images", "import", archive)
    yield seacand
    for cid in seacand.seacan_ok("ps", "-a", "-q").split():
        seacand.run_seacan("rm", "-f", cid)
    assert not list(fifo_dir.glob("*/*")), "FIFOs left behind"


def test_run_rm_prints_hello(cli: dm.Seacand, runtime: str) -> None:
    r = cli.run_seacan("run", "--runtime", runtime, "--rm", "busybox", "echo", "hello")
    assert r.returncode == 0, dm.describe(r)
    assert r.stdout == "hello\n"
    assert cli.seacan_ok("ps", "-a", "-q") == ""
    assert cli.seacan_ok("snapshots", "ls", "-q").count("\n") == 1  # the image's layer only


def test_run_exit_status(cli: dm.Seacand, runtime: str) -> None:
    r = cli.run_seacan(
        "run", "--runtime", runtime, "--rm", "busybox", "sh", "-c", "echo out; echo err >&2; exit 3"
    )
    assert r.returncode == 3, dm.describe(r)
    assert r.stdout == "out\n"
    assert "err\n" in r.stderr


def test_run_detached_lifecycle(cli: dm.Seacand, runtime: str) -> None:
    script = "echo started; trap 'echo bye; exit 0' TERM; while true; do sleep 0.1; done"
    cid = cli.seacan_ok(
        "run", "--runtime", runtime, "-d", "--name", "web", "busybox", "sh", "-c", script
    ).strip()
    assert cid == "web"
    rows = dm.table(cli.seacan_ok("ps"))
    assert [(r["CONTAINER"], r["STATUS"]) for r in rows] == [("web", "Up")], rows
    deadline = time.monotonic() + 10
    while "started" not in cli.seacan_ok("logs", "web") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert cli.seacan_ok("logs", "web") == "started\n"
    assert cli.seacan_ok("exec", "web", "echo", "from-exec") == "from-exec\n"
    r = cli.run_seacan("exec", "web", "sh", "-c", "exit 7")
    assert r.returncode == 7, dm.describe(r)
    assert cli.seacan_ok("stop", "-t", "5", "web") == "web\n"
    assert cli.seacan_ok("logs", "--tail", "1", "web") == "bye\n"
    assert cli.seacan_ok("ps", "-q") == ""
    assert "Exited (0)" in cli.seacan_ok("ps", "-a")
    assert cli.seacan_ok("rm", "web") == "web\n"
    assert cli.seacan_ok("ps", "-a", "-q") == ""
    assert "web" not in cli.seacan_ok("snapshots", "ls", "-q").split()


def test_run_applies_docker_defaults_and_flags(cli: dm.Seacand, runtime: str) -> None:
    """What a docker user checks inside: identity, hostname, read-only root, caps, limits, lo."""
    script = (
        "id -u; id -g; hostname; echo $GREETING; pwd;"
        "touch /x 2>/dev/null && echo writable || echo read-only;"
        "grep CapEff /proc/self/status;"
        "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max;"
        "ip -o addr show lo | grep -c 127.0.0.1; ls /sys/class/net"
    )
    r = cli.run_seacan(
        "run", "--runtime", runtime, "--rm", "-u", "1000:1000", "--hostname", "box1",
        "-e", "GREETING=hi", "-w", "/tmp", "--read-only", "--memory", "64m",
        "--pids-limit", "42", "busybox", "sh", "-c", script,
    )  # fmt: skip
    assert r.returncode == 0, dm.describe(r)
    lines = r.stdout.split()
    assert lines[:6] == ["1000", "1000", "box1", "hi", "/tmp", "read-only"], r.stdout
    # Docker's default capability set for a non-root user: no effective capabilities
    assert "CapEff:\t0000000000000000" in r.stdout, r.stdout
    assert "67108864" in lines and "42" in lines, r.stdout
    # its own network namespace on the default bridge network, as Docker: lo and eth0
    assert lines[-3:] == ["1", "eth0", "lo"], r.stdout


def test_run_privileged_and_cap_add(cli: dm.Seacand, runtime: str) -> None:
    base = ("run", "--runtime", runtime, "--rm")
    r = cli.run_seacan(*base, "busybox", "grep", "CapEff", "/proc/self/status")
    assert r.returncode == 0 and "00000000a80425fb" in r.stdout, dm.describe(r)
    r = cli.run_seacan(*base, "--cap-drop", "ALL", "--cap-add", "NET_ADMIN", "busybox",
                       "grep", "CapEff", "/proc/self/status")  # fmt: skip
    assert r.returncode == 0 and "0000000000001000" in r.stdout, dm.describe(r)
    r = cli.run_seacan(*base, "--network", "host", "busybox", "ls", "/sys/class/net")
    assert r.returncode == 0 and r.stdout.split() != ["lo"], dm.describe(r)


def test_stats_and_metrics(cli: dm.Seacand, runtime: str) -> None:
    cli.seacan_ok("run", "--runtime", runtime, "-d", "--name", "busy", "--memory", "64m",
                  "busybox", "sh", "-c", "while true; do :; done")  # fmt: skip
    out = cli.seacan_ok("stats", "--no-stream", "busy")
    header, *lines = [re.split(r"\s{2,}", ln.strip()) for ln in out.splitlines() if ln.strip()]
    rows = [dict(zip(header, ln, strict=True)) for ln in lines]
    assert len(rows) == 1 and rows[0]["CONTAINER ID"] == "busy", out
    assert float(rows[0]["CPU %"].rstrip("%")) > 20.0, rows  # a busy loop uses a CPU
    assert rows[0]["MEM USAGE / LIMIT"].endswith("/ 64.0 MiB"), rows
    assert int(rows[0]["PIDS"]) >= 1
    out = cli.seacan_ok("tasks", "metrics", "busy")
    assert "memory.limit_in_bytes" in out and "67108864" in out, out


def _logs_until(cli: dm.Seacand, id: str, want: set[str], timeout: float = 10) -> str:
    deadline = time.monotonic() + timeout
    out = cli.seacan_ok("logs", id)
    while not want <= set(out.splitlines()) and time.monotonic() < deadline:
        time.sleep(0.1)
        out = cli.seacan_ok("logs", id)
    return out


def test_logs_timestamps(cli: dm.Seacand, runtime: str) -> None:
    """seacan's shim writes CRI logs (docker-style --timestamps); runc's shim raw ones."""
    before = time.time_ns()
    script = "echo one; sleep 0.2; echo two >&2; sleep 0.2; printf three"
    cli.seacan_ok("run", "--runtime", runtime, "-d", "--name", "ts", "busybox", "sh", "-c", script)
    assert cli.seacan_ok("wait", "ts") == "0\n"
    assert _logs_until(cli, "ts", {"one", "two", "three"}) == "one\ntwo\nthree"
    assert cli.seacan_ok("logs", "--tail", "2", "ts") == "two\nthree"
    r = cli.run_seacan("logs", "--timestamps", "ts")
    if runtime == "io.containerd.runc.v2":
        assert r.returncode == 1, dm.describe(r)
        assert r.stderr == (
            "seacan: logs of container ts have no timestamps "
            "(runtime io.containerd.runc.v2 writes raw output)\n"
        ), dm.describe(r)
        return
    assert r.returncode == 0, dm.describe(r)
    lines = r.stdout.split("\n")
    assert [ln.partition(" ")[2] for ln in lines] == ["one", "two", "three"], r.stdout
    stamps = [logformat.parse_time(ln.partition(" ")[0]) for ln in lines]
    assert before <= stamps[0] <= stamps[1] <= stamps[2] <= time.time_ns(), lines
    out = cli.seacan_ok("logs", "-f", "-t", "--tail", "1", "ts")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT[\d:.]+Z three", out), out


def test_logs_follow_cri_and_raw(cli: dm.Seacand, runtime: str) -> None:
    script = "echo a; sleep 1; echo b"
    cli.seacan_ok("run", "--runtime", runtime, "-d", "--name", "fl", "busybox", "sh", "-c", script)
    r = cli.run_seacan("logs", "-f", "fl", timeout=20)
    assert r.returncode == 0 and r.stdout == "a\nb\n", dm.describe(r)


def _drive_pty(
    argv: list[str], send: bytes = b"", after: bytes = b"", timeout: float = 20
) -> tuple[int, str]:
    """Run ``argv`` on a new pty; once ``after`` appeared (or at once), write ``send``.

    Returns (exit status, everything read)."""
    master, slave = pty.openpty()
    p = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, start_new_session=True,
                         env=dm.env(), cwd=dm.REPO)  # fmt: skip
    os.close(slave)
    out = b""
    sent = not send
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not sent and after in out:
                os.write(master, send)
                sent = True
            r, _, _ = select.select([master], [], [], 0.2)
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
        code = p.wait(10)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        os.close(master)
    return code, out.decode(errors="replace")


def test_run_interactive_terminal(cli: dm.Seacand, runtime: str) -> None:
    argv = cli.seacan_argv("run", "--runtime", runtime, "-it", "--rm", "busybox", "sh")
    code, out = _drive_pty(argv, send=b"echo hi-$((1+1))\nexit 4\n", after=b"# ")
    assert code == 4, out
    assert "hi-2" in out, out
    assert cli.seacan_ok("ps", "-a", "-q") == ""


def test_exec_terminal(cli: dm.Seacand, runtime: str) -> None:
    cli.seacan_ok("run", "--runtime", runtime, "-d", "--name", "tt", "busybox", "sleep", "100")
    code, out = _drive_pty(cli.seacan_argv("exec", "-it", "tt", "sh", "-c", "tty"))
    assert code == 0, out
    assert re.search(r"/dev/pts/\d+", out), out


def test_run_interactive_pipe(cli: dm.Seacand, runtime: str) -> None:
    argv = cli.seacan_argv("run", "--runtime", runtime, "-i", "--rm", "busybox", "cat")
    r = dm.run(argv, input="piped\nin\n")
    assert r.returncode == 0, dm.describe(r)
    assert r.stdout == "piped\nin\n"
