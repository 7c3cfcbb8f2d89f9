"""Tar I/O: the one module that reads and writes layer tar streams.

Reading: :class:`LayerReader` turns a source of compressed chunks into the
uncompressed tar stream (gzip, zstd or plain, sniffed from the magic bytes),
hashing and counting it as it goes and refusing to expand past a limit;
:func:`members` walks the tar entries of that stream in order, each as a
:class:`Member` plus a reader of its data. Nothing here touches the target
filesystem; ``apply.py`` decides what an entry may do.

Writing: :class:`LayerWriter` writes members as a PAX tar, compresses it and
hands compressed chunks to a sink, computing the diff ID on the way.

Errors are this module's own (:class:`CorruptError`, :class:`TooLargeError`); the
caller names the layer and turns them into error kinds.
"""

from __future__ import annotations

import enum
import hashlib
import tarfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any, BinaryIO, Self, cast

import zstandard

Source = Callable[[], bytes]
"""Returns the next chunk of a stream; ``b""`` at the end."""

Sink = Callable[[bytes], None]

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
XATTR_PREFIX = "SCHILY.xattr."
ENCODING = "utf-8"
ERRORS = "surrogateescape"  # names and xattr values round-trip as bytes

_OUT_CHUNK = 1 << 20  # decompressed bytes produced per step
_GZ_IN = 64 << 10  # compressed bytes fed to zlib per step
# zstd can expand ~32768:1 (RLE blocks) and its decompressobj has no output
# bound, so it is fed small pieces: at most ~64 MiB come out of one call.
_ZSTD_IN = 2 << 10


class ArchiveError(Exception):
    """A layer stream that cannot be read; the message says why."""


class CorruptError(ArchiveError):
    """Bad compression framing, a bad tar header, or a truncated stream."""


class TooLargeError(ArchiveError):
    """The uncompressed stream grew past the limit."""


class Kind(enum.Enum):
    FILE = "file"
    DIR = "directory"
    SYMLINK = "symlink"
    HARDLINK = "hard link"
    CHAR = "character device"
    BLOCK = "block device"
    FIFO = "fifo"


_KINDS: dict[bytes, Kind] = {
    tarfile.REGTYPE: Kind.FILE,
    tarfile.AREGTYPE: Kind.FILE,
    tarfile.CONTTYPE: Kind.FILE,
    tarfile.GNUTYPE_SPARSE: Kind.FILE,
    tarfile.DIRTYPE: Kind.DIR,
    tarfile.SYMTYPE: Kind.SYMLINK,
    tarfile.LNKTYPE: Kind.HARDLINK,
    tarfile.CHRTYPE: Kind.CHAR,
    tarfile.BLKTYPE: Kind.BLOCK,
    tarfile.FIFOTYPE: Kind.FIFO,
}
_TYPES: dict[Kind, bytes] = {
    Kind.FILE: tarfile.REGTYPE,
    Kind.DIR: tarfile.DIRTYPE,
    Kind.SYMLINK: tarfile.SYMTYPE,
    Kind.HARDLINK: tarfile.LNKTYPE,
    Kind.CHAR: tarfile.CHRTYPE,
    Kind.BLOCK: tarfile.BLKTYPE,
    Kind.FIFO: tarfile.FIFOTYPE,
}


@dataclass(slots=True)
class Member:
    """One tar entry, as the archive states it (names are not cleaned here)."""

    name: str
    kind: Kind
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    mtime_ns: int = 0
    size: int = 0
    linkname: str = ""
    devmajor: int = 0
    devminor: int = 0
    xattrs: dict[str, bytes] = field(default_factory=dict)


def _tobytes(value: str) -> bytes:
    return value.encode(ENCODING, ERRORS)


# -- reading -------------------------------------------------------------------


class _Input:
    """Compressed bytes waiting to be decoded, consumed in pieces without copying the rest."""

    def __init__(self) -> None:
        self._data = b""
        self._off = 0

    def feed(self, data: bytes) -> None:
        rest = self._data[self._off :] if self._off < len(self._data) else b""
        self._data, self._off = rest + data if rest else data, 0

    def take(self, n: int) -> bytes:
        piece = self._data[self._off : self._off + n]
        self._off += len(piece)
        return piece

    def push_back(self, data: bytes) -> None:
        if data:
            self._data, self._off = data + self._data[self._off :], 0

    def skip_zeros(self) -> bool:
        """Drop NUL padding; whether anything else is left."""
        while self._off < len(self._data) and self._data[self._off] == 0:
            self._off += 1
        return self._off < len(self._data)

    def __bool__(self) -> bool:
        return self._off < len(self._data)


class _Plain:
    def __init__(self) -> None:
        self._in = _Input()

    def feed(self, data: bytes) -> None:
        self._in.feed(data)

    def produce(self) -> bytes:
        return self._in.take(_OUT_CHUNK)

    def finish(self) -> None:
        pass


class _Gzip:
    """Multi-member gzip, output bounded per step; zero padding after a member is allowed."""

    def __init__(self) -> None:
        self._d = zlib.decompressobj(31)
        self._in = _Input()
        self._between = False  # after a member's end, before the next header

    def feed(self, data: bytes) -> None:
        self._in.feed(data)

    def produce(self) -> bytes:
        while True:
            if self._between:
                if not self._in.skip_zeros():
                    return b""
                self._d = zlib.decompressobj(31)
                self._between = False
            piece = self._d.unconsumed_tail or self._in.take(_GZ_IN)
            if not piece:
                return b""
            try:
                out = self._d.decompress(piece, _OUT_CHUNK)
            except zlib.error as e:
                raise CorruptError(f"corrupt gzip stream: {e}") from None
            if self._d.eof:
                self._in.push_back(self._d.unused_data)
                self._between = True
            if out:
                return out

    def finish(self) -> None:
        if not self._between:
            raise CorruptError("unexpected end of gzip stream (truncated)")


class _Zstd:
    """Concatenated zstd frames, fed in small pieces so one step cannot explode."""

    def __init__(self) -> None:
        self._dctx = zstandard.ZstdDecompressor()
        self._d: Any = self._dctx.decompressobj()
        self._in = _Input()
        self._fed = False  # the current frame has started

    def feed(self, data: bytes) -> None:
        self._in.feed(data)

    def produce(self) -> bytes:
        while self._in:
            piece = self._in.take(_ZSTD_IN)
            try:
                out: bytes = self._d.decompress(piece)
            except zstandard.ZstdError as e:
                raise CorruptError(f"corrupt zstd stream: {e}") from None
            self._fed = True
            if self._d.eof:
                self._in.push_back(self._d.unused_data)
                self._d = self._dctx.decompressobj()
                self._fed = False
            if out:
                return out
        return b""

    def finish(self) -> None:
        if self._fed:
            raise CorruptError("unexpected end of zstd stream (truncated)")


def sniff(head: bytes) -> str:
    """The compression the first bytes show: "gzip", "zstd" or "" (tar or unknown)."""
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head.startswith(ZSTD_MAGIC):
        return "zstd"
    return ""


class LayerReader:
    """The uncompressed bytes of a layer, hashed and counted as they are produced.

    ``declared`` is what the media type says ("gzip", "zstd", ""); the magic
    bytes decide, except that data which contradicts a declared compression
    is corrupt. Docker archives label gzip layers as plain tar, so ``""``
    accepts any of the three.
    """

    def __init__(self, source: Source, declared: str, limit: int) -> None:
        self._source = source
        self._limit = limit
        self._hash = hashlib.sha256()
        self._size = 0
        self._buf = b""
        self._pos = 0
        self._eof = False
        head = b""
        while len(head) < len(ZSTD_MAGIC):
            chunk = source()
            if not chunk:
                self._eof = True
                break
            head += chunk
        found = sniff(head)
        if declared and found != declared:
            start = head[:4].hex() or "empty"
            raise CorruptError(f"not {declared} data (the stream starts {start})")
        self.compression = found
        self._dec: _Plain | _Gzip | _Zstd
        if found == "gzip":
            self._dec = _Gzip()
        elif found == "zstd":
            self._dec = _Zstd()
        else:
            self._dec = _Plain()
        self._dec.feed(head)

    @property
    def digest(self) -> str:
        """``sha256:`` of the uncompressed bytes produced so far (the diff ID at the end)."""
        return "sha256:" + self._hash.hexdigest()

    @property
    def size(self) -> int:
        return self._size

    def _refill(self) -> bool:
        while True:
            out = self._dec.produce()
            if out:
                self._size += len(out)
                if self._size > self._limit:
                    raise TooLargeError(
                        f"uncompressed size exceeds the limit of {self._limit} bytes"
                    )
                self._hash.update(out)
                self._buf, self._pos = out, 0
                return True
            if self._eof:
                self._dec.finish()
                return False
            chunk = self._source()
            if chunk:
                self._dec.feed(chunk)
            else:
                self._eof = True

    def read(self, n: int = -1) -> bytes:
        if self._pos >= len(self._buf) and not self._refill():
            return b""
        if n < 0:
            n = len(self._buf) - self._pos
        out = self._buf[self._pos : self._pos + n]
        self._pos += len(out)
        return out

    def drain(self) -> None:
        """Read to the end (padding after the tar's end marker counts in the diff ID)."""
        self._buf, self._pos = b"", 0
        while self._refill():
            self._buf, self._pos = b"", 0


# Missing from typeshed.
_TRUNCATED_HEADER: type[Exception] = tarfile.TruncatedHeaderError  # type: ignore[attr-defined]
_INVALID_HEADER: type[Exception] = tarfile.InvalidHeaderError  # type: ignore[attr-defined]


class _StrictInfo(tarfile.TarInfo):
    """tarfile takes a bad header after the first for the end of the archive; refuse it."""

    @classmethod
    def fromtarfile(cls, tarfile: tarfile.TarFile) -> Self:
        try:
            return super().fromtarfile(tarfile)
        except _TRUNCATED_HEADER:
            raise CorruptError(
                f"truncated tar header at offset {tarfile.offset}: unexpected end of data"
            ) from None
        except _INVALID_HEADER as e:
            raise CorruptError(f"invalid tar header at offset {tarfile.offset}: {e}") from None


def _member(ti: tarfile.TarInfo) -> Member:
    kind = _KINDS.get(ti.type)
    if kind is None:
        raise CorruptError(f"entry {ti.name!r}: unsupported tar entry type {ti.type!r}")
    xattrs = {
        k[len(XATTR_PREFIX) :]: _tobytes(v)
        for k, v in ti.pax_headers.items()
        if k.startswith(XATTR_PREFIX)
    }
    return Member(
        name=ti.name,
        kind=kind,
        mode=ti.mode,
        uid=ti.uid,
        gid=ti.gid,
        mtime_ns=int(ti.mtime * 1_000_000_000),
        size=ti.size if kind is Kind.FILE else 0,
        linkname=ti.linkname,
        devmajor=ti.devmajor,
        devminor=ti.devminor,
        xattrs=xattrs,
    )


class Data:
    """The bytes of one regular-file member; read errors are :class:`CorruptError`."""

    def __init__(self, f: IO[bytes]) -> None:
        self._f = f

    def read(self, n: int = -1) -> bytes:
        try:
            return self._f.read(n)
        except tarfile.ReadError as e:
            raise CorruptError(f"truncated tar stream: {e}") from None
        except (tarfile.TarError, EOFError) as e:
            raise CorruptError(f"invalid tar stream: {e}") from None


def members(reader: LayerReader) -> Iterator[tuple[Member, Data | None]]:
    """The entries of the tar stream in order, each with its data (regular files).

    Read a member's data before asking for the next member. At the end the
    rest of the stream is drained, so ``reader.digest`` is the diff ID.
    Raises :class:`CorruptError` (with the cause) and :class:`TooLargeError`.
    """
    try:
        with tarfile.open(
            fileobj=cast(Any, reader),  # read() is all a stream needs
            mode="r|",
            tarinfo=_StrictInfo,
            encoding=ENCODING,
            errors=ERRORS,
        ) as tf:
            while True:
                ti = tf.next()
                tf.members.clear()  # type: ignore[attr-defined]  # keep memory flat
                if ti is None:
                    break
                m = _member(ti)
                f = tf.extractfile(ti) if m.kind is Kind.FILE else None
                yield m, (None if f is None else Data(f))
        reader.drain()
    except tarfile.ReadError as e:
        msg = str(e)
        if msg == "empty file" and reader.size == 0:
            reader.drain()
            return  # no bytes at all: an empty layer, as Go's archive/tar reads it
        if "unexpected end" in msg or "empty file" in msg:
            raise CorruptError(f"truncated tar stream: {msg}") from None
        raise CorruptError(f"invalid tar stream: {msg}") from None
    except tarfile.TarError as e:
        raise CorruptError(f"invalid tar stream: {e}") from None
    except EOFError as e:
        raise CorruptError(f"truncated stream: {e}") from None


# -- writing -------------------------------------------------------------------


class _Compressor:
    def __init__(self, compression: str, sink: Sink) -> None:
        self._sink = sink
        self._z: Any
        if compression == "gzip":
            self._z = zlib.compressobj(6, zlib.DEFLATED, 31)
        elif compression == "zstd":
            self._z = zstandard.ZstdCompressor(level=3).compressobj()
        elif compression == "":
            self._z = None
        else:
            raise ValueError(f"unknown compression {compression!r}")
        self._pending: list[bytes] = []
        self._npending = 0

    def _emit(self, data: bytes, force: bool = False) -> None:
        if data:
            self._pending.append(data)
            self._npending += len(data)
        if self._pending and (force or self._npending >= _OUT_CHUNK):
            self._sink(b"".join(self._pending))
            self._pending, self._npending = [], 0

    def write(self, data: bytes) -> None:
        self._emit(self._z.compress(data) if self._z is not None else data)

    def close(self) -> None:
        self._emit(self._z.flush() if self._z is not None else b"", force=True)


class _HashingFile:
    """The uncompressed side: tarfile writes here."""

    def __init__(self, out: _Compressor) -> None:
        self._out = out
        self.hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.hash.update(data)
        self.size += len(data)
        self._out.write(bytes(data))
        return len(data)


class LayerWriter:
    """Writes members as a PAX tar, compressed as asked, into ``sink``.

    Usage::

        w = LayerWriter(sink, "gzip")
        w.add(member, fileobj_or_None)
        diff_id, size = w.close()
    """

    def __init__(self, sink: Sink, compression: str) -> None:
        self._comp = _Compressor(compression, sink)
        self._file = _HashingFile(self._comp)
        self._tf = tarfile.open(  # noqa: SIM115 - closed by close()
            fileobj=cast(Any, self._file),  # write() is all a stream needs
            mode="w|",
            format=tarfile.PAX_FORMAT,
            encoding=ENCODING,
            errors=ERRORS,
        )

    def add(self, m: Member, data: BinaryIO | None = None) -> None:
        ti = tarfile.TarInfo(m.name)
        ti.type = _TYPES[m.kind]
        ti.mode = m.mode & 0o7777
        ti.uid, ti.gid = m.uid, m.gid
        ti.uname = ti.gname = ""
        ti.mtime = m.mtime_ns // 1_000_000_000
        ti.linkname = m.linkname
        ti.devmajor, ti.devminor = m.devmajor, m.devminor
        ti.size = m.size if m.kind is Kind.FILE else 0
        if m.xattrs:
            ti.pax_headers = {
                XATTR_PREFIX + k: v.decode(ENCODING, ERRORS) for k, v in sorted(m.xattrs.items())
            }
        self._tf.addfile(ti, data if ti.size else None)

    def close(self) -> tuple[str, int]:
        """Finish the archive; the diff ID and the uncompressed size."""
        self._tf.close()
        self._comp.close()
        return "sha256:" + self._file.hash.hexdigest(), self._file.size
