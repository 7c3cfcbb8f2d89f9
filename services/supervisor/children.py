"""The service processes seacand runs, and their restarts.

Each service is ``python -m seacan.services.<name>`` with the daemon's
flags. A child that dies is started again with back-off; a child dies
with seacand (PR_SET_PDEATHSIG, see services/process.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from seacan import config, errors, grpcutil, log

_log = log.get("seacan.supervisor")

START_TIMEOUT = 30.0
MAX_BACKOFF = 5.0


async def wait_healthy(
    sock: Path,
    timeout: float = START_TIMEOUT,
    proc: asyncio.subprocess.Process | None = None,
) -> None:
    """Until the health service on ``sock`` answers SERVING (or ``proc`` exits)."""
    deadline = time.monotonic() + timeout
    while True:
        if proc is not None and proc.returncode is not None:
            raise errors.Unavailable(f"service at {sock} exited with status {proc.returncode}")
        if sock.exists():
            ch = grpcutil.channel(sock)
            try:
                stub = health_pb2_grpc.HealthStub(ch)
                resp = await stub.Check(health_pb2.HealthCheckRequest(), timeout=2)
                if resp.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.aio.AioRpcError:
                pass
            finally:
                await ch.close()
        if time.monotonic() > deadline:
            raise errors.Unavailable(f"service at {sock} did not become healthy in {timeout:.0f}s")
        await asyncio.sleep(0.05)


@dataclass
class Child:
    name: str
    cfg: config.Config
    proc: asyncio.subprocess.Process | None = None
    restarts: int = 0
    stopping: bool = False
    started: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def socket(self) -> Path:
        return self.cfg.service_socket(self.name)

    async def spawn(self) -> None:
        argv = [
            sys.executable,
            "-m",
            f"seacan.services.{self.name}",
            *self.cfg.to_args(),
            "--parent-pid",
            str(os.getpid()),
        ]
        self.proc = await asyncio.create_subprocess_exec(*argv, stdin=asyncio.subprocess.DEVNULL)
        _log.info("service.spawned", service=self.name, pid=self.proc.pid)
        await wait_healthy(self.socket, proc=self.proc)
        self.started.set()

    async def supervise(self) -> None:
        """Keep the child running until :meth:`stop`."""
        backoff = 0.1
        while not self.stopping:
            if self.proc is None or self.proc.returncode is not None:
                try:
                    await self.spawn()
                except errors.Unavailable as e:
                    _log.error("service.start_failed", service=self.name, error=str(e))
                    if self.proc is not None and self.proc.returncode is None:
                        self.proc.kill()
                        await self.proc.wait()
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, MAX_BACKOFF)
                    continue
            assert self.proc is not None
            t0 = time.monotonic()
            rc = await self.proc.wait()
            if self.stopping:
                break
            self.restarts += 1
            _log.warning("service.died", service=self.name, rc=rc, restarts=self.restarts)
            if time.monotonic() - t0 > 10:
                backoff = 0.1
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF)

    async def stop(self, grace: float = 5.0) -> None:
        self.stopping = True
        p = self.proc
        if p is None or p.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            p.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(p.wait(), grace)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                p.kill()
            await p.wait()
