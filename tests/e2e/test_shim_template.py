"""Cheap shims: seacand's shims are forked from the template, and outlive it.

The tasks service runs ``python -m seacan.shims.template`` as its child; a
``containerd-shim-seacan-v2 start`` hands the request to it, so the serving
shim is a fork of the template (its command line is the template's), in a
session of its own and not a child of the template.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures import daemon as dm
from tests.fixtures import images as im

pytestmark = pytest.mark.e2e

IMAGE = im.BUSYBOX_NAME
RUNTIME = "io.containerd.seacan.v2"
TEMPLATE_MODULE = "seacan.shims.template"


def _tasks(d: dm.Daemon, ns: str) -> dict[str, dict[str, str]]:
    return {row["TASK"]: row for row in dm.table(d.ctr_ok("tasks", "ls", ns=ns))}


def _wait_status(d: dm.Daemon, ns: str, cid: str, status: str, timeout: float = 15) -> int:
    deadline = time.monotonic() + timeout
    row: dict[str, str] = {}
    while time.monotonic() < deadline:
        row = _tasks(d, ns).get(cid, {})
        if row.get("STATUS") == status:
            return int(row["PID"])
        time.sleep(0.1)
    raise AssertionError(f"task {cid} never reached {status}: {row}")


def _ppid(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])


def _template(d: dm.Seacand, not_pid: int = 0, timeout: float = 15) -> int:
    """The template process under the tasks service (other than ``not_pid``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        tasks_pid = d.services().get("tasks")
        if tasks_pid is not None:
            for kid in dm.children_of(tasks_pid):
                if kid != not_pid and TEMPLATE_MODULE in dm.cmdline(kid) and dm.alive(kid):
                    sock = d.state / "shim-template.sock"
                    if sock.exists():
                        return kid
        time.sleep(0.05)
    raise AssertionError(f"no shim template under the tasks service\n{d.log_tail()}")


@contextlib.contextmanager
def _cleanup(d: dm.Daemon, ns: str) -> Iterator[None]:
    try:
        yield
    finally:
        for row in dm.table(d.run_ctr("tasks", "ls", ns=ns).stdout):
            d.run_ctr("tasks", "kill", "-s", "SIGKILL", row["TASK"], ns=ns)
        for row in dm.table(d.run_ctr("containers", "ls", ns=ns).stdout):
            cid = row["CONTAINER"]
            d.run_ctr("tasks", "rm", "-f", cid, ns=ns)
            d.run_ctr("containers", "rm", cid, ns=ns)


def _run(d: dm.Seacand, ns: str, cid: str) -> tuple[int, int]:
    """Run a detached sleeper; (its pid, its shim's pid)."""
    d.ctr_ok("run", "-d", "--runtime", RUNTIME, IMAGE, cid, "sleep", "300", ns=ns)
    pid = _wait_status(d, ns, cid, "RUNNING")
    return pid, _ppid(pid)  # the shim is the container's subreaper


def _assert_forked(shim: int, template: int) -> None:
    argv = dm.cmdline(shim)
    assert TEMPLATE_MODULE in argv, f"shim {shim} was exec'd, not forked: {argv}"
    assert _ppid(shim) != template, "the shim is still the template's child"
    assert os.getsid(shim) != os.getsid(template), "the shim shares the template's session"


def test_shims_are_forked_and_outlive_the_template(
    seacand: dm.Seacand, ns: str, busybox_oci: im.Archive
) -> None:
    d = seacand
    d.ctr_ok("images", "import", busybox_oci.path, ns=ns)
    template = _template(d)
    with _cleanup(d, ns):
        pid, shim = _run(d, ns, "c1")
        _assert_forked(shim, template)

        os.kill(template, signal.SIGKILL)
        assert dm.wait_gone({template: None}, 5) == []
        assert _wait_status(d, ns, "c1", "RUNNING") == pid
        assert dm.alive(shim)

        restarted = _template(d, not_pid=template)
        _, shim2 = _run(d, ns, "c2")
        _assert_forked(shim2, restarted)

        # the orphaned shim still obeys: exec, kill, delete
        out = d.ctr_ok("tasks", "exec", "--exec-id", "e1", "c1", "echo", "hi", ns=ns)
        assert out.strip() == "hi"
        d.ctr_ok("tasks", "kill", "-s", "SIGKILL", "c1", ns=ns)
        _wait_status(d, ns, "c1", "STOPPED")
        d.ctr_ok("tasks", "rm", "c1", ns=ns)
        d.ctr_ok("containers", "rm", "c1", ns=ns)
        assert dm.wait_gone({shim: None}, 10) == [], "the shim did not exit after delete"
