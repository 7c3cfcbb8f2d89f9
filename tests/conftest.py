"""Shared fixtures: image archives (built once per session) and private daemons.

e2e tests need root and ``/usr/bin/ctr``; they are skipped otherwise. Set
``SEACAN_E2E_DAEMON=containerd`` to run the ctr-only e2e tests of
``tests/e2e/test_ctr.py`` against the real containerd instead of seacand:
that checks the tests themselves (containerd passes them).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

from tests.fixtures import daemon as dm
from tests.fixtures import images as im
from tests.fixtures.registry import registry_factory, registry_factory_module  # noqa: F401

E2E_DAEMON = os.environ.get("SEACAN_E2E_DAEMON", "seacan")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = ""
    if os.geteuid() != 0:
        reason = "e2e tests need root"
    elif not dm.CTR.exists():
        reason = f"e2e tests need {dm.CTR} (Debian package containerd)"
    if reason:
        for item in items:
            if item.get_closest_marker("e2e"):
                item.add_marker(pytest.mark.skip(reason=reason))


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """On failure, attach the tail of each daemon's log to the report."""
    rep = yield
    if rep.failed:
        funcargs = getattr(item, "funcargs", {})
        for value in funcargs.values():
            if isinstance(value, dm.Daemon):
                rep.sections.append((f"{value.name} log {value.log}", value.log_tail()))
    return rep


# --- archives -----------------------------------------------------------------


@pytest.fixture(scope="session")
def archive_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("archives")


@pytest.fixture(scope="session")
def busybox_oci(archive_dir: Path) -> im.Archive:
    return im.write_busybox_oci(archive_dir / "busybox-oci.tar")


@pytest.fixture(scope="session")
def busybox_docker(archive_dir: Path) -> im.Archive:
    return im.write_busybox_docker(archive_dir / "busybox-docker.tar")


@pytest.fixture(scope="session")
def multiplatform(archive_dir: Path) -> im.Archive:
    return im.write_multiplatform(archive_dir / "multiplatform.tar")


@pytest.fixture(scope="session")
def multilayer(archive_dir: Path) -> im.Archive:
    return im.write_multilayer(archive_dir / "multilayer.tar")


@pytest.fixture(scope="session")
def hello(archive_dir: Path) -> im.Archive:
    return im.write_hello(archive_dir / "hello.tar")


@pytest.fixture(scope="session")
def big_image(archive_dir: Path) -> im.Archive:
    """~50 MB, 5 gzip layers, thousands of files: big enough to kill an import midway."""
    return im.write_generated(
        archive_dir / "crash.tar", "docker.io/library/crash:latest", im.CRASH_SPEC
    )


# --- daemons ------------------------------------------------------------------


@pytest.fixture
def seacand(request: pytest.FixtureRequest) -> Iterator[dm.Seacand]:
    """A private seacand for this test."""
    d = dm.Seacand(request.node.nodeid)
    with d.running():
        yield d


@pytest.fixture(scope="module")
def seacand_module(request: pytest.FixtureRequest) -> Iterator[dm.Seacand]:
    """One private seacand for the module; tests use their own namespaces (``ns``)."""
    d = dm.Seacand(request.node.nodeid)
    with d.running():
        yield d


@pytest.fixture(scope="module")
def containerd_module(request: pytest.FixtureRequest) -> Iterator[dm.Containerd]:
    """A private real containerd (CRI off) for the module."""
    if not dm.CONTAINERD.exists():
        pytest.skip(f"{dm.CONTAINERD} is not installed")
    d = dm.Containerd(request.node.nodeid)
    with d.running():
        yield d


@pytest.fixture(scope="module")
def daemon(request: pytest.FixtureRequest) -> Iterator[dm.Daemon]:
    """The daemon under test for the ctr-only tests: seacand, or containerd (see module doc)."""
    key = request.node.nodeid + "\0under-test"
    d: dm.Daemon = dm.Containerd(key) if E2E_DAEMON == "containerd" else dm.Seacand(key)
    with d.running():
        yield d


@pytest.fixture
def ns(request: pytest.FixtureRequest) -> Iterator[str]:
    """A namespace of this test's own; its cgroups are removed before and after."""
    name = dm.namespace_for(request.node.name)
    dm.remove_cgroups(name)
    yield name
    # Debian's runc shim keeps an (emptied) runc state directory per namespace.
    with contextlib.suppress(OSError):
        (dm.RUNC_SHIM_ROOT / name).rmdir()
    busy = dm.remove_cgroups(name)
    # A test may use a second namespace named after its own (``<ns>-b``, say).
    for extra in dm.cgroup_namespaces_with_prefix(name[:50].rstrip("-_.") + "-"):
        busy += dm.remove_cgroups(extra)
    assert not busy, f"cgroups still in use after the test: {busy}"


@pytest.fixture
def seacan_only() -> None:
    if E2E_DAEMON != "seacan":
        pytest.skip("drives the seacan CLI or seacand's files")
