"""The build context: received as a tar stream, unpacked into a private directory.

A context up to :data:`SPOOL_BYTES` stays in memory; a larger one is
spooled to a file. The tar comes from a client and is hostile: names with
``..`` or absolute names, hard links to names outside it and device nodes are refused; a
context larger than ``max_bytes`` (the tar as sent, and what it expands to)
is refused with ResourceExhausted. ``.dockerignore`` is applied again here
(the CLI already filtered), keeping the Dockerfile and ``.dockerignore``.

Source paths for COPY/ADD are resolved strictly inside the context
(``../x`` and symlinks pointing out are errors), globs use Go's
``filepath.Match``, and :func:`tree_hash` is the cache's content hash.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import re
import shutil
import stat
import tarfile
from collections import OrderedDict
from collections.abc import AsyncIterator
from pathlib import Path
from typing import IO, Any

from seacan import errors

from . import fsops

ALWAYS_SENT = ("Dockerfile", ".dockerignore")


class TooLarge(errors.ResourceExhausted):
    pass


def too_large(limit: int) -> TooLarge:
    return TooLarge(
        f"build context is larger than the limit of {limit} bytes (seacand --max-context-bytes)"
    )


SPOOL_BYTES = 8 << 20  # a context up to this size is kept in memory


async def receive(
    chunks: AsyncIterator[bytes], tar_path: Path, limit: int
) -> tuple[str, Path | bytes]:
    """Take the stream; refuse it past ``limit`` bytes. The sha256 (hex) of the bytes
    received, and the tar: its bytes, or ``tar_path`` past :data:`SPOOL_BYTES`."""
    total = 0
    h = hashlib.sha256()
    kept: list[bytes] = []
    f: IO[bytes] | None = None
    try:
        async for chunk in chunks:
            total += len(chunk)
            if total > limit:
                raise too_large(limit)
            h.update(chunk)
            if f is None and total > SPOOL_BYTES:
                f = open(tar_path, "wb")  # noqa: SIM115 (closed below)
                f.writelines(kept)
                kept = []
            if f is None:
                kept.append(chunk)
            else:
                f.write(chunk)
    finally:
        if f is not None:
            f.close()
    return h.hexdigest(), (b"".join(kept) if f is None else tar_path)


MEMO_CONTEXTS = 32  # contexts whose facts the service remembers
Memo = OrderedDict[str, dict[str, Any]]


class Context:
    """A received context: its tar (bytes or a file), unpacked into ``dest`` only when a
    step needs the files.

    Whatever the build learns from the context (the Dockerfile, the content
    hashes of COPY sources) is a function of the tar's bytes, so it is kept
    in ``memo`` under their sha256 and a build of the same bytes (a cached
    rebuild) answers from there without unpacking. A file whose mtime alone
    changed makes other bytes: the context is unpacked and hashed again (and
    the cache still hits, since content hashes ignore mtimes).
    """

    def __init__(
        self, tar: Path | bytes, dest: Path, limit: int, dockerfile: str, digest: str, memo: Memo
    ) -> None:
        self.tar, self.dest, self.limit, self.dockerfile = tar, dest, limit, dockerfile
        self.digest = digest
        self._memo = memo
        self.unpacked = False

    async def path(self) -> Path:
        """The unpacked context directory (unpacked now if it was not)."""
        if not self.unpacked:
            await asyncio.to_thread(unpack, self.tar, self.dest, self.limit, self.dockerfile)
            self.unpacked = True
            if isinstance(self.tar, Path):
                self.tar.unlink(missing_ok=True)  # not needed any more: no second copy on disk
            self.tar = b""
        return self.dest

    def recall(self, key: str) -> Any:
        facts = self._memo.get(self.digest)
        if facts is None:
            return None
        self._memo.move_to_end(self.digest)
        return facts.get(f"{self.dockerfile}\0{key}")

    def remember(self, key: str, value: Any) -> None:
        facts = self._memo.setdefault(self.digest, {})
        facts[f"{self.dockerfile}\0{key}"] = value
        while len(self._memo) > MEMO_CONTEXTS:
            self._memo.popitem(last=False)


def unpack(tar: Path | bytes, dest: Path, limit: int, dockerfile: str) -> None:
    """Unpack the context tar (a file or its bytes) into ``dest`` (made here), then apply
    ``.dockerignore``."""
    dest.mkdir(mode=0o700)
    root = fsops.open_dir(dest)
    try:
        if len(tar) if isinstance(tar, bytes) else tar.stat().st_size:
            src = {"fileobj": io.BytesIO(tar)} if isinstance(tar, bytes) else {"name": tar}
            try:
                with tarfile.open(mode="r:", **src) as tf:
                    fsops.extract_tar(
                        tf,
                        root,
                        owner=fsops.Owner(0, 0),
                        what="build context",
                        max_bytes=limit,
                        absolute_ok=False,
                    )
            except tarfile.TarError as e:
                raise errors.InvalidArgument(
                    f"build context: not a valid tar stream: {e}"
                ) from None
        _apply_ignore(dest, root, dockerfile)
    finally:
        os.close(root)


def _apply_ignore(dest: Path, root: int, dockerfile: str) -> None:
    try:
        data = (dest / ".dockerignore").read_bytes()
    except (FileNotFoundError, IsADirectoryError):
        return
    from seacan.dockerfile.ignore import IgnoreMatcher

    m = IgnoreMatcher.from_file(data)
    keep = {*ALWAYS_SENT, dockerfile.lstrip("/")}

    def visit(dir_fd: int, prefix: str) -> None:
        for name in sorted(os.listdir(dir_fd)):
            rel = prefix + name
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            d = stat.S_ISDIR(st.st_mode)
            if rel in keep:
                continue
            if m.excluded(rel, d):
                if d and m.may_contain_included(rel):
                    sub = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=dir_fd)
                    try:
                        visit(sub, rel + "/")
                    finally:
                        os.close(sub)
                    continue
                if d:
                    shutil.rmtree(dest / rel)
                else:
                    os.unlink(name, dir_fd=dir_fd)
            elif d:
                sub = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=dir_fd)
                try:
                    visit(sub, rel + "/")
                finally:
                    os.close(sub)

    visit(root, "")


# -- Go's filepath.Match --------------------------------------------------------

_META = re.compile(r"[*?\[\\]")


def has_glob(pattern: str) -> bool:
    return bool(_META.search(pattern))


def _go_regex(pattern: str) -> re.Pattern[str]:
    out, i, n = [], 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "\\" and i + 1 < n:
            i += 1
            out.append(re.escape(pattern[i]))
        elif c == "[":
            j = pattern.find("]", i + 2 if pattern[i + 1 : i + 2] in ("^", "]") else i + 1)
            if j < 0:
                raise errors.InvalidArgument(f"syntax error in pattern {pattern!r}")
            body = pattern[i + 1 : j]
            neg = body.startswith("^")
            body = body[1:] if neg else body
            out.append("[" + ("^/" if neg else "") + body.replace("\\", "\\\\") + "]")
            i = j
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out) + r"\Z")


def glob(root_fd: int, pattern: str) -> list[str]:
    """Paths (relative, sorted) under ``root_fd`` that match ``pattern`` as filepath.Match does."""
    rx = _go_regex(os.path.normpath(pattern.lstrip("/")))
    depth = pattern.strip("/").count("/")
    out: list[str] = []

    def visit(dir_fd: int, prefix: str, level: int) -> None:
        for name in sorted(os.listdir(dir_fd)):
            rel = prefix + name
            if level == depth:
                if rx.match(rel):
                    out.append(rel)
                continue
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                sub = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=dir_fd)
                try:
                    visit(sub, rel + "/", level + 1)
                finally:
                    os.close(sub)

    visit(root_fd, "", 0)
    return out


# -- the cache's content hash -----------------------------------------------------


def _kind(st: os.stat_result) -> str:
    if stat.S_ISDIR(st.st_mode):
        return "d"
    if stat.S_ISLNK(st.st_mode):
        return "l"
    if stat.S_ISREG(st.st_mode):
        return "f"
    return "o"


def _entry_hash(h: hashlib._Hash, rel: str, st: os.stat_result, link: str, data_fd: int | None,
                uid: int, gid: int, mode: int | None) -> None:  # fmt: skip
    m = stat.S_IMODE(st.st_mode) if mode is None else mode
    size = st.st_size if stat.S_ISREG(st.st_mode) else 0
    h.update(f"{rel}\0{_kind(st)}\0{m:o}\0{uid}\0{gid}\0{size}\0{link}\0".encode())
    if data_fd is not None:
        with os.fdopen(data_fd, "rb") as f:
            while chunk := f.read(fsops.COPY_CHUNK):
                h.update(chunk)


def tree_hash(fd: int, st: os.stat_result, owner: fsops.Owner | None, chmod: int | None) -> str:
    """``file:<hex>`` or ``dir:<hex>``: a tarsum-like hash of a source (an O_PATH ``fd``).

    Over each entry's name, type, mode, owner, size, link target and
    content, never the mtime: touching a file keeps the hash.
    """
    h = hashlib.sha256()

    def own(s: os.stat_result) -> tuple[int, int]:
        return (owner.uid, owner.gid) if owner else (s.st_uid, s.st_gid)

    if not stat.S_ISDIR(st.st_mode):
        data = fsops.reopen(fd, os.O_RDONLY) if stat.S_ISREG(st.st_mode) else None
        link = os.readlink(f"/proc/self/fd/{fd}") if stat.S_ISLNK(st.st_mode) else ""
        _entry_hash(h, "", st, link, data, *own(st), chmod)
        return "file:" + h.hexdigest()
    dfd = fsops.reopen(fd, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for e in fsops.walk(dfd):
            data = None
            if stat.S_ISREG(e.st.st_mode):
                data = os.open(e.rel, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dfd)
            _entry_hash(h, e.rel, e.st, e.link, data, *own(e.st), chmod)
    finally:
        os.close(dfd)
    return "dir:" + h.hexdigest()


def combine(hashes: list[str]) -> str:
    if len(hashes) == 1:
        return hashes[0]
    return "multi:" + hashlib.sha256(",".join(hashes).encode()).hexdigest()
