"""Per-host transport: plain HTTP for loopback and configured hosts, certs.d TLS."""

from __future__ import annotations

import ssl
import subprocess
from pathlib import Path

import pytest

from seacan import errors
from seacan.distribution.hosts import is_insecure, is_loopback, split_host, transport

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("localhost", True),
        ("localhost:5000", True),
        ("127.0.0.1:5000", True),
        ("127.8.9.10", True),
        ("[::1]:5000", True),
        ("10.0.0.1:5000", False),
        ("registry.example.com", False),
        ("localhost.example.com", False),
    ],
)
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_split_and_insecure_lists() -> None:
    assert split_host("[::1]:5000") == ("::1", "5000")
    assert split_host("reg.io") == ("reg.io", "")
    assert is_insecure("reg.io:5000", ["reg.io"])
    assert is_insecure("reg.io:5000", ["reg.io:5000"])
    assert not is_insecure("reg.io:5000", ["reg.io:6000"])
    assert not is_insecure("reg.io")


def test_transport_defaults(tmp_path: Path) -> None:
    secure = transport("registry.example.com", certs_dir=tmp_path)
    assert (secure.scheme, secure.http_fallback) == ("https", False)
    assert secure.ssl is not None and secure.ssl.verify_mode == ssl.CERT_REQUIRED
    for host, insecure in [("127.0.0.1:5000", ()), ("reg.lan:5000", ("reg.lan",))]:
        t = transport(host, certs_dir=tmp_path, insecure=insecure)
        assert (t.scheme, t.http_fallback) == ("https", True)
        assert t.ssl is not None and t.ssl.verify_mode == ssl.CERT_NONE


def openssl_pair(d: Path, name: str) -> None:
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", str(d / f"{name}.key"), "-out", str(d / f"{name}.crt"),
            "-days", "2", "-subj", f"/CN={name}",
        ],
        capture_output=True,
        check=True,
    )  # fmt: skip


def test_certs_d_means_verified_tls_with_its_ca_and_client_pair(tmp_path: Path) -> None:
    d = tmp_path / "127.0.0.1:5000"
    d.mkdir()
    openssl_pair(d, "ca")
    (d / "ca.key").unlink()
    openssl_pair(d, "client")
    (d / "client.crt").rename(d / "client.cert")
    t = transport("127.0.0.1:5000", certs_dir=tmp_path)
    assert (t.scheme, t.http_fallback) == ("https", False)  # even on loopback
    assert t.ssl is not None and t.ssl.verify_mode == ssl.CERT_REQUIRED
    assert any(c["subject"] == ((("commonName", "ca"),),) for c in t.ssl.get_ca_certs())


def test_certs_d_key_without_certificate_is_named(tmp_path: Path) -> None:
    d = tmp_path / "reg.io"
    d.mkdir()
    (d / "lonely.key").write_text("x")
    with pytest.raises(errors.InvalidArgument, match=r"lonely\.key has no certificate"):
        transport("reg.io", certs_dir=tmp_path)
    (d / "lonely.key").unlink()
    (d / "ca.crt").write_text("not a certificate")
    with pytest.raises(errors.InvalidArgument, match=r"certs\.d for reg\.io"):
        transport("reg.io", certs_dir=tmp_path)
