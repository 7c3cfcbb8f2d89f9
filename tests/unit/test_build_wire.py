"""seacan.build.wire's hand-written codec says what the generated protobuf classes say."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from seacan.api.services.build.v1 import build_pb2 as pb
from seacan.build import BuildOptions, Event, Output, Result, StepDone, Stream, wire

pytestmark = pytest.mark.unit

OPTIONS = [
    BuildOptions(),
    BuildOptions(
        tags=("app:1", "registry.example:5000/app:ünï"),
        dockerfile="sub/Dockerfile.dev",
        dockerfile_content=b"FROM busybox\nRUN echo \xff\n",
        build_args={"V": "2", "EMPTY": "", "K=": "x=y"},
        target="build",
        no_cache=True,
        pull=True,
        labels={"org.example": "yes", "a": ""},
        platform="linux/arm64/v8",
        network="none",
        source_date_epoch=1700000000,
    ),
    BuildOptions(source_date_epoch=0),
    BuildOptions(source_date_epoch=-5),
]


@pytest.mark.parametrize("opts", OPTIONS)
def test_the_requests_parse_as_the_generated_ones(opts: BuildOptions) -> None:
    context = [b"a" * 10, b"", b"b" * (wire.CHUNK * 2 + 3)]
    msgs = [pb.BuildRequest.FromString(m) for m in wire.build_requests(opts, context)]
    assert msgs[0] == pb.BuildRequest(options=wire.options_to_pb(opts))
    assert wire.options_from_pb(msgs[0].options) == opts
    assert [m.context for m in msgs[1:]] == [
        b"a" * 10, b"b" * wire.CHUNK, b"b" * wire.CHUNK, b"bbb",
    ]  # fmt: skip
    assert not any(m.HasField("options") for m in msgs[1:])


EVENTS: list[Event] = [
    Stream("Step 1/3 : FROM busybox ✓\n"),
    Stream(""),
    Output(b"hi\n\xff"),
    StepDone(2, 3, True, 0.125, "sha256:" + "ab" * 32),
    StepDone(0, 0, False, 0.0, ""),
    StepDone(-1, 7, False, 12.5, "x"),
    Result("sha256:" + "cd" * 32, "sha256:" + "ef" * 32, ("app:1", "app:2")),
    Result("", "", ()),
]


@pytest.mark.parametrize("ev", EVENTS)
def test_events_decode_as_the_generated_classes_decode_them(ev: Event) -> None:
    data = wire.event_to_pb(ev).SerializeToString()
    assert wire.event_from_bytes(data) == ev
    assert wire.event_from_bytes(data) == wire.event_from_pb(pb.BuildProgress.FromString(data))


def test_unknown_fields_are_skipped_and_garbage_is_an_error() -> None:
    known = wire.event_to_pb(Stream("x")).SerializeToString()
    extra = bytes([15 << 3 | 0, 5, 14 << 3 | 1, *b"12345678", 13 << 3 | 5, *b"1234"])
    assert wire.event_from_bytes(extra + known) == Stream("x")
    from seacan import errors

    with pytest.raises(errors.Internal, match="malformed"):
        wire.event_from_bytes(b"\x0a\x05ab")


def test_the_codec_imports_no_protobuf() -> None:
    code = "import sys, seacan.build.wire; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert not set(out.stdout.split()) & {"google.protobuf", "grpc", "asyncio"}


def test_seacan_build_imports_neither_asyncio_grpc_nor_protobuf(tmp_path: Path) -> None:
    code = (
        "import sys; from seacan.cli import main\n"
        "try:\n    main.main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
        "print(' '.join(sorted(sys.modules)))"
    )
    argv = ["-a", "/nonexistent/seacan.sock", "build", "-t", "x", str(tmp_path)]
    r = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True)
    assert "cannot connect to seacand at /nonexistent/seacan.sock: no such socket" in r.stderr
    loaded = set(r.stdout.split())
    assert "seacan.h2grpc" in loaded
    assert not loaded & {"asyncio", "grpc", "google.protobuf", "seacan.client", "structlog"}


def _reference_tar(ctx: Path) -> bytes:
    """The context as tarfile.add writes it (owners cleared): what seacan build sent before."""
    import io
    import os
    import tarfile

    def reset(ti: tarfile.TarInfo) -> tarfile.TarInfo:
        ti.uid = ti.gid = 0
        ti.uname = ti.gname = ""
        return ti

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w|", format=tarfile.PAX_FORMAT) as tf:

        def visit(d: Path, prefix: str) -> None:
            for e in sorted(os.scandir(d), key=lambda e: e.name):
                tf.add(e.path, arcname=prefix + e.name, recursive=False, filter=reset)
                if e.is_dir(follow_symlinks=False):
                    visit(Path(e.path), prefix + e.name + "/")

        visit(ctx, "")
    return buf.getvalue()


def test_the_context_tar_is_what_tarfile_add_writes(tmp_path: Path) -> None:
    import io
    import os

    from seacan.cli import build

    ctx = tmp_path / "ctx"
    (ctx / "sub" / "deeper").mkdir(parents=True)
    (ctx / "Dockerfile").write_text("FROM busybox\n")
    (ctx / "a.bin").write_bytes(os.urandom(70_000))
    (ctx / "sub" / "ünïcode ✓.txt").write_text("x")
    (ctx / "sub" / "deeper" / "empty").touch()
    os.chmod(ctx / "a.bin", 0o4755)
    os.link(ctx / "a.bin", ctx / "sub" / "hardlink")
    os.symlink("../a.bin", ctx / "sub" / "symlink")
    os.symlink("/nowhere", ctx / "dangling")
    os.mkfifo(ctx / "fifo")
    os.utime(ctx / "Dockerfile", (1.5, 1700000000.123456))
    out = io.BytesIO()
    build.write_context(str(ctx), out, {"Dockerfile"})
    assert out.getvalue() == _reference_tar(ctx)
