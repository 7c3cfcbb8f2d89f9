"""The pure GC planner: what is marked, what is removed, and in which order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from seacan import gc
from seacan.gc import CONTENT, Inventory, Lease, Object, Ref, Root

pytestmark = pytest.mark.unit

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
OVL = gc.snapshots_type("overlayfs")


def c(name: str) -> Ref:
    return Ref(CONTENT, f"sha256:{name}")


def s(key: str) -> Ref:
    return Ref(OVL, key)


def blob(name: str, labels: dict[str, str] | None = None) -> Object:
    return Object(c(name), labels or {})


def snap(key: str, parent: str = "", labels: dict[str, str] | None = None) -> Object:
    return Object(s(key), labels or {}, parent)


def manifest(name: str, config: str, *layers: str) -> Object:
    labels = {"containerd.io/gc.ref.content.config": f"sha256:{config}"}
    labels.update(
        {f"containerd.io/gc.ref.content.l.{i}": f"sha256:{d}" for i, d in enumerate(layers)}
    )
    return Object(c(name), labels)


def image(name: str, target: str) -> Root:
    return Root(f"image {name}", (c(target),))


def removed(inv: Inventory) -> list[Ref]:
    return [r.ref for r in gc.plan(inv, NOW).removals]


def test_nothing_referenced_everything_goes_children_first() -> None:
    inv = Inventory(
        "ns",
        objects=(blob("a"), snap("l1"), snap("l2", "l1"), snap("l3", "l2"), blob("b")),
    )
    assert removed(inv) == [s("l3"), s("l2"), s("l1"), c("a"), c("b")]


def test_image_keeps_manifest_config_layers_and_unpacked_chain() -> None:
    inv = Inventory(
        "ns",
        objects=(
            manifest("m", "cfg", "l0", "l1"),
            Object(c("cfg"), {"containerd.io/gc.ref.snapshot.overlayfs": "chain2"}),
            blob("l0"),
            blob("l1"),
            snap("chain1"),
            snap("chain2", "chain1"),
            blob("stray"),
            snap("stray-snap", "chain2"),
        ),
        roots=(image("busybox", "m"),),
    )
    assert removed(inv) == [s("stray-snap"), c("stray")]
    marked = gc.plan(inv, NOW).marked
    assert {c("m"), c("cfg"), c("l0"), c("l1"), s("chain1"), s("chain2")} <= marked


def test_shared_layers_survive_while_any_image_uses_them() -> None:
    objects = (
        manifest("m1", "cfg1", "base", "app1"),
        manifest("m2", "cfg2", "base", "app2"),
        blob("cfg1"),
        blob("cfg2"),
        blob("base"),
        blob("app1"),
        blob("app2"),
    )
    both = Inventory("ns", objects=objects, roots=(image("one", "m1"), image("two", "m2")))
    assert removed(both) == []
    only_two = Inventory("ns", objects=objects, roots=(image("two", "m2"),))
    assert removed(only_two) == [c("app1"), c("cfg1"), c("m1")]


def test_diamond_is_marked_once_and_kept() -> None:
    inv = Inventory(
        "ns",
        objects=(
            Object(
                c("top"),
                {
                    "containerd.io/gc.ref.content.a": "sha256:left",
                    "containerd.io/gc.ref.content.b": "sha256:right",
                },
            ),
            blob("left", {"containerd.io/gc.ref.content": "sha256:bottom"}),
            Object(c("right"), {"containerd.io/gc.ref.content/x": "sha256:bottom"}),
            blob("bottom"),
        ),
        roots=(image("d", "top"),),
    )
    assert removed(inv) == []


def test_cycles_terminate() -> None:
    inv = Inventory(
        "ns",
        objects=(
            Object(c("a"), {"containerd.io/gc.ref.content": "sha256:b"}),
            Object(c("b"), {"containerd.io/gc.ref.content": "sha256:a"}),
        ),
    )
    assert removed(inv) == [c("a"), c("b")]
    assert removed(Inventory("ns", objects=inv.objects, roots=(image("x", "a"),))) == []


def test_label_prefix_must_be_followed_by_a_separator() -> None:
    inv = Inventory(
        "ns",
        objects=(
            Object(
                c("root"),
                {"containerd.io/gc.root": "", "containerd.io/gc.ref.contentx": "sha256:x"},
            ),
            blob("x"),
        ),
    )
    assert removed(inv) == [c("x")]


def test_long_chain_removed_leaf_first() -> None:
    objects = [snap("k0")] + [snap(f"k{i}", f"k{i - 1}") for i in range(1, 30)]
    plan = gc.plan(Inventory("ns", objects=tuple(reversed(objects))), NOW)
    assert [r.ref.id for r in plan.removals] == [f"k{i}" for i in reversed(range(30))]
    assert plan.removals[-1].after == frozenset({s("k1")})


def test_branching_snapshots_children_before_parent() -> None:
    inv = Inventory("ns", objects=(snap("p"), snap("a", "p"), snap("b", "p"), snap("aa", "a")))
    order = removed(inv)
    assert order.index(s("aa")) < order.index(s("a")) < order.index(s("p"))
    assert order.index(s("b")) < order.index(s("p"))


def test_active_snapshot_of_a_container_keeps_its_parents() -> None:
    inv = Inventory(
        "ns",
        objects=(snap("base"), snap("img", "base"), snap("ctr1", "img")),
        roots=(Root("container ctr1", (s("ctr1"),)),),
    )
    assert removed(inv) == []


def test_unexpired_lease_protects_resources_and_their_references() -> None:
    future = (NOW + timedelta(hours=24)).isoformat().replace("+00:00", "Z")
    inv = Inventory(
        "ns",
        objects=(manifest("m", "cfg", "l0"), blob("cfg"), blob("l0"), snap("extract", "")),
        leases=(Lease("pull", {gc.LABEL_EXPIRE: future}, (c("m"), s("extract"))),),
    )
    plan = gc.plan(inv, NOW)
    assert plan.removals == ()
    assert plan.expired_leases == ()


def test_expired_lease_is_removed_first_and_protects_nothing() -> None:
    past = "2024-05-01T11:59:59Z"
    inv = Inventory(
        "ns",
        objects=(blob("m"), snap("x")),
        leases=(Lease("old", {gc.LABEL_EXPIRE: past}, (c("m"), s("x"))), Lease("keep", {}, ())),
    )
    plan = gc.plan(inv, NOW)
    assert plan.expired_leases == ("old",)
    assert [(r.type, r.id) for r in plan.removed()] == [
        ("leases", "old"),
        (OVL, "x"),
        (CONTENT, "sha256:m"),
    ]


def test_invalid_expiry_is_ignored_so_the_lease_still_protects() -> None:
    inv = Inventory(
        "ns", objects=(blob("m"),), leases=(Lease("l", {gc.LABEL_EXPIRE: "soon"}, (c("m"),)),)
    )
    plan = gc.plan(inv, NOW)
    assert plan.removals == () and plan.expired_leases == ()


def test_flat_lease_keeps_resources_and_parents_but_not_label_refs() -> None:
    inv = Inventory(
        "ns",
        objects=(
            manifest("m", "cfg"),
            blob("cfg"),
            snap("parent"),
            snap("child", "parent", {"containerd.io/gc.ref.content": "sha256:cfg"}),
        ),
        leases=(Lease("flat", {gc.LABEL_FLAT: "1"}, (c("m"), s("child"))),),
    )
    assert removed(inv) == [c("cfg")]


def test_flat_visit_does_not_hide_a_normal_visit() -> None:
    inv = Inventory(
        "ns",
        objects=(manifest("m", "cfg"), blob("cfg")),
        leases=(Lease("flat", {gc.LABEL_FLAT: ""}, (c("m"),)),),
        roots=(image("i", "m"),),
    )
    assert removed(inv) == []


def test_gc_root_label_on_content_and_snapshots() -> None:
    inv = Inventory(
        "ns",
        objects=(
            blob("pinned", {"containerd.io/gc.root": "2024-01-01T00:00:00Z"}),
            snap("base"),
            snap("pinned-snap", "base", {"containerd.io/gc.root": ""}),
            blob("loose"),
        ),
    )
    assert removed(inv) == [c("loose")]


def test_image_labels_reference_content() -> None:
    inv = Inventory(
        "ns",
        objects=(blob("m"), blob("sig")),
        roots=(Root("image x", (c("m"),), {"containerd.io/gc.ref.content.sig": "sha256:sig"}),),
    )
    assert removed(inv) == []


def test_snapshot_ref_label_names_snapshotter_with_optional_suffix() -> None:
    refs = list(
        gc.label_refs(
            {
                "containerd.io/gc.ref.snapshot.overlayfs": "a",
                "containerd.io/gc.ref.snapshot.native/1": "b",
                "containerd.io/gc.ref.snapshot.": "ignored",
                "other": "x",
            }
        )
    )
    assert refs == [Ref("snapshots/native", "b"), Ref(OVL, "a")]


def test_dead_edges_and_unknown_types_are_harmless() -> None:
    inv = Inventory(
        "ns",
        objects=(manifest("m", "gone"),),
        leases=(Lease("l", {}, (Ref("ingests", "ref-1"),)),),
        roots=(image("i", "m"), image("j", "missing")),
    )
    assert removed(inv) == []


def test_failure_continues_and_skips_only_ancestors() -> None:
    inv = Inventory(
        "ns",
        objects=(snap("p"), snap("a", "p"), snap("b", "p"), snap("other"), blob("x"), blob("y")),
    )
    plan = gc.plan(inv, NOW)
    sweep = gc.Sweep()
    attempted = []
    for r in plan.removals:
        if sweep.skip(r):
            continue
        attempted.append(r.ref)
        sweep.record(r, ok=r.ref != s("a"))  # removing "a" fails
    assert s("p") not in attempted  # its child "a" is still there
    assert sweep.removed == [s("b"), s("other"), c("x"), c("y")]
    assert sweep.failed == {s("a"), s("p")}


def test_parse_expire() -> None:
    assert gc.parse_expire("2024-05-01T12:00:00Z") == NOW
    assert gc.parse_expire("2024-05-01T14:00:00+02:00") == NOW
    assert gc.parse_expire("2024-05-01T12:00:00.123456789Z") is not None
    assert gc.parse_expire("") is None
    assert gc.parse_expire("tomorrow") is None
