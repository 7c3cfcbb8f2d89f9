"""Specs from ``build_spec`` run by the real runc (root).

Each test builds a busybox rootfs in a tmp dir, writes ``config.json`` with
``build_spec``, runs ``runc --root <private> run --bundle <dir> <id>`` with
no terminal and checks what a user would: the output of ``id``, the CapEff
line, a failed write, the hostname, a syscall seccomp refuses, the limits
in the container's cgroup. Every container is ``runc delete -f``-ed and its
cgroups removed in a ``finally``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from seacan.runtime.spec import ALL_CAPABILITIES, DEFAULT_CAPABILITIES, ContainerOptions, build_spec

pytestmark = pytest.mark.e2e

RUNC = shutil.which("runc") or "/usr/sbin/runc"
BUSYBOX = Path("/bin/busybox")
APPLETS = ("sh", "id", "cat", "grep", "hostname", "touch", "unshare", "echo", "true")
CGROUP_V1 = Path("/sys/fs/cgroup")

if not Path(RUNC).exists() or not BUSYBOX.exists():  # pragma: no cover - host setup
    pytest.skip("needs runc and /bin/busybox", allow_module_level=True)


@dataclass
class Result:
    rc: int
    out: str
    err: str


@dataclass
class Runner:
    root: Path  # runc --root
    bundle: Path
    cgroup_parent: str

    def run(self, opts: ContainerOptions, name: str = "c") -> Result:
        cid = f"{self.cgroup_parent.strip('/')}-{name}"
        spec = build_spec(
            opts,
            {"Env": ["PATH=/bin"]},
            self.bundle / "rootfs",
            cgroups_path=f"{self.cgroup_parent}/{cid}",
        )
        (self.bundle / "config.json").write_text(json.dumps(spec))
        try:
            p = subprocess.run(
                [RUNC, "--root", str(self.root), "run", "--bundle", str(self.bundle), cid],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=30,
            )
            return Result(p.returncode, p.stdout, p.stderr)
        finally:
            subprocess.run(
                [RUNC, "--root", str(self.root), "delete", "-f", cid],
                capture_output=True,
                timeout=30,
            )


def _remove_cgroups(parent: str) -> None:
    """rmdir the test's cgroup tree under every v1 controller, deepest first."""
    for ctrl in CGROUP_V1.iterdir():
        top = ctrl / parent.strip("/")
        if not top.is_dir():
            continue
        for dirpath, _dirs, _files in sorted(os.walk(top), key=lambda w: -len(w[0])):
            os.rmdir(dirpath)


@pytest.fixture
def runner(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Runner]:
    tag = hashlib.sha256(request.node.nodeid.encode()).hexdigest()[:10]
    root = Path(f"/tmp/sc-{tag}")
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir()
    bundle = tmp_path / "bundle"
    rootfs = bundle / "rootfs"
    for d in ("bin", "etc", "proc", "sys", "dev", "tmp"):
        (rootfs / d).mkdir(parents=True)
    shutil.copy2(BUSYBOX, rootfs / "bin" / "busybox")
    for applet in APPLETS:
        (rootfs / "bin" / applet).symlink_to("busybox")
    (rootfs / "etc" / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\nbob:x:1000:1000:Bob:/home/bob:/bin/sh\n"
    )
    (rootfs / "etc" / "group").write_text("root:x:0:\nbob:x:1000:\nwheel:x:10:bob\n")
    parent = f"/sc-e2e-{tag}"
    _remove_cgroups(parent)
    try:
        yield Runner(root, bundle, parent)
    finally:
        _remove_cgroups(parent)
        shutil.rmtree(root, ignore_errors=True)


def sh(script: str, **kw: object) -> ContainerOptions:
    return ContainerOptions(args=("sh", "-c", script), **kw)  # type: ignore[arg-type]


def cap_mask(caps: tuple[str, ...] | list[str]) -> str:
    return f"{sum(1 << ALL_CAPABILITIES.index(c) for c in caps):016x}"


def test_user_is_resolved_through_the_rootfs(runner: Runner) -> None:
    r = runner.run(sh("id -u; id -g; id -G", user="bob"))
    assert r.rc == 0, r.err
    assert r.out.split("\n")[:3] == ["1000", "1000", "1000 10"]


def test_default_capabilities_land_in_capeff(runner: Runner) -> None:
    r = runner.run(sh("grep -E '^Cap(Eff|Inh|Amb)' /proc/self/status"))
    assert r.rc == 0, r.err
    fields = dict(line.split(":\t") for line in r.out.strip().splitlines())
    assert fields["CapEff"] == cap_mask(DEFAULT_CAPABILITIES) == "00000000a80425fb"
    assert fields["CapInh"] == fields["CapAmb"] == "0" * 16


def test_cap_drop_all_and_add_one(runner: Runner) -> None:
    r = runner.run(sh("grep CapEff /proc/self/status", cap_drop=("ALL",), cap_add=("NET_ADMIN",)))
    assert r.rc == 0, r.err
    assert r.out.split()[1] == cap_mask(["CAP_NET_ADMIN"])


def test_read_only_rootfs_refuses_writes(runner: Runner) -> None:
    r = runner.run(sh("touch /x", read_only_rootfs=True))
    assert r.rc != 0
    assert "Read-only file system" in r.err + r.out


def test_hostname(runner: Runner) -> None:
    r = runner.run(sh("hostname; echo $HOSTNAME", hostname="seacan-box"))
    assert r.rc == 0, r.err
    assert r.out.split() == ["seacan-box", "seacan-box"]


def test_seccomp_blocks_unshare_without_cap_sys_admin(runner: Runner) -> None:
    # A user namespace needs no capability: only the seccomp profile refuses it.
    denied = runner.run(sh("unshare -U true"), name="denied")
    assert denied.rc != 0
    assert "Operation not permitted" in denied.err + denied.out
    allowed = runner.run(sh("unshare -U true", cap_add=("SYS_ADMIN",)), name="allowed")
    assert allowed.rc == 0, allowed.err


def test_cgroup_limits_land_in_the_cgroup(runner: Runner) -> None:
    r = runner.run(
        sh(
            "cat /sys/fs/cgroup/memory/memory.limit_in_bytes"
            " /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.cfs_period_us"
            " /sys/fs/cgroup/pids/pids.max",
            memory_bytes=64 << 20,
            cpus=0.5,
            pids_limit=42,
        )
    )
    assert r.rc == 0, r.err
    assert r.out.split() == [str(64 << 20), "50000", "100000", "42"]


def test_nofile_is_clamped_to_our_hard_limit(runner: Runner) -> None:
    import resource

    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    r = runner.run(sh("ulimit -n; ulimit -Hn"))
    assert r.rc == 0, r.err
    want = "1048576" if hard == resource.RLIM_INFINITY or hard >= 1048576 else str(hard)
    assert r.out.split() == [want, want]
