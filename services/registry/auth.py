"""Who may do what: htpasswd users, Docker-style bearer tokens, scopes and ACLs.

- htpasswd entries: bcrypt (``$2y$``, ``htpasswd -B``), apr1 (``$apr1$``, Debian's
  default), ``{SHA}``, crypt(3) (``$5$``, ``$6$``, DES: ``-2``, ``-5``, ``-d``)
  and, for completeness, plain text. An empty entry, or one in an unknown
  ``$id$`` scheme, matches no password (a hash is never its own password).
- Tokens are JWT-shaped (HS256 over the secret file's bytes) and carry the
  granted ``access`` list; clients treat them as opaque.
- The ACL file maps users to repository patterns (``fnmatch``, so ``prefix/*``)
  and actions; ``"*"`` as a user applies to every authenticated user. ``push``
  also grants ``delete``.
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import hmac
import json
import re
import secrets
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bcrypt

TOKEN_TTL = 300
ACTIONS = ("pull", "push", "delete")

# --- htpasswd -------------------------------------------------------------------

_ITOA64 = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def _to64(v: int, n: int) -> str:
    out = ""
    for _ in range(n):
        out += _ITOA64[v & 0x3F]
        v >>= 6
    return out


def md5_crypt(password: bytes, salt: bytes, magic: bytes = b"$apr1$") -> str:
    """Poul-Henning Kamp's MD5 crypt, as Apache's ``$apr1$`` uses it."""
    salt = salt[:8]
    ctx = password + magic + salt
    alt = hashlib.md5(password + salt + password).digest()
    for left in range(len(password), 0, -16):
        ctx += alt[: min(16, left)]
    i = len(password)
    while i:
        ctx += b"\x00" if i & 1 else password[:1]
        i >>= 1
    final = hashlib.md5(ctx).digest()
    for r in range(1000):
        c = password if r & 1 else final
        if r % 3:
            c += salt
        if r % 7:
            c += password
        c += final if r & 1 else password
        final = hashlib.md5(c).digest()
    enc = ""
    for a, b, d in ((0, 6, 12), (1, 7, 13), (2, 8, 14), (3, 9, 15), (4, 10, 5)):
        enc += _to64((final[a] << 16) | (final[b] << 8) | final[d], 4)
    enc += _to64(final[11], 2)
    return f"{magic.decode()}{salt.decode()}${enc}"


def verify_hash(stored: str, password: str) -> bool:
    """Whether ``password`` matches one htpasswd hash."""
    pw = password.encode()
    if stored.startswith(("$2y$", "$2a$", "$2b$")):
        try:
            return bcrypt.checkpw(pw, stored.encode())
        except ValueError:
            return False
    if stored.startswith("$apr1$"):
        salt = stored[6:].split("$", 1)[0]
        return hmac.compare_digest(md5_crypt(pw, salt.encode()), stored)
    if stored.startswith("{SHA}"):
        want = "{SHA}" + base64.b64encode(hashlib.sha1(pw).digest()).decode()
        return hmac.compare_digest(want.encode(), stored.encode())
    if stored.startswith(("$5$", "$6$")) or _DES.fullmatch(stored):
        return hmac.compare_digest(_crypt(password, stored).encode(), stored.encode())
    if not stored.strip() or stored.startswith("$"):
        return False
    return hmac.compare_digest(stored.encode(), pw)


_DES = re.compile(r"[./0-9A-Za-z]{13}")


def _crypt(password: str, stored: str) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt  # deprecated, and still the one way to check crypt(3) hashes in 3.11

    return crypt.crypt(password, stored) or ""


class Htpasswd:
    """An htpasswd file, re-read when it changes; successful checks are cached
    (bcrypt costs tens of milliseconds, and clients send credentials on every request)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._mtime = -1.0
        self._users: dict[str, str] = {}
        self._ok: set[bytes] = set()

    def _load(self) -> None:
        mtime = self.path.stat().st_mtime
        if mtime == self._mtime:
            return
        users: dict[str, str] = {}
        for line in self.path.read_text().splitlines():
            user, sep, h = line.strip().partition(":")
            if sep and user and not user.startswith("#"):
                users[user] = h
        self._users, self._mtime, self._ok = users, mtime, set()

    def verify(self, user: str, password: str) -> bool:
        self._load()
        key = hashlib.sha256(f"{user}\0{password}".encode()).digest()
        if key in self._ok:
            return True
        stored = self._users.get(user)
        if stored is None or not verify_hash(stored, password):
            return False
        self._ok.add(key)
        return True


def parse_basic(header: str | None) -> tuple[str, str] | None:
    """The user and password of an ``Authorization: Basic`` header."""
    if not header or not header.lower().startswith("basic "):
        return None
    try:
        raw = base64.b64decode(header[6:].strip(), validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    user, sep, password = raw.partition(":")
    return (user, password) if sep else None


def parse_bearer(header: str | None) -> str | None:
    if not header or not header.lower().startswith("bearer "):
        return None
    return header[7:].strip()


# --- scopes and the ACL ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Scope:
    type: str  # "repository" or "registry"
    name: str
    actions: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.type}:{self.name}:{','.join(self.actions)}"


def parse_scopes(values: list[str]) -> list[Scope]:
    """``scope=`` query values (each may hold several space-separated scopes)."""
    out: list[Scope] = []
    for value in values:
        for item in value.split():
            typ, _, rest = item.partition(":")
            name, _, actions = rest.rpartition(":")
            if typ and name:
                out.append(Scope(typ, name, tuple(a for a in actions.split(",") if a)))
    return out


class Acl:
    """``{"user": {"repo/pattern": ["pull", "push"]}}``."""

    def __init__(self, rules: dict[str, dict[str, list[str]]]) -> None:
        self.rules = rules

    @classmethod
    def load(cls, path: Path) -> Acl:
        """The ACL file; ValueError naming the file when it is not of that shape."""
        try:
            doc = json.loads(path.read_text())
        except ValueError as e:
            raise ValueError(f"ACL {path}: not valid JSON: {e}") from None
        shape = f'ACL {path}: want {{"user": {{"repo/pattern": ["pull", "push"]}}}}'
        if not isinstance(doc, dict):
            raise ValueError(shape)
        for user, rules in doc.items():
            if not isinstance(rules, dict):
                raise ValueError(f"{shape}; {user!r} maps to {type(rules).__name__}")
            for pattern, actions in rules.items():
                if not isinstance(actions, list) or not all(isinstance(a, str) for a in actions):
                    raise ValueError(f"{shape}; {user!r} {pattern!r}: actions are not strings")
        return cls(doc)

    def allowed(self, user: str, repo: str) -> set[str]:
        got: set[str] = set()
        for who in (user, "*"):
            for pattern, actions in self.rules.get(who, {}).items():
                if fnmatch.fnmatchcase(repo, pattern):
                    got.update(actions)
        if "push" in got:
            got.add("delete")
        return got

    def grant(self, user: str, scopes: list[Scope]) -> list[dict[str, Any]]:
        """The ``access`` claim: each asked scope cut down to what the ACL allows."""
        access: list[dict[str, Any]] = []
        for s in scopes:
            if s.type == "registry" and s.name == "catalog":
                # any authenticated user may list repository names
                access.append({"type": "registry", "name": "catalog", "actions": ["*"]})
                continue
            if s.type != "repository":
                continue
            allowed = self.allowed(user, s.name)
            asked = set(ACTIONS) if "*" in s.actions else set(s.actions)
            actions = sorted(asked & allowed)
            if actions:
                access.append({"type": "repository", "name": s.name, "actions": actions})
        return access


# --- tokens ---------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign_token(
    secret: bytes, user: str, service: str, access: list[dict[str, Any]], now: float | None = None
) -> str:
    t = int(now if now is not None else time.time())
    header = {"alg": "HS256", "typ": "JWT"}
    claims = {
        "iss": "seacan-registry",
        "sub": user,
        "aud": service,
        "iat": t,
        "nbf": t - 1,
        "exp": t + TOKEN_TTL,
        "jti": secrets.token_hex(8),
        "access": access,
    }
    signing = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    sig = hmac.new(secret, signing.encode(), hashlib.sha256).digest()
    return f"{signing}.{_b64(sig)}"


def verify_token(
    secret: bytes, token: str, service: str, now: float | None = None
) -> dict[str, Any] | None:
    """The claims of a valid, unexpired token for this service; None otherwise."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    signing = f"{parts[0]}.{parts[1]}"
    want = hmac.new(secret, signing.encode(), hashlib.sha256).digest()
    try:
        if not hmac.compare_digest(want, _unb64(parts[2])):
            return None
        claims = json.loads(_unb64(parts[1]))
    except (ValueError, UnicodeDecodeError):
        return None
    t = now if now is not None else time.time()
    if not isinstance(claims, dict) or claims.get("aud") != service:
        return None
    if not isinstance(claims.get("exp"), int) or claims["exp"] <= t:
        return None
    return claims


def token_allows(claims: dict[str, Any], typ: str, name: str, action: str) -> bool:
    for a in claims.get("access") or []:
        if isinstance(a, dict) and a.get("type") == typ and a.get("name") == name:
            acts = a.get("actions") or []
            if action in acts or "*" in acts:
                return True
    return False
