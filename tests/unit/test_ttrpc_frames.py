"""ttrpc framing (containerd/ttrpc channel.go): the 10-byte header, the 4 MiB
limit on both sides, status code mapping, and that the module stays grpcio-free."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

from seacan import errors, ttrpc
from seacan.api.google.rpc import status_pb2

pytestmark = pytest.mark.unit


def reader_of(data: bytes) -> asyncio.StreamReader:
    r = asyncio.StreamReader()
    r.feed_data(data)
    r.feed_eof()
    return r


def test_header_layout_is_big_endian() -> None:
    frame = ttrpc.encode_frame(3, ttrpc.TYPE_REQUEST, 0, b"abc")
    assert frame == b"\x00\x00\x00\x03" + b"\x00\x00\x00\x03" + b"\x01" + b"\x00" + b"abc"
    assert ttrpc.decode_header(frame[:10]) == (3, 3, 1, 0)
    big = ttrpc.encode_frame(0x01020304, ttrpc.TYPE_DATA, 0x05, b"")
    assert big == b"\x00\x00\x00\x00\x01\x02\x03\x04\x03\x05"


def test_frames_round_trip_through_a_reader() -> None:
    async def main() -> list[ttrpc.Frame | None]:
        data = ttrpc.encode_frame(1, ttrpc.TYPE_REQUEST, 0, b"hello")
        data += ttrpc.encode_frame(1, ttrpc.TYPE_RESPONSE, 0, b"")
        r = reader_of(data)
        return [await ttrpc.read_frame(r) for _ in range(3)]

    first, second, end = asyncio.run(main())
    assert first == ttrpc.Frame(1, ttrpc.TYPE_REQUEST, 0, b"hello")
    assert second == ttrpc.Frame(1, ttrpc.TYPE_RESPONSE, 0, b"")
    assert end is None  # clean EOF on a frame boundary


def test_truncated_frame_raises() -> None:
    data = ttrpc.encode_frame(1, ttrpc.TYPE_REQUEST, 0, b"hello")[:-2]

    async def main() -> None:
        await ttrpc.read_frame(reader_of(data))

    with pytest.raises(asyncio.IncompleteReadError):
        asyncio.run(main())


def test_encoding_rejects_oversized_data() -> None:
    ttrpc.encode_frame(1, ttrpc.TYPE_REQUEST, 0, bytes(ttrpc.MAX_MESSAGE))  # exactly 4 MiB: ok
    with pytest.raises(errors.ResourceExhausted, match="exceed maximum message size"):
        ttrpc.encode_frame(1, ttrpc.TYPE_REQUEST, 0, bytes(ttrpc.MAX_MESSAGE + 1))


def test_oversized_frame_is_skipped_and_reported_for_its_stream() -> None:
    length = ttrpc.MAX_MESSAGE + 100
    data = ttrpc.HEADER.pack(length, 7, ttrpc.TYPE_REQUEST, 0) + bytes(length)
    data += ttrpc.encode_frame(9, ttrpc.TYPE_REQUEST, 0, b"next")

    async def main() -> tuple[ttrpc.OversizedMessage, ttrpc.Frame | None]:
        r = reader_of(data)
        with pytest.raises(ttrpc.OversizedMessage) as info:
            await ttrpc.read_frame(r)
        return info.value, await ttrpc.read_frame(r)

    err, after = asyncio.run(main())
    assert isinstance(err, errors.ResourceExhausted)
    assert (err.stream_id, err.length) == (7, length)
    assert after == ttrpc.Frame(9, ttrpc.TYPE_REQUEST, 0, b"next")


@pytest.mark.parametrize(
    ("kind", "code"),
    [
        (errors.NotFound, 5),
        (errors.AlreadyExists, 6),
        (errors.FailedPrecondition, 9),
        (errors.InvalidArgument, 3),
        (errors.NotImplemented_, 12),
        (errors.Unavailable, 14),
        (errors.DeadlineExceeded, 4),
        (errors.Canceled, 1),
        (errors.Internal, 13),
    ],
)
def test_error_kinds_map_to_numeric_codes_and_back(
    kind: type[errors.SeacanError], code: int
) -> None:
    st = ttrpc.status_of(kind("thing x: oops"))
    assert (st.code, st.message) == (code, "thing x: oops")
    back = ttrpc.error_of(st)
    assert type(back) is kind
    assert back.message == "thing x: oops"


def test_codes_without_a_kind_become_internal() -> None:
    assert type(ttrpc.error_of(status_pb2.Status(code=10, message="aborted"))) is errors.Internal
    assert type(ttrpc.error_of(status_pb2.Status(code=2, message="?"))) is errors.Internal
    assert ttrpc.status_of(errors.SeacanError("x")).code == 2  # UNKNOWN


def test_module_does_not_import_grpcio() -> None:
    code = "import sys, seacan.ttrpc; assert 'grpc' not in sys.modules, sorted(sys.modules)"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=30)
