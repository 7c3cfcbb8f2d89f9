"""The seacan command: ``seacan [global flags] <noun> <verb> [args]``, ctr's grammar.

Global flags: ``-a/--address`` (``$SEACAN_ADDRESS``, default
``/run/seacan/seacan.sock``), ``-n/--namespace`` (``$SEACAN_NAMESPACE``,
default ``default``), ``--debug``, ``--connect-timeout``. Nouns are plural
with short aliases (``images|image|i``); ``ls`` works everywhere.

Every command talks to seacand through :class:`seacan.client.Client` only.
A failure prints one line, ``seacan: <message>``, on stderr and exits 1.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, NoReturn

from seacan import address, errors

DEFAULT_NAMESPACE = "default"

# What gRPC says when the daemon goes away in the middle of a command.
_TRANSPORT = (
    "failed to connect",
    "socket closed",
    "connection reset",
    "connection refused",
    "broken pipe",
    "stream removed",
)

Handler = Callable[[Any, argparse.Namespace], Awaitable[int]]
FastHandler = Callable[[argparse.Namespace], "int | None"]


class UsageError(Exception):
    """A command line that does not parse."""


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line and exit status 1."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see '{self.prog} --help')")


# The modules (seacan.cli.<name>) whose register() adds commands, in help order.
MODULES = (
    "commands",
    "images",
    "containers",
    "tasks",
    "run",
    "distribution",
    "network",
    "volume",
    "build",
    "registry",
)

# Every command: (module, name, aliases, help). ``seacan --help`` is printed
# from this table and a command imports only its own module, so the CLI starts
# fast. A command missing here still works (then every module is loaded);
# tests/unit/test_cli_lazy.py keeps the table in step with the modules.
COMMANDS: tuple[tuple[str, str, tuple[str, ...], str], ...] = (
    ("commands", "version", (), "print the client and server versions"),
    ("commands", "namespaces", ("namespace", "ns"), "manage namespaces"),
    ("commands", "content", (), "manage the content store"),
    ("commands", "snapshots", ("snapshot",), "manage snapshots"),
    ("commands", "leases", ("lease",), "manage leases"),
    ("commands", "prune", (), "remove everything nothing references (garbage collection)"),
    ("images", "images", ("image", "i"), "manage images"),
    ("containers", "containers", ("container", "c"), "manage containers"),
    ("tasks", "tasks", ("task", "t"), "manage tasks"),
    ("run", "run", (), "run a command in a new container"),
    ("run", "ps", (), "list containers"),
    ("run", "logs", (), "print a detached container's output"),
    ("run", "exec", (), "run a command in a running container"),
    ("run", "start", (), "start stopped containers (detached)"),
    ("run", "stop", (), "stop containers: stop signal, grace period, SIGKILL"),
    ("run", "kill", (), "signal containers"),
    ("run", "rm", (), "remove containers"),
    ("run", "wait", (), "wait for containers to exit; print their exit status"),
    ("run", "pause", (), "pause containers"),
    ("run", "unpause", (), "resume paused containers"),
    ("run", "inspect", (), "show containers as JSON"),
    ("run", "stats", (), "show containers' CPU, memory and pids use"),
    ("run", "events", (), "print events as they happen"),
    ("distribution", "pull", (), "pull an image from a registry"),
    ("distribution", "push", (), "push an image to a registry"),
    ("distribution", "login", (), "log in to a registry (credentials go to the Docker config)"),
    ("distribution", "logout", (), "log out from a registry"),
    ("network", "port", (), "list a container's published ports"),
    ("network", "networks", ("network", "net"), "manage networks"),
    ("volume", "volumes", ("volume", "vol"), "manage volumes"),
    ("build", "build", (), "build an image from a Dockerfile"),
    ("build", "commit", (), "create an image from a container's changes"),
    ("build", "history", (), "show the history of an image"),
    ("build", "builder", (), "manage the build cache"),
    ("registry", "registry", ("reg",), "run seacan's own OCI registry server"),
)


def _add_globals(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "-a",
        "--address",
        default=address.from_env(),
        help="seacand's socket (env SEACAN_ADDRESS, default %(default)s)",
    )
    p.add_argument(
        "-n",
        "--namespace",
        default=os.environ.get("SEACAN_NAMESPACE") or DEFAULT_NAMESPACE,
        help="namespace to work in (env SEACAN_NAMESPACE, default %(default)s)",
    )
    p.add_argument("--debug", action="store_true", help="log debug output and tracebacks")
    p.add_argument(
        "--connect-timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="how long to wait for seacand (default %(default)s)",
    )


def build_parser(modules: Sequence[str] = MODULES) -> Parser:
    """The parser with the commands of ``modules`` (all of them by default)."""
    p = Parser(
        prog="seacan",
        description="seacan: a containerd-compatible container runtime (client)",
    )
    _add_globals(p)
    nouns = p.add_subparsers(dest="noun", metavar="COMMAND", parser_class=Parser)
    for name in modules:
        importlib.import_module(f"seacan.cli.{name}").register(nouns)
    return p


def help_parser() -> Parser:
    """A parser that only knows the commands' names: enough for ``seacan --help``."""
    p = build_parser(())
    nouns = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction))
    for _, name, aliases, help_ in COMMANDS:
        nouns.add_parser(name, aliases=list(aliases), help=help_)
    return p


def parser_for(argv: Sequence[str]) -> Parser:
    """The cheapest parser for ``argv``: the chosen command's module only."""
    pre = Parser(add_help=False)
    _add_globals(pre)
    pre.add_argument("noun", nargs="?")
    pre.add_argument("rest", nargs=argparse.REMAINDER)
    try:
        known, _ = pre.parse_known_args(argv)
    except UsageError:
        return build_parser()
    if known.noun is None:
        return help_parser()
    for module, name, aliases, _ in COMMANDS:
        if known.noun == name or known.noun in aliases:
            return build_parser((module,))
    return build_parser()


def _first(eg: BaseExceptionGroup[Any]) -> BaseException:
    e: BaseException = eg
    while isinstance(e, BaseExceptionGroup):
        e = e.exceptions[0]
    return e


async def run(args: argparse.Namespace) -> int:
    """Connect and run the chosen command; its exit status."""
    from seacan.client import Client

    func: Handler = args.func
    if getattr(args, "offline", False):
        # Commands that need no daemon (``registry serve``, ``login``) get no client.
        return await func(None, args)
    client = await Client.connect(args.address, args.namespace, timeout=args.connect_timeout)
    try:
        return await func(client, args)
    except errors.Unavailable as e:
        if any(s in e.message.lower() for s in _TRANSPORT):
            raise errors.Unavailable(f"lost connection to seacand at {args.address}: {e}") from None
        raise
    finally:
        await client.close()


def _dispatch(args: argparse.Namespace) -> tuple[int, bool]:
    """Run the command: its fast path if it has one that takes these arguments
    (``fast(args) -> int | None``: synchronous, no asyncio and no grpcio import),
    else its asyncio handler with a client. The exit status, and whether the
    fast path ran."""
    fast: FastHandler | None = getattr(args, "fast", None)
    if fast is not None:
        code = fast(args)
        if code is not None:
            return code, True
    import asyncio

    return asyncio.run(run(args)), False


def _exit_now(code: int) -> NoReturn:
    """Exit without the interpreter's finalization (~7 ms, a tenth of a fast
    command): for a fast path that succeeded, which leaves no thread, file or
    connection open; its output is flushed here."""
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BrokenPipeError:
        pass
    os._exit(code)


def main(argv: Sequence[str] | None = None) -> None:
    """The ``seacan`` program (``argv`` None: the process's own arguments; then a
    fast path that succeeded ends the process at once, see :func:`_exit_now`)."""
    whole_process = argv is None
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = parser_for(argv)
    try:
        args = parser.parse_args(argv)
    except UsageError as e:
        print(f"seacan: {e}", file=sys.stderr)
        raise SystemExit(1) from None
    if args.noun is None:
        parser.print_help()
        raise SystemExit(0)
    if getattr(args, "func", None) is None and getattr(args, "fast", None) is None:
        sub: argparse.ArgumentParser = args.noun_parser
        print(
            f"seacan: {args.noun}: a command is required (see '{sub.prog} --help')", file=sys.stderr
        )
        raise SystemExit(1)
    from seacan import log

    log.configure("debug" if args.debug else "error", json=False, lazy=True)
    try:
        code, fast = _dispatch(args)
    except KeyboardInterrupt:
        print("seacan: interrupted", file=sys.stderr)
        raise SystemExit(130) from None
    except BrokenPipeError:
        # The reader went away (``seacan images ls | head``): not an error.
        with_devnull()
        raise SystemExit(0) from None
    except BaseException as e:
        if isinstance(e, SystemExit):
            raise
        err: BaseException = _first(e) if isinstance(e, BaseExceptionGroup) else e
        if args.debug:
            import traceback

            traceback.print_exception(err)
        print(f"seacan: {message(err)}", file=sys.stderr)
        raise SystemExit(1) from None
    if fast and whole_process:
        _exit_now(code)
    raise SystemExit(code)


def message(e: BaseException) -> str:
    """The one line a user sees for ``e``."""
    if isinstance(e, errors.SeacanError):
        return e.message
    if isinstance(e, OSError):
        where = f"{e.filename}: " if e.filename else ""
        return f"{where}{(e.strerror or str(e)).lower()}"
    return f"internal error: {type(e).__name__}: {e}"


def with_devnull() -> None:
    """Point stdout at /dev/null so the interpreter's final flush cannot fail."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


if __name__ == "__main__":
    main()
