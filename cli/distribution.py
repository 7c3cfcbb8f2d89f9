"""seacan pull, push, login, logout (and ``seacan images pull|push``).

The daemon does the transfer (:mod:`seacan.transfer`); the CLI resolves the
credentials for the registry host from the Docker config (``$DOCKER_CONFIG``
or ``~/.docker/config.json``, with credential helpers) and sends them along.
``login`` checks the credentials through the daemon too (as ``docker login``),
so TLS always comes from seacand's ``<config-dir>/certs.d``; only storing them
happens here. ``--plain-http`` means HTTP only; without it a loopback registry
gets HTTPS if it speaks TLS, else HTTP (Docker's rule).

Output, as docker prints it: on a terminal one redrawn progress bar per
layer; when piped, plain lines (``<id>: downloading 12.3MB/40.1MB`` at most
once a second per layer, then ``<id>: done``); with ``-q`` only the image
name. The last lines name the image and its digest.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
import time
from typing import TextIO

from seacan import errors, oci
from seacan.cli.commands import Subparsers, write
from seacan.client import Client
from seacan.distribution import reference
from seacan.distribution.auth import Credentials, CredentialStore, server_key
from seacan.transfer import Kind, Progress, PullRequest, PushRequest, RegistryOptions

PLAIN_EVERY = 1.0  # seconds between plain progress lines of one layer
TTY_EVERY = 0.1  # seconds between redraws on a terminal
BAR = 40
PLAIN_HTTP_HELP = (
    "plain HTTP only (default: HTTPS with the CA certificates in seacand's"
    " <config-dir>/certs.d/HOST/; a loopback registry falls back to HTTP)"
)

_WORDS = {
    Kind.WAITING: "waiting",
    Kind.DOWNLOADING: "downloading",
    Kind.DOWNLOADED: "done",
    Kind.EXTRACTING: "extracting",
    Kind.UNPACKED: "unpacked",
    Kind.EXISTS: "already exists",
    Kind.MOUNTED: "mounted",
    Kind.UPLOADING: "pushing",
    Kind.PUSHED: "pushed",
}


def human_size(n: float) -> str:
    """docker's units.HumanSize: decimal units, 3 significant digits (``12.3MB``)."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.3g}{unit}"
        n /= 1000
    raise AssertionError("unreachable")


def short_id(digest: str) -> str:
    return digest.removeprefix("sha256:")[:12]


class Render:
    """Turns progress events into what the user sees (terminal, pipe or quiet)."""

    def __init__(self, out: TextIO, *, quiet: bool, tty: bool | None = None) -> None:
        self.out = out
        self.quiet = quiet
        self.tty = out.isatty() if tty is None else tty
        self.lines: dict[str, str] = {}  # layer id -> its line (insertion order)
        self.drawn = 0
        self.last_draw = 0.0
        self.last_plain: dict[str, float] = {}

    def event(self, p: Progress) -> None:
        if self.quiet or not p.digest or not oci.is_layer(p.media_type):
            return
        word = _WORDS.get(p.kind)
        if word is None:
            return
        sid = short_id(p.digest)
        moving = p.kind in (Kind.DOWNLOADING, Kind.UPLOADING, Kind.EXTRACTING)
        if self.tty:
            self.lines[sid] = self._bar(sid, word, p) if moving else f"{sid}: {word}"
            now = time.monotonic()
            if not moving or now - self.last_draw >= TTY_EVERY:
                self.last_draw = now
                self.redraw()
            return
        if moving:
            if p.kind == Kind.EXTRACTING:
                return
            now = time.monotonic()
            if now - self.last_plain.get(sid, 0.0) < PLAIN_EVERY:
                return
            self.last_plain[sid] = now
            self.say(f"{sid}: {word} {human_size(p.current)}/{human_size(p.total)}")
        else:
            self.say(f"{sid}: {word}")

    def _bar(self, sid: str, word: str, p: Progress) -> str:
        if p.total <= 0:
            return f"{sid}: {word}"
        done = min(BAR, BAR * p.current // p.total)
        bar = "=" * done + (">" if done < BAR else "") + " " * max(BAR - done - 1, 0)
        return (
            f"{sid}: {word.capitalize():<12}[{bar}] {human_size(p.current)}/{human_size(p.total)}"
        )

    def redraw(self) -> None:
        if self.drawn:
            self.out.write(f"\x1b[{self.drawn}A")
        for line in self.lines.values():
            self.out.write("\r\x1b[K" + line + "\n")
        self.drawn = len(self.lines)
        self.out.flush()

    def say(self, line: str) -> None:
        """A line of its own (under the bars on a terminal)."""
        if self.tty and self.lines:
            self.redraw()
            self.lines.clear()
            self.drawn = 0
        self.out.write(line + "\n")
        self.out.flush()


async def _registry_options(ref: reference.Reference, plain_http: bool) -> RegistryOptions:
    host = reference.registry_host(ref.domain)
    creds = await asyncio.to_thread(CredentialStore().get, ref.domain)
    return RegistryOptions(credentials={host: creds} if creds else {}, plain_http=plain_http)


async def pull(c: Client, a: argparse.Namespace) -> int:
    ref = reference.parse(a.ref)
    platform = oci.parse_platform(a.platform) if a.platform else None
    req = PullRequest(
        ref=str(ref), platform=platform, registry=await _registry_options(ref, a.plain_http)
    )
    r = Render(sys.stdout, quiet=a.quiet)
    if not a.quiet:
        r.say(f"{ref.object}: Pulling from {ref.path}")
    final: Progress | None = None
    async for p in c.transfer.pull(req):
        if p.kind == Kind.DONE:
            final = p
        else:
            r.event(p)
    if final is None:
        raise errors.Unavailable(f"pull of {ref}: the daemon ended without a result")
    if a.quiet:
        write(final.name + "\n")
        return 0
    r.say(f"Digest: {final.image_digest}")
    r.say(f"Status: {final.message}")
    r.say(final.name)
    return 0


async def push(c: Client, a: argparse.Namespace) -> int:
    ref = reference.parse(a.ref)
    source = str(reference.parse(a.source)) if a.source else ""
    req = PushRequest(
        ref=str(ref), source=source, registry=await _registry_options(ref, a.plain_http)
    )
    r = Render(sys.stdout, quiet=a.quiet)
    if not a.quiet:
        r.say(f"The push refers to repository [{ref.repository}]")
    final: Progress | None = None
    async for p in c.transfer.push(req):
        if p.kind == Kind.DONE:
            final = p
        else:
            r.event(p)
    if final is None:
        raise errors.Unavailable(f"push of {ref}: the daemon ended without a result")
    if a.quiet:
        write(final.name + "\n")
        return 0
    r.say(f"{ref.object}: digest: {final.image_digest} size: {final.total}")
    return 0


def _server(text: str) -> str:
    """``SERVER`` as docker login takes it: a host[:port], maybe with a scheme or path."""
    host = text.removeprefix("https://").removeprefix("http://").split("/", 1)[0]
    if not host:
        raise errors.InvalidArgument(f"invalid registry {text!r}")
    return host


async def login(c: Client, a: argparse.Namespace) -> int:
    """Check the credentials through seacand (its certs.d, as a pull), then store them."""
    host = _server(a.server)
    user = a.username
    if not user:
        if not sys.stdin.isatty():
            raise errors.InvalidArgument("login: a username is required (-u)")
        user = input("Username: ").strip()
    if a.password_stdin:
        if a.password:
            raise errors.InvalidArgument(
                "login: --password and --password-stdin exclude each other"
            )
        password = sys.stdin.read().rstrip("\r\n")
    elif a.password:
        password = a.password
    else:
        password = getpass.getpass("Password: ")
    if not user or not password:
        raise errors.InvalidArgument("login: username and password must not be empty")
    creds = Credentials(username=user, password=password)
    opts = RegistryOptions(
        credentials={reference.registry_host(host): creds}, plain_http=a.plain_http
    )
    try:
        await c.transfer.login(host, opts)
    except errors.PermissionDenied as e:
        raise errors.PermissionDenied(f"login to {host} failed: {e}") from None
    await asyncio.to_thread(CredentialStore().store, server_key(host), creds)
    write("Login Succeeded\n")
    return 0


async def logout(c: Client | None, a: argparse.Namespace) -> int:
    host = _server(a.server)
    await asyncio.to_thread(CredentialStore().erase, server_key(host))
    write(f"Removing login credentials for {host}\n")
    return 0


def add_pull_args(p: argparse.ArgumentParser) -> None:
    p.set_defaults(func=pull)
    p.add_argument("-q", "--quiet", action="store_true", help="print only the image name")
    p.add_argument("--platform", default="", help="pull this platform (default: the host's)")
    p.add_argument("--plain-http", action="store_true", help=PLAIN_HTTP_HELP)
    p.add_argument("ref", metavar="REF")


def add_push_args(p: argparse.ArgumentParser) -> None:
    p.set_defaults(func=push)
    p.add_argument("-q", "--quiet", action="store_true", help="print only the image name")
    p.add_argument("--plain-http", action="store_true", help=PLAIN_HTTP_HELP)
    p.add_argument("ref", metavar="REF")
    p.add_argument("source", nargs="?", default="", metavar="SOURCE_REF")


def register(subs: Subparsers) -> None:
    help_ = "pull an image from a registry"
    add_pull_args(subs.add_parser("pull", help=help_, description=help_))
    help_ = "push an image to a registry"
    add_push_args(subs.add_parser("push", help=help_, description=help_))

    help_ = "log in to a registry (credentials go to the Docker config)"
    p = subs.add_parser("login", help=help_, description=help_)
    p.set_defaults(func=login)
    p.add_argument("-u", "--username", default="")
    p.add_argument("-p", "--password", default="")
    p.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    p.add_argument("--plain-http", action="store_true", help=PLAIN_HTTP_HELP)
    p.add_argument("server", metavar="SERVER")

    help_ = "log out from a registry"
    p = subs.add_parser("logout", help=help_, description=help_)
    p.set_defaults(func=logout, offline=True)
    p.add_argument("server", metavar="SERVER")
