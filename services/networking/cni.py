"""A CNI 1.0 runtime: the one module that executes CNI plugins.

As libcni does: a conflist's plugins run in order for ADD (each gets the
previous plugin's result as ``prevResult``) and in reverse for DEL; a plugin
that declares a capability (``"capabilities": {"portMappings": true}``) gets
the runtime's value for it under ``runtimeConfig``. Results are cached on
disk (``<cache>/results/<network>-<container>-<ifname>``, with the config
they came from) after every plugin of an ADD, so DEL and CHECK work from the
cache even if the network's file changed or an ADD was cut short::

    cni = CNI(["/usr/lib/cni"], cache_dir)
    result = await cni.add(conflist, Runtime("c1", "/run/netns/x", "eth0"))
    await cni.delete(conflist, Runtime("c1", "/run/netns/x", "eth0"))

Plugin failures are raised as seacan error kinds naming the plugin and its
message (CNI error codes 1-99 are well-known, the rest plugin-specific).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from seacan import errors, log

CNI_VERSION = "1.0.0"
TIMEOUT = 60.0  # seconds a plugin may take
_log = log.get(__name__)


@dataclass(frozen=True, slots=True)
class Runtime:
    """libcni's RuntimeConf: what the runtime tells every plugin."""

    container_id: str
    netns: str
    ifname: str
    args: tuple[tuple[str, str], ...] = ()
    capability_args: Mapping[str, Any] = field(default_factory=dict)


def _idle(plugin: Mapping[str, Any], rt: Runtime) -> bool:
    """Whether ``plugin`` has nothing to do for ``rt``: portmap without port mappings.

    portmap returns its prevResult unchanged when no mappings are given (and
    then had nothing to delete), so its exec (~10-50 ms) is skipped.
    """
    return plugin.get("type") == "portmap" and not rt.capability_args.get("portMappings")


class CNI:
    def __init__(self, plugin_dirs: Sequence[str], cache_dir: Path) -> None:
        self.plugin_dirs = tuple(plugin_dirs)
        self.cache_dir = cache_dir

    # -- the cache ----------------------------------------------------------

    def cache_path(self, network: str, rt: Runtime) -> Path:
        return self.cache_dir / "results" / f"{network}-{rt.container_id}-{rt.ifname}"

    def cached(self, network: str, rt: Runtime) -> dict[str, Any] | None:
        """The cache entry (``config``, ``result``, ``capabilityArgs``...) or None."""
        try:
            data: dict[str, Any] = json.loads(self.cache_path(network, rt).read_text())
        except (FileNotFoundError, ValueError):
            return None
        return data

    def _write_cache(self, conflist: Mapping[str, Any], rt: Runtime, result: Any) -> None:
        path = self.cache_path(str(conflist["name"]), rt)
        path.parent.mkdir(parents=True, exist_ok=True)
        entry = {
            "kind": "cniCacheV1",
            "containerId": rt.container_id,
            "ifName": rt.ifname,
            "networkName": conflist["name"],
            "netns": rt.netns,
            "config": conflist,
            "cniArgs": [list(kv) for kv in rt.args],
            "capabilityArgs": dict(rt.capability_args),
            "result": result,
        }
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(entry))
        tmp.replace(path)

    # -- operations ---------------------------------------------------------

    async def add(self, conflist: Mapping[str, Any], rt: Runtime) -> dict[str, Any]:
        """ADD through every plugin; the final result (also cached)."""
        prev: Any = None
        self._write_cache(conflist, rt, None)  # DEL can find an ADD that dies half-way
        for plugin in conflist["plugins"]:
            if _idle(plugin, rt):
                continue
            prev = await self._exec("ADD", conflist, plugin, rt, prev)
            self._write_cache(conflist, rt, prev)
        return dict(prev or {})

    async def check(self, conflist: Mapping[str, Any], rt: Runtime) -> None:
        entry = self.cached(str(conflist["name"]), rt)
        if entry is None or not entry.get("result"):
            raise errors.NotFound(
                f"no cached CNI result for {rt.container_id} on {conflist['name']}"
            )
        for plugin in conflist["plugins"]:
            if not _idle(plugin, rt):
                await self._exec("CHECK", conflist, plugin, rt, entry["result"])

    async def delete(self, conflist: Mapping[str, Any] | None, rt: Runtime, network: str) -> None:
        """DEL through every plugin in reverse, with the cached config and result; cache removed.

        ``conflist`` is used when nothing is cached (an ADD that never started
        caching); with neither, there is nothing to delete.
        """
        entry = self.cached(network, rt)
        conf = entry["config"] if entry else conflist
        if conf is None:
            return
        prev = entry.get("result") if entry else None
        if entry:
            rt = Runtime(
                rt.container_id, rt.netns, rt.ifname, rt.args,
                entry.get("capabilityArgs") or rt.capability_args,
            )  # fmt: skip
        for plugin in reversed(conf["plugins"]):
            if not _idle(plugin, rt):
                await self._exec("DEL", conf, plugin, rt, prev)
        with contextlib.suppress(FileNotFoundError):
            self.cache_path(network, rt).unlink()

    def cached_entries(self) -> list[dict[str, Any]]:
        out = []
        for p in sorted((self.cache_dir / "results").glob("*")):
            with contextlib.suppress(ValueError, OSError):
                out.append(json.loads(p.read_text()))
        return out

    # -- one plugin ---------------------------------------------------------

    def find(self, plugin_type: str) -> Path:
        if "/" in plugin_type or not plugin_type:
            raise errors.InvalidArgument(f"invalid CNI plugin type {plugin_type!r}")
        for d in self.plugin_dirs:
            p = Path(d) / plugin_type
            if os.access(p, os.X_OK):
                return p
        raise errors.NotFound(
            f"CNI plugin {plugin_type!r} not found in {':'.join(self.plugin_dirs)}"
        )

    async def _exec(
        self,
        command: str,
        conflist: Mapping[str, Any],
        plugin: Mapping[str, Any],
        rt: Runtime,
        prev: Any,
    ) -> Any:
        ptype = str(plugin.get("type", ""))
        binary = self.find(ptype)
        conf = dict(plugin)
        conf["cniVersion"] = conflist.get("cniVersion", CNI_VERSION)
        conf["name"] = conflist["name"]
        if prev is not None:
            conf["prevResult"] = prev
        caps = plugin.get("capabilities") or {}
        runtime_config = {k: v for k, v in rt.capability_args.items() if caps.get(k)}
        if runtime_config:
            conf["runtimeConfig"] = runtime_config
        env = {
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            "CNI_COMMAND": command,
            "CNI_CONTAINERID": rt.container_id,
            "CNI_NETNS": rt.netns,
            "CNI_IFNAME": rt.ifname,
            "CNI_PATH": ":".join(self.plugin_dirs),
        }
        if rt.args:
            env["CNI_ARGS"] = ";".join(f"{k}={v}" for k, v in rt.args)
        what = f"CNI plugin {ptype} {command} on {conflist['name']} for {rt.container_id}"
        t0 = time.monotonic()
        proc = await asyncio.create_subprocess_exec(
            str(binary),
            env=env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(json.dumps(conf).encode()), TIMEOUT)
        except BaseException as e:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            if isinstance(e, TimeoutError):
                raise errors.DeadlineExceeded(f"{what}: no answer within {TIMEOUT:g}s") from None
            raise
        _log.debug("cni.exec", plugin=ptype, command=command, rc=proc.returncode,
                   ms=round((time.monotonic() - t0) * 1000, 1))  # fmt: skip
        if proc.returncode != 0:
            raise _plugin_error(what, out, err)
        if command != "ADD":
            return None
        try:
            return json.loads(out)
        except ValueError:
            raise errors.Internal(
                f"{what}: the plugin's result is not JSON: {out[:200]!r}"
            ) from None


def _plugin_error(what: str, out: bytes, err: bytes) -> errors.SeacanError:
    try:
        e = json.loads(out)
        msg = str(e.get("msg", "")) + (f": {e['details']}" if e.get("details") else "")
        code = int(e.get("code", 999))
    except (ValueError, AttributeError, TypeError):
        msg, code = (err or out).decode(errors="replace").strip()[-500:], 999
    kind: type[errors.SeacanError] = errors.Internal
    if code in (1, 2, 4, 7):  # incompatible version, unsupported field, invalid env/config
        kind = errors.InvalidArgument
    elif code == 11:  # try again later
        kind = errors.Unavailable
    return kind(f"{what}: {msg}")
