"""``containerd-shim-seacan-v2``: containerd's shim v2 binary contract.

containerd runs the binary three ways (flags as Go's ``flag`` package spells
them, one dash)::

    shim -namespace NS -address A -publish-binary B -id ID [-debug] start
        cwd = the bundle. Prints the ttrpc address of a serving shim
        (``unix:///run/seacan/s/<sha256(A/NS/ID)>``) and exits 0. A shim
        already serving there is reused; otherwise this process binds the
        socket, writes ``address`` into the bundle and spawns the serving
        shim (its own session, the socket as fd 3), which outlives it.
    shim -namespace NS -address A -publish-binary B -id ID [-debug]
        (the serving shim, as spawned by ``start``): the Task service.
    shim -namespace NS -address A -publish-binary B -id ID -bundle DIR delete
        cwd = the bundle. Cleans up after a shim that is gone: ``runc delete
        --force``, unmount ``rootfs``; prints a protobuf DeleteResponse
        (pid, exit status: the recorded one or 137, exited_at) on stdout.

Environment: ``TTRPC_ADDRESS`` (where events go, set by containerd),
``SEACAN_SHIM_SOCKET_DIR`` (default ``/run/seacan/s``) and
``SEACAN_RUNC_ROOT`` (default ``/run/seacan/runc``; the namespace is
appended).

The serving shim is the child subreaper of its containers, reaps every child
itself (the asyncio child watcher is replaced by :class:`Reaper`, so runc's
own exits still reach asyncio's subprocess code), logs JSON lines to the
bundle's ``log`` FIFO that containerd reads, and exits after a Shutdown once
no container is left. It imports protobuf, never grpcio.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

# Only what ``start`` needs is imported here: it runs once per container, as
# its own process. The serving shim and ``delete`` live in
# :mod:`seacan.shims.serving` (which the template preloads).

SOCKET_DIR_ENV = "SEACAN_SHIM_SOCKET_DIR"
DEFAULT_SOCKET_DIR = "/run/seacan/s"
LISTEN_FD = 3
PR_SET_CHILD_SUBREAPER = 36
UNKNOWN_EXIT = 137
SHUTDOWN_FLUSH = 2.0
TEMPLATE_ENV = "SEACAN_SHIM_TEMPLATE"
TEMPLATE_WAIT = 1.0  # seconds to wait for a template that refuses connections

# Called once the serving shim accepts connections (the template's readiness report).
on_serving: Callable[[], None] | None = None


def parse(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="containerd-shim-seacan-v2", allow_abbrev=False)
    for name in ("namespace", "address", "publish-binary", "id", "bundle", "socket"):
        p.add_argument(f"-{name}", f"--{name}", dest=name.replace("-", "_"), default="")
    p.add_argument("-debug", "--debug", action="store_true")
    p.add_argument("action", nargs="?", default="", choices=["", "start", "delete"])
    args, unknown = p.parse_known_args(list(argv))
    if unknown:
        print(f"seacan shim: ignoring arguments {unknown}", file=sys.stderr)
    return args


def socket_path(address: str, namespace: str, id: str, base: str | None = None) -> str:
    """Where the shim for (containerd address, namespace, container) listens."""
    base = base or os.environ.get(SOCKET_DIR_ENV) or DEFAULT_SOCKET_DIR
    key = os.path.join(address, namespace, id)
    return os.path.join(base, hashlib.sha256(key.encode()).hexdigest())


def _serving(path: str) -> bool:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(1.0)
    try:
        s.connect(path)
        return True
    except OSError:
        return False
    finally:
        s.close()


# --- start ----------------------------------------------------------------------


def cmd_start(args: argparse.Namespace) -> int:
    with contextlib.suppress(OSError):
        sys.stdin.buffer.read()  # the options Any; Create carries them again
    path = socket_path(args.address, args.namespace, args.id)
    address = "unix://" + path
    if _serving(path):
        sys.stdout.write(address)
        return 0
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    os.makedirs(os.path.dirname(path), mode=0o711, exist_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(path)
    sock.listen(128)
    Path("address").write_text(address)
    serve_argv = ["-namespace", args.namespace, "-id", args.id, "-address", args.address]
    serve_argv += ["-publish-binary", args.publish_binary]
    if args.debug:
        serve_argv.append("-debug")
    if _start_from_template(sock, serve_argv, args):
        sys.stdout.write(address)
        return 0
    if sock.fileno() != LISTEN_FD:
        os.dup2(sock.fileno(), LISTEN_FD, inheritable=False)
    try:
        subprocess.Popen(
            [sys.executable, "-m", "seacan.shims.main", *serve_argv],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            pass_fds=(LISTEN_FD,),
            start_new_session=True,
            cwd=os.getcwd(),
        )
    except OSError as e:
        os.unlink(path)
        print(f"seacan shim: cannot start the shim: {e}", file=sys.stderr)
        return 1
    sys.stdout.write(address)
    return 0


def _start_from_template(
    sock: socket.socket, serve_argv: list[str], args: argparse.Namespace
) -> bool:
    """Fork the serving shim from the template named by ``SEACAN_SHIM_TEMPLATE``, if it answers."""
    path = os.environ.get(TEMPLATE_ENV, "")
    if not path or not os.path.exists(path):
        return False
    from seacan.shims import template  # only the start path needs it

    # A template being restarted has not bound its socket yet (the old file
    # may still be there): retry a refused connection briefly before spawning.
    deadline = time.monotonic() + TEMPLATE_WAIT
    try:
        while True:
            try:
                template.request(path, sock.fileno(), serve_argv, args.namespace, args.id)
                break
            except (ConnectionRefusedError, FileNotFoundError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
    except (OSError, ValueError, KeyError, template.TemplateError) as e:
        print(f"seacan shim: template {path}: {e}; spawning", file=sys.stderr)
        return False
    return True


def start_in_process(
    namespace: str, address: str, publish_binary: str, id: str, bundle: str, env: dict[str, str]
) -> str | None:
    """``start`` done by the caller (seacan's tasks service), saving a process: the address
    of a shim forked by the template that ``env`` names, or None (no template answered: the
    caller runs ``start``). Blocking."""
    template_path = env.get(TEMPLATE_ENV, "")
    if not template_path or not os.path.exists(template_path):
        return None
    from seacan.shims import template

    path = socket_path(address, namespace, id, env.get(SOCKET_DIR_ENV))
    if _serving(path):
        return "unix://" + path
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    os.makedirs(os.path.dirname(path), mode=0o711, exist_ok=True)
    argv = ["-namespace", namespace, "-id", id, "-address", address]
    argv += ["-publish-binary", publish_binary]
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.bind(path)
        sock.listen(128)
        Path(bundle, "address").write_text("unix://" + path)
        try:
            template.request(template_path, sock.fileno(), argv, namespace, id, env=env, cwd=bundle)
        except (OSError, ValueError, KeyError, template.TemplateError):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            return None
    return "unix://" + path


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    if not args.id:
        print("seacan shim: -id is required", file=sys.stderr)
        return 1
    if args.action == "start":
        return cmd_start(args)
    from seacan.shims import serving

    if args.action == "delete":
        return serving.cmd_delete(args)
    return serving.cmd_serve(args)


def __getattr__(name: str) -> Any:
    """The serving shim's names (``Reaper``, ``serve``, ...), from :mod:`seacan.shims.serving`."""
    if name.startswith("__"):
        raise AttributeError(name)
    from seacan.shims import serving

    try:
        return getattr(serving, name)
    except AttributeError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None


if __name__ == "__main__":
    sys.exit(main())
