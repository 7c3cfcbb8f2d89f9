"""Malicious and broken archives: a clear error, nothing created, the daemon still works.

Each archive from :func:`tests.fixtures.images.write_bad` is imported with
the real ``ctr`` and with ``seacan``. The daemon runs with
``--max-layer-bytes`` 1 MiB (the decompression bomb expands to 10 MiB). A
sentinel directory next to the daemon's root is the target of every escape;
it must be untouched afterwards.

ctr creates the image record itself *before* it unpacks
(``cmd/ctr/commands/images/import.go``: ``client.Import`` then
``image.Unpack``; containerd behaves the same), so when the daemon rejects a
layer during the unpack, the record ctr made stays listed. For those kinds
the ctr case checks that nothing was unpacked instead; the seacan case
checks that no image is listed at all.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures import daemon as dm
from tests.fixtures import images as im

pytestmark = pytest.mark.e2e

LIMIT = 1 << 20

# Kinds that ctr's own client gets past before the daemon sees a layer.
CTR_RECORDS_BEFORE_UNPACK = frozenset(im.BAD_KINDS) - {"corrupt", "truncated"}


@pytest.fixture(scope="module")
def bad_daemon(request: pytest.FixtureRequest) -> Iterator[dm.Seacand]:
    d = dm.Seacand(request.node.nodeid, max_layer_bytes=LIMIT)
    with d.running():
        yield d


@pytest.fixture
def neutral_ns(request: pytest.FixtureRequest) -> str:
    """A namespace whose name says nothing about the case (messages may quote it)."""
    return "n-" + hashlib.sha256(request.node.nodeid.encode()).hexdigest()[:12]


@pytest.fixture
def sentinel(bad_daemon: dm.Seacand, neutral_ns: str) -> Iterator[Path]:
    """A directory next to the daemon's root, with a file that must stay as it is."""
    s = bad_daemon.base / f"sentinel-{neutral_ns}"
    s.mkdir()
    (s / "victim.txt").write_bytes(b"do not touch\n")
    yield s
    shutil.rmtree(s, ignore_errors=True)


def tree_state(top: Path) -> dict[str, tuple[object, ...]]:
    """Type, mode, size, link count, mtime and content hash of everything under ``top``."""
    out: dict[str, tuple[object, ...]] = {}
    for p in [top, *sorted(top.rglob("*"))]:
        st = p.lstat()
        digest = hashlib.sha256(p.read_bytes()).hexdigest() if stat.S_ISREG(st.st_mode) else ""
        out[str(p.relative_to(top))] = (st.st_mode, st.st_size, st.st_nlink, st.st_mtime_ns, digest)
    return out


@pytest.mark.parametrize("kind", im.BAD_KINDS)
@pytest.mark.parametrize("cli", ["ctr", "seacan"])
def test_bad_archive_is_refused_and_changes_nothing(
    bad_daemon: dm.Seacand,
    neutral_ns: str,
    sentinel: Path,
    hello: im.Archive,
    cli: str,
    kind: str,
) -> None:
    d, ns = bad_daemon, neutral_ns
    # Neither the path nor the image name may match the expected message by accident.
    bad = im.write_bad(d.base / "in" / f"{neutral_ns}.tar", kind, sentinel)
    before_sentinel = tree_state(sentinel)
    before_base = sorted(os.listdir(d.base))
    run = d.run_ctr if cli == "ctr" else d.run_seacan

    r = run("images", "import", bad.path, ns=ns)

    assert r.returncode != 0, f"the {kind} archive was accepted\n{dm.describe(r)}"
    missing = im.unmatched(bad.patterns, r.stderr)
    assert not missing, f"the error does not name the problem (no {missing}):\n{dm.describe(r)}"

    # Nothing escaped.
    assert tree_state(sentinel) == before_sentinel, "the sentinel directory changed"
    for p in bad.escapes:
        assert not os.path.lexists(p), f"{p} was created"
    assert sorted(os.listdir(d.base)) == before_base, "files appeared next to the root"

    # Nothing was created.
    listed = d.ctr_ok("images", "ls", "-q", ns=ns).split()
    if cli == "seacan" or kind not in CTR_RECORDS_BEFORE_UNPACK:
        assert listed == [], f"image listed after a failed import: {listed}"
    else:
        assert d.image_check(ns)[bad.name]["UNPACKED"] == "false"
    snaps = d.snapshots(ns)
    assert not snaps, f"snapshots left after a failed import: {sorted(snaps)}"
    mounts = dm.mounts_under([d.root, d.state])
    assert not mounts, f"mounts left after a failed import: {mounts}"

    # The daemon still works.
    r = run("images", "import", hello.path, ns=ns)
    assert r.returncode == 0, dm.describe(r)
    check = d.image_check(ns)[hello.name]
    assert check["STATUS"].startswith("complete") and check["UNPACKED"] == "true", check
    (d.base / "in" / f"{neutral_ns}.tar").unlink()
