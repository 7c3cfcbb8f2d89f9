"""Docker's shell-word lexer: variable substitution and quote removal.

A port of moby/buildkit ``frontend/dockerfile/shell/lex.go``. It is not a
shell: it knows ``$V``, ``${V}``, ``${V:-x}`` ``${V-x}`` ``${V:+x}``
``${V+x}`` ``${V:?msg}`` ``${V?msg}``, ``${V#p}`` ``${V##p}`` ``${V%p}``
``${V%%p}``, ``${V/p/r}`` ``${V//p/r}``, single and double quotes and the
escape character, and nothing else (no command substitution, no globbing).

Which instructions expand variables (Docker's rule) is :data:`EXPANDS`;
RUN, CMD, ENTRYPOINT, SHELL and HEALTHCHECK never do: the shell does.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING

from seacan.errors import InvalidArgument

if TYPE_CHECKING:
    from seacan.dockerfile.parser import Instruction

EXPANDS = frozenset(
    {
        "ADD",
        "ARG",
        "COPY",
        "ENV",
        "EXPOSE",
        "FROM",
        "LABEL",
        "ONBUILD",
        "STOPSIGNAL",
        "USER",
        "VOLUME",
        "WORKDIR",
    }
)

_GO_SPACE = frozenset("\t\n\v\f\r \x85\xa0")
_SPECIAL_PARAMS = frozenset("@*#?-$!0")


def go_isspace(ch: str) -> bool:
    """Go's unicode.IsSpace (Python's str.isspace also takes \\x1c-\\x1f)."""
    return ch in _GO_SPACE or (ord(ch) > 0xFF and ch.isspace())


class LexError(Exception):
    """A syntax error in a shell word; callers turn it into InvalidArgument."""


class _Words:
    """Splits the output of the lexer into words the way lex.go's wordsStruct does."""

    def __init__(self) -> None:
        self.buf = ""
        self.words: list[str] = []
        self.in_word = False

    def add_char(self, ch: str) -> None:
        if go_isspace(ch):
            if self.in_word and self.buf:
                self.words.append(self.buf)
                self.buf = ""
                self.in_word = False
        else:
            self.add_raw_char(ch)

    def add_raw_char(self, ch: str) -> None:
        self.buf += ch
        self.in_word = True

    def add_string(self, s: str) -> None:
        for ch in s:
            self.add_char(ch)

    def add_raw_string(self, s: str) -> None:
        self.buf += s
        self.in_word = True

    def result(self) -> list[str]:
        if self.buf:
            self.words.append(self.buf)
        return self.words


class Lexer:
    """One word (or line) at a time; the flags are lex.go's ``Lex`` fields."""

    def __init__(
        self,
        escape: str = "\\",
        *,
        raw_quotes: bool = False,
        raw_escapes: bool = False,
        skip_unset: bool = False,
    ) -> None:
        self.escape = escape
        self.raw_quotes = raw_quotes
        self.raw_escapes = raw_escapes
        self.skip_unset = skip_unset
        self._src = ""
        self._pos = 0
        self._env: Mapping[str, str] = {}

    def process_word(self, word: str, env: Mapping[str, str]) -> str:
        return self._process(word, env)[0]

    def process_words(self, word: str, env: Mapping[str, str]) -> list[str]:
        return self._process(word, env)[1]

    def _process(self, word: str, env: Mapping[str, str]) -> tuple[str, list[str]]:
        self._src, self._pos, self._env = word, 0, env
        try:
            return self._stop_on(None, self.raw_escapes)
        except LexError as e:
            raise LexError(f"failed to process {_go_quote(word)}: {e}") from None

    def _peek(self) -> str:
        return self._src[self._pos] if self._pos < len(self._src) else ""

    def _next(self) -> str:
        ch = self._peek()
        if ch:
            self._pos += 1
        return ch

    def _stop_on(self, stop: str | None, raw_escapes: bool) -> tuple[str, list[str]]:
        saved, self.raw_escapes = self.raw_escapes, raw_escapes
        try:
            return self._stop_on_inner(stop)
        finally:
            self.raw_escapes = saved

    def _stop_on_inner(self, stop: str | None) -> tuple[str, list[str]]:
        result: list[str] = []
        words = _Words()
        while self._peek():
            ch = self._peek()
            if stop is not None and ch == stop:
                self._next()
                return "".join(result), words.result()
            if ch == "$":
                tmp = self._dollar()
                result.append(tmp)
                words.add_string(tmp)
            elif ch == "<":
                tmp = self._possible_heredoc()
                result.append(tmp)
                words.add_raw_string(tmp)
            elif ch in "'\"":
                tmp = self._single_quote() if ch == "'" else self._double_quote()
                result.append(tmp)
                words.add_raw_string(tmp)
            else:
                ch = self._next()
                if ch == self.escape:
                    if self.raw_escapes:
                        words.add_raw_char(ch)
                        result.append(ch)
                    ch = self._next()
                    if not ch:
                        break
                    words.add_raw_char(ch)
                else:
                    words.add_char(ch)
                result.append(ch)
        if stop is not None:
            raise LexError(f"unexpected end of statement while looking for matching {stop}")
        return "".join(result), words.result()

    def _single_quote(self) -> str:
        first = self._next()
        out = [first] if self.raw_quotes else []
        while True:
            ch = self._next()
            if not ch:
                raise LexError(
                    "unexpected end of statement while looking for matching single-quote"
                )
            if ch == "'":
                if self.raw_quotes:
                    out.append(ch)
                return "".join(out)
            out.append(ch)

    def _double_quote(self) -> str:
        first = self._next()
        out = [first] if self.raw_quotes else []
        while True:
            p = self._peek()
            if not p:
                raise LexError(
                    "unexpected end of statement while looking for matching double-quote"
                )
            if p == '"':
                self._next()
                if self.raw_quotes:
                    out.append(p)
                return "".join(out)
            if p == "$":
                out.append(self._dollar())
                continue
            ch = self._next()
            if ch == self.escape:
                if self.raw_escapes:
                    out.append(ch)
                nxt = self._peek()
                if not nxt:
                    continue
                if nxt in ('"', "$", self.escape):
                    ch = self._next()
            out.append(ch)

    def _possible_heredoc(self) -> str:
        self._next()
        if self._peek() != "<":
            return "<"
        self._next()
        space: list[str] = []
        while self._peek() and self._peek() in "\t\r ":
            space.append(self._next())
        return "<<" + "".join(space)

    def _name(self) -> str:
        name: list[str] = []
        while self._peek():
            ch = self._peek()
            if not name and ch.isdigit():
                while self._peek() and self._peek().isdigit():
                    name.append(self._next())
                return "".join(name)
            if not name and ch in _SPECIAL_PARAMS:
                return self._next()
            if not (ch.isalpha() or ch.isdigit() or ch == "_"):
                break
            name.append(self._next())
        return "".join(name)

    def _get(self, name: str) -> tuple[str, bool]:
        if name in self._env:
            return self._env[name], True
        return "", False

    def _dollar(self) -> str:
        self._next()
        if self._peek() != "{":
            name = self._name()
            if not name:
                return "$"
            value, found = self._get(name)
            if not found and self.skip_unset:
                return "$" + name
            return value
        self._next()
        p = self._peek()
        if not p:
            raise LexError("syntax error: missing '}'")
        if p in "{}:":
            raise LexError("syntax error: bad substitution")
        name = self._name()
        ch = self._next()
        if not ch:
            raise LexError("syntax error: missing '}'")
        if ch == "}":
            value, found = self._get(name)
            if not found and self.skip_unset:
                return "${" + name + "}"
            return value
        if ch == "/":
            return self._replace(name)
        chs = ch
        null_is_unset = False
        if ch == ":":
            null_is_unset = True
            ch = self._next()
            chs += ch
        elif ch not in "+-?#%":
            raise LexError(f"unsupported modifier ({chs}) in substitution")
        raw = ch in "#%"
        if null_is_unset and raw:
            raise LexError(f"unsupported modifier ({chs}) in substitution")
        try:
            word, _ = self._stop_on("}", raw)
        except LexError:
            if not self._peek():
                raise LexError("syntax error: missing '}'") from None
            raise
        value, found = self._get(name)
        if self.skip_unset and not found:
            return "${" + name + chs + word + "}"
        unset = not found or (null_is_unset and value == "")
        if ch == "-":
            return word if unset else value
        if ch == "+":
            return "" if unset else word
        if ch == "?":
            if not found:
                raise LexError(f"{name}: {word or 'is not allowed to be unset'}")
            if null_is_unset and value == "":
                raise LexError(f"{name}: {word or 'is not allowed to be empty'}")
            return value
        if ch in "#%":
            greedy = word.startswith(ch)
            if greedy:
                word = word[1:]
            if ch == "%":
                return _trim_suffix(word, value, greedy)
            return _trim_prefix(word, value, greedy)
        raise LexError(f"unsupported modifier ({chs}) in substitution")

    def _replace(self, name: str) -> str:
        replace_all = self._peek() == "/"
        if replace_all:
            self._next()
        try:
            pattern, _ = self._stop_on("/", True)
        except LexError:
            if not self._peek():
                raise LexError("syntax error: missing '/' in ${}") from None
            raise
        try:
            replacement, _ = self._stop_on("}", True)
        except LexError:
            if not self._peek():
                raise LexError("syntax error: missing '}'") from None
            raise
        value, found = self._get(name)
        if self.skip_unset and not found:
            return "${" + name + "/" + pattern + "/" + replacement + "}"
        rx = _pattern_regex(pattern, greedy=True, anchored=False)
        if replace_all:
            return rx.sub(lambda _m: replacement, value)
        return rx.sub(lambda _m: replacement, value, count=1)


def _go_quote(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _pattern_regex(pattern: str, *, greedy: bool, anchored: bool) -> re.Pattern[str]:
    """A shell pattern (``*``, ``?``, ``\\`` escapes) as a regex, like lex.go."""
    out = ["^"] if anchored else []
    star = ".*" if greedy else ".*?"
    i = 0
    while i < len(pattern):
        tok = pattern[i]
        i += 1
        if tok == "*":
            out.append(star)
        elif tok == "?":
            out.append(".")
        elif tok == "\\":
            nxt = pattern[i] if i < len(pattern) else ""
            if nxt in ("}", "/"):
                continue
            if nxt not in ("*", "?", "\\"):
                raise LexError(
                    f"invalid pattern ({pattern}) in substitution: invalid escape '\\{nxt}'"
                )
            out.append(re.escape(nxt))
            i += 1
        else:
            out.append(re.escape(tok))
    return re.compile("".join(out), re.DOTALL)


def _trim_prefix(pattern: str, value: str, greedy: bool) -> str:
    m = _pattern_regex(pattern, greedy=greedy, anchored=True).match(value)
    return value[m.end() :] if m else value


def _reverse_pattern(pattern: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(pattern):
        if pattern[i] == "\\" and i != len(pattern) - 1:
            out.append(pattern[i : i + 2])
            i += 2
        else:
            out.append(pattern[i])
            i += 1
    return "".join(reversed(out))


def _trim_suffix(pattern: str, value: str, greedy: bool) -> str:
    return _trim_prefix(_reverse_pattern(pattern), value[::-1], greedy)[::-1]


def expand(word: str, env: Mapping[str, str], *, escape: str = "\\") -> str:
    """One word with variables substituted and quotes and escapes removed."""
    try:
        return Lexer(escape).process_word(word, env)
    except LexError as e:
        raise InvalidArgument(str(e)) from None


def expand_words(text: str, env: Mapping[str, str], *, escape: str = "\\") -> list[str]:
    """Words of ``text`` after substitution, split on unquoted white space.

    A variable's value is split too (``EXPOSE $PORTS``), quoted text is not.
    """
    try:
        return Lexer(escape).process_words(text, env)
    except LexError as e:
        raise InvalidArgument(str(e)) from None


def parse_words(rest: str, escape: str = "\\") -> list[str]:
    """Docker's parser-level word split (quotes and escapes kept): parseWords."""
    words: list[str] = []
    buf: list[str] = []
    blank_ok = False
    quote = ""
    phase = 0  # 0 spaces, 1 word, 2 quote
    pos = 0
    n = len(rest)
    while pos <= n:
        ch = rest[pos] if pos < n else ""
        if phase == 0:
            if pos == n:
                break
            if go_isspace(ch):
                pos += 1
                continue
            phase = 1
        if pos == n:
            if blank_ok or buf:
                words.append("".join(buf))
            break
        if phase == 1:
            if go_isspace(ch):
                phase = 0
                if blank_ok or buf:
                    words.append("".join(buf))
                buf = []
                blank_ok = False
                pos += 1
                continue
            if ch in "'\"":
                quote = ch
                blank_ok = True
                phase = 2
            if ch == escape:
                if pos + 1 == n:
                    pos += 1
                    continue
                buf.append(ch)
                pos += 1
                ch = rest[pos]
            buf.append(ch)
            pos += 1
            continue
        # phase == 2: inside quotes
        if ch == quote:
            phase = 1
        if ch == escape and quote != "'":
            if pos + 1 == n:
                phase = 1
                pos += 1
                continue
            pos += 1
            buf.append(ch)
            ch = rest[pos]
        buf.append(ch)
        pos += 1
    return words


_WS = re.compile(r"[\t\v\f\r ]+")


def name_values(cmd: str, rest: str, escape: str = "\\") -> list[tuple[str, str, bool]]:
    """ENV/LABEL at the parser level: (key, raw value, has '=') like parseNameVal.

    ``ENV k v w`` (legacy) gives one pair ("k", "v w"); ``ENV a=1 b="x y"`` two.
    """
    words = parse_words(rest, escape)
    if not words:
        return []
    if "=" not in words[0]:
        parts = _WS.split(rest, maxsplit=1)
        if len(parts) < 2:
            raise InvalidArgument(f"{cmd} must have two arguments")
        return [(parts[0], parts[1], False)]
    out: list[tuple[str, str, bool]] = []
    for word in words:
        if "=" not in word:
            raise InvalidArgument(
                f"Syntax error - can't find = in {_go_quote(word)}. Must be of the form: name=value"
            )
        key, value = word.split("=", 1)
        out.append((key, value, True))
    return out


def keyvalues(instr: Instruction, env: Mapping[str, str] | None) -> list[tuple[str, str | None]]:
    """The pairs of an ENV, LABEL or ARG, in order.

    With ``env`` None the raw words come back (quotes kept, as Docker's parser
    gives them); with a mapping, keys and values are expanded (quotes removed).
    An ARG without ``=`` has the value None; ENV and LABEL values are never None.
    The escape character is the one the instruction was parsed with.
    """
    esc = instr.escape
    if instr.cmd == "ARG":
        pairs: list[tuple[str, str | None]] = []
        for word in parse_words(instr.args[0] if instr.args else "", esc):
            key, eq, value = word.partition("=")
            if eq and not key:
                raise InvalidArgument("ARG names can not be blank")
            pairs.append((key, value if eq else None))
    elif instr.cmd in ("ENV", "LABEL"):
        pairs = [(k, v) for k, v, _ in name_values(instr.cmd, instr.args[0], esc)]
    else:
        raise InvalidArgument(f"{instr.cmd} has no key=value arguments")
    if env is None:
        return pairs
    return [
        (expand(k, env, escape=esc), None if v is None else expand(v, env, escape=esc))
        for k, v in pairs
    ]
