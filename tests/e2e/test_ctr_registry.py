"""The real ``ctr images push/pull --plain-http`` through seacand, against both registries.

ctr (Debian's containerd 1.6) does the HTTP itself and keeps everything it
fetches or pushes in seacand's content, images, snapshots, diff and leases
services. Each test imports busybox into one namespace, pushes it to a
loopback registry (Debian's docker-registry and seacan's own), pulls it back
in a second namespace, checks the digests on both sides and runs the pulled
image with ``ctr run`` and ``seacan run``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import tarfile
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures import daemon as dm
from tests.fixtures import images as im
from tests.fixtures.registry import KINDS, MakeRegistry, Registry

pytestmark = pytest.mark.e2e

SKOPEO = shutil.which("skopeo") or "/usr/bin/skopeo"


@pytest.fixture(scope="module", params=KINDS)
def reg(request: pytest.FixtureRequest, registry_factory_module: MakeRegistry) -> Registry:
    return registry_factory_module(str(request.param))


def _clean(d: dm.Daemon, ns: str) -> None:
    for row in dm.table(d.run_ctr("tasks", "ls", ns=ns).stdout):
        d.run_ctr("tasks", "kill", "-s", "SIGKILL", row["TASK"], ns=ns)
    for row in dm.table(d.run_ctr("containers", "ls", ns=ns).stdout):
        d.run_ctr("tasks", "rm", "-f", row["CONTAINER"], ns=ns)
        d.run_ctr("containers", "rm", row["CONTAINER"], ns=ns)
    # Images and (through garbage collection) their blobs: later pulls download again.
    refs = d.run_ctr("images", "ls", "-q", ns=ns).stdout.split()
    if refs:
        d.run_ctr("images", "rm", "--sync", *refs, ns=ns)


@pytest.fixture
def pull_ns(seacand_module: dm.Seacand, ns: str) -> Iterator[str]:
    """A second namespace (to pull into); containers and cgroups removed after."""
    name = ns + "-pull"
    dm.remove_cgroups(name)
    try:
        yield name
    finally:
        _clean(seacand_module, name)
        _clean(seacand_module, ns)
        with contextlib.suppress(OSError):
            (dm.RUNC_SHIM_ROOT / name).rmdir()
        busy = dm.remove_cgroups(name)
        assert not busy, f"cgroups still in use after the test: {busy}"


@pytest.fixture
def fifo_env(seacand_module: dm.Seacand, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``seacan run`` keeps FIFOs and logs in this test's directories."""
    monkeypatch.setenv("SEACAN_FIFO_DIR", str(seacand_module.base / "fifo"))
    monkeypatch.setenv("SEACAN_LOG_DIR", str(tmp_path / "logs"))


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def registry_manifest(reg: Registry, repo: str, ref: str, accept: str) -> bytes:
    req = urllib.request.Request(f"{reg.url}/v2/{repo}/manifests/{ref}", headers={"Accept": accept})
    with urllib.request.urlopen(req, timeout=30) as r:
        body = bytes(r.read())
        assert r.headers["Docker-Content-Digest"] == sha(body)
        return body


def registry_blob(reg: Registry, repo: str, digest: str) -> bytes:
    with urllib.request.urlopen(f"{reg.url}/v2/{repo}/blobs/{digest}", timeout=30) as r:
        return bytes(r.read())


def assert_pulled(d: dm.Seacand, ns: str, ref: str, a: im.Archive, target: str) -> None:
    """``ctr images ls/check``, ``content ls`` and ``snapshots ls`` after a pull."""
    row = d.images(ns)[ref]
    assert row["DIGEST"] == target, row
    assert str(im.host_platform()) in row["PLATFORMS"].split(","), row
    check = d.image_check(ns)[ref]
    assert check["STATUS"].startswith("complete") and check["UNPACKED"] == "true", check
    blobs = {a.manifest_digest, a.config_digest, *a.layer_digests}
    missing = blobs - d.content(ns)
    assert not missing, f"blobs missing after pull: {sorted(missing)}"
    snaps = d.snapshots(ns)
    for chain in a.chain_ids:
        assert chain in snaps and snaps[chain]["KIND"] == "Committed", (chain, snaps)
    assert d.bad_blobs() == []


def test_ctr_push_then_pull_and_run(
    seacand_module: dm.Seacand,
    reg: Registry,
    ns: str,
    pull_ns: str,
    busybox_oci: im.Archive,
    fifo_env: None,
) -> None:
    d, a = seacand_module, busybox_oci
    ref = f"{reg.host}/ctr/busybox:1"
    d.ctr_ok("images", "import", a.path, ns=ns)
    out = d.ctr_ok("images", "push", "--plain-http", ref, a.name, ns=ns)
    assert f"manifest-latest@{a.manifest_digest}: done" in out, out

    # What the registry holds now is exactly the imported image.
    manifest = registry_manifest(reg, "ctr/busybox", "1", im.OCI_MANIFEST)
    assert manifest == im.busybox_image().manifest.data
    for digest in (a.config_digest, *a.layer_digests):
        assert sha(registry_blob(reg, "ctr/busybox", digest)) == digest

    # Forget the image (and, through garbage collection, its blobs), so that
    # the pull really downloads every byte.
    d.ctr_ok("images", "rm", "--sync", a.name, ns=ns)
    assert not set(a.blobs) & d.content(ns)
    on_disk = [x for x in a.blobs if (d.blobs / im.hexpart(x)).exists()]
    assert not on_disk, f"blobs still in the content store: {on_disk}"
    out = d.ctr_ok("images", "pull", "--plain-http", ref, ns=pull_ns)
    assert f"unpacking {im.host_platform()} {a.manifest_digest}..." in out, out
    assert_pulled(d, pull_ns, ref, a, a.manifest_digest)

    r = d.run_ctr("run", "--rm", ref, "pulled1", "cat", "/hello.txt", ns=pull_ns)
    assert r.returncode == 0 and r.stdout.encode() == im.HELLO, dm.describe(r)
    r = d.run_seacan("run", "--rm", ref, "sh", "-c", "cat /hello.txt; id -u", ns=pull_ns)
    assert r.returncode == 0 and r.stdout.encode() == im.HELLO + b"0\n", dm.describe(r)


def test_ctr_push_same_image_to_second_tag(
    seacand_module: dm.Seacand, reg: Registry, ns: str, hello: im.Archive
) -> None:
    """A second push of the same image to another tag: both tags name the same manifest."""
    d = seacand_module
    d.ctr_ok("images", "import", hello.path, ns=ns)
    d.ctr_ok("images", "push", "--plain-http", f"{reg.host}/ctr/hello:a", hello.name, ns=ns)
    out = d.ctr_ok("images", "push", "--plain-http", f"{reg.host}/ctr/hello:b", hello.name, ns=ns)
    assert f"manifest-latest@{hello.manifest_digest}: done" in out, out
    for tag in ("a", "b"):
        assert (
            sha(registry_manifest(reg, "ctr/hello", tag, im.OCI_MANIFEST)) == hello.manifest_digest
        )


def test_ctr_pull_multiplatform_index(
    seacand_module: dm.Seacand,
    reg: Registry,
    ns: str,
    pull_ns: str,
    multiplatform: im.Archive,
    tmp_path: Path,
) -> None:
    """An index pushed by skopeo: ctr pulls the index and unpacks the host's manifest only."""
    layout = tmp_path / "layout"
    with tarfile.open(multiplatform.path) as t:
        t.extractall(layout, filter="data")
    ref = f"{reg.host}/ctr/multi:1"
    r = dm.run([
        SKOPEO, "--insecure-policy", "copy", "--all", "--dest-tls-verify=false",
        f"oci:{layout}:latest", f"docker://{ref}",
    ])  # fmt: skip
    assert r.returncode == 0, dm.describe(r)
    d = seacand_module
    d.ctr_ok("images", "pull", "--plain-http", ref, ns=pull_ns)
    assert_pulled(d, pull_ns, ref, multiplatform, multiplatform.target_digest)
    assert d.images(pull_ns)[ref]["TYPE"] == im.OCI_INDEX
    snaps = d.snapshots(pull_ns)
    assert not set(multiplatform.other_chain_ids) & set(snaps), snaps
    r = d.run_ctr("run", "--rm", ref, "multi1", "cat", "/platform.txt", ns=pull_ns)
    assert r.returncode == 0 and r.stdout == f"{im.host_platform()}\n", dm.describe(r)


def test_ctr_pull_docker_v2s2_multilayer(
    seacand_module: dm.Seacand,
    reg: Registry,
    ns: str,
    pull_ns: str,
    multilayer: im.Archive,
    tmp_path: Path,
) -> None:
    """Docker media types (skopeo --format v2s2), three layers with whiteouts."""
    layout = tmp_path / "layout"
    with tarfile.open(multilayer.path) as t:
        t.extractall(layout, filter="data")
    ref = f"{reg.host}/ctr/layers:v2s2"
    r = dm.run([
        SKOPEO, "--insecure-policy", "copy", "--format", "v2s2", "--dest-tls-verify=false",
        f"oci:{layout}:latest", f"docker://{ref}",
    ])  # fmt: skip
    assert r.returncode == 0, dm.describe(r)
    manifest = registry_manifest(reg, "ctr/layers", "v2s2", im.DOCKER_MANIFEST)
    assert json.loads(manifest)["mediaType"] == im.DOCKER_MANIFEST
    d = seacand_module
    d.ctr_ok("images", "pull", "--plain-http", ref, ns=pull_ns)
    row = d.images(pull_ns)[ref]
    assert row["DIGEST"] == sha(manifest) and row["TYPE"] == im.DOCKER_MANIFEST, row
    assert d.image_check(pull_ns)[ref]["UNPACKED"] == "true"
    snaps = d.snapshots(pull_ns)
    assert all(c in snaps for c in multilayer.chain_ids), snaps
    with d.mounted(ref, tmp_path / "mnt", ns=pull_ns) as root:
        assert im.check_root(root, multilayer) == []
