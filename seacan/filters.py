"""containerd's filter grammar (``filters/`` in containerd 1.6), for every List call.

A filter string is one or more *selectors* joined by commas, all of which
must match (AND); a request's repeated filter strings are alternatives (OR).
An empty string, or no strings at all, matches everything::

    selectors := selector ("," selector)*
    selector  := fieldpath [operator value]
    fieldpath := field ("." field)*
    field     := quoted | [A-Za-z0-9_]+
    operator  := "==" | "!=" | "~="
    value     := quoted | [^\\s,]+
    quoted    := "..." (Go string syntax); after ~= also /.../ and |...|

Examples::

    name==foo                       the field equals "foo"
    labels.foo                      the label "foo" is present
    labels."io.k8s/app"==web        a quoted component holds dots and slashes
    other~=/[abc]+/,name!=foo       a regular expression (searched, unanchored)

A bare field path tests for presence. ``!=`` and ``~=`` compare an absent
field as ``""``, as containerd does. Values are compared as strings.

Usage::

    f = filters.parse(request.filters)                # InvalidArgument on bad syntax
    keep = [i for i in infos if f.match(filters.lookup_from({"digest": i.digest}, i.labels))]

Error messages keep containerd's shape, which points at the offending
character: ``filters: parse error: [labels. >|?|< foo]: expected field or quoted``.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from seacan import errors

Lookup = Callable[[Sequence[str]], str | None]
"""Maps a field path (``["labels", "a.b"]``) to its value, or None when absent."""


class Op(enum.Enum):
    PRESENT = "?"
    EQUAL = "=="
    NOT_EQUAL = "!="
    MATCHES = "~="


@dataclass(frozen=True, slots=True)
class Selector:
    """One ``fieldpath[op value]`` test."""

    fieldpath: tuple[str, ...]
    op: Op
    value: str = ""
    pattern: re.Pattern[str] | None = None

    def match(self, lookup: Lookup) -> bool:
        found = lookup(self.fieldpath)
        if self.op is Op.PRESENT:
            return found is not None
        if self.op is Op.EQUAL:
            return found is not None and found == self.value
        if self.op is Op.NOT_EQUAL:
            return (found or "") != self.value
        assert self.pattern is not None
        return self.pattern.search(found or "") is not None


@dataclass(frozen=True, slots=True)
class Filter:
    """Alternatives (OR) of selector conjunctions (AND)."""

    alternatives: tuple[tuple[Selector, ...], ...]

    def match(self, lookup: Lookup) -> bool:
        return any(all(s.match(lookup) for s in conj) for conj in self.alternatives)

    @property
    def matches_all(self) -> bool:
        return any(not conj for conj in self.alternatives)


ALWAYS = Filter(((),))


def parse(exprs: Sequence[str] | str) -> Filter:
    """Parse request filters: repeated strings are ORed; ``[]`` and ``""`` match all.

    A single ``str`` (the singular ``filter`` field of some requests) is one
    alternative. Raises InvalidArgument on a syntax error.
    """
    if isinstance(exprs, str):
        exprs = [exprs]
    if not exprs:
        return ALWAYS
    return Filter(tuple(_Parser(e).parse() for e in exprs))


def lookup_from(fields: Mapping[str, str], labels: Mapping[str, str]) -> Lookup:
    """The usual adaptor: top-level fields by (dotted) name, labels under ``labels.<key>``.

    An empty field value counts as absent (containerd's adaptors do the
    same); a label with an empty value is present.
    """

    def lookup(fieldpath: Sequence[str]) -> str | None:
        if not fieldpath:
            return None
        if fieldpath[0] == "labels":
            return labels.get(".".join(fieldpath[1:]))
        value = fields.get(".".join(fieldpath))
        return value or None

    return lookup


# -- scanner (a port of containerd's filters/scanner.go) ---------------------

_EOF = -1
_ILLEGAL = -2


class _Tok(enum.Enum):
    EOF = "EOF"
    QUOTED = "Quoted"
    VALUE = "Value"
    FIELD = "Field"
    SEPARATOR = "Separator"
    OPERATOR = "Operator"
    ILLEGAL = "Illegal"
    OTHER = "Other"  # any other single character


def _is_field(ch: int) -> bool:
    return ch >= 0 and (chr(ch) == "_" or (chr(ch).isascii() and chr(ch).isalnum()))


def _is_value(ch: int) -> bool:
    if ch < 0:
        return False
    c = chr(ch)
    return c != "," and not c.isspace() and c.isprintable()


def _digit(ch: int) -> int:
    c = chr(ch) if ch >= 0 else ""
    if c and c in "0123456789abcdefABCDEF":
        return int(c, 16)
    return 16


class _Scanner:
    def __init__(self, text: str) -> None:
        self.input = text
        self.pos = 0  # start of the current character
        self.ppos = 0  # just past it
        self.value = False  # the next bare word is a value, not a field
        self.err = ""

    def next(self) -> int:
        if self.pos >= len(self.input):
            return _EOF
        self.pos = self.ppos
        if self.ppos >= len(self.input):
            return _EOF
        ch = ord(self.input[self.ppos])
        self.ppos += 1
        if ch == 0:
            self.error("unexpected null")
            return _ILLEGAL
        return ch

    def peek(self) -> int:
        pos, ppos = self.pos, self.ppos
        ch = self.next()
        self.pos, self.ppos = pos, ppos
        return ch

    def scan(self) -> tuple[int, _Tok, str]:
        ch = self.next()
        pos = self.pos
        while ch >= 0 and chr(ch).isspace():
            ch = self.next()
            pos = self.pos
        if ch == _EOF:
            return self.pos, _Tok.EOF, ""
        if ch == _ILLEGAL:
            return self.pos, _Tok.ILLEGAL, ""
        c = chr(ch)
        if c in '/|"':
            ok = self._quoted(ch)
            return pos, _Tok.QUOTED if ok else _Tok.ILLEGAL, self.input[pos : self.ppos]
        if c in ",.":
            self.value = False
            return pos, _Tok.SEPARATOR, c
        if c in "=!~":
            while (p := self.peek()) >= 0 and chr(p) in "=!~":
                self.next()
            self.value = True
            return pos, _Tok.OPERATOR, self.input[pos : self.ppos]
        if self.value:
            while _is_value(self.peek()):
                self.next()
            self.value = False
            return pos, _Tok.VALUE, self.input[pos : self.ppos]
        if _is_field(ch):
            while _is_field(self.peek()):
                self.next()
            return pos, _Tok.FIELD, self.input[pos : self.ppos]
        return self.pos, _Tok.OTHER, c

    def _quoted(self, quote: int) -> bool:
        illegal = False
        ch = self.next()
        while ch != quote:
            if ch < 0 or ch == ord("\n"):
                self.error("quoted literal not terminated")
                return False
            if ch == ord("\\"):
                ch, legal = self._escape(quote)
                illegal = illegal or not legal
            else:
                ch = self.next()
        return not illegal

    def _escape(self, quote: int) -> tuple[int, bool]:
        ch = self.next()
        c = chr(ch) if ch >= 0 else ""
        if c and (c in "abfnrtv\\" or ch == quote):
            return self.next(), True
        if c and c in "01234567":
            return self._digits(ch, 8, 3)
        if c and c in "xuU":
            return self._digits(self.next(), 16, {"x": 2, "u": 4, "U": 8}[c])
        self.error("illegal escape sequence")
        return ch, False

    def _digits(self, ch: int, base: int, n: int) -> tuple[int, bool]:
        while n > 0 and _digit(ch) < base:
            ch = self.next()
            n -= 1
        if n > 0:
            self.error("illegal numeric escape sequence")
            return ch, False
        return ch, True

    def error(self, msg: str) -> None:
        if not self.err:
            self.err = msg


# -- unquoting (containerd's filters/quote.go: Go syntax, plus / and | quotes) --

_SIMPLE_ESCAPES = {"a": 7, "b": 8, "f": 12, "n": 10, "r": 13, "t": 9, "v": 11, "\\": 92}


class _QuoteError(Exception):
    pass


def _unquote(s: str) -> str:
    if len(s) < 2 or s[0] != s[-1] or s[0] not in '"/|':
        raise _QuoteError
    quote, body = s[0], s[1:-1]
    if "\n" in body:
        raise _QuoteError
    out = bytearray()
    i = 0
    while i < len(body):
        c = body[i]
        if c == quote:
            raise _QuoteError
        if c != "\\":
            out += c.encode("utf-8", "surrogatepass")
            i += 1
            continue
        if i + 1 >= len(body):
            raise _QuoteError
        e = body[i + 1]
        i += 2
        if e in _SIMPLE_ESCAPES:
            out.append(_SIMPLE_ESCAPES[e])
        elif e in "xuU":
            n = {"x": 2, "u": 4, "U": 8}[e]
            digits = body[i : i + n]
            if len(digits) < n or any(_digit(ord(d)) >= 16 for d in digits):
                raise _QuoteError
            v = int(digits, 16)
            i += n
            if e == "x":
                out.append(v)
            elif v > 0x10FFFF:
                raise _QuoteError
            else:
                out += chr(v).encode("utf-8", "surrogatepass")
        elif e in "01234567":
            digits = body[i - 1 : i + 2]
            if len(digits) < 3 or any(d not in "01234567" for d in digits):
                raise _QuoteError
            v = int(digits, 8)
            if v > 255:
                raise _QuoteError
            out.append(v)
            i += 2
        elif e in "'\"|/" and e == quote:
            out.append(ord(e))
        else:
            raise _QuoteError
    return out.decode("utf-8", "replace")


# -- parser (containerd's filters/parser.go) ---------------------------------


class _Parser:
    def __init__(self, text: str) -> None:
        self.input = text
        self.s = _Scanner(text)

    def parse(self) -> tuple[Selector, ...]:
        if self.input == "":
            return ()
        selectors = [self._selector()]
        while True:
            ch = self.s.peek()
            if ch == ord(","):
                pos, tok, _ = self.s.scan()
                if tok is not _Tok.SEPARATOR:
                    raise self._err(pos, "expected a separator")
                selectors.append(self._selector())
            elif ch == _EOF:
                return tuple(selectors)
            else:
                bad = chr(ch) if ch >= 0 else "\ufffd"
                raise self._err(self.s.ppos, f"unexpected input: {bad}")

    def _selector(self) -> Selector:
        fieldpath = self._fieldpath()
        if self.s.peek() in (ord(","), _EOF):
            return Selector(fieldpath, Op.PRESENT)
        op = self._operator()
        value = self._value(allow_alt_quotes=op is Op.MATCHES)
        if op is not Op.MATCHES:
            return Selector(fieldpath, op, value)
        try:
            pattern = re.compile(value)
        except re.error as e:
            raise errors.InvalidArgument(
                f"filters: parse error: [{self.input}]: invalid regular expression {value!r}: {e}"
            ) from None
        return Selector(fieldpath, op, value, pattern)

    def _fieldpath(self) -> tuple[str, ...]:
        fields = [self._field()]
        while self.s.peek() == ord("."):
            pos, tok, _ = self.s.scan()
            if tok is not _Tok.SEPARATOR:
                raise self._err(pos, "expected a field separator (`.`)")
            fields.append(self._field())
        return tuple(fields)

    def _field(self) -> str:
        pos, tok, text = self.s.scan()
        if tok is _Tok.FIELD:
            return text
        if tok is _Tok.QUOTED:
            return self._unquote(pos, text, allow_alts=False)
        if tok is _Tok.ILLEGAL:
            raise self._err(pos, self.s.err)
        raise self._err(pos, "expected field or quoted")

    def _operator(self) -> Op:
        pos, tok, text = self.s.scan()
        if tok is _Tok.OPERATOR:
            for op in (Op.EQUAL, Op.NOT_EQUAL, Op.MATCHES):
                if text == op.value:
                    return op
            raise self._err(pos, f'unsupported operator "{text}"')
        if tok is _Tok.ILLEGAL:
            raise self._err(pos, self.s.err)
        raise self._err(pos, 'expected an operator ("=="|"!="|"~=")')

    def _value(self, *, allow_alt_quotes: bool) -> str:
        pos, tok, text = self.s.scan()
        if tok in (_Tok.VALUE, _Tok.FIELD):
            return text
        if tok is _Tok.QUOTED:
            return self._unquote(pos, text, allow_alts=allow_alt_quotes)
        if tok is _Tok.ILLEGAL:
            raise self._err(pos, self.s.err)
        raise self._err(pos, "expected value or quoted")

    def _unquote(self, pos: int, text: str, *, allow_alts: bool) -> str:
        if not allow_alts and text[0] != '"':
            raise self._err(pos, "invalid quote encountered")
        try:
            return _unquote(text)
        except _QuoteError:
            raise self._err(pos, "unquoting failed: quote syntax error") from None

    def _err(self, pos: int, msg: str) -> errors.InvalidArgument:
        text = self.input
        where = f"{text[:pos]} >|{text[pos]}|< {text[pos + 1 :]}" if pos < len(text) else text
        return errors.InvalidArgument(f"filters: parse error: [{where}]: {msg}")


__all__ = ["ALWAYS", "Filter", "Lookup", "Op", "Selector", "lookup_from", "parse"]
