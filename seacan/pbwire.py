"""Protobuf's wire format by hand, for the few messages the CLI's fast paths send
and receive (``seacan build``, ``seacan run -d``) over :mod:`seacan.h2grpc`.

Importing protobuf and a generated module costs a CLI start ~15-20 ms; these
messages are flat enough to write and read directly. Each codec built on this
is checked against the generated classes in tests (tests/unit/test_pbwire.py,
tests/unit/test_build_wire.py). Everything else uses the generated classes.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping
from typing import Any

VARINT, I64, LEN, I32 = 0, 1, 2, 5


class Malformed(ValueError):
    """Bytes that are not a protobuf message."""


def varint(n: int) -> bytes:
    n &= (1 << 64) - 1  # negative int64/int32: ten bytes, two's complement
    out = bytearray()
    while n > 0x7F:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def field_bytes(field: int, data: bytes) -> bytes:
    """A LEN field, even when empty (a repeated element or a set optional)."""
    return varint(field << 3 | LEN) + varint(len(data)) + data


def field_str(field: int, text: str) -> bytes:
    """A proto3 string field: absent when empty."""
    return field_bytes(field, text.encode()) if text else b""


def field_strs(field: int, texts: Iterable[str]) -> bytes:
    """A repeated string field."""
    return b"".join(field_bytes(field, t.encode()) for t in texts)


def field_int(field: int, n: int) -> bytes:
    """A proto3 varint field (int32/int64/uint32/bool): absent when zero."""
    return varint(field << 3 | VARINT) + varint(n) if n else b""


def field_optional_int(field: int, n: int | None) -> bytes:
    """An ``optional`` varint field: present (even zero) unless None."""
    return b"" if n is None else varint(field << 3 | VARINT) + varint(n)


def field_optional_double(field: int, x: float | None) -> bytes:
    """An ``optional double`` field: present (even zero) unless None."""
    return b"" if x is None else varint(field << 3 | I64) + struct.pack("<d", x)


def field_map(field: int, m: Mapping[str, str]) -> bytes:
    """A ``map<string, string>`` field."""
    return b"".join(field_bytes(field, field_str(1, k) + field_str(2, v)) for k, v in m.items())


def fields(data: bytes) -> dict[int, list[Any]]:
    """Field number -> its values in order (ints for varints, bytes for LEN and fixed)."""
    out: dict[int, list[Any]] = {}
    i, n = 0, len(data)
    try:
        while i < n:
            key, i = _read_varint(data, i)
            field, wire = key >> 3, key & 7
            value: Any
            if wire == VARINT:
                value, i = _read_varint(data, i)
            elif wire == LEN:
                size, i = _read_varint(data, i)
                value, i = data[i : i + size], i + size
            elif wire == I64:
                value, i = data[i : i + 8], i + 8
            elif wire == I32:
                value, i = data[i : i + 4], i + 4
            else:
                raise Malformed(f"wire type {wire}")
            if i > n:
                raise IndexError
            out.setdefault(field, []).append(value)
    except IndexError:
        raise Malformed("truncated") from None
    return out


def _read_varint(data: bytes, i: int) -> tuple[int, int]:
    n = shift = 0
    while True:
        b = data[i]
        i += 1
        n |= (b & 0x7F) << shift
        if b < 0x80:
            return n, i
        shift += 7
        if shift > 63:
            raise Malformed("varint too long")


def signed(n: int) -> int:
    """A varint read as int64/int32 (two's complement)."""
    return n - (1 << 64) if n >= 1 << 63 else n


def last_str(f: Mapping[int, list[Any]], field: int) -> str:
    """A string field's value ("" when absent); the last one wins, as protobuf's."""
    return bytes(f.get(field, [b""])[-1]).decode()


def last_int(f: Mapping[int, list[Any]], field: int) -> int:
    """A varint field's value (0 when absent), as int64."""
    return signed(f.get(field, [0])[-1])


def strs(f: Mapping[int, list[Any]], field: int) -> tuple[str, ...]:
    """A repeated string field's values."""
    return tuple(bytes(v).decode() for v in f.get(field, ()))


def double(raw: bytes) -> float:
    value: float = struct.unpack("<d", raw)[0]
    return value
