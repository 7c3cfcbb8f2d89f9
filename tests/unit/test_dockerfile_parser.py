"""seacan.dockerfile.parser: Docker's Dockerfile syntax, table-driven.

Cases follow the Dockerfile reference (docs.docker.com/reference/dockerfile)
and moby/buildkit's parser; the oracle test compares a corpus with Docker's
own parser.
"""

from __future__ import annotations

import pytest

from seacan.dockerfile import parser as p
from seacan.errors import InvalidArgument

pytestmark = pytest.mark.unit


def one(text: str) -> p.Instruction:
    """The instruction after a leading FROM."""
    return p.parse("FROM scratch\n" + text).instructions[1]


@pytest.mark.parametrize(
    ("text", "cmd", "args", "json"),
    [
        ('CMD ["a", "b c"]', "CMD", ("a", "b c"), True),
        ("CMD a b  c", "CMD", ("a b  c",), False),
        ("CMD [a, b]", "CMD", ("[a, b]",), False),  # invalid JSON: shell form
        ("CMD ['a']", "CMD", ("['a']",), False),  # JSON needs double quotes
        ('CMD ["a"] x', "CMD", ('["a"] x',), False),  # trailing text: shell form
        ("CMD []", "CMD", (), True),
        ('ENTRYPOINT ["/bin/sh", "-c"]', "ENTRYPOINT", ("/bin/sh", "-c"), True),
        ('RUN ["echo", "\\u00e9"]', "RUN", ("echo", "é"), True),
        ("run echo lower", "RUN", ("echo lower",), False),
        ('COPY ["a b", "/c/"]', "COPY", ("a b", "/c/"), True),
        ("COPY a  b /c/", "COPY", ("a  b /c/",), False),
        ("WORKDIR /a b", "WORKDIR", ("/a b",), False),
        ("MAINTAINER Jane <j@x>", "MAINTAINER", ("Jane <j@x>",), False),
        ("HEALTHCHECK NONE", "HEALTHCHECK", ("NONE",), False),
        ('HEALTHCHECK CMD ["true"]', "HEALTHCHECK", ("CMD", "true"), True),
        (
            "HEALTHCHECK CMD curl -f x || exit 1",
            "HEALTHCHECK",
            ("CMD", "curl -f x || exit 1"),
            False,
        ),
        ("ONBUILD RUN echo $HOME", "ONBUILD", ("RUN echo $HOME",), False),
    ],
)
def test_forms(text: str, cmd: str, args: tuple[str, ...], json: bool) -> None:
    i = one(text)
    assert (i.cmd, i.args, i.json) == (cmd, args, json)


@pytest.mark.parametrize(
    ("text", "flags", "rest"),
    [
        ("COPY --from=build /a /b", (("from", "build"),), "/a /b"),
        ("COPY --chown=1:2 --chmod=0755 a b", (("chown", "1:2"), ("chmod", "0755")), "a b"),
        ("COPY --link a b", (("link", ""),), "a b"),
        ('COPY --chown="a b" x y', (("chown", "a b"),), "x y"),
        ("COPY -- --odd /d", (), "--odd /d"),
        (
            "RUN --mount=type=cache,target=/c --mount=type=tmpfs,target=/t ls",
            (("mount", "type=cache,target=/c"), ("mount", "type=tmpfs,target=/t")),
            "ls",
        ),
        ("RUN echo --not-a-flag", (), "echo --not-a-flag"),
    ],
)
def test_flags(text: str, flags: tuple[tuple[str, str], ...], rest: str) -> None:
    i = one(text)
    assert i.flags == flags
    assert i.args == (rest,)


def test_flag_lookup() -> None:
    i = one("RUN --mount=type=a --mount=type=b --network=none true")
    assert i.flag("network") == "none"
    assert i.flag("from") is None
    assert i.flag_values("mount") == ["type=a", "type=b"]


def test_continuations_drop_comments_and_empty_lines() -> None:
    df = p.parse(
        "FROM scratch\nRUN a \\\n# comment\n\n    # indented comment\n  b \\\n  c\nCMD x\n"
    )
    run = df.instructions[1]
    assert run.original == "RUN a   b   c"
    assert (run.line, run.end_line) == (2, 7)
    assert df.instructions[2].line == 8


def test_double_escape_is_not_a_continuation() -> None:
    df = p.parse("FROM scratch\nRUN echo a\\\\\nRUN echo b\n")
    assert [i.args for i in df.instructions[1:]] == [("echo a\\\\",), ("echo b",)]


def test_crlf_and_bom() -> None:
    df = p.parse(b"\xef\xbb\xbfFROM scratch\r\nRUN a \\\r\n b\r\n")
    assert df.instructions[1].args == ("a  b",)


@pytest.mark.parametrize(
    ("text", "escape", "directives"),
    [
        ("# escape=`\nFROM scratch\n", "`", {"escape": "`"}),
        ("#escape = `\nFROM scratch\n", "`", {"escape": "`"}),
        ("# ESCAPE=`\nFROM scratch\n", "`", {"escape": "`"}),
        (
            "# syntax=docker/dockerfile:1\n# escape=`\nFROM scratch\n",
            "`",
            {"syntax": "docker/dockerfile:1", "escape": "`"},
        ),
        # after a comment, a blank line or an instruction, directives are comments
        ("# hello\n# escape=`\nFROM scratch\n", "\\", {}),
        ("\n# escape=`\nFROM scratch\n", "\\", {}),
        ("FROM scratch\n# escape=`\n", "\\", {}),
        # an unknown directive ends the directive block
        ("# unknown=x\n# escape=`\nFROM scratch\n", "\\", {}),
    ],
)
def test_directives(text: str, escape: str, directives: dict[str, str]) -> None:
    df = p.parse(text)
    assert df.escape == escape
    assert dict(df.directives) == directives


def test_backtick_escape_continues_lines() -> None:
    df = p.parse("# escape=`\nFROM scratch\nRUN dir c:\\ `\n  && echo x\nCOPY a\\b c:\\\n")
    assert df.instructions[1].args == ("dir c:\\   && echo x",)
    assert df.instructions[2].args == ("a\\b c:\\",)


def test_heredocs() -> None:
    df = p.parse(
        "FROM scratch\n"
        "RUN <<EOF\necho $A\nEOF\n"
        "RUN <<-EOT\n\tone\n\t\ttwo\n\tEOT\n"
        "COPY <<'A' <<B /dir/\n$x\nA\ny\nB\n"
        "RUN echo after\n"
    )
    run, chomp, copy, after = df.instructions[1:]
    assert run.heredocs == (p.Heredoc("EOF", "echo $A\n", expand=True, chomp=False),)
    assert (run.line, run.end_line, run.args) == (2, 4, ("<<EOF",))
    assert chomp.heredocs == (p.Heredoc("EOT", "one\ntwo\n", expand=True, chomp=True),)
    assert copy.heredocs == (
        p.Heredoc("A", "$x\n", expand=False, chomp=False),
        p.Heredoc("B", "y\n", expand=True, chomp=False),
    )
    assert (copy.line, copy.end_line) == (9, 13)
    assert after.line == 14
    assert run.original == "RUN <<EOF\necho $A\nEOF"


def test_heredoc_not_in_json_or_other_instructions() -> None:
    df = p.parse('FROM scratch\nRUN ["cat", "<<EOF"]\nCMD cat <<EOF\nLABEL a=b\n')
    assert [i.heredocs for i in df.instructions] == [(), (), (), ()]


def test_stages_meta_args_and_names() -> None:
    df = p.parse(
        "ARG A=1\nARG B\nFROM busybox AS Build\nRUN x\nfrom scratch\nCOPY --from=build / /\n"
    )
    assert [i.args for i in df.meta_args] == [("A=1",), ("B",)]
    assert [(s.name, s.index, len(s.instructions)) for s in df.stages] == [
        ("build", 0, 1),
        (None, 1, 1),
    ]
    assert df.stage("BUILD").index == 0
    assert df.stage("1").index == 1
    assert p.words(df.stages[0].from_) == ["busybox", "AS", "Build"]
    with pytest.raises(InvalidArgument, match="nope"):
        df.stage("nope")


def test_onbuild_trigger() -> None:
    df = p.parse("FROM scratch\nONBUILD COPY --from=x a b\nONBUILD RUN <<EOF\nhi\nEOF\n")
    copy = p.parse_onbuild(df.instructions[1])
    assert (copy.cmd, copy.flags, copy.args, copy.line) == ("COPY", (("from", "x"),), ("a b",), 2)
    assert df.instructions[2].args == ("RUN <<EOF\nhi\nEOF",)
    run = p.parse_onbuild(df.instructions[2])
    assert run.heredocs == (p.Heredoc("EOF", "hi\n", expand=True, chomp=False),)
    assert p.parse_trigger("ENV A=1").args == ("A=1",)


@pytest.mark.parametrize(
    ("text", "config"),
    [
        ("HEALTHCHECK NONE", {"Test": ["NONE"]}),
        ('HEALTHCHECK CMD ["curl", "-f", "x"]', {"Test": ["CMD", "curl", "-f", "x"]}),
        ("HEALTHCHECK CMD curl -f x", {"Test": ["CMD-SHELL", "curl -f x"]}),
        (
            "HEALTHCHECK --interval=1m30s --timeout=3s --start-period=1.5s "
            "--start-interval=500ms --retries=3 CMD true",
            {
                "Test": ["CMD-SHELL", "true"],
                "Interval": 90_000_000_000,
                "Timeout": 3_000_000_000,
                "StartPeriod": 1_500_000_000,
                "StartInterval": 500_000_000,
                "Retries": 3,
            },
        ),
        ("HEALTHCHECK --interval=0s --retries=0 CMD true", {"Test": ["CMD-SHELL", "true"]}),
    ],
)
def test_healthcheck_config(text: str, config: dict[str, object]) -> None:
    assert p.healthcheck(one(text)) == config


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("FROM scratch\nFOO bar\n", "Dockerfile:2: unknown instruction: FOO"),
        ("FROM\n", "Dockerfile:1: FROM requires either one or three arguments"),
        ("FROM a b\n", "Dockerfile:1: FROM requires either one or three arguments"),
        ("FROM a AS 1x\n", "Dockerfile:1: invalid name for build stage"),
        ("FROM a AS x\nFROM b AS X\n", "Dockerfile:2: duplicate stage name 'x'"),
        ("RUN x\n", "Dockerfile:1: no build stage in current context"),
        ("ARG A\n", "dockerfile contains no stages to build"),
        ("", "Dockerfile:0: file with no instructions"),
        ("# only a comment\n\n", "Dockerfile:2: file with no instructions"),
        ("FROM scratch\n\nCOPY a\n", "Dockerfile:3: COPY requires at least two arguments"),
        ("FROM scratch\nCOPY a <<EOF\nx\nEOF\n", "Dockerfile:2: COPY cannot accept a heredoc"),
        ("FROM scratch\nRUN <<EOF\necho\n", "Dockerfile:2: unterminated heredoc EOF"),
        ('FROM scratch\nCMD ["a", 1]\n', "Dockerfile:2: when using JSON array syntax"),
        ("FROM scratch\nENV\n", "Dockerfile:2: ENV requires at least one argument"),
        ("FROM scratch\nENV A\n", "Dockerfile:2: ENV must have two arguments"),
        ("FROM scratch\nENV A=1 B\n", 'Dockerfile:2: Syntax error - can\'t find = in "B"'),
        ("FROM scratch\nENV =1\n", "Dockerfile:2: ENV names can not be blank"),
        ("FROM scratch\nARG =1\n", "Dockerfile:2: ARG names can not be blank"),
        ("FROM scratch\nWORKDIR\n", "Dockerfile:2: WORKDIR requires exactly one argument"),
        ("FROM scratch\nUSER\n", "Dockerfile:2: USER requires exactly one argument"),
        ("FROM scratch\nEXPOSE\n", "Dockerfile:2: EXPOSE requires at least one argument"),
        ('FROM scratch\nVOLUME [""]\n', "Dockerfile:2: VOLUME specified can not be an empty"),
        ("FROM scratch\nSHELL sh -c\n", "Dockerfile:2: SHELL requires the arguments to be in JSON"),
        ("FROM scratch\nSHELL []\n", "Dockerfile:2: SHELL requires at least one argument"),
        ("FROM scratch\nONBUILD ONBUILD RUN x\n", "Dockerfile:2: Chaining ONBUILD"),
        ("FROM scratch\nONBUILD FROM x\n", "Dockerfile:2: FROM isn't allowed as an ONBUILD"),
        ("FROM scratch\nCOPY --bogus a b\n", "Dockerfile:2: unknown flag: --bogus"),
        ("FROM scratch\nCOPY --from a b\n", "Dockerfile:2: missing a value on flag: --from"),
        ("FROM scratch\nCOPY --from=a --from=b a b\n", "Dockerfile:2: duplicate flag specified"),
        ("FROM scratch\nCOPY --link=maybe a b\n", "Dockerfile:2: expecting boolean value"),
        ("FROM scratch\nHEALTHCHECK NONE x\n", "Dockerfile:2: HEALTHCHECK NONE takes no arguments"),
        ("FROM scratch\nHEALTHCHECK CMD\n", "Dockerfile:2: Missing command after HEALTHCHECK CMD"),
        ("FROM scratch\nHEALTHCHECK RUN x\n", 'Dockerfile:2: Unknown type "RUN" in HEALTHCHECK'),
        ("FROM scratch\nHEALTHCHECK --interval=1us CMD x\n", "cannot be less than 1ms"),
        ("FROM scratch\nHEALTHCHECK --interval=soon CMD x\n", "invalid duration"),
        ("FROM scratch\nHEALTHCHECK --retries=-1 CMD x\n", "--retries cannot be negative"),
        ("# escape=x\nFROM scratch\n", "Dockerfile:1: invalid escape token 'x'"),
        ("# escape=`\n# escape=\\\nFROM scratch\n", "Dockerfile:2: only one escape parser"),
    ],
)
def test_errors_carry_the_line(text: str, message: str) -> None:
    with pytest.raises(InvalidArgument) as e:
        p.parse(text)
    assert message in str(e.value)


def test_filename_in_errors() -> None:
    with pytest.raises(InvalidArgument, match=r"^app\.Dockerfile:1: unknown instruction: BOGUS$"):
        p.parse("BOGUS x\n", filename="app.Dockerfile")


def test_durations() -> None:
    assert p.parse_duration("1h2m3s") == 3_723_000_000_000
    assert p.parse_duration("0") == 0
    assert p.parse_duration("2us") == p.parse_duration("2µs") == 2_000
    with pytest.raises(InvalidArgument):
        p.parse_duration("5")
