""".dockerignore matching: Docker's rules, table-driven.

The cases are ours, written from ``man 5 dockerignore`` (containers-common)
and the Dockerfile reference's ".dockerignore file" section: patterns use
Go's ``filepath.Match`` rules (``*`` any run of non-separator characters,
empty included; ``?`` one non-separator character; ``[...]`` a class,
negated with ``^``; ``\\`` escapes) plus ``**`` for any number of
directories, zero included; patterns are cleaned with ``filepath.Clean`` and
a leading ``/`` is dropped (the context is the root); a pattern that matches
a directory excludes everything below it; ``!`` re-includes and the last
matching line wins.
"""

from __future__ import annotations

import pytest

from seacan.dockerfile.ignore import IgnoreMatcher
from seacan.errors import InvalidArgument

pytestmark = pytest.mark.unit

# (pattern, context path, whether that one pattern excludes the path)
SINGLE = [
    # a plain name: the path itself and everything below it, nothing else
    ("notes.txt", "notes.txt", True),
    ("notes.txt", "notes.txt.bak", False),
    ("notes.txt", "docs/notes.txt", False),
    ("vendor", "vendor/lib/x.go", True),
    ("src/gen", "src/gen/a/b.c", True),
    ("src/gen", "src/generated", False),
    ("src/gen", "gen", False),
    # * : any run of characters but "/", the empty run included
    ("*.go", "main.go", True),
    ("*.go", "main.go.orig", False),
    ("*.go", "cmd/main.go", False),
    ("cmd/*.go", "cmd/main.go", True),
    ("cmd/*.go", "cmd/.go", True),
    ("cmd/*.go", "cmd/sub/main.go", False),
    ("*", "anything", True),
    ("*", "dir/below", True),
    ("*/tmp", "build/tmp/x.o", True),
    ("*/tmp", "a/b/tmp", False),
    ("pre*post", "prepost", True),
    ("pre*post", "pre-mid-post", True),
    ("pre*post", "pre/post", False),
    (".*", ".env", True),
    (".*", ".git/config", True),
    (".*", "app/.env", False),
    (".*", "env", False),
    # ? : exactly one character but "/"
    ("log?.txt", "log1.txt", True),
    ("log?.txt", "log.txt", False),
    ("log?.txt", "log12.txt", False),
    ("a?b", "a/b", False),
    ("tmp?", "tmpA/inside", True),
    # [...] : a class; ^ negates it; "!" is an ordinary member (Go, not sh)
    ("v[0-9].md", "v7.md", True),
    ("v[0-9].md", "vx.md", False),
    ("v[0-9].md", "v10.md", False),
    ("[a-c]x", "bx", True),
    ("[^a-c]x", "dx", True),
    ("[^a-c]x", "bx", False),
    ("[!a]x", "!x", True),
    ("[!a]x", "bx", False),
    ("file[.]bak", "file.bak", True),
    ("file[.]bak", "filexbak", False),
    # \ escapes the next character
    ("a\\?b", "a?b", True),
    ("a\\?b", "axb", False),
    ("\\[x\\]", "[x]", True),
    ("star\\*", "star*", True),
    ("star\\*", "starry", False),
    # characters that are special in regular expressions are plain here
    ("v1.0+build", "v1.0+build", True),
    ("v1.0+build", "v1x0+build", False),
    ("(a|b)", "(a|b)", True),
    ("(a|b)", "a", False),
    ("cost$5{x}", "cost$5{x}", True),
    ("cost$5{x}", "cost5x", False),
    # ** : any number of directories, none included
    ("**", "top", True),
    ("**", "deep/down/file", True),
    ("**/*.log", "a.log", True),
    ("**/*.log", "x/y/a.log", True),
    ("**/*.log", "x/y/a.logs", False),
    ("**/cache", "cache", True),
    ("**/cache", "a/b/cache", True),
    ("**/cache", "a/b/cache/blob", True),
    ("**/cache", "a/b/cached", False),
    ("logs/**", "logs/a", True),
    ("logs/**", "logs/x/y/z", True),
    ("logs/**", "logs", False),
    ("a/**/b", "a/b", True),
    ("a/**/b", "a/x/y/b", True),
    ("a/**/b", "a/xb", False),
    ("a/**/b", "c/a/b", False),
    ("**/test/*.py", "test/t.py", True),
    ("**/test/*.py", "pkg/test/t.py", True),
    ("**/test/*.py", "pkg/test/sub/t.py", False),
    ("x**/*.c", "x/m.c", True),
    ("x**/*.c", "xy/z/m.c", True),
    ("**/", "any/thing", True),
    # a leading / is dropped: patterns are relative to the context root
    ("/config", "config", True),
    ("/config", "app/config", False),
    ("/app/*.pyc", "app/m.pyc", True),
    # patterns are cleaned (filepath.Clean): ., .., doubled and trailing /
    ("a/b/../c", "a/c", True),
    ("a/b/../c", "a/b/c", False),
    ("./x/./y", "x/y", True),
    ("x//y", "x/y", True),
    ("out/", "out/bin", True),
    ("/../secrets", "secrets", True),
    ("../outside", "outside", False),
]


@pytest.mark.parametrize(("pattern", "path", "excluded"), SINGLE)
def test_single_pattern(pattern: str, path: str, excluded: bool) -> None:
    assert IgnoreMatcher([pattern]).excluded(path) is excluded


# (patterns in file order, context path, excluded): the last matching line wins
RULES = [
    # ! re-includes what an earlier line excluded
    (["*.md", "!README.md"], "README.md", False),
    (["*.md", "!README.md"], "CHANGES.md", True),
    (["!README.md", "*.md"], "README.md", True),
    (["*.md", "!README.md", "README*"], "README.md", True),
    (["!keep"], "keep", False),
    # an exception below an excluded directory
    (["build", "!build/keep"], "build/keep", False),
    (["build", "!build/keep"], "build/keep/inner", False),
    (["build", "!build/keep"], "build/other", True),
    (["**", "!src"], "src/app/main.c", False),
    (["**", "!src"], "docs/x", True),
    (["**", "!src", "src/secret"], "src/secret/key", True),
    (["**", "!pkg/*.whl"], "pkg/tool-1.0+local-py3-none-any.whl", False),
    (["docs/**", "!docs/**/*.png", "docs/private"], "docs/private/a.png", True),
    (["docs/**", "!docs/**/*.png", "docs/private"], "docs/public/a.png", False),
    # exceptions are cleaned like the other patterns (and Docker's reader
    # trims the blanks after "!")
    (["logs", "!/logs/./today"], "logs/today", False),
    (["logs", "! logs/today"], "logs/today", False),
    # * does not cross directories, ** does
    (["*.txt"], "sub/a.txt", False),
    (["*/*.txt"], "sub/a.txt", True),
    (["**/*.txt"], "sub/deep/a.txt", True),
]


@pytest.mark.parametrize(("patterns", "path", "excluded"), RULES)
def test_rules(patterns: list[str], path: str, excluded: bool) -> None:
    assert IgnoreMatcher(patterns).excluded(path) is excluded


def test_from_file_comments_blanks_bom_crlf() -> None:
    data = b"\xef\xbb\xbf# comment\r\n\r\n  *.log  \r\n!keep.log\n # not a comment\n"
    m = IgnoreMatcher.from_file(data)
    assert m.patterns == ["*.log", "!keep.log", "# not a comment"]
    assert m.excluded("a.log") and not m.excluded("keep.log")
    assert m.excluded("# not a comment")


def test_may_contain_included_follows_dockers_walk() -> None:
    m = IgnoreMatcher(["docs", "!docs/keep.md", "build", "!**/important"])
    assert m.excluded("docs") and not m.excluded("docs/keep.md")
    assert m.may_contain_included("docs")
    # Docker prunes "build": no exception starts with "build/"
    assert not m.may_contain_included("build")
    assert not IgnoreMatcher(["x"]).may_contain_included("x")


# "!" alone, an unclosed class, a reversed range (Go's regexp refuses it too)
@pytest.mark.parametrize("patterns", [["!"], ["a[b"], ["[z-a]"]])
def test_bad_patterns(patterns: list[str]) -> None:
    with pytest.raises(InvalidArgument, match="dockerignore"):
        IgnoreMatcher(patterns)
