"""A task's bundle directory, laid out as containerd's runtime v2 does.

``<state>/tasks/<ns>/<id>/`` holds ``config.json`` (the container's spec,
written as received), ``rootfs/`` (the shim mounts the rootfs there),
``work`` (a symlink to ``<root>/tasks/<ns>/<id>``, the shim's persistent
scratch space), ``address`` (the shim's ttrpc address), ``shim-binary-path``,
``log`` (a FIFO the shim writes its log to) and, once the shim died while
the task was known, ``dead-exit`` (how the task ended, as the shim's
cleanup reported it). Bundles are how the tasks service finds its shims
again after a restart.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from seacan import errors, log, mount

_log = log.get("seacan.tasks.bundle")


@dataclass(frozen=True, slots=True)
class Bundle:
    namespace: str
    id: str
    path: Path
    work: Path

    @classmethod
    def at(cls, state: Path, root: Path, namespace: str, id: str) -> Bundle:
        return cls(
            namespace,
            id,
            state / "tasks" / namespace / id,
            root / "tasks" / namespace / id,
        )

    def create(self, spec: bytes) -> None:
        """Make the directory; AlreadyExists if a task by that ID has one."""
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o711)
        try:
            self.path.mkdir(mode=0o700)
        except FileExistsError:
            raise errors.AlreadyExists(f"task {self.id}: already exists") from None
        try:
            (self.path / "rootfs").mkdir(mode=0o711)
            (self.path / "config.json").write_bytes(spec)
            self.work.mkdir(parents=True, exist_ok=True, mode=0o711)
            os.symlink(self.work, self.path / "work")
            os.mkfifo(self.path / "log", 0o700)
        except OSError as e:
            self.remove()
            raise errors.Internal(f"task {self.id}: bundle: {e}") from e

    @property
    def log_fifo(self) -> Path:
        return self.path / "log"

    def _read(self, name: str) -> str:
        try:
            return (self.path / name).read_text().strip()
        except FileNotFoundError:
            return ""

    def _write(self, name: str, value: str) -> None:
        tmp = self.path / f".{name}.tmp"
        tmp.write_text(value)
        tmp.replace(self.path / name)

    @property
    def address(self) -> str:
        return self._read("address")

    def write_address(self, value: str) -> None:
        self._write("address", value)

    @property
    def shim_binary(self) -> str:
        return self._read("shim-binary-path")

    def write_shim_binary(self, value: str) -> None:
        self._write("shim-binary-path", value)

    @property
    def dead_exit(self) -> bytes | None:
        """The exit recorded after a live shim died (a serialized DeleteResponse), if any."""
        try:
            return (self.path / "dead-exit").read_bytes()
        except FileNotFoundError:
            return None

    def write_dead_exit(self, value: bytes) -> None:
        tmp = self.path / ".dead-exit.tmp"
        tmp.write_bytes(value)
        tmp.replace(self.path / "dead-exit")

    def remove(self) -> None:
        """Remove the bundle and work directory (unmounting a rootfs left behind)."""
        rootfs = self.path / "rootfs"
        if os.path.ismount(rootfs):
            try:
                mount.unmount(rootfs)
            except errors.SeacanError as e:
                _log.warning("bundle.unmount_failed", task=self.id, error=str(e))
                return
        shutil.rmtree(self.path, ignore_errors=True)
        shutil.rmtree(self.work, ignore_errors=True)
        for parent in (self.path.parent, self.work.parent):
            with contextlib.suppress(OSError):
                parent.rmdir()


def walk(state: Path, root: Path) -> Iterator[Bundle]:
    """Every bundle under ``<state>/tasks``, namespace by namespace."""
    base = state / "tasks"
    if not base.is_dir():
        return
    for ns_dir in sorted(base.iterdir()):
        if not ns_dir.is_dir():
            continue
        for d in sorted(ns_dir.iterdir()):
            if d.is_dir():
                yield Bundle.at(state, root, ns_dir.name, d.name)
