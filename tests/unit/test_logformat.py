"""The CRI log format: encoding in the shim, decoding in ``seacan logs``."""

from __future__ import annotations

import ast
import inspect

import pytest

from seacan import logformat as lf

pytestmark = pytest.mark.unit

T0 = 1_795_766_482_123_456_789  # 2026-11-27T08:01:22.123456789Z


def test_format_time_is_go_rfc3339nano() -> None:
    assert lf.format_time(T0) == "2026-11-27T08:01:22.123456789Z"
    assert lf.format_time(T0 - 789) == "2026-11-27T08:01:22.123456Z"  # trailing zeros dropped
    assert lf.format_time(1_795_766_482_000_000_000) == "2026-11-27T08:01:22Z"
    assert lf.format_time(0) == "1970-01-01T00:00:00Z"


@pytest.mark.parametrize("ns", [0, T0, T0 - 789, 1_795_766_482_000_000_000, 1_500_000_000])
def test_parse_time_round_trips(ns: int) -> None:
    assert lf.parse_time(lf.format_time(ns)) == ns


@pytest.mark.parametrize("bad", ["", "2026-11-27T08:01:22", "2026-11-27 04:01:22Z", "x"])
def test_parse_time_rejects(bad: str) -> None:
    with pytest.raises(ValueError):
        lf.parse_time(bad)


def test_encoder_full_lines() -> None:
    enc = lf.Encoder("stdout")
    out = enc.feed(b"hello\nwor", now_ns=T0)
    assert out == b"2026-11-27T08:01:22.123456789Z stdout F hello\n"
    out = enc.feed(b"ld\n\n", now_ns=T0)
    assert out == (
        b"2026-11-27T08:01:22.123456789Z stdout F world\n2026-11-27T08:01:22.123456789Z stdout F \n"
    )
    assert enc.flush(now_ns=T0) == b""


def test_encoder_partial_at_end_and_long_lines() -> None:
    enc = lf.Encoder("stderr", max_line=4)
    out = enc.feed(b"abcdefghij\nxy", now_ns=0)
    recs = [lf.parse_record(x) for x in out.splitlines()]
    assert [(r.partial, r.text) for r in recs] == [(True, b"abcd"), (True, b"efgh"), (False, b"ij")]
    assert all(r.stream == "stderr" for r in recs)
    # exactly max_line bytes then a newline: one full record, no empty partial
    assert enc.feed(b"zw\n", now_ns=0) == b"1970-01-01T00:00:00Z stderr F xyzw\n"
    assert enc.feed(b"tail", now_ns=0) == b"1970-01-01T00:00:00Z stderr P tail\n"
    enc.feed(b"end", now_ns=0)
    assert enc.flush(now_ns=0) == b"1970-01-01T00:00:00Z stderr P end\n"
    assert enc.flush(now_ns=0) == b""


def test_encoder_default_limit_is_16k() -> None:
    enc = lf.Encoder("stdout")
    out = enc.feed(b"a" * (16 << 10) + b"b\n", now_ns=0)
    recs = [lf.parse_record(x) for x in out.splitlines()]
    assert [(r.partial, len(r.text)) for r in recs] == [(True, 16 << 10), (False, 1)]


def test_encoder_rejects_unknown_stream() -> None:
    with pytest.raises(ValueError):
        lf.Encoder("stdin")


def test_parse_record() -> None:
    r = lf.parse_record(b"2026-11-27T08:01:22.1Z stdout P  two  spaces \n")
    assert r == lf.Record("2026-11-27T08:01:22.1Z", "stdout", True, b" two  spaces ")
    assert r.encode() == b"2026-11-27T08:01:22.1Z stdout P  two  spaces \n"
    assert lf.parse_record(b"2026-11-27T08:01:22Z stderr F ").text == b""


@pytest.mark.parametrize(
    "bad",
    [
        b"hello world",
        b"2026-11-27T08:01:22Z stdin F x",
        b"2026-11-27T08:01:22Z stdout X x",
        b"2026-11-27T08:01:22Z stdout F",
        b"2026-11-27T08:01:22+01:00 stdout F x",
        b"2026-11-27T08:01:22Z stdout F a\nb",
    ],
)
def test_parse_record_rejects(bad: bytes) -> None:
    with pytest.raises(ValueError):
        lf.parse_record(bad)


def _log() -> bytes:
    out = lf.Encoder("stdout", max_line=3).feed(b"one\nlonger\n", now_ns=T0)
    out += lf.Encoder("stderr").feed(b"err\n", now_ns=T0 + 1)
    enc = lf.Encoder("stdout")
    enc.feed(b"no newline", now_ns=T0)
    return out + enc.flush(now_ns=T0 + 2)


def test_decoder_keeps_incomplete_lines() -> None:
    data = _log()
    dec = lf.Decoder()
    recs = []
    for i in range(0, len(data), 7):
        recs += dec.feed(data[i : i + 7])
    assert dec.pending() == b""
    assert [r.text for r in recs] == [b"one", b"lon", b"ger", b"err", b"no newline"]
    dec.feed(b"2026-11-27T08:01:22Z stdout F half")
    assert dec.pending() == b"2026-11-27T08:01:22Z stdout F half"


def test_decoder_rejects_raw() -> None:
    with pytest.raises(ValueError):
        lf.Decoder().feed(b"plain output\n")


def test_render_and_timestamps() -> None:
    recs = lf.Decoder().feed(_log())
    assert lf.render(recs, timestamps=False) == b"one\nlonger\nerr\nno newline"
    ts = lf.render(recs, timestamps=True).decode()
    assert ts.splitlines() == [
        "2026-11-27T08:01:22.123456789Z one",
        "2026-11-27T08:01:22.123456789Z longer",
        "2026-11-27T08:01:22.12345679Z err",
        "2026-11-27T08:01:22.123456791Z no newline",
    ]


def test_render_continues_a_partial_line() -> None:
    first = lf.Decoder().feed(b"2026-11-27T08:01:22Z stdout P ab\n")
    rest = lf.Decoder().feed(b"2026-11-27T04:01:23Z stdout F cd\n")
    start = lf.ends_line(first, True)
    assert start is False
    out = lf.render(first, timestamps=True) + lf.render(rest, timestamps=True, at_line_start=start)
    assert out == b"2026-11-27T08:01:22Z abcd\n"
    assert lf.ends_line([], start) is False
    assert lf.ends_line(rest, start) is True


def test_tail_counts_logical_lines() -> None:
    recs = lf.Decoder().feed(_log())
    assert lf.render(lf.tail(recs, 2), timestamps=False) == b"err\nno newline"
    assert lf.render(lf.tail(recs, 3), timestamps=False) == b"longer\nerr\nno newline"
    assert lf.tail(recs, 0) == []
    assert lf.tail(recs, None) == recs
    assert lf.tail(recs, 100) == recs


def test_module_is_pure() -> None:
    """The shim imports it: no grpc, no seacan modules that might pull grpc in."""
    tree = ast.parse(inspect.getsource(lf))
    names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    names |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert not {n for n in names if "grpc" in n or n.startswith("seacan")}, names
