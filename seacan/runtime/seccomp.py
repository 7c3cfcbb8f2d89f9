"""Docker's default seccomp profile, as data, resolved against a capability set.

The facts come from moby's ``profiles/seccomp/default.json``: everything not
listed fails with ``EPERM`` (``SCMP_ACT_ERRNO``, errno 1); a base allowlist; a
few argument filters (``socket`` families, ``personality`` values, ``clone``
without namespace flags); and groups that only a capability unlocks (for
example ``CAP_SYS_ADMIN`` unlocks ``mount``, ``unshare``, ``setns``, full
``clone``)::

    profile = seccomp.default_profile(caps, arch="x86_64")   # linux.seccomp dict

Only x86_64 and aarch64 are described; rules for other architectures are
left out rather than carried along unused.
"""

from __future__ import annotations

import platform
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from seacan import errors

# The native architecture and the ones its kernel also runs (compat modes),
# as libseccomp names them; the Go arch names match the profile's "arches".
ARCH_MAP: dict[str, tuple[str, tuple[str, ...]]] = {
    "x86_64": ("SCMP_ARCH_X86_64", ("SCMP_ARCH_X86", "SCMP_ARCH_X32")),
    "aarch64": ("SCMP_ARCH_AARCH64", ("SCMP_ARCH_ARM",)),
}
_GO_ARCH = {"x86_64": "amd64", "aarch64": "arm64"}

# clone(2) flags that create namespaces: CLONE_NEWNS | CLONE_NEWCGROUP |
# CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET.
CLONE_NAMESPACE_FLAGS = 0x7E020000


@dataclass(frozen=True, slots=True)
class Arg:
    """One argument comparison, as the runtime spec writes it."""

    index: int
    value: int
    op: str
    value_two: int = 0


@dataclass(frozen=True, slots=True)
class Rule:
    """A group of syscalls and the conditions under which it applies.

    ``caps``: every one must be in the bounding set; ``unless_caps``: none
    may be; ``arches``: only there (Go arch names); ``min_kernel``: (major,
    minor) the running kernel must reach.
    """

    names: tuple[str, ...]
    action: str = "SCMP_ACT_ALLOW"
    errno_ret: int | None = None
    args: tuple[Arg, ...] = ()
    caps: frozenset[str] = frozenset()
    unless_caps: frozenset[str] = frozenset()
    arches: frozenset[str] = frozenset()
    min_kernel: tuple[int, int] | None = None


def _names(text: str) -> tuple[str, ...]:
    return tuple(text.split())


def _when(cap: str, text: str) -> Rule:
    return Rule(_names(text), caps=frozenset({cap}))


ALLOWED = _names(
    """
    accept accept4 access adjtimex alarm bind brk cachestat capget capset chdir chmod chown
    chown32 clock_adjtime clock_adjtime64 clock_getres clock_getres_time64 clock_gettime
    clock_gettime64 clock_nanosleep clock_nanosleep_time64 close close_range connect
    copy_file_range creat dup dup2 dup3 epoll_create epoll_create1 epoll_ctl epoll_ctl_old
    epoll_pwait epoll_pwait2 epoll_wait epoll_wait_old eventfd eventfd2 execve execveat exit
    exit_group faccessat faccessat2 fadvise64 fadvise64_64 fallocate fanotify_mark fchdir
    fchmod fchmodat fchmodat2 fchown fchown32 fchownat fcntl fcntl64 fdatasync fgetxattr
    flistxattr flock fork fremovexattr fsetxattr fstat fstat64 fstatat64 fstatfs fstatfs64
    fsync ftruncate ftruncate64 futex futex_requeue futex_time64 futex_wait futex_waitv
    futex_wake futimesat getcpu getcwd getdents getdents64 getegid getegid32 geteuid
    geteuid32 getgid getgid32 getgroups getgroups32 getitimer getpeername getpgid getpgrp
    getpid getppid getpriority getrandom getresgid getresgid32 getresuid getresuid32
    getrlimit get_robust_list getrusage getsid getsockname getsockopt get_thread_area gettid
    gettimeofday getuid getuid32 getxattr getxattrat inotify_add_watch inotify_init
    inotify_init1 inotify_rm_watch io_cancel ioctl io_destroy io_getevents io_pgetevents
    io_pgetevents_time64 ioprio_get ioprio_set io_setup io_submit ipc kill landlock_add_rule
    landlock_create_ruleset landlock_restrict_self lchown lchown32 lgetxattr link linkat
    listen listmount listxattr listxattrat llistxattr _llseek lremovexattr lseek lsetxattr
    lstat lstat64 madvise map_shadow_stack membarrier memfd_create memfd_secret mincore
    mkdir mkdirat mknod mknodat mlock mlock2 mlockall mmap mmap2 mprotect mq_getsetattr
    mq_notify mq_open mq_timedreceive mq_timedreceive_time64 mq_timedsend
    mq_timedsend_time64 mq_unlink mremap mseal msgctl msgget msgrcv msgsnd msync munlock
    munlockall munmap name_to_handle_at nanosleep newfstatat _newselect open openat openat2
    pause pidfd_open pidfd_send_signal pipe pipe2 pkey_alloc pkey_free pkey_mprotect poll
    ppoll ppoll_time64 prctl pread64 preadv preadv2 prlimit64 process_mrelease pselect6
    pselect6_time64 pwrite64 pwritev pwritev2 read readahead readlink readlinkat readv recv
    recvfrom recvmmsg recvmmsg_time64 recvmsg remap_file_pages removexattr removexattrat
    rename renameat renameat2 restart_syscall riscv_hwprobe rmdir rseq rt_sigaction
    rt_sigpending rt_sigprocmask rt_sigqueueinfo rt_sigreturn rt_sigsuspend rt_sigtimedwait
    rt_sigtimedwait_time64 rt_tgsigqueueinfo sched_getaffinity sched_getattr sched_getparam
    sched_get_priority_max sched_get_priority_min sched_getscheduler sched_rr_get_interval
    sched_rr_get_interval_time64 sched_setaffinity sched_setattr sched_setparam
    sched_setscheduler sched_yield seccomp select semctl semget semop semtimedop
    semtimedop_time64 send sendfile sendfile64 sendmmsg sendmsg sendto setfsgid setfsgid32
    setfsuid setfsuid32 setgid setgid32 setgroups setgroups32 setitimer setpgid setpriority
    setregid setregid32 setresgid setresgid32 setresuid setresuid32 setreuid setreuid32
    setrlimit set_robust_list setsid setsockopt set_thread_area set_tid_address setuid
    setuid32 setxattr setxattrat shmat shmctl shmdt shmget shutdown sigaltstack signalfd
    signalfd4 sigprocmask sigreturn socketcall socketpair splice stat stat64 statfs statfs64
    statmount statx symlink symlinkat sync sync_file_range syncfs sysinfo tee tgkill time
    timer_create timer_delete timer_getoverrun timer_gettime timer_gettime64 timer_settime
    timer_settime64 timerfd_create timerfd_gettime timerfd_gettime64 timerfd_settime
    timerfd_settime64 times tkill truncate truncate64 ugetrlimit umask uname unlink unlinkat
    uretprobe utime utimensat utimensat_time64 utimes vfork vmsplice wait4 waitid waitpid
    write writev
"""
)

RULES: tuple[Rule, ...] = (
    Rule(ALLOWED),
    Rule(_names("process_vm_readv process_vm_writev ptrace"), min_kernel=(4, 8)),
    # socket(2) for every address family but AF_ALG (38) and AF_VSOCK (40).
    Rule(("socket",), args=(Arg(0, 38, "SCMP_CMP_LT"),)),
    Rule(("socket",), args=(Arg(0, 39, "SCMP_CMP_EQ"),)),
    Rule(("socket",), args=(Arg(0, 40, "SCMP_CMP_GT"),)),
    # personality(2): PER_LINUX, PER_LINUX32, UNAME26, UNAME26|PER_LINUX32, query.
    *(
        Rule(("personality",), args=(Arg(0, v, "SCMP_CMP_EQ"),))
        for v in (0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF)
    ),
    Rule(
        _names(
            "arm_fadvise64_64 arm_sync_file_range sync_file_range2 breakpoint cacheflush set_tls"
        ),
        arches=frozenset({"arm", "arm64"}),
    ),
    Rule(("arch_prctl",), arches=frozenset({"amd64", "x32"})),
    Rule(("modify_ldt",), arches=frozenset({"amd64", "x32", "x86"})),
    _when("CAP_DAC_READ_SEARCH", "open_by_handle_at"),
    _when(
        "CAP_SYS_ADMIN",
        """bpf clone clone3 fanotify_init fsconfig fsmount fsopen fspick lookup_dcookie
        lsm_get_self_attr lsm_list_modules lsm_set_self_attr mount mount_setattr move_mount
        open_tree perf_event_open quotactl quotactl_fd setdomainname sethostname setns syslog
        umount umount2 unshare""",
    ),
    # Without CAP_SYS_ADMIN: clone only without namespace flags, and clone3
    # (whose flags sit in memory seccomp cannot read) fails with ENOSYS so
    # that libc falls back to clone.
    Rule(
        ("clone",),
        args=(Arg(0, CLONE_NAMESPACE_FLAGS, "SCMP_CMP_MASKED_EQ"),),
        unless_caps=frozenset({"CAP_SYS_ADMIN"}),
    ),
    Rule(
        ("clone3",),
        action="SCMP_ACT_ERRNO",
        errno_ret=38,
        unless_caps=frozenset({"CAP_SYS_ADMIN"}),
    ),
    _when("CAP_SYS_BOOT", "reboot"),
    _when("CAP_SYS_CHROOT", "chroot"),
    _when("CAP_SYS_MODULE", "delete_module init_module finit_module"),
    _when("CAP_SYS_PACCT", "acct"),
    _when(
        "CAP_SYS_PTRACE",
        "kcmp pidfd_getfd process_madvise process_vm_readv process_vm_writev ptrace",
    ),
    _when("CAP_SYS_RAWIO", "iopl ioperm"),
    _when("CAP_SYS_TIME", "settimeofday stime clock_settime clock_settime64"),
    _when("CAP_SYS_TTY_CONFIG", "vhangup"),
    _when("CAP_SYS_NICE", "get_mempolicy mbind set_mempolicy set_mempolicy_home_node"),
    _when("CAP_SYSLOG", "syslog"),
    _when("CAP_BPF", "bpf"),
    _when("CAP_PERFMON", "perf_event_open"),
)


def kernel_version(release: str | None = None) -> tuple[int, int]:
    """(major, minor) of a release string such as ``6.1.0-18-amd64``."""
    rel = release if release is not None else platform.release()
    parts = rel.split(".")
    try:
        return int(parts[0]), int("".join(c for c in parts[1] if c.isdigit()) or 0)
    except (IndexError, ValueError):
        return (0, 0)


def _applies(rule: Rule, caps: frozenset[str], go_arch: str, kernel: tuple[int, int]) -> bool:
    if not rule.caps <= caps or rule.unless_caps & caps:
        return False
    if rule.arches and go_arch not in rule.arches:
        return False
    return rule.min_kernel is None or kernel >= rule.min_kernel


def _rule_json(rule: Rule) -> dict[str, Any]:
    out: dict[str, Any] = {"names": list(rule.names), "action": rule.action}
    if rule.errno_ret is not None:
        out["errnoRet"] = rule.errno_ret
    if rule.args:
        out["args"] = [
            {"index": a.index, "value": a.value, "valueTwo": a.value_two, "op": a.op}
            for a in rule.args
        ]
    return out


def default_profile(
    capabilities: Iterable[str],
    *,
    arch: str | None = None,
    kernel: tuple[int, int] | None = None,
) -> dict[str, Any]:
    """The ``linux.seccomp`` section for a process with this bounding set."""
    machine = arch or platform.machine()
    if machine not in ARCH_MAP:
        raise errors.InvalidArgument(f"seccomp: architecture {machine} is not supported")
    native, compat = ARCH_MAP[machine]
    caps = frozenset(capabilities)
    kver = kernel if kernel is not None else kernel_version()
    return {
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 1,
        "architectures": [native, *compat],
        "syscalls": [_rule_json(r) for r in RULES if _applies(r, caps, _GO_ARCH[machine], kver)],
    }


def allowed_syscalls(profile: dict[str, Any]) -> set[str]:
    """Names a profile allows outright or under some argument filter."""
    return {
        name
        for rule in profile["syscalls"]
        if rule["action"] == "SCMP_ACT_ALLOW"
        for name in rule["names"]
    }
