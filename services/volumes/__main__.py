"""The volumes service process: Volumes on ``<state>/sockets/volumes.sock``.

python -m seacan.services.volumes [flags]

Besides serving, it follows ``/containers/create`` and ``/containers/delete``
events (from the tasks service) to confirm the references of new containers
and drop those of deleted ones. Before each
subscription (on start, and whenever the stream broke, as events may have
been missed) it reconciles its references against the containers service.
"""

from __future__ import annotations

import asyncio

import grpc

from seacan import config, errors, grpcutil, log
from seacan.api.events import container_pb2 as events_pb
from seacan.containers.proxy import RemoteContainers
from seacan.events.proxy import RemoteEvents
from seacan.services import process
from seacan.snapshots.proxy import RemoteSnapshotter

from . import servicer
from .store import LocalVolumes

_log = log.get(__name__)

RETRY = 1.0  # seconds between attempts while a service we follow is away
TOPIC_CREATE = "/containers/create"
TOPIC_DELETE = "/containers/delete"


async def follow(store: LocalVolumes, events: RemoteEvents) -> None:
    """Reconcile, then drop references as containers are deleted; again after any break."""
    while True:
        try:
            await store.reconcile()
            topics = [f'topic=="{TOPIC_CREATE}"', f'topic=="{TOPIC_DELETE}"']
            async for env in events.subscribe(topics):
                if env.topic == TOPIC_CREATE:
                    created = events_pb.ContainerCreate.FromString(env.event.value)
                    await store.container_created(env.namespace, created.id)
                else:
                    deleted = events_pb.ContainerDelete.FromString(env.event.value)
                    await store.container_deleted(env.namespace, deleted.id)
        except errors.SeacanError as e:
            _log.debug("volumes.follow_retry", error=str(e))
        await asyncio.sleep(RETRY)


async def serve(cfg: config.Config) -> None:
    containers_ch = grpcutil.channel(cfg.service_socket("containers"))
    snapshots_ch = grpcutil.channel(cfg.service_socket("snapshots"))
    events_ch = grpcutil.channel(cfg.service_socket("tasks"))
    store = LocalVolumes.open(
        cfg.service_root("volumes"),
        RemoteContainers(containers_ch),
        lambda name: RemoteSnapshotter(snapshots_ch, name),
    )

    def _register(server: grpc.aio.Server) -> None:
        servicer.register(server, store)

    try:
        async with asyncio.TaskGroup() as tg:
            follower = tg.create_task(follow(store, RemoteEvents(events_ch)), name="volumes.follow")
            await grpcutil.serve(cfg.service_socket("volumes"), _register, [servicer.SERVICE])
            follower.cancel()
    finally:
        store.close()
        for ch in (containers_ch, snapshots_ch, events_ch):
            await ch.close(None)


def main() -> None:
    process.run("volumes", serve)


if __name__ == "__main__":
    main()
