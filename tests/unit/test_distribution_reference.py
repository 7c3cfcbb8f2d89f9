"""Image references, normalised as Docker's distribution/reference does."""

from __future__ import annotations

import re

import pytest

from seacan import errors
from seacan.distribution.reference import Reference, familiar, parse, registry_host

pytestmark = pytest.mark.unit

D = "sha256:" + "a" * 64

# text -> (str(ref), familiar(ref)), mostly from distribution/reference's tests.
GOOD = [
    ("busybox", "docker.io/library/busybox:latest", "busybox:latest"),
    ("library/debian", "docker.io/library/debian:latest", "debian:latest"),
    ("docker/docker", "docker.io/docker/docker:latest", "docker/docker:latest"),
    ("docker.io/debian", "docker.io/library/debian:latest", "debian:latest"),
    ("docker.io/library/debian:12", "docker.io/library/debian:12", "debian:12"),
    ("index.docker.io/user/app:1", "docker.io/user/app:1", "user/app:1"),
    ("localhost/library/debian", "localhost/library/debian:latest", None),
    ("localhost:5000/a/b:1.0", "localhost:5000/a/b:1.0", None),
    ("127.0.0.1:5000/library/debian", "127.0.0.1:5000/library/debian:latest", None),
    ("registry.com:8080/myapp:tag", "registry.com:8080/myapp:tag", None),
    ("foo_bar.com:8080", "docker.io/library/foo_bar.com:8080", "foo_bar.com:8080"),
    ("foo/foo_bar.com:8080", "docker.io/foo/foo_bar.com:8080", "foo/foo_bar.com:8080"),
    ("xn--n3h.com/myimage:xn--n3h.com", "xn--n3h.com/myimage:xn--n3h.com", None),
    ("lowercase:Uppercase", "docker.io/library/lowercase:Uppercase", "lowercase:Uppercase"),
    ("Foo/bar", "Foo/bar:latest", None),  # an uppercase first component is a domain
    ("[2001:db8::1]:5000/repo:t", "[2001:db8::1]:5000/repo:t", None),
    ("a__b/c-d--e/f.g_h", "docker.io/a__b/c-d--e/f.g_h:latest", "a__b/c-d--e/f.g_h:latest"),
    (f"busybox@{D}", f"docker.io/library/busybox@{D}", f"busybox@{D}"),
    (f"busybox:1@{D}", f"docker.io/library/busybox:1@{D}", f"busybox:1@{D}"),
    (f"localhost:5000/x@{D}", f"localhost:5000/x@{D}", None),
]


@pytest.mark.parametrize(("text", "full", "short"), GOOD)
def test_parse_normalises_like_docker(text: str, full: str, short: str | None) -> None:
    ref = parse(text)
    assert str(ref) == full
    assert familiar(ref) == (short or full)
    assert parse(full) == ref  # normalising is idempotent


BAD = [
    ("", "empty"),
    ("Uppercase:tag", "repository name (library/Uppercase) must be lowercase"),
    (
        "test:5000/Uppercase/lowercase:tag",
        "repository name (Uppercase/lowercase) must be lowercase",
    ),
    ("a" * 64, "cannot specify 64-byte hexadecimal strings"),
    ("aa/asdf$$^/aa", "invalid repository"),
    ("-foo", "invalid repository"),
    ("foo-", "invalid repository"),
    ("a..b", "invalid repository"),
    ("a___b", "invalid repository"),
    ("a//b", "invalid repository"),
    ("a/", "invalid repository"),
    ("busybox:", "invalid tag"),
    ("busybox:" + "t" * 129, "invalid tag"),
    ("busybox:-x", "invalid tag"),
    ("busybox@sha256:abc", "invalid digest"),
    ("busybox@sha256:" + "A" * 64, "lowercase hex"),
    ("busybox@md5:" + "a" * 32, "invalid digest"),
    ("busybox@", "invalid digest"),
    ("@" + D, "no repository name"),
    (":tag", "no repository name"),
    ("ho_st:5000/x", "invalid domain"),
    ("x/" + "a" * 260, "longer than 255"),
]


@pytest.mark.parametrize(("text", "message"), BAD)
def test_parse_rejects_naming_the_problem(text: str, message: str) -> None:
    with pytest.raises(errors.InvalidArgument, match=re.escape(message)):
        parse(text)


def test_parts_repository_and_object() -> None:
    ref = parse(f"localhost:5000/team/app:v1@{D}")
    assert ref == Reference("localhost:5000", "team/app", "v1", D)
    assert ref.repository == "localhost:5000/team/app"
    assert ref.object == D  # the digest wins over the tag
    assert parse("team/app:v2").object == "v2"


def test_registry_host_maps_docker_hub() -> None:
    assert registry_host("docker.io") == "registry-1.docker.io"
    assert registry_host("index.docker.io") == "registry-1.docker.io"
    assert registry_host("127.0.0.1:5000") == "127.0.0.1:5000"
    assert registry_host(parse("quay.io/a/b").domain) == "quay.io"
