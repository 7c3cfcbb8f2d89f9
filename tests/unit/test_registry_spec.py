"""The registry's pure spec layer: names, routes, ranges, pagination, manifests."""

from __future__ import annotations

import json

import pytest

from seacan.services.registry import spec
from seacan.services.registry.spec import RegistryError, Route

pytestmark = pytest.mark.unit

D = "sha256:" + "a" * 64
D2 = "sha256:" + "b" * 64


@pytest.mark.parametrize(
    "name",
    ["a", "library/busybox", "a/b/c", "my-repo", "my__repo", "my.repo", "a0/b--c", "x" * 255],
)
def test_valid_names(name: str) -> None:
    assert spec.check_name(name) == name


@pytest.mark.parametrize(
    "name",
    [
        "",
        "Upper",
        "a/../b",
        "..",
        "a/..",
        "a//b",
        "/a",
        "a/",
        "-a",
        "a-",
        "a..b",
        "a_.b",
        "x" * 256,
    ],
)
def test_invalid_names(name: str) -> None:
    with pytest.raises(RegistryError) as e:
        spec.check_name(name)
    assert e.value.code == "NAME_INVALID" and e.value.status == 400


@pytest.mark.parametrize(
    "digest",
    ["sha256:abc", "sha256:" + "A" * 64, "md5:" + "a" * 32, "sha512:" + "a" * 128, D + "0"],
)
def test_invalid_digests(digest: str) -> None:
    with pytest.raises(RegistryError) as e:
        spec.check_digest(digest)
    assert e.value.code == "DIGEST_INVALID"


def test_tags() -> None:
    assert spec.check_tag("v1.0_rc-1") == "v1.0_rc-1"
    for bad in ("-x", ".x", "a/b", "x" * 129):
        with pytest.raises(RegistryError):
            spec.check_tag(bad)


@pytest.mark.parametrize(
    ("path", "route"),
    [
        ("/v2/", Route("base")),
        ("/v2", Route("base")),
        ("/v2/_catalog?n=1", Route("catalog")),
        ("/v2/a/b/manifests/latest", Route("manifest", "a/b", "latest")),
        (f"/v2/a/manifests/{D}", Route("manifest", "a", D)),
        (f"/v2/a/manifests/sha256%3A{'a' * 64}", Route("manifest", "a", D)),
        (f"/v2/a/blobs/{D}", Route("blob", "a", D)),
        ("/v2/a/blobs/uploads/", Route("uploads", "a")),
        ("/v2/a/blobs/uploads", Route("uploads", "a")),
        ("/v2/a/blobs/uploads/0123abcd", Route("upload", "a", "0123abcd")),
        ("/v2/blobs/blobs/uploads/", Route("uploads", "blobs")),
        ("/v2/a/tags/list?n=2&last=x", Route("tags", "a")),
        (f"/v2/a/referrers/{D}", Route("referrers", "a", D)),
        ("/v2/../x/tags/list", Route("tags", "../x")),
        ("/v2/a%2F..%2Fb/tags/list", Route("tags", "a/../b")),
        ("/v2/a/unknown", None),
        ("/other", None),
    ],
)
def test_routes(path: str, route: Route | None) -> None:
    assert spec.parse_route(path) == route


def test_content_range() -> None:
    assert spec.parse_content_range("0-99") == (0, 99)
    assert spec.parse_content_range("bytes 100-199/*") == (100, 199)
    assert spec.parse_content_range("bytes=5-5") == (5, 5)
    for bad in ("", "5", "a-b", "10-5", "-5"):
        with pytest.raises(RegistryError) as e:
            spec.parse_content_range(bad)
        assert e.value.status == 416
    assert spec.upload_range(0) == "0-0"
    assert spec.upload_range(100) == "0-99"


def test_pagination() -> None:
    items = ["c", "a", "e", "b", "d"]
    assert spec.paginate(items, None, None, "/x") == (["a", "b", "c", "d", "e"], None)
    page, link = spec.paginate(items, "2", None, "/x")
    assert page == ["a", "b"] and link == '</x?n=2&last=b>; rel="next"'
    page, link = spec.paginate(items, "2", "b", "/x")
    assert page == ["c", "d"] and link == '</x?n=2&last=d>; rel="next"'
    assert spec.paginate(items, "2", "d", "/x") == (["e"], None)
    assert spec.paginate(items, "5", None, "/x") == (["a", "b", "c", "d", "e"], None)
    assert spec.paginate(items, "0", None, "/x") == ([], None)
    assert spec.paginate(items, None, "c", "/x") == (["d", "e"], None)
    with pytest.raises(RegistryError):
        spec.paginate(items, "-1", None, "/x")


def _image(media_type: str | None = spec.OCI_MANIFEST, **extra: object) -> bytes:
    doc: dict[str, object] = {
        "schemaVersion": 2,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": D, "size": 1},
        "layers": [{"mediaType": "x", "digest": D2, "size": 2}],
        **extra,
    }
    if media_type:
        doc["mediaType"] = media_type
    return json.dumps(doc).encode()


def test_parse_image_manifest() -> None:
    m = spec.parse_manifest(_image(), spec.OCI_MANIFEST + "; charset=utf-8")
    assert m.media_type == spec.OCI_MANIFEST
    assert m.blobs == (D, D2) and m.manifests == () and m.subject is None
    assert m.artifact_type == "application/vnd.oci.image.config.v1+json"
    # no mediaType field: the Content-Type decides
    assert spec.parse_manifest(_image(None), spec.OCI_MANIFEST).media_type == spec.OCI_MANIFEST
    # no usable Content-Type: the field decides
    assert spec.parse_manifest(_image(), "application/octet-stream").media_type == spec.OCI_MANIFEST
    sub = spec.parse_manifest(
        _image(subject={"digest": D2, "size": 1, "mediaType": spec.OCI_MANIFEST}, artifactType="t"),
        spec.OCI_MANIFEST,
    )
    assert sub.subject == D2 and sub.artifact_type == "t"


def test_foreign_layers_are_not_required() -> None:
    body = _image(
        spec.DOCKER_MANIFEST,
        layers=[
            {
                "mediaType": "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
                "digest": D2,
                "size": 1,
                "urls": ["https://example.invalid/x"],
            }
        ],
    )
    assert spec.parse_manifest(body, spec.DOCKER_MANIFEST).blobs == (D,)


def test_parse_index() -> None:
    body = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": spec.OCI_INDEX,
            "manifests": [{"mediaType": spec.OCI_MANIFEST, "digest": D, "size": 1}],
        }
    ).encode()
    m = spec.parse_manifest(body, spec.OCI_INDEX)
    assert m.manifests == (D,) and m.blobs == ()


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"{not json", spec.OCI_MANIFEST),
        (b"[]", spec.OCI_MANIFEST),
        (_image(spec.DOCKER_MANIFEST), spec.OCI_MANIFEST),  # header and field disagree
        (_image(None), "text/plain"),  # no known type at all
        (_image(schemaVersion=1), spec.OCI_MANIFEST),
        (_image(config={"size": 1}), spec.OCI_MANIFEST),
        (_image(layers=[{"digest": "sha256:short"}]), spec.OCI_MANIFEST),
        (_image(subject={"size": 1}), spec.OCI_MANIFEST),
    ],
)
def test_invalid_manifests(body: bytes, content_type: str) -> None:
    with pytest.raises(RegistryError) as e:
        spec.parse_manifest(body, content_type)
    assert e.value.code == "MANIFEST_INVALID"


def test_error_body() -> None:
    e = RegistryError("BLOB_UNKNOWN", "blob x unknown", detail=D)
    assert e.status == 404
    assert json.loads(e.body()) == {
        "errors": [{"code": "BLOB_UNKNOWN", "message": "blob x unknown", "detail": D}]
    }
    for code, status in (("UNAUTHORIZED", 401), ("DENIED", 403), ("UNSUPPORTED", 405)):
        assert RegistryError(code, "m").status == status
    assert RegistryError("TOOMANYREQUESTS", "m").status == 429
