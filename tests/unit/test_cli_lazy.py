"""The CLI starts fast: a command imports only its own module, ``--help`` none.

main.COMMANDS (what ``seacan --help`` lists and which module defines each
command) must match what the modules' register() functions really add.
"""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from seacan.cli import main

pytestmark = pytest.mark.unit


def _nouns(p: argparse.ArgumentParser) -> list[tuple[str, tuple[str, ...], str]]:
    sub = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction))
    out = []
    for ca in sub._choices_actions:
        aliases = tuple(
            n for n, sp in sub.choices.items() if sp is sub.choices[ca.dest] and n != ca.dest
        )
        out.append((ca.dest, aliases, str(ca.help)))
    return out


def test_the_table_lists_every_command_of_every_module_in_order() -> None:
    assert [c[1:] for c in main.COMMANDS] == _nouns(main.build_parser())


@pytest.mark.parametrize("module", main.MODULES)
def test_each_command_is_defined_by_its_module(module: str) -> None:
    mine = [c[1:] for c in main.COMMANDS if c[0] == module]
    assert _nouns(main.build_parser((module,))) == mine


def test_help_lists_the_same_commands_as_the_full_parser() -> None:
    assert main.help_parser().format_help() == main.build_parser().format_help()


@pytest.mark.parametrize(
    ("argv", "module"),
    [
        (["ps", "-a"], "run"),
        (["-n", "x", "--debug", "images", "ls"], "images"),
        (["-a", "/tmp/x.sock", "i", "ls"], "images"),
        (["net", "ls"], "network"),
        (["--connect-timeout", "3", "build", "."], "build"),
    ],
)
def test_the_command_picks_its_module(argv: list[str], module: str) -> None:
    nouns = _nouns(main.parser_for(argv))
    assert nouns == [c[1:] for c in main.COMMANDS if c[0] == module]


def test_unknown_commands_and_bad_flags_get_the_full_parser() -> None:
    full = _nouns(main.build_parser())
    assert _nouns(main.parser_for(["bogus"])) == full
    assert _nouns(main.parser_for(["-a"])) == full


def _loaded(*argv: str) -> set[str]:
    code = (
        "import sys; from seacan.cli import main\n"
        "try:\n    main.main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
        "print(' '.join(sorted(sys.modules)))"
    )
    r = subprocess.run(
        [sys.executable, "-c", code, *argv], capture_output=True, text=True, check=True
    )
    return set(r.stdout.split("\n")[-2].split())


def test_help_imports_no_command_module_grpc_or_structlog() -> None:
    loaded = _loaded("--help")
    heavy = {"grpc", "google.protobuf", "structlog", "aiohttp", "asyncio", "seacan.client"}
    assert not loaded & heavy
    assert not {f"seacan.cli.{m}" for m in main.MODULES} & loaded


def test_ps_imports_neither_aiohttp_nor_structlog_nor_other_commands() -> None:
    loaded = _loaded("-a", "/nonexistent/seacan.sock", "ps")
    assert not loaded & {"aiohttp", "structlog", "seacan.cli.images", "seacan.cli.build"}
