"""The conformance suite every snapshotter passes (containerd's snapshots/testsuite).

Each case is ``async def case(make: Factory) -> None``; ``make()`` is an async
context manager yielding a fresh, empty :class:`~seacan.snapshots.Snapshotter`
whose directories live on this host. Nothing here mounts: a case writes a
layer the way the diff applier does, straight into the directory a mount
names (:func:`layer_dir`), so the suite runs without root. Mounting is
covered by ``tests/e2e/test_overlay_mounts.py``.

A case sets its own request scope (:func:`seacan.scope.set_scope`), so run
each one in its own task (``asyncio.run`` does)::

    @pytest.mark.parametrize("case", testsuite.CASES, ids=testsuite.case_id)
    def test_conformance(case, tmp_path):
        asyncio.run(case(lambda: my_snapshotter(tmp_path)))
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

from seacan import errors, scope
from seacan.snapshots import Info, Kind, Mount, Snapshotter

Factory = Callable[[], AbstractAsyncContextManager[Snapshotter]]
Case = Callable[[Factory], Coroutine[Any, Any, None]]

NS = "testsuite"
OTHER_NS = "testsuite-other"
CHAIN = "sha256:" + "a" * 64
CHAIN2 = "sha256:" + "b" * 64

CASES: list[Case] = []


def case(fn: Case) -> Case:
    CASES.append(fn)
    return fn


def case_id(fn: Case) -> str:
    return getattr(fn, "__name__", "case")


def use(namespace: str, lease: str = "") -> None:
    scope.set_scope(namespace, lease)


async def raises(kind: type[errors.SeacanError], aw: Awaitable[object]) -> errors.SeacanError:
    try:
        await aw
    except kind as e:
        return e
    raise AssertionError(f"expected {kind.__name__}")


def option(m: Mount, name: str) -> str:
    """The value of ``name=...`` among a mount's options ("" if absent)."""
    prefix = name + "="
    return next((o.removeprefix(prefix) for o in m.options if o.startswith(prefix)), "")


def layer_dir(mounts: Sequence[Mount]) -> Path:
    """Where a layer is written for these mounts: the bind source, or the upperdir."""
    assert len(mounts) == 1, mounts
    m = mounts[0]
    if m.type == "bind":
        return Path(m.source)
    upper = option(m, "upperdir")
    assert upper, f"{m} has no upper directory"
    return Path(upper)


async def layer(sn: Snapshotter, name: str, parent: str, files: dict[str, bytes]) -> Path:
    """Prepare, write ``files`` into the new layer, commit as ``name``; the layer's directory."""
    key = f"extract-{name} {name}"
    d = layer_dir(await sn.prepare(key, parent))
    for rel, data in files.items():
        p = d / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    await sn.commit(name, key)
    return d


async def names(sn: Snapshotter, *filters: str) -> set[str]:
    return {i.name async for i in sn.list(list(filters))}


@case
async def prepare_commit_chain(make: Factory) -> None:
    use(NS)
    async with make() as sn:
        key = f"extract-1 {CHAIN}"
        mounts = await sn.prepare(key, "", {"l": "v"})
        assert len(mounts) == 1 and mounts[0].type == "bind", mounts
        assert list(mounts[0].options) == ["rw", "rbind"]
        base = Path(mounts[0].source)
        assert base.is_absolute() and base.is_dir() and not any(base.iterdir())
        (base / "hello").write_bytes(b"layer 1")
        active = await sn.stat(key)
        assert (active.name, active.parent, active.kind) == (key, "", Kind.ACTIVE)
        assert dict(active.labels) == {"l": "v"}
        assert active.created_at is not None and active.updated_at is not None

        await sn.commit(CHAIN, key, {"c": "1"})
        await raises(errors.NotFound, sn.stat(key))
        info = await sn.stat(CHAIN)
        assert (info.name, info.parent, info.kind) == (CHAIN, "", Kind.COMMITTED)
        assert dict(info.labels) == {"c": "1"}  # commit labels, not the active snapshot's
        assert (base / "hello").read_bytes() == b"layer 1"  # commit does not move the layer

        upper2 = await layer(sn, CHAIN2, CHAIN, {"two": b"2"})
        top = await sn.prepare("container", CHAIN2)
        assert len(top) == 1 and (top[0].type, top[0].source) == ("overlay", "overlay")
        assert option(top[0], "lowerdir").split(":") == [str(upper2), str(base)]
        upper, work = Path(option(top[0], "upperdir")), Path(option(top[0], "workdir"))
        assert upper.is_dir() and work.is_dir() and upper.parent == work.parent
        assert [o.split("=")[0] for o in top[0].options if "=" in o][-3:] == [
            "workdir",
            "upperdir",
            "lowerdir",
        ]
        assert await sn.mounts("container") == top
        assert (await sn.stat("container")).parent == CHAIN2


@case
async def view_mounts(make: Factory) -> None:
    use(NS)
    async with make() as sn:
        base = await layer(sn, "base", "", {"a": b"a"})
        mid = await layer(sn, "mid", "base", {"b": b"b"})

        alone = await sn.view("view-alone")
        assert alone[0].type == "bind" and list(alone[0].options) == ["ro", "rbind"]
        assert "work" not in {p.name for p in Path(alone[0].source).parent.iterdir()}

        one = await sn.view("view-one", "base")
        assert one == [Mount("bind", str(base), "", ("ro", "rbind"))]

        two = await sn.view("view-two", "mid", {"x": "y"})
        assert len(two) == 1 and two[0].type == "overlay"
        assert option(two[0], "lowerdir").split(":") == [str(mid), str(base)]
        assert not option(two[0], "upperdir") and not option(two[0], "workdir")
        info = await sn.stat("view-two")
        assert (info.kind, info.parent, dict(info.labels)) == (Kind.VIEW, "mid", {"x": "y"})
        assert await sn.mounts("view-two") == two

        e = await raises(errors.FailedPrecondition, sn.mounts("base"))
        assert "base" in str(e)
        await raises(errors.FailedPrecondition, sn.commit("view-done", "view-one"))


@case
async def duplicates(make: Factory) -> None:
    use(NS)
    async with make() as sn:
        await sn.prepare("c2")
        e = await raises(errors.AlreadyExists, sn.prepare("c2"))
        assert 'snapshot "c2": already exists' in str(e)
        await raises(errors.AlreadyExists, sn.view("c2"))
        await layer(sn, "done", "", {})
        await raises(errors.AlreadyExists, sn.prepare("done"))
        await raises(errors.AlreadyExists, sn.commit("done", "c2"))
        assert (await sn.stat("c2")).kind is Kind.ACTIVE  # a failed commit changes nothing


@case
async def parent_rules(make: Factory) -> None:
    use(NS)
    async with make() as sn:
        e = await raises(errors.NotFound, sn.prepare("orphan", "nope"))
        assert "nope" in str(e)
        await sn.prepare("active")
        e = await raises(errors.InvalidArgument, sn.prepare("child", "active"))
        assert str(e) == 'parent "active" is not committed snapshot'
        await raises(errors.InvalidArgument, sn.view("child", "active"))
        await sn.view("a-view")
        await raises(errors.InvalidArgument, sn.prepare("child", "a-view"))
        await raises(errors.NotFound, sn.stat("child"))  # nothing half-made is left
        assert await names(sn) == {"active", "a-view"}


@case
async def commit_rules(make: Factory) -> None:
    use(NS)
    async with make() as sn:
        e = await raises(errors.NotFound, sn.commit("name", "missing"))
        assert "missing does not exist" in str(e)
        await raises(errors.InvalidArgument, sn.prepare(""))
        await sn.prepare("k")
        await raises(errors.InvalidArgument, sn.commit("", "k"))
        await sn.commit("name", "k")
        await raises(errors.FailedPrecondition, sn.commit("again", "name"))
        # the key is free again once committed
        await sn.prepare("k", "name")
        assert (await sn.stat("k")).parent == "name"


@case
async def remove_rules(make: Factory) -> None:
    use(NS)
    async with make() as sn:
        e = await raises(errors.NotFound, sn.remove("ghost"))
        assert str(e).startswith("snapshot ghost does not exist")
        await layer(sn, "p", "", {"f": b"x"})
        d = layer_dir(await sn.prepare("c", "p"))
        (d / "written").write_bytes(b"by the container")
        await raises(errors.FailedPrecondition, sn.remove("p"))
        await sn.remove("c")
        assert not d.exists()
        await raises(errors.NotFound, sn.stat("c"))
        await sn.remove("p")
        assert await names(sn) == set()
        await sn.prepare("c", "")  # the key can be used again
        await sn.remove("c")


@case
async def update_labels(make: Factory) -> None:
    use(NS)
    async with make() as sn:
        await sn.prepare("u", "", {"a": "1", "b": "2"})
        before = await sn.stat("u")
        await asyncio.sleep(0.002)

        got = await sn.update(Info("u", labels={"a": "10", "c": "3"}), ["labels.a"])
        assert dict(got.labels) == {"a": "10", "b": "2"}
        assert got.created_at == before.created_at
        assert got.updated_at is not None and before.updated_at is not None
        assert got.updated_at > before.updated_at
        got = await sn.update(Info("u", labels={}), ["labels.b"])  # empty value removes
        assert dict(got.labels) == {"a": "10"}
        got = await sn.update(Info("u", labels={"x": "y"}), ["labels"])
        assert dict(got.labels) == {"x": "y"}
        got = await sn.update(Info("u", labels={"z": "1"}))  # no mask: replace all
        assert dict(got.labels) == {"z": "1"}
        assert dict((await sn.stat("u")).labels) == {"z": "1"}

        # name, parent and kind never change
        await raises(errors.InvalidArgument, sn.update(Info("u", parent="x"), ["parent"]))
        await raises(errors.InvalidArgument, sn.update(Info("u", kind=Kind.COMMITTED), ["kind"]))
        got = await sn.update(Info("u", parent="other", kind=Kind.VIEW, labels={"z": "2"}))
        assert (got.name, got.parent, got.kind) == ("u", "", Kind.ACTIVE)
        await raises(errors.NotFound, sn.update(Info("nope", labels={"a": "b"})))
        await raises(errors.InvalidArgument, sn.update(Info("", labels={"a": "b"})))
        await raises(errors.InvalidArgument, sn.update(Info("u", labels={"k": "v" * 5000})))


@case
async def usage(make: Factory) -> None:
    use(NS)
    async with make() as sn:
        d = layer_dir(await sn.prepare("u"))
        empty = await sn.usage("u")
        assert empty.inodes == 1  # the layer's root directory
        (d / "f").write_bytes(b"\1" * 100_000)
        (d / "sub").mkdir()
        (d / "sub" / "g").write_bytes(b"x")
        os_link = d / "hardlink"
        os_link.hardlink_to(d / "f")  # counted once
        active = await sn.usage("u")
        assert active.inodes == 4
        assert active.size >= 100_000
        await sn.commit("u-done", "u")
        assert await sn.usage("u-done") == active
        await raises(errors.NotFound, sn.usage("u"))


@case
async def list_and_filters(make: Factory) -> None:
    use(NS)
    async with make() as sn:
        await layer(sn, CHAIN, "", {})
        await sn.prepare("container-1", CHAIN, {"role": "app", "io.k8s/name": "web"})
        await sn.view("look", CHAIN, {"role": "debug"})
        assert await names(sn) == {CHAIN, "container-1", "look"}
        assert await names(sn, "") == {CHAIN, "container-1", "look"}
        assert await names(sn, "kind==committed") == {CHAIN}
        assert await names(sn, "kind==active") == {"container-1"}
        assert await names(sn, "kind==view") == {"look"}
        assert await names(sn, f"parent=={CHAIN}") == {"container-1", "look"}
        assert await names(sn, "labels.role==app") == {"container-1"}
        assert await names(sn, 'labels."io.k8s/name"==web') == {"container-1"}
        assert await names(sn, "labels.role") == {"container-1", "look"}
        assert await names(sn, "labels.role!=app") == {CHAIN, "look"}
        assert await names(sn, "name~=^cont") == {"container-1"}
        assert await names(sn, "kind==view", "name==container-1") == {"container-1", "look"}
        assert await names(sn, "kind==active,labels.role==debug") == set()
        with_info = [i async for i in sn.list(["name==look"])]
        assert [(i.kind, i.parent, dict(i.labels)) for i in with_info] == [
            (Kind.VIEW, CHAIN, {"role": "debug"})
        ]
        await raises(errors.InvalidArgument, names(sn, "labels.=="))


@case
async def list_many(make: Factory) -> None:
    use(NS)
    async with make() as sn:
        keys = {f"k{i:03d}" for i in range(130)}  # more than one List batch
        for k in sorted(keys):
            await sn.prepare(k)
        assert await names(sn) == keys


@case
async def namespaces_are_separate(make: Factory) -> None:
    async with make() as sn:
        use(NS)
        await layer(sn, CHAIN, "", {"in": b"ns"})
        use(OTHER_NS)
        await raises(errors.NotFound, sn.stat(CHAIN))
        await raises(errors.NotFound, sn.prepare("c", CHAIN))
        assert await names(sn) == set()
        await layer(sn, CHAIN, "", {"other": b"ns"})  # same name, its own layer
        await sn.remove(CHAIN)
        use(NS)
        assert (await sn.stat(CHAIN)).kind is Kind.COMMITTED
        use("")
        await raises(errors.FailedPrecondition, sn.stat(CHAIN))
        await raises(errors.FailedPrecondition, sn.prepare("x"))


@case
async def keys_are_not_paths(make: Factory) -> None:
    use(NS)
    async with make() as sn:
        odd = ["extract-123 sha256:" + "c" * 64, "../../escape", "a/b/c", "ünïcode ☃", "."]
        for key in odd:
            mounts = await sn.prepare(key)
            assert key not in mounts[0].source
            assert (await sn.stat(key)).name == key
        assert await names(sn) == set(odd)
        for key in odd:
            await sn.remove(key)
        assert await names(sn) == set()


@case
async def cleanup_keeps_snapshots(make: Factory) -> None:
    use(NS)
    async with make() as sn:
        base = await layer(sn, "base", "", {"keep": b"me"})
        d = layer_dir(await sn.prepare("live", "base"))
        (d / "mine").write_bytes(b"1")
        await sn.cleanup()
        use("")
        await sn.cleanup()  # needs no namespace
        use(NS)
        assert (base / "keep").read_bytes() == b"me"
        assert (d / "mine").read_bytes() == b"1"
        assert await names(sn) == {"base", "live"}
