"""The filter grammar, checked against containerd's own table (filters/filter_test.go, 1.6)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pytest

from seacan import errors, filters

pytestmark = pytest.mark.unit


@dataclass(frozen=True)
class Entry:
    name: str
    other: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)


CORPUS = [
    Entry("foo", labels={"foo": "true"}),
    Entry("bar"),
    Entry("foo", labels={"foo": "present", "more complex label": "present"}),
    Entry("bar", labels={"bar": "true"}),
    Entry("fooer", labels={'more complex label with \\ and "': "present"}),
    Entry("fooer", labels={'more complex label with \\ and ".post': "present"}),
    Entry("baz", other="too complex, yo"),
    Entry("bazo", other="abc"),
    Entry("compound", labels={"foo": "omg_asdf.asdf-qwer"}),
]


def matching(expr: str | list[str]) -> list[int]:
    f = filters.parse(expr)
    return [
        i
        for i, e in enumerate(CORPUS)
        if f.match(filters.lookup_from({"name": e.name, "other": e.other}, e.labels))
    ]


ALL = list(range(len(CORPUS)))

MATCHES = [
    ("", ALL),
    ("name", ALL),
    ("labels.foo", [0, 2, 8]),
    ("labels.foo,name", [0, 2, 8]),
    ("labels.foo==true", [0]),
    ("labels.foo==omg_asdf.asdf-qwer", [8]),
    ("name==bar", [1, 3]),
    ("name!=bar", [0, 2, 4, 5, 6, 7, 8]),
    ("name==bar,labels.bar", [3]),
    ('other=="too complex, yo"', [6]),
    ("other~=[abc]+,name!=foo", [6, 7]),
    ("other~=/[abc]+/,name!=foo", [6, 7]),
    ("other~=/[abc]{1,2}/,name!=foo", [6, 7]),
    ('other~=/[abc]{0,1}"\\//,name!=foo', []),
    ("name==bar,labels.bar==true", [3]),
    ("name==bar,labels.bar==wrong", []),
    ('name==foo,labels."more complex label"', [2]),
    ('labels."more complex label with \\\\ and \\""==present', [4]),
    ('labels."more complex label with \\\\ and \\"".post==present', [5]),
]


@pytest.mark.parametrize(("expr", "expected"), MATCHES)
def test_containerd_table(expr: str, expected: list[int]) -> None:
    assert matching(expr) == expected


ERRORS = [
    (
        "labels.|foo|==omg_asdf.asdf-qwer",
        "filters: parse error: [labels. >|||< foo|==omg_asdf.asdf-qwer]: invalid quote encountered",
    ),
    (
        'labels.?"more complex label with \\\\ and \\"".post==present',
        "filters: parse error: [labels. >|?|< "
        '"more complex label with \\\\ and \\"".post==present]: expected field or quoted',
    ),
    ("name==foo,", "filters: parse error: [name==foo,]: expected field or quoted"),
    ("labels.", "filters: parse error: [labels.]: expected field or quoted"),
    (
        "image~=,id?=?fbaq",
        "filters: parse error: [image~= >|,|< id?=?fbaq]: expected value or quoted",
    ),
    (
        "labels.ns/key==value",
        "filters: parse error: [labels.ns >|/|< key==value]: quoted literal not terminated",
    ),
    (
        "labels.key==/value",
        "filters: parse error: [labels.key== >|/|< value]: quoted literal not terminated",
    ),
]


@pytest.mark.parametrize(("expr", "message"), ERRORS)
def test_syntax_errors_point_at_the_position(expr: str, message: str) -> None:
    with pytest.raises(errors.InvalidArgument) as exc:
        filters.parse([expr])
    assert str(exc.value) == message


@pytest.mark.parametrize(
    "expr",
    ["name===x", "name=x", "name==foo ,x", '"unterminated', 'labels."\\q"', "~=x", " "],
)
def test_more_syntax_errors(expr: str) -> None:
    with pytest.raises(errors.InvalidArgument, match="filters: parse error"):
        filters.parse([expr])


def test_bad_regex_is_invalid_argument() -> None:
    with pytest.raises(errors.InvalidArgument, match="regular expression"):
        filters.parse(["name~=[a"])


def test_repeated_strings_are_ored_and_empty_list_matches_all() -> None:
    assert matching(["name==bar", "labels.foo==true"]) == [0, 1, 3]
    assert matching([]) == ALL
    assert matching(["name==nothing", ""]) == ALL
    assert filters.parse([]).matches_all
    assert not filters.parse(["name"]).matches_all


def test_label_keys_with_dots_and_slashes() -> None:
    labels = {"containerd.io/gc.root": "x", "a.b": "c"}
    look = filters.lookup_from({"id": "l1"}, labels)
    assert filters.parse(['labels."containerd.io/gc.root"']).match(look)
    assert filters.parse(["labels.a.b==c"]).match(look)  # unquoted dots join back
    assert filters.parse(['labels."a.b"==c,id==l1']).match(look)
    assert not filters.parse(["labels.a"]).match(look)


def test_absent_field_compares_as_empty() -> None:
    look = filters.lookup_from({"name": ""}, {})
    assert not filters.parse(["name"]).match(look)  # empty field is absent
    assert filters.parse(["name!=x"]).match(look)
    assert not filters.parse(['name!=""']).match(look)
    assert filters.parse(["name~=^$"]).match(look)


def test_values_may_contain_punctuation_and_escapes() -> None:
    look = filters.lookup_from({"digest": "sha256:ab", "ref": "a\tb"}, {"k": "v=w"})
    assert filters.parse(["digest==sha256:ab"]).match(look)
    assert filters.parse(['ref=="a\\tb"']).match(look)
    assert filters.parse(['ref=="a\\x09b"']).match(look)
    assert filters.parse(["labels.k==v=w"]).match(look)
    assert filters.parse(["  digest==sha256:ab"]).match(look)  # leading space is skipped


def test_regex_is_unanchored_search() -> None:
    look = filters.lookup_from({"name": "docker.io/library/busybox:latest"}, {})
    assert filters.parse(["name~=busybox"]).match(look)
    assert not filters.parse(["name~=^busybox"]).match(look)
    assert filters.parse(["name~=|^docker[.]io/|"]).match(look)
    # like containerd, the scanner only knows Go escapes: \. is refused inside quotes
    with pytest.raises(errors.InvalidArgument, match="illegal escape sequence"):
        filters.parse(["name~=|^docker\\.io/|"])
