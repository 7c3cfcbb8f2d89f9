"""The real ``ctr`` (Debian's containerd 1.6) and the ``seacan`` CLI against seacand.

One daemon per module; every test works in a namespace of its own. The
ctr-only tests also run against the real containerd with
``SEACAN_E2E_DAEMON=containerd`` (that is how they were checked).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.fixtures import daemon as dm
from tests.fixtures import images as im

pytestmark = pytest.mark.e2e

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def assert_imported(d: dm.Daemon, ns: str, a: im.Archive) -> None:
    """What a user checks after an import: ls, check, content ls, snapshots ls."""
    images = d.images(ns)
    assert a.name in images, f"{a.name} not in ctr images ls: {sorted(images)}"
    row = images[a.name]
    assert row["DIGEST"] == a.target_digest
    assert row["TYPE"] == a.target_media_type
    assert row["SIZE"] == a.ls_size_text
    assert str(im.host_platform()) in row["PLATFORMS"].split(",")

    check = d.image_check(ns)[a.name]
    assert check["STATUS"].startswith("complete"), check
    assert check["UNPACKED"] == "true", check

    content = d.content(ns)
    missing = set(a.blobs) - content
    assert not missing, f"blobs missing from ctr content ls: {sorted(missing)}"

    snaps = d.snapshots(ns)
    parent = ""
    for chain in a.chain_ids:
        assert chain in snaps, f"snapshot {chain} not in ctr snapshots ls: {sorted(snaps)}"
        assert snaps[chain]["KIND"] == "Committed"
        assert snaps[chain]["PARENT"] == parent
        parent = chain


# --- ctr ----------------------------------------------------------------------


def test_version(daemon: dm.Daemon) -> None:
    out = daemon.ctr_ok("version")
    assert "Server:" in out, out
    server = out.split("Server:", 1)[1]
    version = re.search(r"^\s*Version:\s*(\S+)", server, re.MULTILINE)
    assert version, f"no server version in:\n{out}"
    uuid = re.search(r"^\s*UUID:\s*(\S+)", server, re.MULTILINE)
    assert uuid and UUID.fullmatch(uuid.group(1)), f"no server UUID in:\n{out}"


def test_namespaces_ls(daemon: dm.Daemon, ns: str, hello: im.Archive) -> None:
    daemon.ctr_ok("images", "import", hello.path, ns=ns)  # creates ns implicitly
    explicit = ns + "-x"
    daemon.ctr_ok("namespaces", "create", explicit, "seacan.test/a=b")
    rows = {r["NAME"]: r for r in dm.table(daemon.ctr_ok("namespaces", "ls"))}
    assert ns in rows and explicit in rows, rows
    assert rows[explicit]["LABELS"] == "seacan.test/a=b"
    assert {ns, explicit} <= set(daemon.ctr_ok("namespaces", "ls", "-q").split())
    daemon.ctr_ok("namespaces", "rm", explicit)
    assert explicit not in daemon.ctr_ok("namespaces", "ls", "-q").split()


def test_import_oci_archive(daemon: dm.Daemon, ns: str, busybox_oci: im.Archive) -> None:
    out = daemon.ctr_ok("images", "import", busybox_oci.path, ns=ns)
    assert f"unpacking {busybox_oci.name} ({busybox_oci.target_digest})...done" in out
    assert_imported(daemon, ns, busybox_oci)


def test_import_docker_archive(daemon: dm.Daemon, ns: str, busybox_docker: im.Archive) -> None:
    daemon.ctr_ok("images", "import", busybox_docker.path, ns=ns)
    # ctr writes the manifest for a docker archive itself; the record predicts its digest.
    assert_imported(daemon, ns, busybox_docker)


@pytest.mark.parametrize("fmt", ["oci", "docker"])
def test_export_reimport_gives_identical_digests(
    daemon: dm.Daemon,
    ns: str,
    fmt: str,
    busybox_oci: im.Archive,
    busybox_docker: im.Archive,
    tmp_path: Path,
) -> None:
    a = busybox_oci if fmt == "oci" else busybox_docker
    daemon.ctr_ok("images", "import", a.path, ns=ns)
    out = tmp_path / "export.tar"
    daemon.ctr_ok("images", "export", out, a.name, ns=ns)
    fresh = ns + "-re"
    daemon.ctr_ok("images", "import", out, ns=fresh)
    before, after = daemon.images(ns)[a.name], daemon.images(fresh)[a.name]
    assert after["DIGEST"] == before["DIGEST"] == a.target_digest
    assert after["SIZE"] == before["SIZE"]
    assert set(a.blobs) <= daemon.content(fresh)
    assert daemon.image_check(fresh)[a.name]["UNPACKED"] == "true"


def test_images_rm(daemon: dm.Daemon, ns: str, hello: im.Archive) -> None:
    daemon.ctr_ok("images", "import", hello.path, ns=ns)
    out = daemon.ctr_ok("images", "rm", hello.name, ns=ns)
    assert hello.name in out
    assert hello.name not in daemon.ctr_ok("images", "ls", "-q", ns=ns).split()
    # A second rm: the daemon answers NOT_FOUND, which ctr reports as a warning.
    r = daemon.run_ctr("images", "rm", hello.name, ns=ns)
    assert r.returncode == 0 and "image not found" in r.stderr, dm.describe(r)
    assert hello.name not in r.stdout


def test_images_rm_sync_collects_blobs_and_snapshots(
    daemon: dm.Daemon, ns: str, busybox_oci: im.Archive
) -> None:
    daemon.ctr_ok("images", "import", busybox_oci.path, ns=ns)
    assert set(busybox_oci.blobs) <= daemon.content(ns)
    daemon.ctr_ok("images", "rm", "--sync", busybox_oci.name, ns=ns)
    assert busybox_oci.name not in daemon.images(ns)
    left = set(busybox_oci.blobs) & daemon.content(ns)
    assert not left, f"blobs still listed after images rm --sync: {sorted(left)}"
    snaps = daemon.snapshots(ns)
    assert not snaps, f"snapshots still listed after images rm --sync: {sorted(snaps)}"


def test_images_mount_shows_the_files(
    daemon: dm.Daemon, ns: str, busybox_oci: im.Archive, tmp_path: Path
) -> None:
    daemon.ctr_ok("images", "import", busybox_oci.path, ns=ns)
    with daemon.mounted(busybox_oci.name, tmp_path / "mnt", ns=ns) as root:
        assert (root / "hello.txt").read_bytes() == im.HELLO
        assert (root / "bin" / "busybox").read_bytes() == im.busybox_bytes()
        assert im.check_root(root, busybox_oci) == []
    assert not dm.is_mountpoint(tmp_path / "mnt")


def test_multiplatform_index_unpacks_host_and_keeps_index(
    daemon: dm.Daemon, ns: str, multiplatform: im.Archive, tmp_path: Path
) -> None:
    daemon.ctr_ok("images", "import", multiplatform.path, ns=ns)
    assert_imported(daemon, ns, multiplatform)
    row = daemon.images(ns)[multiplatform.name]
    assert row["TYPE"] == im.OCI_INDEX
    assert row["PLATFORMS"] == ",".join(sorted([str(im.host_platform()), str(im.other_platform())]))
    snaps = daemon.snapshots(ns)
    unpacked = set(multiplatform.other_chain_ids) & set(snaps)
    assert not unpacked, f"the other platform was unpacked: {unpacked}"
    with daemon.mounted(multiplatform.name, tmp_path / "mnt", ns=ns) as root:
        assert im.check_root(root, multiplatform) == []


def test_multilayer_whiteouts_and_opaque_dirs(
    daemon: dm.Daemon, ns: str, multilayer: im.Archive, tmp_path: Path
) -> None:
    daemon.ctr_ok("images", "import", multilayer.path, ns=ns)
    assert_imported(daemon, ns, multilayer)
    with daemon.mounted(multilayer.name, tmp_path / "mnt", ns=ns) as root:
        assert im.check_root(root, multilayer) == []
        assert sorted(p.name for p in (root / "b").iterdir()) == ["new.txt"]
        assert (root / "f" / "hard.txt").stat().st_ino == (root / "f" / "hardlink").stat().st_ino


# --- seacan and containerd read each other's archives ---------------------------


def test_containerd_imports_seacan_export(
    seacan_only: None,
    daemon: dm.Daemon,
    containerd_module: dm.Containerd,
    ns: str,
    multilayer: im.Archive,
    tmp_path: Path,
) -> None:
    daemon.ctr_ok("images", "import", multilayer.path, ns=ns)
    out = tmp_path / "seacan-export.tar"
    daemon.seacan_ok("images", "export", out, multilayer.name, ns=ns)
    containerd_module.ctr_ok("images", "import", out, ns=ns)
    assert_imported(containerd_module, ns, multilayer)
    with containerd_module.mounted(multilayer.name, tmp_path / "mnt", ns=ns) as root:
        assert im.check_root(root, multilayer) == []


def test_seacan_imports_containerd_export(
    seacan_only: None,
    daemon: dm.Daemon,
    containerd_module: dm.Containerd,
    ns: str,
    busybox_oci: im.Archive,
    tmp_path: Path,
) -> None:
    containerd_module.ctr_ok("images", "import", busybox_oci.path, ns=ns)
    out = tmp_path / "containerd-export.tar"
    containerd_module.ctr_ok("images", "export", out, busybox_oci.name, ns=ns)
    daemon.seacan_ok("images", "import", out, ns=ns)
    assert_imported(daemon, ns, busybox_oci)


# --- the seacan CLI -----------------------------------------------------------


def test_seacan_cli_import_ls_export_rm_prune(
    seacan_only: None, daemon: dm.Daemon, ns: str, busybox_oci: im.Archive, tmp_path: Path
) -> None:
    a = busybox_oci
    daemon.seacan_ok("images", "import", a.path, ns=ns)
    assert_imported(daemon, ns, a)  # as ctr sees it

    ls = daemon.seacan_ok("images", "ls", ns=ns)
    assert a.name in ls and a.target_digest in ls, ls
    assert daemon.seacan_ok("images", "ls", "-q", ns=ns).split() == [a.name]
    content = daemon.seacan_ok("content", "ls", ns=ns)
    assert all(b in content for b in a.blobs), content
    snaps = daemon.seacan_ok("snapshots", "ls", ns=ns)
    assert all(c in snaps for c in a.chain_ids), snaps

    out = tmp_path / "export.tar"
    daemon.seacan_ok("images", "export", out, a.name, ns=ns)
    again = ns + "-re"
    daemon.ctr_ok("images", "import", out, ns=again)
    assert daemon.images(again)[a.name]["DIGEST"] == a.target_digest

    daemon.seacan_ok("images", "rm", a.name, ns=ns)
    assert a.name not in daemon.seacan_ok("images", "ls", "-q", ns=ns).split()
    daemon.seacan_ok("prune", ns=ns)
    left = set(a.blobs) & daemon.content(ns)
    assert not left, f"blobs still listed after images rm + prune: {sorted(left)}"
    assert not daemon.snapshots(ns), "snapshots still listed after images rm + prune"


def test_seacan_cli_imports_docker_archive(
    seacan_only: None, daemon: dm.Daemon, ns: str, busybox_docker: im.Archive, tmp_path: Path
) -> None:
    a = busybox_docker
    daemon.seacan_ok("images", "import", a.path, ns=ns)
    assert a.name in daemon.seacan_ok("images", "ls", "-q", ns=ns).split()
    check = daemon.image_check(ns)[a.name]
    assert check["STATUS"].startswith("complete") and check["UNPACKED"] == "true", check
    # The manifest is written by the importer; the config and the chain are fixed.
    content = daemon.content(ns)
    assert a.config_digest in content
    assert all(c in daemon.snapshots(ns) for c in a.chain_ids)
    with daemon.mounted(a.name, tmp_path / "mnt", ns=ns, cli="seacan") as root:
        assert im.check_root(root, a) == []


def test_seacan_cli_multiplatform(
    seacan_only: None, daemon: dm.Daemon, ns: str, multiplatform: im.Archive
) -> None:
    daemon.seacan_ok("images", "import", multiplatform.path, ns=ns)
    assert_imported(daemon, ns, multiplatform)
    assert not set(multiplatform.other_chain_ids) & set(daemon.snapshots(ns))


def test_seacan_cli_multilayer_mount(
    seacan_only: None, daemon: dm.Daemon, ns: str, multilayer: im.Archive, tmp_path: Path
) -> None:
    daemon.seacan_ok("images", "import", multilayer.path, ns=ns)
    assert_imported(daemon, ns, multilayer)
    with daemon.mounted(multilayer.name, tmp_path / "mnt", ns=ns, cli="seacan") as root:
        assert im.check_root(root, multilayer) == []
