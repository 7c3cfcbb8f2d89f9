"""The networking service process on ``<state>/sockets/networking.sock``.

python -m seacan.services.networking [flags]

Besides serving Networking, it follows task and container events (a
container's task exit detaches it; a start marks it started; a deleted
container is detached and forgotten) and reconciles at start, after
every re-subscription and every :data:`RECONCILE_EVERY` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib

import grpc

from seacan import config, errors, grpcutil, log, scope
from seacan.api.events import container_pb2, task_pb2
from seacan.containers.proxy import RemoteContainers
from seacan.events import TASK_EXIT, TASK_START
from seacan.events.proxy import RemoteEvents
from seacan.services import process
from seacan.tasks import Status
from seacan.tasks.proxy import RemoteTasks

from .db import NetworkDB
from .manager import NetworkManager
from .servicer import SERVICE, register

RECONCILE_EVERY = 10.0
CONTAINER_DELETE = "/containers/delete"
_log = log.get("seacan.services.networking")


class TaskStates:
    """Whether a container's task runs, asked of the containers and tasks services."""

    def __init__(self, containers: RemoteContainers, tasks: RemoteTasks) -> None:
        self._containers = containers
        self._tasks = tasks

    async def __call__(self, ns: str, container: str) -> str:
        scope.set_scope(ns, "")
        try:
            await self._containers.get(container)
        except errors.NotFound:
            return "gone"
        except errors.SeacanError:
            return "unknown"
        try:
            task = await self._tasks.get(container)
        except errors.NotFound:
            return "stopped"
        except errors.SeacanError:
            return "unknown"
        return "stopped" if task.status == Status.STOPPED else "running"


async def follow_events(manager: NetworkManager, events: RemoteEvents) -> None:
    while True:
        try:
            await manager.reconcile()
            topics = (TASK_EXIT, TASK_START, CONTAINER_DELETE)
            async for env in events.subscribe([f'topic=="{t}"' for t in topics]):
                if env.topic == TASK_EXIT:
                    ex = task_pb2.TaskExit.FromString(env.event.value)
                    if ex.id in ("", ex.container_id):
                        await manager.task_exited(env.namespace, ex.container_id)
                elif env.topic == TASK_START:
                    st = task_pb2.TaskStart.FromString(env.event.value)
                    await manager.task_started(env.namespace, st.container_id)
                elif env.topic == CONTAINER_DELETE:
                    cd = container_pb2.ContainerDelete.FromString(env.event.value)
                    await manager.detach(env.namespace, cd.id, forget=True)
        except errors.SeacanError as e:
            _log.info("events.resubscribe", error=str(e))
        await asyncio.sleep(1.0)


async def reconcile_every(manager: NetworkManager) -> None:
    while True:
        await asyncio.sleep(RECONCILE_EVERY)
        try:
            await manager.reconcile()
        except errors.SeacanError as e:
            _log.warning("reconcile.failed", error=str(e))


async def serve(cfg: config.Config) -> None:
    root = cfg.service_root("networking")
    root.mkdir(parents=True, exist_ok=True)
    db = NetworkDB(root / "networking.db")
    tasks_ch = grpcutil.channel(cfg.service_socket("tasks"))
    containers_ch = grpcutil.channel(cfg.service_socket("containers"))
    states = TaskStates(RemoteContainers(containers_ch), RemoteTasks(tasks_ch))
    manager = NetworkManager(cfg, db, states)

    def _register(server: grpc.aio.Server) -> None:
        register(server, manager)

    try:
        await manager.sync_networks()
        await manager.reconcile(at_start=True)
        async with asyncio.TaskGroup() as tg:
            watchers = [
                tg.create_task(follow_events(manager, RemoteEvents(tasks_ch)), name="events"),
                tg.create_task(reconcile_every(manager), name="reconcile"),
            ]
            try:
                await grpcutil.serve(cfg.service_socket("networking"), _register, [SERVICE])
            finally:
                for w in watchers:
                    w.cancel()
        await manager.shutdown()
    finally:
        with contextlib.suppress(Exception):
            await tasks_ch.close(None)
            await containers_ch.close(None)
        db.close()


def main() -> None:
    process.run("networking", serve)


if __name__ == "__main__":
    main()
