"""What the seacan command prints: sizes, ages, tables, trees, progress."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta

import pytest

from seacan import gc, oci
from seacan.cli import commands, output
from seacan.snapshots import Info, Kind
from tests.fixtures import daemon as dm
from tests.fixtures import images as im

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (0, "0.0 B"),
        (512, "512.0 B"),
        (1024, "1.0 KiB"),
        (2_202_009, "2.1 MiB"),
        (5 << 30, "5.0 GiB"),
    ],
)
def test_human_size_is_ctrs(n: int, text: str) -> None:
    assert output.human_size(n) == text == im.human_size(n)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.5, "Less than a second"),
        (1, "1 second"),
        (45, "45 seconds"),
        (61, "About a minute"),
        (600, "10 minutes"),
        (3600, "About an hour"),
        (5 * 3600, "5 hours"),
        (3 * 86400, "3 days"),
        (21 * 86400, "3 weeks"),
        (90 * 86400, "3 months"),
        (800 * 86400, "2 years"),
    ],
)
def test_human_duration_is_dockers(seconds: float, text: str) -> None:
    assert output.human_duration(seconds) == text


def test_age() -> None:
    now = datetime(2024, 1, 1, tzinfo=UTC)
    assert output.age(now - timedelta(minutes=5), now) == "5 minutes"
    assert output.age(None, now) == "-"


def test_labels_text() -> None:
    assert output.labels_text({}) == "-"
    assert output.labels_text({"b": "2", "a": "1"}) == "a=1,b=2"


def test_table_aligns_columns_and_parses_like_ctrs() -> None:
    text = output.table(
        ["ref", "size", "labels"],
        [("docker.io/library/busybox:latest", "2.1 MiB", "-"), ("x", "10.0 KiB", "a=b")],
    )
    lines = text.splitlines()
    assert lines[0].startswith("REF") and "SIZE" in lines[0]
    assert all(line == line.rstrip() for line in lines)
    assert lines[1].index("2.1 MiB") == lines[0].index("SIZE") == lines[2].index("10.0 KiB")
    # The test suite's parser for ctr's tables reads ours too (cells with blanks included).
    assert dm.table(text) == [
        {"REF": "docker.io/library/busybox:latest", "SIZE": "2.1 MiB", "LABELS": "-"},
        {"REF": "x", "SIZE": "10.0 KiB", "LABELS": "a=b"},
    ]


def test_to_json_handles_dataclasses_times_and_enums() -> None:
    info = Info(
        "k", "p", Kind.COMMITTED, datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC), None, {"a": "b"}
    )
    assert json.loads(output.to_json([info])) == [
        {
            "name": "k",
            "parent": "p",
            "kind": "committed",
            "created_at": "2024-01-02T03:04:05Z",
            "updated_at": None,
            "labels": {"a": "b"},
        }
    ]


def test_snapshot_tree_like_ctr() -> None:
    infos = [
        Info("a", "", Kind.COMMITTED),
        Info("b", "a", Kind.COMMITTED),
        Info("c", "b", Kind.ACTIVE),
        Info("d", "a", Kind.VIEW),
        Info("e", "", Kind.COMMITTED),
    ]
    assert commands.tree_lines(infos) == [" a", "  \\_ b", "    \\_ c", "  \\_ d", " e"]
    assert commands.kind_text(Kind.COMMITTED) == "Committed"


def test_prune_lines() -> None:
    r = gc.Removed("default", "content", "sha256:" + "a" * 64)
    assert commands.removed_line(r, "default", False) == "removed content sha256:" + "a" * 64
    s = gc.Removed("other", "snapshots/overlayfs", "sha256:b")
    assert (
        commands.removed_line(s, "default", True)
        == "would remove snapshots/overlayfs sha256:b (namespace other)"
    )


class Pipe(io.StringIO):
    def isatty(self) -> bool:
        return False


def test_progress_when_piped_prints_plain_lines() -> None:
    out = Pipe()
    p = output.Progress(out)
    desc = oci.Descriptor(oci.OCI_MANIFEST, "sha256:" + "1" * 64, 10)
    p.blob("blobs/sha256/abc", 5, 10)
    p.blob("blobs/sha256/abc", 10, 10)
    p.unpacking("docker.io/library/x:1", desc)
    p.layer(0, 1, desc, True)
    p.unpacked("docker.io/library/x:1", desc, "sha256:c")
    p.finish()
    assert out.getvalue() == (
        f"blobs/sha256/abc: done (10.0 B)\nunpacking docker.io/library/x:1 ({desc.digest})...done\n"
    )


def test_progress_on_a_terminal_redraws_one_line() -> None:
    out = Pipe()
    p = output.Progress(out, tty=True)
    p.blob("blobs/sha256/" + "a" * 64, 10, 10)
    assert "\r" in out.getvalue() and "\n" not in out.getvalue()
    p.finish()
    assert out.getvalue().endswith("\r\x1b[K")
