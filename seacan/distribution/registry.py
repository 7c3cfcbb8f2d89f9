"""The registry HTTP API client: the OCI Distribution spec v1.1, client side.

One :class:`Registry` talks to one host and owns one aiohttp session::

    host = reference.registry_host(ref.domain)
    async with Registry(host, credentials=store.get, certs_dir=cfg / "certs.d") as reg:
        desc = await reg.resolve(ref)                       # HEAD, else GET, of the manifest
        data = await reg.fetch_manifest(ref.path, desc)     # verified bytes (<= 4 MiB)
        async for chunk in reg.fetch_blob(ref.path, layer): # verified at the end
            ...
        if await reg.blob_exists("x/y", layer.digest) is None:
            await reg.push_blob("x/y", layer, lambda off: read_from(off))
        await reg.push_manifest("x/y", "latest", desc.media_type, data)

Repositories (``repo``) are paths inside the registry (``library/busybox``),
not full names. Each request carries the token for its scope
(``repository:<repo>:pull`` or ``pull,push``); a 401 is answered once through
:class:`~.auth.Authorizer` and the request retried. Redirects are followed by
hand (the ``Authorization`` header stays with the registry's own host).

Errors, all kinds of :mod:`seacan.errors`, name the object and carry the
registry's error code and message when it sent a JSON error body:

- 404 -> NotFound; 401, 403 -> PermissionDenied; 400 -> InvalidArgument;
  405 -> NotImplemented_; 409 -> FailedPrecondition; 416 -> OutOfRange;
  429 -> ResourceExhausted; 5xx and connection failures -> Unavailable;
- a body that does not match its digest or size, a truncated blob, a manifest
  over 4 MiB, a redirect loop -> FailedPrecondition (the kind containerd's
  content store uses for a digest mismatch) naming the digest.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote

import aiohttp
from yarl import URL

from seacan import errors, log, oci
from seacan.distribution import hosts
from seacan.distribution.auth import Authorizer, Credentials
from seacan.distribution.reference import Reference

_log = log.get("seacan.distribution.registry")

MAX_MANIFEST_BYTES = 4 << 20
MAX_ERROR_BODY = 64 << 10
MAX_RESUMES = 3
MAX_TAG_PAGES = 10_000
READ_CHUNK = 1 << 20
MANIFEST_ACCEPT = ", ".join(
    [oci.OCI_INDEX, oci.OCI_MANIFEST, oci.DOCKER_MANIFEST_LIST, oci.DOCKER_MANIFEST]
)
_STATUS_KINDS: dict[int, type[errors.SeacanError]] = {
    400: errors.InvalidArgument,
    401: errors.PermissionDenied,
    403: errors.PermissionDenied,
    404: errors.NotFound,
    405: errors.NotImplemented_,
    409: errors.FailedPrecondition,
    413: errors.ResourceExhausted,
    416: errors.OutOfRange,
    429: errors.ResourceExhausted,
}
# Failures after which a download resumes with a Range request.
_TRANSIENT = (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError, TimeoutError)


def pull_scope(repo: str) -> str:
    return f"repository:{repo}:pull"


def push_scope(repo: str) -> str:
    return f"repository:{repo}:pull,push"


def _hasher(digest: str) -> Any:
    algorithm = digest.partition(":")[0]
    try:
        return hashlib.new(algorithm)
    except ValueError:
        raise errors.InvalidArgument(f"unsupported digest algorithm in {digest!r}") from None


def _digest_of(algorithm_of: str, data: bytes) -> str:
    h = _hasher(algorithm_of)
    h.update(data)
    return f"{algorithm_of.partition(':')[0]}:{h.hexdigest()}"


def _with_query(location: str, **params: str) -> str:
    sep = "&" if "?" in location else "?"
    return location + sep + "&".join(f"{k}={quote(v, safe='')}" for k, v in params.items())


def _content_range_end(value: str) -> int:
    """The last byte offset in a ``Range: 0-N`` upload status (-1 for none)."""
    _, _, end = value.removeprefix("bytes=").partition("-")
    try:
        return int(end)
    except ValueError:
        return -1


class Registry:
    """A client session with one registry host (``host[:port]``)."""

    def __init__(
        self,
        host: str,
        *,
        credentials: Callable[[str], Credentials | None],
        certs_dir: Path,
        insecure: Sequence[str] = (),
        plain_http: bool = False,
        max_redirects: int = 5,
    ) -> None:
        self.host = host
        self._transport = hosts.transport(
            host, certs_dir=certs_dir, insecure=insecure, plain_http=plain_http
        )
        self._scheme = self._transport.scheme
        # An insecure host's scheme is decided once, by the first request
        # (:meth:`_settle_scheme`), and shared by every request after it.
        self._scheme_settled = not self._transport.http_fallback
        self._scheme_lock = asyncio.Lock()
        self._credentials = credentials
        self._max_redirects = max_redirects
        self._session: aiohttp.ClientSession | None = None
        self._auth: Authorizer | None = None

    async def __aenter__(self) -> Registry:
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=60)
        self._session = aiohttp.ClientSession(
            timeout=timeout,
            auto_decompress=False,
            headers={"User-Agent": "seacan", "Accept-Encoding": "identity"},
        )
        self._auth = Authorizer(self._session, self._credentials, ssl=self._transport.ssl or True)
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._session is not None:
            await self._session.close()
        self._session = self._auth = None

    # -- plumbing --------------------------------------------------------------

    @property
    def base(self) -> str:
        return f"{self._scheme}://{self.host}"

    def _url(self, target: str) -> URL:
        if target.startswith(("http://", "https://")):
            return URL(target, encoded=True)
        return URL(self.base + target, encoded=True)

    def _own(self, url: URL) -> bool:
        return url.host is not None and url.raw_authority == self.host

    async def _settle_scheme(self) -> None:
        """For an insecure host: HTTPS if it answers TLS, else plain HTTP (as Docker).

        One probe (``GET /v2/`` over HTTPS, unverified) under a lock; every
        request of this session, concurrent ones too, then uses its answer.
        """
        assert self._session is not None, "use Registry as an async context manager"
        async with self._scheme_lock:
            if self._scheme_settled:
                return
            url = URL(f"https://{self.host}/v2/", encoded=True)
            try:
                resp = await self._session.get(
                    url, allow_redirects=False, ssl=self._transport.ssl or True
                )
                resp.release()
            except (aiohttp.ClientError, TimeoutError, OSError) as e:
                _log.debug("registry.http_fallback", host=self.host, error=str(e))
                self._scheme = "http"
            self._scheme_settled = True

    async def _send(
        self,
        method: str,
        url: URL,
        headers: dict[str, str],
        body: Callable[[], Any] | None,
    ) -> aiohttp.ClientResponse:
        assert self._session is not None, "use Registry as an async context manager"
        ssl = self._transport.ssl if url.scheme == "https" else None
        try:
            return await self._session.request(
                method,
                url,
                headers=headers,
                data=body() if body is not None else None,
                allow_redirects=False,
                ssl=ssl if ssl is not None else True,
            )
        except aiohttp.ClientConnectorCertificateError as e:
            raise errors.Unavailable(
                f"registry {self.host}: {method} {url}: TLS certificate verification failed"
                f" ({e.certificate_error}); put the registry's CA certificate in"
                f" <config_dir>/certs.d/{self.host}/ca.crt"
            ) from None
        except aiohttp.ClientError as e:
            raise errors.Unavailable(f"registry {self.host}: {method} {url}: {e}") from None

    @asynccontextmanager
    async def _open(
        self,
        method: str,
        target: str,
        *,
        scopes: Sequence[str],
        what: str,
        headers: dict[str, str] | None = None,
        body: Callable[[], Any] | None = None,
        ok: Sequence[int] = (200,),
        follow: bool = True,
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """A response with status in ``ok``; 401s answered, redirects followed."""
        assert self._auth is not None, "use Registry as an async context manager"
        url = self._url(target)
        scope = " ".join(scopes)
        seen: list[str] = []
        authorized = False
        if not self._scheme_settled:
            await self._settle_scheme()
        while True:
            hdrs = dict(headers or {})
            if self._own(url) and url.scheme != self._scheme:
                url = url.with_scheme(self._scheme)  # after the fallback to plain HTTP
            if self._own(url):
                header = self._auth.header(self.host, scope)
                if header:
                    hdrs["Authorization"] = header
            resp = await self._send(method, url, hdrs, body)
            try:
                if resp.status == 401 and self._own(url) and not authorized:
                    challenge = resp.headers.get("WWW-Authenticate", "")
                    if challenge:
                        await self._auth.challenge(self.host, challenge, scopes)
                        authorized = True
                        continue
                location = resp.headers.get("Location")
                if follow and resp.status in (301, 302, 303, 307, 308) and location:
                    seen.append(str(url))
                    url = url.join(URL(location, encoded=True))
                    if str(url) in seen:
                        raise errors.FailedPrecondition(
                            f"registry {self.host}: {what}: redirect loop ({url} again)"
                        )
                    if len(seen) > self._max_redirects:
                        raise errors.FailedPrecondition(
                            f"registry {self.host}: {what}: more than"
                            f" {self._max_redirects} redirects"
                        )
                    continue
                if resp.status not in ok:
                    denied = resp.status in (401, 403) and authorized and scope
                    hint = f"the credentials do not grant {scope}" if denied else ""
                    await self._raise_for(resp, method, what, hint)
                yield resp
                return
            finally:
                resp.release()

    async def _raise_for(
        self, resp: aiohttp.ClientResponse, method: str, what: str, hint: str = ""
    ) -> None:
        detail = ""
        try:
            raw = await resp.content.read(MAX_ERROR_BODY) if method != "HEAD" else b""
            errs = json.loads(raw).get("errors") if raw else None
            if isinstance(errs, list) and errs:
                detail = "; ".join(
                    f"{e.get('code', '')}: {e.get('message', '')}".strip(": ")
                    for e in errs
                    if isinstance(e, dict)
                )
        except (ValueError, AttributeError, aiohttp.ClientError, TimeoutError):
            pass
        kind = _STATUS_KINDS.get(resp.status)
        if kind is None:
            kind = errors.Unavailable if resp.status >= 500 else errors.Internal
        text = f"registry {self.host}: {what}: {resp.status} {resp.reason or ''}".rstrip()
        text = f"{text}: {detail}" if detail else text
        raise kind(f"{text} ({hint})" if hint else text)

    # -- the API root -----------------------------------------------------------------

    async def ping(self) -> None:
        """``GET /v2/`` with the auth flow: the registry is there and takes the credentials.

        PermissionDenied (naming the 401) when it refuses them, Unavailable
        when it cannot be reached (TLS problems included).
        """
        async with self._open("GET", "/v2/", scopes=[], what="GET /v2/"):
            pass

    # -- manifests ------------------------------------------------------------------

    async def resolve(self, ref: Reference) -> oci.Descriptor:
        """The descriptor of ``ref``'s manifest or index (verified against ``ref.digest``)."""
        repo, obj = ref.path, ref.object
        what = f"manifest {ref}"
        target = f"/v2/{repo}/manifests/{obj}"
        hdrs = {"Accept": MANIFEST_ACCEPT}
        scopes = [pull_scope(repo)]
        try:
            async with self._open("HEAD", target, scopes=scopes, what=what, headers=hdrs) as r:
                media_type = r.headers.get("Content-Type", "").split(";")[0].strip()
                digest = r.headers.get("Docker-Content-Digest", "")
                length = r.headers.get("Content-Length", "")
        except errors.PermissionDenied:
            raise
        except errors.SeacanError:
            # Some registries do not answer HEAD; and a HEAD error has no body
            # to explain it (MANIFEST_UNKNOWN ...): ask again with GET below.
            media_type = digest = length = ""
        if ref.digest and digest and digest != ref.digest:
            raise errors.FailedPrecondition(
                f"registry {self.host}: {what}: registry answered digest {digest}"
            )
        if length.isdigit() and int(length) > MAX_MANIFEST_BYTES:
            raise errors.ResourceExhausted(
                f"registry {self.host}: {what}: {length} bytes is over the 4 MiB manifest limit"
            )
        if (digest or ref.digest) and length.isdigit() and media_type in _MANIFEST_MEDIA:
            return oci.Descriptor(media_type, digest or str(ref.digest), int(length))
        async with self._open("GET", target, scopes=scopes, what=what, headers=hdrs) as r:
            body = await self._read_limited(r, what)
            media_type = r.headers.get("Content-Type", "").split(";")[0].strip()
            header_digest = r.headers.get("Docker-Content-Digest", "")
        computed = _digest_of(ref.digest or "sha256:", body)
        if ref.digest and computed != ref.digest:
            raise errors.FailedPrecondition(
                f"registry {self.host}: {what}: content has digest {computed}"
            )
        if header_digest and header_digest.startswith("sha256:") and header_digest != computed:
            raise errors.FailedPrecondition(
                f"registry {self.host}: {what}: Docker-Content-Digest {header_digest}"
                f" but content has digest {computed}"
            )
        if media_type not in _MANIFEST_MEDIA:
            media_type = oci.sniff_media_type(body) or media_type
        return oci.Descriptor(media_type, computed, len(body))

    async def _read_limited(self, r: aiohttp.ClientResponse, what: str) -> bytes:
        length = r.headers.get("Content-Length", "")
        if length.isdigit() and int(length) > MAX_MANIFEST_BYTES:
            raise errors.ResourceExhausted(
                f"registry {self.host}: {what}: {length} bytes is over the 4 MiB manifest limit"
            )
        try:
            body = await r.content.read(MAX_MANIFEST_BYTES + 1)
            while len(body) <= MAX_MANIFEST_BYTES and not r.content.at_eof():
                more = await r.content.read(MAX_MANIFEST_BYTES + 1 - len(body))
                if not more:
                    break
                body += more
        except (aiohttp.ClientError, TimeoutError) as e:
            raise errors.Unavailable(f"registry {self.host}: {what}: {e}") from None
        if len(body) > MAX_MANIFEST_BYTES:
            raise errors.ResourceExhausted(
                f"registry {self.host}: {what}: over the 4 MiB manifest limit"
            )
        return body

    async def fetch_manifest(self, repo: str, desc: oci.Descriptor) -> bytes:
        """The manifest or index ``desc`` names, verified (size and digest), at most 4 MiB."""
        what = f"manifest {repo}@{desc.digest}"
        if desc.size > MAX_MANIFEST_BYTES:
            raise errors.ResourceExhausted(
                f"registry {self.host}: {what}: {desc.size} bytes is over the 4 MiB manifest limit"
            )
        accept = ", ".join(dict.fromkeys([desc.media_type, MANIFEST_ACCEPT]))
        async with self._open(
            "GET",
            f"/v2/{repo}/manifests/{desc.digest}",
            scopes=[pull_scope(repo)],
            what=what,
            headers={"Accept": accept},
        ) as r:
            body = await self._read_limited(r, what)
        self._verify(what, desc, len(body), _digest_of(desc.digest, body))
        return body

    def _verify(self, what: str, desc: oci.Descriptor, size: int, digest: str | None) -> None:
        if size < desc.size:
            raise errors.FailedPrecondition(
                f"registry {self.host}: {what}: truncated: got {size} of {desc.size} bytes"
            )
        if size > desc.size:
            raise errors.FailedPrecondition(
                f"registry {self.host}: {what}: more than the {desc.size} bytes expected"
            )
        if digest is not None and digest != desc.digest:
            raise errors.FailedPrecondition(
                f"registry {self.host}: {what}: digest mismatch: content has digest {digest}"
            )

    async def push_manifest(self, repo: str, reference: str, media_type: str, body: bytes) -> str:
        """Store a manifest under a tag or digest; returns its digest."""
        digest = oci.digest_of(body)
        what = f"manifest {repo}:{reference}"
        async with self._open(
            "PUT",
            f"/v2/{repo}/manifests/{reference}",
            scopes=[push_scope(repo)],
            what=what,
            headers={"Content-Type": media_type},
            body=lambda: body,
            ok=(200, 201, 202),
        ) as r:
            answered = r.headers.get("Docker-Content-Digest", "")
        if answered and answered.startswith("sha256:") and answered != digest:
            raise errors.FailedPrecondition(
                f"registry {self.host}: {what}: registry stored digest {answered}, sent {digest}"
            )
        return digest

    async def tags(self, repo: str, *, page_size: int | None = None) -> list[str]:
        """All tags of ``repo``, following ``Link: <...>; rel="next"`` pages.

        ``page_size`` asks for pages of that many tags (``?n=``).
        """
        out: list[str] = []
        first = f"/v2/{repo}/tags/list"
        if page_size is not None:
            first = _with_query(first, n=str(page_size))
        target: str | None = first
        seen: set[str] = set()
        while target is not None and target not in seen and len(seen) < MAX_TAG_PAGES:
            seen.add(target)
            async with self._open(
                "GET", target, scopes=[pull_scope(repo)], what=f"tags of {repo}"
            ) as r:
                try:
                    obj = json.loads(await self._read_limited(r, f"tags of {repo}"))
                except ValueError:
                    raise errors.Unavailable(
                        f"registry {self.host}: tags of {repo}: invalid JSON"
                    ) from None
                link = r.links.get("next")
                nxt = link.get("url") if link else None
                url = r.url
            out.extend(str(t) for t in (obj.get("tags") or []))
            target = str(url.join(URL(str(nxt), encoded=True))) if nxt is not None else None
        return out

    # -- blobs ----------------------------------------------------------------------

    async def blob_exists(
        self, repo: str, digest: str, *, for_push: bool = False
    ) -> oci.Descriptor | None:
        """The blob's descriptor (size from the registry) or None when it is not there.

        ``for_push`` asks with the push scope (one token for the whole push).
        """
        what = f"blob {repo}@{digest}"
        scope = push_scope(repo) if for_push else pull_scope(repo)
        try:
            async with self._open(
                "HEAD", f"/v2/{repo}/blobs/{digest}", scopes=[scope], what=what
            ) as r:
                length = r.headers.get("Content-Length", "")
                media_type = r.headers.get("Content-Type", "application/octet-stream")
        except errors.NotFound:
            return None
        return oci.Descriptor(media_type, digest, int(length) if length.isdigit() else -1)

    async def fetch_blob(
        self, repo: str, desc: oci.Descriptor, offset: int = 0
    ) -> AsyncIterator[bytes]:
        """The blob's bytes from ``offset``; resumes after a dropped connection.

        The size is verified at the end, and the digest too when ``offset`` is
        0 (from a later offset the caller holds the prefix and verifies).
        """
        what = f"blob {desc.digest}"
        hasher = _hasher(desc.digest) if offset == 0 else None
        pos, failures = offset, 0
        while pos < desc.size or (pos == 0 and desc.size == 0):
            hdrs = {"Range": f"bytes={pos}-"} if pos else {}
            try:
                async with self._open(
                    "GET",
                    f"/v2/{repo}/blobs/{desc.digest}",
                    scopes=[pull_scope(repo)],
                    what=what,
                    headers=hdrs,
                    ok=(200, 206),
                ) as r:
                    skip = pos if (pos and r.status == 200) else 0
                    async for chunk in r.content.iter_chunked(READ_CHUNK):
                        if skip:
                            cut = min(skip, len(chunk))
                            chunk, skip = chunk[cut:], skip - cut
                            if not chunk:
                                continue
                        if pos + len(chunk) > desc.size:
                            self._verify(what, desc, pos + len(chunk), None)
                        pos += len(chunk)
                        if hasher is not None:
                            hasher.update(chunk)
                        yield chunk
            except (*_TRANSIENT, errors.Unavailable) as e:
                failures += 1
                if failures > MAX_RESUMES:
                    raise errors.FailedPrecondition(
                        f"registry {self.host}: {what}: truncated: got {pos} of {desc.size}"
                        f" bytes after {MAX_RESUMES} resumes ({e})"
                    ) from None
                _log.info("registry.blob.resume", host=self.host, digest=desc.digest, offset=pos)
                continue
            if pos < desc.size:
                failures += 1
                if failures > MAX_RESUMES:
                    break
                _log.info("registry.blob.resume", host=self.host, digest=desc.digest, offset=pos)
                continue
            break
        digest = f"{desc.digest.partition(':')[0]}:{hasher.hexdigest()}" if hasher else None
        self._verify(what, desc, pos, digest)

    async def mount_blob(self, repo: str, desc: oci.Descriptor, from_repo: str) -> bool:
        """Cross-repository mount; False when the registry would not mount it."""
        what = f"blob {desc.digest} mount from {from_repo} to {repo}"
        target = _with_query(f"/v2/{repo}/blobs/uploads/", mount=desc.digest, **{"from": from_repo})
        scopes = [push_scope(repo), pull_scope(from_repo)]
        async with self._open(
            "POST", target, scopes=scopes, what=what, ok=(201, 202), follow=False
        ) as r:
            mounted, location = r.status == 201, r.headers.get("Location", "")
        if not mounted and location:  # an upload session was opened instead: cancel it
            try:
                async with self._open(
                    "DELETE", location, scopes=scopes, what=what, ok=(200, 202, 204, 404)
                ):
                    pass
            except errors.SeacanError as e:
                _log.debug("registry.upload.cancel_failed", host=self.host, error=str(e))
        return mounted

    async def _start_upload(self, repo: str, what: str) -> str:
        async with self._open(
            "POST",
            f"/v2/{repo}/blobs/uploads/",
            scopes=[push_scope(repo)],
            what=what,
            ok=(202,),
            follow=False,
        ) as r:
            location = r.headers.get("Location", "")
            url = r.url
        if not location:
            raise errors.Unavailable(f"registry {self.host}: {what}: no upload Location")
        return str(url.join(URL(location, encoded=True)))

    async def push_blob(
        self,
        repo: str,
        desc: oci.Descriptor,
        chunks: Callable[[int], AsyncIterator[bytes]],
        *,
        chunk_size: int | None = None,
    ) -> None:
        """Upload a blob: POST then one PUT, or PATCHes of ``chunk_size`` then PUT.

        ``chunks(offset)`` yields the blob's bytes from ``offset``. A failed
        chunk is resumed from the offset the registry reports (up to 3 times).
        """
        what = f"blob {desc.digest} to {repo}"
        location = await self._start_upload(repo, what)
        if chunk_size is None:
            hdrs = {"Content-Type": "application/octet-stream", "Content-Length": str(desc.size)}
            async with self._open(
                "PUT",
                _with_query(location, digest=desc.digest),
                scopes=[push_scope(repo)],
                what=what,
                headers=hdrs,
                body=lambda: chunks(0),
                ok=(201, 204),
            ) as r:
                answered = r.headers.get("Docker-Content-Digest", "")
        else:
            location = await self._patch_all(repo, desc, chunks, chunk_size, location, what)
            async with self._open(
                "PUT",
                _with_query(location, digest=desc.digest),
                scopes=[push_scope(repo)],
                what=what,
                headers={"Content-Length": "0"},
                ok=(201, 204),
            ) as r:
                answered = r.headers.get("Docker-Content-Digest", "")
        if answered and answered != desc.digest:
            raise errors.FailedPrecondition(
                f"registry {self.host}: {what}: registry stored digest {answered}"
            )

    async def _patch_all(
        self,
        repo: str,
        desc: oci.Descriptor,
        chunks: Callable[[int], AsyncIterator[bytes]],
        chunk_size: int,
        location: str,
        what: str,
    ) -> str:
        if chunk_size <= 0:
            raise errors.InvalidArgument(f"chunk size must be positive, got {chunk_size}")
        offset, failures = 0, 0
        while offset < desc.size:
            source = chunks(offset)
            try:
                async for piece in _pieces(source, chunk_size):
                    end = offset + len(piece) - 1
                    hdrs = {
                        "Content-Type": "application/octet-stream",
                        "Content-Range": f"{offset}-{end}",
                        "Content-Length": str(len(piece)),
                    }
                    async with self._open(
                        "PATCH",
                        location,
                        scopes=[push_scope(repo)],
                        what=what,
                        headers=hdrs,
                        body=lambda p=piece: p,  # type: ignore[misc]
                        ok=(202, 204),
                        follow=False,
                    ) as r:
                        nxt = r.headers.get("Location", "")
                        url = r.url
                    if nxt:
                        location = str(url.join(URL(nxt, encoded=True)))
                    offset = end + 1
            except (errors.Unavailable, errors.OutOfRange) as e:
                failures += 1
                if failures > MAX_RESUMES:
                    raise
                offset, location = await self._upload_status(repo, location, what)
                _log.info("registry.upload.resume", host=self.host, offset=offset, error=str(e))
            finally:
                aclose = getattr(source, "aclose", None)
                if aclose is not None:
                    await aclose()
        if offset != desc.size:
            raise errors.FailedPrecondition(
                f"registry {self.host}: {what}: source gave {offset} of {desc.size} bytes"
            )
        return location

    async def _upload_status(self, repo: str, location: str, what: str) -> tuple[int, str]:
        """The next offset the registry wants for an upload (from its ``Range``)."""
        async with self._open(
            "GET", location, scopes=[push_scope(repo)], what=what, ok=(204,), follow=False
        ) as r:
            end = _content_range_end(r.headers.get("Range", ""))
            nxt = r.headers.get("Location", "")
            url = r.url
        return end + 1, str(url.join(URL(nxt, encoded=True))) if nxt else location


async def _pieces(source: AsyncIterator[bytes], size: int) -> AsyncIterator[bytes]:
    """Re-cut a byte stream into pieces of ``size`` (the last may be shorter)."""
    buf = bytearray()
    async for chunk in source:
        buf += chunk
        while len(buf) >= size:
            yield bytes(buf[:size])
            del buf[:size]
    if buf:
        yield bytes(buf)


_MANIFEST_MEDIA = oci.INDEX_TYPES | oci.MANIFEST_TYPES

__all__ = ["MANIFEST_ACCEPT", "MAX_MANIFEST_BYTES", "Registry", "pull_scope", "push_scope"]
