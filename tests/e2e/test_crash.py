"""kill -9 a service, or seacand itself, in the middle of an import.

The import is of a ~50 MB, 5-layer image. The kill comes when the import
is visibly under way on disk: an ingest with data (``ingest``), or the first
snapshot being unpacked (``unpack``). After the restart (seacand restarts a
dead service itself; a killed seacand is started again on the same root and
state) a user must find: no image from the interrupted import, or a complete
one; a content store where every blob hashes to its name; no mount left
under the root or the state; and an import that reruns to success and
unpacks the right files.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.fixtures import daemon as dm
from tests.fixtures import images as im

pytestmark = pytest.mark.e2e

NS = "crash"
PHASE_TIMEOUT = 60.0
SETTLE = 0.2  # after the phase shows, so the kill lands inside it


def ingest_has_data(d: dm.Seacand) -> bool:
    ingest = d.root / "content" / "ingest"
    return ingest.exists() and any(
        p.is_file() and p.stat().st_size > 0 for p in ingest.rglob("data")
    )


def unpack_started(d: dm.Seacand) -> bool:
    snaps = d.root / "snapshots" / "overlayfs" / "snapshots"
    return snaps.exists() and any(snaps.iterdir())


PHASES: dict[str, Callable[[dm.Seacand], bool]] = {
    "ingest": ingest_has_data,
    "unpack": unpack_started,
}

CASES = [
    ("content", "ingest", "ctr"),
    ("metadata", "ingest", "ctr"),
    ("snapshots", "unpack", "ctr"),
    ("images", "unpack", "ctr"),
    ("seacand", "ingest", "ctr"),
    ("seacand", "unpack", "ctr"),
    ("content", "ingest", "seacan"),
    ("images", "unpack", "seacan"),
]


def import_argv(d: dm.Seacand, cli: str, archive: im.Archive) -> list[str]:
    if cli == "ctr":
        return d.ctr_argv("images", "import", archive.path, ns=NS)
    return d.seacan_argv("images", "import", archive.path, ns=NS)


def assert_consistent(d: dm.Seacand, archive: im.Archive, when: str) -> None:
    """What must hold whenever the daemon is up: blobs verify, no stray mounts."""
    bad = d.bad_blobs()
    assert not bad, f"{when}: content store does not verify: {bad}"
    mounts = dm.mounts_under([d.root, d.state], d.mount_views())
    assert not mounts, f"{when}: mounts left under the root/state: {mounts}"
    listed = d.ctr_ok("images", "ls", "-q", ns=NS).split()
    assert listed in ([], [archive.name]), f"{when}: unexpected images {listed}"
    if listed:
        check = d.image_check(NS)[archive.name]
        assert check["STATUS"].startswith("complete"), f"{when}: image listed but {check}"


@pytest.mark.parametrize(("victim", "phase", "cli"), CASES)
def test_kill9_during_import(
    seacand: dm.Seacand,
    big_image: im.Archive,
    tmp_path: Path,
    victim: str,
    phase: str,
    cli: str,
) -> None:
    d = seacand
    client_log = tmp_path / "client.log"
    with open(client_log, "wb") as log:
        client = subprocess.Popen(
            import_argv(d, cli, big_image),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=dm.REPO,
            env=dm.env(),
        )
    killed_pid = 0
    try:
        deadline = time.monotonic() + PHASE_TIMEOUT
        while not PHASES[phase](d) and client.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(SETTLE)
        if client.poll() is not None:
            pytest.fail(
                f"the import ended (exit {client.returncode}) before the kill during {phase}; "
                f"the test image is too small to interrupt it\n{client_log.read_text()}"
            )
        if victim == "seacand":
            kids = d.descendants()
            d.kill9()
            left = dm.wait_gone(kids, 10)
            assert not left, f"service processes outlived seacand: {left}"
        else:
            killed_pid = d.services()[victim]
            os.kill(killed_pid, signal.SIGKILL)
        if victim == "seacand":
            # With no daemon at all, ctr retries a blob it could not open for as
            # long as the answer is UNAVAILABLE (containerd's OpenWriter does;
            # against containerd too): a user stops it, so does the test.
            try:
                client.wait(10)
            except subprocess.TimeoutExpired:
                client.kill()
                client.wait()
        else:
            client.wait(dm.COMMAND_TIMEOUT)
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()
    first = client_log.read_text(errors="replace")

    # Restart.
    if victim == "seacand":
        d.start()
    else:
        d.wait_service(victim, not_pid=killed_pid)
        assert d.proc is not None and d.proc.poll() is None, "seacand died with its service"
        assert dm.health_status(d.address) == "SERVING"
    assert_consistent(d, big_image, f"after the restart (first import: exit {client.returncode})")

    # The import reruns to success and the result is whole.
    r = dm.run(import_argv(d, cli, big_image))
    assert r.returncode == 0, f"{dm.describe(r)}\n--- interrupted import said\n{first}"
    check = d.image_check(NS)[big_image.name]
    assert check["STATUS"].startswith("complete") and check["UNPACKED"] == "true", check
    snaps = d.snapshots(NS)
    for chain in big_image.chain_ids:
        assert chain in snaps and snaps[chain]["KIND"] == "Committed", sorted(snaps)
    with d.mounted(big_image.name, tmp_path / "mnt", ns=NS) as root:
        assert im.check_root(root, big_image) == []
    assert_consistent(d, big_image, "after the rerun")
