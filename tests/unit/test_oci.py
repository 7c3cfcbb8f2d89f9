"""seacan.oci: parsing validates and names what is wrong; chain IDs; platforms."""

from __future__ import annotations

import hashlib
import json
from typing import Any
from unittest import mock

import pytest

from seacan import errors, oci
from tests.fixtures import images as im

pytestmark = pytest.mark.unit

D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64
D3 = "sha256:" + "3" * 64


def manifest(**over: Any) -> dict[str, Any]:
    m: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": oci.OCI_MANIFEST,
        "config": {"mediaType": oci.OCI_CONFIG, "digest": D1, "size": 10},
        "layers": [
            {"mediaType": oci.OCI_LAYER_GZIP, "digest": D2, "size": 20},
            {
                "mediaType": oci.DOCKER_LAYER_GZIP,
                "digest": D3,
                "size": 30,
                "annotations": {"a": "b"},
                "urls": ["https://x"],
            },
        ],
        "annotations": {"org.opencontainers.image.created": "now"},
    }
    m.update(over)
    return m


def test_parse_manifest() -> None:
    m = oci.parse_manifest(json.dumps(manifest()).encode())
    assert m.media_type == oci.OCI_MANIFEST
    assert m.config == oci.Descriptor(oci.OCI_CONFIG, D1, 10)
    assert [layer.digest for layer in m.layers] == [D2, D3]
    assert m.layers[1].annotations == {"a": "b"}
    assert m.layers[1].urls == ("https://x",)
    assert m.annotations == {"org.opencontainers.image.created": "now"}
    # Docker schema 2, and an OCI manifest that leaves mediaType out.
    docker = manifest(mediaType=oci.DOCKER_MANIFEST)
    assert oci.parse_manifest(json.dumps(docker)).media_type == oci.DOCKER_MANIFEST
    bare = manifest()
    del bare["mediaType"]
    assert oci.parse_manifest(json.dumps(bare)).media_type == oci.OCI_MANIFEST


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        (b"{not json", "invalid JSON"),
        (b"[]", "JSON object expected"),
        (json.dumps(manifest(schemaVersion=1)).encode(), "schemaVersion 1"),
        (
            json.dumps({k: v for k, v in manifest().items() if k != "config"}).encode(),
            "missing field 'config'",
        ),
        (
            json.dumps(manifest(config={"mediaType": oci.OCI_CONFIG, "size": 1})).encode(),
            "manifest: config: missing field 'digest'",
        ),
        (
            json.dumps(
                manifest(config={"mediaType": oci.OCI_CONFIG, "digest": "sha256:abc", "size": 1})
            ).encode(),
            "invalid digest 'sha256:abc'",
        ),
        (
            json.dumps(
                manifest(config={"mediaType": oci.OCI_CONFIG, "digest": D1.upper(), "size": 1})
            ).encode(),
            "invalid digest",
        ),
        (
            json.dumps(manifest(layers=[{"mediaType": "x", "digest": D1, "size": -1}])).encode(),
            "manifest: layers[0]: negative size",
        ),
        (
            json.dumps(manifest(layers=[{"mediaType": "x", "digest": D1, "size": "1"}])).encode(),
            "layers[0]: field 'size' has the wrong type",
        ),
        (json.dumps(manifest(mediaType=oci.OCI_INDEX)).encode(), "unexpected mediaType"),
    ],
)
def test_parse_manifest_errors(data: bytes, needle: str) -> None:
    with pytest.raises(errors.InvalidArgument) as ei:
        oci.parse_manifest(data)
    assert needle in str(ei.value)


def test_parse_index() -> None:
    idx = {
        "schemaVersion": 2,
        "mediaType": oci.DOCKER_MANIFEST_LIST,
        "manifests": [
            {
                "mediaType": oci.DOCKER_MANIFEST,
                "digest": D1,
                "size": 5,
                "platform": {"architecture": "arm64", "os": "linux", "variant": "v8"},
            },
            {"mediaType": oci.OCI_MANIFEST, "digest": D2, "size": 6},
        ],
    }
    parsed = oci.parse_index(json.dumps(idx))
    assert parsed.media_type == oci.DOCKER_MANIFEST_LIST
    assert parsed.manifests[0].platform == oci.Platform("linux", "arm64", "v8")
    assert parsed.manifests[1].platform is None
    bad = dict(idx, manifests=[{"mediaType": "x", "digest": D1, "size": 1, "platform": {}}])
    with pytest.raises(errors.InvalidArgument, match=r"manifests\[0\]: platform: missing field"):
        oci.parse_index(json.dumps(bad))
    with pytest.raises(errors.InvalidArgument, match="missing field 'manifests'"):
        oci.parse_index(json.dumps({"schemaVersion": 2}))


def test_parse_config() -> None:
    cfg = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Env": ["PATH=/bin"], "Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": [D1, D2]},
        "history": [{"created_by": "x"}],
    }
    c = oci.parse_config(json.dumps(cfg).encode())
    assert c.diff_ids == (D1, D2)
    assert c.config["Cmd"] == ["sh"]
    assert c.platform == oci.Platform("linux", "amd64")
    with pytest.raises(errors.InvalidArgument, match=r"rootfs.diff_ids\[1\]: invalid digest"):
        oci.parse_config(json.dumps(dict(cfg, rootfs={"type": "layers", "diff_ids": [D1, "x"]})))
    with pytest.raises(errors.InvalidArgument, match="missing field 'rootfs'"):
        oci.parse_config(json.dumps({"architecture": "amd64", "os": "linux"}))
    with pytest.raises(errors.InvalidArgument, match="rootfs type"):
        oci.parse_config(json.dumps(dict(cfg, rootfs={"type": "other", "diff_ids": []})))


def test_chain_ids() -> None:
    assert oci.chain_ids([]) == []
    assert oci.chain_ids([D1]) == [D1]
    c2 = "sha256:" + hashlib.sha256(f"{D1} {D2}".encode()).hexdigest()
    c3 = "sha256:" + hashlib.sha256(f"{c2} {D3}".encode()).hexdigest()
    assert oci.chain_ids([D1, D2, D3]) == [D1, c2, c3]
    assert oci.chain_ids([D1, D2, D3]) == im.chain_ids([D1, D2, D3])  # the fixtures' own
    with pytest.raises(errors.InvalidArgument):
        oci.chain_ids(["sha256:nothex"])


def test_descriptor_json_round_trip() -> None:
    d = oci.Descriptor(
        oci.OCI_MANIFEST, D1, 7, {"k": "v"}, platform=oci.Platform("linux", "arm64", "v8")
    )
    assert oci.parse_descriptor(d.to_json()) == d


@pytest.mark.parametrize(
    ("machine", "want"),
    [("x86_64", "linux/amd64"), ("aarch64", "linux/arm64/v8"), ("armv7l", "linux/arm/v7")],
)
def test_host_platform(machine: str, want: str) -> None:
    with mock.patch("platform.machine", return_value=machine):
        assert str(oci.host_platform()) == want


def test_platform_matches() -> None:
    amd64 = oci.Platform("linux", "amd64")
    arm64 = oci.Platform("linux", "arm64", "v8")
    assert oci.platform_matches(amd64, oci.Platform("linux", "amd64"))
    assert oci.platform_matches(amd64, oci.Platform("Linux", "x86_64"))
    assert not oci.platform_matches(amd64, arm64)
    assert oci.platform_matches(arm64, oci.Platform("linux", "arm64"))
    assert oci.platform_matches(arm64, oci.Platform("linux", "aarch64", "8"))
    assert not oci.platform_matches(
        oci.Platform("linux", "arm", "v6"), oci.Platform("linux", "arm", "v7")
    )
    assert not oci.platform_matches(amd64, oci.Platform("windows", "amd64"))
    assert oci.parse_platform("linux/arm64") == oci.Platform("linux", "arm64")
    assert oci.parse_platform("linux/arm/v7") == oci.Platform("linux", "arm", "v7")
    with pytest.raises(errors.InvalidArgument):
        oci.parse_platform("a/b/c/d")


def test_sniff_media_type() -> None:
    assert oci.sniff_media_type(json.dumps(manifest()).encode()) == oci.OCI_MANIFEST
    assert oci.sniff_media_type(b'{"schemaVersion":2,"manifests":[]}') == oci.OCI_INDEX
    assert oci.sniff_media_type(b"garbage") == ""
