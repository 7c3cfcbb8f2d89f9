"""The seacan command line: ctr's grammar, environment fallbacks, one-line errors."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from seacan.cli import commands, images, main

pytestmark = pytest.mark.unit


def parse(*argv: str) -> argparse.Namespace:
    return main.build_parser().parse_args(list(argv))


def run_main(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main.main(list(argv))
    out, err = capsys.readouterr()
    return int(exc.value.code or 0), out, err


def test_global_flags_and_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SEACAN_ADDRESS", raising=False)
    monkeypatch.delenv("SEACAN_NAMESPACE", raising=False)
    a = parse("images", "ls")
    assert (a.address, a.namespace, a.debug) == ("/run/seacan/seacan.sock", "default", False)
    a = parse("-a", "/tmp/x.sock", "-n", "ns1", "--debug", "images", "ls")
    assert (a.address, a.namespace, a.debug) == ("/tmp/x.sock", "ns1", True)
    a = parse("--address", "/y.sock", "--namespace", "ns2", "content", "ls")
    assert (a.address, a.namespace) == ("/y.sock", "ns2")


def test_environment_fallbacks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEACAN_ADDRESS", "/env.sock")
    monkeypatch.setenv("SEACAN_NAMESPACE", "envns")
    a = parse("images", "ls")
    assert (a.address, a.namespace) == ("/env.sock", "envns")
    a = parse("-n", "flag", "images", "ls")
    assert a.namespace == "flag"


@pytest.mark.parametrize(
    ("argv", "func"),
    [
        (["images", "ls"], images.images_ls),
        (["image", "list"], images.images_ls),
        (["i", "ls", "-q"], images.images_ls),
        (["i", "import", "x.tar"], images.images_import),
        (["i", "export", "out.tar", "a", "b"], images.images_export),
        (["i", "rm", "--sync", "a"], images.images_rm),
        (["i", "remove", "a"], images.images_rm),
        (["i", "tag", "--force", "a", "b", "c"], images.images_tag),
        (["i", "inspect", "a"], images.images_inspect),
        (["i", "mount", "a", "/mnt"], images.images_mount),
        (["i", "umount", "/mnt"], images.images_unmount),
        (["i", "unmount", "--rm", "/mnt"], images.images_unmount),
        (["namespaces", "ls"], commands.namespaces_ls),
        (["namespace", "create", "x", "a=b"], commands.namespaces_create),
        (["ns", "rm", "x", "y"], commands.namespaces_rm),
        (["content", "ls"], commands.content_ls),
        (["content", "get", "sha256:x"], commands.content_get),
        (["content", "rm", "sha256:x"], commands.content_rm),
        (["snapshots", "ls"], commands.snapshots_ls),
        (["snapshot", "tree"], commands.snapshots_tree),
        (["snapshots", "rm", "k"], commands.snapshots_rm),
        (["snapshots", "usage"], commands.snapshots_usage),
        (["snapshots", "usage", "k1", "k2"], commands.snapshots_usage),
        (["leases", "ls"], commands.leases_ls),
        (["lease", "rm", "l1"], commands.leases_rm),
        (["prune"], commands.prune),
        (["prune", "--dry-run"], commands.prune),
        (["version"], commands.version),
    ],
)
def test_commands_and_aliases(argv: list[str], func: object) -> None:
    assert parse(*argv).func is func


def test_import_options() -> None:
    a = parse("images", "import", "--base-name", "me/app", "--digests", "--all-platforms", "-")
    assert (a.base_name, a.digests, a.all_platforms, a.no_unpack, a.file) == (
        "me/app",
        True,
        True,
        False,
        "-",
    )
    a = parse("images", "import", "f.tar")
    assert (a.base_name, a.digests, a.all_platforms) == ("", False, False)


def test_export_options() -> None:
    a = parse(
        "images", "export", "--platform", "linux/amd64", "--platform", "linux/arm64", "o.tar", "a"
    )
    assert a.platform == ["linux/amd64", "linux/arm64"] and a.refs == ["a"] and a.file == "o.tar"
    a = parse("images", "export", "--all-platforms", "-", "a", "b")
    assert a.all_platforms and a.refs == ["a", "b"] and a.file == "-"


def test_ls_options() -> None:
    a = parse("images", "ls", "-q", "name==x", "labels.a==b")
    assert a.quiet and a.filters == ["name==x", "labels.a==b"] and a.format == "table"
    a = parse("content", "ls", "--format", "json")
    assert a.format == "json" and not a.quiet


@pytest.mark.parametrize(
    ("argv", "problem"),
    [
        (["images", "export", "out.tar"], "the following arguments are required: REF"),
        (["images", "bogus"], "invalid choice: 'bogus'"),
        (["nouns"], "invalid choice: 'nouns'"),
        (["images", "ls", "--format", "yaml"], "invalid choice: 'yaml'"),
        (["--connect-timeout", "x", "images", "ls"], "invalid float value"),
    ],
)
def test_usage_errors_are_one_line_and_exit_1(
    capsys: pytest.CaptureFixture[str], argv: list[str], problem: str
) -> None:
    code, out, err = run_main(capsys, *argv)
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and err.startswith("seacan: ") and problem in err, err
    assert "--help" in err


def test_noun_without_verb(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_main(capsys, "images")
    assert code == 1
    assert err == "seacan: images: a command is required (see 'seacan images --help')\n"


def test_no_arguments_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_main(capsys)
    assert code == 0 and "usage: seacan" in out and "images" in out


def test_daemon_not_running(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    sock = tmp_path / "missing.sock"
    code, out, err = run_main(capsys, "-a", str(sock), "images", "ls")
    assert code == 1 and out == ""
    assert (
        err
        == f"seacan: cannot connect to seacand at {sock}: no such socket (is seacand running?)\n"
    )


def test_stale_socket_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    import socket

    sock = tmp_path / "stale.sock"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(sock))
    s.close()  # the file stays, nobody listens
    code, _, err = run_main(capsys, "-a", str(sock), "version")
    assert code == 1
    reason = "connection refused (is seacand running?)"
    assert err == f"seacan: cannot connect to seacand at {sock}: {reason}\n"


def test_bad_namespace_is_refused(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run_main(capsys, "-a", str(tmp_path / "x.sock"), "-n", "bad ns", "images", "ls")
    assert code == 1 and err.startswith("seacan: ") and err.count("\n") == 1


def test_parse_labels() -> None:
    assert commands.parse_labels(["a=b", "c=", "d", "e=f=g"]) == {
        "a": "b",
        "c": "",
        "d": "",
        "e": "f=g",
    }
    with pytest.raises(Exception, match="want KEY=VALUE"):
        commands.parse_labels(["=x"])


def test_parse_duration() -> None:
    assert commands.parse_duration("90s").total_seconds() == 90
    assert commands.parse_duration("1h30m").total_seconds() == 5400
    with pytest.raises(Exception, match="invalid duration"):
        commands.parse_duration("tomorrow")
