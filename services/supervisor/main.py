"""seacand: starts the services, keeps them running, serves the main socket."""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import os
import sys
from pathlib import Path

import grpc.aio

from seacan import apischema, config, errors, grpcutil, log
from seacan.api.services.introspection.v1 import introspection_pb2_grpc as ipb_grpc
from seacan.api.services.version.v1 import version_pb2_grpc as vpb_grpc
from seacan.services.supervisor import children, info
from seacan.services.supervisor.router import Router

_log = log.get("seacan.supervisor")

# Which service process owns which gRPC service.
OWNERS: dict[str, tuple[str, ...]] = {
    "metadata": (
        "containerd.services.namespaces.v1.Namespaces",
        "containerd.services.leases.v1.Leases",
        "seacan.services.gc.v1.GC",
    ),
    "content": ("containerd.services.content.v1.Content",),
    "snapshots": ("containerd.services.snapshots.v1.Snapshots",),
    "images": (
        "containerd.services.images.v1.Images",
        "containerd.services.diff.v1.Diff",
        "seacan.services.transfer.v1.Transfer",
    ),
    "containers": ("containerd.services.containers.v1.Containers",),
    "tasks": ("containerd.services.tasks.v1.Tasks", "containerd.services.events.v1.Events"),
    "volumes": ("seacan.services.volumes.v1.Volumes",),
    "networking": ("seacan.services.networking.v1.Networking",),
    "engine": ("seacan.services.engine.v1.Engine",),
    "build": ("seacan.services.build.v1.Builder",),
}
LOCAL = (
    "containerd.services.version.v1.Version",
    "containerd.services.introspection.v1.Introspection",
)


def routes(cfg: config.Config) -> dict[str, Path]:
    return {svc: cfg.service_socket(owner) for owner, svcs in OWNERS.items() for svc in svcs}


def _lock(state: Path) -> int:
    state.mkdir(parents=True, exist_ok=True)
    fd = os.open(state / "seacand.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise errors.FailedPrecondition(
            f"another seacand is running with state directory {state}"
        ) from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


async def run(cfg: config.Config) -> None:
    _lock(cfg.state)
    # Only root may enter: snapshots and volumes below hold images' setuid files
    # and devices that host users must not reach (Docker's data root is 0700 too).
    cfg.root.mkdir(parents=True, exist_ok=True, mode=0o700)
    cfg.root.chmod(0o700)
    uuid_ = info.server_uuid(cfg.root)
    kids = [children.Child(name, cfg) for name in config.SERVICES]
    router = Router(routes(cfg), apischema.method_shapes())

    def register(server: grpc.aio.Server) -> None:
        server.add_generic_rpc_handlers([router])
        vpb_grpc.add_VersionServicer_to_server(info.VersionServicer(), server)
        ipb_grpc.add_IntrospectionServicer_to_server(info.IntrospectionServicer(uuid_), server)

    async with asyncio.TaskGroup() as tg:
        for kid in kids:
            tg.create_task(kid.supervise(), name=f"supervise-{kid.name}")
        try:
            try:
                async with asyncio.timeout(children.START_TIMEOUT * 2):
                    for kid in kids:
                        await kid.started.wait()
            except TimeoutError:
                raise errors.Unavailable("services did not start; see the log above") from None
            _log.info("seacand.ready", address=str(cfg.address), root=str(cfg.root))
            await grpcutil.serve(cfg.address, register, [*LOCAL, *routes(cfg)], intercept=False)
        finally:
            await router.close()
            await asyncio.gather(*(kid.stop() for kid in kids))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="seacand", description="the seacan daemon")
    p.add_argument("--root", help="persistent data (default /var/lib/seacan)")
    p.add_argument("--state", help="runtime state (default /run/seacan)")
    p.add_argument("--address", "-a", help="main socket (default <state>/seacan.sock)")
    p.add_argument(
        "--config", "-c", type=Path, help="TOML config (default /etc/seacan/config.toml)"
    )
    p.add_argument("--log-level", help="debug, info, warning, error")
    p.add_argument("--max-layer-bytes", type=int, help="refuse layers that expand past this")
    p.add_argument("--max-blob-bytes", type=int, help="refuse blobs larger than this")
    p.add_argument("--gc-interval", type=float, help="seconds between collections; 0 disables")
    p.add_argument("--max-context-bytes", type=int, help="refuse build contexts larger than this")
    p.add_argument("--config-dir", help="networks and registry certificates (default /etc/seacan)")
    p.add_argument(
        "--cni-plugin-dirs", help="colon-separated CNI plugin directories (default /usr/lib/cni)"
    )
    a = p.parse_args(argv)
    try:
        cfg = config.load(
            a.config,
            root=a.root,
            state=a.state,
            address=a.address,
            log_level=a.log_level,
            max_layer_bytes=a.max_layer_bytes,
            max_blob_bytes=a.max_blob_bytes,
            gc_interval=a.gc_interval,
            max_context_bytes=a.max_context_bytes,
            config_dir=a.config_dir,
            cni_plugin_dirs=a.cni_plugin_dirs,
        )
        log.configure(cfg.log_level)
        asyncio.run(run(cfg))
    except errors.SeacanError as e:
        print(f"seacand: {e}", file=sys.stderr)
        raise SystemExit(1) from None
    except ExceptionGroup as eg:
        kinds, rest = eg.split(errors.SeacanError)
        if rest is not None or kinds is None:
            raise
        print(f"seacand: {_first(kinds)}", file=sys.stderr)
        raise SystemExit(1) from None


def _first(eg: BaseExceptionGroup[errors.SeacanError]) -> BaseException:
    e: BaseException = eg
    while isinstance(e, BaseExceptionGroup):
        e = e.exceptions[0]
    return e


if __name__ == "__main__":
    main()
