"""htpasswd hashes, scopes, the ACL and token signing of the registry server."""

from __future__ import annotations

import base64
import json
import os
import time
from pathlib import Path

import pytest

from seacan.services.registry import auth

pytestmark = pytest.mark.unit

# written by Debian's htpasswd 2.4 (-m, -s, -B) for user "u", password "p"
APR1 = "$apr1$WSJHk1qV$/w46LmU2piDOF9tDqHlNl."
SHA1 = "{SHA}UWuXg/ylF+7L0dBk2i0WUxCxl1k="
BCRYPT = "$2y$05$LNARNsp1B6HMohpXPvJ/QOPACMZbkXx7bAMoj4DgDg5Lxt.J9AN6W"


@pytest.mark.parametrize("stored", [APR1, SHA1, BCRYPT, "p"])
def test_hashes(stored: str) -> None:
    assert auth.verify_hash(stored, "p")
    assert not auth.verify_hash(stored, "q")
    assert not auth.verify_hash(stored, "")


def test_md5_crypt_matches_htpasswd() -> None:
    assert auth.md5_crypt(b"p", b"WSJHk1qV") == APR1
    assert auth.md5_crypt(b"p", b".43CBmuX") == "$apr1$.43CBmuX$2v6rutRFH9fil5aqTkzXb0"


def test_htpasswd_file(tmp_path: Path) -> None:
    f = tmp_path / "htpasswd"
    f.write_text(f"alice:{BCRYPT}\n# comment\nbob:{APR1}\n\n")
    users = auth.Htpasswd(f)
    assert users.verify("alice", "p") and users.verify("alice", "p")  # second from the cache
    assert users.verify("bob", "p")
    assert not users.verify("alice", "wrong")
    assert not users.verify("carol", "p")
    f.write_text(f"carol:{SHA1}\n")
    os.utime(f, (time.time() + 5, time.time() + 5))
    assert users.verify("carol", "p")
    assert not users.verify("alice", "p")  # re-read: alice is gone, cache dropped


def test_parse_basic_and_bearer() -> None:
    header = "Basic " + base64.b64encode(b"user:pa:ss").decode()
    assert auth.parse_basic(header) == ("user", "pa:ss")
    assert auth.parse_basic("Basic !!!") is None
    assert auth.parse_basic("Basic " + base64.b64encode(b"nocolon").decode()) is None
    assert auth.parse_basic(None) is None
    assert auth.parse_bearer("Bearer abc") == "abc"
    assert auth.parse_bearer("Basic abc") is None


def test_scopes_and_acl() -> None:
    scopes = auth.parse_scopes(
        ["repository:team/app:pull,push repository:other:pull", "registry:catalog:*"]
    )
    assert [str(s) for s in scopes] == [
        "repository:team/app:pull,push",
        "repository:other:pull",
        "registry:catalog:*",
    ]
    acl = auth.Acl({"alice": {"team/*": ["pull", "push"], "pub": ["pull"]}, "*": {"pub": ["pull"]}})
    assert acl.allowed("alice", "team/app") == {"pull", "push", "delete"}
    assert acl.allowed("bob", "pub") == {"pull"}
    assert acl.allowed("bob", "team/app") == set()
    got = acl.grant("alice", scopes)
    assert got == [
        {"type": "repository", "name": "team/app", "actions": ["pull", "push"]},
        {"type": "registry", "name": "catalog", "actions": ["*"]},
    ]
    star = acl.grant("alice", auth.parse_scopes(["repository:team/x:*"]))
    assert star[0]["actions"] == ["delete", "pull", "push"]
    assert acl.grant("bob", auth.parse_scopes(["repository:team/app:push"])) == []


def test_tokens() -> None:
    secret = b"s3cret"
    access = [{"type": "repository", "name": "a", "actions": ["pull"]}]
    t0 = 1_700_000_000.0
    token = auth.sign_token(secret, "alice", "127.0.0.1:5000", access, now=t0)
    claims = auth.verify_token(secret, token, "127.0.0.1:5000", now=t0 + 10)
    assert claims is not None and claims["sub"] == "alice"
    assert auth.token_allows(claims, "repository", "a", "pull")
    assert not auth.token_allows(claims, "repository", "a", "push")
    assert not auth.token_allows(claims, "repository", "b", "pull")
    # expired, other service, other secret, tampered claims
    assert auth.verify_token(secret, token, "127.0.0.1:5000", now=t0 + auth.TOKEN_TTL) is None
    assert auth.verify_token(secret, token, "127.0.0.1:5001", now=t0) is None
    assert auth.verify_token(b"other", token, "127.0.0.1:5000", now=t0) is None
    head, body, sig = token.split(".")
    doc = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    doc["access"][0]["actions"] = ["pull", "push"]
    forged = base64.urlsafe_b64encode(json.dumps(doc).encode()).rstrip(b"=").decode()
    assert auth.verify_token(secret, f"{head}.{forged}.{sig}", "127.0.0.1:5000", now=t0) is None
    assert auth.verify_token(secret, "garbage", "127.0.0.1:5000", now=t0) is None
