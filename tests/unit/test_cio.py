"""seacan.cio: FIFO sets, copying through real FIFOs, log paths."""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path

import pytest

from seacan import cio

pytestmark = pytest.mark.unit


def test_fifo_set_layout(tmp_path: Path) -> None:
    with cio.new_fifo_set("web", stdin=True, terminal=False, root=tmp_path / "f") as fs:
        assert fs.dir.parent == tmp_path / "f"
        for path, name in ((fs.stdin, "stdin"), (fs.stdout, "stdout"), (fs.stderr, "stderr")):
            assert Path(path).name == f"web-{name}"
            assert stat.S_ISFIFO(os.stat(path).st_mode)
    assert not fs.dir.exists()


def test_fifo_set_terminal_has_no_stderr(tmp_path: Path) -> None:
    fs = cio.new_fifo_set("t", stdin=False, terminal=True, root=tmp_path)
    try:
        assert fs.stdin == "" and fs.stderr == "" and fs.stdout
    finally:
        fs.remove()


def test_fifo_root_from_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(cio.FIFO_DIR_ENV, raising=False)
    monkeypatch.delenv(cio.LOG_DIR_ENV, raising=False)
    assert cio.fifo_root() == Path("/run/seacan/fifo")
    assert cio.log_path("ns", "web") == Path("/var/lib/seacan/logs/ns/web.log")
    monkeypatch.setenv(cio.FIFO_DIR_ENV, str(tmp_path / "x"))
    monkeypatch.setenv(cio.LOG_DIR_ENV, str(tmp_path / "l"))
    assert cio.fifo_root() == tmp_path / "x"
    assert cio.log_path("ns", "web") == tmp_path / "l" / "ns" / "web.log"
    assert cio.log_uri(tmp_path / "a.log") == f"file://{tmp_path}/a.log"


def test_attached_copies_through_fifos(tmp_path: Path) -> None:
    asyncio.run(_attached_copies(tmp_path))


async def _attached_copies(tmp_path: Path) -> None:
    """The shim's side is played by plain opens: write stdout/stderr, read stdin."""
    fs = cio.new_fifo_set("c", stdin=True, terminal=False, root=tmp_path)
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    in_r, in_w = os.pipe()
    eof = asyncio.Event()

    async def on_eof() -> None:
        eof.set()

    with fs, cio.Attached(fs) as io:
        # The shim opens its ends after ours exist (our read ends are already open).
        shim_out = os.open(fs.stdout, os.O_WRONLY)
        shim_err = os.open(fs.stderr, os.O_WRONLY)
        shim_in = os.open(fs.stdin, os.O_RDONLY | os.O_NONBLOCK)
        io.start(in_r, out_w, err_w, on_eof)
        os.write(in_w, b"typed\n")
        os.close(in_w)
        await asyncio.wait_for(eof.wait(), 5)
        assert os.read(shim_in, 100) == b"typed\n"
        os.write(shim_out, b"hello\n" * 10000)  # more than a pipe buffer
        os.write(shim_err, b"oops\n")
        os.close(shim_out)
        os.close(shim_err)
        reader = asyncio.create_task(asyncio.to_thread(_read_all, out_r))
        await io.wait(5)
        os.close(out_w)
        os.close(err_w)
        assert await reader == b"hello\n" * 10000
        assert _read_all(err_r) == b"oops\n"
        os.close(shim_in)
    for fd in (in_r, out_r, err_r):
        os.close(fd)


def _read_all(fd: int) -> bytes:
    chunks = []
    while data := os.read(fd, 65536):
        chunks.append(data)
    return b"".join(chunks)


def test_copy_regular_file_source(tmp_path: Path) -> None:
    asyncio.run(_copy_regular(tmp_path))


async def _copy_regular(tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.write_bytes(b"x" * 100000)
    r, w = os.pipe()
    fd = os.open(src, os.O_RDONLY)
    reader = asyncio.create_task(asyncio.to_thread(_read_all, r))
    try:
        assert await cio.copy(fd, w) == 100000
    finally:
        os.close(fd)
        os.close(w)
    assert len(await reader) == 100000
    os.close(r)


def test_terminal_size_not_a_tty(tmp_path: Path) -> None:
    with open(tmp_path / "f", "w") as f:
        assert cio.terminal_size(f.fileno()) is None
        with cio.raw_terminal(f.fileno()):
            pass
