"""Credentials and the registry auth flows.

Credentials come from a Docker config file (``$DOCKER_CONFIG/config.json``,
default ``~/.docker/config.json``), as the docker CLI writes it::

    {"auths": {"127.0.0.1:5000": {"auth": "<base64 user:password>"},
               "https://index.docker.io/v1/": {"identitytoken": "..."}},
     "credsStore": "pass",                       # docker-credential-pass for all hosts
     "credHelpers": {"gcr.io": "gcloud"}}        # docker-credential-gcloud for one

A helper is run as ``docker-credential-<name> get|store|erase`` with the
server on stdin (JSON for ``store``), as Docker's credential-helper protocol
says. Docker Hub is keyed ``https://index.docker.io/v1/`` whichever of its
names is asked for.

:class:`Authorizer` answers a ``401`` with ``WWW-Authenticate: Basic ...`` or
``Bearer realm=...,service=...,scope=...``: it fetches a token from the
realm (GET with Basic credentials, or POST with an identity token), caches it
per (host, scope) until it expires, and gives the ``Authorization`` header
for the retried request.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import ssl as ssl_
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from seacan import errors, log

if TYPE_CHECKING:
    import aiohttp

_log = log.get("seacan.distribution.auth")

HUB_KEY = "https://index.docker.io/v1/"
_HUB_HOSTS = {"docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"}
HELPER_TIMEOUT = 30.0
TOKEN_MIN_TTL = 60  # seconds, when a token response does not say (as Docker assumes)
_NOT_FOUND = "credentials not found in native keychain"


@dataclass
class Credentials:
    username: str = ""
    password: str = ""
    identity_token: str = ""


def config_path() -> Path:
    """Where the docker CLI keeps its config: ``$DOCKER_CONFIG`` or ``~/.docker``."""
    base = os.environ.get("DOCKER_CONFIG") or str(Path.home() / ".docker")
    return Path(base) / "config.json"


def server_key(host: str) -> str:
    """The key of a host in ``auths`` and for helpers: the bare host, Docker Hub's URL."""
    bare = host.removeprefix("https://").removeprefix("http://").split("/", 1)[0]
    return HUB_KEY if bare in _HUB_HOSTS else bare


class CredentialStore:
    """The Docker config file and the helpers it names."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path if path is not None else config_path()

    def _load(self) -> dict[str, Any]:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return {}
        except OSError as e:
            raise errors.Unavailable(f"docker config {self.path}: {e.strerror}") from None
        try:
            obj = json.loads(data) if data.strip() else {}
        except ValueError as e:
            raise errors.InvalidArgument(f"docker config {self.path}: invalid JSON: {e}") from None
        if not isinstance(obj, dict):
            raise errors.InvalidArgument(f"docker config {self.path}: JSON object expected")
        return obj

    def _helper(self, cfg: dict[str, Any], key: str) -> str:
        helpers = cfg.get("credHelpers") or {}
        for k, name in helpers.items():
            if isinstance(name, str) and name and server_key(k) == key:
                return name
        store = cfg.get("credsStore")
        return store if isinstance(store, str) else ""

    def _auths(self, cfg: dict[str, Any]) -> dict[str, Any]:
        auths = cfg.setdefault("auths", {})
        if not isinstance(auths, dict):
            raise errors.InvalidArgument(f"docker config {self.path}: 'auths' is not an object")
        return auths

    def get(self, host: str) -> Credentials | None:
        """The credentials for ``host`` (``127.0.0.1:5000``, ``docker.io``), or None."""
        cfg = self._load()
        key = server_key(host)
        helper = self._helper(cfg, key)
        if helper:
            return _helper_get(helper, key)
        for k, entry in self._auths(cfg).items():
            if server_key(k) == key and isinstance(entry, dict):
                return self._decode(k, entry)
        return None

    def _decode(self, key: str, entry: dict[str, Any]) -> Credentials | None:
        creds = Credentials(
            username=str(entry.get("username") or ""),
            password=str(entry.get("password") or ""),
            identity_token=str(entry.get("identitytoken") or ""),
        )
        if entry.get("auth"):
            try:
                raw = base64.b64decode(str(entry["auth"]), validate=True).decode()
            except (ValueError, UnicodeDecodeError):
                raise errors.InvalidArgument(
                    f"docker config {self.path}: auths[{key!r}].auth is not base64 of user:password"
                ) from None
            user, colon, password = raw.partition(":")
            if not colon:
                raise errors.InvalidArgument(
                    f"docker config {self.path}: auths[{key!r}].auth lacks a ':'"
                )
            creds.username, creds.password = user, password
        if not (creds.username or creds.password or creds.identity_token):
            return None
        return creds

    def store(self, host: str, creds: Credentials) -> None:
        """Save credentials for ``host`` (``seacan login``), through a helper if configured."""
        cfg = self._load()
        key = server_key(host)
        auths = self._auths(cfg)
        for k in [k for k in auths if server_key(k) == key]:
            del auths[k]
        helper = self._helper(cfg, key)
        if helper:
            user = "<token>" if creds.identity_token else creds.username
            secret = creds.identity_token or creds.password
            payload = {"ServerURL": key, "Username": user, "Secret": secret}
            _run_helper(helper, "store", json.dumps(payload))
            auths[key] = {}
        else:
            entry: dict[str, str] = {}
            if creds.username or creds.password:
                entry["auth"] = base64.b64encode(
                    f"{creds.username}:{creds.password}".encode()
                ).decode()
            if creds.identity_token:
                entry["identitytoken"] = creds.identity_token
            auths[key] = entry
        self._write(cfg)

    def erase(self, host: str) -> None:
        """Forget the credentials for ``host`` (``seacan logout``); NotFound if there were none."""
        cfg = self._load()
        key = server_key(host)
        auths = self._auths(cfg)
        found = [k for k in auths if server_key(k) == key]
        helper = self._helper(cfg, key)
        if helper:
            try:
                _run_helper(helper, "erase", key)
                found.append(key)
            except errors.NotFound:
                pass
        if not found:
            raise errors.NotFound(f"not logged in to {host}")
        for k in found:
            auths.pop(k, None)
        self._write(cfg)

    def _write(self, cfg: dict[str, Any]) -> None:
        data = (json.dumps(cfg, indent="\t") + "\n").encode()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd, tmp = tempfile.mkstemp(prefix=".config.json.", dir=self.path.parent)
            try:
                os.fchmod(fd, 0o600)
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, self.path)
        except OSError as e:
            raise errors.Unavailable(f"docker config {self.path}: {e.strerror}") from None


def _run_helper(name: str, verb: str, stdin: str) -> str:
    """Run ``docker-credential-<name> <verb>``; NotFound when it has nothing for the host."""
    prog = f"docker-credential-{name}"
    try:
        proc = subprocess.run(
            [prog, verb],
            input=stdin.encode(),
            capture_output=True,
            timeout=HELPER_TIMEOUT,
            check=False,
        )
    except FileNotFoundError:
        raise errors.FailedPrecondition(
            f"credential helper {prog} not found in PATH (configured in docker config)"
        ) from None
    except subprocess.TimeoutExpired:
        raise errors.DeadlineExceeded(
            f"credential helper {prog} {verb}: no answer in {HELPER_TIMEOUT:.0f}s"
        ) from None
    out = proc.stdout.decode(errors="replace").strip()
    if proc.returncode != 0:
        tail = (out or proc.stderr.decode(errors="replace").strip())[-500:]
        if _NOT_FOUND in tail:
            raise errors.NotFound(f"credential helper {prog}: no credentials for {stdin!r}")
        raise errors.Unavailable(f"credential helper {prog} {verb} failed: {tail}")
    return out


def _helper_get(name: str, key: str) -> Credentials | None:
    try:
        out = _run_helper(name, "get", key)
    except errors.NotFound:
        return None
    try:
        obj = json.loads(out)
        user, secret = str(obj.get("Username") or ""), str(obj.get("Secret") or "")
    except (ValueError, AttributeError):
        raise errors.Unavailable(
            f"credential helper docker-credential-{name}: invalid JSON answer for {key}"
        ) from None
    if user == "<token>":
        return Credentials(identity_token=secret)
    return Credentials(username=user, password=secret)


# -- WWW-Authenticate ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Challenge:
    """One challenge of a ``WWW-Authenticate`` header: scheme (lowercase) and parameters."""

    scheme: str
    params: dict[str, str]


def parse_challenges(header: str) -> list[Challenge]:
    """``Bearer realm="...",service="...",scope="..."`` (several challenges allowed)."""
    out: list[Challenge] = []
    i, n = 0, len(header)

    def skip(chars: str) -> None:
        nonlocal i
        while i < n and header[i] in chars:
            i += 1

    def token() -> str:
        nonlocal i
        start = i
        while i < n and header[i] not in ' \t,="':
            i += 1
        return header[start:i]

    while i < n:
        skip(" \t,")
        scheme = token()
        if not scheme:
            break
        params: dict[str, str] = {}
        while True:
            skip(" \t")
            save = i
            skip(",")
            skip(" \t")
            name = token()
            skip(" \t")
            if not name or i >= n or header[i] != "=":
                i = save  # the next challenge's scheme (or the end)
                break
            i += 1
            skip(" \t")
            if i < n and header[i] == '"':
                i += 1
                value: list[str] = []
                while i < n and header[i] != '"':
                    if header[i] == "\\" and i + 1 < n:
                        i += 1
                    value.append(header[i])
                    i += 1
                i += 1
                params[name.lower()] = "".join(value)
            else:
                params[name.lower()] = token()
        out.append(Challenge(scheme.lower(), params))
    return out


# -- the token flow -------------------------------------------------------------------


def basic_header(creds: Credentials) -> str:
    raw = f"{creds.username}:{creds.password}".encode()
    return "Basic " + base64.b64encode(raw).decode()


class Authorizer:
    """Answers registry challenges; one per :class:`~.registry.Registry` session.

    ``header(host, scope)`` gives the ``Authorization`` header to send first
    (None until a challenge was seen); after a 401, ``challenge(host,
    www_authenticate, scopes)`` obtains a token and returns the header for the
    retry. Tokens are cached per (host, scope) until they expire.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        credentials: Callable[[str], Credentials | None],
        *,
        ssl: ssl_.SSLContext | bool = True,
    ) -> None:
        self._session = session
        self._credentials = credentials
        self._ssl = ssl
        self._basic: dict[str, str] = {}
        self._tokens: dict[tuple[str, str], tuple[str, float]] = {}

    def header(self, host: str, scope: str) -> str | None:
        if host in self._basic:
            return self._basic[host]
        cached = self._tokens.get((host, scope))
        if cached and cached[1] > time.monotonic():
            return cached[0]
        return None

    async def _creds(self, host: str) -> Credentials | None:
        return await asyncio.to_thread(self._credentials, host)

    async def challenge(self, host: str, www_authenticate: str, scopes: Sequence[str]) -> str:
        """The header to retry with; PermissionDenied when the registry cannot be satisfied."""
        challenges = parse_challenges(www_authenticate)
        for ch in challenges:
            if ch.scheme == "bearer" and ch.params.get("realm"):
                return await self._bearer(host, ch.params, scopes)
        for ch in challenges:
            if ch.scheme == "basic":
                creds = await self._creds(host)
                if creds is None or not (creds.username or creds.password):
                    raise errors.PermissionDenied(
                        f"registry {host}: 401 Unauthorized: authentication required"
                        " (no credentials; seacan login)"
                    )
                self._basic[host] = basic_header(creds)
                return self._basic[host]
        raise errors.PermissionDenied(
            f"registry {host}: unsupported authentication challenge {www_authenticate!r}"
        )

    async def _bearer(self, host: str, params: dict[str, str], scopes: Sequence[str]) -> str:
        import aiohttp

        want = list(dict.fromkeys([*scopes, *params.get("scope", "").split()]))
        key = (host, " ".join(scopes))
        creds = await self._creds(host)
        realm, service = params["realm"], params.get("service", "")
        try:
            if creds is not None and creds.identity_token:
                form = {
                    "grant_type": "refresh_token",
                    "refresh_token": creds.identity_token,
                    "service": service,
                    "scope": " ".join(want),
                    "client_id": "seacan",
                }
                resp = await self._session.post(realm, data=form, ssl=self._ssl)
            else:
                query = [("service", service)] if service else []
                query += [("scope", s) for s in want if s]
                headers = {}
                if creds is not None and (creds.username or creds.password):
                    headers["Authorization"] = basic_header(creds)
                resp = await self._session.get(realm, params=query, headers=headers, ssl=self._ssl)
            async with resp:
                body = await resp.read()
                status = resp.status
        except aiohttp.ClientError as e:
            raise errors.Unavailable(f"registry {host}: token server {realm}: {e}") from None
        if status in (401, 403):
            raise errors.PermissionDenied(
                f"registry {host}: token server {realm} refused the credentials ({status})"
            )
        if status != 200:
            raise errors.Unavailable(f"registry {host}: token server {realm} answered {status}")
        try:
            obj = json.loads(body)
            token = str(obj.get("token") or obj.get("access_token") or "")
            ttl = max(int(obj.get("expires_in") or TOKEN_MIN_TTL), TOKEN_MIN_TTL)
        except (ValueError, AttributeError, TypeError):
            raise errors.Unavailable(
                f"registry {host}: token server {realm}: invalid JSON"
            ) from None
        if not token:
            raise errors.Unavailable(f"registry {host}: token server {realm} gave no token")
        header = "Bearer " + token
        self._tokens[key] = (header, time.monotonic() + ttl - 5)
        _log.debug("registry.token", host=host, scope=key[1], ttl=ttl)
        return header


__all__ = [
    "Authorizer",
    "Challenge",
    "CredentialStore",
    "Credentials",
    "basic_header",
    "config_path",
    "parse_challenges",
    "server_key",
]
