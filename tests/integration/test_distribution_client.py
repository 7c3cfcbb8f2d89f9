"""The registry client against Debian's docker-registry and small fake registries.

docker-registry (distribution 2.8) checks the real protocol: push (monolithic
and chunked), mount, resolve, fetch, tags with pagination, errors, basic
auth. The aiohttp servers below do what it cannot: the Bearer token flow,
lying about digests, truncating and dropping blobs, redirect loops, and TLS
with a private CA and client certificates from a certs.d directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import ssl
import subprocess
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from seacan import errors, oci
from seacan.distribution.auth import Credentials
from seacan.distribution.reference import parse
from seacan.distribution.registry import Registry
from tests.fixtures.registry import MakeRegistry

pytestmark = pytest.mark.integration

T = Any  # the return type of a coroutine the tests run


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def data(size: int, seed: str) -> bytes:
    out = bytearray()
    block = hashlib.sha256(seed.encode()).digest()
    while len(out) < size:
        block = hashlib.sha256(block).digest()
        out += block
    return bytes(out[:size])


def desc_of(body: bytes, media_type: str = "application/octet-stream") -> oci.Descriptor:
    return oci.Descriptor(media_type, oci.digest_of(body), len(body))


def source(body: bytes, piece: int = 10_000) -> Callable[[int], AsyncIterator[bytes]]:
    async def chunks(offset: int) -> AsyncIterator[bytes]:
        for i in range(offset, len(body), piece):
            yield body[i : i + piece]

    return chunks


async def read_all(it: AsyncIterator[bytes]) -> bytes:
    return b"".join([c async for c in it])


class Image:
    """A small OCI image: a config, one layer, a manifest."""

    def __init__(self, seed: str, layer_size: int = 300_000) -> None:
        self.layer = data(layer_size, seed)
        self.config = json.dumps(
            {
                "architecture": "amd64",
                "os": "linux",
                "rootfs": {"type": "layers", "diff_ids": [oci.digest_of(self.layer)]},
            }
        ).encode()
        self.config_desc = desc_of(self.config, oci.OCI_CONFIG)
        self.layer_desc = desc_of(self.layer, oci.OCI_LAYER)
        self.manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": oci.OCI_MANIFEST,
                "config": self.config_desc.to_json(),
                "layers": [self.layer_desc.to_json()],
            }
        ).encode()
        self.manifest_desc = desc_of(self.manifest, oci.OCI_MANIFEST)


def client(host: str, tmp: Path, creds: Credentials | None = None, **kw: Any) -> Registry:
    return Registry(host, credentials=lambda h: creds, certs_dir=tmp / "certs.d", **kw)


async def push_image(reg: Registry, repo: str, img: Image, tag: str) -> str:
    await reg.push_blob(repo, img.config_desc, source(img.config))
    await reg.push_blob(repo, img.layer_desc, source(img.layer), chunk_size=64 << 10)
    return await reg.push_manifest(repo, tag, oci.OCI_MANIFEST, img.manifest)


# -- Debian's docker-registry ------------------------------------------------------------


def test_docker_registry_round_trip(registry_factory: MakeRegistry, tmp_path: Path) -> None:
    r = registry_factory("docker")
    img = Image("round-trip")

    async def go() -> None:
        async with client(r.host, tmp_path) as reg:
            assert await reg.blob_exists("t/app", img.layer_desc.digest) is None
            digest = await push_image(reg, "t/app", img, "v1")
            assert digest == img.manifest_desc.digest
            have = await reg.blob_exists("t/app", img.layer_desc.digest)
            assert have is not None and have.size == len(img.layer)

            by_tag = await reg.resolve(parse(f"{r.host}/t/app:v1"))
            assert by_tag == img.manifest_desc
            by_digest = await reg.resolve(parse(f"{r.host}/t/app@{digest}"))
            assert by_digest == img.manifest_desc
            assert await reg.fetch_manifest("t/app", by_tag) == img.manifest
            assert await read_all(reg.fetch_blob("t/app", img.layer_desc)) == img.layer
            tail = await read_all(reg.fetch_blob("t/app", img.layer_desc, offset=123_456))
            assert tail == img.layer[123_456:]
            assert await read_all(reg.fetch_blob("t/app", img.config_desc)) == img.config

            assert await reg.mount_blob("t/other", img.layer_desc, "t/app") is True
            assert await reg.blob_exists("t/other", img.layer_desc.digest) is not None
            ghost = desc_of(b"never pushed")
            assert await reg.mount_blob("t/other", ghost, "t/app") is False
            assert await reg.blob_exists("t/other", ghost.digest) is None

    run(go())


def test_docker_registry_tags_pagination_and_errors(
    registry_factory: MakeRegistry, tmp_path: Path
) -> None:
    r = registry_factory("docker")
    img = Image("tags", layer_size=1000)

    async def go() -> None:
        async with client(r.host, tmp_path) as reg:
            for tag in ("a", "b", "c", "d", "e"):
                await push_image(reg, "t/tags", img, tag)
            assert sorted(await reg.tags("t/tags")) == ["a", "b", "c", "d", "e"]
            # distribution 2.8 ignores n (test_tags_follow_link_pagination has pages).
            assert sorted(await reg.tags("t/tags", page_size=2)) == ["a", "b", "c", "d", "e"]

            with pytest.raises(errors.NotFound, match="MANIFEST_UNKNOWN"):
                await reg.resolve(parse(f"{r.host}/t/tags:nope"))
            with pytest.raises(errors.NotFound, match="NAME_UNKNOWN"):
                await reg.tags("t/none")
            ghost = desc_of(b"ghost")
            with pytest.raises(errors.NotFound, match=f"blob {ghost.digest}"):
                await read_all(reg.fetch_blob("t/tags", ghost))
            # A manifest naming a blob the registry does not have is refused.
            other = Image("other")
            with pytest.raises(errors.InvalidArgument, match="MANIFEST_BLOB_UNKNOWN"):
                await reg.push_manifest("t/tags", "bad", oci.OCI_MANIFEST, other.manifest)
            # A blob whose bytes do not match the digest given is refused.
            lie = oci.Descriptor("application/octet-stream", ghost.digest, 5)
            with pytest.raises(errors.InvalidArgument, match="DIGEST_INVALID"):
                await reg.push_blob("t/tags", lie, source(b"other"))
            assert await reg.blob_exists("t/tags", ghost.digest) is None

    run(go())


def test_docker_registry_basic_auth(registry_factory: MakeRegistry, tmp_path: Path) -> None:
    r = registry_factory("docker", htpasswd=("alice", "s3cret"))
    img = Image("basic", layer_size=5000)
    ref = parse(f"{r.host}/t/private:v1")

    async def go() -> None:
        async with client(r.host, tmp_path) as reg:
            with pytest.raises(errors.PermissionDenied, match="no credentials"):
                await push_image(reg, "t/private", img, "v1")
        async with client(r.host, tmp_path, Credentials("alice", "wrong")) as reg:
            with pytest.raises(errors.PermissionDenied, match="401"):
                await push_image(reg, "t/private", img, "v1")
        async with client(r.host, tmp_path, Credentials("alice", "s3cret")) as reg:
            await push_image(reg, "t/private", img, "v1")
            desc = await reg.resolve(ref)
            assert await reg.fetch_manifest("t/private", desc) == img.manifest
            assert await read_all(reg.fetch_blob("t/private", img.layer_desc)) == img.layer
        async with client(r.host, tmp_path) as reg:
            with pytest.raises(errors.PermissionDenied):
                await reg.resolve(ref)

    run(go())


# -- fake registries ------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def serve(app: web.Application, ssl_context: ssl.SSLContext | None = None) -> Any:
    """Serve ``app`` on 127.0.0.1 (a free port); yields ``host:port``."""
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
    await site.start()
    server = site._server
    assert server is not None
    port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await runner.cleanup()


class Fake:
    """An in-memory read-only registry whose blob and manifest answers can be bent."""

    def __init__(self, img: Image) -> None:
        self.img = img
        self.blobs = {img.config_desc.digest: img.config, img.layer_desc.digest: img.layer}
        self.requests: list[tuple[str, str, str]] = []  # method, path, Range
        self.app = web.Application()
        self.app.router.add_route("*", "/v2/{repo:.+}/manifests/{ref}", self.manifest)
        self.app.router.add_route("*", "/v2/{repo:.+}/blobs/{digest}", self.blob)

    def record(self, request: web.Request) -> None:
        self.requests.append((request.method, request.path, request.headers.get("Range", "")))

    async def check(self, request: web.Request) -> None:
        """Auth hook (none by default)."""

    async def manifest(self, request: web.Request) -> web.StreamResponse:
        self.record(request)
        await self.check(request)
        body = self.img.manifest
        ref = request.match_info["ref"]
        if ref not in ("v1", self.img.manifest_desc.digest):
            raise web.HTTPNotFound(
                text=json.dumps({"errors": [{"code": "MANIFEST_UNKNOWN", "message": "no"}]}),
                content_type="application/json",
            )
        headers = {"Docker-Content-Digest": oci.digest_of(body)}
        return web.Response(body=body, content_type=oci.OCI_MANIFEST, headers=headers)

    async def blob(self, request: web.Request) -> web.StreamResponse:
        self.record(request)
        await self.check(request)
        body = self.blobs[request.match_info["digest"]]
        start = int(request.headers.get("Range", "bytes=0-")[6:].rstrip("-"))
        if start:
            return web.Response(body=body[start:], status=206)
        return web.Response(body=body)


def test_bearer_token_flow_caches_per_scope(tmp_path: Path) -> None:
    img = Image("bearer", layer_size=1000)
    fake = Fake(img)
    tokens: dict[str, set[str]] = {}
    token_requests: list[dict[str, Any]] = []

    async def token(request: web.Request) -> web.Response:
        form = dict(await request.post()) if request.method == "POST" else {}
        token_requests.append(
            {
                "method": request.method,
                "auth": request.headers.get("Authorization", ""),
                "scope": request.query.getall("scope", []) or [str(form.get("scope", ""))],
                "service": request.query.get("service") or form.get("service"),
                "form": form,
            }
        )
        basic_ok = request.headers.get("Authorization") == "Basic YWxpY2U6czNjcmV0"
        refresh_ok = form.get("grant_type") == "refresh_token" and form.get("refresh_token") == "r"
        if not (basic_ok or refresh_ok):
            raise web.HTTPUnauthorized()
        tok = f"tok{len(tokens)}"
        tokens[tok] = set(" ".join(token_requests[-1]["scope"]).split())
        key = "access_token" if refresh_ok else "token"
        return web.json_response({key: tok, "expires_in": 300})

    async def check(request: web.Request) -> None:
        repo = request.match_info["repo"]
        got = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if f"repository:{repo}:pull" not in tokens.get(got, set()):
            challenge = (
                f'Bearer realm="http://{request.host}/token",service="fake",'
                f'scope="repository:{repo}:pull"'
            )
            raise web.HTTPUnauthorized(headers={"WWW-Authenticate": challenge})

    fake.check = check  # type: ignore[method-assign]
    fake.app.router.add_route("*", "/token", token)

    async def go() -> None:
        async with serve(fake.app) as host:
            async with client(host, tmp_path, Credentials("alice", "s3cret")) as reg:
                desc = await reg.resolve(parse(f"{host}/t/app:v1"))
                assert await reg.fetch_manifest("t/app", desc) == img.manifest
                assert await read_all(reg.fetch_blob("t/app", img.layer_desc)) == img.layer
                assert await read_all(reg.fetch_blob("t/app", img.config_desc)) == img.config
                assert len(token_requests) == 1  # one token for every pull of t/app
                assert token_requests[0]["method"] == "GET"
                assert token_requests[0]["scope"] == ["repository:t/app:pull"]
                assert token_requests[0]["service"] == "fake"
                await reg.resolve(parse(f"{host}/t/second:v1"))
                assert len(token_requests) == 2  # another repository, another token
            async with client(host, tmp_path, Credentials(identity_token="r")) as reg:
                assert await reg.resolve(parse(f"{host}/t/app:v1")) == img.manifest_desc
                assert token_requests[-1]["method"] == "POST"
                assert token_requests[-1]["form"]["grant_type"] == "refresh_token"
            async with client(host, tmp_path, Credentials("alice", "wrong")) as reg:
                with pytest.raises(errors.PermissionDenied, match="refused the credentials"):
                    await reg.resolve(parse(f"{host}/t/app:v1"))
            async with client(host, tmp_path) as reg:
                with pytest.raises(errors.PermissionDenied):
                    await reg.resolve(parse(f"{host}/t/app:v1"))

    run(go())


def test_lying_registry_is_caught(tmp_path: Path) -> None:
    img = Image("liar", layer_size=2000)
    fake = Fake(img)
    real_manifest = img.manifest
    fake.blobs[img.layer_desc.digest] = bytes(reversed(img.layer))  # same size, other bytes

    async def go() -> None:
        async with serve(fake.app) as host, client(host, tmp_path) as reg:
            with pytest.raises(errors.FailedPrecondition, match=img.layer_desc.digest):
                await read_all(reg.fetch_blob("t/app", img.layer_desc))
            # The manifest served is not the one its digest names.
            img.manifest = real_manifest + b" "
            with pytest.raises(errors.FailedPrecondition, match=img.manifest_desc.digest):
                await reg.fetch_manifest("t/app", img.manifest_desc)
            with pytest.raises(errors.FailedPrecondition, match="registry answered digest"):
                await reg.resolve(parse(f"{host}/t/app@{img.manifest_desc.digest}"))

    run(go())


def test_oversized_manifest_is_refused(tmp_path: Path) -> None:
    img = Image("big", layer_size=10)
    fake = Fake(img)
    img.manifest = b"{" + b" " * (5 << 20) + b"}"

    async def go() -> None:
        async with serve(fake.app) as host, client(host, tmp_path) as reg:
            with pytest.raises(errors.ResourceExhausted, match="4 MiB"):
                await reg.resolve(parse(f"{host}/t/app:v1"))
            big = oci.Descriptor(oci.OCI_MANIFEST, img.manifest_desc.digest, 5 << 20)
            with pytest.raises(errors.ResourceExhausted, match="4 MiB"):
                await reg.fetch_manifest("t/app", big)

    run(go())


async def half_then_drop(request: web.Request, body: bytes) -> web.StreamResponse:
    """Promise the whole body, send half, drop the connection."""
    resp = web.StreamResponse(headers={"Content-Length": str(len(body))})
    await resp.prepare(request)
    await resp.write(body[: len(body) // 2])
    assert request.transport is not None
    request.transport.close()
    return resp


@pytest.mark.parametrize("honours_range", [True, False])
def test_dropped_blob_download_resumes(tmp_path: Path, honours_range: bool) -> None:
    img = Image("drop", layer_size=1 << 20)
    fake = Fake(img)
    plain_blob = fake.blob

    async def blob(request: web.Request) -> web.StreamResponse:
        if len(fake.requests) == 0:
            fake.record(request)
            return await half_then_drop(request, img.layer)
        if not honours_range:
            fake.record(request)
            return web.Response(body=img.layer)
        return await plain_blob(request)

    fake.blob = blob  # type: ignore[method-assign]
    fake.app = web.Application()
    fake.app.router.add_route("*", "/v2/{repo:.+}/blobs/{digest}", blob)

    async def go() -> None:
        async with serve(fake.app) as host, client(host, tmp_path) as reg:
            assert await read_all(reg.fetch_blob("t/app", img.layer_desc)) == img.layer
        assert len(fake.requests) == 2
        assert fake.requests[1][2].startswith("bytes=") and fake.requests[1][2] != "bytes=0-"

    run(go())


def test_truncated_blob_is_an_error_naming_the_digest(tmp_path: Path) -> None:
    img = Image("trunc", layer_size=200_000)
    seen: list[str] = []

    async def blob(request: web.Request) -> web.StreamResponse:
        seen.append(request.headers.get("Range", ""))
        return await half_then_drop(request, img.layer)  # whatever was asked

    app = web.Application()
    app.router.add_route("*", "/v2/{repo:.+}/blobs/{digest}", blob)

    async def go() -> None:
        async with serve(app) as host, client(host, tmp_path) as reg:
            with pytest.raises(errors.FailedPrecondition) as info:
                await read_all(reg.fetch_blob("t/app", img.layer_desc))
            assert img.layer_desc.digest in str(info.value)
            assert "truncated" in str(info.value)
        assert len(seen) == 4  # the first try and three resumes

    run(go())


def test_redirects_followed_loops_refused(tmp_path: Path) -> None:
    img = Image("redirect", layer_size=5000)
    digest = img.layer_desc.digest

    async def blob(request: web.Request) -> web.StreamResponse:
        repo = request.match_info["repo"]
        if repo == "t/loop":
            raise web.HTTPTemporaryRedirect("/hop/a")
        if repo == "t/long":
            raise web.HTTPTemporaryRedirect("/chain/0")
        raise web.HTTPTemporaryRedirect("/chain/4")  # 2 hops to the bytes

    async def hop(request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound("/hop/b" if request.match_info["n"] == "a" else "/hop/a")

    async def chain(request: web.Request) -> web.StreamResponse:
        n = int(request.match_info["n"])
        if n == 5:
            return web.Response(body=img.layer)
        raise web.HTTPTemporaryRedirect(f"http://{request.host}/chain/{n + 1}")

    app = web.Application()
    app.router.add_route("*", "/v2/{repo:.+}/blobs/{digest}", blob)
    app.router.add_get("/hop/{n}", hop)
    app.router.add_get("/chain/{n}", chain)

    async def go() -> None:
        async with serve(app) as host, client(host, tmp_path) as reg:
            assert await read_all(reg.fetch_blob("t/ok", img.layer_desc)) == img.layer
            with pytest.raises(errors.FailedPrecondition, match="redirect loop"):
                await read_all(reg.fetch_blob("t/loop", img.layer_desc))
            with pytest.raises(errors.FailedPrecondition, match="more than 5 redirects"):
                await read_all(reg.fetch_blob("t/long", img.layer_desc))
        assert digest

    run(go())


# -- TLS with certs.d ------------------------------------------------------------------------


def openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], capture_output=True, check=True, timeout=60)


def make_ca(d: Path, name: str) -> tuple[Path, Path]:
    key, crt = d / f"{name}-ca.key", d / f"{name}-ca.crt"
    openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(key))
    openssl(
        "req", "-x509", "-new", "-key", str(key), "-out", str(crt), "-days", "2",
        "-subj", f"/CN={name} test CA",
    )  # fmt: skip
    return crt, key


def make_cert(d: Path, name: str, ca: tuple[Path, Path], ext: str) -> tuple[Path, Path]:
    key, csr, crt = d / f"{name}.key", d / f"{name}.csr", d / f"{name}.crt"
    extfile = d / f"{name}.ext"
    extfile.write_text(ext + "\n")
    openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(key))
    openssl("req", "-new", "-key", str(key), "-out", str(csr), "-subj", f"/CN={name}")
    openssl(
        "x509", "-req", "-in", str(csr), "-CA", str(ca[0]), "-CAkey", str(ca[1]),
        "-CAcreateserial", "-out", str(crt), "-days", "2", "-extfile", str(extfile),
    )  # fmt: skip
    return crt, key


def test_tls_with_ca_and_client_certificate_from_certs_d(tmp_path: Path) -> None:
    pki = tmp_path / "pki"
    pki.mkdir()
    ca = make_ca(pki, "good")
    other_ca = make_ca(pki, "other")
    server = make_cert(pki, "server", ca, "subjectAltName=IP:127.0.0.1")
    user = make_cert(pki, "client", ca, "extendedKeyUsage=clientAuth")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(str(server[0]), str(server[1]))
    ctx.load_verify_locations(cafile=str(ca[0]))
    ctx.verify_mode = ssl.CERT_REQUIRED
    img = Image("tls", layer_size=3000)
    fake = Fake(img)

    def certs_d(host: str, files: dict[str, Path]) -> Path:
        root = tmp_path / f"certs-{len(list(tmp_path.glob('certs-*')))}"
        (root / host).mkdir(parents=True)
        for name, src in files.items():
            (root / host / name).write_bytes(src.read_bytes())
        return root

    async def go() -> None:
        async with serve(fake.app, ctx) as host:
            ref = parse(f"{host}/t/app:v1")
            full = certs_d(host, {"ca.crt": ca[0], "client.cert": user[0], "client.key": user[1]})
            async with Registry(host, credentials=lambda h: None, certs_dir=full) as reg:
                assert await reg.resolve(ref) == img.manifest_desc
                assert await read_all(reg.fetch_blob("t/app", img.layer_desc)) == img.layer
            # Without the client certificate the server refuses the handshake.
            no_client = certs_d(host, {"ca.crt": ca[0]})
            async with Registry(host, credentials=lambda h: None, certs_dir=no_client) as reg:
                with pytest.raises(errors.Unavailable):
                    await reg.resolve(ref)
            # With another CA the server's certificate is not trusted, even on loopback.
            wrong = certs_d(host, {"ca.crt": other_ca[0], "c.cert": user[0], "c.key": user[1]})
            async with Registry(host, credentials=lambda h: None, certs_dir=wrong) as reg:
                with pytest.raises(errors.Unavailable, match="certificate verify failed"):
                    await reg.resolve(ref)
        assert [m for m, _, _ in fake.requests] == ["HEAD", "GET"]

    run(go())


def test_chunked_push_resumes_from_the_registry_range(tmp_path: Path) -> None:
    body = data(250_000, "chunked")
    desc = desc_of(body)
    uploaded = bytearray()
    log: list[str] = []

    async def start(request: web.Request) -> web.StreamResponse:
        log.append("POST")
        return web.Response(status=202, headers={"Location": "/v2/t/app/blobs/uploads/u1?s=1"})

    async def upload(request: web.Request) -> web.StreamResponse:
        status = {"Range": f"0-{len(uploaded) - 1}", "Location": request.path_qs}
        if request.method == "GET":
            log.append(f"GET {status['Range']}")
            return web.Response(status=204, headers=status)
        if request.method == "PATCH":
            start_, _, end = request.headers["Content-Range"].partition("-")
            log.append(f"PATCH {start_}-{end}")
            if int(start_) != len(uploaded):
                return web.Response(status=416, headers=status)
            piece = await request.read()
            if int(start_) == 100_000 and "failed" not in log:  # keep half, then fail
                log.append("failed")
                uploaded.extend(piece[: len(piece) // 2])
                return web.Response(status=500)
            uploaded.extend(piece)
            return web.Response(status=202, headers={**status, "Range": f"0-{len(uploaded) - 1}"})
        assert request.method == "PUT"
        log.append("PUT")
        uploaded.extend(await request.read())
        if request.query["digest"] != oci.digest_of(bytes(uploaded)):
            return web.json_response({"errors": [{"code": "DIGEST_INVALID"}]}, status=400)
        return web.Response(status=201, headers={"Docker-Content-Digest": desc.digest})

    app = web.Application()
    app.router.add_post("/v2/t/app/blobs/uploads/", start)
    app.router.add_route("*", "/v2/t/app/blobs/uploads/u1", upload)

    async def go() -> None:
        async with serve(app) as host, client(host, tmp_path) as reg:
            await reg.push_blob("t/app", desc, source(body, piece=7_000), chunk_size=50_000)

    run(go())
    assert bytes(uploaded) == body
    assert log == [
        "POST",
        "PATCH 0-49999",
        "PATCH 50000-99999",
        "PATCH 100000-149999",
        "failed",
        "GET 0-124999",
        "PATCH 125000-174999",
        "PATCH 175000-224999",
        "PATCH 225000-249999",
        "PUT",
    ]


def test_tags_follow_link_pagination(tmp_path: Path) -> None:
    # distribution 2.8 ignores n/last, so the pages come from a fake (spec 1.1 shape).
    all_tags = [f"t{i:02d}" for i in range(7)]
    asked: list[str] = []

    async def tags(request: web.Request) -> web.Response:
        asked.append(request.query_string)
        n = int(request.query.get("n", "3"))
        last = request.query.get("last", "")
        page = [t for t in all_tags if t > last][:n]
        headers = {}
        if page and page[-1] != all_tags[-1]:
            headers["Link"] = f'</v2/t/app/tags/list?n={n}&last={page[-1]}>; rel="next"'
        return web.json_response({"name": "t/app", "tags": page}, headers=headers)

    app = web.Application()
    app.router.add_get("/v2/t/app/tags/list", tags)

    async def go() -> None:
        async with serve(app) as host, client(host, tmp_path) as reg:
            assert await reg.tags("t/app") == all_tags
            assert await reg.tags("t/app", page_size=5) == all_tags

    run(go())
    assert asked == ["", "n=3&last=t02", "n=3&last=t05", "n=5", "n=5&last=t04"]
