"""Docker config credentials, credential helpers, WWW-Authenticate parsing."""

from __future__ import annotations

import base64
import json
import stat
import textwrap
from pathlib import Path

import pytest

from seacan import errors
from seacan.distribution.auth import (
    Challenge,
    Credentials,
    CredentialStore,
    config_path,
    parse_challenges,
)

pytestmark = pytest.mark.unit


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def write_config(path: Path, cfg: dict[str, object]) -> CredentialStore:
    path.write_text(json.dumps(cfg))
    return CredentialStore(path)


# A credential helper speaking Docker's protocol, keeping its secrets in a JSON
# file next to it and logging each call (verb and stdin).
HELPER = textwrap.dedent(
    """\
    #!/usr/bin/env python3
    import json, pathlib, sys
    here = pathlib.Path(__file__).parent
    db = here / "helper-db.json"
    data = json.loads(db.read_text()) if db.exists() else {}
    verb, stdin = sys.argv[1], sys.stdin.read()
    with open(here / "helper-calls.log", "a") as log:
        log.write(json.dumps([verb, stdin]) + "\\n")
    if verb == "get":
        if stdin.strip() not in data:
            print("credentials not found in native keychain")
            sys.exit(1)
        user, secret = data[stdin.strip()]
        print(json.dumps({"ServerURL": stdin.strip(), "Username": user, "Secret": secret}))
    elif verb == "store":
        req = json.loads(stdin)
        data[req["ServerURL"]] = [req["Username"], req["Secret"]]
        db.write_text(json.dumps(data))
    elif verb == "erase":
        if data.pop(stdin.strip(), None) is None:
            print("credentials not found in native keychain")
            sys.exit(1)
        db.write_text(json.dumps(data))
    else:
        print("unknown verb", file=sys.stderr)
        sys.exit(2)
    """
)


@pytest.fixture
def helper_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    d = tmp_path / "bin"
    d.mkdir()
    prog = d / "docker-credential-test"
    prog.write_text(HELPER)
    prog.chmod(0o755)
    monkeypatch.setenv("PATH", f"{d}:{Path('/usr/bin')}:{Path('/bin')}")
    return d


def helper_calls(d: Path) -> list[list[str]]:
    log = d / "helper-calls.log"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_config_path_follows_docker_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "dc"))
    assert config_path() == tmp_path / "dc" / "config.json"
    monkeypatch.delenv("DOCKER_CONFIG")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert config_path() == tmp_path / ".docker" / "config.json"
    assert CredentialStore().path == tmp_path / ".docker" / "config.json"


def test_auths_base64_username_password_and_identity_token(tmp_path: Path) -> None:
    store = write_config(
        tmp_path / "config.json",
        {
            "auths": {
                "127.0.0.1:5000": {"auth": b64("alice:s3cret:with:colons")},
                "https://registry.example.com": {"username": "bob", "password": "pw"},
                "https://index.docker.io/v1/": {"identitytoken": "refresh-me"},
                "empty.example.com": {},
            },
            "psFormat": "kept",
        },
    )
    assert store.get("127.0.0.1:5000") == Credentials("alice", "s3cret:with:colons")
    assert store.get("registry.example.com") == Credentials("bob", "pw")
    for hub in ("docker.io", "registry-1.docker.io", "index.docker.io"):
        assert store.get(hub) == Credentials(identity_token="refresh-me")
    assert store.get("empty.example.com") is None
    assert store.get("127.0.0.1:5001") is None


def test_missing_file_means_no_credentials(tmp_path: Path) -> None:
    assert CredentialStore(tmp_path / "nope" / "config.json").get("x.io") is None


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "invalid JSON"),
        ("[]", "JSON object expected"),
        ('{"auths": {"h.io": {"auth": "!!!"}}}', "not base64"),
        ('{"auths": {"h.io": {"auth": "' + b64("nocolon") + '"}}}', "lacks a ':'"),
    ],
)
def test_bad_config_is_named(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / "config.json").write_text(content)
    with pytest.raises(errors.InvalidArgument, match=message):
        CredentialStore(tmp_path / "config.json").get("h.io")


def test_store_and_erase_write_atomically_with_mode_0600(tmp_path: Path) -> None:
    path = tmp_path / "docker" / "config.json"
    store = CredentialStore(path)
    store.store("127.0.0.1:5000", Credentials("alice", "pw"))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    cfg = json.loads(path.read_text())
    assert cfg == {"auths": {"127.0.0.1:5000": {"auth": b64("alice:pw")}}}
    path.write_text(json.dumps({**cfg, "psFormat": "kept"}))
    store.store("docker.io", Credentials(identity_token="tok"))
    store.store("127.0.0.1:5000", Credentials("alice", "new"))
    cfg = json.loads(path.read_text())
    assert cfg["psFormat"] == "kept"
    assert cfg["auths"]["https://index.docker.io/v1/"] == {"identitytoken": "tok"}
    assert store.get("127.0.0.1:5000") == Credentials("alice", "new")
    assert [p.name for p in path.parent.iterdir()] == ["config.json"]  # no temp file left
    store.erase("127.0.0.1:5000")
    assert store.get("127.0.0.1:5000") is None
    assert store.get("registry-1.docker.io") == Credentials(identity_token="tok")
    with pytest.raises(errors.NotFound, match=r"not logged in to 127\.0\.0\.1:5000"):
        store.erase("127.0.0.1:5000")


def test_creds_store_helper_get_store_erase(tmp_path: Path, helper_dir: Path) -> None:
    store = write_config(tmp_path / "config.json", {"credsStore": "test"})
    assert store.get("127.0.0.1:5000") is None  # "credentials not found" -> None
    store.store("127.0.0.1:5000", Credentials("alice", "pw"))
    store.store("docker.io", Credentials(identity_token="idtok"))
    assert store.get("127.0.0.1:5000") == Credentials("alice", "pw")
    assert store.get("registry-1.docker.io") == Credentials(identity_token="idtok")
    db = json.loads((helper_dir / "helper-db.json").read_text())
    assert db == {
        "127.0.0.1:5000": ["alice", "pw"],
        "https://index.docker.io/v1/": ["<token>", "idtok"],
    }
    cfg = json.loads((tmp_path / "config.json").read_text())
    assert cfg["auths"] == {"127.0.0.1:5000": {}, "https://index.docker.io/v1/": {}}
    assert "pw" not in (tmp_path / "config.json").read_text()  # secrets stay in the helper
    store.erase("127.0.0.1:5000")
    assert store.get("127.0.0.1:5000") is None
    verbs = [c[0] for c in helper_calls(helper_dir)]
    assert verbs == ["get", "store", "store", "get", "get", "erase", "get"]
    assert helper_calls(helper_dir)[0] == ["get", "127.0.0.1:5000"]


def test_cred_helpers_override_per_host(tmp_path: Path, helper_dir: Path) -> None:
    (helper_dir / "helper-db.json").write_text(json.dumps({"gcr.example.com": ["h", "hpw"]}))
    store = write_config(
        tmp_path / "config.json",
        {
            "auths": {"gcr.example.com": {"auth": b64("a:apw")}, "other.io": {"auth": b64("o:p")}},
            "credHelpers": {"gcr.example.com": "test"},
        },
    )
    assert store.get("gcr.example.com") == Credentials("h", "hpw")
    assert store.get("other.io") == Credentials("o", "p")
    assert [c[0] for c in helper_calls(helper_dir)] == ["get"]


def test_missing_or_failing_helper_is_named(tmp_path: Path, helper_dir: Path) -> None:
    store = write_config(tmp_path / "config.json", {"credsStore": "absent"})
    with pytest.raises(errors.FailedPrecondition, match="docker-credential-absent not found"):
        store.get("h.io")
    broken = helper_dir / "docker-credential-broken"
    broken.write_text("#!/bin/sh\necho 'keychain locked' >&2\nexit 3\n")
    broken.chmod(0o755)
    store = write_config(tmp_path / "config.json", {"credsStore": "broken"})
    with pytest.raises(errors.Unavailable, match="keychain locked"):
        store.get("h.io")


CHALLENGES = [
    (
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
        'scope="repository:library/busybox:pull,push"',
        [
            Challenge(
                "bearer",
                {
                    "realm": "https://auth.docker.io/token",
                    "service": "registry.docker.io",
                    "scope": "repository:library/busybox:pull,push",
                },
            )
        ],
    ),
    ('Basic realm="Registry Realm"', [Challenge("basic", {"realm": "Registry Realm"})]),
    ("basic realm=simple", [Challenge("basic", {"realm": "simple"})]),
    (
        'Bearer realm="http://127.0.0.1:1/t" , error="invalid_token" ,'
        ' error_description="a \\"quoted\\" word, and a comma"',
        [
            Challenge(
                "bearer",
                {
                    "realm": "http://127.0.0.1:1/t",
                    "error": "invalid_token",
                    "error_description": 'a "quoted" word, and a comma',
                },
            )
        ],
    ),
    (
        'Basic realm="a", Bearer realm="b",scope="x y"',
        [Challenge("basic", {"realm": "a"}), Challenge("bearer", {"realm": "b", "scope": "x y"})],
    ),
    ("Negotiate", [Challenge("negotiate", {})]),
    ("", []),
]


@pytest.mark.parametrize(("header", "want"), CHALLENGES)
def test_parse_www_authenticate(header: str, want: list[Challenge]) -> None:
    assert parse_challenges(header) == want
