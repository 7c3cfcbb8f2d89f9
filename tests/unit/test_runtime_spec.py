"""seacan.runtime.spec and .seccomp: Docker's defaults, overrides, clamping, validation.

Specs are built against a fixed ``Host`` so nothing here depends on the machine.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from structlog.testing import capture_logs

from seacan import errors
from seacan.runtime import seccomp
from seacan.runtime.spec import (
    ALL_CAPABILITIES,
    DEFAULT_CAPABILITIES,
    ContainerOptions,
    Host,
    Rlimit,
    build_spec,
)

pytestmark = pytest.mark.unit

HOST = Host(
    capabilities=frozenset(c for c in ALL_CAPABILITIES if c != "CAP_SYS_RESOURCE"),
    rlimit_hard={"RLIMIT_NOFILE": 20000, "RLIMIT_NPROC": -1},
    oom_score_adj=0,
    arch="x86_64",
    kernel=(6, 1),
    cpu_count=4,
    swap_limit=True,
    sysctls=frozenset({"net.ipv4.ping_group_range", "net.ipv4.ip_unprivileged_port_start"}),
)
PASSWD = b"root:x:0:0:root:/root:/bin/sh\nbob:x:1000:1000::/home/bob:/bin/sh\n"
GROUP = b"root:x:0:\nwheel:x:10:bob\n"
IMAGE = {
    "Env": ["PATH=/usr/bin:/bin", "LANG=C"],
    "Entrypoint": ["/entry"],
    "Cmd": ["serve", "--port", "80"],
    "WorkingDir": "/srv",
}


def etc(name: str) -> bytes | None:
    return {"passwd": PASSWD, "group": GROUP}.get(name)


def build(opts: ContainerOptions | None = None, image: Any = IMAGE, **kw: Any) -> dict[str, Any]:
    return build_spec(opts or ContainerOptions(), image, etc, host=HOST, **kw)


def syscalls(spec: dict[str, Any]) -> set[str]:
    return seccomp.allowed_syscalls(spec["linux"]["seccomp"])


def test_defaults_are_dockers() -> None:
    s = build(cgroups_path="/seacan/default/web")
    assert s["ociVersion"] == "1.0.2"
    p = s["process"]
    caps = p["capabilities"]
    assert caps["bounding"] == caps["effective"] == caps["permitted"] == list(DEFAULT_CAPABILITIES)
    assert len(DEFAULT_CAPABILITIES) == 14
    assert "inheritable" not in caps and "ambient" not in caps
    assert p["user"] == {"uid": 0, "gid": 0, "additionalGids": [0]}
    assert p["args"] == ["/entry", "serve", "--port", "80"]
    assert p["cwd"] == "/srv"
    assert p["env"] == ["PATH=/usr/bin:/bin", "LANG=C"]
    assert p["noNewPrivileges"] is False
    assert p["terminal"] is False
    assert "oomScoreAdj" not in p
    assert s["root"] == {"path": "rootfs", "readonly": False}
    assert [m["destination"] for m in s["mounts"]] == [
        "/proc", "/dev", "/dev/pts", "/sys", "/sys/fs/cgroup", "/dev/mqueue", "/dev/shm",
    ]  # fmt: skip
    shm = s["mounts"][-1]
    assert shm["options"] == ["nosuid", "noexec", "nodev", "mode=1777", "size=67108864"]
    assert "ro" in s["mounts"][3]["options"] and "ro" in s["mounts"][4]["options"]
    lx = s["linux"]
    assert lx["cgroupsPath"] == "/seacan/default/web"
    assert [n["type"] for n in lx["namespaces"]] == ["mount", "network", "uts", "pid", "ipc"]
    assert "/proc/kcore" in lx["maskedPaths"] and "/sys/firmware" in lx["maskedPaths"]
    assert "/proc/interrupts" in lx["maskedPaths"]
    assert lx["readonlyPaths"] == [
        "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
    ]  # fmt: skip
    assert lx["resources"]["devices"][0] == {"allow": False, "access": "rwm"}
    assert {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"} in lx["resources"][
        "devices"
    ]
    assert lx["sysctl"] == {
        "net.ipv4.ping_group_range": "0 2147483647",
        "net.ipv4.ip_unprivileged_port_start": "0",
    }
    assert [r["type"] for r in p["rlimits"]] == ["RLIMIT_NOFILE"]


def test_default_seccomp() -> None:
    prof = build()["linux"]["seccomp"]
    assert prof["defaultAction"] == "SCMP_ACT_ERRNO" and prof["defaultErrnoRet"] == 1
    assert prof["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    allowed = seccomp.allowed_syscalls(prof)
    assert {"read", "write", "execve", "arch_prctl", "socket", "personality", "chroot"} <= allowed
    assert not {"kexec_load", "mount", "unshare", "setns", "reboot", "bpf"} & allowed
    assert "ptrace" in allowed  # for everyone from kernel 4.8, as Docker
    assert "kcmp" not in allowed and "init_module" not in allowed
    # clone only without namespace flags; clone3 answers ENOSYS
    clone = [r for r in prof["syscalls"] if r["names"] == ["clone"]]
    assert clone == [
        {
            "names": ["clone"],
            "action": "SCMP_ACT_ALLOW",
            "args": [{"index": 0, "value": 0x7E020000, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}],
        }
    ]
    assert {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38} in prof["syscalls"]
    pers = [r["args"][0]["value"] for r in prof["syscalls"] if r["names"] == ["personality"]]
    assert pers == [0, 8, 0x20000, 0x20008, 0xFFFFFFFF]


def test_seccomp_follows_capabilities() -> None:
    s = build(ContainerOptions(cap_add=("SYS_ADMIN", "sys_ptrace")))
    allowed = syscalls(s)
    assert {"mount", "umount2", "unshare", "setns", "clone3", "kcmp", "ptrace"} <= allowed
    assert not any(
        r["names"] == ["clone"] and "args" in r for r in s["linux"]["seccomp"]["syscalls"]
    )
    assert "chroot" not in syscalls(build(ContainerOptions(cap_drop=("SYS_CHROOT",))))
    assert "modify_ldt" not in seccomp.allowed_syscalls(
        seccomp.default_profile(DEFAULT_CAPABILITIES, arch="aarch64", kernel=(6, 1))
    )
    # ptrace for everyone only from kernel 4.8
    old = seccomp.default_profile(DEFAULT_CAPABILITIES, arch="x86_64", kernel=(4, 4))
    assert "ptrace" not in seccomp.allowed_syscalls(old)
    with pytest.raises(errors.InvalidArgument, match="architecture"):
        seccomp.default_profile(DEFAULT_CAPABILITIES, arch="mips")


def test_cap_add_drop() -> None:
    def caps(**kw: Any) -> list[str]:
        return list(build(ContainerOptions(**kw))["process"]["capabilities"]["bounding"])

    assert caps(cap_drop=("ALL",)) == []
    assert caps(cap_drop=("ALL",), cap_add=("NET_ADMIN",)) == ["CAP_NET_ADMIN"]
    got = caps(cap_drop=("chown", "CAP_KILL"), cap_add=("net_admin",))
    assert got == [c for c in DEFAULT_CAPABILITIES if c not in ("CAP_CHOWN", "CAP_KILL")] + [
        "CAP_NET_ADMIN"
    ]
    everything = caps(cap_add=("ALL",), cap_drop=("MKNOD",))
    assert "CAP_SYS_ADMIN" in everything and "CAP_MKNOD" not in everything
    assert "CAP_SYS_RESOURCE" not in everything  # the host does not have it
    with pytest.raises(errors.InvalidArgument, match="cap-add: unknown capability"):
        build(ContainerOptions(cap_add=("FLY",)))
    with pytest.raises(errors.InvalidArgument, match="cap-drop"):
        build(ContainerOptions(cap_drop=("CAP_NOPE",)))
    with pytest.raises(errors.InvalidArgument, match="not available"):
        build(ContainerOptions(cap_add=("SYS_RESOURCE",)))


def test_privileged() -> None:
    s = build(ContainerOptions(privileged=True, cap_drop=("ALL",)))
    caps = s["process"]["capabilities"]["bounding"]
    assert caps == [c for c in ALL_CAPABILITIES if c in HOST.capabilities]
    assert "seccomp" not in s["linux"]
    assert "maskedPaths" not in s["linux"] and "readonlyPaths" not in s["linux"]
    assert s["linux"]["resources"]["devices"] == [{"allow": True, "access": "rwm"}]
    sys_mounts = [m for m in s["mounts"] if m["destination"] in ("/sys", "/sys/fs/cgroup")]
    assert all("ro" not in m["options"] for m in sys_mounts)


def test_args_override_rules() -> None:
    def args(image: Any = IMAGE, **kw: Any) -> list[str]:
        return list(build(ContainerOptions(**kw), image)["process"]["args"])

    assert args(args=("sh",)) == ["/entry", "sh"]
    assert args(entrypoint=("/bin/echo",)) == ["/bin/echo"]  # image Cmd dropped
    assert args(entrypoint=("/bin/echo",), args=("hi",)) == ["/bin/echo", "hi"]
    assert args(entrypoint=(), args=("ls",)) == ["ls"]
    assert args(image={"Cmd": ["sh"]}) == ["sh"]
    with pytest.raises(errors.InvalidArgument, match="no command"):
        args(image=None)
    with pytest.raises(errors.InvalidArgument, match="no command"):
        args(entrypoint=())


def test_env_user_cwd_hostname_terminal() -> None:
    s = build(
        ContainerOptions(
            env=("LANG=fr", "X=1"),
            user="bob",
            cwd="/tmp/../work",
            hostname="box",
            terminal=True,
            no_new_privileges=True,
            read_only_rootfs=True,
            annotations={"a": "b"},
        ),
        {"Env": ["LANG=C"], "Cmd": ["sh"]},
    )
    p = s["process"]
    assert p["env"] == [
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOSTNAME=box",
        "TERM=xterm",
        "LANG=fr",
        "X=1",
    ]
    assert p["user"] == {"uid": 1000, "gid": 1000, "additionalGids": [1000, 10]}
    assert p["cwd"] == "/work"
    assert p["terminal"] is True and p["noNewPrivileges"] is True
    assert s["hostname"] == "box"
    assert s["root"]["readonly"] is True
    assert s["annotations"] == {"a": "b"}
    assert (
        build(ContainerOptions(), {"Cmd": ["sh"], "User": "bob"})["process"]["user"]["uid"] == 1000
    )


def test_user_from_rootfs_path(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "passwd").write_bytes(PASSWD)
    s = build_spec(ContainerOptions(args=("id",), user="bob"), None, tmp_path, host=HOST)
    assert s["process"]["user"]["uid"] == 1000


def test_network_modes() -> None:
    def ns(mode: str) -> list[dict[str, Any]]:
        return list(build(ContainerOptions(network_mode=mode))["linux"]["namespaces"])

    assert {"type": "network"} not in ns("host")
    assert "sysctl" not in build(ContainerOptions(network_mode="host", hostname="h"))["linux"]
    assert {"type": "network", "path": "/run/netns/x"} in ns("/run/netns/x")
    with pytest.raises(errors.InvalidArgument, match="network"):
        ns("bridge0")


def test_resources() -> None:
    r = build(ContainerOptions(memory_bytes=64 << 20, cpus=1.5, pids_limit=100))["linux"][
        "resources"
    ]
    assert r["memory"] == {"limit": 64 << 20, "swap": 128 << 20}
    assert r["cpu"] == {"quota": 150000, "period": 100000}
    assert r["pids"] == {"limit": 100}
    assert build(ContainerOptions(pids_limit=0))["linux"]["resources"]["pids"] == {"limit": -1}
    assert "memory" not in build()["linux"]["resources"]


@pytest.mark.parametrize(
    ("opts", "needle"),
    [
        (ContainerOptions(memory_bytes=-1), "memory"),
        (ContainerOptions(memory_bytes=1024), "memory"),
        (ContainerOptions(cpus=0.0), "cpus"),
        (ContainerOptions(cpus=64.0), "cpus"),
        (ContainerOptions(cpus=float("nan")), "cpus"),
        (ContainerOptions(pids_limit=-5), "pids-limit"),
        (ContainerOptions(user="mallory"), "user"),
        (ContainerOptions(user="bob:nogroup"), "user"),
        (ContainerOptions(cwd="relative"), "cwd"),
        (ContainerOptions(env=("NOVALUE",)), "env"),
        (ContainerOptions(oom_score_adj=1001), "oom-score-adj"),
        (ContainerOptions(rlimits=(Rlimit("nofiles", 1, 2),)), "rlimit"),
        (ContainerOptions(rlimits=(Rlimit("nofile", 3, 2),)), "rlimit"),
        (ContainerOptions(hostname="h" * 65), "hostname"),
    ],
)
def test_invalid_options_name_the_option(opts: ContainerOptions, needle: str) -> None:
    with pytest.raises(errors.InvalidArgument, match=needle):
        build(opts)


@pytest.fixture
def default_logging() -> Iterator[None]:
    """Warnings reach ``capture_logs`` whatever level an earlier test configured."""
    saved = structlog.get_config()
    structlog.reset_defaults()
    try:
        yield
    finally:
        structlog.configure(**saved)


@pytest.mark.usefixtures("default_logging")
def test_rlimits_are_clamped_with_a_warning() -> None:
    with capture_logs() as logs:
        s = build(ContainerOptions(rlimits=(Rlimit("nproc", 10, 20), Rlimit("RLIMIT_CORE", 0, 0))))
    assert s["process"]["rlimits"] == [
        {"type": "RLIMIT_NOFILE", "hard": 20000, "soft": 20000},
        {"type": "RLIMIT_NPROC", "hard": 20, "soft": 10},
        {"type": "RLIMIT_CORE", "hard": 0, "soft": 0},
    ]
    assert [e for e in logs if e["event"] == "spec.rlimit_clamped"] == [
        {
            "event": "spec.rlimit_clamped",
            "log_level": "warning",
            "rlimit": "RLIMIT_NOFILE",
            "requested": 1048576,
            "limit": 20000,
        }
    ]
    with capture_logs() as logs:
        s = build(ContainerOptions(rlimits=(Rlimit("nofile", 100, 1000),)))
    assert s["process"]["rlimits"] == [{"type": "RLIMIT_NOFILE", "hard": 1000, "soft": 100}]
    assert logs == []


@pytest.mark.usefixtures("default_logging")
def test_oom_score_adj_is_clamped_with_a_warning() -> None:
    with capture_logs() as logs:
        s = build(ContainerOptions(oom_score_adj=-500))
    assert s["process"]["oomScoreAdj"] == 0
    oom = [e for e in logs if e["event"] == "spec.oom_score_adj_clamped"]
    assert oom == [
        {
            "event": "spec.oom_score_adj_clamped",
            "log_level": "warning",
            "requested": -500,
            "limit": 0,
        }
    ]
    assert build(ContainerOptions(oom_score_adj=300))["process"]["oomScoreAdj"] == 300


def test_host_probe_reads_this_host() -> None:
    h = Host.probe()
    assert h.capabilities and h.capabilities <= set(ALL_CAPABILITIES)
    assert "RLIMIT_NOFILE" in h.rlimit_hard
    assert h.cpu_count >= 1
