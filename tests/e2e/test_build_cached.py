"""A fully cached ``seacan build`` against a private seacand: it writes nothing, yet
stays correct when what it would reuse has changed behind its back.

The build service answers a rebuild whose every step is cached, and whose tags
already name the result, without a lease, a manifest write or an image update
(the image record's ``updated_at`` stays as it was). A new tag, a moved tag, a
manifest removed from the content store, a large context (spooled to disk
rather than kept in memory) and a restarting service are each still handled.
"""

from __future__ import annotations

import json
import os
import re
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures import daemon as dm
from tests.fixtures import images as im

pytestmark = pytest.mark.e2e

DOCKERFILE = """FROM busybox
ARG VERSION=1.0
ENV APP_VERSION=$VERSION
WORKDIR /app
COPY src/ /app/src/
RUN echo "built $APP_VERSION" > /app/built.txt
CMD ["cat", "/app/built.txt"]
"""


@pytest.fixture
def d(seacand_module: dm.Seacand, ns: str, tmp_path: Path) -> Iterator[dm.Seacand]:
    seacand_module.namespace = ns
    archive = tmp_path / "busybox.tar"
    im.write_busybox_oci(archive)
    seacand_module.seacan_ok("images", "import", archive)
    yield seacand_module
    for cid in seacand_module.seacan_ok("ps", "-a", "-q").split():
        seacand_module.run_seacan("rm", "-f", cid)
    seacand_module.run_seacan("builder", "prune", "-a")


def context(root: Path, files: dict[str, bytes]) -> Path:
    for name, data in {"Dockerfile": DOCKERFILE.encode(), **files}.items():
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    return root


def build(d: dm.Seacand, ctx: Path, *args: str) -> str:
    return d.seacan_ok("build", "--progress", "plain", *args, ctx)


def cached_steps(out: str) -> int:
    return out.count(" ---> Using cache\n")


def inspect(d: dm.Seacand, ref: str) -> dict[str, object]:
    doc: dict[str, object] = json.loads(
        d.seacan_ok("images", "inspect", "docker.io/library/" + ref)
    )
    return doc


def built_id(out: str) -> str:
    m = re.search(r"Successfully built ([0-9a-f]{12})\n", out)
    assert m, out
    return m.group(1)


def test_cached_rebuild_leaves_the_image_record_alone(d: dm.Seacand, tmp_path: Path) -> None:
    ctx = context(tmp_path / "ctx", {"src/a.txt": b"a\n"})
    first = build(d, ctx, "-t", "app:1")
    before = inspect(d, "app:1")
    content_before = d.content()

    again = build(d, ctx, "-t", "app:1")
    assert cached_steps(again) == 6, again
    assert built_id(again) == built_id(first)
    assert "Successfully tagged app:1\n" in again, again
    after = inspect(d, "app:1")
    assert after["updated_at"] == before["updated_at"], (before, after)
    assert after["target"] == before["target"]
    assert d.content() == content_before  # nothing written
    assert d.seacan_ok("run", "--rm", "app:1") == "built 1.0\n"


def test_cached_rebuild_adds_and_moves_tags(d: dm.Seacand, tmp_path: Path) -> None:
    ctx = context(tmp_path / "ctx", {"src/a.txt": b"a\n"})
    build(d, ctx, "-t", "app:1")
    target = inspect(d, "app:1")["target"]
    d.ctr_ok("images", "tag", "docker.io/library/busybox:latest", "docker.io/library/app:2")

    out = build(d, ctx, "-t", "app:1", "-t", "app:2", "-t", "app:3")
    assert cached_steps(out) == 6, out
    for tag in ("app:1", "app:2", "app:3"):
        assert f"Successfully tagged {tag}\n" in out, out
        assert inspect(d, tag)["target"] == target, tag  # app:2 moved, app:3 made
    assert d.seacan_ok("run", "--rm", "app:2") == "built 1.0\n"

    changed = build(d, ctx, "--build-arg", "VERSION=2", "-t", "app:1")
    assert inspect(d, "app:1")["target"] != target
    assert inspect(d, "app:2")["target"] == target
    assert d.seacan_ok("run", "--rm", "app:1") == "built 2\n", changed


def test_cached_rebuild_restores_a_removed_manifest(d: dm.Seacand, tmp_path: Path) -> None:
    ctx = context(tmp_path / "ctx", {"src/a.txt": b"a\n"})
    build(d, ctx, "-t", "app:1")
    manifest = d.images()["docker.io/library/app:1"]["DIGEST"]
    d.ctr_ok("content", "rm", manifest)
    assert manifest not in d.content()

    out = build(d, ctx, "-t", "app:1")
    assert cached_steps(out) == 6, out
    assert manifest in d.content()
    assert d.seacan_ok("run", "--rm", "app:1") == "built 1.0\n"


def test_large_context_is_spooled_and_cached(d: dm.Seacand, tmp_path: Path) -> None:
    big = os.urandom(9 << 20)  # past the 8 MiB kept in memory
    ctx = context(tmp_path / "ctx", {"src/big.bin": big, "src/a.txt": b"a\n"})
    build(d, ctx, "-t", "big:1")
    out = build(d, ctx, "-t", "big:1")
    assert cached_steps(out) == 6, out
    size = d.seacan_ok("run", "--rm", "big:1", "wc", "-c", "/app/src/big.bin").split()[0]
    assert int(size) == len(big)
    (ctx / "src" / "big.bin").write_bytes(big[:-1] + b"\0")  # one byte: from COPY on
    assert cached_steps(build(d, ctx, "-t", "big:1")) == 3


def test_build_waits_for_restarting_services(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """The build service calls content and images directly (not through seacand's router):
    a build started while they restart waits for them, as the router's callers do."""
    d = dm.Seacand(request.node.nodeid)
    with d.running():
        archive = tmp_path / "busybox.tar"
        im.write_busybox_oci(archive)
        d.seacan_ok("images", "import", archive)
        ctx = context(tmp_path / "ctx", {"src/a.txt": b"a\n"})
        build(d, ctx, "-t", "app:1")
        pids = d.services()
        for victim in ("images", "content"):
            os.kill(pids[victim], signal.SIGKILL)
        out = build(d, ctx, "-t", "app:1")
        assert cached_steps(out) == 6, out
        for victim in ("images", "content"):
            d.wait_service(victim, not_pid=pids[victim])
        assert d.seacan_ok("run", "--rm", "app:1") == "built 1.0\n"
