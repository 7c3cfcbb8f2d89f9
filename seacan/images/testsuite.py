"""The conformance suite every image store passes (what containerd's images service does).

Each case is ``async def case(make: StoreFactory) -> None``; ``make()`` is an
async context manager yielding a fresh, empty :class:`~seacan.images.ImageStore`.
A case sets its own request scope, so run each one in its own task
(``asyncio.run`` does)::

    @pytest.mark.parametrize("case", testsuite.CASES, ids=testsuite.case_id)
    def test_conformance(case, tmp_path):
        asyncio.run(case(lambda: my_store(tmp_path)))
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable, Coroutine
from contextlib import AbstractAsyncContextManager
from typing import Any

from seacan import errors, oci, scope
from seacan.images import Image, ImageStore

StoreFactory = Callable[[], AbstractAsyncContextManager[ImageStore]]
Case = Callable[[StoreFactory], Coroutine[Any, Any, None]]

NS = "testsuite"
OTHER_NS = "testsuite-other"

CASES: list[Case] = []


def case(fn: Case) -> Case:
    CASES.append(fn)
    return fn


def case_id(fn: Case) -> str:
    return getattr(fn, "__name__", "case")


def digest(seed: str) -> str:
    return "sha256:" + hashlib.sha256(seed.encode()).hexdigest()


def target(seed: str = "m", media_type: str = oci.OCI_MANIFEST, size: int = 100) -> oci.Descriptor:
    return oci.Descriptor(media_type=media_type, digest=digest(seed), size=size)


def use(namespace: str) -> None:
    scope.set_scope(namespace, "")


async def raises(kind: type[errors.SeacanError], aw: Awaitable[object]) -> errors.SeacanError:
    try:
        await aw
    except kind as e:
        return e
    raise AssertionError(f"expected {kind.__name__}")


@case
async def create_then_get(make: StoreFactory) -> None:
    use(NS)
    async with make() as s:
        t = target(size=321)
        made = await s.create(Image(name="docker.io/library/a:1", labels={"k": "v"}, target=t))
        assert made.name == "docker.io/library/a:1"
        assert made.target == t
        assert dict(made.labels) == {"k": "v"}
        assert made.created_at is not None and made.updated_at is not None
        got = await s.get("docker.io/library/a:1")
        assert got == made


@case
async def create_existing_is_already_exists(make: StoreFactory) -> None:
    use(NS)
    async with make() as s:
        await s.create(Image(name="x", target=target()))
        e = await raises(errors.AlreadyExists, s.create(Image(name="x", target=target("n"))))
        assert str(e) == 'image "x": already exists'
        assert (await s.get("x")).target == target()


@case
async def create_validates(make: StoreFactory) -> None:
    use(NS)
    async with make() as s:
        await raises(errors.InvalidArgument, s.create(Image(name="", target=target())))
        await raises(errors.InvalidArgument, s.create(Image(name="no-target")))
        no_type = oci.Descriptor(media_type="", digest=digest("a"), size=1)
        await raises(errors.InvalidArgument, s.create(Image(name="x", target=no_type)))
        bad = oci.Descriptor(media_type=oci.OCI_MANIFEST, digest="sha256:abc", size=1)
        e = await raises(errors.InvalidArgument, s.create(Image(name="x", target=bad)))
        assert "sha256:abc" in str(e)
        big = {"k": "v" * 5000}
        await raises(errors.InvalidArgument, s.create(Image(name="x", labels=big, target=target())))
        assert await s.list() == []


@case
async def missing_is_not_found(make: StoreFactory) -> None:
    use(NS)
    async with make() as s:
        e = await raises(errors.NotFound, s.get("nope"))
        assert str(e) == 'image "nope": not found'
        e = await raises(errors.NotFound, s.update(Image(name="nope", target=target())))
        assert str(e) == 'image "nope": not found'
        e = await raises(errors.NotFound, s.delete("nope"))
        assert str(e) == 'image "nope": not found'


@case
async def update_without_mask_replaces(make: StoreFactory) -> None:
    use(NS)
    async with make() as s:
        made = await s.create(Image(name="x", labels={"a": "1", "b": "2"}, target=target()))
        await asyncio.sleep(0.002)
        up = await s.update(Image(name="x", labels={"c": "3"}, target=target("n")))
        assert dict(up.labels) == {"c": "3"}
        assert up.target == target("n")
        assert up.created_at == made.created_at
        assert up.updated_at is not None and made.updated_at is not None
        assert up.updated_at > made.updated_at
        assert await s.get("x") == up


@case
async def update_label_paths(make: StoreFactory) -> None:
    use(NS)
    async with make() as s:
        await s.create(Image(name="x", labels={"keep": "1", "gone": "2"}, target=target()))
        gc_key = "containerd.io/gc.ref.content.l.0"
        up = await s.update(
            Image(name="x", labels={gc_key: "sha256:x", "other": "ignored"}, target=target("n")),
            [f"labels.{gc_key}", "labels.gone"],
        )
        # Split on the first dot only; a label set to "" (here: absent) is removed.
        assert dict(up.labels) == {"keep": "1", gc_key: "sha256:x"}
        assert up.target == target()  # not in the mask
        up = await s.update(Image(name="x", labels={"only": "this"}), ["labels"])
        assert dict(up.labels) == {"only": "this"}
        assert up.target == target()


@case
async def update_target_and_annotations(make: StoreFactory) -> None:
    use(NS)
    async with make() as s:
        await s.create(Image(name="x", labels={"l": "1"}, target=target()))
        new = oci.Descriptor(
            media_type=oci.OCI_INDEX, digest=digest("i"), size=7, annotations={"a": "1", "b": "2"}
        )
        up = await s.update(Image(name="x", labels={}, target=new), ["target"])
        assert up.target == new
        assert dict(up.labels) == {"l": "1"}
        ann = oci.Descriptor(media_type="", digest="", size=0, annotations={"a": "9"})
        up = await s.update(Image(name="x", target=ann), ["annotations.a", "annotations.b"])
        assert dict(up.target.annotations) == {"a": "9"}
        assert up.target.digest == new.digest
        up = await s.update(Image(name="x", target=ann), ["annotations"])
        assert dict(up.target.annotations) == {"a": "9"}


@case
async def update_rejects_unknown_paths_and_bad_results(make: StoreFactory) -> None:
    use(NS)
    async with make() as s:
        await s.create(Image(name="x", target=target()))
        e = await raises(errors.InvalidArgument, s.update(Image(name="x"), ["name"]))
        assert '"name"' in str(e)
        # Replacing the target with nothing leaves an invalid image: refused, unchanged.
        await raises(errors.InvalidArgument, s.update(Image(name="x"), ["target"]))
        await raises(errors.InvalidArgument, s.update(Image(name="", target=target())))
        assert (await s.get("x")).target == target()


@case
async def delete_removes(make: StoreFactory) -> None:
    use(NS)
    async with make() as s:
        await s.create(Image(name="x", target=target()))
        await s.create(Image(name="y", target=target()))
        await s.delete("x")
        await raises(errors.NotFound, s.get("x"))
        await s.delete("y", sync=True)
        assert await s.list() == []


@case
async def list_filters(make: StoreFactory) -> None:
    use(NS)
    async with make() as s:
        await s.create(Image(name="b", labels={"env": "prod", "a.b": "dotted"}, target=target()))
        await s.create(Image(name="a", labels={"env": "dev"}, target=target("i", oci.OCI_INDEX)))
        await s.create(Image(name="c", target=target("c")))

        async def names(*f: str) -> list[str]:
            return [i.name for i in await s.list(list(f))]

        assert await names() == ["a", "b", "c"]
        assert await names("") == ["a", "b", "c"]
        assert await names("name==b") == ["b"]
        assert await names("labels.env==prod") == ["b"]
        assert await names('labels."a.b"==dotted') == ["b"]
        assert await names("labels.env") == ["a", "b"]
        assert await names(f"target.mediatype=={oci.OCI_INDEX}") == ["a"]
        assert await names(f"target.digest=={digest('c')}") == ["c"]
        assert await names("name==a", "name==c") == ["a", "c"]
        assert await names("labels.env,name!=a") == ["b"]
        assert await names("name~=^[ab]$") == ["a", "b"]
        await raises(errors.InvalidArgument, s.list(["labels."]))


@case
async def namespaces_are_separate(make: StoreFactory) -> None:
    async with make() as s:
        use(NS)
        await s.create(Image(name="x", target=target()))
        use(OTHER_NS)
        assert await s.list() == []
        await raises(errors.NotFound, s.get("x"))
        await s.create(Image(name="x", target=target("other")))
        use(NS)
        assert (await s.get("x")).target == target()


@case
async def namespace_is_required(make: StoreFactory) -> None:
    use("")
    async with make() as s:
        e = await raises(errors.FailedPrecondition, s.create(Image(name="x", target=target())))
        assert "namespace is required" in str(e)
        await raises(errors.FailedPrecondition, s.list())
        await raises(errors.FailedPrecondition, s.get("x"))
