"""How to reach a registry host: scheme and TLS, from a ``certs.d`` directory.

Like Docker and containerd, ``<config_dir>/certs.d/<host[:port]>/`` holds:

- ``*.crt`` CA certificates to trust for that host (``ca.crt`` by convention),
  in addition to the system's;
- ``<name>.cert`` + ``<name>.key`` client certificate pairs (Docker's names);
  a ``<name>.crt`` with a matching ``<name>.key`` is a client pair too.

A host is *insecure* when it is listed in ``insecure`` (``host`` or
``host:port``) or is loopback (``localhost``, 127.0.0.0/8, ``::1``), as
Docker treats them. For an insecure host without a ``certs.d`` directory
seacan tries HTTPS without verifying the certificate first and falls back to
plain HTTP when the server does not speak TLS (``http_fallback``; the
:class:`~.registry.Registry` probes once per session and shares the answer).
A host with a ``certs.d`` directory always gets verified HTTPS. With
``plain_http`` (``--plain-http``) a host gets plain HTTP only.
"""

from __future__ import annotations

import ipaddress
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from seacan import errors


@dataclass(frozen=True, slots=True)
class Transport:
    """``scheme`` is "https" or "http"; ``ssl`` is the context for https."""

    scheme: str
    ssl: ssl.SSLContext | None
    http_fallback: bool = False


def split_host(host: str) -> tuple[str, str]:
    """``host[:port]`` -> (hostname, port or ""); IPv6 in brackets."""
    if host.startswith("["):
        name, _, rest = host[1:].partition("]")
        return name, rest.removeprefix(":")
    name, _, port = host.partition(":")
    return name, port


def is_loopback(host: str) -> bool:
    name, _ = split_host(host)
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def is_insecure(host: str, insecure: Sequence[str] = ()) -> bool:
    name, _ = split_host(host)
    return is_loopback(host) or host in insecure or name in insecure


def _context(host: str, cert_dir: Path | None, *, verify: bool) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if cert_dir is None:
        return ctx
    try:
        files = sorted(p for p in cert_dir.iterdir() if p.is_file())
        for f in files:
            if f.suffix == ".crt" and not f.with_suffix(".key").exists():
                ctx.load_verify_locations(cafile=str(f))
        for f in files:
            if f.suffix in (".cert", ".crt") and f.with_suffix(".key").exists():
                ctx.load_cert_chain(str(f), str(f.with_suffix(".key")))
            elif f.suffix == ".key" and not any(
                f.with_suffix(s).exists() for s in (".cert", ".crt")
            ):
                raise errors.InvalidArgument(f"certs.d for {host}: {f.name} has no certificate")
    except ssl.SSLError as e:
        raise errors.InvalidArgument(f"certs.d for {host}: {cert_dir}: {e}") from None
    except OSError as e:
        raise errors.Unavailable(f"certs.d for {host}: {cert_dir}: {e.strerror}") from None
    return ctx


def transport(
    host: str, *, certs_dir: Path, insecure: Sequence[str] = (), plain_http: bool = False
) -> Transport:
    """The scheme and TLS settings for ``host`` (``registry:5000``, ``127.0.0.1:5000``).

    ``plain_http`` (ctr's and seacan's ``--plain-http``) means HTTP only.
    """
    if plain_http:
        return Transport("http", None)
    cert_dir = certs_dir / host
    if cert_dir.is_dir():
        return Transport("https", _context(host, cert_dir, verify=True))
    if is_insecure(host, insecure):
        return Transport("https", _context(host, None, verify=False), http_fallback=True)
    return Transport("https", _context(host, None, verify=True))


__all__ = ["Transport", "is_insecure", "is_loopback", "split_host", "transport"]
