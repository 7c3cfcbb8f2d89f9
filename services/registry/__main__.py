"""seacan's registry server, an HTTP service of its own (not started by seacand).

python -m seacan.services.registry serve --listen HOST:PORT --root DIR [options]
python -m seacan.services.registry gc --root DIR [--dry-run]

``seacan registry serve|gc`` execs this module. ``serve`` prints
``listening on http(s)://HOST:PORT`` on stderr once ready (``:0`` picks a free
port) and exits 0 on SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from seacan import log

from .server import Options, serve
from .storage import Storage


def _listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError(f"--listen {value!r}: want HOST:PORT")
    return host.strip("[]") or "0.0.0.0", int(port)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="seacan registry")
    verbs = p.add_subparsers(dest="verb", required=True)
    s = verbs.add_parser("serve", help="run an OCI Distribution registry in the foreground")
    s.add_argument("--listen", type=_listen, default=("127.0.0.1", 5000), metavar="HOST:PORT")
    s.add_argument("--root", type=Path, required=True)
    s.add_argument("--htpasswd", type=Path)
    s.add_argument("--token-auth", action="store_true")
    s.add_argument("--token-acl", type=Path)
    s.add_argument("--token-secret", type=Path)
    s.add_argument("--tls-cert", type=Path)
    s.add_argument("--tls-key", type=Path)
    s.add_argument("--tls-client-ca", type=Path)
    s.add_argument("--access-log", type=Path)
    s.add_argument("--max-manifest-bytes", type=int, default=4 << 20)
    s.add_argument("--no-delete", action="store_true")
    s.add_argument("--log-level", default="info")
    g = verbs.add_parser("gc", help="remove blobs no manifest references")
    g.add_argument("--root", type=Path, required=True)
    g.add_argument("--dry-run", action="store_true")
    return p


def _check(a: argparse.Namespace) -> str | None:
    if a.token_auth and not (a.htpasswd and a.token_acl and a.token_secret):
        return "--token-auth needs --htpasswd, --token-acl and --token-secret"
    if bool(a.tls_cert) != bool(a.tls_key):
        return "--tls-cert and --tls-key go together"
    if a.tls_client_ca and not a.tls_cert:
        return "--tls-client-ca needs --tls-cert"
    for f in (a.htpasswd, a.token_acl, a.token_secret, a.tls_cert, a.tls_key, a.tls_client_ca):
        if f and not f.is_file():
            return f"{f}: no such file"
    return None


def main(argv: list[str] | None = None) -> int:
    a = parser().parse_args(argv)
    if a.verb == "gc":
        if not (a.root / "blobs").is_dir():
            print(f"seacan registry: {a.root} is not a registry root", file=sys.stderr)
            return 1
        result = Storage(a.root).gc(dry_run=a.dry_run)
        for d in result.removed:
            print(("would remove " if a.dry_run else "removed ") + d)
        verb = "would be removed" if a.dry_run else "removed"
        print(f"{len(result.removed)} blobs {verb}, {result.kept} kept", file=sys.stderr)
        return 0
    problem = _check(a)
    if problem:
        print(f"seacan registry: {problem}", file=sys.stderr)
        return 1
    log.configure(a.log_level)
    host, port = a.listen
    opts = Options(
        host=host,
        port=port,
        root=a.root,
        htpasswd=a.htpasswd,
        token_auth=a.token_auth,
        token_acl=a.token_acl,
        token_secret=a.token_secret,
        tls_cert=a.tls_cert,
        tls_key=a.tls_key,
        tls_client_ca=a.tls_client_ca,
        access_log=a.access_log,
        max_manifest_bytes=a.max_manifest_bytes,
        delete=not a.no_delete,
    )
    try:
        asyncio.run(serve(opts))
    except (OSError, ValueError) as e:
        print(f"seacan registry: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
