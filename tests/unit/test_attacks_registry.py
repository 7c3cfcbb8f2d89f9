"""Attacks on the registry server's parsing: names, digests, tags, upload ids,
Range, paging, manifest shape, htpasswd entries, tokens and the ACL. Each is
answered with the spec's error (never a crash) and never touches a file
outside the registry root."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
from pathlib import Path

import pytest

from seacan.services.registry import __main__ as registry_main
from seacan.services.registry import auth, spec
from seacan.services.registry.server import Gate, Options
from seacan.services.registry.spec import RegistryError
from seacan.services.registry.storage import Storage

pytestmark = pytest.mark.unit


def code_of(fn: object, *args: object) -> str:
    with pytest.raises(RegistryError) as ei:
        fn(*args)  # type: ignore[operator]
    return ei.value.code


# -- names, tags, digests, upload ids ----------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/v2/../../etc/manifests/latest",
        "/v2/a/%2e%2e/%2e%2e/b/manifests/latest",
        "/v2/a/../b/blobs/uploads/",
        "/v2/%2Fetc/tags/list",
        "/v2/a/_layers/tags/list",
        "/v2/A/manifests/latest",
        "/v2/a%00b/manifests/latest",
        "/v2/a%0ab/manifests/latest",
        "/v2/" + "a" * 256 + "/manifests/latest",
    ],
)
def test_hostile_names_are_name_invalid(path: str) -> None:
    route = spec.parse_route(path)
    if route is not None:  # a newline in a path matches no route at all: 404
        assert code_of(spec.check_name, route.name) == "NAME_INVALID"


@pytest.mark.parametrize("tag", ["..", ".", "../x", "a/b", "-x", "a\nb", "x" * 129, ""])
def test_hostile_tags(tag: str) -> None:
    assert code_of(spec.check_tag, tag) == "MANIFEST_INVALID"


@pytest.mark.parametrize(
    "digest", ["sha256:../../x", "sha256:" + "A" * 64, "md5:" + "a" * 32, "sha256:" + "a" * 65]
)
def test_hostile_digests(digest: str) -> None:
    assert code_of(spec.check_digest, digest) == "DIGEST_INVALID"


def test_storage_refuses_hostile_refs(tmp_path: Path) -> None:
    s = Storage(tmp_path / "reg")
    (tmp_path / "secret.json").write_text(json.dumps({"name": "a"}))
    (tmp_path / "secret").write_bytes(b"secret")
    for uid in ("../secret", "../../secret", "/etc/passwd", "0" * 31 + "/"):
        with pytest.raises(RegistryError) as ei:
            asyncio.run(s.upload("a", uid))
        assert ei.value.code == "BLOB_UPLOAD_UNKNOWN"
    with pytest.raises(RegistryError) as ei:
        s.resolve("a", "../../../secret")
    assert ei.value.code == "MANIFEST_UNKNOWN"
    body = json.dumps({"schemaVersion": 2, "mediaType": spec.OCI_INDEX, "manifests": []}).encode()
    with pytest.raises(RegistryError) as ei:
        s.put_manifest("a", "../../../secret", body, spec.OCI_INDEX)
    assert ei.value.code == "MANIFEST_INVALID"
    assert (tmp_path / "secret").read_bytes() == b"secret"
    assert sorted(os.listdir(tmp_path)) == ["reg", "secret", "secret.json"]


def test_an_upload_of_another_repository_is_unknown(tmp_path: Path) -> None:
    s = Storage(tmp_path / "reg")
    up = s.start_upload("alice/private")
    with pytest.raises(RegistryError) as ei:
        asyncio.run(s.upload("mallory/x", up.uuid))
    assert ei.value.code == "BLOB_UPLOAD_UNKNOWN"


# -- Range and paging ----------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    ["²-3", "0-²", "1-0", "-5", "0-", "bytes=a-b", "9" * 5000 + "-" + "9" * 5001, ""],
    ids=["sup2-start", "sup2-end", "reversed", "no-start", "no-end", "letters", "huge", "empty"],
)
def test_hostile_content_range(value: str) -> None:
    with pytest.raises(RegistryError) as ei:
        spec.parse_content_range(value)
    assert ei.value.status == 416


@pytest.mark.parametrize(
    "n",
    ["²", "-1", "1e3", "9" * 5000, " 5", "0x10"],
    ids=["sup2", "neg", "exp", "huge", "sp", "hex"],
)
def test_hostile_page_size(n: str) -> None:
    with pytest.raises(RegistryError) as ei:
        spec.paginate(["a", "b"], n, None, "/v2/_catalog")
    assert ei.value.code == "PAGINATION_NUMBER_INVALID"


def test_page_last_is_only_compared() -> None:
    assert spec.paginate(["a", "b", "c"], "1", "../../a", "/x")[0] == ["a"]


# -- manifests -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 200_000 + b"]" * 200_000,
        b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
        b'{"schemaVersion": 2, "mediaType": "' + spec.OCI_MANIFEST.encode() + b'", "config": 1}',
        b'{"schemaVersion": 2, "config": {"digest": "sha256:../x"}, "layers": []}',
        b"\xff\xfe",
        b"null",
        b'{"schemaVersion": 2, "mediaType": "' + spec.OCI_INDEX.encode() + b'", "manifests": 5}',
        b'{"schemaVersion": 2, "mediaType": "' + spec.OCI_INDEX.encode() + b'", "manifests": [1]}',
    ],
    ids=[
        "deep-array",
        "deep-object",
        "config-int",
        "bad-digest",
        "not-utf8",
        "null",
        "m-int",
        "m-item-int",
    ],
)
def test_hostile_manifests(body: bytes) -> None:
    with pytest.raises(RegistryError) as ei:
        spec.parse_manifest(body, spec.OCI_MANIFEST)
    assert ei.value.code == "MANIFEST_INVALID"


def test_manifest_type_that_lies() -> None:
    body = json.dumps({"schemaVersion": 2, "mediaType": spec.OCI_INDEX, "manifests": []}).encode()
    with pytest.raises(RegistryError, match="does not match"):
        spec.parse_manifest(body, spec.OCI_MANIFEST)


# -- htpasswd, tokens, the ACL -------------------------------------------------------


def test_plain_entry_with_a_non_ascii_password_is_refused_not_a_crash() -> None:
    assert not auth.verify_hash("p", "pässwörd")
    assert auth.verify_hash("pässwörd", "pässwörd")


def test_empty_hash_never_matches(tmp_path: Path) -> None:
    f = tmp_path / "htpasswd"
    f.write_text("alice:\nbob:  \n")
    users = auth.Htpasswd(f)
    assert not users.verify("alice", "")
    assert not users.verify("bob", "")
    assert not users.verify("bob", "  ")


# htpasswd -nbd u pw, htpasswd -nb2 u pw (Debian's apache2-utils)
DES = "xh8Ju8sVv0OhA"
SHA256_CRYPT = "$5$6k4ChsTd1TFhtxpL$p9a4.GHpIhj4/yU.jjXc2cU4XJY1PLDnWZwWsLTVUX7"


@pytest.mark.parametrize("stored", [DES, SHA256_CRYPT])
def test_a_crypt_hash_is_not_its_own_password(stored: str) -> None:
    assert not auth.verify_hash(stored, stored)
    assert auth.verify_hash(stored, "pw")
    assert not auth.verify_hash(stored, "px")


def test_unknown_hash_scheme_never_matches() -> None:
    stored = "$9$whatever$abc"
    assert not auth.verify_hash(stored, stored)


def test_forged_tokens() -> None:
    secret = b"s" * 32
    good = auth.sign_token(
        secret, "u", "svc", [{"type": "repository", "name": "a", "actions": ["push"]}]
    )
    header, claims, sig = good.split(".")
    none_alg = base64.urlsafe_b64encode(b'{"alg":"none"}').rstrip(b"=").decode()
    for token in (
        f"{none_alg}.{claims}.",
        f"{header}.{claims}.",
        f"{header}.{claims}",
        f"{header}.{claims}.{sig}.x",
        f"{header}.{claims}.ü",
        auth.sign_token(b"", "u", "svc", []),
        auth.sign_token(secret, "u", "other-service", []),
        auth.sign_token(secret, "u", "svc", [], now=0),
    ):
        assert auth.verify_token(secret, token, "svc") is None, token


def _gate_opts(tmp_path: Path, secret: bytes, acl: str = "{}") -> Options:
    (tmp_path / "htpasswd").write_text("u:p\n")
    (tmp_path / "acl.json").write_text(acl)
    (tmp_path / "secret").write_bytes(secret)
    return Options(
        host="127.0.0.1",
        port=0,
        root=tmp_path / "reg",
        htpasswd=tmp_path / "htpasswd",
        token_auth=True,
        token_acl=tmp_path / "acl.json",
        token_secret=tmp_path / "secret",
    )


@pytest.mark.parametrize("secret", [b"", b"\n", b"short"])
def test_a_weak_token_secret_is_refused_at_start(tmp_path: Path, secret: bytes) -> None:
    opts = _gate_opts(tmp_path, secret)
    with pytest.raises(ValueError, match="token secret"):
        Gate(opts)
    argv = ["serve", "--root", str(tmp_path / "reg"), "--htpasswd", str(opts.htpasswd),
            "--token-auth", "--token-acl", str(opts.token_acl),
            "--token-secret", str(opts.token_secret), "--listen", "127.0.0.1:0"]  # fmt: skip
    assert registry_main.main(argv) == 1


@pytest.mark.parametrize(
    "acl", ['{"u": ["pull"]}', '{"u": {"a/*": "pull"}}', '{"u": {"a": [1]}}', "[]", "{"]
)
def test_a_malformed_acl_is_refused_at_start(tmp_path: Path, acl: str) -> None:
    opts = _gate_opts(tmp_path, os.urandom(32), acl)
    with pytest.raises(ValueError, match=r"acl\.json"):
        Gate(opts)


def test_acl_scope_names_are_matched_not_trusted() -> None:
    acl = auth.Acl({"u": {"team/*": ["pull", "push"]}})
    scopes = auth.parse_scopes(["repository:team/*:push repository:team/../x:push"])
    granted = acl.grant("u", scopes)
    # the token names exactly what was asked; a request path is never "team/*" or "team/../x"
    for a in granted:
        assert code_of(spec.check_name, a["name"]) == "NAME_INVALID"


def test_digest_of_uploaded_bytes_is_checked(tmp_path: Path) -> None:
    s = Storage(tmp_path / "reg")
    up = s.start_upload("a")

    async def go() -> None:
        async def chunks():  # type: ignore[no-untyped-def]
            yield b"evil"

        await s.append(up, chunks())
        await s.commit_upload(up, "sha256:" + hashlib.sha256(b"good").hexdigest())

    with pytest.raises(RegistryError) as ei:
        asyncio.run(go())
    assert ei.value.code == "DIGEST_INVALID"
    assert list((tmp_path / "reg" / "blobs" / "sha256").iterdir()) == []
    assert list((tmp_path / "reg" / "uploads").iterdir()) == []
