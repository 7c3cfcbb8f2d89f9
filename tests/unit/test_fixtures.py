"""The test fixtures themselves: archives are valid, deterministic, and bad where meant to be."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
import tarfile
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures import daemon as dm
from tests.fixtures import images as im

pytestmark = pytest.mark.unit


def members(path: Path) -> dict[str, tuple[tarfile.TarInfo, bytes]]:
    out = {}
    with tarfile.open(path, "r:") as tf:
        for m in tf.getmembers():
            f = tf.extractfile(m) if m.isfile() else None
            out[m.name] = (m, f.read() if f else b"")
    return out


def layer_members(blob: bytes) -> list[tarfile.TarInfo]:
    raw = gzip.decompress(blob) if blob[:2] == b"\x1f\x8b" else blob
    with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as tf:
        return tf.getmembers()


def oci_blobs(path: Path) -> dict[str, bytes]:
    return {
        "sha256:" + name.rsplit("/", 1)[1]: data
        for name, (m, data) in members(path).items()
        if name.startswith("blobs/sha256/") and m.isfile()
    }


def check_oci_image(path: Path, manifest_digest: str) -> dict[str, Any]:
    blobs = oci_blobs(path)
    for digest, data in blobs.items():
        assert im.sha256(data) == digest, f"blob {digest} does not hash to its name"
    manifest = json.loads(blobs[manifest_digest])
    config = json.loads(blobs[manifest["config"]["digest"]])
    assert len(blobs[manifest["config"]["digest"]]) == manifest["config"]["size"]
    diff_ids = []
    for layer in manifest["layers"]:
        data = blobs[layer["digest"]]
        assert len(data) == layer["size"]
        assert layer["mediaType"] == im.OCI_LAYER_GZIP
        assert data[4:8] == b"\0\0\0\0", "gzip mtime must be 0"
        diff_ids.append(im.sha256(gzip.decompress(data)))
    assert config["rootfs"]["diff_ids"] == diff_ids
    out: dict[str, Any] = config
    return out


def test_busybox_oci_archive_is_valid(tmp_path: Path) -> None:
    a = im.write_busybox_oci(tmp_path / "bb.tar")
    ms = members(a.path)
    assert json.loads(ms["oci-layout"][1]) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads(ms["index.json"][1])
    (desc,) = index["manifests"]
    assert desc["digest"] == a.target_digest == a.manifest_digest
    assert desc["mediaType"] == im.OCI_MANIFEST
    assert desc["annotations"] == {
        "io.containerd.image.name": "docker.io/library/busybox:latest",
        "org.opencontainers.image.ref.name": "latest",
    }
    config = check_oci_image(a.path, a.manifest_digest)
    assert (config["os"], config["architecture"]) == ("linux", im.host_platform().architecture)
    assert a.chain_ids == (a.diff_ids[0],)

    (layer,) = [d for d in a.layer_digests]
    entries = {m.name: m for m in layer_members(oci_blobs(a.path)[layer])}
    assert entries["bin/busybox"].size == im.BUSYBOX.stat().st_size
    assert entries["bin/sh"].issym() and entries["bin/sh"].linkname == "busybox"
    assert set(im.busybox_applets()) <= {
        n.split("/", 1)[1] for n in entries if n.startswith("bin/")
    }
    assert all(m.uid == 0 and m.gid == 0 and m.mtime == im.MTIME for m in entries.values())
    names = [m.name for m in layer_members(oci_blobs(a.path)[layer])]
    assert names == sorted(names)


def test_archives_are_deterministic(tmp_path: Path) -> None:
    for write in (im.write_busybox_oci, im.write_busybox_docker, im.write_multiplatform,
                  im.write_multilayer, im.write_hello):  # fmt: skip
        one = write(tmp_path / "one.tar")
        two = write(tmp_path / "two.tar")
        assert one.path.read_bytes() == two.path.read_bytes(), write.__name__
        assert one.target_digest == two.target_digest


def test_docker_archive_is_docker_save_shaped(tmp_path: Path) -> None:
    a = im.write_busybox_docker(tmp_path / "d.tar")
    ms = members(a.path)
    (entry,) = json.loads(ms["manifest.json"][1])
    assert entry["RepoTags"] == ["busybox:latest"]
    config = ms[entry["Config"]][1]
    assert im.sha256(config) == a.config_digest
    (layer_path,) = entry["Layers"]
    assert re.fullmatch(r"[0-9a-f]{64}/layer\.tar", layer_path)
    assert im.sha256(ms[layer_path][1]) == a.diff_ids[0] == a.layer_digests[0]
    assert json.loads(config)["rootfs"]["diff_ids"] == list(a.diff_ids)
    assert a.target_media_type == im.DOCKER_MANIFEST


def test_multiplatform_index_has_host_and_other(tmp_path: Path) -> None:
    a = im.write_multiplatform(tmp_path / "m.tar")
    blobs = oci_blobs(a.path)
    index = json.loads(blobs[a.target_digest])
    assert index["mediaType"] == im.OCI_INDEX
    platforms = [m["platform"] for m in index["manifests"]]
    assert platforms == [im.host_platform().spec(), im.other_platform().spec()]
    for m in index["manifests"]:
        check_oci_image(a.path, m["digest"])
    assert set(a.other_blobs) <= set(blobs), "the other platform's blobs must be present"
    assert not set(a.other_chain_ids) & set(a.chain_ids)


def test_multilayer_has_whiteouts_and_opaque_dir(tmp_path: Path) -> None:
    a = im.write_multilayer(tmp_path / "l.tar")
    blobs = oci_blobs(a.path)
    names = [{m.name for m in layer_members(blobs[d])} for d in a.layer_digests]
    assert "a/.wh.gone.txt" in names[1] and "b/.wh..wh..opq" in names[1] and "c/.wh.dir" in names[1]
    assert len(a.chain_ids) == 3
    assert a.chain_ids[1] == im.sha256(f"{a.chain_ids[0]} {a.diff_ids[1]}".encode())


def test_bad_archives_are_bad_as_described(tmp_path: Path) -> None:
    sentinel = tmp_path / "sentinel"
    bad = {k: im.write_bad(tmp_path / f"{i}.tar", k, sentinel) for i, k in enumerate(im.BAD_KINDS)}

    corrupt = bad["corrupt"].path.read_bytes()
    good = members(bad["missing-blob"].path)  # same layout, intact
    assert len(corrupt) % 512 == 0
    with tarfile.open(bad["corrupt"].path, "r:") as tf:
        names = tf.getnames()
    # Python's lenient reader takes the garbled header for the end of the archive.
    assert "index.json" in good and "index.json" not in names and "oci-layout" not in names
    with pytest.raises((tarfile.ReadError, EOFError)), tarfile.open(bad["truncated"].path) as tf:
        for m in tf.getmembers():
            f = tf.extractfile(m)
            if f:
                f.read()

    mismatch = bad["digest-mismatch"]
    data = oci_blobs(mismatch.path)[mismatch.layer_digest]
    assert im.sha256(data) != mismatch.layer_digest

    assert bad["missing-blob"].layer_digest not in oci_blobs(bad["missing-blob"].path)

    def layer_of(kind: str) -> dict[str, tarfile.TarInfo]:
        b = bad[kind]
        return {m.name: m for m in layer_members(oci_blobs(b.path)[b.layer_digest])}

    out = sentinel.as_posix().lstrip("/")
    assert im.CLIMB + out + "/dotdot.txt" in layer_of("dotdot")
    assert "/" + out + "/absolute.txt" in layer_of("absolute")
    sym = layer_of("symlink-escape")
    assert sym["escape-link"].issym() and "escape-link/pwned.txt" in sym
    assert layer_of("hardlink-escape")["escape-hard"].linkname == im.CLIMB + out + "/victim.txt"
    assert layer_of("hardlink-absolute")["escape-hard-abs"].linkname == "/" + out + "/victim.txt"
    assert layer_of("device")["dev/evil-null"].ischr()
    bomb = bad["bomb"]
    blob = oci_blobs(bomb.path)[bomb.layer_digest]
    assert len(blob) < 64 << 10 and len(gzip.decompress(blob)) > im.BOMB_BYTES
    many = bad["bomb-many"]
    blob = oci_blobs(many.path)[many.layer_digest]
    sizes = [m.size for m in layer_members(blob)]
    assert len(blob) < 64 << 10 and max(sizes) <= im.BOMB_BYTES // 20 < sum(sizes)
    assert all(b.name == im.SUSPECT_NAME for b in bad.values())


def test_generated_image_is_cached(tmp_path: Path) -> None:
    spec = im.GenSpec(layers=2, small_files=30, big_files=1, big_size=1 << 16)
    a = im.write_generated(tmp_path / "g.tar", "docker.io/library/g:latest", spec)
    mtime = a.path.stat().st_mtime_ns
    b = im.write_generated(tmp_path / "g.tar", "docker.io/library/g:latest", spec)
    assert a == b and a.path.stat().st_mtime_ns == mtime
    check_oci_image(a.path, a.manifest_digest)
    assert "layer0/d00/f00000.txt" in a.absent and a.files["shared.txt"]


def test_human_size_is_ctr_progress_bytes() -> None:
    assert im.human_size(906) == "906.0 B"
    assert im.human_size(1023) == "1023.0 B"
    assert im.human_size(1024) == "1.0 KiB"
    assert im.human_size(1536) == "1.5 KiB"
    assert im.human_size(5 << 30) == "5.0 GiB"


def test_ctr_tables_parse() -> None:
    spaces = (
        "KEY      PARENT   KIND      \nsha256:a          Committed \nsha256:b sha256:a Committed \n"
    )
    assert dm.table(spaces) == [
        {"KEY": "sha256:a", "PARENT": "", "KIND": "Committed"},
        {"KEY": "sha256:b", "PARENT": "sha256:a", "KIND": "Committed"},
    ]
    tabs = "DIGEST\t\tSIZE\tAGE\t\tLABELS\nsha256:x\t1.0MB\t2 minutes ago\tk=v\n"
    assert dm.table(tabs) == [
        {"DIGEST": "sha256:x", "SIZE": "1.0MB", "AGE": "2 minutes ago", "LABELS": "k=v"}
    ]


def test_namespaces_are_identifiers() -> None:
    ident = re.compile(r"[A-Za-z0-9]+([._-][A-Za-z0-9]+)*")
    for key in ["test_x[ctr-dotdot]", "a" * 200, "::", "tests/e2e/test_ctr.py::test_version"]:
        ns = dm.namespace_for(key)
        assert ident.fullmatch(ns) and len(ns) <= 76, ns
    assert len(str(dm.short_base("k") / "state" / "sockets" / "snapshots.sock")) < 100


def test_mountinfo_unescape() -> None:
    assert dm._unescape(r"/tmp/a\040b") == "/tmp/a b"
    digest = hashlib.sha256(b"").hexdigest()
    assert dm._unescape(digest) == digest
