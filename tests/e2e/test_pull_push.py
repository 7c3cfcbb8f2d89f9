"""seacan pull/push through seacand against registries on loopback.

One seacand per module and, per kind in :data:`KINDS`, one registry: Debian's
docker-registry and seacan's own ``seacan registry serve``; the round trips
run against both. Each test works in its own namespaces and repositories.
Auth (basic on both kinds, token auth with per-repository scopes on seacan's)
and TLS (a self-signed certificate reached through the daemon's
``<config-dir>/certs.d``) get registries of their own. The tests that need a
registry that misbehaves (a lying digest, a truncated blob, a redirect loop,
a connection dropped mid-blob) run a small aiohttp server of their own; the
crash test has its own seacand.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import json
import os
import pty
import re
import select
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from tests.fixtures import daemon as dm
from tests.fixtures import images as im
from tests.fixtures.registry import (
    KINDS,
    MakeRegistry,
    Registry,
    SeacanRegistry,
    free_port,
    write_self_signed,
)

pytestmark = pytest.mark.e2e

BUSYBOX = "docker.io/library/busybox:latest"


@pytest.fixture(scope="module", params=KINDS)
def registry(request: pytest.FixtureRequest, registry_factory_module: MakeRegistry) -> Registry:
    """A plain-HTTP loopback registry of each kind (the round trips run on both)."""
    return registry_factory_module(request.param)


@pytest.fixture(scope="module")
def docker_registry(registry_factory_module: MakeRegistry) -> Registry:
    return registry_factory_module("docker", name="only-docker")


@pytest.fixture
def docker_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private, empty Docker config directory for the CLI."""
    d = tmp_path / "docker"
    d.mkdir()
    monkeypatch.setenv("DOCKER_CONFIG", str(d))
    return d


def ns2(ns: str) -> str:
    return ns[:50].rstrip("-_.") + "-b"


def repo_for(ns: str) -> str:
    return "test/" + ns.lower().replace("_", "-")


def import_archive(d: dm.Seacand, ns: str, archive: im.Archive, *args: str) -> None:
    d.seacan_ok("images", "import", *args, archive.path, ns=ns)


def image_digest(d: dm.Seacand, ns: str, name: str) -> str:
    rows = {r["REF"]: r for r in dm.table(d.ctr_ok("images", "ls", ns=ns))}
    assert name in rows, f"{name} not in {sorted(rows)}"
    return rows[name]["DIGEST"]


def forget(d: dm.Seacand, ns: str, name: str, archive: im.Archive) -> None:
    """Remove the image and collect its blobs, so a pull must really download them."""
    d.seacan_ok("images", "rm", "--sync", name, ns=ns)
    assert not set(archive.layer_digests) & d.content(ns=ns)


def cleanup_ns(d: dm.Seacand, *namespaces: str) -> None:
    for n in namespaces:
        names = d.seacan_ok("images", "ls", "-q", ns=n).split()
        if names:
            d.run_seacan("images", "rm", *names, ns=n)


@pytest.fixture
def nss(seacand_module: dm.Seacand, ns: str) -> Iterator[tuple[str, str]]:
    yield ns, ns2(ns)
    cleanup_ns(seacand_module, ns, ns2(ns))


# --- round trips with docker-registry and seacan's registry --------------------------


def test_push_then_pull_elsewhere_same_digest_and_runs(
    seacand_module: dm.Seacand,
    registry: Registry,
    nss: tuple[str, str],
    busybox_oci: im.Archive,
) -> None:
    d, (a, b) = seacand_module, nss
    ref = f"{registry.host}/{repo_for(a)}:1"
    import_archive(d, a, busybox_oci)
    out = d.seacan_ok("push", ref, BUSYBOX, ns=a)
    assert f"1: digest: {busybox_oci.target_digest} size: {busybox_oci.target_size}" in out
    forget(d, a, BUSYBOX, busybox_oci)

    out = d.seacan_ok("pull", ref, ns=b)
    assert f"{busybox_oci.layer_digests[0][7:19]}: done" in out
    assert out.splitlines()[-1] == ref
    assert f"Digest: {busybox_oci.target_digest}" in out
    assert f"Status: Downloaded newer image for {ref}" in out
    assert image_digest(d, b, ref) == busybox_oci.target_digest
    assert d.bad_blobs() == []
    # Everything is there and unpacked, as ctr sees it.
    check = d.image_check(ns=b)[ref]
    assert check["STATUS"].startswith("complete"), check
    assert busybox_oci.chain_ids[-1] in d.snapshots(ns=b)

    r = d.run_seacan("run", "--rm", "--network", "none", ref, "echo", "pulled", ns=b)
    assert r.returncode == 0, dm.describe(r)
    assert r.stdout == "pulled\n"

    # Pushing again uploads nothing: every blob exists.
    out = d.seacan_ok("push", ref, ns=b)
    assert "pushed" not in out.replace("digest:", "")
    assert "already exists" in out


def test_pull_again_is_up_to_date(
    seacand_module: dm.Seacand, registry: Registry, nss: tuple[str, str], busybox_oci: im.Archive
) -> None:
    d, (a, b) = seacand_module, nss
    ref = f"{registry.host}/{repo_for(a)}:again"
    import_archive(d, a, busybox_oci)
    d.seacan_ok("push", ref, BUSYBOX, ns=a)
    d.seacan_ok("pull", ref, ns=b)
    out = d.seacan_ok("pull", ref, ns=b)
    assert f"Status: Image is up to date for {ref}" in out
    assert "already exists" in out
    assert "downloading" not in out


def test_pull_by_digest(
    seacand_module: dm.Seacand, registry: Registry, nss: tuple[str, str], busybox_oci: im.Archive
) -> None:
    d, (a, b) = seacand_module, nss
    ref = f"{registry.host}/{repo_for(a)}:bydigest"
    import_archive(d, a, busybox_oci)
    d.seacan_ok("push", ref, BUSYBOX, ns=a)
    by_digest = f"{registry.host}/{repo_for(a)}@{busybox_oci.target_digest}"
    out = d.seacan_ok("pull", "-q", by_digest, ns=b)
    assert out == by_digest + "\n"
    assert image_digest(d, b, by_digest) == busybox_oci.target_digest

    wrong = f"{registry.host}/{repo_for(a)}@sha256:{'0' * 64}"
    r = d.run_seacan("pull", wrong, ns=b)
    assert r.returncode == 1, dm.describe(r)
    assert r.stderr.startswith("seacan: ") and "not found" in r.stderr.lower(), r.stderr


def test_multiplatform_pull_takes_the_host_platform(
    seacand_module: dm.Seacand,
    registry: Registry,
    nss: tuple[str, str],
    multiplatform: im.Archive,
    tmp_path: Path,
) -> None:
    d, (a, b) = seacand_module, nss
    ref = f"{registry.host}/{repo_for(a)}:multi"
    import_archive(d, a, multiplatform, "--all-platforms")
    d.seacan_ok("push", ref, multiplatform.name, ns=a)
    d.seacan_ok("pull", ref, ns=b)
    assert image_digest(d, b, ref) == multiplatform.target_digest  # the index
    snaps = d.snapshots(ns=b)
    assert multiplatform.chain_ids[-1] in snaps
    assert not set(multiplatform.other_chain_ids) & set(snaps)
    content = d.content(ns=b)
    assert set(multiplatform.blobs) <= content
    with d.mounted(ref, tmp_path / "root", ns=b) as root:
        assert im.check_root(root, multiplatform) == []


def test_multilayer_pull_unpacks_every_layer(
    seacand_module: dm.Seacand,
    registry: Registry,
    nss: tuple[str, str],
    multilayer: im.Archive,
    tmp_path: Path,
) -> None:
    d, (a, b) = seacand_module, nss
    ref = f"{registry.host}/{repo_for(a)}:layers"
    import_archive(d, a, multilayer)
    d.seacan_ok("push", ref, multilayer.name, ns=a)
    out = d.seacan_ok("pull", ref, ns=b)
    assert image_digest(d, b, ref) == multilayer.target_digest
    for digest in multilayer.layer_digests:
        assert f"{digest[7:19]}: unpacked" in out
    snaps = d.snapshots(ns=b)
    assert set(multilayer.chain_ids) <= set(snaps)
    with d.mounted(ref, tmp_path / "root", ns=b) as root:
        assert im.check_root(root, multilayer) == []


def test_progress_piped_and_quiet(
    seacand_module: dm.Seacand, registry: Registry, nss: tuple[str, str], busybox_oci: im.Archive
) -> None:
    d, (a, b) = seacand_module, nss
    ref = f"{registry.host}/{repo_for(a)}:progress"
    import_archive(d, a, busybox_oci)
    assert d.seacan_ok("push", "-q", ref, BUSYBOX, ns=a) == ref + "\n"
    forget(d, a, BUSYBOX, busybox_oci)
    out = d.seacan_ok("pull", ref, ns=b)
    layer = busybox_oci.layer_digests[0][7:19]
    lines = out.splitlines()
    assert lines[0] == f"progress: Pulling from {repo_for(a)}"
    assert any(ln.startswith(f"{layer}: downloading ") and "/" in ln for ln in lines), out
    assert f"{layer}: done" in lines
    assert f"{layer}: unpacked" in lines
    assert "\x1b" not in out  # no terminal control when piped
    assert lines[-3:] == [
        f"Digest: {busybox_oci.target_digest}",
        f"Status: Downloaded newer image for {ref}",
        ref,
    ]
    # Quiet: only the name.
    d.seacan_ok("images", "rm", ref, ns=b)
    assert d.seacan_ok("images", "pull", "-q", ref, ns=b) == ref + "\n"


# --- auth ----------------------------------------------------------------------------


def login(d: dm.Seacand, host: str, user: str, password: str) -> subprocess.CompletedProcess[str]:
    """``seacan login`` (through seacand) with the password on stdin."""
    return dm.run(d.seacan_argv("login", "-u", user, "--password-stdin", host), input=password)


def refused(r: subprocess.CompletedProcess[str], *words: str) -> None:
    """The command failed with one ``seacan:`` line naming a 401 and ``words``."""
    assert r.returncode == 1, dm.describe(r)
    assert r.stderr.startswith("seacan: "), r.stderr
    low = r.stderr.lower()
    assert "401" in low or "unauthorized" in low, r.stderr
    for w in words:
        assert w in low, r.stderr


def denied(r: subprocess.CompletedProcess[str], reg: Registry, scope: str) -> None:
    """The registry refused a token's scope: 403, and the message names what was missing."""
    assert r.returncode == 1, dm.describe(r)
    assert r.stderr.startswith(f"seacan: registry {reg.host}: "), r.stderr
    assert "403 forbidden" in r.stderr.lower(), r.stderr
    assert f"the credentials do not grant repository:{scope})" in r.stderr, r.stderr
    assert r.stderr.count("\n") == 1, r.stderr


@pytest.mark.parametrize("kind", KINDS)
def test_basic_auth_needs_login(
    seacand_module: dm.Seacand,
    registry_factory: MakeRegistry,
    nss: tuple[str, str],
    busybox_oci: im.Archive,
    docker_config: Path,
    kind: str,
) -> None:
    d, (a, b) = seacand_module, nss
    reg = registry_factory(kind, htpasswd=("alice", "s3cret"))
    ref = f"{reg.host}/{repo_for(a)}:auth"
    import_archive(d, a, busybox_oci)

    refused(d.run_seacan("push", ref, BUSYBOX, ns=a))
    refused(d.run_seacan("pull", ref, ns=b))

    r = login(d, reg.host, "alice", "wrong\n")
    refused(r, "login to")
    assert not (docker_config / "config.json").exists()

    r = login(d, reg.host, "alice", "s3cret\n")
    assert r.returncode == 0, dm.describe(r)
    assert r.stdout == "Login Succeeded\n"
    cfg = json.loads((docker_config / "config.json").read_text())
    assert reg.host in cfg["auths"]
    assert (docker_config / "config.json").stat().st_mode & 0o777 == 0o600

    d.seacan_ok("push", ref, BUSYBOX, ns=a)
    d.seacan_ok("pull", ref, ns=b)
    assert image_digest(d, b, ref) == busybox_oci.target_digest

    assert dm.run(d.seacan_argv("logout", reg.host)).returncode == 0
    d.seacan_ok("images", "rm", ref, ns=b)
    refused(d.run_seacan("pull", ref, ns=b))
    assert d.seacan_ok("images", "ls", "-q", ns=b) == ""

    # Wrong credentials in the Docker config: refused too, and no image.
    auth = base64.b64encode(b"alice:nope").decode()
    (docker_config / "config.json").write_text(json.dumps({"auths": {reg.host: {"auth": auth}}}))
    refused(d.run_seacan("pull", ref, ns=b))
    assert d.seacan_ok("images", "ls", "-q", ns=b) == ""


def test_token_auth_scoped_to_one_repository(
    seacand_module: dm.Seacand,
    registry_factory: MakeRegistry,
    nss: tuple[str, str],
    busybox_oci: im.Archive,
    docker_config: Path,
) -> None:
    d, (a, b) = seacand_module, nss
    mine, other = repo_for(a) + "-a", repo_for(a) + "-b"
    reg = registry_factory(
        "seacan", htpasswd=("alice", "s3cret"), token_acl={"alice": {mine: ["pull", "push"]}}
    )
    assert isinstance(reg, SeacanRegistry)
    ref, ref_other = f"{reg.host}/{mine}:1", f"{reg.host}/{other}:1"
    import_archive(d, a, busybox_oci)

    # Anonymous: the token server gives nothing, the registry answers 401.
    refused(d.run_seacan("push", ref, BUSYBOX, ns=a))
    refused(d.run_seacan("pull", ref, ns=b))
    refused(login(d, reg.host, "alice", "wrong\n"), "login to")
    assert not (docker_config / "config.json").exists()

    r = login(d, reg.host, "alice", "s3cret\n")
    assert r.returncode == 0, dm.describe(r)

    # The token is scoped to ``mine``: pushing elsewhere is refused, clearly.
    denied(d.run_seacan("push", ref_other, BUSYBOX, ns=a), reg, f"{other}:pull,push")

    out = d.seacan_ok("push", ref, BUSYBOX, ns=a)
    assert f"1: digest: {busybox_oci.target_digest}" in out
    d.seacan_ok("pull", ref, ns=b)
    assert image_digest(d, b, ref) == busybox_oci.target_digest
    denied(d.run_seacan("pull", ref_other, ns=b), reg, f"{other}:pull")
    # The registry's access log: every write that it accepted went to ``mine``.
    entries = [json.loads(line) for line in reg.access_log.read_text().splitlines()]
    writes = [e for e in entries if e["method"] in ("POST", "PUT", "PATCH") and e["status"] < 400]
    assert writes and all(e["path"].startswith(f"/v2/{mine}/") for e in writes), writes


# --- TLS through the daemon's certs.d ------------------------------------------------------


def host_address() -> str:
    """An IPv4 address of this machine that is not loopback (Docker's insecure rule)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("192.0.2.254", 9))  # no packet is sent: only the route is looked up
        ip = str(s.getsockname()[0])
    assert not ipaddress.ip_address(ip).is_loopback, ip
    return ip


class AddressRegistry(SeacanRegistry):
    """seacan's registry on ``ip`` instead of 127.0.0.1."""

    def __init__(self, key: str, ip: str, **options: Any) -> None:
        super().__init__(key, **options)
        self.ip = ip

    @property
    def host(self) -> str:
        return f"{self.ip}:{self.port}"


@pytest.fixture
def tls_registry(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Registry]:
    """seacan's registry with a self-signed certificate, on a non-loopback address."""
    ip = host_address()
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    write_self_signed(cert, key, host=ip)
    reg = AddressRegistry(request.node.nodeid, ip, tls_cert=cert, tls_key=key)
    with reg.running():
        yield reg


def test_tls_registry_through_the_daemons_certs_d(
    seacand_module: dm.Seacand,
    tls_registry: Registry,
    nss: tuple[str, str],
    busybox_oci: im.Archive,
    docker_config: Path,
) -> None:
    d, (a, b) = seacand_module, nss
    reg = tls_registry
    ref = f"{reg.host}/{repo_for(a)}:tls"
    import_archive(d, a, busybox_oci)
    certs = d.config_dir / "certs.d" / reg.host
    try:
        # No CA: the certificate cannot be verified (not loopback: no fallback).
        r = d.run_seacan("push", ref, BUSYBOX, ns=a)
        assert r.returncode == 1, dm.describe(r)
        assert "certificate" in r.stderr.lower() and reg.host in r.stderr, r.stderr
        assert "certs.d" in r.stderr, r.stderr

        # The CA in the daemon's certs.d (not the CLI's /etc/seacan): push, login, pull.
        certs.mkdir(parents=True)
        (certs / "ca.crt").write_bytes(reg.ca.read_bytes())
        d.seacan_ok("push", ref, BUSYBOX, ns=a)
        r = login(d, reg.host, "nobody", "anything\n")  # no auth on this registry
        assert r.returncode == 0, dm.describe(r)
        out = d.seacan_ok("pull", ref, ns=b)
        assert out.splitlines()[-1] == ref
        assert image_digest(d, b, ref) == busybox_oci.target_digest

        # The CA gone again: a pull fails with a certificate error and leaves no image.
        shutil.rmtree(certs)
        d.seacan_ok("images", "rm", ref, ns=b)
        r = d.run_seacan("pull", ref, ns=b)
        assert r.returncode == 1, dm.describe(r)
        assert "certificate verif" in r.stderr.lower(), r.stderr
        assert d.seacan_ok("images", "ls", "-q", ns=b) == ""
    finally:
        shutil.rmtree(certs, ignore_errors=True)


def test_plain_http_flag_means_http_only(
    seacand_module: dm.Seacand,
    registry_factory: MakeRegistry,
    nss: tuple[str, str],
    busybox_oci: im.Archive,
    docker_registry: Registry,
) -> None:
    """Loopback without the flag: HTTPS if it speaks TLS, else HTTP; --plain-http: HTTP only."""
    d, (a, b) = seacand_module, nss
    tls = registry_factory("seacan", tls=True)  # self-signed on 127.0.0.1, no certs.d
    import_archive(d, a, busybox_oci)
    tls_ref = f"{tls.host}/{repo_for(a)}:tls"
    d.seacan_ok("push", "-q", tls_ref, BUSYBOX, ns=a)  # Docker's rule: loopback is insecure
    r = d.run_seacan("pull", "--plain-http", tls_ref, ns=b)
    assert r.returncode == 1, dm.describe(r)
    assert f"http://{tls.host}/" in r.stderr, r.stderr
    d.seacan_ok("pull", "-q", tls_ref, ns=b)

    plain_ref = f"{docker_registry.host}/{repo_for(a)}:plain"
    d.seacan_ok("push", "-q", "--plain-http", plain_ref, BUSYBOX, ns=a)
    assert d.seacan_ok("pull", "-q", "--plain-http", plain_ref, ns=b) == plain_ref + "\n"
    assert image_digest(d, b, plain_ref) == busybox_oci.target_digest


# --- progress on a terminal ---------------------------------------------------------------


def run_on_pty(argv: list[str], timeout: float = 60) -> tuple[int, str]:
    """Run ``argv`` with stdout on a pseudo-terminal; (exit status, what it wrote)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=slave, stderr=subprocess.STDOUT,
        env=dm.env(), cwd=dm.REPO,
    )  # fmt: skip
    os.close(slave)
    out = bytearray()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the other side is closed
                    break
                if not chunk:
                    break
                out += chunk
            elif proc.poll() is not None:
                break
        code = proc.wait(timeout=max(deadline - time.monotonic(), 1))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    return code, out.decode(errors="replace").replace("\r\n", "\n")


def test_progress_on_a_terminal(
    seacand_module: dm.Seacand, registry: Registry, nss: tuple[str, str], multilayer: im.Archive
) -> None:
    d, (a, b) = seacand_module, nss
    ref = f"{registry.host}/{repo_for(a)}:tty"
    import_archive(d, a, multilayer)
    d.seacan_ok("push", "-q", ref, multilayer.name, ns=a)
    forget(d, a, multilayer.name, multilayer)
    code, out = run_on_pty(d.seacan_argv("pull", ref, ns=b))
    assert code == 0, out
    redraws = re.findall(r"\x1b\[(\d+)A", out)
    assert len(redraws) >= 2, out  # the bars are drawn again in place
    assert "\r\x1b[K" in out
    sids = [digest[7:19] for digest in multilayer.layer_digests]
    # Bars (redrawn at most every 0.1 s, so not every state of every layer shows).
    assert re.search(rf"({'|'.join(sids)}): (Downloading|Extracting) +\[[=> ]+\] ", out), out
    for sid in sids:
        assert f"{sid}: unpacked" in out, out
    # After the bars: the digest, the status and the name, as plain lines.
    tail = out.rstrip("\n").split("\n")[-3:]
    assert tail == [
        f"Digest: {multilayer.target_digest}",
        f"Status: Downloaded newer image for {ref}",
        ref,
    ], out


# --- registries that misbehave ----------------------------------------------------------


class FakeRegistry:
    """An aiohttp registry for one image, in a thread; ``mode`` says how it misbehaves."""

    def __init__(self, image: im.Image, mode: str) -> None:
        self.image = image
        self.mode = mode
        self.port = free_port()
        self.blobs = {b.digest: b for b in image.blobs}
        self.loop = asyncio.new_event_loop()
        self.runner: web.AppRunner | None = None
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def _root(self, request: web.Request) -> web.StreamResponse:
        return web.json_response({})

    async def _manifest(self, request: web.Request) -> web.StreamResponse:
        m = self.image.manifest
        ref = request.match_info["ref"]
        if ref not in ("latest", m.digest):
            return web.json_response({"errors": [{"code": "MANIFEST_UNKNOWN"}]}, status=404)
        headers = {"Docker-Content-Digest": m.digest, "Content-Type": m.media_type}
        body = m.data if request.method == "GET" else None
        return web.Response(body=body, headers=headers)

    async def _blob(self, request: web.Request) -> web.StreamResponse:
        digest = request.match_info["digest"]
        blob = self.blobs.get(digest)
        if blob is None:
            return web.json_response({"errors": [{"code": "BLOB_UNKNOWN"}]}, status=404)
        layer = blob.media_type.startswith("application/vnd.oci.image.layer")
        if layer and self.mode == "loop":
            return web.Response(status=307, headers={"Location": f"/loop/a/{digest}"})
        data = blob.data
        if layer and self.mode == "lie":
            data = bytes([data[0] ^ 0xFF]) + data[1:]
        if layer and self.mode == "truncate" and request.transport is not None:
            # Headers for the whole blob, half the bytes, then the connection drops.
            head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(data)}\r\n\r\n".encode()
            request.transport.write(head + data[: len(data) // 2])
            request.transport.close()
            return web.Response()
        return web.Response(body=data, headers={"Content-Type": "application/octet-stream"})

    async def _loop(self, request: web.Request) -> web.StreamResponse:
        hop, digest = request.match_info["hop"], request.match_info["digest"]
        nxt = "b" if hop == "a" else "a"
        return web.Response(status=307, headers={"Location": f"/loop/{nxt}/{digest}"})

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_get("/v2/", self._root)
        app.router.add_route("*", "/v2/{name:.+}/manifests/{ref}", self._manifest)
        app.router.add_route("*", "/v2/{name:.+}/blobs/{digest}", self._blob)
        app.router.add_get("/loop/{hop}/{digest}", self._loop)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    def __enter__(self) -> FakeRegistry:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.runner is not None:
            asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.mark.parametrize(
    ("mode", "shared"),
    [("lie", False), ("lie", True), ("truncate", False), ("truncate", True), ("loop", False)],
)
def test_misbehaving_registry_leaves_no_image(
    seacand_module: dm.Seacand,
    nss: tuple[str, str],
    busybox_oci: im.Archive,
    mode: str,
    shared: bool,
) -> None:
    """``shared``: the good layer is already stored (in another namespace), so the
    pull adopts it while the bad one fails: that once hung the pull (a cancellation
    swallowed while the streaming extractor stopped)."""
    d, (ns, other) = seacand_module, nss
    image = im.make_image([im.busybox_layer(), im.make_layer([im.file("x.txt", b"x\n")])])
    if shared:
        assert image.layers[0].blob.digest in busybox_oci.layer_digests
        import_archive(d, other, busybox_oci)
    before = d.seacan_ok("images", "ls", ns=ns)
    with FakeRegistry(image, mode) as fake:
        ref = f"{fake.host}/bad/{mode}:latest"
        r = d.run_seacan("pull", ref, ns=ns, timeout=60)
    assert r.returncode == 1, dm.describe(r)
    want = {"lie": "digest", "truncate": "truncated", "loop": "redirect"}[mode]
    assert want in r.stderr.lower(), r.stderr
    assert d.seacan_ok("images", "ls", ns=ns) == before
    # The layer the registry never serves right is not committed anywhere; a good
    # blob fetched before the failure may be (it verified), and the lease holds it.
    assert image.layers[-1].blob.digest not in d.content(ns=ns)
    assert d.bad_blobs() == []


class DroppingProxy:
    """A proxy in front of a real registry that drops the first GET of ``digest`` midway.

    That GET gets the whole blob's headers and half its bytes, then the
    connection closes; every other request is passed through as it is.
    """

    def __init__(self, upstream: str, digest: str) -> None:
        self.upstream = upstream
        self.digest = digest
        self.port = free_port()
        self.dropped = 0
        self.ranges: list[str] = []
        self.loop = asyncio.new_event_loop()
        self.runner: web.AppRunner | None = None
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def _pass(self, request: web.Request) -> web.StreamResponse:
        hop = {"host", "connection", "transfer-encoding", "content-length", "keep-alive"}
        headers = {k: v for k, v in request.headers.items() if k.lower() not in hop}
        if request.match_info.get("digest") == self.digest and request.method == "GET":
            if "Range" in request.headers:
                self.ranges.append(request.headers["Range"])
            elif not self.dropped and request.transport is not None:
                self.dropped += 1
                url = f"{self.upstream}{request.path_qs}"
                async with (
                    aiohttp.ClientSession(auto_decompress=False) as s,
                    s.get(url, headers=headers) as r,
                ):
                    assert r.status == 200, r.status
                    data = await r.read()
                head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(data)}\r\n\r\n".encode()
                request.transport.write(head + data[: len(data) // 2])
                request.transport.close()
                return web.Response()
        async with (
            aiohttp.ClientSession(auto_decompress=False) as s,
            s.request(
                request.method,
                f"{self.upstream}{request.path_qs}",
                headers=headers,
                data=await request.read(),
                allow_redirects=False,
            ) as r,
        ):
            body = await r.read()
            out = {k: v for k, v in r.headers.items() if k.lower() not in hop}
            return web.Response(status=r.status, body=body, headers=out)

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/v2/{name:.+}/blobs/{digest}", self._pass)
        app.router.add_route("*", "/{tail:.*}", self._pass)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    def __enter__(self) -> DroppingProxy:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.runner is not None:
            asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


def test_pull_resumes_a_blob_after_a_dropped_connection(
    seacand_module: dm.Seacand,
    registry: Registry,
    nss: tuple[str, str],
    multilayer: im.Archive,
    tmp_path: Path,
) -> None:
    d, (a, b) = seacand_module, nss
    repo = repo_for(a)
    import_archive(d, a, multilayer)
    d.seacan_ok("push", "-q", f"{registry.host}/{repo}:resume", multilayer.name, ns=a)
    layer = max(multilayer.layer_digests, key=lambda dg: (d.blobs / dg[7:]).stat().st_size)
    forget(d, a, multilayer.name, multilayer)
    with DroppingProxy(registry.url, layer) as proxy:
        ref = f"{proxy.host}/{repo}:resume"
        out = d.seacan_ok("pull", ref, ns=b, timeout=60)
    assert proxy.dropped == 1
    assert len(proxy.ranges) == 1 and proxy.ranges[0].startswith("bytes="), proxy.ranges
    assert int(proxy.ranges[0].removeprefix("bytes=").rstrip("-")) > 0
    assert out.splitlines()[-1] == ref
    assert image_digest(d, b, ref) == multilayer.target_digest
    assert layer in d.content(ns=b)
    assert d.bad_blobs() == []
    with d.mounted(ref, tmp_path / "root", ns=b) as root:
        assert im.check_root(root, multilayer) == []


# --- a crash in the middle ---------------------------------------------------------------


def test_kill_images_service_mid_pull_then_rerun(
    seacand: dm.Seacand,
    docker_registry: Registry,
    ns: str,
    big_image: im.Archive,
    tmp_path: Path,
) -> None:
    d = seacand
    a, b = ns, ns2(ns)
    ref = f"{docker_registry.host}/{repo_for(a)}:big"
    import_archive(d, a, big_image)
    d.seacan_ok("push", "-q", ref, big_image.name, ns=a)
    forget(d, a, big_image.name, big_image)

    proc = subprocess.Popen(
        d.seacan_argv("pull", ref, ns=b),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dm.env(),
        cwd=dm.REPO,
    )
    try:
        assert proc.stdout is not None
        seen = ""
        deadline = time.monotonic() + 60
        while "downloading" not in seen and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            seen += line
        assert "downloading" in seen, seen
        images_pid = d.services()["images"]
        os.kill(images_pid, signal.SIGKILL)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 1, (seen, err)
    assert d.seacan_ok("images", "ls", "-q", ns=b) == ""
    d.wait_service("images", not_pid=images_pid)

    out = d.seacan_ok("pull", ref, ns=b, timeout=300)
    assert out.splitlines()[-1] == ref
    assert image_digest(d, b, ref) == big_image.target_digest
    assert d.bad_blobs() == []
    with d.mounted(ref, tmp_path / "root", ns=b) as root:
        assert im.check_root(root, big_image) == []
