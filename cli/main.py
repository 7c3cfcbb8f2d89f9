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
import asyncio
import os
import sys
import traceback
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, NoReturn

from seacan import config, errors, log
from seacan.cli import (
    build,
    commands,
    containers,
    distribution,
    images,
    network,
    registry,
    tasks,
    volume,
)
from seacan.cli import run as docker_style

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


class UsageError(Exception):
    """A command line that does not parse."""


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line and exit status 1."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see '{self.prog} --help')")


def build_parser() -> Parser:
    p = Parser(
        prog="seacan",
        description="seacan: a containerd-compatible container runtime (client)",
    )
    p.add_argument(
        "-a",
        "--address",
        default=config.env_address(),
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
    nouns = p.add_subparsers(dest="noun", metavar="COMMAND", parser_class=Parser)
    commands.register(nouns)
    images.register(nouns)
    containers.register(nouns)
    tasks.register(nouns)
    docker_style.register(nouns)
    distribution.register(nouns)
    network.register(nouns)
    volume.register(nouns)
    build.register(nouns)
    registry.register(nouns)
    return p


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


def main(argv: Sequence[str] | None = None) -> None:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except UsageError as e:
        print(f"seacan: {e}", file=sys.stderr)
        raise SystemExit(1) from None
    if args.noun is None:
        parser.print_help()
        raise SystemExit(0)
    if getattr(args, "func", None) is None:
        sub: argparse.ArgumentParser = args.noun_parser
        print(
            f"seacan: {args.noun}: a command is required (see '{sub.prog} --help')", file=sys.stderr
        )
        raise SystemExit(1)
    log.configure("debug" if args.debug else "error", json=False)
    try:
        code = asyncio.run(run(args))
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
            traceback.print_exception(err)
        print(f"seacan: {message(err)}", file=sys.stderr)
        raise SystemExit(1) from None
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
