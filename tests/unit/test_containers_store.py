"""The local container store: the conformance suite, the pure update rule,
the namespace hook, and records that survive a reopen."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from seacan import errors, scope
from seacan.containers import AnyValue, Container, ContainerStore, Runtime, testsuite
from seacan.services.containers import store as store_mod
from seacan.services.containers.store import ContainerStore as LocalContainers
from seacan.services.containers.store import NoHooks

pytestmark = pytest.mark.unit

NS = "unit"


class RecordingHooks:
    def __init__(self) -> None:
        self.namespaces: list[str] = []

    async def ensure_namespace(self, namespace: str, /) -> None:
        self.namespaces.append(namespace)


def run(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run(coro)


@pytest.mark.parametrize("case", testsuite.CASES, ids=testsuite.case_id)
def test_conformance(case: testsuite.Case, tmp_path: Path) -> None:
    n = 0

    @contextlib.asynccontextmanager
    async def make() -> AsyncIterator[ContainerStore]:
        nonlocal n
        n += 1
        store = LocalContainers.open(tmp_path / f"s{n}", NoHooks())
        try:
            yield store
        finally:
            store.close()

    run(case(make))


def test_local_store_is_a_container_store(tmp_path: Path) -> None:
    store = LocalContainers.open(tmp_path, NoHooks())
    try:
        assert isinstance(store, ContainerStore)
    finally:
        store.close()


def test_create_ensures_namespace_only_when_valid(tmp_path: Path) -> None:
    hooks = RecordingHooks()

    async def main() -> None:
        scope.set_scope(NS, "")
        store = LocalContainers.open(tmp_path, hooks)
        try:
            with pytest.raises(errors.InvalidArgument):
                await store.create(testsuite.container("c", spec=None))
            assert hooks.namespaces == []
            await store.create(testsuite.container("c"))
            assert hooks.namespaces == [NS]
        finally:
            store.close()

    run(main())


def test_records_survive_reopen(tmp_path: Path) -> None:
    async def main() -> None:
        scope.set_scope(NS, "")
        store = LocalContainers.open(tmp_path, NoHooks())
        created = await store.create(
            testsuite.container("keep", extensions={"k": AnyValue("t", bytes(range(256)))})
        )
        store.close()
        store = LocalContainers.open(tmp_path, NoHooks())
        try:
            assert await store.get("keep") == created
        finally:
            store.close()

    run(main())


def test_updated_is_pure_and_follows_containerd() -> None:
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    t1 = datetime(2024, 1, 2, tzinfo=UTC)
    cur = Container(
        id="x",
        labels={"a": "1"},
        runtime=Runtime("r"),
        spec=testsuite.spec(),
        created_at=t0,
        updated_at=t0,
    )
    new = Container(id="x", labels={"b.c": "2"}, runtime=Runtime("r"), spec=testsuite.spec("{}"))
    u = store_mod.updated(cur, new, ["labels.b.c"], t1)
    assert dict(u.labels) == {"a": "1", "b.c": "2"}
    assert (u.created_at, u.updated_at, u.spec) == (t0, t1, testsuite.spec())
    assert dict(cur.labels) == {"a": "1"}  # untouched
    u = store_mod.updated(cur, new, [], t1)  # full replace
    assert dict(u.labels) == {"b.c": "2"} and u.spec == testsuite.spec("{}")
    with pytest.raises(errors.InvalidArgument, match=r"Runtime\.Name field is immutable"):
        store_mod.updated(cur, Container(id="x", runtime=Runtime("other")), [], t1)
    with pytest.raises(errors.InvalidArgument, match='cannot update "runtime" field on "x"'):
        store_mod.updated(cur, new, ["runtime"], t1)
