"""seacan registry serve|gc: run seacan's own registry server, or collect its garbage.

Both need no daemon: the CLI execs ``python -m seacan.services.registry``
(the CLI may not import service code), which parses the same flags.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from seacan.cli.commands import Subparsers, noun, verb

# (flag, takes a value, help)
SERVE_FLAGS = (
    ("--listen", True, "HOST:PORT to listen on (port 0 picks a free one)"),
    ("--root", True, "directory holding blobs, repositories and uploads"),
    ("--htpasswd", True, "htpasswd file (bcrypt, apr1 or sha1 entries) for basic auth"),
    ("--token-auth", False, "bearer tokens from this server's /token (needs the next two)"),
    ("--token-acl", True, 'JSON {"user": {"repo/pattern": ["pull", "push"]}}'),
    ("--token-secret", True, "file whose bytes sign the tokens"),
    ("--tls-cert", True, "serve HTTPS with this certificate"),
    ("--tls-key", True, "the certificate's key"),
    ("--tls-client-ca", True, "require client certificates signed by this CA"),
    ("--access-log", True, "append JSON access log lines here (default stderr)"),
    ("--max-manifest-bytes", True, "largest manifest accepted (default 4 MiB)"),
    ("--no-delete", False, "refuse manifest and blob deletion (405 UNSUPPORTED)"),
)
GC_FLAGS = (
    ("--root", True, "the registry's root directory"),
    ("--dry-run", False, "print what would be removed"),
)


def _add(p: argparse.ArgumentParser, flags: tuple[tuple[str, bool, str], ...]) -> None:
    for flag, value, help_ in flags:
        dest = "r_" + flag[2:].replace("-", "_")
        if value:
            p.add_argument(flag, dest=dest, metavar=flag[2:].upper().replace("-", "_"), help=help_)
        else:
            p.add_argument(flag, dest=dest, action="store_true", help=help_)


def _argv(a: argparse.Namespace, flags: tuple[tuple[str, bool, str], ...]) -> list[str]:
    out: list[str] = []
    for flag, value, _ in flags:
        v = getattr(a, "r_" + flag[2:].replace("-", "_"))
        if value and v is not None:
            out += [flag, v]
        elif not value and v:
            out.append(flag)
    return out


def _exec(verb_name: str, args: list[str]) -> int:
    sys.stdout.flush()
    sys.stderr.flush()
    argv = [sys.executable, "-m", "seacan.services.registry", verb_name, *args]
    os.execv(sys.executable, argv)


async def serve(c: Any, a: argparse.Namespace) -> int:
    return _exec("serve", _argv(a, SERVE_FLAGS))


async def gc(c: Any, a: argparse.Namespace) -> int:
    return _exec("gc", _argv(a, GC_FLAGS))


def register(subs: Subparsers) -> None:
    verbs = noun(subs, "registry", ["reg"], "run seacan's own OCI registry server")
    s = verb(verbs, "serve", serve, "serve an OCI Distribution registry in the foreground")
    _add(s, SERVE_FLAGS)
    s.set_defaults(offline=True)
    g = verb(verbs, "gc", gc, "remove blobs no manifest references")
    _add(g, GC_FLAGS)
    g.set_defaults(offline=True)
