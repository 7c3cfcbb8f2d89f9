"""Attacks through seacand, as a user would mount them: hostile images pulled
from a registry (lying sizes, media types, nesting), hostile build contexts
and base images, hostile volume copy-up, and injection into a container's
network files. Each must fail with a clear error, or stay inside its root,
and leave no image, container or host file behind."""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
import tarfile
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from seacan import errors
from seacan.build import BuildOptions
from seacan.client import Client
from tests.fixtures import daemon as dm
from tests.fixtures import images as im
from tests.fixtures.registry import MakeRegistry, Registry

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def registry(registry_factory_module: MakeRegistry) -> Registry:
    return registry_factory_module("seacan", name="attacks")


@pytest.fixture
def d(seacand_module: dm.Seacand, ns: str) -> Iterator[dm.Seacand]:
    seacand_module.namespace = ns
    yield seacand_module
    for cid in seacand_module.seacan_ok("ps", "-a", "-q").split():
        seacand_module.run_seacan("rm", "-f", "-v", cid)
    names = seacand_module.seacan_ok("images", "ls", "-q").split()
    if names:
        seacand_module.run_seacan("images", "rm", *names)


def fails(d: dm.Seacand, *args: object) -> str:
    r = d.run_seacan(*args)
    assert r.returncode != 0, f"seacan {args} succeeded:\n{r.stdout}"
    assert r.stderr.startswith("seacan: "), r.stderr
    return r.stderr


# -- a registry that serves whatever we push ----------------------------------------


def _req(url: str, data: bytes, method: str, content_type: str) -> None:
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Content-Type", content_type)
    urllib.request.urlopen(req, timeout=30).close()


def push_blob(reg: Registry, repo: str, data: bytes) -> str:
    digest = im.sha256(data)
    url = f"{reg.url}/v2/{repo}/blobs/uploads/?digest={digest}"
    _req(url, data, "POST", "application/octet-stream")
    return digest


def push_manifest(reg: Registry, repo: str, ref: str, blob: im.Blob) -> None:
    _req(f"{reg.url}/v2/{repo}/manifests/{ref}", blob.data, "PUT", blob.media_type)


def manifest(config: im.Blob, layers: list[dict[str, object]]) -> im.Blob:
    obj = {
        "schemaVersion": 2,
        "mediaType": im.OCI_MANIFEST,
        "config": config.descriptor(),
        "layers": layers,
    }
    return im.Blob.of(im.OCI_MANIFEST, im.canonical_json(obj))


def hostile_repo(reg: Registry, ns: str, lie: str) -> str:
    """Push a one-layer image whose manifest lies as ``lie`` says; its reference."""
    repo = "attacks/" + ns.lower().replace("_", "-")[:40] + "/" + lie
    image = im.hello_image()
    layer = image.layers[0].blob
    for b in image.blobs[1:]:
        push_blob(reg, repo, b.data)
    desc = layer.descriptor()
    config = image.config
    if lie == "huge-size":
        desc["size"] = 1 << 62
    elif lie == "small-size":
        desc["size"] = layer.size // 2
    elif lie == "layer-is-config":
        desc["mediaType"] = im.OCI_CONFIG
    elif lie == "config-is-layer":
        config = config.retyped(im.OCI_LAYER_GZIP)
    top = manifest(config, [desc])
    push_blob(reg, repo, top.data)
    push_manifest(reg, repo, "latest", top)
    if lie == "deep-index":
        child = top
        for i in range(8):
            child = im.make_index([child.descriptor(platform=image.platform)])
            push_manifest(reg, repo, f"level{i}", child)
        push_manifest(reg, repo, "latest", child)
    return f"{reg.host}/{repo}:latest"


@pytest.mark.parametrize(
    ("lie", "words"),
    [
        ("huge-size", ("exceed", "maximum blob size")),
        ("small-size", ("more than the", "bytes expected")),
        ("layer-is-config", ("cannot be unpacked",)),
        ("config-is-layer", ("is not an image config",)),
        ("deep-index", ("nested too deep",)),
    ],
)
def test_pull_of_a_lying_image_fails_and_stores_no_image(
    d: dm.Seacand, registry: Registry, ns: str, lie: str, words: tuple[str, ...]
) -> None:
    ref = hostile_repo(registry, ns, lie)
    err = fails(d, "pull", ref)
    for w in words:
        assert w in err, err
    assert ref not in d.images()
    assert d.seacan_ok("images", "ls", "-q") == ""


# -- build: a hostile context, a hostile base image, a hostile ADD ------------------


def _ctx_tar(entries: list[im.Entry]) -> bytes:
    return im.tar_bytes([im.file("Dockerfile", b"FROM scratch\nCOPY . /\n"), *entries])


async def _build(address: Path, ns: str, tar: bytes) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield tar

    client = await Client.connect(str(address), ns)
    try:
        async for _ in client.build.build(BuildOptions(tags=("evil:1",)), chunks()):
            pass
    finally:
        await client.close()


@pytest.mark.parametrize(
    ("kind", "entries", "words"),
    [
        ("dotdot", [im.file(im.CLIMB + "SENTINEL", b"x")], ("points outside",)),
        ("absolute", [im.file("/SENTINEL", b"x")], ("points outside",)),
        ("hardlink-out", [im.hardlink("h", im.CLIMB + "etc/passwd")], ("'h'",)),
        ("device", [im.chardev("null", 1, 3)], ("device node",)),
    ],
)
def test_hostile_context_tar_is_refused(
    d: dm.Seacand, kind: str, entries: list[im.Entry], words: tuple[str, ...]
) -> None:
    sentinel = (Path("/tmp") / f"seacan-attack-{os.getpid()}-{kind}").as_posix().lstrip("/")
    fixed = [
        im.Entry(e.name.replace("SENTINEL", sentinel), e.type, e.data, e.mode, e.linkname,
                 e.devmajor, e.devminor)
        for e in entries
    ]  # fmt: skip
    with pytest.raises(errors.InvalidArgument) as ei:
        asyncio.run(_build(d.address, d.namespace, _ctx_tar(fixed)))
    msg = str(ei.value)
    assert msg.startswith("build context: "), msg
    for w in words:
        assert w in msg, msg
    assert "docker.io/library/evil:1" not in d.images()
    assert not Path("/", sentinel).exists()
    assert list((d.root / "build" / "contexts").iterdir()) == []


def test_sparse_context_bomb_is_refused(d: dm.Seacand, tmp_path: Path) -> None:
    """A GNU sparse entry of 5 GiB is a few KiB of tar: refused past the 4 GiB limit."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "Dockerfile").write_text("FROM scratch\nCOPY . /\n")
    with open(src / "zeros", "wb") as f:
        f.truncate(5 << 30)
    tar = tmp_path / "ctx.tar"
    subprocess.run(["tar", "--sparse", "-cf", tar, "-C", src, "."], check=True)
    assert tar.stat().st_size < 1 << 20
    with pytest.raises(errors.ResourceExhausted, match="expands past"):
        asyncio.run(_build(d.address, d.namespace, tar.read_bytes()))
    assert list((d.root / "build" / "contexts").iterdir()) == []


BASE = "docker.io/library/hostile-base:latest"


def _import_hostile_base(d: dm.Seacand, tmp_path: Path) -> None:
    """busybox plus /app -> /etc, /up -> ../../../.. and /data -> ../../../../etc."""
    extra = im.make_layer(
        [
            im.symlink("app", "/etc"),
            im.symlink("up", "../../../../../../.."),
            im.symlink("data", "../../../../../../../etc"),
        ]
    )
    image = im.make_image([im.busybox_layer(), extra])
    path = tmp_path / "hostile.tar"
    im.write_oci(path, image, BASE)
    d.seacan_ok("images", "import", path)


def test_copy_into_a_hostile_base_image_stays_in_its_rootfs(d: dm.Seacand, tmp_path: Path) -> None:
    _import_hostile_base(d, tmp_path)
    marker = f"seacan-attack-{os.getpid()}"
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "f").write_text("inside\n")
    (ctx / "Dockerfile").write_text(
        f"FROM {BASE}\nCOPY f /app/{marker}\nCOPY f /up/{marker}\nCOPY f /up/../../tmp/{marker}\n"
    )
    d.seacan_ok("build", "-t", "copied:1", ctx)
    assert not Path("/etc", marker).exists() and not Path("/", marker).exists()
    assert not Path("/tmp", marker).exists()
    r = d.run_seacan(
        "run", "--rm", "--network", "none", "copied:1",
        "cat", f"/etc/{marker}", f"/{marker}", f"/tmp/{marker}",
    )  # fmt: skip
    assert r.stdout == "inside\n" * 3, r.stderr


def test_add_of_a_hostile_archive_fails_and_tags_nothing(d: dm.Seacand, tmp_path: Path) -> None:
    marker = Path("/tmp") / f"seacan-attack-add-{os.getpid()}"
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    buf = io.BytesIO()
    im.write_tar(buf, [im.file("ok", b"ok"), im.file(im.CLIMB + marker.as_posix(), b"x")])
    (ctx / "evil.tar").write_bytes(buf.getvalue())
    (ctx / "Dockerfile").write_text("FROM scratch\nADD evil.tar /opt/\n")
    err = fails(d, "build", "-t", "added:1", ctx)
    assert "ADD evil.tar" in err and "points outside" in err, err
    assert "docker.io/library/added:1" not in d.images()
    assert not marker.exists()


# -- volumes: copy-up through a symlinked mount path ---------------------------------


def test_volume_copy_up_through_a_symlink_copies_the_image_not_the_host(
    d: dm.Seacand, tmp_path: Path
) -> None:
    _import_hostile_base(d, tmp_path)
    vol = "attack-vol"
    r = d.run_seacan("run", "--rm", "--network", "none", "-v", f"{vol}:/data", BASE,
                     "cat", "/data/passwd")  # fmt: skip
    assert r.returncode == 0, r.stderr
    image_passwd = r.stdout
    assert image_passwd != Path("/etc/passwd").read_text()
    mountpoint = json.loads(d.seacan_ok("volume", "inspect", vol))[0]["Mountpoint"]
    data = Path(mountpoint)
    assert (data / "passwd").read_text() == image_passwd
    assert (
        not (data / "shadow").exists()
        or (data / "shadow").read_text() != Path("/etc/shadow").read_text()
    )
    d.seacan_ok("volume", "rm", vol)


# -- networking: injection into hosts, resolv.conf, hostname -------------------------


@pytest.mark.parametrize(
    "flags",
    [
        ("--add-host", "evil\n6.6.6.6 bank.example:1.2.3.4"),
        ("--hostname", "web\n6.6.6.6 bank.example"),
        ("--dns", "1.1.1.1\nnameserver 6.6.6.6"),
        ("--dns-search", "corp\nnameserver 6.6.6.6"),
        ("--dns-option", "ndots:1\nnameserver 6.6.6.6"),
        ("--network-alias", "www\n6.6.6.6 bank.example"),
    ],
    ids=["add-host", "hostname", "dns", "dns-search", "dns-option", "alias"],
)
def test_newline_injection_into_network_files_is_refused(
    d: dm.Seacand, tmp_path: Path, flags: tuple[str, str]
) -> None:
    archive = tmp_path / "busybox.tar"
    im.write_busybox_oci(archive)
    d.seacan_ok("images", "import", archive)
    net = "attacknet"
    d.run_seacan("network", "create", net)
    try:
        err = fails(d, "run", "--rm", "--network", net, *flags, "busybox", "cat", "/etc/hosts")
        assert "invalid" in err, err
        assert d.seacan_ok("ps", "-a", "-q") == ""
    finally:
        d.run_seacan("network", "rm", net)


def test_a_context_tar_cannot_be_a_symlink_to_the_host(d: dm.Seacand, tmp_path: Path) -> None:
    """COPY of a context symlink that points out of the context is refused, naming it."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in (("Dockerfile", b"FROM scratch\nCOPY pw /pw\n"),):
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
        ti = tarfile.TarInfo("pw")
        ti.type, ti.linkname = tarfile.SYMTYPE, "../../../../../../etc/passwd"
        tf.addfile(ti)
    with pytest.raises(errors.InvalidArgument, match="pw"):
        asyncio.run(_build(d.address, d.namespace, buf.getvalue()))
