"""seacan build: the holes the security review found, closed.

- ADD of a URL whose body never ends stops at seacand's ``--max-blob-bytes``
  with ResourceExhausted naming the limit; nothing is tagged and nothing is
  left in ``<root>/build/work``.
- COPY to a path below a file (``/etc/passwd/x``) is InvalidArgument naming
  the instruction and the path, not an internal error.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from aiohttp import web

from seacan import errors
from seacan.build import BuildOptions
from seacan.client import Client
from tests.fixtures import daemon as dm
from tests.fixtures import images as im

pytestmark = pytest.mark.e2e

LIMIT = 1 << 20


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def endless_url() -> Iterator[str]:
    """An HTTP server on loopback whose /endless answers 200 and streams zeros forever
    (no Content-Length); /small answers 5 bytes."""
    port = _free_port()
    loop = asyncio.new_event_loop()
    started = threading.Event()
    sent = [0]

    async def endless(request: web.Request) -> web.StreamResponse:
        r = web.StreamResponse()
        await r.prepare(request)
        chunk = b"\0" * 65536
        try:
            while True:
                await r.write(chunk)
                sent[0] += len(chunk)
        except (ConnectionError, asyncio.CancelledError):
            pass
        return r

    async def small(request: web.Request) -> web.Response:
        return web.Response(body=b"small")

    app = web.Application()
    app.router.add_get("/endless", endless)
    app.router.add_get("/small", small)
    runner = web.AppRunner(app)

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(runner.setup())
        loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
        started.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())
        loop.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    assert started.wait(10)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        loop.call_soon_threadsafe(loop.stop)
        t.join(10)


def _context(root: Path, dockerfile: str, files: dict[str, str] | None = None) -> Path:
    root.mkdir(parents=True)
    (root / "Dockerfile").write_text(dockerfile)
    for name, data in (files or {}).items():
        (root / name).write_text(data)
    return root


def test_add_url_stops_at_max_blob_bytes(
    request: pytest.FixtureRequest, tmp_path: Path, endless_url: str
) -> None:
    d = dm.Seacand(request.node.nodeid, extra_args=("--max-blob-bytes", str(LIMIT)))
    with d.running():
        work = d.root / "build" / "work"
        ctx = _context(tmp_path / "ctx", f"FROM scratch\nADD {endless_url}/endless /big\n")
        r = d.run_seacan("build", "-t", "endless:1", ctx, timeout=120)
        assert r.returncode == 1, dm.describe(r)
        assert str(LIMIT) in r.stderr and "ADD" in r.stderr, r.stderr
        assert "Dockerfile:2" in r.stderr and "--max-blob-bytes" in r.stderr, r.stderr
        assert "docker.io/library/endless:1" not in d.images()
        assert list(work.iterdir()) == []
        assert list((d.root / "build" / "contexts").iterdir()) == []

        # the error kind, as a client sees it
        async def kind() -> type[BaseException] | None:
            async def no_context() -> AsyncIterator[bytes]:
                return
                yield b""

            df = f"FROM scratch\nADD {endless_url}/endless /big\n".encode()
            async with await Client.connect(d.address) as c:
                try:
                    async for _ in c.build.build(BuildOptions(dockerfile_content=df), no_context()):
                        pass
                except errors.SeacanError as e:
                    return type(e)
            return None

        assert asyncio.run(kind()) is errors.ResourceExhausted
        assert list(work.iterdir()) == []

        # a download under the limit still works, on the same daemon
        ok = _context(tmp_path / "ok", f"FROM scratch\nADD {endless_url}/small /small.txt\n")
        d.seacan_ok("build", "-t", "small:1", ok)
        assert "docker.io/library/small:1" in d.images()
        assert list(work.iterdir()) == []


@pytest.fixture
def d(
    seacand_module: dm.Seacand, ns: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dm.Seacand]:
    seacand_module.namespace = ns
    monkeypatch.setenv("SEACAN_FIFO_DIR", str(seacand_module.base / "fifo"))
    archive = tmp_path / "busybox.tar"
    im.write_busybox_oci(archive)
    seacand_module.seacan_ok("images", "import", archive)
    yield seacand_module
    seacand_module.run_seacan("builder", "prune", "-a")


@pytest.mark.parametrize(
    "dest",
    ["/etc/passwd/x", "/bin/busybox/sub/y"],
)
def test_copy_below_a_file_is_invalid_argument(d: dm.Seacand, tmp_path: Path, dest: str) -> None:
    ctx = _context(tmp_path / "ctx", f"FROM busybox\nCOPY f {dest}\n", {"f": "f\n"})
    r = d.run_seacan("build", "-t", "notdir:1", ctx)
    assert r.returncode == 1, dm.describe(r)
    err = r.stderr
    assert "internal" not in err.lower() and "Errno" not in err, err
    assert "Dockerfile:2: COPY:" in err and dest in err, err
    assert "not a directory" in err, err
    assert "docker.io/library/notdir:1" not in d.images()
    assert list((d.root / "build" / "work").iterdir()) == []


def test_cache_hit_whose_content_was_removed_builds_again(d: dm.Seacand, tmp_path: Path) -> None:
    ctx = _context(
        tmp_path / "ctx",
        'FROM busybox\nCOPY f /f\nRUN cat /f > /g\nCMD ["cat", "/g"]\n',
        {"f": "from the context\n"},
    )
    first = d.seacan_ok("build", "-q", "-t", "stale:1", ctx).strip()
    again = d.seacan_ok("build", "-t", "stale:1", ctx)
    assert again.count("---> Using cache") == 3, again
    assert "building again" not in again, again
    d.ctr_ok("content", "rm", first)  # the cached result of the last step, behind the cache's back
    out = d.seacan_ok("build", "-t", "stale:1", ctx)
    assert "The build cache lost content; building again" in out, out
    assert d.seacan_ok("run", "--rm", "stale:1") == "from the context\n"
    assert d.seacan_ok("build", "-t", "stale:1", ctx).count("---> Using cache") == 3
