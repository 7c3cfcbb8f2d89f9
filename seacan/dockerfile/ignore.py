""".dockerignore: which context paths a build leaves out.

Docker's rules (moby/patternmatcher and its ``ignorefile`` reader):

- a line starting with ``#`` is a comment; lines are trimmed; blank lines
  are skipped; ``!`` starts an exception (re-include);
- each pattern is cleaned like Go's ``filepath.Clean`` and a leading ``/``
  is dropped, so patterns are relative to the context root;
- ``*`` and ``?`` never match ``/``, ``[...]`` is a class, ``\\`` escapes,
  ``**`` matches any number of directories (none included);
- a pattern also matches every path below a directory it matches;
- the last pattern that matches decides.

Paths given to :meth:`IgnoreMatcher.excluded` are clean, relative to the
context and ``/``-separated (as ``os.path.relpath`` gives them); like
Docker, the matcher does not clean them again.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Sequence
from dataclasses import dataclass

from seacan.errors import InvalidArgument

_ESCAPE = frozenset(".+()|{}$")


def clean(path: str) -> str:
    """Go's filepath.Clean for ``/`` paths."""
    if not path:
        return "."
    out = posixpath.normpath(path)
    if out.startswith("//"):
        out = "/" + out.lstrip("/")
    return out


@dataclass(frozen=True, slots=True)
class _Pattern:
    text: str
    exclusion: bool
    kind: str  # "exact", "prefix", "suffix", "regexp"
    regex: re.Pattern[str] | None

    def match(self, path: str) -> bool:
        if self.kind == "exact":
            return path == self.text
        if self.kind == "prefix":
            return path.startswith(self.text[:-2])
        if self.kind == "suffix":
            suffix = self.text[2:]
            if path.endswith(suffix):
                return True
            return suffix.startswith("/") and path == suffix[1:]
        assert self.regex is not None
        return self.regex.match(path) is not None


def _compile(text: str, exclusion: bool) -> _Pattern:
    """patternmatcher's Pattern.compile: a regex, or a cheaper exact/prefix/suffix test."""
    rx = "^"
    kind = "exact"
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        first = i == 0
        i += 1
        if ch == "*":
            if i < n and text[i] == "*":
                i += 1
                if i < n and text[i] == "/":
                    i += 1
                if i == n:
                    if kind == "exact":
                        kind = "prefix"
                    else:
                        rx += ".*"
                        kind = "regexp"
                else:
                    rx += "(.*/)?"
                    kind = "regexp"
                if first:
                    kind = "suffix"
            else:
                rx += "[^/]*"
                kind = "regexp"
        elif ch == "?":
            rx += "[^/]"
            kind = "regexp"
        elif ch in _ESCAPE:
            rx += "\\" + ch
        elif ch == "\\":
            if i < n:
                rx += re.escape(text[i])
                i += 1
                kind = "regexp"
            else:
                rx += "\\\\"
        elif ch in "[]":
            rx += ch
            kind = "regexp"
        else:
            rx += ch
    if kind != "regexp":
        _check_pattern(text)
        return _Pattern(text, exclusion, kind, None)
    try:
        regex = re.compile(rx + "$", re.DOTALL)
    except re.error as e:
        raise InvalidArgument(f".dockerignore: syntax error in pattern {text!r}: {e}") from None
    return _Pattern(text, exclusion, kind, regex)


def _check_pattern(text: str) -> None:
    """Go's filepath.Match(pattern, ".") error: an unterminated ``[`` class."""
    depth = 0
    escaped = False
    for ch in text:
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == "[":
            depth = 1
        elif ch == "]":
            depth = 0
    if depth:
        raise InvalidArgument(f".dockerignore: syntax error in pattern {text!r}")


class IgnoreMatcher:
    """Docker's .dockerignore matcher (last matching pattern wins)."""

    def __init__(self, patterns: Sequence[str]) -> None:
        self._patterns: list[_Pattern] = []
        for raw in patterns:
            p = raw.strip()
            if not p:
                continue
            exclusion = p.startswith("!")
            if exclusion:
                p = p[1:].strip()
                if not p:
                    raise InvalidArgument('.dockerignore: illegal exclusion pattern: "!"')
            p = clean(p)
            if len(p) > 1 and p.startswith("/"):
                p = p[1:]
            self._patterns.append(_compile(p, exclusion))

    @classmethod
    def from_file(cls, data: bytes) -> IgnoreMatcher:
        """Patterns from the bytes of a .dockerignore file (comments, blanks skipped)."""
        text = data.decode("utf-8", errors="replace").removeprefix("\ufeff")
        lines = (line.removesuffix("\r") for line in text.split("\n"))
        patterns = [line for line in lines if not line.startswith("#")]
        return cls(patterns)

    @property
    def patterns(self) -> list[str]:
        return [("!" if p.exclusion else "") + p.text for p in self._patterns]

    def excluded(self, path: str, is_dir: bool = False) -> bool:
        """Whether ``path`` is left out of the context (``is_dir`` is accepted for
        callers' convenience; Docker's rules do not depend on it)."""
        parent = posixpath.dirname(path)
        parts = parent.split("/") if parent else []
        matched = False
        for pat in self._patterns:
            if pat.exclusion != matched:
                continue
            hit = pat.match(path)
            if not hit:
                hit = any(pat.match("/".join(parts[: i + 1])) for i in range(len(parts)))
            if hit:
                matched = not pat.exclusion
        return matched

    def may_contain_included(self, dir_path: str) -> bool:
        """Whether an excluded directory may still hold re-included paths.

        Docker's context walk (moby ``archive.TarWithOptions``) prunes an
        excluded directory unless some ``!`` pattern starts with that
        directory's path, so ``!**/keep`` does not bring back ``dir/keep``
        when ``dir`` is excluded; we prune the same way.
        """
        prefix = clean(dir_path).lstrip("/") + "/"
        return any(p.exclusion and (p.text + "/").startswith(prefix) for p in self._patterns)
