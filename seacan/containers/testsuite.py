"""The conformance suite every container store passes (containerd's containers semantics).

Each case is ``async def case(make: StoreFactory) -> None``; ``make()`` is an
async context manager yielding a fresh, empty :class:`~seacan.containers.ContainerStore`.
A case sets its own request scope, so run each one in its own task
(``asyncio.run`` does)::

    @pytest.mark.parametrize("case", testsuite.CASES, ids=testsuite.case_id)
    def test_conformance(case, tmp_path):
        asyncio.run(case(lambda: my_store(tmp_path)))
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable, Coroutine
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from typing import Any

from seacan import errors, scope
from seacan.containers import (
    RUNC_OPTIONS_TYPE_URL,
    SPEC_TYPE_URL,
    AnyValue,
    Container,
    ContainerStore,
    Runtime,
)

StoreFactory = Callable[[], AbstractAsyncContextManager[ContainerStore]]
Case = Callable[[StoreFactory], Coroutine[Any, Any, None]]

NS = "testsuite"
OTHER_NS = "testsuite-other"
RUNC = "io.containerd.runc.v2"

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


def spec(text: str = '{"ociVersion":"1.0.2"}') -> AnyValue:
    return AnyValue(SPEC_TYPE_URL, text.encode())


def container(id: str = "c1", **kw: Any) -> Container:
    """A container ctr would create: runc runtime with empty options, a JSON spec."""
    fields: dict[str, Any] = {
        "runtime": Runtime(RUNC, AnyValue(RUNC_OPTIONS_TYPE_URL, b"")),
        "spec": spec(),
    }
    fields.update(kw)
    return Container(id=id, **fields)


async def ids(store: ContainerStore, *filters: str) -> list[str]:
    return [c.id for c in await store.list(list(filters))]


@case
async def create_and_get_round_trip(make: StoreFactory) -> None:
    use(NS)
    ext = {"x.io/meta": AnyValue("x.io/Meta", b"\x00\x01binary\xff")}
    sent = container(
        "web",
        labels={"a": "1", "io.containerd.image.config.stop-signal": "SIGTERM"},
        image="docker.io/library/busybox:latest",
        snapshotter="overlayfs",
        snapshot_key="web",
        extensions=ext,
        created_at=datetime(2001, 1, 1, tzinfo=UTC),  # the server's clock wins
    )
    async with make() as store:
        created = await store.create(sent)
        got = await store.get("web")
        assert got == created
        assert got.runtime == Runtime(RUNC, AnyValue(RUNC_OPTIONS_TYPE_URL, b""))
        assert got.spec == spec()
        assert dict(got.extensions) == ext
        assert dict(got.labels) == dict(sent.labels)
        assert (got.image, got.snapshotter, got.snapshot_key) == (
            sent.image,
            "overlayfs",
            "web",
        )
        assert got.created_at is not None and got.created_at.year > 2001
        assert got.updated_at == got.created_at
        # Options not sent stay unset; an empty label is not stored.
        bare = await store.create(
            Container(id="bare", runtime=Runtime(RUNC), spec=spec(), labels={"gone": ""})
        )
        assert bare.runtime.options is None and dict(bare.labels) == {}
        assert await store.get("bare") == bare


@case
async def create_existing_and_get_missing(make: StoreFactory) -> None:
    use(NS)
    async with make() as store:
        await store.create(container("c1"))
        e = await raises(errors.AlreadyExists, store.create(container("c1")))
        assert 'container "c1": already exists' in str(e)
        e = await raises(errors.NotFound, store.get("nope"))
        assert f'container "nope" in namespace "{NS}": not found' in str(e)


@case
async def create_validation(make: StoreFactory) -> None:
    use(NS)
    async with make() as store:
        bad = [
            container(""),
            container("-bad"),
            container("has space"),
            container("x" * 77),
            container("c", runtime=Runtime("")),
            container("c", spec=None),
            container("c", snapshot_key="k"),
            container("c", labels={"k": "v" * 4096}),
            container("c", extensions={"": AnyValue("t", b"")}),
        ]
        for c in bad:
            e = await raises(errors.InvalidArgument, store.create(c))
            assert "create container failed validation" in str(e)
        e = await raises(errors.InvalidArgument, store.create(container("c", spec=None)))
        assert "container.Spec must be set" in str(e)
        e = await raises(errors.InvalidArgument, store.create(container("c", runtime=Runtime())))
        assert "container.Runtime.Name must be set" in str(e)
        assert await ids(store) == []


@case
async def namespaces_are_separate_and_required(make: StoreFactory) -> None:
    async with make() as store:
        use(NS)
        await store.create(container("c1", labels={"ns": "a"}))
        use(OTHER_NS)
        assert await ids(store) == []
        await raises(errors.NotFound, store.get("c1"))
        await store.create(container("c1", labels={"ns": "b"}))
        await store.delete("c1")
        use(NS)
        assert dict((await store.get("c1")).labels) == {"ns": "a"}
        use("")
        await raises(errors.FailedPrecondition, store.get("c1"))
        await raises(errors.FailedPrecondition, store.list())
        await raises(errors.FailedPrecondition, store.create(container("c2")))
        await raises(errors.FailedPrecondition, store.delete("c1"))


@case
async def lease_changes_nothing(make: StoreFactory) -> None:
    use(NS, lease="some-lease")
    async with make() as store:
        await store.create(container("leased"))
        use(NS)
        assert await ids(store) == ["leased"]


@case
async def list_filters(make: StoreFactory) -> None:
    use(NS)
    async with make() as store:
        await store.create(container("a", image="busybox", labels={"app": "web", "x.y/z": "1"}))
        await store.create(container("b", image="debian", labels={"app": "db"}))
        await store.create(container("c", runtime=Runtime("io.containerd.seacan.v2"), spec=spec()))
        assert await ids(store) == ["a", "b", "c"]
        assert await ids(store, "id==b") == ["b"]
        assert await ids(store, "image==busybox") == ["a"]
        assert await ids(store, "image") == ["a", "b"]
        assert await ids(store, "runtime.name==io.containerd.seacan.v2") == ["c"]
        assert await ids(store, f"runtime.name=={RUNC}") == ["a", "b"]
        assert await ids(store, "labels.app==web") == ["a"]
        assert await ids(store, 'labels."x.y/z"') == ["a"]
        assert await ids(store, "labels.app!=web") == ["b", "c"]
        assert await ids(store, "id~=^[ab]$,labels.app") == ["a", "b"]
        assert await ids(store, "id==a", "id==c") == ["a", "c"]
        await raises(errors.InvalidArgument, store.list(["labels.=="]))


@case
async def update_with_field_paths(make: StoreFactory) -> None:
    use(NS)
    async with make() as store:
        first = await store.create(
            container(
                "u",
                labels={"keep": "1", "drop": "2"},
                image="old",
                extensions={"e1": AnyValue("t1", b"1"), "e2": AnyValue("t2", b"2")},
                snapshotter="overlayfs",
                snapshot_key="k1",
            )
        )
        await asyncio.sleep(0.002)
        new = container(
            "u",
            labels={"new": "3", "a.b": "dotted"},
            image="new",
            spec=spec('{"v":2}'),
            extensions={"e1": AnyValue("t1", b"one")},
            snapshot_key="k2",
            runtime=Runtime("ignored"),
        )
        u = await store.update(new, ["labels.new", "labels.drop", "labels.a.b"])
        assert dict(u.labels) == {"keep": "1", "new": "3", "a.b": "dotted"}
        assert (u.image, u.spec) == ("old", spec())
        assert u.created_at == first.created_at
        assert u.updated_at is not None and first.updated_at is not None
        assert u.updated_at > first.updated_at
        u = await store.update(new, ["image", "spec", "snapshotkey", "extensions.e1"])
        assert (u.image, u.spec, u.snapshot_key) == ("new", spec('{"v":2}'), "k2")
        assert dict(u.extensions) == {"e1": AnyValue("t1", b"one"), "e2": AnyValue("t2", b"2")}
        assert u.runtime.name == RUNC
        u = await store.update(new, ["extensions.e2"])  # absent in the request: removed
        assert set(u.extensions) == {"e1"}
        u = await store.update(new, ["labels"])
        assert dict(u.labels) == dict(new.labels)
        assert await store.get("u") == u
        for path in ("runtime", "snapshotter", "id", "created_at", "bogus"):
            e = await raises(errors.InvalidArgument, store.update(new, [path]))
            assert f'cannot update "{path}" field on "u"' in str(e)
        e = await raises(errors.InvalidArgument, store.update(container("u", spec=None), ["spec"]))
        assert "container.Spec must be set" in str(e)
        assert await store.get("u") == u


@case
async def update_without_paths_replaces(make: StoreFactory) -> None:
    use(NS)
    async with make() as store:
        c = await store.create(
            container(
                "r",
                labels={"a": "1"},
                image="old",
                snapshotter="overlayfs",
                snapshot_key="k",
                extensions={"e1": AnyValue("t", b"1")},
            )
        )
        e = await raises(
            errors.InvalidArgument, store.update(dataclasses.replace(c, snapshotter="btrfs"))
        )
        assert "container.Snapshotter field is immutable" in str(e)
        e = await raises(
            errors.InvalidArgument, store.update(dataclasses.replace(c, runtime=Runtime("other")))
        )
        assert "container.Runtime.Name field is immutable" in str(e)
        new = dataclasses.replace(
            c,
            labels={"b": "2"},
            image="",
            spec=spec("{}"),
            snapshot_key="",
            runtime=Runtime(RUNC, None),  # options are not replaced
            extensions={"e2": AnyValue("t", b"2")},
        )
        u = await store.update(new)
        assert (dict(u.labels), u.image, u.spec, u.snapshot_key) == ({"b": "2"}, "", spec("{}"), "")
        assert u.runtime == c.runtime
        # containerd merges extensions on replace; it never drops a stored key.
        assert set(u.extensions) == {"e1", "e2"}
        assert u.created_at == c.created_at


@case
async def update_and_delete_missing(make: StoreFactory) -> None:
    use(NS)
    async with make() as store:
        e = await raises(errors.NotFound, store.update(container("ghost"), ["labels"]))
        assert 'container "ghost": not found' in str(e)
        await raises(errors.InvalidArgument, store.update(container(""), ["labels"]))
        e = await raises(errors.NotFound, store.delete("ghost"))
        assert "container ghost: not found" in str(e)
        await store.create(container("d"))
        await store.delete("d")
        await raises(errors.NotFound, store.get("d"))
        await raises(errors.NotFound, store.delete("d"))
        await store.create(container("d"))  # the ID is free again
        assert await ids(store) == ["d"]


@case
async def many_containers(make: StoreFactory) -> None:
    use(NS)
    async with make() as store:
        await asyncio.gather(*(store.create(container(f"c{i:03}")) for i in range(120)))
        got = await ids(store)
        assert got == [f"c{i:03}" for i in range(120)]


__all__ = ["CASES", "Case", "StoreFactory", "case_id", "container", "spec"]
