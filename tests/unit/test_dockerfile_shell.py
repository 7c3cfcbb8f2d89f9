"""seacan.dockerfile.shell: Docker's word expansion, table-driven.

The cases are ours, written from the Dockerfile reference ("Environment
replacement": ``$v`` and ``${v}``, the ``:-`` ``-`` ``:+`` ``+`` ``:?`` ``?``
``#`` ``##`` ``%`` ``%%`` ``/`` ``//`` modifiers, ``\\$`` for a literal
dollar, nothing expanded inside single quotes) and the POSIX shell quoting
rules that section follows. Rows marked "bash" were checked with bash, which
gives the same answer. Rows marked "not a shell" are where Docker differs
from a shell on purpose (positional and special parameters are never set,
``${v:=x}`` is refused, an empty quoted word makes no word); they follow the
reference's list of supported forms (anything else is an error).
"""

from __future__ import annotations

import dockerfile
import pytest

from seacan.dockerfile import parser as p
from seacan.dockerfile.shell import EXPANDS, Lexer, expand, expand_words, keyvalues
from seacan.errors import InvalidArgument

pytestmark = pytest.mark.unit

ENV = {
    "USER": "kim",
    "HOME": "/root",
    "EMPTY": "",
    "SPACED": "one  two",
    "PADDED": "  a b  ",
    "CITY": "Zürich",
    "FILE": "archive.tar.gz",
    "URL": "https://example.com/a/b",
    "PATHS": "/a:/b:/c",
    "STAR": "*x*",
}

# (word, what one expanded word is: variables substituted, quotes and escapes removed)
EXPAND = [
    # plain text, unicode
    ("plain", "plain"),
    ("grüße/日本", "grüße/日本"),
    ("$CITY-1", "Zürich-1"),
    # quote removal (bash)
    ("ab'cd'ef", "abcdef"),
    ('"it\'s"', "it's"),
    ("'say \"hi\"'", 'say "hi"'),
    ('""', ""),
    ("''", ""),
    ("x''y", "xy"),
    ("\"'q'\"", "'q'"),
    # single quotes: no escapes and no variables (bash)
    ("'a\\b'", "a\\b"),
    ("'a\\\\b'", "a\\\\b"),
    ("'end\\'", "end\\"),
    ("x'$HOME'y", "x$HOMEy"),
    ("'${USER:-z}'", "${USER:-z}"),
    ("'\\$USER'", "\\$USER"),
    # double quotes: the escape only escapes " $ and itself (bash)
    ('"a\\b"', "a\\b"),
    ('"a\\\\b"', "a\\b"),
    ('"q\\"q"', 'q"q'),
    ('"\\$USER"', "$USER"),
    ('"\\\\$USER"', "\\kim"),
    ('"$USER"', "kim"),
    ('"[$USER]"', "[kim]"),
    ('"${SPACED}"', "one  two"),
    # unquoted escapes (bash)
    ("a\\b", "ab"),
    ("a\\\\b", "a\\b"),
    ("a\\'b", "a'b"),
    ('a\\"b', 'a"b'),
    ("a\\ b", "a b"),
    ("\\$USER", "$USER"),
    ("\\\\$USER", "\\kim"),
    ("\\${USER}", "${USER}"),
    ("pre\\${}post", "pre${}post"),
    # a lone escape at the end of a word is dropped (the parser has already
    # joined continuation lines, so nothing follows it)
    ("trail\\", "trail"),
    ("trail\\\\", "trail\\"),
    # $name and ${name}
    ("$USER", "kim"),
    ("${USER}", "kim"),
    ("x${USER}y", "xkimy"),
    ("$USER.name", "kim.name"),
    ("$USER/$HOME", "kim//root"),
    ("$USERNAME", ""),
    ("${USER}NAME", "kimNAME"),
    ("$user", ""),
    ("${NOPE}", ""),
    ("${USER}}", "kim}"),
    # a $ that starts no name stays (bash)
    ("$", "$"),
    ("cost: 5$", "cost: 5$"),
    ("$.", "$."),
    ("a$/b", "a$/b"),
    ("$=x", "$=x"),
    # not a shell: positional parameters are never set (all digits are the name)
    ("$1", ""),
    ("x$12y", "xy"),
    ("${3}", ""),
    ("${10:-ten}", "ten"),
    ("${07:+seven}", ""),
    ("$0file", "file"),
    # not a shell: special parameters are never set
    ("a$@b", "ab"),
    ("a$*b", "ab"),
    ("a$#b", "ab"),
    ("a$?b", "ab"),
    ("a$-b", "ab"),
    ("a$$b", "ab"),
    ("a$!b", "ab"),
    ("$##", "#"),
    ("${#}", ""),
    ("${?:-q}", "q"),
    ("${$:+pid}", ""),
    ("${@}x", "x"),
    # :- and - : default when unset (-) or unset or empty (:-)
    ("${NOPE:-dflt}", "dflt"),
    ("${EMPTY:-dflt}", "dflt"),
    ("${USER:-dflt}", "kim"),
    ("${NOPE-dflt}", "dflt"),
    ("${EMPTY-dflt}", ""),
    ("${USER-dflt}", "kim"),
    ("${NOPE:-}", ""),
    ("${NOPE:-a b}", "a b"),
    ('${NOPE:-"q d"}', "q d"),
    ("${NOPE:-'$USER'}", "$USER"),
    ("${NOPE:-$HOME/bin}", "/root/bin"),
    ("${NOPE:-${USER}}", "kim"),
    ("${NOPE:-${ALSO:-deep}}", "deep"),
    ("${NOPE:-${USER:-deep}}x", "kimx"),
    ("${NOPE:-\\$USER}", "$USER"),
    ("${NOPE:-a\\${b}c}", "a${bc}"),
    ("${NOPE:-{x}", "{x"),
    ("${NOPE:-x}}", "x}"),
    # :+ and + : alternative when set (+) or set and not empty (:+)
    ("${USER:+set}", "set"),
    ("${EMPTY:+set}", ""),
    ("${NOPE:+set}", ""),
    ("${USER+set}", "set"),
    ("${EMPTY+set}", "set"),
    ("${NOPE+set}", ""),
    ("${USER:+[$USER]}", "[kim]"),
    ("${USER:+${USER}:}", "kim:"),
    ("${USER:+${NOPE}}", ""),
    ("${NOPE:+${USER}}x", "x"),
    # :? and ? : the value when set (?) or set and not empty (:?)
    ("${USER:?}", "kim"),
    ("${USER?}", "kim"),
    ("${EMPTY?}", ""),
    ("${USER:?why}", "kim"),
    # # ## % %% : remove the shortest/longest matching prefix/suffix (bash)
    ("${FILE%.*}", "archive.tar"),
    ("${FILE%%.*}", "archive"),
    ("${FILE#*.}", "tar.gz"),
    ("${FILE##*.}", "gz"),
    ("${FILE%.?z}", "archive.tar"),
    ("${FILE#arch}", "ive.tar.gz"),
    ("${FILE#nomatch}", "archive.tar.gz"),
    ("${FILE%tar}", "archive.tar.gz"),
    ("${URL#*//}", "example.com/a/b"),
    ("${URL##*/}", "b"),
    ("${URL%/*}", "https://example.com/a"),
    ("${URL%%/*}", "https:"),
    ("${STAR#\\*}", "x*"),
    ("${STAR%\\*}", "*x"),
    ("${NOPE#x}", ""),
    ("${EMPTY%%*}", ""),
    # / and // : replace the first / every match (bash)
    ("${USER/k/K}", "Kim"),
    ("${USER/x/y}", "kim"),
    ("${PATHS/:/;}", "/a;/b:/c"),
    ("${PATHS//:/ }", "/a /b /c"),
    ("${FILE/.*/}", "archive"),
    ("${FILE/a?/X}", "Xchive.tar.gz"),
    ("${FILE//a/}", "rchive.tr.gz"),
    ("${NOPE/a/b}", ""),
]


@pytest.mark.parametrize(("word", "expected"), EXPAND)
def test_expand(word: str, expected: str) -> None:
    assert expand(word, ENV) == expected


# words that Docker refuses, and a piece of the message
EXPAND_ERRORS = [
    # unterminated quotes (bash refuses them too)
    ("'open", "matching single-quote"),
    ('"open', "matching double-quote"),
    ('"esc\\"', "matching double-quote"),
    ("ab\\\\'c", "matching single-quote"),
    ("Zü'rich", "matching single-quote"),
    # ${} without a name, or an unclosed brace
    ("${}", "bad substitution"),
    ("x${}", "bad substitution"),
    ("${}x", "bad substitution"),
    ("${:}", "bad substitution"),
    ("${:-a}", "bad substitution"),
    ("${:+a}", "bad substitution"),
    ("${{USER}", "bad substitution"),
    ("${USER", "missing '}'"),
    ("x${NOPE:-a", "missing '}'"),
    ("${NOPE:-a ${USER}", "missing '}'"),
    # modifiers the reference does not list (not a shell: := = :# are refused)
    ("${USER:=x}", "unsupported modifier"),
    ("${USER=x}", "unsupported modifier"),
    ("${USER:x}", "unsupported modifier"),
    ("${USER:#x}", "unsupported modifier"),
    ("${.}", "unsupported modifier"),
    ("${USER,}", "unsupported modifier"),
    # ? and :? fail with the word, or a message naming the variable
    ("${NOPE?}", "NOPE: is not allowed to be unset"),
    ("${NOPE:?}", "NOPE: is not allowed to be unset"),
    ("${EMPTY:?}", "EMPTY: is not allowed to be empty"),
    ("${NOPE:?set NOPE first}", "NOPE: set NOPE first"),
    ("${EMPTY:?needed}", "EMPTY: needed"),
    # a pattern escape must escape a pattern character
    ("${FILE#\\q}", "invalid escape"),
]


@pytest.mark.parametrize(("word", "message"), EXPAND_ERRORS)
def test_expand_errors_name_the_problem(word: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        expand(word, ENV)


# (text, the words Docker's lexer makes of it): unquoted white space splits,
# including white space that comes out of a variable; quoted text never splits
WORDS = [
    ("one", ["one"]),
    ("a  b\tc", ["a", "b", "c"]),
    ("  lead and trail  ", ["lead", "and", "trail"]),
    ("x${SPACED}y", ["xone", "twoy"]),
    ('x"${SPACED}"y', ["xone  twoy"]),
    ('x "${SPACED}"', ["x", "one  two"]),
    ("${PADDED}", ["a", "b"]),
    ("[${PADDED}]", ["[", "a", "b", "]"]),
    ('["${PADDED}"]', ["[  a b  ]"]),
    ("'$SPACED' $USER", ["$SPACED", "kim"]),
    ("${NOPE}", []),
    ("a${NOPE}b", ["ab"]),
    ("${NOPE:-x y}", ["x", "y"]),
    ("a\\ b c", ["a b", "c"]),
    ("'a  b' c", ["a  b", "c"]),
    ('a\\" b', ['a"', "b"]),
    ('"a\\\\b"', ["a\\b"]),
    ("'a\\\\b'", ["a\\\\b"]),
    ("${USER}s 80/tcp", ["kims", "80/tcp"]),
    # not a shell: a quoted empty string makes no word
    ('""', []),
    ("x ''", ["x"]),
    ("   ", []),
]


@pytest.mark.parametrize(("text", "words"), WORDS)
def test_expand_words(text: str, words: list[str]) -> None:
    assert expand_words(text, ENV) == words
    assert Lexer("\\").process_words(text, ENV) == words


def test_expand_words_errors() -> None:
    with pytest.raises(InvalidArgument, match="matching double-quote"):
        expand_words('a "b', ENV)


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("C:\\dir`$USER", "C:\\dir$USER"),
        ("`$USER$USER", "$USERkim"),
        ("a` b", "a b"),
        ('"q`"q"', 'q"q'),
        ("${NOPE:-C:\\x}", "C:\\x"),
    ],
)
def test_backtick_escape(word: str, expected: str) -> None:
    # "# escape=`": the backslash is an ordinary character, ` escapes
    assert expand(word, ENV, escape="`") == expected


def kv(line: str, env: dict[str, str] | None) -> list[tuple[str, str | None]]:
    instr = p.parse(f"FROM scratch\n{line}\n").instructions[1]
    return keyvalues(instr, env)


@pytest.mark.parametrize(
    ("line", "raw", "expanded"),
    [
        ("ENV A=1", [("A", "1")], [("A", "1")]),
        ("ENV LEGACY v w  x", [("LEGACY", "v w  x")], [("LEGACY", "v w  x")]),
        (
            "ENV Q=\"a b\" R='c d' S=e\\ f",
            [("Q", '"a b"'), ("R", "'c d'"), ("S", "e\\ f")],
            [("Q", "a b"), ("R", "c d"), ("S", "e f")],
        ),
        ("ENV P=$USER/x", [("P", "$USER/x")], [("P", "kim/x")]),
        (
            'LABEL "com.x.y"="v 1" k=',
            [('"com.x.y"', '"v 1"'), ("k", "")],
            [("com.x.y", "v 1"), ("k", "")],
        ),
        ("ARG NAME", [("NAME", None)], [("NAME", None)]),
        ("ARG N=${USER:-z} M", [("N", "${USER:-z}"), ("M", None)], [("N", "kim"), ("M", None)]),
    ],
)
def test_keyvalues(line: str, raw: list[object], expanded: list[object]) -> None:
    assert kv(line, None) == raw
    assert kv(line, ENV) == expanded


@pytest.mark.parametrize(
    "line",
    [
        "ENV A=1",
        "ENV LEGACY v w  x",
        "ENV Q=\"a b\" R='c d' S=e\\ f",
        'LABEL "com.x.y"="v 1" k=',
        'LABEL a=b\\ c d=\'e f\' g="h\\"i"',
    ],
)
def test_raw_keyvalues_match_dockers_parser(line: str) -> None:
    # PyPI's dockerfile package is Docker's Go parser (no expansion): its
    # key/value split with quotes kept is what keyvalues(instr, None) gives
    (_, cmd) = dockerfile.parse_string(f"FROM scratch\n{line}\n")
    values = list(cmd.value)
    assert kv(line, None) == list(zip(values[::2], values[1::2], strict=True))


def test_expands_is_dockers_list() -> None:
    assert "COPY" in EXPANDS and "WORKDIR" in EXPANDS and "ARG" in EXPANDS
    assert not EXPANDS & {"RUN", "CMD", "ENTRYPOINT", "SHELL", "HEALTHCHECK"}
