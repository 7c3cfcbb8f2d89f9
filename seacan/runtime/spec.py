"""The OCI runtime spec (``config.json``) for a container, with Docker's defaults.

This is the one place that writes a raw spec (runc's ``specconv`` idea):
callers describe a container with :class:`ContainerOptions`, and
:func:`build_spec` turns it, the image's config and the rootfs's
``/etc/passwd`` into the dict runc reads::

    opts = ContainerOptions(args=("sh", "-c", "id"), user="nobody", memory_bytes=64 << 20)
    spec = build_spec(opts, image.config, rootfs_dir, cgroups_path="/seacan/default/web")
    (bundle / "config.json").write_text(json.dumps(spec))

What Docker sets, and so what this sets: the 14 default capabilities in the
bounding/effective/permitted sets (never inheritable or ambient), ``--cap-add``
and ``--cap-drop`` with ``ALL``, the default mounts (``/dev/shm`` 64 MiB),
masked and read-only ``/proc`` and ``/sys`` paths, new pid/ipc/uts/mount/network
namespaces, the default seccomp profile resolved against the final
capabilities, the device cgroup allow list, ``RLIMIT_NOFILE`` 1048576, the
unprivileged ping and low-port sysctls in a private network namespace.
``privileged`` means every capability, no seccomp, no masked or read-only
paths, a writable ``/sys`` and every device allowed.

The host can refuse some of that: this host has no ``CAP_SYS_RESOURCE``, so
an rlimit above our own hard limit and an ``oom_score_adj`` below our own are
clamped with a warning (``spec.rlimit_clamped``, ``spec.oom_score_adj_clamped``),
as containerd's ``restrict_oom_score_adj`` does. What the host offers is
gathered once in :class:`Host` (``Host.probe()``), so building a spec is
pure given a ``Host``.

Invalid options raise ``errors.InvalidArgument`` naming the option.
"""

from __future__ import annotations

import glob
import math
import os
import platform
import posixpath
import resource
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from seacan import errors, log
from seacan.runtime import seccomp, users

OCI_VERSION = "1.0.2"
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEFAULT_SHM_SIZE = 64 << 20
DEFAULT_NOFILE = 1048576
MIN_MEMORY = 6 << 20  # Docker: "Minimum memory limit allowed is 6MB"
CPU_PERIOD = 100000

# Capability numbers, as <linux/capability.h> has them.
ALL_CAPABILITIES: tuple[str, ...] = tuple(
    "CAP_" + n
    for n in (  # noqa: SIM905 - one line per few numbers reads better than 41 literals
        "CHOWN DAC_OVERRIDE DAC_READ_SEARCH FOWNER FSETID KILL SETGID SETUID SETPCAP "
        "LINUX_IMMUTABLE NET_BIND_SERVICE NET_BROADCAST NET_ADMIN NET_RAW IPC_LOCK IPC_OWNER "
        "SYS_MODULE SYS_RAWIO SYS_CHROOT SYS_PTRACE SYS_PACCT SYS_ADMIN SYS_BOOT SYS_NICE "
        "SYS_RESOURCE SYS_TIME SYS_TTY_CONFIG MKNOD LEASE AUDIT_WRITE AUDIT_CONTROL SETFCAP "
        "MAC_OVERRIDE MAC_ADMIN SYSLOG WAKE_ALARM BLOCK_SUSPEND AUDIT_READ PERFMON BPF "
        "CHECKPOINT_RESTORE"
    ).split()
)

DEFAULT_CAPABILITIES: tuple[str, ...] = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
)

MASKED_PATHS: tuple[str, ...] = (
    "/proc/acpi",
    "/proc/asound",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/sys/devices/virtual/powercap",
    "/sys/firmware",
)

READONLY_PATHS: tuple[str, ...] = (
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
)

RLIMIT_TYPES = frozenset(
    "RLIMIT_" + n
    for n in (  # noqa: SIM905
        "AS CORE CPU DATA FSIZE LOCKS MEMLOCK MSGQUEUE NICE NOFILE NPROC RSS RTPRIO "
        "RTTIME SIGPENDING STACK"
    ).split()
)

_PRIVATE_NET_SYSCTLS = {
    # unprivileged ICMP echo sockets without CAP_NET_RAW
    "net.ipv4.ping_group_range": "0 2147483647",
    # ports below 1024 without CAP_NET_BIND_SERVICE
    "net.ipv4.ip_unprivileged_port_start": "0",
}


def _dev(major: int, minor: int, allow: bool = True) -> dict[str, Any]:
    return {"allow": allow, "type": "c", "major": major, "minor": minor, "access": "rwm"}


DEVICE_RULES: tuple[dict[str, Any], ...] = (
    {"allow": False, "access": "rwm"},
    _dev(1, 5),  # /dev/zero
    _dev(1, 3),  # /dev/null
    _dev(1, 9),  # /dev/urandom
    _dev(1, 8),  # /dev/random
    _dev(5, 0),  # /dev/tty
    _dev(5, 1),  # /dev/console
    _dev(10, 229, allow=False),  # /dev/fuse
)


@dataclass(frozen=True, slots=True)
class Rlimit:
    type: str  # "RLIMIT_NOFILE" or "nofile"
    soft: int
    hard: int


@dataclass(frozen=True, slots=True)
class ContainerOptions:
    """What a user asks for (``seacan run`` flags), before any defaults."""

    args: tuple[str, ...] = ()
    entrypoint: tuple[str, ...] | None = None  # None: the image's; (): none
    env: tuple[str, ...] = ()  # "KEY=value", overriding the image's
    cwd: str | None = None
    user: str | None = None  # "uid[:gid]" or "name[:group]"
    hostname: str | None = None
    terminal: bool = False
    read_only_rootfs: bool = False
    privileged: bool = False
    cap_add: tuple[str, ...] = ()
    cap_drop: tuple[str, ...] = ()
    no_new_privileges: bool = False
    memory_bytes: int | None = None
    cpus: float | None = None
    pids_limit: int | None = None  # 0 or -1: unlimited
    rlimits: tuple[Rlimit, ...] = ()
    network_mode: str = "none"  # "none" (own netns, loopback only), "host", or a netns path
    oom_score_adj: int | None = None
    shm_size: int = DEFAULT_SHM_SIZE
    annotations: Mapping[str, str] = field(default_factory=dict)
    # Extra OCI mounts (volumes, binds, tmpfs, /etc/hosts ...); one with the same
    # destination as a default mount replaces it.
    mounts: tuple[Mapping[str, Any], ...] = ()


@dataclass(frozen=True, slots=True)
class Host:
    """What this host lets a container have; ``Host.probe()`` reads it once."""

    capabilities: frozenset[str]  # effective set of this process
    rlimit_hard: Mapping[str, int]  # RLIMIT_* -> our hard limit (-1: unlimited)
    oom_score_adj: int = 0
    arch: str = "x86_64"
    kernel: tuple[int, int] = (6, 0)
    cpu_count: int = 1
    swap_limit: bool = False  # memory.memsw / memory.swap.max present
    sysctls: frozenset[str] = frozenset()  # the private-net sysctls this kernel has
    extra_masked_paths: tuple[str, ...] = ()  # per-CPU thermal_throttle, as Docker

    @classmethod
    def probe(cls) -> Host:
        hard: dict[str, int] = {}
        for name in RLIMIT_TYPES:
            const = getattr(resource, name, None)
            if const is not None:
                h = resource.getrlimit(const)[1]
                hard[name] = -1 if h == resource.RLIM_INFINITY else h
        try:
            with open("/proc/self/oom_score_adj") as f:
                oom = int(f.read().strip())
        except (OSError, ValueError):
            oom = 0
        return cls(
            capabilities=_current_capabilities(),
            rlimit_hard=hard,
            oom_score_adj=oom,
            arch=platform.machine(),
            kernel=seccomp.kernel_version(),
            cpu_count=os.cpu_count() or 1,
            swap_limit=os.path.exists("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes")
            or os.path.exists("/sys/fs/cgroup/memory.swap.max"),
            sysctls=frozenset(
                k
                for k in _PRIVATE_NET_SYSCTLS
                if os.path.exists("/proc/sys/" + k.replace(".", "/"))
            ),
            extra_masked_paths=tuple(
                sorted(
                    glob.glob("/sys/devices/system/cpu/cpu[0-9]*/thermal_throttle"),
                    key=lambda p: int(p.split("/")[5][3:]),
                )
            ),
        )


def _current_capabilities() -> frozenset[str]:
    try:
        with open("/proc/self/status") as f:
            line = next(x for x in f if x.startswith("CapEff:"))
        mask = int(line.split()[1], 16)
    except (OSError, StopIteration, ValueError):
        return frozenset(ALL_CAPABILITIES)
    return frozenset(c for i, c in enumerate(ALL_CAPABILITIES) if mask >> i & 1)


# -- pieces --------------------------------------------------------------------


def _normalize_caps(names: tuple[str, ...], option: str, host: Host) -> list[str]:
    out = []
    for raw in names:
        c = raw.upper()
        if c != "ALL" and not c.startswith("CAP_"):
            c = "CAP_" + c
        if c != "ALL" and c not in ALL_CAPABILITIES:
            raise errors.InvalidArgument(f"{option}: unknown capability: {raw!r}")
        if c != "ALL" and c not in host.capabilities:
            raise errors.InvalidArgument(
                f"{option}: capability not available in the current environment: {c}"
            )
        out.append(c)
    return out


def capabilities(opts: ContainerOptions, host: Host) -> list[str]:
    """The final capability set: Docker's ``TweakCapabilities``."""
    available = [c for c in ALL_CAPABILITIES if c in host.capabilities]
    if opts.privileged:
        return available
    drops = _normalize_caps(opts.cap_drop, "cap-drop", host)
    adds = _normalize_caps(opts.cap_add, "cap-add", host)
    if "ALL" in adds:
        caps = [c for c in available if c not in drops]
    elif "ALL" in drops:
        caps = list(adds)
    else:
        caps = [c for c in DEFAULT_CAPABILITIES if c not in drops] + adds
    return list(dict.fromkeys(caps))


def _env_key(entry: str) -> str:
    return entry.partition("=")[0]


def _merge_env(base: list[str], override: list[str]) -> list[str]:
    """Docker's ``ReplaceOrAppendEnvValues``: same key replaces in place."""
    out = list(base)
    index = {_env_key(e): i for i, e in enumerate(out)}
    for e in override:
        k = _env_key(e)
        if k in index:
            out[index[k]] = e
        else:
            index[k] = len(out)
            out.append(e)
    return out


def _str_list(cfg: Mapping[str, Any], key: str) -> list[str]:
    value = cfg.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise errors.InvalidArgument(f"image config {key} must be a list of strings")
    return value


def process_args(opts: ContainerOptions, cfg: Mapping[str, Any]) -> list[str]:
    """Entrypoint + Cmd with Docker's rules: ``--entrypoint`` drops the image's Cmd."""
    entrypoint = list(opts.entrypoint) if opts.entrypoint is not None else None
    if entrypoint is None:
        entrypoint = _str_list(cfg, "Entrypoint")
        cmd = list(opts.args) or _str_list(cfg, "Cmd")
    else:
        cmd = list(opts.args)
    args = entrypoint + cmd
    if not args:
        raise errors.InvalidArgument("args: no command specified")
    return args


def _rlimits(opts: ContainerOptions, host: Host) -> list[dict[str, Any]]:
    wanted: dict[str, tuple[int, int]] = {"RLIMIT_NOFILE": (DEFAULT_NOFILE, DEFAULT_NOFILE)}
    for r in opts.rlimits:
        name = r.type.upper()
        if not name.startswith("RLIMIT_"):
            name = "RLIMIT_" + name
        if name not in RLIMIT_TYPES:
            raise errors.InvalidArgument(f"rlimit: unknown type {r.type!r}")
        if r.soft < 0 or r.hard < 0 or r.soft > r.hard:
            raise errors.InvalidArgument(
                f"rlimit {name}: soft {r.soft} and hard {r.hard} must be 0 <= soft <= hard"
            )
        wanted[name] = (r.soft, r.hard)
    out = []
    for name, (soft, hard) in wanted.items():
        limit = host.rlimit_hard.get(name, -1)
        if limit >= 0 and hard > limit:
            log.get("seacan.runtime.spec").warning(
                "spec.rlimit_clamped", rlimit=name, requested=hard, limit=limit
            )
            hard, soft = limit, min(soft, limit)
        out.append({"type": name, "hard": hard, "soft": soft})
    return out


def _mounts(opts: ContainerOptions) -> list[dict[str, Any]]:
    extra = [dict(m) for m in opts.mounts]
    replaced = {m["destination"] for m in extra}
    defaults = [m for m in _default_mounts(opts) if m["destination"] not in replaced]
    return [*defaults, *extra]


def _default_mounts(opts: ContainerOptions) -> list[dict[str, Any]]:
    sys_ro = [] if opts.privileged else ["ro"]
    return [
        {
            "destination": "/proc",
            "type": "proc",
            "source": "proc",
            "options": ["nosuid", "noexec", "nodev"],
        },
        {
            "destination": "/dev",
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["nosuid", "strictatime", "mode=755", "size=65536k"],
        },
        {
            "destination": "/dev/pts",
            "type": "devpts",
            "source": "devpts",
            "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
        },
        {
            "destination": "/sys",
            "type": "sysfs",
            "source": "sysfs",
            "options": ["nosuid", "noexec", "nodev", *sys_ro],
        },
        {
            "destination": "/sys/fs/cgroup",
            "type": "cgroup",
            "source": "cgroup",
            "options": [*sys_ro, "nosuid", "noexec", "nodev"],
        },
        {
            "destination": "/dev/mqueue",
            "type": "mqueue",
            "source": "mqueue",
            "options": ["nosuid", "noexec", "nodev"],
        },
        {
            "destination": "/dev/shm",
            "type": "tmpfs",
            "source": "shm",
            "options": ["nosuid", "noexec", "nodev", "mode=1777", f"size={opts.shm_size}"],
        },
    ]


def _resources(opts: ContainerOptions, host: Host) -> dict[str, Any]:
    res: dict[str, Any] = {
        "devices": [{"allow": True, "access": "rwm"}] if opts.privileged else list(DEVICE_RULES)
    }
    if opts.memory_bytes is not None:
        if opts.memory_bytes < 0:
            raise errors.InvalidArgument(f"memory: {opts.memory_bytes} is negative")
        if 0 < opts.memory_bytes < MIN_MEMORY:
            raise errors.InvalidArgument("memory: minimum memory limit allowed is 6MB")
        if opts.memory_bytes:
            res["memory"] = {"limit": opts.memory_bytes}
            if host.swap_limit:  # Docker: swap defaults to twice the memory
                res["memory"]["swap"] = 2 * opts.memory_bytes
    if opts.cpus is not None:
        if not math.isfinite(opts.cpus) or opts.cpus < 0.01 or opts.cpus > host.cpu_count:
            raise errors.InvalidArgument(
                f"cpus: {opts.cpus} is out of range; the range of CPUs is from 0.01 to "
                f"{host.cpu_count}"
            )
        res["cpu"] = {"quota": round(opts.cpus * CPU_PERIOD), "period": CPU_PERIOD}
    if opts.pids_limit is not None:
        if opts.pids_limit < -1:
            raise errors.InvalidArgument(f"pids-limit: {opts.pids_limit} is out of range")
        res["pids"] = {"limit": opts.pids_limit if opts.pids_limit > 0 else -1}
    return res


def _namespaces(opts: ContainerOptions) -> list[dict[str, Any]]:
    mode = opts.network_mode
    net: list[dict[str, Any]]
    if mode == "host":
        net = []
    elif mode == "none":
        net = [{"type": "network"}]
    elif mode.startswith("/"):
        net = [{"type": "network", "path": mode}]
    else:
        raise errors.InvalidArgument(
            f"network: {mode!r} must be 'none', 'host' or a network namespace path"
        )
    return [{"type": "mount"}, *net, {"type": "uts"}, {"type": "pid"}, {"type": "ipc"}]


def _oom_score_adj(value: int, host: Host) -> int:
    if not -1000 <= value <= 1000:
        raise errors.InvalidArgument(f"oom-score-adj: {value} is not in range -1000..1000")
    if value < host.oom_score_adj:
        log.get("seacan.runtime.spec").warning(
            "spec.oom_score_adj_clamped", requested=value, limit=host.oom_score_adj
        )
        return host.oom_score_adj
    return value


# -- the spec ----------------------------------------------------------------


def build_spec(
    opts: ContainerOptions,
    image_config: Mapping[str, Any] | None,
    rootfs_etc: users.EtcSource,
    *,
    cgroups_path: str | None = None,
    root_path: str = "rootfs",
    host: Host | None = None,
) -> dict[str, Any]:
    """The ``config.json`` dict for ``opts`` on top of the image's ``config`` object.

    ``rootfs_etc`` is the mounted rootfs (or a reader of its /etc files) used
    for user lookups; ``cgroups_path`` is e.g. ``/seacan/<namespace>/<id>``;
    ``root_path`` is the bundle-relative (or absolute) rootfs written to ``root.path``.
    """
    cfg: Mapping[str, Any] = image_config or {}
    host = host or Host.probe()

    args = process_args(opts, cfg)

    user_spec = opts.user if opts.user is not None else (cfg.get("User") or "")
    if not isinstance(user_spec, str):
        raise errors.InvalidArgument("image config User must be a string")
    try:
        user = users.lookup(user_spec, rootfs_etc)
    except errors.InvalidArgument as e:
        raise errors.InvalidArgument(f"user: {e.message}") from e

    cwd = opts.cwd or cfg.get("WorkingDir") or "/"
    if not isinstance(cwd, str) or not cwd.startswith("/"):
        raise errors.InvalidArgument(
            f"cwd: the working directory {cwd!r} is invalid, it needs to be an absolute path"
        )
    cwd = posixpath.normpath(cwd)

    for entry in opts.env:
        if "=" not in entry or not _env_key(entry):
            raise errors.InvalidArgument(f"env: {entry!r} is not KEY=value")
    hostname = opts.hostname
    if hostname is None:
        hostname = socket.gethostname() if opts.network_mode == "host" else ""
    if len(hostname) > 64:
        raise errors.InvalidArgument(f"hostname: {hostname!r} is longer than 64 bytes")
    base_env = [DEFAULT_PATH]
    if hostname:
        base_env.append("HOSTNAME=" + hostname)
    if opts.terminal:
        base_env.append("TERM=xterm")
    env = _merge_env(_merge_env(base_env, _str_list(cfg, "Env")), list(opts.env))

    caps = capabilities(opts, host)
    process: dict[str, Any] = {
        "terminal": opts.terminal,
        "user": {
            "uid": user.uid,
            "gid": user.gid,
            "additionalGids": list(user.additional_gids),
        },
        "args": args,
        "env": env,
        "cwd": cwd,
        "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
        "rlimits": _rlimits(opts, host),
        "noNewPrivileges": opts.no_new_privileges,
    }
    if opts.oom_score_adj is not None:
        process["oomScoreAdj"] = _oom_score_adj(opts.oom_score_adj, host)

    linux: dict[str, Any] = {
        "resources": _resources(opts, host),
        "namespaces": _namespaces(opts),
    }
    if cgroups_path is not None:
        linux["cgroupsPath"] = cgroups_path
    if opts.network_mode == "none":
        linux["sysctl"] = {k: v for k, v in _PRIVATE_NET_SYSCTLS.items() if k in host.sysctls}
    if not opts.privileged:
        linux["maskedPaths"] = [*MASKED_PATHS, *host.extra_masked_paths]
        linux["readonlyPaths"] = list(READONLY_PATHS)
        linux["seccomp"] = seccomp.default_profile(caps, arch=host.arch, kernel=host.kernel)

    spec: dict[str, Any] = {
        "ociVersion": OCI_VERSION,
        "process": process,
        "root": {"path": root_path, "readonly": opts.read_only_rootfs},
        "hostname": hostname,
        "mounts": _mounts(opts),
        "linux": linux,
    }
    if opts.annotations:
        spec["annotations"] = dict(opts.annotations)
    return spec
