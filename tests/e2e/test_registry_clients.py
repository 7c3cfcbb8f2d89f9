"""Independent registry clients against seacan's registry and Debian's docker-registry.

Every test runs against both (``reg`` is parametrized over
:data:`tests.fixtures.registry.KINDS`): docker-registry (distribution 2.8.2)
shows the test itself is right, seacan's registry must behave the same.
Clients: ``skopeo`` (Debian), the PyPI libraries ``oras`` and ``python-dxf``,
and ``podman`` (Debian; runc, cgroupfs, low ulimits and private storage via
a private ``CONTAINERS_CONF``). Assertions are on the bytes and digests that
come back, read by the client and straight over HTTP.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tarfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures import daemon as dm
from tests.fixtures import images as im
from tests.fixtures.registry import KINDS, MakeRegistry, Registry

pytestmark = pytest.mark.e2e

SKOPEO = shutil.which("skopeo") or "/usr/bin/skopeo"
PODMAN = shutil.which("podman") or "/usr/bin/podman"
ACCEPT_ALL = ", ".join(
    [
        im.OCI_MANIFEST,
        im.OCI_INDEX,
        im.DOCKER_MANIFEST,
        "application/vnd.docker.distribution.manifest.list.v2+json",
    ]
)


# --- fixtures -----------------------------------------------------------------


@pytest.fixture(scope="module", params=KINDS)
def reg(request: pytest.FixtureRequest, registry_factory_module: MakeRegistry) -> Registry:
    """One registry of each kind for the module; tests use repositories of their own."""
    return registry_factory_module(str(request.param))


def _extract(archive: Path, out: Path) -> Path:
    out.mkdir(parents=True)
    with tarfile.open(archive) as t:
        t.extractall(out, filter="data")
    return out


@pytest.fixture(scope="module")
def busybox_dir(busybox_oci: im.Archive, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """busybox as an OCI layout directory (``oci:DIR:latest`` for skopeo)."""
    return _extract(busybox_oci.path, tmp_path_factory.mktemp("bb") / "layout")


@pytest.fixture(scope="module")
def multi_dir(multiplatform: im.Archive, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _extract(multiplatform.path, tmp_path_factory.mktemp("multi") / "layout")


# --- helpers ------------------------------------------------------------------


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def skopeo(*args: str | Path, ok: bool = True) -> subprocess.CompletedProcess[str]:
    r = dm.run([SKOPEO, "--insecure-policy", *map(str, args)], timeout=120)
    if ok:
        assert r.returncode == 0, dm.describe(r)
    return r


def push_busybox(reg: Registry, layout: Path, ref: str, fmt: str = "oci") -> str:
    """``skopeo copy oci:LAYOUT:latest docker://HOST/REF``; returns the full reference."""
    dest = f"{reg.host}/{ref}"
    skopeo(
        "copy",
        "--format",
        fmt,
        "--dest-tls-verify=false",
        f"oci:{layout}:latest",
        f"docker://{dest}",
    )
    return dest


class Response:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body

    def json(self) -> Any:
        return json.loads(self.body)

    def __repr__(self) -> str:
        return f"<{self.status} {self.headers} {self.body[:300]!r}>"


def http(reg: Registry, method: str, path: str, accept: str = ACCEPT_ALL) -> Response:
    """A plain HTTP request to the registry (what the bytes really are)."""
    req = urllib.request.Request(reg.url + path, method=method, headers={"Accept": accept})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return Response(r.status, {k.lower(): v for k, v in r.headers.items()}, r.read())
    except urllib.error.HTTPError as e:
        return Response(e.code, {k.lower(): v for k, v in e.headers.items()}, e.read())


def get_manifest(reg: Registry, repo: str, ref: str, accept: str = ACCEPT_ALL) -> Response:
    r = http(reg, "GET", f"/v2/{repo}/manifests/{ref}", accept)
    assert r.status == 200, r
    assert r.headers.get("docker-content-digest") == sha(r.body), r
    return r


def assert_blobs_served(reg: Registry, repo: str, manifest: dict[str, Any]) -> None:
    """Every blob the manifest names is served with exactly those bytes."""
    for d in [manifest["config"], *manifest["layers"]]:
        r = http(reg, "GET", f"/v2/{repo}/blobs/{d['digest']}", "*/*")
        assert r.status == 200, (d, r)
        assert sha(r.body) == d["digest"] and len(r.body) == d["size"], d


def assert_error(r: Response, status: int, code: str) -> None:
    assert r.status == status, r
    codes = [e.get("code") for e in r.json().get("errors", [])] if r.body else []
    assert code in codes, r


# --- skopeo -------------------------------------------------------------------


def test_skopeo_push_oci_keeps_manifest_bytes(reg: Registry, busybox_dir: Path) -> None:
    img = im.busybox_image()
    push_busybox(reg, busybox_dir, "skopeo/push-oci:1", "oci")
    r = get_manifest(reg, "skopeo/push-oci", "1", im.OCI_MANIFEST)
    assert r.body == img.manifest.data
    assert r.headers["content-type"] == im.OCI_MANIFEST
    assert_blobs_served(reg, "skopeo/push-oci", r.json())
    by_digest = get_manifest(reg, "skopeo/push-oci", img.manifest.digest, im.OCI_MANIFEST)
    assert by_digest.body == img.manifest.data
    head = http(reg, "HEAD", "/v2/skopeo/push-oci/manifests/1", im.OCI_MANIFEST)
    assert head.status == 200 and head.headers["docker-content-digest"] == img.manifest.digest
    assert int(head.headers["content-length"]) == img.manifest.size


def test_skopeo_push_v2s2_converts_to_docker_types(reg: Registry, busybox_dir: Path) -> None:
    img = im.busybox_image()
    push_busybox(reg, busybox_dir, "skopeo/push-v2s2:1", "v2s2")
    r = get_manifest(reg, "skopeo/push-v2s2", "1", im.DOCKER_MANIFEST)
    assert r.headers["content-type"] == im.DOCKER_MANIFEST
    m = r.json()
    assert m["mediaType"] == im.DOCKER_MANIFEST
    assert m["config"]["mediaType"] == im.DOCKER_CONFIG
    assert [ly["mediaType"] for ly in m["layers"]] == [im.DOCKER_LAYER_GZIP]
    # The gzip layer is reused as it is.
    assert [ly["digest"] for ly in m["layers"]] == [ly.blob.digest for ly in img.layers]
    assert_blobs_served(reg, "skopeo/push-v2s2", m)
    config = http(reg, "GET", f"/v2/skopeo/push-v2s2/blobs/{m['config']['digest']}", "*/*")
    assert json.loads(config.body)["rootfs"]["diff_ids"] == img.diff_ids


def test_skopeo_inspect(reg: Registry, busybox_dir: Path) -> None:
    img = im.busybox_image()
    ref = push_busybox(reg, busybox_dir, "skopeo/inspect:1")
    info = json.loads(skopeo("inspect", "--tls-verify=false", f"docker://{ref}").stdout)
    assert info["Digest"] == img.manifest.digest
    assert info["Layers"] == [ly.blob.digest for ly in img.layers]
    assert info["Architecture"] == im.host_platform().architecture and info["Os"] == "linux"
    assert info["RepoTags"] == ["1"]
    assert info["Env"] == [im.PATH_ENV]


def test_skopeo_inspect_raw_and_config(reg: Registry, busybox_dir: Path) -> None:
    img = im.busybox_image()
    ref = push_busybox(reg, busybox_dir, "skopeo/raw:1")
    raw = dm.run([SKOPEO, "inspect", "--raw", "--tls-verify=false", f"docker://{ref}"])
    assert raw.returncode == 0, dm.describe(raw)
    assert raw.stdout.encode() == img.manifest.data
    cfg = skopeo("inspect", "--raw", "--config", "--tls-verify=false", f"docker://{ref}")
    assert cfg.stdout.encode() == img.config.data


def test_skopeo_list_tags(reg: Registry, busybox_dir: Path) -> None:
    repo = "skopeo/tags"
    for tag in ("b", "a", "c-1.0"):
        push_busybox(reg, busybox_dir, f"{repo}:{tag}")
    out = json.loads(
        skopeo("list-tags", "--tls-verify=false", f"docker://{reg.host}/{repo}").stdout
    )
    assert out["Repository"] == f"{reg.host}/{repo}"
    assert sorted(out["Tags"]) == ["a", "b", "c-1.0"]
    r = http(reg, "GET", f"/v2/{repo}/tags/list")
    assert r.status == 200 and r.json()["name"] == repo, r
    assert sorted(r.json()["tags"]) == ["a", "b", "c-1.0"], r


def test_skopeo_pull_to_oci_layout(reg: Registry, busybox_dir: Path, tmp_path: Path) -> None:
    img = im.busybox_image()
    ref = push_busybox(reg, busybox_dir, "skopeo/pull-oci:1")
    out = tmp_path / "out"
    skopeo("copy", "--src-tls-verify=false", f"docker://{ref}", f"oci:{out}:pulled")
    index = json.loads((out / "index.json").read_text())
    [desc] = index["manifests"]
    assert desc["digest"] == img.manifest.digest
    assert desc["annotations"]["org.opencontainers.image.ref.name"] == "pulled"
    for b in img.blobs:
        assert (out / "blobs" / "sha256" / im.hexpart(b.digest)).read_bytes() == b.data, b


def test_skopeo_pull_v2s2_to_dir(reg: Registry, busybox_dir: Path, tmp_path: Path) -> None:
    img = im.busybox_image()
    ref = push_busybox(reg, busybox_dir, "skopeo/pull-dir:1", "v2s2")
    served = get_manifest(reg, "skopeo/pull-dir", "1", im.DOCKER_MANIFEST).body
    out = tmp_path / "dir"
    skopeo("copy", "--src-tls-verify=false", f"docker://{ref}", f"dir:{out}")
    assert (out / "manifest.json").read_bytes() == served
    layer = img.layers[0].blob
    assert (out / im.hexpart(layer.digest)).read_bytes() == layer.data


def test_skopeo_copy_between_repositories(reg: Registry, busybox_dir: Path) -> None:
    img = im.busybox_image()
    src = push_busybox(reg, busybox_dir, "skopeo/mount-src:1")
    dest = f"{reg.host}/skopeo/mount-dest:2"
    skopeo(
        "copy",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        f"docker://{src}",
        f"docker://{dest}",
    )
    r = get_manifest(reg, "skopeo/mount-dest", "2", im.OCI_MANIFEST)
    assert r.body == img.manifest.data
    assert_blobs_served(reg, "skopeo/mount-dest", r.json())


def test_skopeo_copy_all_platforms(
    reg: Registry, multi_dir: Path, multiplatform: im.Archive, tmp_path: Path
) -> None:
    dest = f"{reg.host}/skopeo/multi:1"
    skopeo(
        "copy", "--all", "--dest-tls-verify=false", f"oci:{multi_dir}:latest", f"docker://{dest}"
    )
    r = get_manifest(reg, "skopeo/multi", "1", im.OCI_INDEX)
    assert r.headers["content-type"] == im.OCI_INDEX
    assert sha(r.body) == multiplatform.target_digest
    digests = [m["digest"] for m in r.json()["manifests"]]
    assert multiplatform.manifest_digest in digests
    for d in digests:
        get_manifest(reg, "skopeo/multi", d, im.OCI_MANIFEST)
    # A single-platform pull picks the host's manifest out of the index.
    out = tmp_path / "one"
    skopeo("copy", "--src-tls-verify=false", f"docker://{dest}", f"oci:{out}:x")
    [desc] = json.loads((out / "index.json").read_text())["manifests"]
    assert desc["digest"] == multiplatform.manifest_digest


def test_skopeo_delete(reg: Registry, busybox_dir: Path) -> None:
    img = im.busybox_image()
    ref = push_busybox(reg, busybox_dir, "skopeo/delete:1")
    skopeo("delete", "--tls-verify=false", f"docker://{ref}")
    assert_error(
        http(reg, "GET", f"/v2/skopeo/delete/manifests/{img.manifest.digest}"),
        404,
        "MANIFEST_UNKNOWN",
    )
    r = skopeo("inspect", "--tls-verify=false", f"docker://{ref}", ok=False)
    assert r.returncode != 0 and "manifest unknown" in r.stderr.lower(), dm.describe(r)
    tags = http(reg, "GET", "/v2/skopeo/delete/tags/list")
    assert tags.status == 404 or not tags.json().get("tags"), tags


# --- skopeo over TLS and with basic auth --------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_skopeo_tls_with_private_ca(
    kind: str, registry_factory: MakeRegistry, busybox_dir: Path, tmp_path: Path
) -> None:
    reg = registry_factory(kind, tls=True)
    certs = tmp_path / "certs"
    certs.mkdir()
    shutil.copy(reg.ca, certs / "ca.crt")
    img = im.busybox_image()
    ref = f"docker://{reg.host}/tls/busybox:1"
    skopeo("copy", "--dest-cert-dir", certs, f"oci:{busybox_dir}:latest", ref)
    info = json.loads(skopeo("inspect", "--cert-dir", certs, ref).stdout)
    assert info["Digest"] == img.manifest.digest
    # Without the CA the certificate is refused.
    r = skopeo("inspect", ref, ok=False)
    assert r.returncode != 0 and "x509" in r.stderr, dm.describe(r)


@pytest.mark.parametrize("kind", KINDS)
def test_skopeo_basic_auth(kind: str, registry_factory: MakeRegistry, busybox_dir: Path) -> None:
    reg = registry_factory(kind, htpasswd=("alice", "s3cret"))
    img = im.busybox_image()
    ref = f"docker://{reg.host}/auth/busybox:1"
    tls = "--tls-verify=false"
    r = skopeo("copy", "--dest-tls-verify=false", f"oci:{busybox_dir}:latest", ref, ok=False)
    assert r.returncode != 0 and "unauthorized" in r.stderr.lower(), dm.describe(r)
    skopeo(
        "copy", "--dest-tls-verify=false", "--dest-creds", "alice:s3cret",
        f"oci:{busybox_dir}:latest", ref,
    )  # fmt: skip
    info = json.loads(skopeo("inspect", tls, "--creds", "alice:s3cret", ref).stdout)
    assert info["Digest"] == img.manifest.digest
    for creds in ([], ["--creds", "alice:wrong"], ["--creds", "bob:s3cret"]):
        r = skopeo("inspect", tls, *creds, ref, ok=False)
        assert r.returncode != 0 and "unauthorized" in r.stderr.lower(), dm.describe(r)
    r401 = http(reg, "GET", "/v2/auth/busybox/manifests/1")
    assert r401.status == 401 and "basic" in r401.headers["www-authenticate"].lower(), r401


# --- oras-py ------------------------------------------------------------------


ORAS_FILES = {"artifact.txt": b"an oras artifact\n", "data.bin": bytes(range(256)) * 300}


def oras_client(reg: Registry) -> Any:
    import oras.client

    return oras.client.OrasClient(hostname=reg.host, insecure=True)


@pytest.fixture
def oras_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The artifact's files, relative to the working directory (as oras wants them)."""
    monkeypatch.chdir(tmp_path)
    for name, data in ORAS_FILES.items():
        (tmp_path / name).write_bytes(data)
    return list(ORAS_FILES)


@pytest.mark.parametrize("chunked", [False, True], ids=["monolithic", "chunked"])
def test_oras_push_and_pull(
    reg: Registry, oras_files: list[str], tmp_path: Path, chunked: bool
) -> None:
    client = oras_client(reg)
    target = f"{reg.host}/oras/artifact-{'chunked' if chunked else 'mono'}:v1"
    resp = client.push(
        files=oras_files, target=target, do_chunked=chunked, chunk_size=10000, quiet=True
    )
    assert resp.status_code == 201, resp.text
    manifest = client.get_manifest(target)
    assert manifest["config"]["mediaType"] == "application/vnd.unknown.config.v1+json"
    titles = {ly["annotations"]["org.opencontainers.image.title"]: ly for ly in manifest["layers"]}
    assert set(titles) == set(ORAS_FILES)
    for name, data in ORAS_FILES.items():
        assert titles[name]["digest"] == sha(data) and titles[name]["size"] == len(data)
    out = tmp_path / "pulled"
    paths = client.pull(target=target, outdir=str(out))
    assert sorted(Path(p).name for p in paths) == sorted(ORAS_FILES)
    for name, data in ORAS_FILES.items():
        assert (out / name).read_bytes() == data


def test_oras_get_tags_and_delete_tag(reg: Registry, oras_files: list[str]) -> None:
    client = oras_client(reg)
    repo = f"{reg.host}/oras/tags"
    for tag in ("v1", "v2", "v3"):
        client.push(files=oras_files, target=f"{repo}:{tag}", quiet=True)
    assert sorted(client.get_tags(repo)) == ["v1", "v2", "v3"]
    # oras deletes the tag's manifest by digest: all three tags point at it.
    assert client.delete_tag(repo, "v2") is True
    assert client.get_tags(repo) == []
    assert_error(http(reg, "GET", "/v2/oras/tags/manifests/v1"), 404, "MANIFEST_UNKNOWN")


def test_oras_push_with_annotations_and_subject(reg: Registry, oras_files: list[str]) -> None:
    """An artifact that refers to another image (``subject``), with manifest annotations."""
    client = oras_client(reg)
    base = f"{reg.host}/oras/subject:base"
    client.push(files=oras_files[:1], target=base, quiet=True)
    base_manifest = get_manifest(reg, "oras/subject", "base", im.OCI_MANIFEST)
    import oras.oci

    subject = oras.oci.Subject(im.OCI_MANIFEST, sha(base_manifest.body), len(base_manifest.body))
    ref = f"{reg.host}/oras/subject:sig"
    client.push(
        files=oras_files[1:],
        target=ref,
        subject=subject,
        manifest_annotations={"x.seacan": "yes"},
        quiet=True,
    )
    m = get_manifest(reg, "oras/subject", "sig", im.OCI_MANIFEST).json()
    assert m["subject"]["digest"] == sha(base_manifest.body)
    assert m["annotations"]["x.seacan"] == "yes"


# --- python-dxf ---------------------------------------------------------------


def dxf_client(reg: Registry, repo: str) -> Any:
    import dxf

    return dxf.DXF(reg.host, repo, insecure=True)


def dxf_push(d: Any, data: bytes) -> str:
    # A generator: requests streams it with chunked transfer encoding.
    digest: str = d.push_blob(data=(c for c in [data]), digest=sha(data))
    assert digest == sha(data)
    return digest


def test_dxf_push_pull_blob(reg: Registry, tmp_path: Path) -> None:
    data = os.urandom(300_000)
    f = tmp_path / "blob.bin"
    f.write_bytes(data)
    d = dxf_client(reg, "dxf/blobs")
    digest = d.push_blob(str(f))
    assert digest == sha(data)
    assert d.blob_size(digest) == len(data)
    assert b"".join(d.pull_blob(digest)) == data
    # A second push finds the blob there (HEAD) and uploads nothing.
    assert d.push_blob(str(f)) == digest


def test_dxf_alias_lifecycle(reg: Registry, tmp_path: Path) -> None:
    d = dxf_client(reg, "dxf/alias")
    blobs = [os.urandom(1000 + i) for i in range(2)]
    digests = [dxf_push(d, b) for b in blobs]
    assert digests == [sha(b) for b in blobs]
    manifest = d.set_alias("v1", *digests)
    d.set_alias("v2", digests[0])
    assert d.get_alias("v1") == digests
    head = http(reg, "HEAD", "/v2/dxf/alias/manifests/v1", im.DOCKER_MANIFEST)
    assert head.headers.get("docker-content-digest") == sha(manifest.encode()), head
    r = get_manifest(reg, "dxf/alias", "v1", im.DOCKER_MANIFEST)
    assert r.body == manifest.encode()
    assert sorted(d.list_aliases()) == ["v1", "v2"]
    assert d.del_alias("v1") == digests
    assert d.list_aliases() == ["v2"]
    assert_error(http(reg, "GET", "/v2/dxf/alias/manifests/v1"), 404, "MANIFEST_UNKNOWN")


def test_dxf_list_aliases_paginated(reg: Registry) -> None:
    d = dxf_client(reg, "dxf/many")
    digest = dxf_push(d, b"paginated\n")
    tags = sorted(f"t{i:02d}" for i in range(7))
    for t in tags:
        d.set_alias(t, digest)
    # batch_size sends ?n=3 and follows the Link headers, if any.
    listed = list(d.list_aliases(batch_size=3, iterate=True))
    assert sorted(listed) == tags and len(listed) == len(tags)
    if reg.kind == "docker":
        return  # distribution 2.8 ignores n/last on tags/list (added in 3.0)
    # OCI distribution spec 1.1: lexical order, n and last, a Link header to the next page.
    assert listed == tags
    r = http(reg, "GET", "/v2/dxf/many/tags/list?n=3")
    assert r.status == 200 and r.json()["tags"] == tags[:3], r
    link = r.headers.get("link", "")
    assert "/v2/dxf/many/tags/list?" in link and "last=t02" in link and 'rel="next"' in link, r
    r = http(reg, "GET", "/v2/dxf/many/tags/list?n=3&last=t05")
    assert r.json()["tags"] == tags[6:] and "link" not in r.headers, r


def test_dxf_del_blob(reg: Registry) -> None:
    d = dxf_client(reg, "dxf/delblob")
    digest = dxf_push(d, b"to be deleted\n")
    d.del_blob(digest)
    assert_error(http(reg, "GET", f"/v2/dxf/delblob/blobs/{digest}", "*/*"), 404, "BLOB_UNKNOWN")
    import dxf.exceptions
    import requests

    with pytest.raises((requests.HTTPError, dxf.exceptions.DXFError)):
        b"".join(d.pull_blob(digest))


def test_dxf_list_repos(reg: Registry) -> None:
    import dxf

    for repo in ("dxf/repos-a", "dxf/repos-b"):
        d = dxf_client(reg, repo)
        d.set_alias("x", dxf_push(d, repo.encode()))
    base = dxf.DXFBase(reg.host, insecure=True)
    repos = base.list_repos()
    assert {"dxf/repos-a", "dxf/repos-b"} <= set(repos)
    assert repos == sorted(repos)
    assert list(base.list_repos(batch_size=2, iterate=True)) == repos


# --- podman -------------------------------------------------------------------

CONTAINERS_CONF = """\
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
tmp_dir = "{tmp}"
"""


class Podman:
    """podman with private storage and config under ``base``."""

    def __init__(self, base: Path) -> None:
        self.base = base
        (base / "tmp").mkdir(parents=True, exist_ok=True)
        self.conf = base / "containers.conf"
        self.conf.write_text(CONTAINERS_CONF.format(tmp=base / "tmp"))

    def run(self, *args: str | Path, ok: bool = True) -> subprocess.CompletedProcess[str]:
        argv = [
            PODMAN, "--root", str(self.base / "root"), "--runroot", str(self.base / "run"),
            "--storage-driver", "vfs", "--cgroup-manager", "cgroupfs", *map(str, args),
        ]  # fmt: skip
        env = {**dm.env(), "CONTAINERS_CONF": str(self.conf), "TMPDIR": str(self.base / "tmp")}
        r = subprocess.run(
            argv, capture_output=True, text=True, timeout=180, env=env, stdin=subprocess.DEVNULL
        )
        if ok:
            assert r.returncode == 0, dm.describe(r)
        return r

    def reset(self) -> None:
        self.run("system", "reset", "--force", ok=False)
        dm.unmount_under(self.base)
        shutil.rmtree(self.base, ignore_errors=True)


@pytest.fixture
def podman(request: pytest.FixtureRequest) -> Iterator[Podman]:
    # podman refuses a --runroot longer than 50 characters: a short base.
    p = Podman(dm.short_base("podman\0" + request.node.nodeid))
    try:
        yield p
    finally:
        p.reset()


def test_podman_push(reg: Registry, podman: Podman, busybox_oci: im.Archive) -> None:
    podman.run("pull", f"oci-archive:{busybox_oci.path}")
    podman.run("tag", busybox_oci.name, "localhost/bb:src")
    dest = f"{reg.host}/podman/busybox:pushed"
    podman.run("push", "--tls-verify=false", "--format", "oci", "localhost/bb:src", dest)
    m = get_manifest(reg, "podman/busybox", "pushed", im.OCI_MANIFEST).json()
    assert_blobs_served(reg, "podman/busybox", m)
    config = http(reg, "GET", f"/v2/podman/busybox/blobs/{m['config']['digest']}", "*/*").json()
    # Layers may be recompressed; the uncompressed content must be the same.
    assert config["rootfs"]["diff_ids"] == list(busybox_oci.diff_ids)
    assert config["config"]["Env"] == [im.PATH_ENV]


def test_podman_pull_and_run(reg: Registry, podman: Podman, busybox_dir: Path) -> None:
    img = im.busybox_image()
    ref = push_busybox(reg, busybox_dir, "podman/pull:1")
    out = podman.run("pull", "--tls-verify=false", ref).stdout
    image_id = out.strip().splitlines()[-1]
    assert image_id == im.hexpart(img.config.digest)
    [info] = json.loads(podman.run("image", "inspect", ref).stdout)
    assert f"{reg.host}/podman/pull@{img.manifest.digest}" in info["RepoDigests"]
    assert info["RootFS"]["Layers"] == img.diff_ids
    r = podman.run("run", "--rm", "--network", "none", ref, "cat", "/hello.txt")
    assert r.stdout.encode() == im.HELLO


def test_podman_push_then_pull_roundtrip(
    reg: Registry, podman: Podman, busybox_oci: im.Archive, tmp_path: Path
) -> None:
    podman.run("pull", f"oci-archive:{busybox_oci.path}")
    dest = f"{reg.host}/podman/roundtrip:1"
    podman.run("push", "--tls-verify=false", busybox_oci.name, dest)
    digest = sha(get_manifest(reg, "podman/roundtrip", "1").body)
    other = Podman(podman.base.with_name(podman.base.name + "-2"))
    try:
        other.run("pull", "--tls-verify=false", dest)
        [info] = json.loads(other.run("image", "inspect", dest).stdout)
        assert f"{reg.host}/podman/roundtrip@{digest}" in info["RepoDigests"]
        r = other.run("run", "--rm", "--network", "none", dest, "cat", "/hello.txt")
        assert r.stdout.encode() == im.HELLO
    finally:
        other.reset()
