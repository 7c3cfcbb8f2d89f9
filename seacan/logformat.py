"""The Kubernetes CRI log format: one record per line, ``TIME STREAM TAG TEXT\\n``.

* TIME: RFC3339Nano in UTC, as Go's ``time.RFC3339Nano`` prints it (trailing
  zeros of the fraction dropped): ``2026-11-27T08:01:22.123456789Z``;
* STREAM: ``stdout`` or ``stderr``;
* TAG: ``F`` (the record ends a line) or ``P`` (a partial line: the line was
  longer than :data:`MAX_LINE` bytes, or the stream ended without a newline);
* TEXT: the line's bytes without its ``\\n``.

The shim encodes (:class:`Encoder`, one per stream), ``seacan logs`` decodes
(:class:`Decoder`). Pure: no I/O, no grpc (the shim imports this).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

FORMAT_CRI = "cri"
FORMAT_RAW = "raw"
FORMATS = (FORMAT_CRI, FORMAT_RAW)
STREAMS = ("stdout", "stderr")
MAX_LINE = 16 << 10

_RECORD = re.compile(
    rb"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,9})?Z) (stdout|stderr) ([FP]) (.*)", re.DOTALL
)


def format_time(ns: int) -> str:
    """Nanoseconds since the epoch as RFC3339Nano UTC (Go's form: no trailing zeros)."""
    secs, frac = divmod(ns, 1_000_000_000)
    base = datetime.fromtimestamp(secs, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    digits = f"{frac:09d}".rstrip("0")
    return f"{base}.{digits}Z" if digits else f"{base}Z"


def parse_time(text: str) -> int:
    """The inverse of :func:`format_time` (any 0-9 fraction digits); ValueError if malformed."""
    m = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?Z", text)
    if m is None:
        raise ValueError(f"not an RFC3339 UTC time: {text!r}")
    secs = int(datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC).timestamp())
    return secs * 1_000_000_000 + int((m.group(2) or "").ljust(9, "0"))


@dataclass(frozen=True, slots=True)
class Record:
    time: str
    stream: str
    partial: bool
    text: bytes

    def encode(self) -> bytes:
        tag = b"P" if self.partial else b"F"
        return b"%s %s %s %s\n" % (self.time.encode(), self.stream.encode(), tag, self.text)


def parse_record(line: bytes) -> Record:
    """One record (with or without its ``\\n``); ValueError if it is not CRI."""
    if line.endswith(b"\n"):
        line = line[:-1]
    m = _RECORD.fullmatch(line)
    if m is None or b"\n" in m.group(4):
        raise ValueError(f"not a CRI log record: {line[:80]!r}")
    return Record(m.group(1).decode(), m.group(2).decode(), m.group(3) == b"P", m.group(4))


class Encoder:
    """Bytes of one stream -> CRI records. ``feed`` as data comes, ``flush`` at EOF."""

    def __init__(self, stream: str, max_line: int = MAX_LINE) -> None:
        if stream not in STREAMS:
            raise ValueError(f"stream {stream!r}: want stdout or stderr")
        self.stream = stream
        self.max_line = max_line
        self._buf = b""

    def feed(self, data: bytes, now_ns: int | None = None) -> bytes:
        """The records for every line ``data`` completes (and for over-long pieces)."""
        stamp = format_time(time.time_ns() if now_ns is None else now_ns)
        self._buf += data
        out = []
        while True:
            nl = self._buf.find(b"\n", 0, self.max_line + 1)
            if nl >= 0:
                out.append(Record(stamp, self.stream, False, self._buf[:nl]).encode())
                self._buf = self._buf[nl + 1 :]
            elif len(self._buf) >= self.max_line:
                out.append(Record(stamp, self.stream, True, self._buf[: self.max_line]).encode())
                self._buf = self._buf[self.max_line :]
            else:
                return b"".join(out)

    def flush(self, now_ns: int | None = None) -> bytes:
        """The last, unterminated piece as a partial record (``b""`` if none)."""
        if not self._buf:
            return b""
        stamp = format_time(time.time_ns() if now_ns is None else now_ns)
        rec, self._buf = Record(stamp, self.stream, True, self._buf), b""
        return rec.encode()


class Decoder:
    """CRI log bytes -> records; keeps an unterminated last line for the next ``feed``."""

    def __init__(self) -> None:
        self._buf = b""

    def feed(self, data: bytes) -> list[Record]:
        """The records ``data`` completes; ValueError on a line that is not CRI."""
        self._buf += data
        head, sep, rest = self._buf.rpartition(b"\n")
        if not sep:
            return []
        self._buf = rest
        return [parse_record(line) for line in head.split(b"\n") if line]

    def pending(self) -> bytes:
        return self._buf


def lines(records: Iterable[Record]) -> Iterator[list[Record]]:
    """Records grouped into logical lines (partials up to their ``F``; a trailing partial alone)."""
    group: list[Record] = []
    for r in records:
        group.append(r)
        if not r.partial:
            yield group
            group = []
    if group:
        yield group


def render(records: Iterable[Record], *, timestamps: bool, at_line_start: bool = True) -> bytes:
    """What ``logs`` prints: the text, a ``\\n`` per full line, optionally the time first.

    ``at_line_start``: whether the previous output ended a line (for following).
    """
    out = []
    start = at_line_start
    for r in records:
        if timestamps and start:
            out.append(r.time.encode() + b" ")
        out.append(r.text)
        if not r.partial:
            out.append(b"\n")
        start = not r.partial
    return b"".join(out)


def ends_line(records: list[Record], before: bool) -> bool:
    """Whether the output of ``records`` ends at a line start (``before`` if empty)."""
    return not records[-1].partial if records else before


def tail(records: list[Record], n: int | None) -> list[Record]:
    """The records of the last ``n`` logical lines (all when None or negative)."""
    if n is None or n < 0:
        return records
    if n == 0:
        return []
    groups = list(lines(records))
    return [r for g in groups[-n:] for r in g]
