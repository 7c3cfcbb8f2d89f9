"""The hand-written RunRequest/RunResponse codec against the generated classes."""

from __future__ import annotations

import random
import subprocess
import sys

import pytest

from seacan import pbwire
from seacan.api.services.engine.v1 import engine_pb2 as pb
from seacan.engine import RunSpec, Started, wire

pytestmark = pytest.mark.unit

WORDS = ("", "a", "busybox", "héllo wörld", "x" * 300, "k=v", "-p 1:2", "\n\t\0")


def _words(r: random.Random) -> tuple[str, ...]:
    return tuple(r.choice(WORDS) for _ in range(r.randrange(4)))


def _spec(r: random.Random) -> RunSpec:
    return RunSpec(
        image=r.choice(WORDS), id=r.choice(WORDS), args=_words(r),
        entrypoint=r.choice((None, (), _words(r))), env=_words(r), workdir=r.choice(WORDS),
        user=r.choice(WORDS), hostname=r.choice(WORDS), tty=r.random() < 0.5,
        interactive=r.random() < 0.5, read_only=r.random() < 0.5, privileged=r.random() < 0.5,
        cap_add=_words(r), cap_drop=_words(r), memory=r.choice(WORDS),
        cpus=r.choice((None, 0.0, 0.5, 2.0, 1e-9)), pids_limit=r.choice((None, 0, -1, 7, 2**40)),
        runtime=r.choice(WORDS), networks=_words(r), publish=_words(r),
        publish_all=r.random() < 0.5, dns=_words(r), dns_search=_words(r), dns_options=_words(r),
        add_hosts=_words(r), network_aliases=_words(r), volumes=_words(r), mounts=_words(r),
        tmpfs=_words(r), log_dir=r.choice(WORDS),
    )  # fmt: skip


@pytest.mark.parametrize("seed", range(200))
def test_run_request_by_hand_parses_as_the_generated_class(seed: int) -> None:
    spec = _spec(random.Random(seed))
    data = wire.encode_spec(spec)
    assert wire.spec_from_pb(pb.RunRequest.FromString(data)) == spec
    # and the same bytes as protobuf's own serializer (field order, presence)
    assert pb.RunRequest.FromString(data) == wire.spec_to_pb(spec)


@pytest.mark.parametrize(
    "started", [Started("", 0), Started("abc", 1), Started("c" * 64, 2**32 - 1, ("w1", "wö"))]
)
def test_run_response_by_hand(started: Started) -> None:
    assert wire.decode_started(wire.started_to_pb(started).SerializeToString()) == started


def test_unknown_fields_are_skipped() -> None:
    extra = pbwire.field_str(99, "later") + pbwire.varint(100 << 3 | 5) + b"\0\0\0\0"
    data = wire.started_to_pb(Started("x", 5)).SerializeToString() + extra
    assert wire.decode_started(data) == Started("x", 5)


@pytest.mark.parametrize("bad", [b"\x0a\x05ab", b"\x0a", b"\x80", b"\x0b", b"\xff" * 11])
def test_malformed_bytes_raise_malformed(bad: bytes) -> None:
    with pytest.raises(pbwire.Malformed):
        pbwire.fields(bad)


def test_the_run_fast_path_imports_no_protobuf_grpc_or_asyncio() -> None:
    code = (
        "import sys\n"
        "from seacan.cli import main\n"
        "try:\n"
        "    main.main(['--address', '/nonexistent/sc.sock', 'run', '-d', 'busybox', 'true'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = ('grpc', 'asyncio', 'google.protobuf', 'seacan.client')\n"
        "bad = [m for m in heavy if m in sys.modules]\n"
        "print(','.join(bad))\n"
    )  # fmt: skip
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "cannot connect to seacand at /nonexistent/sc.sock" in r.stderr
    assert r.stdout.strip() == ""
