"""seacan images import/export (and the CLI around them) against a private seacand.

One seacand per module (``seacand_module``); every test works in a namespace
of its own (``ns``). What is checked is what a user sees: exit codes, the
one-line errors, ``images ls``, ``content ls``, ``snapshots ls``, and the
bytes of the exported archive.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from tests.fixtures import daemon as dm
from tests.fixtures import images as im

pytestmark = pytest.mark.integration


def seacan(d: dm.Seacand, ns: str, *args: str | Path) -> str:
    return d.seacan_ok(*args, ns=ns)


def images(d: dm.Seacand, ns: str) -> dict[str, dict[str, str]]:
    return {r["REF"]: r for r in dm.table(seacan(d, ns, "images", "ls"))}


def content(d: dm.Seacand, ns: str) -> set[str]:
    return set(seacan(d, ns, "content", "ls", "-q").split())


def snapshots(d: dm.Seacand, ns: str) -> dict[str, dict[str, str]]:
    return {r["KEY"]: r for r in dm.table(seacan(d, ns, "snapshots", "ls"))}


def run_bytes(
    d: dm.Seacand, ns: str, *args: str | Path, input: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    """The seacan command with binary stdin/stdout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEACAN_")}
    env["PYTHONPATH"] = str(dm.REPO)
    argv = [sys.executable, "-m", "seacan.cli.main", "-a", str(d.address), "-n", ns]
    return subprocess.run(
        [*argv, *map(str, args)],
        input=input,
        stdin=None if input is not None else subprocess.DEVNULL,
        capture_output=True,
        timeout=dm.COMMAND_TIMEOUT,
        cwd=dm.REPO,
        env=env,
    )


def assert_imported(d: dm.Seacand, ns: str, a: im.Archive) -> None:
    row = images(d, ns)[a.name]
    assert row["DIGEST"] == a.target_digest
    assert row["TYPE"] == a.target_media_type
    assert row["SIZE"] == a.ls_size_text
    assert str(im.host_platform()) in row["PLATFORMS"].split(",")
    missing = set(a.blobs) - content(d, ns)
    assert not missing, f"blobs missing: {sorted(missing)}"
    snaps = snapshots(d, ns)
    parent = ""
    for chain in a.chain_ids:
        assert snaps[chain]["KIND"] == "Committed" and snaps[chain]["PARENT"] == parent
        parent = chain
    assert not [k for k in snaps if k.startswith("extract-")]
    assert seacan(d, ns, "leases", "ls", "-q") == "", "the import's lease was left behind"


def test_import_oci_then_export_and_reimport(
    seacand_module: dm.Seacand, ns: str, multilayer: im.Archive, tmp_path: Path
) -> None:
    d = seacand_module
    out = seacan(d, ns, "images", "import", multilayer.path)
    assert f"unpacking {multilayer.name} ({multilayer.target_digest})...done" in out
    assert_imported(d, ns, multilayer)
    labels = {
        i["digest"]: i["labels"]
        for i in json.loads(seacan(d, ns, "content", "ls", "--format", "json"))
    }
    assert labels[multilayer.manifest_digest] == {
        "containerd.io/gc.ref.content.config": multilayer.config_digest,
        **{
            f"containerd.io/gc.ref.content.l.{i}": x for i, x in enumerate(multilayer.layer_digests)
        },
    }

    first, second = tmp_path / "a.tar", tmp_path / "b.tar"
    seacan(d, ns, "images", "export", first, multilayer.name)
    seacan(d, ns, "images", "export", second, multilayer.name)
    assert first.read_bytes() == second.read_bytes(), "export is not deterministic"
    with tarfile.open(first) as tf:
        names = tf.getnames()
        index = json.load(tf.extractfile("index.json"))  # type: ignore[arg-type]
    assert {"oci-layout", "index.json", "manifest.json"} <= set(names)
    assert index["manifests"][0]["annotations"]["io.containerd.image.name"] == multilayer.name

    fresh = ns + "-re"
    seacan(d, fresh, "images", "import", first)
    assert_imported(d, fresh, multilayer)


def test_import_docker_archive_from_stdin_gzip(
    seacand_module: dm.Seacand, ns: str, busybox_docker: im.Archive
) -> None:
    d = seacand_module
    data = gzip.compress(busybox_docker.path.read_bytes(), compresslevel=1)
    r = run_bytes(d, ns, "images", "import", "-", input=data)
    assert r.returncode == 0, r.stderr.decode()
    # The manifest written for the docker archive is the one containerd writes.
    assert_imported(d, ns, busybox_docker)


def test_multiplatform_keeps_the_index_and_unpacks_the_host(
    seacand_module: dm.Seacand, ns: str, multiplatform: im.Archive
) -> None:
    d = seacand_module
    seacan(d, ns, "images", "import", multiplatform.path)
    assert_imported(d, ns, multiplatform)
    row = images(d, ns)[multiplatform.name]
    assert row["PLATFORMS"] == ",".join(sorted([str(im.host_platform()), str(im.other_platform())]))
    assert not set(multiplatform.other_chain_ids) & set(snapshots(d, ns))


@pytest.mark.parametrize("kind", ["corrupt", "truncated", "digest-mismatch", "missing-blob"])
def test_bad_archives_fail_with_one_line_and_create_nothing(
    seacand_module: dm.Seacand, ns: str, kind: str, tmp_path: Path
) -> None:
    d = seacand_module
    bad = im.write_bad(tmp_path / "in.tar", kind, tmp_path / "sentinel")
    r = d.run_seacan("images", "import", bad.path, ns=ns)
    assert r.returncode == 1, dm.describe(r)
    assert r.stderr.startswith("seacan: ") and r.stderr.count("\n") == 1, dm.describe(r)
    assert not im.unmatched(bad.patterns, r.stderr), dm.describe(r)
    assert seacan(d, ns, "images", "ls", "-q") == ""
    assert not snapshots(d, ns)


def test_a_layer_the_daemon_refuses_leaves_no_image(
    seacand_module: dm.Seacand, ns: str, tmp_path: Path
) -> None:
    """Unlike ctr, seacan unpacks before it creates the record: nothing is listed."""
    d = seacand_module
    bad = im.write_bad(tmp_path / "in.tar", "device", tmp_path / "sentinel")
    r = d.run_seacan("images", "import", bad.path, ns=ns)
    assert r.returncode == 1 and "evil-null" in r.stderr, dm.describe(r)
    assert bad.layer_digest in r.stderr
    assert seacan(d, ns, "images", "ls", "-q") == ""
    assert not snapshots(d, ns), "the extract snapshot was left"


def test_rm_and_prune_remove_blobs_and_snapshots(
    seacand_module: dm.Seacand, ns: str, hello: im.Archive
) -> None:
    d = seacand_module
    seacan(d, ns, "images", "import", hello.path)
    assert seacan(d, ns, "images", "rm", hello.name) == hello.name + "\n"
    out = seacan(d, ns, "prune")
    for blob in hello.blobs:
        assert f"removed content {blob}" in out, out
    for chain in hello.chain_ids:
        assert f"removed snapshots/overlayfs {chain}" in out, out
    assert not set(hello.blobs) & content(d, ns)
    assert not snapshots(d, ns)
    r = d.run_seacan("images", "rm", hello.name, ns=ns)
    assert r.returncode == 1 and r.stderr == f'seacan: image "{hello.name}": not found\n'


def test_tag_inspect_ls_formats(seacand_module: dm.Seacand, ns: str, hello: im.Archive) -> None:
    d = seacand_module
    seacan(d, ns, "images", "import", hello.path)
    assert seacan(d, ns, "images", "tag", hello.name, "example.com/hello:2") == (
        "example.com/hello:2\n"
    )
    r = d.run_seacan("images", "tag", hello.name, "example.com/hello:2", ns=ns)
    assert r.returncode == 1 and "already exists" in r.stderr
    assert seacan(d, ns, "images", "ls", "-q").split() == sorted(
        ["example.com/hello:2", hello.name]
    )
    listed = json.loads(seacan(d, ns, "images", "ls", "--format", "json"))
    assert {i["digest"] for i in listed} == {hello.target_digest}
    assert all(i["size"] == hello.ls_size for i in listed)

    doc = json.loads(seacan(d, ns, "images", "inspect", "example.com/hello:2"))
    assert doc["target"]["digest"] == hello.target_digest
    assert doc["config"]["rootfs"]["diff_ids"] == list(hello.diff_ids)
    assert doc["manifest"]["config"]["digest"] == hello.config_digest

    blob = hello.layer_digests[0]
    got = run_bytes(d, ns, "content", "get", blob)
    assert got.returncode == 0 and im.sha256(got.stdout) == blob


def test_namespaces_and_snapshot_commands(
    seacand_module: dm.Seacand, ns: str, multilayer: im.Archive
) -> None:
    d = seacand_module
    extra = ns + "-x"
    seacan(d, ns, "namespaces", "create", extra, "seacan.test/a=b")
    rows = {r["NAME"]: r for r in dm.table(seacan(d, ns, "namespaces", "ls"))}
    assert rows[extra]["LABELS"] == "seacan.test/a=b"
    assert seacan(d, ns, "namespaces", "rm", extra) == extra + "\n"
    assert extra not in seacan(d, ns, "namespaces", "ls", "-q").split()

    seacan(d, ns, "images", "import", multilayer.path)
    tree = seacan(d, ns, "snapshots", "tree").splitlines()
    assert [line.split()[-1] for line in tree] == list(multilayer.chain_ids)
    assert re.match(r"^ {2}\\_ sha256:", tree[1])
    usage = {r["KEY"]: r for r in dm.table(seacan(d, ns, "snapshots", "usage"))}
    assert set(usage) == set(multilayer.chain_ids)
    assert all(int(r["INODES"]) > 0 for r in usage.values())


def test_export_to_stdout_is_a_tar(seacand_module: dm.Seacand, ns: str, hello: im.Archive) -> None:
    d = seacand_module
    seacan(d, ns, "images", "import", hello.path)
    r = run_bytes(d, ns, "images", "export", "-", hello.name)
    assert r.returncode == 0, r.stderr.decode()
    with tarfile.open(fileobj=io.BytesIO(r.stdout)) as tf:
        names = set(tf.getnames())
    assert {"index.json", "oci-layout"} <= names
    assert {"blobs/sha256/" + b.split(":")[1] for b in hello.blobs} <= names
