"""seacan run / containers / tasks / docker-style commands: parsing and the pure helpers."""

from __future__ import annotations

import json
import signal

import pytest

from seacan import errors
from seacan.cli import main
from seacan.cli import run as rc
from seacan.cli import tasks as ct
from seacan.cli.containers import spec_of
from seacan.containers import SPEC_TYPE_URL, AnyValue, Container
from seacan.engine.plan import parse_memory, random_id
from seacan.tasks import RUNC_RUNTIME, Process, Status

pytestmark = pytest.mark.unit


def parse(*argv: str) -> object:
    return main.build_parser().parse_args(list(argv))


def test_run_flags_and_command() -> None:
    a = parse(
        "run", "--rm", "-i", "-t", "--name", "web", "-e", "A=1", "-w", "/srv", "-u", "1:2",
        "--memory", "64m", "--cpus", "0.5", "--pids-limit", "10", "--read-only",
        "--cap-add", "NET_ADMIN", "--cap-drop", "CHOWN", "--hostname", "h",
        "--network", "host", "busybox", "sh", "-c", "echo -n hi",
    )  # fmt: skip
    opts = rc.run_options(a)  # type: ignore[arg-type]
    assert opts.args == ("sh", "-c", "echo -n hi")  # flags after IMAGE belong to the command
    assert opts.env == ("A=1",) and opts.cwd == "/srv" and opts.user == "1:2"
    assert opts.memory_bytes == 64 << 20 and opts.cpus == 0.5 and opts.pids_limit == 10
    assert opts.read_only_rootfs and opts.terminal and opts.network_mode == "host"
    assert opts.cap_add == ("NET_ADMIN",) and opts.cap_drop == ("CHOWN",)
    assert opts.entrypoint is None and opts.hostname == "h"
    assert a.runtime == ""  # type: ignore[attr-defined]  # the engine's default: DEFAULT_RUNTIME


def test_run_entrypoint_and_runtime() -> None:
    a = parse("run", "--entrypoint", "", "--runtime", RUNC_RUNTIME, "busybox")
    assert rc.run_options(a).entrypoint == ()  # type: ignore[arg-type]
    assert a.runtime == RUNC_RUNTIME  # type: ignore[attr-defined]
    a = parse("run", "--entrypoint", "/bin/echo", "busybox", "x")
    assert rc.run_options(a).entrypoint == ("/bin/echo",)  # type: ignore[arg-type]


def test_run_bad_network() -> None:
    # bridge and user networks are fine; none/host cannot be combined with another network
    rc.run_options(parse("run", "--network", "bridge", "busybox"))  # type: ignore[arg-type]
    with pytest.raises(errors.InvalidArgument, match="--network none cannot be combined"):
        rc.run_options(
            parse("run", "--network", "none", "--network", "front", "busybox")  # type: ignore[arg-type]
        )


def test_run_requires_image() -> None:
    with pytest.raises(main.UsageError):
        parse("run", "--rm")


@pytest.mark.parametrize(
    ("text", "n"),
    [("64m", 64 << 20), ("1g", 1 << 30), ("512k", 512 << 10), ("100", 100), ("1.5GB", 3 << 29)],
)
def test_parse_memory(text: str, n: int) -> None:
    assert parse_memory(text) == n


def test_parse_memory_bad() -> None:
    with pytest.raises(errors.InvalidArgument):
        parse_memory("lots")


def test_parse_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FROM_HOST", "yes")
    monkeypatch.delenv("NOT_SET", raising=False)
    assert rc.parse_env(["A=1", "B=", "FROM_HOST", "NOT_SET"]) == ("A=1", "B=", "FROM_HOST=yes")
    with pytest.raises(errors.InvalidArgument):
        rc.parse_env(["=x"])


@pytest.mark.parametrize(
    ("text", "n"),
    [("9", 9), ("KILL", 9), ("SIGKILL", 9), ("sigterm", int(signal.SIGTERM)), ("hup", 1)],
)
def test_parse_signal(text: str, n: int) -> None:
    assert ct.parse_signal(text) == n


@pytest.mark.parametrize("text", ["", "SIGNOPE", "0", "99", "-1"])
def test_parse_signal_bad(text: str) -> None:
    with pytest.raises(errors.InvalidArgument):
        ct.parse_signal(text)


def test_exit_code() -> None:
    assert [ct.exit_code(s) for s in (0, 3, 137, 255, 256)] == [0, 3, 137, 255, 255]


def test_ctr_nouns_parse() -> None:
    a = parse("containers", "create", "--runtime", RUNC_RUNTIME, "busybox", "c1", "echo", "-n")
    assert (a.image, a.id, a.command) == ("busybox", "c1", ["echo", "-n"])  # type: ignore[attr-defined]
    a = parse("tasks", "kill", "-s", "HUP", "--all", "c1")
    assert (a.signal, a.all, a.id) == ("HUP", True, "c1")  # type: ignore[attr-defined]
    a = parse("t", "exec", "--exec-id", "e1", "-t", "c1", "sh", "-c", "id")
    assert (a.exec_id, a.tty, a.command) == ("e1", True, ["sh", "-c", "id"])  # type: ignore[attr-defined]
    with pytest.raises(main.UsageError):
        parse("tasks", "exec", "c1", "sh")  # --exec-id is required, as ctr
    a = parse("stop", "-t", "3", "a", "b")
    assert (a.time, a.ids) == (3.0, ["a", "b"])  # type: ignore[attr-defined]
    a = parse("logs", "-f", "--tail", "5", "web")
    assert (a.follow, a.tail, a.id) == (True, "5", "web")  # type: ignore[attr-defined]
    a = parse("exec", "-i", "-e", "X=1", "-u", "0", "-w", "/", "web", "ls", "-l")
    assert a.command == ["ls", "-l"] and a.env == ["X=1"]  # type: ignore[attr-defined]


def test_exec_spec_overrides() -> None:
    base = {"process": {"args": ["sh"], "env": ["PATH=/bin", "A=old"], "cwd": "/", "user": {}}}
    proc = json.loads(
        ct.exec_spec(base, ["ls"], terminal=True, env=["A=new"], cwd="/tmp", user="5:6")
    )
    assert proc["args"] == ["ls"] and proc["terminal"] is True
    assert proc["env"] == ["PATH=/bin", "A=new"] and proc["cwd"] == "/tmp"
    assert proc["user"] == {"uid": 5, "gid": 6}
    with pytest.raises(errors.InvalidArgument):
        ct.exec_spec(base, [], terminal=False)
    with pytest.raises(errors.InvalidArgument):
        ct.exec_spec(base, ["ls"], terminal=False, user="nobody")


def test_tail_lines() -> None:
    data = b"a\nb\nc\n"
    assert rc.tail_lines(data, None) == data
    assert rc.tail_lines(data, 2) == b"b\nc\n"
    assert rc.tail_lines(data, 0) == b""
    assert rc.tail_lines(data, 10) == data


def test_status_text_and_spec() -> None:
    spec = AnyValue(SPEC_TYPE_URL, json.dumps({"process": {"args": ["echo", "hi"]}}).encode())
    c = Container(id="x", spec=spec)
    assert spec_of(c)["process"]["args"] == ["echo", "hi"]
    assert rc.command_text(c) == '"echo hi"'
    assert rc.status_text(c, None) == "Created"
    assert rc.status_text(Container(id="x", labels={rc.LABEL_EXIT_STATUS: "3"}), None) == (
        "Exited (3)"
    )
    running = Process("x", status=Status.RUNNING)
    assert rc.status_text(c, running) == "Up"
    assert rc.status_text(c, Process("x", status=Status.STOPPED, exit_status=2)) == "Exited (2)"
    assert rc.status_text(c, Process("x", status=Status.PAUSED)) == "Up (Paused)"
    assert spec_of(Container(id="y", spec=AnyValue(SPEC_TYPE_URL, b"not json"))) == {}


def test_random_id() -> None:
    ids = {random_id() for _ in range(50)}
    assert len(ids) == 50 and all(len(i) == 12 and int(i, 16) >= 0 for i in ids)
