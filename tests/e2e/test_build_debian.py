"""A real build: FROM a debootstrap'd Debian minbase, apt-get install from the mirror, run it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures import daemon as dm
from tests.fixtures import debian

pytestmark = pytest.mark.e2e

DOCKERFILE = """FROM debian:bookworm-minbase
RUN apt-get update && apt-get install -y --no-install-recommends hello \\
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY app.sh /app/
RUN chmod +x /app/app.sh
CMD ["/app/app.sh"]
"""


@pytest.fixture
def d(
    seacand: dm.Seacand, ns: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dm.Seacand]:
    seacand.namespace = ns
    monkeypatch.setenv("SEACAN_FIFO_DIR", str(seacand.base / "fifo"))
    monkeypatch.setenv("SEACAN_LOG_DIR", str(tmp_path / "logs"))
    seacand.seacan_ok("images", "import", debian.debian_oci(), timeout=600)
    yield seacand
    for cid in seacand.seacan_ok("ps", "-a", "-q").split():
        seacand.run_seacan("rm", "-f", cid)


def test_build_debian_with_apt(d: dm.Seacand, tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(DOCKERFILE)
    (ctx / "app.sh").write_text("#!/bin/sh\nhello\ncat /etc/debian_version\n")
    out = d.seacan_ok("build", "-t", "deb-hello", ctx, timeout=900)
    assert "Setting up hello" in out, out
    r = d.run_seacan("run", "--rm", "deb-hello")
    assert r.returncode == 0, dm.describe(r)
    assert r.stdout.startswith("Hello, world!\n12."), r.stdout
