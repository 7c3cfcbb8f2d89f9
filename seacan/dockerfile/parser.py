"""Dockerfile parser: text -> stages of instructions, with Docker's rules.

A port of moby/buildkit ``frontend/dockerfile/parser`` (lines, directives,
continuations, heredocs, flags, JSON vs shell form) plus the argument checks
of ``frontend/dockerfile/instructions/parse.go`` so that errors carry the
line: ``Dockerfile:12: unknown instruction: FOO``.

What ``Instruction.args`` holds:

- JSON (exec) form (RUN CMD ENTRYPOINT SHELL ADD COPY VOLUME): the list.
- every other form: a 1-tuple with the raw rest of the line after the flags
  (no expansion, quotes kept). Use :func:`words` for Docker's whitespace
  split of ADD/COPY/VOLUME/EXPOSE/FROM, and ``shell.keyvalues`` for
  ENV/LABEL/ARG.
- HEALTHCHECK: ``("NONE",)`` or ``("CMD", *command)`` (command as for RUN);
  :func:`healthcheck` gives Docker's config dict.
- ONBUILD: a 1-tuple with the trigger expression as Docker stores it in the
  image config (inner instruction text, heredoc bodies appended);
  :func:`parse_onbuild` parses it.

Architecture invariant: pure; no I/O, no variable expansion (shell.py does
that when the engine knows the environment).
"""

from __future__ import annotations

import json as jsonlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from seacan.dockerfile.shell import Lexer, LexError, go_isspace, name_values, parse_words
from seacan.errors import InvalidArgument

INSTRUCTIONS = frozenset(
    {
        "ADD",
        "ARG",
        "CMD",
        "COPY",
        "ENTRYPOINT",
        "ENV",
        "EXPOSE",
        "FROM",
        "HEALTHCHECK",
        "LABEL",
        "MAINTAINER",
        "ONBUILD",
        "RUN",
        "SHELL",
        "STOPSIGNAL",
        "USER",
        "VOLUME",
        "WORKDIR",
    }
)
_MAYBE_JSON = frozenset({"RUN", "CMD", "ENTRYPOINT", "SHELL", "ADD", "COPY", "VOLUME"})
_HEREDOC_CMDS = frozenset({"RUN", "COPY", "ADD"})

# Flags Docker accepts per instruction: name -> kind ("str", "strs", "bool").
FLAGS: Mapping[str, Mapping[str, str]] = {
    "ADD": {
        "chown": "str",
        "chmod": "str",
        "link": "bool",
        "keep-git-dir": "bool",
        "checksum": "str",
        "unpack": "bool",
        "exclude": "strs",
    },
    "COPY": {
        "chown": "str",
        "from": "str",
        "chmod": "str",
        "link": "bool",
        "exclude": "strs",
        "parents": "bool",
    },
    "FROM": {"platform": "str"},
    "RUN": {"mount": "strs", "network": "str", "security": "str", "device": "strs"},
    "HEALTHCHECK": {
        "interval": "str",
        "timeout": "str",
        "start-period": "str",
        "start-interval": "str",
        "retries": "str",
    },
}

_WS = re.compile(r"[\t\v\f\r ]+")
_DIRECTIVE = re.compile(r"([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*\Z")
_HEREDOC = re.compile(r"(\d*)<<(-?)\s*([^<]*)\Z")
_STAGE_NAME = re.compile(r"[a-z][a-z0-9-_.]*\Z")
_DIRECTIVES = ("syntax", "escape", "check")


@dataclass(frozen=True, slots=True)
class Heredoc:
    name: str
    content: str
    expand: bool
    chomp: bool


@dataclass(frozen=True, slots=True)
class Instruction:
    cmd: str
    line: int
    end_line: int
    original: str
    flags: tuple[tuple[str, str], ...]
    args: tuple[str, ...]
    json: bool
    heredocs: tuple[Heredoc, ...] = ()
    escape: str = "\\"

    def flag(self, name: str) -> str | None:
        """The value of ``--name`` (the last one when repeated), None when absent."""
        found = None
        for key, value in self.flags:
            if key == name:
                found = value
        return found

    def flag_values(self, name: str) -> list[str]:
        """Every value of a repeatable flag (``--mount``, ``--exclude``), in order."""
        return [value for key, value in self.flags if key == name]


@dataclass(frozen=True, slots=True)
class Stage:
    name: str | None
    index: int
    from_: Instruction
    instructions: tuple[Instruction, ...]


@dataclass(frozen=True, slots=True)
class Dockerfile:
    instructions: tuple[Instruction, ...]
    directives: Mapping[str, str]
    escape: str
    meta_args: tuple[Instruction, ...]
    stages: tuple[Stage, ...] = field(default=())

    def stage(self, ref: str) -> Stage:
        """A stage by name (case-insensitive) or index, as ``--target`` and ``--from`` name it."""
        for st in self.stages:
            if st.name is not None and st.name == ref.lower():
                return st
        if ref.isdigit() and int(ref) < len(self.stages):
            return self.stages[int(ref)]
        raise InvalidArgument(f"build stage {ref!r} not found in Dockerfile")


class _Error(Exception):
    """A parse error before the line is known."""


def _ws_split(rest: str) -> list[str]:
    return _WS.split(rest) if rest else []


def _go_trim(s: str) -> str:
    start, end = 0, len(s)
    while start < end and go_isspace(s[start]):
        start += 1
    while end > start and go_isspace(s[end - 1]):
        end -= 1
    return s[start:end]


def _go_lstrip(s: str) -> str:
    i = 0
    while i < len(s) and go_isspace(s[i]):
        i += 1
    return s[i:]


def _is_comment(line: str) -> bool:
    return _go_lstrip(line).startswith("#")


class _Directives:
    def __init__(self) -> None:
        self.done = False
        self.found: dict[str, str] = {}
        self.escape = "\\"
        self._cont = self._cont_regex("\\")

    @staticmethod
    def _cont_regex(esc: str) -> re.Pattern[str]:
        e = re.escape(esc)
        return re.compile(rf"([^{e}]){e}[ \t]*\Z|^{e}[ \t]*\Z")

    def see(self, line: str) -> None:
        if self.done:
            return
        if not line.startswith("#"):
            self.done = True
            return
        m = _DIRECTIVE.match(_go_lstrip(line[1:]))
        key = m.group(1).lower() if m else ""
        if m is None or key not in _DIRECTIVES:
            self.done = True
            return
        if key in self.found:
            raise _Error(f"only one {key} parser directive can be used")
        value = m.group(2)
        if key == "escape":
            if value not in ("\\", "`"):
                raise _Error(f"invalid escape token '{value}' does not match ` or \\")
            self.escape = value
            self._cont = self._cont_regex(value)
        self.found[key] = value

    def trim_continuation(self, line: str) -> tuple[str, bool]:
        """(line without the trailing escape, whether the instruction ends here)."""
        m = self._cont.search(line)
        if m is None:
            return line, True
        return line[: m.start()] + (m.group(1) or ""), False


def _split_lines(text: str) -> list[str]:
    parts = text.split("\n")
    lines = [p + "\n" for p in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


def _extract_flags(line: str, escape: str) -> tuple[str, list[str]]:
    """Leading ``--flag[=value]`` words (quotes and escapes processed) and the rest."""
    words: list[str] = []
    buf: list[str] = []
    phase = 0  # 0 spaces, 1 word, 2 quote
    quote = ""
    blank_ok = False
    pos = 0
    n = len(line)
    while pos <= n:
        ch = line[pos] if pos < n else ""
        if phase == 0:
            if pos == n:
                break
            if go_isspace(ch):
                pos += 1
                continue
            if ch != "-" or pos + 1 == n or line[pos + 1] != "-":
                return line[pos:], words
            phase = 1
        if pos == n:
            word = "".join(buf)
            if word != "--" and (blank_ok or word):
                words.append(word)
            break
        if phase == 1:
            if go_isspace(ch):
                word = "".join(buf)
                phase = 0
                if word == "--":
                    return line[pos:], words
                if blank_ok or word:
                    words.append(word)
                buf = []
                blank_ok = False
                pos += 1
                continue
            if ch in "'\"":
                quote = ch
                blank_ok = True
                phase = 2
                pos += 1
                continue
            if ch == escape:
                if pos + 1 == n:
                    pos += 1
                    continue
                pos += 1
                ch = line[pos]
            buf.append(ch)
            pos += 1
            continue
        if ch == quote:
            phase = 1
            pos += 1
            continue
        if ch == escape:
            if pos + 1 == n:
                phase = 1
                pos += 1
                continue
            pos += 1
            ch = line[pos]
        buf.append(ch)
        pos += 1
    return "", words


class _NotStrings(Exception):
    pass


def _reject_constant(name: str) -> Any:
    raise ValueError(name)


def _parse_json(rest: str) -> list[str] | None:
    """A JSON array of strings, None when ``rest`` is not JSON (shell form)."""
    rest = _go_lstrip(rest)
    if not rest.startswith("["):
        return None
    try:
        value = jsonlib.loads(rest, parse_constant=_reject_constant)
    except ValueError:
        return None
    if not isinstance(value, list):
        return None
    if not all(isinstance(v, str) for v in value):
        raise _NotStrings()
    return value


@dataclass
class _Node:
    """One parsed line: Docker's parser.Node reduced to what we need."""

    cmd: str
    original: str
    flags: list[str]
    rest: str
    values: list[str]  # Docker's node values (for checks and the oracle)
    json: bool
    inner: _Node | None = None


def _node(line: str, escape: str) -> _Node:
    parts = _WS.split(_go_trim(line), maxsplit=1)
    cmd = parts[0]
    flags: list[str] = []
    rest = ""
    if len(parts) == 2:
        rest, flags = _extract_flags(parts[1], escape)
        rest = _go_trim(rest)
    up = cmd.upper()
    node = _Node(cmd, line, flags, rest, [], False)
    try:
        if up in _MAYBE_JSON:
            if up in ("ADD", "COPY", "VOLUME") or rest:
                parsed = _parse_json(rest)
                if parsed is not None:
                    node.values, node.json = parsed, True
                elif up in ("ADD", "COPY", "VOLUME"):
                    node.values = _ws_split(rest)
                else:
                    node.values = [rest]
        elif up in ("ENV", "LABEL"):
            node.values = [x for k, v, eq in name_values(up, rest, escape) for x in (k, v)]
        elif up == "ARG":
            node.values = parse_words(rest, escape)
        elif up in ("FROM", "EXPOSE"):
            node.values = _ws_split(rest)
        elif up == "HEALTHCHECK":
            node.values, node.json = _health_values(rest)
        elif up == "ONBUILD":
            if rest:
                node.inner = _node(rest, escape)
        elif rest:
            node.values = [rest]
    except _NotStrings:
        raise _Error(
            "when using JSON array syntax, arrays must be comprised of strings only"
        ) from None
    except InvalidArgument as e:
        raise _Error(e.message) from None
    return node


def _health_values(rest: str) -> tuple[list[str], bool]:
    sep = 0
    while sep < len(rest) and not go_isspace(rest[sep]):
        sep += 1
    if sep == 0:
        return [], False
    nxt = sep
    while nxt < len(rest) and go_isspace(rest[nxt]):
        nxt += 1
    cmd = rest[nxt:]
    if not cmd:
        return [rest[:sep]], False
    parsed = _parse_json(cmd)
    if parsed is not None:
        return [rest[:sep], *parsed], True
    return [rest[:sep], cmd], False


def _heredocs_in(line: str) -> list[tuple[str, bool, bool]]:
    """(name, expand, chomp) of each ``<<WORD`` on a line, like heredocsFromLine."""
    lexer = Lexer("\\", raw_quotes=True, raw_escapes=True, skip_unset=True)
    try:
        words = lexer.process_words(line, {})
    except LexError:
        words = []
    docs = []
    for word in words:
        doc = _heredoc_word(word)
        if doc is not None:
            docs.append(doc)
    return docs


def _heredoc_word(word: str) -> tuple[str, bool, bool] | None:
    m = _HEREDOC.match(word)
    if m is None or not m.group(3):
        return None
    rest = m.group(3)
    try:
        cooked = Lexer("\\", skip_unset=True).process_words(rest, {})
        if len(cooked) != 1:
            return None
        raw = Lexer("\\", raw_quotes=True, skip_unset=True).process_words(rest, {})
    except LexError as e:
        raise _Error(str(e)) from None
    if len(raw) != 1:
        raise _Error(f"internal lexing of heredoc produced inconsistent results: {rest}")

    def quotes(s: str) -> int:
        return s.count("'") + s.count('"')

    return cooked[0], quotes(cooked[0]) == quotes(raw[0]), m.group(2) == "-"


def _flags(node: _Node) -> tuple[tuple[str, str], ...]:
    """``--name=value`` words checked against Docker's flag table."""
    up = node.cmd.upper()
    allowed = FLAGS.get(up, {})
    if up == "HEALTHCHECK" and node.values[:1] and node.values[0].upper() == "NONE":
        allowed = {}
    out: list[tuple[str, str]] = []
    seen: set[str] = set()
    for word in node.flags:
        if word == "--":
            break
        if not word.startswith("--"):
            raise _Error(f"arg should start with -- : {word}")
        name, eq, value = word.partition("=")
        key = name[2:]
        kind = allowed.get(key)
        if kind is None:
            if not allowed and up == "HEALTHCHECK":
                continue
            raise _Error(f"unknown flag: {name}")
        if key in seen and kind != "strs":
            raise _Error(f"duplicate flag specified: {name}")
        seen.add(key)
        if kind == "bool":
            if eq and not value:
                raise _Error(f"missing a value on flag: {name}")
            if value.lower() not in ("", "true", "false"):
                raise _Error(f"expecting boolean value for flag {name}, not: {value}")
        elif not eq:
            raise _Error(f"missing a value on flag: {name}")
        out.append((key, value))
    return tuple(out)


def _check(node: _Node) -> None:
    """Docker's per-instruction argument rules (instructions/parse.go)."""
    up = node.cmd.upper()
    v = node.values
    if up not in INSTRUCTIONS:
        raise _Error(f"unknown instruction: {node.cmd}")
    if up in ("ENV", "LABEL", "ARG", "EXPOSE", "VOLUME", "HEALTHCHECK") and not v:
        raise _Error(f"{up} requires at least one argument")
    if up in ("ENV", "LABEL") and any(not k for k in v[::2]):
        raise _Error(f"{up} names can not be blank")
    if up == "ARG" and any(w.startswith("=") for w in v):
        raise _Error("ARG names can not be blank")
    if up in ("MAINTAINER", "WORKDIR", "USER", "STOPSIGNAL") and len(v) != 1:
        raise _Error(f"{up} requires exactly one argument")
    if up in ("ADD", "COPY"):
        if len(v) < 2:
            raise _Error(
                f"{up} requires at least two arguments, but only one was provided. "
                "Destination could not be determined"
            )
        if _heredoc_word(v[-1]) is not None:
            raise _Error(f"{up} cannot accept a heredoc as a destination")
    if up == "FROM":
        if len(v) == 3 and v[1].lower() == "as":
            if not _STAGE_NAME.match(v[2].lower()):
                raise _Error(
                    f'invalid name for build stage: "{v[2]}", '
                    "name can't start with a number or contain symbols"
                )
        elif len(v) != 1:
            raise _Error("FROM requires either one or three arguments")
    if up == "VOLUME" and any(not x.strip() for x in v):
        raise _Error("VOLUME specified can not be an empty string")
    if up == "SHELL":
        if not v:
            raise _Error("SHELL requires at least one argument")
        if not node.json:
            raise _Error("SHELL requires the arguments to be in JSON form")
    if up == "ONBUILD":
        if node.inner is None:
            raise _Error("ONBUILD requires at least one argument")
        trigger = node.inner.cmd.upper()
        if trigger == "ONBUILD":
            raise _Error("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
        if trigger in ("MAINTAINER", "FROM"):
            raise _Error(f"{trigger} isn't allowed as an ONBUILD trigger")


def _args(node: _Node, heredocs: list[Heredoc]) -> tuple[str, ...]:
    up = node.cmd.upper()
    if node.json or up == "HEALTHCHECK":
        return tuple(node.values)
    if up == "ONBUILD":
        text = re.sub(r"(?i)^\s*ONBUILD\s*", "", node.original)
        for doc in heredocs:
            text += "\n" + doc.content + doc.name
        return (text,)
    return (node.rest,) if node.rest else ()


def parse(text: str | bytes, *, filename: str = "Dockerfile") -> Dockerfile:
    """Parse a Dockerfile; InvalidArgument("Dockerfile:LINE: message") on bad input."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as e:
            raise InvalidArgument(f"{filename}: not UTF-8 text ({e.reason})") from None
    text = text.removeprefix("\ufeff")
    tokens = _split_lines(text)
    d = _Directives()
    out: list[Instruction] = []
    i = 0
    current = 0

    def fail(msg: str, line: int) -> InvalidArgument:
        return InvalidArgument(f"{filename}:{line}: {msg}")

    while i < len(tokens):
        raw = tokens[i].rstrip("\r\n")
        i += 1
        current += 1
        body = _go_lstrip(raw)
        try:
            d.see(body)
        except _Error as e:
            raise fail(str(e), current) from None
        if _is_comment(body):
            body = ""
        start = current
        body, eol = d.trim_continuation(body)
        if eol and not body:
            continue
        buf = [body]
        while not eol and i < len(tokens):
            raw = tokens[i].rstrip("\r\n")
            i += 1
            current += 1
            if _is_comment(raw) or not _go_lstrip(raw):
                continue
            body, eol = d.trim_continuation(raw)
            buf.append(body)
        line = "".join(buf)
        try:
            node = _node(line, d.escape)
            _check(node)
            flags = _flags(node)
            target = node.inner if node.inner is not None else node
            docs: list[tuple[str, bool, bool]] = []
            if target.cmd.upper() in _HEREDOC_CMDS and not target.json and "<<" in line:
                docs = _heredocs_in(line)
        except _Error as e:
            raise fail(str(e), start) from None
        heredocs: list[Heredoc] = []
        original = line
        for name, expand, chomp in docs:
            content: list[str] = []
            terminated = False
            while i < len(tokens):
                tok = tokens[i]
                i += 1
                current += 1
                candidate = tok.rstrip("\r\n")
                if chomp:
                    candidate = candidate.lstrip("\t")
                if candidate == name:
                    terminated = True
                    break
                content.append(tok)
            if not terminated:
                raise fail(f"unterminated heredoc {name}", start)
            body_text = "".join(content)
            if chomp:
                body_text = re.sub(r"(?m)^\t+", "", body_text)
            heredocs.append(Heredoc(name, body_text, expand, chomp))
            original += "\n" + "".join(content) + name
        instr = Instruction(
            cmd=node.cmd.upper(),
            line=start,
            end_line=current,
            original=original,
            flags=flags,
            args=_args(node, heredocs),
            json=node.json,
            heredocs=tuple(heredocs),
            escape=d.escape,
        )
        if instr.cmd == "HEALTHCHECK":
            try:
                _health_config(instr)
            except _Error as e:
                raise fail(str(e), start) from None
        out.append(instr)
    if not out:
        raise InvalidArgument(f"{filename}:{current}: file with no instructions")
    return _structure(tuple(out), dict(d.found), d.escape, filename)


def _structure(
    instrs: tuple[Instruction, ...], directives: dict[str, str], escape: str, filename: str
) -> Dockerfile:
    meta: list[Instruction] = []
    stages: list[Stage] = []
    names: set[str] = set()
    from_: Instruction | None = None
    body: list[Instruction] = []

    def close() -> None:
        if from_ is not None:
            stages.append(_stage(from_, len(stages), tuple(body)))

    for ins in instrs:
        if ins.cmd == "FROM":
            close()
            from_, body = ins, []
            name = _stage(ins, 0, ()).name
            if name is not None:
                if name in names:
                    raise InvalidArgument(f"{filename}:{ins.line}: duplicate stage name {name!r}")
                names.add(name)
        elif from_ is None:
            if ins.cmd != "ARG":
                raise InvalidArgument(f"{filename}:{ins.line}: no build stage in current context")
            meta.append(ins)
        else:
            body.append(ins)
    close()
    if not stages:
        raise InvalidArgument(f"{filename}: dockerfile contains no stages to build")
    return Dockerfile(instrs, directives, escape, tuple(meta), tuple(stages))


def _stage(from_: Instruction, index: int, body: tuple[Instruction, ...]) -> Stage:
    v = words(from_)
    return Stage(v[2].lower() if len(v) == 3 else None, index, from_, body)


def words(instr: Instruction) -> list[str]:
    """Docker's arguments of ADD/COPY/VOLUME/EXPOSE/FROM: the JSON list or the
    rest split on white space (each word is then expanded on its own)."""
    if instr.json:
        return list(instr.args)
    return _ws_split(instr.args[0]) if instr.args else []


def parse_onbuild(instr: Instruction) -> Instruction:
    """The trigger instruction of an ONBUILD, as the child build will see it."""
    if instr.cmd != "ONBUILD":
        raise InvalidArgument(f"{instr.cmd} is not ONBUILD")
    inner = parse_trigger(instr.args[0])
    return replace(inner, line=instr.line, end_line=instr.end_line)


def parse_trigger(expression: str) -> Instruction:
    """One ONBUILD trigger from an image config's OnBuild list (Docker parses
    them with the default escape character)."""
    df = parse(f"FROM scratch\n{expression}", filename="ONBUILD")
    if len(df.instructions) != 2:
        raise InvalidArgument(f"ONBUILD trigger is not one instruction: {expression!r}")
    inner = df.instructions[1]
    if inner.cmd in ("ONBUILD", "FROM", "MAINTAINER"):
        raise InvalidArgument(f"{inner.cmd} isn't allowed as an ONBUILD trigger")
    return replace(inner, line=inner.line - 1, end_line=inner.end_line - 1)


_DURATION_UNITS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "μs": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
_DURATION_PART = re.compile(r"(\d*\.?\d*)(ns|us|µs|μs|ms|s|m|h)")


def parse_duration(text: str) -> int:
    """Go's time.ParseDuration, in nanoseconds ("1m30s", "1.5s", "300ms", "0")."""
    s = text
    sign = -1 if s.startswith("-") else 1
    if s.startswith(("-", "+")):
        s = s[1:]
    if s == "0":
        return 0
    total = 0.0
    pos = 0
    while pos < len(s):
        m = _DURATION_PART.match(s, pos)
        if m is None or m.group(1) in ("", "."):
            raise InvalidArgument(f'time: invalid duration "{text}"')
        total += float(m.group(1)) * _DURATION_UNITS[m.group(2)]
        pos = m.end()
    if not s:
        raise InvalidArgument(f'time: invalid duration "{text}"')
    return sign * round(total)


def healthcheck(instr: Instruction) -> dict[str, Any]:
    """Docker's config ``Healthcheck`` for a HEALTHCHECK (zero fields left out)."""
    try:
        return _health_config(instr)
    except _Error as e:
        raise InvalidArgument(f"Dockerfile:{instr.line}: {e}") from None


def _health_config(instr: Instruction) -> dict[str, Any]:
    typ = instr.args[0].upper()
    rest = list(instr.args[1:])
    if typ == "NONE":
        if rest:
            raise _Error("HEALTHCHECK NONE takes no arguments")
        return {"Test": ["NONE"]}
    if typ != "CMD":
        raise _Error(f'Unknown type "{typ}" in HEALTHCHECK (try CMD)')
    if not rest:
        raise _Error("Missing command after HEALTHCHECK CMD")
    out: dict[str, Any] = {"Test": ["CMD", *rest] if instr.json else ["CMD-SHELL", *rest]}
    for flag, key in (
        ("interval", "Interval"),
        ("timeout", "Timeout"),
        ("start-period", "StartPeriod"),
        ("start-interval", "StartInterval"),
    ):
        value = instr.flag(flag) or ""
        if not value:
            continue
        try:
            ns = parse_duration(value)
        except InvalidArgument as e:
            raise _Error(e.message) from None
        if 0 < ns < 1_000_000 or ns < 0:
            raise _Error(f'Interval "{flag}" cannot be less than 1ms')
        if ns:
            out[key] = ns
    retries = instr.flag("retries") or ""
    if retries:
        try:
            n = int(retries)
        except ValueError:
            raise _Error(f'strconv.ParseInt: parsing "{retries}": invalid syntax') from None
        if n < 0:
            raise _Error(f"--retries cannot be negative ({n})")
        if n:
            out["Retries"] = n
    return out
