"""The Snapshots gRPC service: the conformance suite through RemoteSnapshotter,
the wire as ctr sees it on a raw stub, the service process itself, and a
snapshotter killed mid-work."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Coroutine
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
import pytest

from seacan import errors, grpcutil, scope
from seacan.api.services.snapshots.v1 import snapshots_pb2 as pb
from seacan.api.services.snapshots.v1 import snapshots_pb2_grpc
from seacan.services.snapshots.overlay import Hooks, OverlaySnapshotter
from seacan.services.snapshots.servicer import SERVICE, register
from seacan.snapshots import Snapshotter, testsuite
from seacan.snapshots.proxy import RemoteSnapshotter

pytestmark = pytest.mark.integration

NS = "integration"
MD = grpcutil.metadata(NS)
REPO = Path(__file__).resolve().parents[2]


class RecordingHooks:
    def __init__(self) -> None:
        self.namespaces: list[str] = []
        self.resources: list[tuple[str, str, str]] = []

    async def ensure_namespace(self, namespace: str, /) -> None:
        self.namespaces.append(namespace)

    async def add_lease_resource(
        self, lease_id: str, resource_id: str, resource_type: str, /
    ) -> None:
        self.resources.append((lease_id, resource_id, resource_type))


def run(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run(coro)


@contextlib.asynccontextmanager
async def serving(
    root: Path, hooks: Hooks | None = None
) -> AsyncIterator[tuple[OverlaySnapshotter, grpc.aio.Channel]]:
    """The real servicer on a private Unix socket, and a channel to it."""
    sn = OverlaySnapshotter.open(root / "overlayfs", hooks, index_off=True)
    server = grpcutil.server()
    register(server, sn)
    sock = root / "snapshots.sock"
    server.add_insecure_port(f"unix:{sock}")
    await server.start()
    channel = grpcutil.channel(sock)
    try:
        yield sn, channel
    finally:
        await channel.close(None)
        await server.stop(None)
        sn.close()


@pytest.mark.parametrize("case", testsuite.CASES, ids=testsuite.case_id)
def test_conformance_through_proxy(case: testsuite.Case, tmp_path: Path) -> None:
    n = 0

    @contextlib.asynccontextmanager
    async def make() -> AsyncIterator[Snapshotter]:
        nonlocal n
        n += 1
        async with serving(tmp_path / f"s{n}") as (_, channel):
            yield RemoteSnapshotter(channel)

    run(case(make))


def test_unpack_as_ctr_sends_it(tmp_path: Path) -> None:
    """Stat(chain) NOT_FOUND, Prepare(extract-..., parent), Commit(chain), then the
    container's Prepare and Mounts, under a lease, as in ctr's pull and run."""
    hooks = RecordingHooks()
    c1, c2 = "sha256:" + "1" * 64, "sha256:" + "2" * 64
    lease_md = (*MD, (scope.LEASE_HEADER, "303618549-lTnh"))

    async def main() -> None:
        async with serving(tmp_path, hooks) as (_, channel):
            stub = snapshots_pb2_grpc.SnapshotsStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as exc:
                await stub.Stat(
                    pb.StatSnapshotRequest(snapshotter="overlayfs", key=c2), metadata=MD
                )
            assert exc.value.code() == grpc.StatusCode.NOT_FOUND
            assert exc.value.details() == f"snapshot {c2} does not exist"
            parent = ""
            for chain in (c1, c2):
                key = f"extract-123456789-abcd {chain}"
                resp = await stub.Prepare(
                    pb.PrepareSnapshotRequest(snapshotter="overlayfs", key=key, parent=parent),
                    metadata=lease_md,
                )
                assert len(resp.mounts) == 1
                expected_type = "bind" if not parent else "overlay"
                assert resp.mounts[0].type == expected_type
                await stub.Commit(
                    pb.CommitSnapshotRequest(snapshotter="overlayfs", name=chain, key=key),
                    metadata=lease_md,
                )
                parent = chain
            await stub.Prepare(
                pb.PrepareSnapshotRequest(snapshotter="overlayfs", key="ctr-1", parent=c2),
                metadata=lease_md,
            )
            m = await stub.Mounts(
                pb.MountsRequest(snapshotter="overlayfs", key="ctr-1"), metadata=MD
            )
            (mnt,) = m.mounts
            assert (mnt.type, mnt.source) == ("overlay", "overlay")
            assert mnt.options[0] == "index=off"
            assert [o.split("=")[0] for o in mnt.options[1:]] == ["workdir", "upperdir", "lowerdir"]
            info = await stub.Stat(
                pb.StatSnapshotRequest(snapshotter="overlayfs", key="ctr-1"), metadata=MD
            )
            assert (info.info.name, info.info.parent, info.info.kind) == ("ctr-1", c2, pb.ACTIVE)
            assert info.info.created_at.seconds > 0
            with pytest.raises(grpc.aio.AioRpcError) as exc:
                await stub.Prepare(
                    pb.PrepareSnapshotRequest(snapshotter="overlayfs", key="ctr-1", parent=c2),
                    metadata=MD,
                )
            assert exc.value.code() == grpc.StatusCode.ALREADY_EXISTS
            assert exc.value.details() == 'snapshot "ctr-1": already exists'

    run(main())
    assert hooks.namespaces and set(hooks.namespaces) == {NS}
    lease = "303618549-lTnh"
    assert hooks.resources == [
        (lease, f"extract-123456789-abcd {c1}", "snapshots/overlayfs"),
        (lease, c1, "snapshots/overlayfs"),
        (lease, f"extract-123456789-abcd {c2}", "snapshots/overlayfs"),
        (lease, c2, "snapshots/overlayfs"),
        (lease, "ctr-1", "snapshots/overlayfs"),
    ]


def test_list_is_batched_by_100(tmp_path: Path) -> None:
    async def main() -> None:
        async with serving(tmp_path) as (sn, channel):
            scope.set_scope(NS, "")
            for i in range(230):
                await sn.prepare(f"k{i:03d}")
            stub = snapshots_pb2_grpc.SnapshotsStub(channel)
            sizes = [
                len(r.info)
                async for r in stub.List(
                    pb.ListSnapshotsRequest(snapshotter="overlayfs"), metadata=MD
                )
            ]
            assert sizes == [100, 100, 30]
            one = [
                r
                async for r in stub.List(
                    pb.ListSnapshotsRequest(snapshotter="overlayfs", filters=["name==k007"]),
                    metadata=MD,
                )
            ]
            assert [i.name for r in one for i in r.info] == ["k007"]

    run(main())


def test_wrong_snapshotter_and_missing_namespace(tmp_path: Path) -> None:
    async def main() -> None:
        async with serving(tmp_path) as (_, channel):
            stub = snapshots_pb2_grpc.SnapshotsStub(channel)
            for name, details in [
                ("native", "snapshotter not loaded: native"),
                ("", "snapshotter argument missing"),
            ]:
                with pytest.raises(grpc.aio.AioRpcError) as exc:
                    await stub.Stat(pb.StatSnapshotRequest(snapshotter=name, key="k"), metadata=MD)
                assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
                assert exc.value.details() == details
            with pytest.raises(grpc.aio.AioRpcError) as exc:
                await stub.Prepare(pb.PrepareSnapshotRequest(snapshotter="overlayfs", key="k"))
            assert exc.value.code() == grpc.StatusCode.FAILED_PRECONDITION
            assert exc.value.details() == "namespace is required"
            scope.set_scope(NS, "")
            with pytest.raises(errors.InvalidArgument, match="not loaded: native"):
                await RemoteSnapshotter(channel, "native").stat("k")

    run(main())


def test_update_with_go_zero_times_and_mask(tmp_path: Path) -> None:
    """ctr sends Info with Go's zero timestamps and a labels.<key> mask."""

    async def main() -> None:
        async with serving(tmp_path) as (sn, channel):
            scope.set_scope(NS, "")
            await sn.prepare("k", "", {"keep": "1"})
            stub = snapshots_pb2_grpc.SnapshotsStub(channel)
            zero = {"seconds": -62135596800}
            req = pb.UpdateSnapshotRequest(
                snapshotter="overlayfs",
                info=pb.Info(
                    name="k", kind=pb.ACTIVE, created_at=zero, updated_at=zero, labels={"a": "b"}
                ),
            )
            req.update_mask.paths.append("labels.a")
            resp = await stub.Update(req, metadata=MD)
            assert dict(resp.info.labels) == {"keep": "1", "a": "b"}
            assert resp.info.created_at.seconds > 0

    run(main())


def test_service_process_serves_and_stops(tmp_path: Path) -> None:
    """``python -m seacan.services.snapshots`` comes up on its socket and stops on SIGTERM."""
    root, state = tmp_path / "root", tmp_path / "state"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "seacan.services.snapshots",
            "--root",
            str(root),
            "--state",
            str(state),
        ],
        cwd=REPO,
        stderr=subprocess.PIPE,
    )
    sock = state / "sockets" / "snapshots.sock"
    try:
        deadline = time.monotonic() + 20
        while not sock.exists():
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "the service did not come up"
            time.sleep(0.05)

        async def main() -> None:
            channel = grpcutil.channel(sock)
            try:
                scope.set_scope(NS, "")
                sn = RemoteSnapshotter(channel)
                assert [i async for i in sn.list()] == []
                with pytest.raises(errors.NotFound):
                    await sn.stat("nothing")
                # no metadata service: a write cannot create the namespace, and says so
                with pytest.raises(errors.Unavailable):
                    await sn.prepare("k")
                with pytest.raises(errors.NotFound):
                    await sn.stat("k")
            finally:
                await channel.close(None)

        run(main())
        assert (root / "snapshots" / "overlayfs" / "meta.db").is_file()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0


_WORKER = """
import asyncio, sys
from pathlib import Path
from seacan import log, scope
from seacan.services.snapshots.overlay import OverlaySnapshotter
from seacan.snapshots import testsuite

async def main():
    log.configure("error")
    scope.set_scope("killed", "")
    sn = OverlaySnapshotter.open(Path(sys.argv[1]))
    i = 0
    while True:
        key = f"extract-{i} x"
        mounts = await sn.prepare(key, f"c{i-1}" if i else "")
        d = testsuite.layer_dir(mounts)
        (d / f"file{i}").write_bytes(b"x" * 4096)
        await sn.commit(f"c{i}", key)
        await sn.prepare(f"tmp{i}", f"c{i}")
        await sn.remove(f"tmp{i}")
        if i == 3:
            print("ready", flush=True)
        i += 1

asyncio.run(main())
"""


def test_killed_midway_leaves_nothing_half_made(tmp_path: Path) -> None:
    """SIGKILL a snapshotter busy preparing, committing and removing; on reopen every
    row has its directory and no directory lacks a row."""
    root = tmp_path / "overlayfs"
    proc = subprocess.Popen(
        [sys.executable, "-c", _WORKER, str(root)], cwd=REPO, stdout=subprocess.PIPE
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == b"ready"
        time.sleep(0.3)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()

    async def check() -> None:
        scope.set_scope("killed", "")
        sn = OverlaySnapshotter.open(root, index_off=True)
        try:
            infos = [i async for i in sn.list()]
            assert len(infos) >= 4
            on_disk = {p.name for p in (root / "snapshots").iterdir()}
            assert all(name.isdigit() for name in on_disk), on_disk
            assert len(on_disk) == len(infos)
            for info in infos:
                await sn.usage(info.name)
            committed = sorted(i.name for i in infos if i.name.startswith("c"))
            top = max(committed, key=lambda n: int(n[1:]))
            mounts = await sn.prepare("after", top)  # the chain is whole
            lower = testsuite.option(mounts[0], "lowerdir")
            assert len(lower.split(":")) == int(top[1:]) + 1
        finally:
            sn.close()

    run(check())


def test_service_name() -> None:
    assert SERVICE == "containerd.services.snapshots.v1.Snapshots"
