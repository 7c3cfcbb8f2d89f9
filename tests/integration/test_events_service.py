"""The Events service (gRPC Publish/Forward/Subscribe and the shims' ttrpc
Forward) on temporary sockets: topic rules, envelopes as ctr decodes them,
filters, order, and slow subscribers dropped rather than blocking."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
from collections.abc import AsyncIterator, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import empty_pb2

from seacan import errors, grpcutil, scope, ttrpc
from seacan.api.events import task_pb2 as epb
from seacan.api.services.events.v1 import events_pb2 as pb
from seacan.api.services.events.v1 import events_pb2_grpc
from seacan.api.services.ttrpc.events.v1 import events_pb2 as tpb
from seacan.containers import AnyValue
from seacan.events import Envelope, validate_topic
from seacan.events.proxy import RemoteEvents
from seacan.services.tasks import events as exchange_mod
from seacan.services.tasks import events_servicer
from seacan.services.tasks.events import Exchange

pytestmark = pytest.mark.integration


def run(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run(coro)


@contextlib.asynccontextmanager
async def serving() -> AsyncIterator[tuple[grpc.aio.Channel, str, Exchange]]:
    d = Path(tempfile.mkdtemp(prefix="sc-", dir="/tmp"))
    exchange = Exchange()
    server = grpcutil.server()
    events_servicer.register(server, exchange)
    server.add_insecure_port(f"unix:{d / 'tasks.sock'}")
    await server.start()
    tserver = ttrpc.Server()
    events_servicer.register_ttrpc(tserver, exchange)
    await tserver.serve_unix(str(d / "main.sock.ttrpc"))
    channel = grpcutil.channel(d / "tasks.sock")
    try:
        yield channel, str(d / "main.sock.ttrpc"), exchange
    finally:
        await channel.close(None)
        await tserver.close()
        await server.stop(None)
        shutil.rmtree(d, ignore_errors=True)


async def collect(channel: grpc.aio.Channel, filters: list[str], n: int) -> list[Any]:
    stub = events_pb2_grpc.EventsStub(channel)
    call = stub.Subscribe(pb.SubscribeRequest(filters=filters))
    out = []
    async for env in call:
        out.append(env)
        if len(out) == n:
            call.cancel()
            break
    return out


async def wait_subscribers(exchange: Exchange, n: int) -> None:
    while exchange.subscribers < n:
        await asyncio.sleep(0.01)


@pytest.mark.parametrize("topic", ["", "tasks/exit", "/", "/tasks//exit", "/tasks/ex it", "/a/"])
def test_bad_topics(topic: str) -> None:
    with pytest.raises(errors.InvalidArgument):
        validate_topic(topic)


def test_publish_subscribe_in_order_with_filters() -> None:
    async def body() -> None:
        async with serving() as (channel, _, exchange):
            stub = events_pb2_grpc.EventsStub(channel)
            mine = asyncio.create_task(collect(channel, ["namespace==n1"], 3))
            exits = asyncio.create_task(collect(channel, ['topic=="/tasks/exit"'], 2))
            await wait_subscribers(exchange, 2)
            for ns, topic, msg in [
                ("n1", "/tasks/create", epb.TaskCreate(container_id="c", pid=1)),
                ("n2", "/tasks/exit", epb.TaskExit(container_id="x", exit_status=1)),
                ("n1", "/tasks/start", epb.TaskStart(container_id="c", pid=1)),
                ("n1", "/tasks/exit", epb.TaskExit(container_id="c", exit_status=3)),
            ]:
                await stub.Publish(
                    pb.PublishRequest(topic=topic, event=grpcutil.make_any(msg)),
                    metadata=grpcutil.metadata(ns),
                )
            got = await asyncio.wait_for(mine, 5)
            assert [e.topic for e in got] == ["/tasks/create", "/tasks/start", "/tasks/exit"]
            assert {e.namespace for e in got} == {"n1"}
            assert got[2].event.type_url == "containerd.events.TaskExit"
            ev = epb.TaskExit()
            ev.ParseFromString(got[2].event.value)
            assert (ev.container_id, ev.exit_status) == ("c", 3)
            assert got[0].timestamp.seconds > 0
            ex = await asyncio.wait_for(exits, 5)
            assert [(e.namespace, e.topic) for e in ex] == [
                ("n2", "/tasks/exit"),
                ("n1", "/tasks/exit"),
            ]

    run(body())


def test_publish_errors() -> None:
    async def body() -> None:
        async with serving() as (channel, _, _):
            stub = events_pb2_grpc.EventsStub(channel)
            ev = grpcutil.make_any(epb.TaskOOM(container_id="c"))
            with pytest.raises(grpc.aio.AioRpcError) as ei:
                await stub.Publish(pb.PublishRequest(topic="/tasks/oom", event=ev))
            assert ei.value.code() == grpc.StatusCode.FAILED_PRECONDITION
            with pytest.raises(grpc.aio.AioRpcError) as ei:
                await stub.Publish(
                    pb.PublishRequest(topic="tasks", event=ev), metadata=grpcutil.metadata("n")
                )
            assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            with pytest.raises(grpc.aio.AioRpcError) as ei:
                await stub.Subscribe(pb.SubscribeRequest(filters=["topic=="])).read()
            assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    run(body())


def test_forward_grpc_and_ttrpc_keep_the_envelope() -> None:
    async def body() -> None:
        async with serving() as (channel, ttrpc_address, exchange):
            got = asyncio.create_task(collect(channel, [], 2))
            await wait_subscribers(exchange, 1)
            when = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
            env = Envelope(
                when, "ns1", "/tasks/start", AnyValue("containerd.events.TaskStart", b"\n\x01c")
            )
            scope.set_scope("other", "")
            await RemoteEvents(channel).forward(env)
            async with await ttrpc.Client.connect(ttrpc_address) as client:
                req = tpb.ForwardRequest(
                    envelope=tpb.Envelope(
                        timestamp=grpcutil.timestamp(when),
                        namespace="ns2",
                        topic="/tasks/exit",
                        event=grpcutil.make_any(epb.TaskExit(container_id="c", exit_status=9)),
                    )
                )
                await client.call(
                    events_servicer.TTRPC_SERVICE, "Forward", req, empty_pb2.Empty, timeout=5
                )
            envs = await asyncio.wait_for(got, 5)
            assert [(e.namespace, e.topic, e.timestamp.ToDatetime(tzinfo=UTC)) for e in envs] == [
                ("ns1", "/tasks/start", when),
                ("ns2", "/tasks/exit", when),
            ]
            assert envs[0].event.value == b"\n\x01c"

    run(body())


def test_proxy_subscribe_and_publish() -> None:
    async def body() -> None:
        async with serving() as (channel, _, exchange):
            remote = RemoteEvents(channel)
            scope.set_scope("pns", "")

            async def first() -> Envelope:
                async for env in remote.subscribe(["namespace==pns"]):
                    return env
                raise AssertionError("stream ended")

            task = asyncio.create_task(first())
            await wait_subscribers(exchange, 1)
            await remote.publish("/tasks/paused", epb.TaskPaused(container_id="p"))
            env = await asyncio.wait_for(task, 5)
            assert (env.namespace, env.topic, env.event.type_url) == (
                "pns",
                "/tasks/paused",
                "containerd.events.TaskPaused",
            )

    run(body())


def test_slow_subscriber_is_dropped_not_blocking(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(exchange_mod, "QUEUE_SIZE", 4)

    async def body() -> None:
        exchange = Exchange()
        scope.set_scope("n", "")
        slow = exchange.subscribe()
        first = asyncio.ensure_future(slow.__anext__())
        await wait_subscribers(exchange, 1)
        for i in range(10):  # never blocks, although nobody reads
            await exchange.publish("/tasks/start", epb.TaskStart(container_id="c", pid=i))
        assert exchange.subscribers == 0
        received = [await first]
        with pytest.raises(errors.ResourceExhausted):
            while True:
                received.append(await slow.__anext__())
        assert len(received) == 4

    run(body())
