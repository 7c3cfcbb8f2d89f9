"""The registry's HTTP face: aiohttp handlers for the OCI Distribution spec v1.1.

Handlers translate HTTP to :class:`.storage.Storage` calls and
:class:`.spec.RegistryError` to the spec's JSON bodies; who may call what is
decided in :class:`Gate` before a handler runs.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import ssl
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import structlog
from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from . import auth, spec
from .spec import RegistryError, Route
from .storage import Storage

CHUNK = 1 << 20
MIN_SECRET = 16  # bytes of --token-secret, at least
API_VERSION = ("Docker-Distribution-API-Version", "registry/2.0")
_log = structlog.get_logger("seacan.registry")


@dataclass(slots=True)
class Options:
    host: str
    port: int
    root: Path
    htpasswd: Path | None = None
    token_auth: bool = False
    token_acl: Path | None = None
    token_secret: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None
    access_log: Path | None = None
    max_manifest_bytes: int = 4 << 20
    delete: bool = True
    max_writers: int = 256


# --- who may do what ------------------------------------------------------------


def _required(route: Route, method: str) -> tuple[str, str, str] | None:
    """The (type, name, action) a request needs; None for the base endpoint."""
    if route.kind == "base":
        return None
    if route.kind == "catalog":
        return ("registry", "catalog", "*")
    if method in ("GET", "HEAD"):
        return ("repository", route.name, "pull")
    if method == "DELETE" and route.kind in ("manifest", "blob"):
        return ("repository", route.name, "delete")
    return ("repository", route.name, "push")


def _challenge_scope(need: tuple[str, str, str]) -> str:
    typ, name, action = need
    actions = "pull,push" if action == "push" else action
    return f"{typ}:{name}:{actions}"


class Gate:
    """Anonymous, htpasswd basic auth, or bearer tokens from our own ``/token``."""

    def __init__(self, opts: Options) -> None:
        self.users = auth.Htpasswd(opts.htpasswd) if opts.htpasswd else None
        self.token = opts.token_auth
        self.acl = auth.Acl.load(opts.token_acl) if opts.token_acl else auth.Acl({})
        self.secret = opts.token_secret.read_bytes().strip() if opts.token_secret else b""
        if self.token and len(self.secret) < MIN_SECRET:
            raise ValueError(
                f"token secret {opts.token_secret} holds {len(self.secret)} bytes, fewer than"
                f" {MIN_SECRET}: anyone could forge tokens (try: openssl rand -hex 32)"
            )
        self.service = f"{opts.host}:{opts.port}"
        self.realm = ""

    def bind(self, scheme: str, host: str, port: int) -> None:
        self.service = f"{host}:{port}"
        self.realm = f"{scheme}://{host}:{port}/token"

    def _basic_user(self, request: web.Request) -> str | None:
        creds = auth.parse_basic(request.headers.get("Authorization"))
        if creds and self.users and self.users.verify(*creds):
            return creds[0]
        return None

    def check(self, request: web.Request, route: Route) -> tuple[str, dict[str, Any] | None]:
        """The user, and the token claims in token mode; raises UNAUTHORIZED or DENIED."""
        need = _required(route, request.method)
        if self.token:
            return self._check_token(request, need)
        if self.users is None:
            return "", None
        user = self._basic_user(request)
        if user is None:
            raise RegistryError(
                "UNAUTHORIZED",
                "authentication required",
                headers={"WWW-Authenticate": 'Basic realm="seacan-registry"'},
            )
        return user, None

    def _check_token(
        self, request: web.Request, need: tuple[str, str, str] | None
    ) -> tuple[str, dict[str, Any] | None]:
        challenge = f'Bearer realm="{self.realm}",service="{self.service}"'
        if need:
            challenge += f',scope="{_challenge_scope(need)}"'
        bearer = auth.parse_bearer(request.headers.get("Authorization"))
        claims = auth.verify_token(self.secret, bearer, self.service) if bearer else None
        if claims is None:
            raise RegistryError(
                "UNAUTHORIZED", "authentication required", headers={"WWW-Authenticate": challenge}
            )
        if need and not auth.token_allows(claims, *need):
            raise RegistryError(
                "DENIED",
                f"requested access to {need[0]} {need[1]} ({need[2]}) is denied",
                headers={"WWW-Authenticate": challenge + ',error="insufficient_scope"'},
            )
        return str(claims.get("sub", "")), claims

    def may_pull(self, claims: dict[str, Any] | None, name: str) -> bool:
        if not self.token:
            return True
        return claims is not None and auth.token_allows(claims, "repository", name, "pull")

    async def issue(self, request: web.Request) -> web.Response:
        """The token endpoint: Basic credentials (or an OAuth2 password grant) in,
        a token with the scopes the ACL grants out."""
        if request.method == "POST":
            form = await request.post()
            user, password = str(form.get("username", "")), str(form.get("password", ""))
            scope_values = [str(v) for v in form.getall("scope", [])]
        else:
            creds = auth.parse_basic(request.headers.get("Authorization")) or ("", "")
            user, password = creds
            scope_values = request.query.getall("scope", [])
        if not user or self.users is None or not self.users.verify(user, password):
            raise RegistryError(
                "UNAUTHORIZED",
                "invalid username or password",
                headers={"WWW-Authenticate": 'Basic realm="seacan-registry"'},
            )
        access = self.acl.grant(user, auth.parse_scopes(scope_values))
        request["user"] = user
        token = auth.sign_token(self.secret, user, self.service, access)
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        body = {
            "token": token,
            "access_token": token,
            "expires_in": auth.TOKEN_TTL,
            "issued_at": now,
        }
        return web.json_response(body)


# --- handlers -------------------------------------------------------------------


def _json(doc: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=json.dumps(doc).encode(),
        status=status,
        content_type="application/json",
        headers=headers,
    )


def _empty(status: int, headers: dict[str, str]) -> web.Response:
    return web.Response(status=status, headers={**headers, "Content-Length": "0"})


async def _chunks(request: web.Request) -> AsyncIterator[bytes]:
    async for chunk in request.content.iter_chunked(CHUNK):
        yield chunk


Handler = Callable[["Registry", web.Request, Route, Any], Awaitable[web.StreamResponse]]


class Registry:
    def __init__(self, opts: Options, storage: Storage, gate: Gate) -> None:
        self.opts = opts
        self.storage = storage
        self.gate = gate
        self.writers = 0

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        route = spec.parse_route(request.raw_path)
        if route is None:
            raise RegistryError("UNSUPPORTED", f"no such endpoint {request.path}", status=404)
        if route.name:
            spec.check_name(route.name)
        user, claims = self.gate.check(request, route)
        request["user"] = user
        handler = self._handlers.get((route.kind, request.method))
        if handler is None:
            raise RegistryError(
                "UNSUPPORTED", f"{request.method} is not supported on {route.kind}", status=405
            )
        return await handler(self, request, route, claims)

    # base and listings

    async def base(self, request: web.Request, route: Route, claims: Any) -> web.StreamResponse:
        return _json({})

    async def catalog(self, request: web.Request, route: Route, claims: Any) -> web.StreamResponse:
        q = request.query
        page, link = spec.paginate(
            self.storage.repositories(), q.get("n"), q.get("last"), "/v2/_catalog"
        )
        return _json({"repositories": page}, headers={"Link": link} if link else None)

    async def tags(self, request: web.Request, route: Route, claims: Any) -> web.StreamResponse:
        q = request.query
        base = f"/v2/{route.name}/tags/list"
        page, link = spec.paginate(self.storage.tags(route.name), q.get("n"), q.get("last"), base)
        return _json({"name": route.name, "tags": page}, headers={"Link": link} if link else None)

    async def referrers(
        self, request: web.Request, route: Route, claims: Any
    ) -> web.StreamResponse:
        subject = spec.check_digest(route.ref)
        artifact_type = request.query.get("artifactType")
        found = self.storage.referrers(route.name, subject, artifact_type)
        doc = {"schemaVersion": 2, "mediaType": spec.OCI_INDEX, "manifests": found}
        headers = {"Content-Type": spec.OCI_INDEX}
        if artifact_type is not None:
            headers["OCI-Filters-Applied"] = "artifactType"
        return web.Response(body=json.dumps(doc).encode(), headers=headers)

    # manifests

    async def get_manifest(
        self, request: web.Request, route: Route, claims: Any
    ) -> web.StreamResponse:
        m = self.storage.manifest(route.name, route.ref)
        headers = {
            "Content-Type": m.media_type,
            "Docker-Content-Digest": m.digest,
            "Content-Length": str(len(m.body)),
        }
        if request.method == "HEAD":
            return web.Response(headers=headers)
        return web.Response(body=m.body, headers=headers)

    async def put_manifest(
        self, request: web.Request, route: Route, claims: Any
    ) -> web.StreamResponse:
        limit = self.opts.max_manifest_bytes
        too_big = RegistryError(
            "MANIFEST_INVALID", f"manifest is larger than {limit} bytes", status=413
        )
        if (request.content_length or 0) > limit:
            raise too_big
        body = await request.content.read(limit + 1)
        while len(body) <= limit and not request.content.at_eof():
            more = await request.content.read(limit + 1 - len(body))
            if not more:
                break
            body += more
        if len(body) > limit:
            raise too_big
        digest = self.storage.put_manifest(
            route.name, route.ref, body, request.headers.get("Content-Type")
        )
        headers = {
            "Location": f"/v2/{route.name}/manifests/{digest}",
            "Docker-Content-Digest": digest,
        }
        subject = spec.parse_manifest(body, request.headers.get("Content-Type")).subject
        if subject:
            headers["OCI-Subject"] = subject
        return _empty(201, headers)

    async def delete_manifest(
        self, request: web.Request, route: Route, claims: Any
    ) -> web.StreamResponse:
        self._deletable()
        self.storage.delete_manifest(route.name, route.ref)
        return _empty(202, {})

    def _deletable(self) -> None:
        if not self.opts.delete:
            raise RegistryError("UNSUPPORTED", "deletion is disabled on this registry")

    # blobs

    async def get_blob(self, request: web.Request, route: Route, claims: Any) -> web.StreamResponse:
        digest = spec.check_digest(route.ref)
        path, size = self.storage.blob(route.name, digest)
        headers = {"Docker-Content-Digest": digest, "Content-Type": "application/octet-stream"}
        if request.method == "HEAD":
            return web.Response(
                headers={**headers, "Content-Length": str(size), "Accept-Ranges": "bytes"}
            )
        return web.FileResponse(path, chunk_size=CHUNK, headers=headers)

    async def delete_blob(
        self, request: web.Request, route: Route, claims: Any
    ) -> web.StreamResponse:
        self._deletable()
        self.storage.delete_blob(route.name, spec.check_digest(route.ref))
        return _empty(202, {})

    # uploads

    def _upload_headers(self, name: str, uid: str, size: int) -> dict[str, str]:
        return {
            "Location": f"/v2/{name}/blobs/uploads/{uid}",
            "Range": spec.upload_range(size),
            "Docker-Upload-UUID": uid,
        }

    def _done(self, name: str, digest: str) -> web.Response:
        return _empty(
            201, {"Location": f"/v2/{name}/blobs/{digest}", "Docker-Content-Digest": digest}
        )

    async def _writing(self, write: Callable[[], Awaitable[web.Response]]) -> web.Response:
        if self.writers >= self.opts.max_writers:
            raise RegistryError(
                "TOOMANYREQUESTS", "too many uploads at once", headers={"Retry-After": "1"}
            )
        self.writers += 1
        try:
            return await write()
        finally:
            self.writers -= 1

    async def start_upload(
        self, request: web.Request, route: Route, claims: Any
    ) -> web.StreamResponse:
        q = request.query
        name = route.name
        if "mount" in q:
            digest = spec.check_digest(q["mount"])
            source = q.get("from", "")
            if (
                source
                and spec.NAME_RE.fullmatch(source)
                and self.gate.may_pull(claims, source)
                and self.storage.mount_blob(name, digest, source)
            ):
                return self._done(name, digest)
        elif "digest" in q:
            digest = spec.check_digest(q["digest"])

            async def monolithic() -> web.Response:
                up = self.storage.start_upload(name)
                try:
                    await self.storage.append(up, _chunks(request))
                except BaseException:
                    self.storage.cancel_upload(up)
                    raise
                await self.storage.commit_upload(up, digest)
                return self._done(name, digest)

            return await self._writing(monolithic)
        up = self.storage.start_upload(name)
        return _empty(202, self._upload_headers(name, up.uuid, 0))

    async def upload_status(
        self, request: web.Request, route: Route, claims: Any
    ) -> web.StreamResponse:
        up = await self.storage.upload(route.name, route.ref)
        return _empty(204, self._upload_headers(route.name, up.uuid, up.size))

    async def _write_chunk(self, request: web.Request, route: Route) -> int:
        """Append the request body at the upload's offset, after the 416 rules;
        the upload's new size."""
        up = await self.storage.upload(route.name, route.ref)
        async with up.lock:
            content_range = request.headers.get("Content-Range")
            if content_range:
                start, end = spec.parse_content_range(content_range)
                length = request.content_length
                if start != up.size or (length is not None and length != end - start + 1):
                    raise RegistryError(
                        "BLOB_UPLOAD_INVALID",
                        f"Content-Range {content_range} does not continue the upload at {up.size}",
                        status=416,
                        headers=self._upload_headers(route.name, up.uuid, up.size),
                    )
            await self.storage.append(up, _chunks(request))
            return up.size

    async def patch_upload(
        self, request: web.Request, route: Route, claims: Any
    ) -> web.StreamResponse:
        async def patch() -> web.Response:
            size = await self._write_chunk(request, route)
            return _empty(202, self._upload_headers(route.name, route.ref, size))

        return await self._writing(patch)

    async def finish_upload(
        self, request: web.Request, route: Route, claims: Any
    ) -> web.StreamResponse:
        up = await self.storage.upload(route.name, route.ref)
        if "digest" not in request.query:
            raise RegistryError("DIGEST_INVALID", "the digest query parameter is missing")
        digest = spec.check_digest(request.query["digest"])

        async def finish() -> web.Response:
            await self._write_chunk(request, route)
            async with up.lock:
                await self.storage.commit_upload(up, digest)
            return self._done(route.name, digest)

        return await self._writing(finish)

    async def cancel_upload(
        self, request: web.Request, route: Route, claims: Any
    ) -> web.StreamResponse:
        up = await self.storage.upload(route.name, route.ref)
        self.storage.cancel_upload(up)
        return _empty(204, {})

    _handlers: dict[tuple[str, str], Handler] = {
        ("base", "GET"): base,
        ("base", "HEAD"): base,
        ("catalog", "GET"): catalog,
        ("tags", "GET"): tags,
        ("referrers", "GET"): referrers,
        ("manifest", "GET"): get_manifest,
        ("manifest", "HEAD"): get_manifest,
        ("manifest", "PUT"): put_manifest,
        ("manifest", "DELETE"): delete_manifest,
        ("blob", "GET"): get_blob,
        ("blob", "HEAD"): get_blob,
        ("blob", "DELETE"): delete_blob,
        ("uploads", "POST"): start_upload,
        ("upload", "GET"): upload_status,
        ("upload", "PATCH"): patch_upload,
        ("upload", "PUT"): finish_upload,
        ("upload", "DELETE"): cancel_upload,
    }


# --- the application ------------------------------------------------------------


@web.middleware
async def _errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except RegistryError as e:
        return web.Response(
            body=e.body(), status=e.status, content_type="application/json", headers=e.headers
        )


async def _api_version(request: web.Request, response: web.StreamResponse) -> None:
    response.headers[API_VERSION[0]] = API_VERSION[1]


class AccessLog(AbstractAccessLogger):
    """One JSON line per request: method, path, status, bytes, duration, user."""

    sink: Any = None

    @property
    def enabled(self) -> bool:
        return True

    def log(self, request: Any, response: Any, time: float) -> None:
        user = request.get("user", "") if hasattr(request, "get") else ""
        self.sink.info(
            "registry.access",
            method=request.method,
            path=request.path_qs,
            status=response.status,
            bytes=response.body_length,
            duration_ms=round(time * 1000, 2),
            user=user,
            remote=request.remote,
        )


def access_sink(stream: TextIO) -> Any:
    return structlog.wrap_logger(
        structlog.PrintLogger(file=stream),
        processors=[
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.JSONRenderer(),
        ],
    )


def make_app(opts: Options, storage: Storage, gate: Gate) -> web.Application:
    registry = Registry(opts, storage, gate)
    app = web.Application(middlewares=[_errors])
    app.on_response_prepare.append(_api_version)
    app.router.add_route("*", "/v2{tail:.*}", registry.dispatch)
    if gate.token:
        app.router.add_route("GET", "/token", gate.issue)
        app.router.add_route("POST", "/token", gate.issue)
    return app


def tls_context(opts: Options) -> ssl.SSLContext | None:
    if not opts.tls_cert:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(str(opts.tls_cert), str(opts.tls_key) if opts.tls_key else None)
    if opts.tls_client_ca:
        ctx.load_verify_locations(str(opts.tls_client_ca))
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


async def serve(opts: Options) -> None:
    """Serve until SIGTERM or SIGINT; print ``listening on URL`` once ready."""
    storage = Storage(opts.root)
    storage.clean_tmp()
    gate = Gate(opts)
    stream: TextIO = opts.access_log.open("a", buffering=1) if opts.access_log else sys.stderr
    AccessLog.sink = access_sink(stream)
    runner = web.AppRunner(
        make_app(opts, storage, gate),
        handle_signals=False,
        access_log_class=AccessLog,
        access_log=logging.getLogger("seacan.registry.access"),
        read_bufsize=CHUNK,
        auto_decompress=False,
    )
    await runner.setup()
    ctx = tls_context(opts)
    site = web.TCPSite(runner, opts.host, opts.port, ssl_context=ctx)
    await site.start()
    port = int(runner.addresses[0][1])
    scheme = "https" if ctx else "http"
    gate.bind(scheme, opts.host, port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    _log.info("registry.start", root=str(opts.root), url=f"{scheme}://{opts.host}:{port}")
    print(f"listening on {scheme}://{opts.host}:{port}", file=sys.stderr, flush=True)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
        if stream is not sys.stderr:
            stream.close()
