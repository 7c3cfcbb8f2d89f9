"""The build engine: a Dockerfile and a context in, an image out, Docker's classic semantics.

::

    parse -> stages the target needs -> for each stage:
        FROM (image: unpacked; scratch; an earlier stage) -> ONBUILD triggers
        each instruction = one step:
            cache string (Docker's container config comment) -> cache hit? reuse
            else metadata: new config | RUN: container | COPY/ADD: files into a
            prepared snapshot -> Diff -> layer -> commit snapshot as its chain ID
            -> config blob (the step's image ID) -> cache entry
    -> manifest -> image records for each tag (only now: no partial image is tagged)

Everything is written under a build lease (expiring), so a build that dies
leaves nothing that GC will not collect. The lease is made before the first
write (:meth:`Build._leased`): a fully cached rebuild whose tags already name
its manifest writes nothing at all, and costs one image lookup for FROM and
one concurrent round of checks at the end. Progress goes to ``emit`` as
:class:`Event` values, which the servicer turns into protobuf.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import os
import posixpath
import secrets
import shutil
import stat
import tarfile
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from seacan import errors, leases, log, oci, scope
from seacan.build import BuildOptions, Event, Output, Result, StepDone, Stream
from seacan.dockerfile import parser as dfparser
from seacan.dockerfile import shell
from seacan.dockerfile.parser import Dockerfile, Instruction, Stage
from seacan.images import unpack as unpacker
from seacan.images.archive import normalize_reference
from seacan.mount import with_temp_mount
from seacan.runtime import users
from seacan.snapshots import Mount
from seacan.transfer import PullRequest

from . import context, fsops, image, runner
from .cache import Cache
from .db import Entry
from .stores import Stores

_log = log.get(__name__)
DEFAULT_SHELL = ["/bin/sh", "-c"]
BUILD_LEASE_TTL = timedelta(hours=2)
MEMO_DOCKERFILE = 256 << 10  # Dockerfiles up to this size are remembered per context
PROXY_ARGS = frozenset(
    k for n in ("HTTP_PROXY", "HTTPS_PROXY", "FTP_PROXY", "NO_PROXY", "ALL_PROXY")
    for k in (n, n.lower())
)  # fmt: skip
KNOWN_FLAGS = {
    "FROM": {"platform"},
    "COPY": {"from", "chown", "chmod", "link"},
    "ADD": {"chown", "chmod", "link", "checksum", "keep-git-dir"},
    "HEALTHCHECK": {"interval", "timeout", "start-period", "start-interval", "retries"},
}


Options = BuildOptions
Emit = Callable[[Event], Awaitable[None]]
# A file system step: (mounts, snapshot key, the diff to run when the files are final)
Work = Callable[[list[Mount], str, Callable[[], Awaitable[None]]], Awaitable[Any]]


# -- state --------------------------------------------------------------------------


@dataclass
class State:
    """One stage's image as the steps change it."""

    config: dict[str, Any]
    layers: list[image.Layer]
    chain_id: str
    image_id: str  # config digest; "" before the first step on scratch
    args: dict[str, str | None] = field(default_factory=dict)
    cmd_set: bool = False
    unverified: Entry | None = None  # the last cache hit, not yet checked (see Build._settle)

    @property
    def run(self) -> dict[str, Any]:
        rc: dict[str, Any] = self.config.setdefault("config", {})
        return rc

    def shell(self) -> list[str]:
        return list(self.run.get("Shell") or DEFAULT_SHELL)

    def env(self) -> dict[str, str]:
        out = {}
        for e in self.run.get("Env") or []:
            k, _, v = e.partition("=")
            out[k] = v
        return out

    def expand_env(self) -> dict[str, str]:
        """What ``$VAR`` means in this stage: ARG values, overridden by ENV."""
        env = {k: v for k, v in self.args.items() if v is not None}
        env.update(self.env())
        return env

    def set_env(self, key: str, value: str) -> None:
        envs = list(self.run.get("Env") or [])
        for i, e in enumerate(envs):
            if e.partition("=")[0] == key:
                envs[i] = f"{key}={value}"
                break
        else:
            envs.append(f"{key}={value}")
        self.run["Env"] = envs


@dataclass
class Built:
    state: State
    stage: Stage


class _StaleCache(Exception):
    """A cache hit whose config was removed behind the cache's back: build again."""


class Build:
    """One build: options, the unpacked context, the services."""

    def __init__(
        self,
        stores: Stores,
        cache: Cache,
        opts: Options,
        ctx: context.Context,
        work_dir: Path,
        emit: Emit,
        max_download: int = 64 << 30,
    ) -> None:
        self.stores = stores
        self.max_download = max_download
        self.cache = cache
        self.opts = opts
        self.ctx = ctx
        self.work = work_dir
        self.emit = emit
        self.platform = _platform(opts.platform)
        self.built: dict[int, Built] = {}
        self.step = 0
        self.steps = 0
        self.used_args: set[str] = set()
        self.meta: dict[str, str | None] = {}
        self.cached_so_far = not opts.no_cache
        self.df: Dockerfile | None = None
        self.hits: list[Entry] = []
        self.cache_leased = False
        self.lazy: dict[str, oci.Descriptor] = {}  # base chain ID -> image, not unpacked yet
        self.lease = ""  # the build lease, made by _leased before the first write

    # -- driver ----------------------------------------------------------------

    async def _dockerfile(self) -> bytes:
        if self.opts.dockerfile_content:
            return self.opts.dockerfile_content
        text = self.ctx.recall("dockerfile")
        if not isinstance(text, bytes):
            text = _read_dockerfile(await self.ctx.path(), self.opts.dockerfile or "Dockerfile")
            if len(text) <= MEMO_DOCKERFILE:
                self.ctx.remember("dockerfile", text)
        return text

    async def run(self) -> Result:
        """The build; built again (at most twice, the last time without the cache) when a
        cache hit turns out to name removed content."""
        for attempt in range(3):
            try:
                return await self._run_once(use_cache=attempt < 2)
            except _StaleCache:
                await self.emit(Stream("The build cache lost content; building again\n"))
            finally:
                self.cache.touch(self.hits)
                self.hits = []
        raise AssertionError("unreachable")

    async def _run_once(self, *, use_cache: bool) -> Result:
        self.built, self.step, self.used_args = {}, 0, set()
        self.cached_so_far = use_cache and not self.opts.no_cache
        text = await self._dockerfile()
        name = posixpath.basename(self.opts.dockerfile or "Dockerfile")
        df = _parse(text, name)
        self.df = df
        if not df.stages:
            raise errors.InvalidArgument(f"{name}: no FROM instruction (the file has no stages)")
        self.meta = self._meta_args(df)
        target = df.stage(self.opts.target) if self.opts.target else df.stages[-1]
        needed = sorted(self._needed(df, target.index))
        self.steps = len(df.meta_args) + sum(1 + len(df.stages[i].instructions) for i in needed)
        for instr in df.meta_args:  # Docker counts them as steps (they change no image)
            self.step += 1
            await self.emit(Stream(f"Step {self.step}/{self.steps} : {instr.original}\n"))
        for i in needed:
            await self._stage(df.stages[i])
        unused = sorted(set(self.opts.build_args) - self.used_args - PROXY_ARGS - set(self.meta))
        if unused:
            await self.emit(Stream(
                f"[Warning] One or more build-args {unused} were not consumed\n"
            ))  # fmt: skip
        final = self.built[target.index].state
        if self.opts.labels:
            labels = dict(final.run.get("Labels") or {})
            labels.update(self.opts.labels)
            final.run["Labels"] = labels
            await self._commit_config(final, "LABEL " + " ".join(
                f"{k}={v}" for k, v in sorted(self.opts.labels.items())), empty=True)  # fmt: skip
        if not final.image_id:
            await self._commit_config(final, "FROM scratch", empty=True, history=False)
        data = image.encode(final.config)
        mdesc = image.manifest_of(final.image_id, len(data), final.layers)[0]
        names = [normalize_reference(t) for t in self.opts.tags]
        # One round trip: the last cache hit, whether the manifest is stored, what the tags name.
        _, stored, *now = await _together(
            self._settle(final), image.stored(self.stores, mdesc.digest),
            *(image.target_of(self.stores, n) for n in names),
        )  # fmt: skip
        current = dict(zip(names, now, strict=True))
        if not names or not stored or any(d != mdesc.digest for d in now):
            await self._leased()
            await image.write_manifest(self.stores, final.image_id, len(data), final.layers)
            await image.tag(self.stores, names, mdesc, current)
        tags = names
        short = final.image_id.removeprefix("sha256:")[:12]
        await self.emit(Stream(f"Successfully built {short}\n"))
        for t in self.opts.tags:
            await self.emit(Stream(f"Successfully tagged {t}\n"))
        return Result(final.image_id, mdesc.digest, tuple(tags))

    async def _leased(self) -> None:
        """Put what the build writes from now on under its lease (made on the first call).
        Call it from the build's own task, before any write: the lease rides in the
        task's request scope."""
        if not self.lease:
            ttl = leases.expire_in(BUILD_LEASE_TTL)
            self.lease = (await self.stores.leases.create(leases.random_id(), ttl)).id
        scope.set_scope(scope.namespace_required(), self.lease)

    def _meta_args(self, df: Dockerfile) -> dict[str, str | None]:
        out: dict[str, str | None] = {}
        for instr in df.meta_args:
            env = {k: v for k, v in out.items() if v is not None}
            for k, v in shell.keyvalues(instr, env):
                out[k] = self.opts.build_args.get(k, v)
                if k in self.opts.build_args:
                    self.used_args.add(k)
        return out

    def _meta_env(self) -> dict[str, str]:
        return {k: v for k, v in self.meta.items() if v is not None}

    def _needed(self, df: Dockerfile, target: int) -> set[int]:
        names = {s.name: s.index for s in df.stages if s.name}
        need: set[int] = set()

        def ref(name: str, before: int) -> int | None:
            n = name.lower()
            if n in names and names[n] < before:
                return names[n]
            if name.isdigit() and int(name) < before:
                return int(name)
            return None

        def visit(i: int) -> None:
            if i in need:
                return
            need.add(i)
            st = df.stages[i]
            base = shell.expand(dfparser.words(st.from_)[0], self._meta_env(), escape=df.escape)
            j = ref(base, i)
            if j is not None:
                visit(j)
            for instr in st.instructions:
                frm = instr.flag("from") if instr.cmd == "COPY" else None
                if frm:
                    j = ref(shell.expand(frm, self._meta_env(), escape=df.escape), i)
                    if j is not None:
                        visit(j)

        visit(target)
        return need

    # -- stages -----------------------------------------------------------------------

    async def _stage(self, st: Stage) -> None:
        t0 = time.monotonic()
        self.step += 1
        await self.emit(Stream(f"Step {self.step}/{self.steps} : {st.from_.original}\n"))
        state = await self._from(st)
        await self._step_done(state, cached=False, t0=t0)
        triggers = list(state.run.get("OnBuild") or [])
        if triggers:
            state.run["OnBuild"] = None
            n = len(triggers)
            await self.emit(Stream(f"# Executing {n} build trigger{'s' if n > 1 else ''}\n"))
            for expr in triggers:
                await self._instruction(state, dfparser.parse_trigger(expr), numbered=False)
        for instr in st.instructions:
            await self._instruction(state, instr, numbered=True)
        self.built[st.index] = Built(state, st)

    async def _from(self, st: Stage) -> State:
        df = self.df
        assert df is not None
        self._check_flags(st.from_)
        words = dfparser.words(st.from_)
        base = shell.expand(words[0], self._meta_env(), escape=df.escape)
        if not base:
            raise _err(st.from_, "FROM requires the name of an image")
        for s in df.stages[: st.index]:
            if (s.name and s.name == base.lower()) or (base.isdigit() and int(base) == s.index):
                if s.index not in self.built:
                    raise _err(st.from_, f"stage {base!r} was not built")
                b = self.built[s.index].state
                return State(copy.deepcopy(b.config), list(b.layers), b.chain_id, b.image_id,
                             unverified=b.unverified)  # fmt: skip
        if base.lower() == "scratch":
            return State(image.scratch_config(self.platform), [], "", "")
        target = await self._image_target(base, st.from_)
        parts, cfg = await self._image_parts(target)
        if parts.chain_id:
            self.lazy[parts.chain_id] = target  # unpacked when a step needs its files
        layers = [image.layer_of(x.blob, x.diff_id) for x in parts.layers]
        return State(copy.deepcopy(cfg), layers, parts.chain_id, parts.config_desc.digest)

    async def _image_parts(
        self, target: oci.Descriptor
    ) -> tuple[unpacker.ImageParts, dict[str, Any]]:
        """Manifest, layers and config of an image, remembered by the service (content is
        immutable by digest; the image record is read every build)."""
        key = (scope.namespace_required(), target.digest, str(self.platform))
        hit = self.cache.images.get(key)
        if hit is None:
            parts = await unpacker.read_image(self.stores.content, target, self.platform)
            hit = (parts, await image.load_config(self.stores, parts.config_desc.digest))
            self.cache.remember_image(key, hit)
        return hit

    async def _ensure_chain(self, chain: str) -> None:
        """Unpack the base image whose top snapshot is ``chain``, if FROM deferred it."""
        target = self.lazy.pop(chain, None)
        if target is not None:
            await self._leased()
            await unpacker.unpack(
                self.stores.content, self.stores.snapshots, self.stores.diff, target,
                platform=self.platform,
            )  # fmt: skip

    async def _settle(self, state: State) -> None:
        """Check the state's last cache hit before its files or config are used (one
        lookup per run of hits); _StaleCache when it is gone."""
        e, state.unverified = state.unverified, None
        if e is not None and not await self.cache.verify(e):
            raise _StaleCache(e.config_digest)

    async def _image_target(self, ref: str, instr: Instruction) -> oci.Descriptor:
        try:
            name = normalize_reference(ref)
        except errors.SeacanError as e:
            raise _err(instr, f"invalid image reference {ref!r}: {e}") from None
        img = None
        if not self.opts.pull:
            with contextlib.suppress(errors.NotFound):
                img = await self.stores.images.get(name)
        if img is None:
            await self._pull(name, instr)
            img = await self.stores.images.get(name)
        return img.target

    async def _pull(self, name: str, instr: Instruction) -> None:
        await self.emit(Stream(f"Pulling {name}\n"))
        await self._leased()
        try:
            async for _ in self.stores.transfer.pull(PullRequest(ref=name, platform=self.platform)):
                pass
        except errors.NotImplemented_:
            raise _err(instr, f"image {name!r} not found (and pulling is not available)") from None
        except errors.SeacanError as e:
            raise type(e)(
                f"Dockerfile:{instr.line}: FROM {name}: image not found locally and "
                f"the pull failed: {e.message}"
            ) from None

    # -- steps ------------------------------------------------------------------------

    async def _step_done(self, state: State, *, cached: bool, t0: float) -> None:
        secs = time.monotonic() - t0
        await self.emit(StepDone(self.step, self.steps, cached, secs, state.image_id))

    def _check_flags(self, instr: Instruction) -> None:
        allowed = KNOWN_FLAGS.get(instr.cmd, set())
        for k, _ in instr.flags:
            if k not in allowed:
                raise _err(instr, f"unknown flag: --{k}")

    async def _instruction(self, state: State, instr: Instruction, *, numbered: bool) -> None:
        t0 = time.monotonic()
        if numbered:
            self.step += 1
            await self.emit(Stream(f"Step {self.step}/{self.steps} : {instr.original}\n"))
        self._check_flags(instr)
        cmd = instr.cmd
        steps = {"RUN": self._run, "COPY": self._copy, "ADD": self._add, "WORKDIR": self._workdir}
        if cmd in steps:
            cached = await steps[cmd](state, instr)
        else:
            text = self._metadata(state, instr)
            cached = await self._commit_metadata(state, text)
        if numbered:
            await self._step_done(state, cached=cached, t0=t0)

    async def _cache_lookup(self, state: State, cache_string: str) -> bool:
        """Apply a cache hit to ``state``; False on a miss.

        A miss gives the step a new image ID, so every later step (whose key
        starts with it) misses too, as Docker's."""
        if not self.cached_so_far:
            return False
        e = self.cache.lookup(state.image_id, cache_string)
        if e is None:
            return False
        state.config = json.loads(e.config)
        state.layers = [dict(x) for x in e.layers]
        state.chain_id = e.chain_id
        state.image_id = e.config_digest
        state.unverified = e
        self.hits.append(e)
        await self.emit(Stream(" ---> Using cache\n"))
        return True

    def _cache_string(self, state: State, created_by: str) -> str:
        epoch = self.opts.source_date_epoch
        return f"{created_by}\0platform={self.platform}\0epoch={epoch}"

    async def _commit_config(
        self, state: State, text: str, *, empty: bool, history: bool = True,
        created_by: str | None = None, cached: bool = False,
    ) -> None:  # fmt: skip
        """Write the state's config as the step's image; ``cached``: under the cache lease
        (the caller remembers the step)."""
        await self._settle(state)
        await self._leased()
        created = image.timestamp(self.opts.source_date_epoch)
        state.config["created"] = created
        state.config["rootfs"] = {"type": "layers",
                                  "diff_ids": [x["diff_id"] for x in state.layers]}  # fmt: skip
        if history:
            h: dict[str, Any] = {
                "created": created,
                "created_by": created_by or " ".join([*state.shell(), "#(nop) ", text]),
            }
            if empty:
                h["empty_layer"] = True
            state.config["history"] = [*(state.config.get("history") or []), h]
        if cached and not self.cache_leased:
            await self.cache.ensure_lease()
            self.cache_leased = True
        with self.cache.under_lease() if cached else contextlib.nullcontext():
            digest, _ = await image.write_config(
                self.stores, state.config, state.chain_id, state.layers
            )
        state.image_id = digest

    async def _commit_metadata(self, state: State, text: str) -> bool:
        created_by = " ".join([*state.shell(), "#(nop) ", text])
        cs = self._cache_string(state, created_by)
        parent = state.image_id
        # Apply to a copy first: a hit replaces the config anyway.
        if await self._cache_lookup(state, cs):
            return True
        await self._commit_config(state, text, empty=True, created_by=created_by, cached=True)
        self._remember(parent, cs, state)
        return False

    def _remember(self, parent: str, cs: str, state: State) -> None:
        self.cache.put(
            parent, cs, state.image_id, state.chain_id, tuple(state.layers),
            image.encode(state.config).decode(),
        )  # fmt: skip

    # -- metadata instructions -------------------------------------------------------

    def _metadata(self, state: State, instr: Instruction) -> str:
        return apply_metadata(state, instr, self.opts.build_args, self.meta, self.used_args)

    # -- RUN ------------------------------------------------------------------------

    def _arg_prefix(self, state: State) -> tuple[list[str], list[str]]:
        """Docker's ``|N K=V`` prefix and the ARG environment of a RUN."""
        pairs = sorted((k, v) for k, v in state.args.items() if v is not None)
        envs = [f"{k}={v}" for k, v in pairs]
        return ([f"|{len(pairs)}", *envs] if pairs else []), envs

    async def _run(self, state: State, instr: Instruction) -> bool:
        if instr.json:
            argv = list(instr.args)
        else:
            script = instr.args[0] if instr.args else ""
            if instr.heredocs:
                h = instr.heredocs[0]
                if script.strip().startswith("<<") and len(instr.heredocs) == 1:
                    script = h.content
                else:
                    script = (
                        script + "\n" + "".join(f"{x.content}{x.name}\n" for x in instr.heredocs)
                    )
            argv = [*state.shell(), script]
        if not argv:
            raise _err(instr, "RUN requires a command")
        prefix, arg_env = self._arg_prefix(state)
        created_by = " ".join([*prefix, *argv])
        cs = self._cache_string(state, created_by) + f"\0network={self.opts.network}"
        if await self._cache_lookup(state, cs):
            return True
        parent = state.image_id
        env_map: dict[str, str] = {}
        for e in arg_env + list(state.run.get("Env") or []):
            k, _, v = e.partition("=")
            env_map[k] = v
        rs = runner.RunSpec(
            args=tuple(argv),
            env=tuple(f"{k}={v}" for k, v in env_map.items()),
            cwd=state.run.get("WorkingDir") or "/",
            user=state.run.get("User") or "",
            network=self.opts.network,
        )

        async def work(mounts: list[Mount], key: str, diff: Callable[[], Awaitable[None]]) -> None:
            async def out(data: bytes) -> None:
                await self.emit(Output(data))

            async def started(cid: str) -> None:
                await self.emit(Stream(f" ---> Running in {cid}\n"))

            status, tail = await runner.run(
                self.stores, mounts, key, state.config, rs, self.work / "fifo", out, started,
                then=diff,
            )  # fmt: skip
            if status != 0:
                cmd = " ".join(argv)
                msg = (f"Dockerfile:{instr.line}: RUN: the command '{cmd}' returned a "
                       f"non-zero code: {status}")  # fmt: skip
                if tail:
                    msg += "\nlast output:\n" + tail
                raise errors.FailedPrecondition(msg)

        await self._layer_step(state, work)
        await self._commit_config(state, "", empty=False, created_by=created_by, cached=True)
        self._remember(parent, cs, state)
        return False

    async def _layer_step(self, state: State, work: Work) -> bool:
        """Prepare a snapshot on the state's chain, run ``work``, diff, commit; False when
        ``work`` returned False (nothing to keep: the snapshot is dropped).

        ``work`` gets the mounts, the snapshot key and the diff as a callable it may
        run itself once the files are final (RUN: while its container is removed);
        otherwise the diff runs after it."""
        key = f"build-{secrets.token_hex(8)}"
        sn = self.stores.snapshots
        await self._settle(state)
        await self._leased()
        await self._ensure_chain(state.chain_id)
        mounts = await sn.prepare(key, state.chain_id)
        committed = False
        layer: list[tuple[oci.Descriptor, str]] = []

        async def diff() -> None:
            if layer:
                return
            if self.opts.source_date_epoch is not None:
                await asyncio.to_thread(
                    _clamp, runner.upper_dir(mounts), self.opts.source_date_epoch
                )
            lower: list[Mount] = []
            view = ""
            if state.chain_id:
                lower = runner.parent_view(mounts)
                if not lower:  # not an overlay with lowers: ask the snapshotter
                    view = f"{key}-parent"
                    lower = await sn.view(view, state.chain_id)
            try:
                desc = await self.stores.diff.diff(lower, mounts)
            finally:
                if view:
                    await image.remove_quietly(self.stores, view)
            layer.append((desc, await image.diff_id_of(self.stores, desc)))

        try:
            if await work(mounts, key, diff) is False:
                return False
            await diff()
            desc, diff_id = layer[0]
            chain = image.chain_id(state.chain_id, diff_id)
            try:
                await sn.commit(chain, key)
                committed = True
            except errors.AlreadyExists:
                pass  # the same layer on the same parent exists: it is as good
            state.layers.append(image.layer_of(desc, diff_id))
            state.chain_id = chain
            return True
        finally:
            if not committed:
                await image.remove_quietly(self.stores, key)

    # -- WORKDIR ------------------------------------------------------------------------

    async def _workdir(self, state: State, instr: Instruction) -> bool:
        env = state.expand_env()
        raw = shell.expand(instr.args[0], env, escape=instr.escape) if instr.args else ""
        if not raw:
            raise _err(instr, "WORKDIR requires exactly one argument")
        path = posixpath.normpath(posixpath.join(state.run.get("WorkingDir") or "/", raw))
        text = "WORKDIR " + path
        created_by = " ".join([*state.shell(), "#(nop) ", text])
        cs = self._cache_string(state, created_by)
        if await self._cache_lookup(state, cs):
            return True
        parent = state.image_id
        state.run["WorkingDir"] = path

        async def work(mounts: list[Mount], key: str, _: Callable[[], Awaitable[None]]) -> bool:
            async with with_temp_mount(mounts, self.work) as rootfs:
                return await asyncio.to_thread(_mkdir, rootfs, path)

        made = await self._layer_step(state, work)
        await self._commit_config(state, text, empty=not made, created_by=created_by, cached=True)
        self._remember(parent, cs, state)
        return False

    # -- COPY / ADD -------------------------------------------------------------------

    async def _copy(self, state: State, instr: Instruction) -> bool:
        return await self._copy_add(state, instr, add=False)

    async def _add(self, state: State, instr: Instruction) -> bool:
        return await self._copy_add(state, instr, add=True)

    async def _copy_add(self, state: State, instr: Instruction, *, add: bool) -> bool:
        env = state.expand_env()
        esc = instr.escape
        words = dfparser.words(instr)
        if len(words) < 2:
            raise _err(instr, f"{instr.cmd} requires at least two arguments")
        exp = [shell.expand(w, env, escape=esc) for w in words]
        srcs, dest = exp[:-1], exp[-1]
        heredocs = {h.name: h for h in instr.heredocs}
        if len(srcs) > 1 and not dest.endswith("/"):
            raise _err(instr, f"When using {instr.cmd} with more than one source file, "
                       "the destination must be a directory and end with a /")  # fmt: skip
        dest_abs = posixpath.join(state.run.get("WorkingDir") or "/", dest)
        if dest.endswith("/") or dest in (".", "./") or dest_abs.endswith("/."):
            dest_abs = dest_abs.rstrip("/.") + "/"
        chown = shell.expand(instr.flag("chown") or "", env, escape=esc)
        chmod_s = instr.flag("chmod") or ""
        chmod = None
        if chmod_s:
            try:
                chmod = int(chmod_s, 8)
            except ValueError:
                raise _err(instr, f"invalid --chmod={chmod_s}: want an octal mode") from None
        frm = shell.expand(instr.flag("from") or "", self._meta_env(), escape=esc)
        if add and frm:
            raise _err(instr, "ADD does not take --from")
        memo = ""
        async with contextlib.AsyncExitStack() as stack:
            if frm:
                src_root = await self._from_root(frm, instr, stack)
                strict = False
            else:
                strict = True
                # Same context bytes as a build before: the sources' hashes are known.
                memo = "" if any(_is_url(x) or x.startswith("<<") for x in srcs) else (
                    "copy\0" + json.dumps([srcs, chmod])
                )  # fmt: skip
                known = self.ctx.recall(memo) if memo else None
                if isinstance(known, str):
                    flags = "".join(f"--{k}={v} " for k, v in sorted(instr.flags) if k != "from")
                    text = f"{instr.cmd} {flags}{known} in {dest_abs} "
                    created_by = " ".join([*state.shell(), "#(nop) ", text])
                    if await self._cache_lookup(state, self._cache_string(state, created_by)):
                        return True
                src_root = await self.ctx.path()
            hd_dir = self.work / f"heredoc-{secrets.token_hex(4)}"
            stack.callback(shutil.rmtree, hd_dir, True)
            sources = await asyncio.to_thread(
                _resolve_sources, src_root, srcs, strict, heredocs, hd_dir, instr
            )
            for src in sources:  # closed before the source root is unmounted
                stack.callback(os.close, src.fd)
            urls = [s for s in srcs if add and _is_url(s)]
            downloads = await self._download(urls, instr) if urls else []
            for p, _ in downloads:
                stack.callback(_unlink, p)
            hashes = await asyncio.to_thread(_hash_sources, sources, downloads, chmod)
            what = context.combine(hashes)
            if memo:
                self.ctx.remember(memo, what)
            flags = "".join(f"--{k}={v} " for k, v in sorted(instr.flags) if k != "from")
            text = f"{instr.cmd} {flags}{what} in {dest_abs} "
            created_by = " ".join([*state.shell(), "#(nop) ", text])
            cs = self._cache_string(state, created_by)
            if await self._cache_lookup(state, cs):
                return True
            parent = state.image_id

            async def work(mounts: list[Mount], key: str, _: Callable[[], Awaitable[None]]) -> None:
                async with with_temp_mount(mounts, self.work) as rootfs:
                    await asyncio.to_thread(
                        _write_sources, rootfs, sources, downloads, dest_abs, chown, chmod,
                        add, instr, self.opts.source_date_epoch,
                    )  # fmt: skip

            await self._layer_step(state, work)
        await self._commit_config(state, text, empty=False, created_by=created_by, cached=True)
        self._remember(parent, cs, state)
        return False

    async def _from_root(
        self, frm: str, instr: Instruction, stack: contextlib.AsyncExitStack
    ) -> Path:
        """A read-only mount of the ``--from`` stage or image."""
        df = self.df
        assert df is not None
        chain = ""
        found = False
        for s in df.stages[: self._current_index(instr)]:
            if (s.name and s.name == frm.lower()) or (frm.isdigit() and int(frm) == s.index):
                if s.index not in self.built:
                    raise _err(instr, f"stage {frm!r} was not built")
                src = self.built[s.index].state
                await self._settle(src)
                chain = src.chain_id
                found = True
                break
        if not found:
            if frm.isdigit():
                raise _err(instr, f"COPY --from={frm}: no such build stage")
            target = await self._image_target(frm, instr)
            parts, _ = await self._image_parts(target)
            chain = parts.chain_id
            if chain:
                self.lazy.setdefault(chain, target)
        await self._leased()
        await self._ensure_chain(chain)
        if not chain:
            d = self.work / f"empty-{secrets.token_hex(4)}"
            d.mkdir()
            stack.callback(shutil.rmtree, d, True)
            return d
        key = f"build-from-{secrets.token_hex(8)}"
        mounts = await self.stores.snapshots.view(key, chain)

        async def _rm() -> None:
            await image.remove_quietly(self.stores, key)

        stack.push_async_callback(_rm)
        return await stack.enter_async_context(with_temp_mount(mounts, self.work))

    def _current_index(self, instr: Instruction) -> int:
        df = self.df
        assert df is not None
        for s in df.stages:
            if instr in s.instructions:
                return s.index
        return len(df.stages)

    async def _download(self, urls: list[str], instr: Instruction) -> list[tuple[str, str]]:
        """Each URL into the work directory; past ``max_download`` bytes (seacand
        --max-blob-bytes) ResourceExhausted, the partial file removed."""
        import aiohttp

        limit = self.max_download
        out = []
        for url in urls:
            path = self.work / f"url-{secrets.token_hex(6)}"
            too_big = errors.ResourceExhausted(
                f"Dockerfile:{instr.line}: ADD {url}: the download is larger than the limit "
                f"of {limit} bytes (seacand --max-blob-bytes)"
            )
            try:
                async with aiohttp.ClientSession() as s, s.get(url) as r:
                    if r.status != 200:
                        raise _err(instr, f"ADD {url}: HTTP {r.status}")
                    if (r.content_length or 0) > limit:
                        raise too_big
                    total = 0
                    with open(path, "wb") as f:
                        async for chunk in r.content.iter_chunked(1 << 16):
                            total += len(chunk)
                            if total > limit:
                                raise too_big
                            f.write(chunk)
            except aiohttp.ClientError as e:
                _unlink(str(path))
                raise _err(instr, f"ADD {url}: {e}") from None
            except BaseException:
                _unlink(str(path))
                raise
            name = posixpath.basename(url.split("?")[0].rstrip("/")) or "index.html"
            out.append((str(path), name))
        return out


def apply_metadata(
    state: State,
    instr: Instruction,
    build_args: Mapping[str, str],
    meta: Mapping[str, str | None],
    used: set[str],
) -> str:
    """Apply a metadata instruction to ``state``; the history text. ``used`` collects
    the build args consumed."""
    cmd = instr.cmd
    env = state.expand_env()
    esc = instr.escape
    rc = state.run
    if cmd == "ENV":
        pairs = shell.keyvalues(instr, env)
        for k, v in pairs:
            state.set_env(k, v or "")
        return "ENV " + " ".join(f"{k}={v}" for k, v in pairs)
    if cmd == "ARG":
        out = []
        for k, v in shell.keyvalues(instr, env):
            if k in build_args:
                value: str | None = build_args[k]
                used.add(k)
            elif v is not None:
                value = v
            else:
                value = meta.get(k)
            state.args[k] = value
            out.append(k if v is None else f"{k}={v}")
        return "ARG " + " ".join(out)
    if cmd == "LABEL":
        labels = dict(rc.get("Labels") or {})
        pairs = shell.keyvalues(instr, env)
        for k, v in pairs:
            labels[k] = v or ""
        rc["Labels"] = labels
        return "LABEL " + " ".join(f"{k}={v}" for k, v in pairs)
    if cmd == "MAINTAINER":
        author = instr.args[0] if instr.args else ""
        state.config["author"] = author
        return "MAINTAINER " + author
    if cmd == "EXPOSE":
        ports = dict(rc.get("ExposedPorts") or {})
        added = []
        for w in dfparser.words(instr):
            for p in shell.expand_words(w, env, escape=esc):
                for q in _ports(p, instr):
                    ports[q] = {}
                    added.append(q)
        rc["ExposedPorts"] = ports
        return "EXPOSE " + " ".join(sorted(added))
    if cmd == "VOLUME":
        vols = dict(rc.get("Volumes") or {})
        words = list(instr.args) if instr.json else dfparser.words(instr)
        added = []
        for w in words:
            if instr.json:
                vs = [shell.expand(w, env, escape=esc)]
            else:
                vs = shell.expand_words(w, env, escape=esc)
            for v in vs:
                if not v.strip():
                    raise _err(instr, "VOLUME specified can not be an empty string")
                vols[v] = {}
                added.append(v)
        rc["Volumes"] = vols
        return f"VOLUME [{' '.join(added)}]"
    if cmd == "USER":
        user = shell.expand(instr.args[0], env, escape=esc) if instr.args else ""
        if not user:
            raise _err(instr, "USER requires an argument")
        rc["User"] = user
        return "USER " + user
    if cmd == "WORKDIR":
        raise AssertionError("WORKDIR is a file system step")
    if cmd in ("CMD", "ENTRYPOINT"):
        argv = list(instr.args) if instr.json else [*state.shell(), instr.args[0]]
        rc["Cmd" if cmd == "CMD" else "Entrypoint"] = argv
        if cmd == "CMD":
            state.cmd_set = True
        elif not state.cmd_set:
            rc["Cmd"] = None
        return f"{cmd} {_go_list(argv)}"
    if cmd == "SHELL":
        if not instr.json:
            raise _err(instr, "SHELL requires the arguments to be in JSON form")
        rc["Shell"] = list(instr.args)
        return f"SHELL [{' '.join(instr.args)}]"
    if cmd == "STOPSIGNAL":
        sig = shell.expand(instr.args[0], env, escape=esc) if instr.args else ""
        rc["StopSignal"] = sig
        return "STOPSIGNAL " + sig
    if cmd == "HEALTHCHECK":
        hc = dfparser.healthcheck(instr)
        rc["Healthcheck"] = hc
        return f"HEALTHCHECK {hc}"
    if cmd == "ONBUILD":
        inner = dfparser.parse_onbuild(instr)
        expr = inner.original
        rc["OnBuild"] = [*(rc.get("OnBuild") or []), expr]
        return "ONBUILD " + expr
    if cmd == "FROM":
        raise _err(instr, "FROM inside a stage")
    raise _err(instr, f"unknown instruction: {cmd}")


# -- helpers (blocking, in threads) -------------------------------------------------


_PARSED: OrderedDict[tuple[bytes, str], Dockerfile] = OrderedDict()
MEMO_PARSED = 64  # parsed Dockerfiles remembered (they are immutable values)


def _parse(text: bytes, name: str) -> Dockerfile:
    df = _PARSED.get((text, name))
    if df is None:
        df = dfparser.parse(text, filename=name)
        if len(text) <= MEMO_DOCKERFILE:
            _PARSED[(text, name)] = df
            while len(_PARSED) > MEMO_PARSED:
                _PARSED.popitem(last=False)
    return df


def _err(instr: Instruction, msg: str) -> errors.InvalidArgument:
    return errors.InvalidArgument(f"Dockerfile:{instr.line}: {instr.cmd}: {msg}")


def _platform(text: str) -> oci.Platform:
    host = oci.host_platform()
    if not text:
        return host
    parts = text.split("/")
    if len(parts) < 2:
        raise errors.InvalidArgument(f"--platform {text!r}: want os/arch[/variant]")
    p = oci.Platform(parts[0], parts[1], parts[2] if len(parts) > 2 else "")
    if not oci.platform_matches(host, p):
        raise errors.InvalidArgument(
            f"--platform {text}: this host builds only for {host} (no emulation)"
        )
    return p


def _go_list(values: list[str]) -> str:
    return "[" + " ".join('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
                          for v in values) + "]"  # fmt: skip


def _ports(p: str, instr: Instruction) -> list[str]:
    port, _, proto = p.partition("/")
    proto = (proto or "tcp").lower()
    lo, dash, hi = port.partition("-")
    try:
        a = int(lo)
        b = int(hi) if dash else a
    except ValueError:
        raise _err(instr, f"invalid containerPort: {port}") from None
    if not (0 <= a <= b <= 65535):
        raise _err(instr, f"invalid port range: {port}")
    return [f"{n}/{proto}" for n in range(a, b + 1)]


def _unlink(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def _is_url(s: str) -> bool:
    return s.startswith(("http://", "https://"))


def _mkdir(rootfs: Path, path: str) -> bool:
    root = fsops.open_dir(rootfs)
    try:
        return fsops.mkdir_all(root, path, fsops.Owner(0, 0))
    finally:
        os.close(root)


def _clamp(upper: str, epoch: int) -> None:
    """Clamp mtimes in a snapshot's upper directory to ``epoch`` (reproducible layers)."""
    for dirpath, dirnames, filenames in os.walk(upper, topdown=False):
        for name in [*filenames, *dirnames]:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            if st.st_mtime > epoch:
                os.utime(p, (epoch, epoch), follow_symlinks=False)
    if os.lstat(upper).st_mtime > epoch:
        os.utime(upper, (epoch, epoch))


@dataclass(frozen=True, slots=True)
class Source:
    """A resolved source: an O_PATH fd (owned here), its stat, its name as written."""

    fd: int
    st: os.stat_result
    name: str
    glob: bool


def _resolve_sources(
    root_path: Path,
    srcs: list[str],
    strict: bool,
    heredocs: Mapping[str, dfparser.Heredoc],
    hd_dir: Path,
    instr: Instruction,
) -> list[Source]:
    out: list[Source] = []
    root = fsops.open_dir(root_path)
    try:
        for src in srcs:
            if _is_url(src):
                continue
            if src.startswith("<<") and src[2:].lstrip("-").strip("'\"") in heredocs:
                h = heredocs[src[2:].lstrip("-").strip("'\"")]
                hd_dir.mkdir(exist_ok=True)
                p = hd_dir / h.name
                p.write_text(h.content)
                fd = os.open(p, os.O_PATH | os.O_CLOEXEC)
                out.append(Source(fd, os.fstat(fd), h.name, False))
                continue
            rel = src.lstrip("/") if strict else src
            if strict and posixpath.normpath(rel).split("/")[0] == "..":
                raise _err(instr, f"forbidden path outside the build context: {src}")
            names = context.glob(root, rel) if context.has_glob(rel) else [rel]
            if not names:
                raise _err(instr, f"no source files were specified: {src!r} matches "
                           "nothing in the build context")  # fmt: skip
            for n in names:
                try:
                    fd, st = fsops.open_in(root, n, strict=strict)
                except fsops.OutsideRoot:
                    raise _err(instr, f"forbidden path outside the build context: {src} "
                               "(a symlink points out of it)") from None  # fmt: skip
                except (FileNotFoundError, NotADirectoryError):
                    where = "build context" if strict else "source stage or image"
                    raise _err(instr, f"file not found in {where} or excluded by "
                               f".dockerignore: {src}") from None  # fmt: skip
                base = posixpath.basename(posixpath.normpath(n)) if n.strip("/.") else ""
                out.append(Source(fd, st, base, context.has_glob(rel)))
    except BaseException:
        for s in out:
            os.close(s.fd)
        raise
    finally:
        os.close(root)
    return out


def _hash_sources(
    sources: list[Source], downloads: list[tuple[str, str]], chmod: int | None
) -> list[str]:
    out = [context.tree_hash(s.fd, s.st, fsops.Owner(0, 0), chmod) for s in sources]
    for path, _ in downloads:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
        try:
            out.append(context.tree_hash(fd, os.fstat(fd), fsops.Owner(0, 0), chmod))
        finally:
            os.close(fd)
    return out


def _read_dockerfile(ctx: Path, rel: str) -> bytes:
    root = fsops.open_dir(ctx)
    try:
        fd, st = fsops.open_in(root, rel, strict=True)
    except (FileNotFoundError, NotADirectoryError):
        raise errors.NotFound(f"cannot find the Dockerfile {rel!r} in the build context") from None
    finally:
        os.close(root)
    try:
        if not stat.S_ISREG(st.st_mode):
            raise errors.InvalidArgument(f"the Dockerfile {rel!r} is not a regular file")
        rfd = fsops.reopen(fd, os.O_RDONLY)
        with os.fdopen(rfd, "rb") as f:
            return f.read(1 << 22)
    finally:
        os.close(fd)


def _archive(fd: int) -> bool:
    """Whether a file is a tar archive (plain, gzip, bzip2 or xz) ADD unpacks."""
    rfd = fsops.reopen(fd, os.O_RDONLY)
    with os.fdopen(rfd, "rb") as f:
        head = f.read(512)
    if head[:2] == b"\x1f\x8b" or head[:3] == b"BZh" or head[:6] == b"\xfd7zXZ\x00":
        return True
    return len(head) >= 262 and head[257:262] == b"ustar"


def _write_sources(
    rootfs: Path,
    sources: list[Source],
    downloads: list[tuple[str, str]],
    dest: str,
    chown: str,
    chmod: int | None,
    add: bool,
    instr: Instruction,
    epoch: int | None,
) -> None:
    owner = _owner(rootfs, chown, instr)
    root = fsops.open_dir(rootfs)
    try:
        _write_all(root, sources, downloads, dest, owner, chmod, add, instr)
    except (NotADirectoryError, FileNotFoundError, IsADirectoryError) as e:
        where = f" ({e.filename})" if e.filename and e.filename != dest else ""
        raise _err(instr, f"cannot copy to {dest}: {e.strerror or e}{where}") from None
    finally:
        os.close(root)


def _write_all(
    root: int,
    sources: list[Source],
    downloads: list[tuple[str, str]],
    dest: str,
    owner: fsops.Owner,
    chmod: int | None,
    add: bool,
    instr: Instruction,
) -> None:
    many = len(sources) + len(downloads) > 1 or any(s.glob for s in sources)
    dir_dest = dest.endswith("/") or many or fsops.is_dir(root, dest)
    for s in sources:
        _write_one(root, s, dest, dir_dest, owner, chmod, add, instr)
    for path, name in downloads:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
        try:
            st = os.fstat(fd)
            _write_one(root, Source(fd, st, name, False), dest, dir_dest, owner,
                       0o600 if chmod is None else chmod, False, instr)  # fmt: skip
        finally:
            os.close(fd)


def _write_one(root: int, s: Source, dest: str, dir_dest: bool, owner: fsops.Owner,
               chmod: int | None, add: bool, instr: Instruction) -> None:  # fmt: skip
    if stat.S_ISDIR(s.st.st_mode):
        fsops.mkdir_all(root, dest, owner)
        parent, name = fsops.resolve(root, dest, create=owner)
        try:
            dfd = parent if not name else os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=parent)
            try:
                src = fsops.reopen(s.fd, os.O_RDONLY | os.O_DIRECTORY)
                try:
                    for child in sorted(os.listdir(src)):
                        cst = os.stat(child, dir_fd=src, follow_symlinks=False)
                        fsops.copy_entry(src, child, cst, dfd, child, owner=owner, chmod=chmod)
                finally:
                    os.close(src)
            finally:
                if dfd != parent:
                    os.close(dfd)
        finally:
            os.close(parent)
        return
    if add and stat.S_ISREG(s.st.st_mode) and _archive(s.fd):
        fsops.mkdir_all(root, dest, owner)
        parent, name = fsops.resolve(root, dest, create=owner)
        try:
            dfd = parent if not name else os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=parent)
            try:
                rfd = fsops.reopen(s.fd, os.O_RDONLY)
                with os.fdopen(rfd, "rb") as f:
                    try:
                        with tarfile.open(fileobj=f, mode="r:*") as tf:
                            fsops.extract_tar(tf, dfd, owner=owner if instr.flag("chown") else None,
                                              what=f"ADD {s.name}", max_bytes=64 << 30)  # fmt: skip
                    except tarfile.TarError as e:
                        raise _err(instr, f"{s.name}: cannot extract: {e}") from None
            finally:
                if dfd != parent:
                    os.close(dfd)
        finally:
            os.close(parent)
        return
    target = posixpath.join(dest, s.name) if dir_dest else dest
    if dir_dest:
        fsops.mkdir_all(root, dest, owner)
    parent, name = fsops.resolve(root, target, create=owner, follow_last=False)
    try:
        if not name:
            raise _err(instr, f"cannot copy to {target}: it is the root")
        if stat.S_ISREG(s.st.st_mode):
            rfd = fsops.reopen(s.fd, os.O_RDONLY)
            with os.fdopen(rfd, "rb") as f:
                fsops.write_file(parent, name, f, mode=chmod if chmod is not None else s.st.st_mode,
                                 owner=owner, mtime=s.st.st_mtime)  # fmt: skip
    finally:
        os.close(parent)


def _owner(rootfs: Path, chown: str, instr: Instruction) -> fsops.Owner:
    if not chown:
        return fsops.Owner(0, 0)
    user, _, group = chown.partition(":")
    spec = f"{user}:{group or user}"
    try:
        u = users.lookup(spec, rootfs)
    except errors.InvalidArgument as e:
        raise _err(instr, f"--chown={chown}: {e.message}") from None
    return fsops.Owner(u.uid, u.gid)


# -- the event stream --------------------------------------------------------------


async def build_stream(
    stores: Stores,
    cache: Cache,
    opts: Options,
    ctx: context.Context,
    work_dir: Path,
    max_download: int = 64 << 30,
) -> AsyncIterator[Event]:
    """Run a build under a lease; its events, the last one a :class:`Result`."""
    queue: asyncio.Queue[Event | None] = asyncio.Queue(maxsize=256)

    async def emit(ev: Event) -> None:
        await queue.put(ev)

    async def job() -> Result:
        try:
            return await _with_lease(
                stores, Build(stores, cache, opts, ctx, work_dir, emit, max_download)
            )
        finally:
            await queue.put(None)

    task = asyncio.create_task(job(), name="build")
    try:
        done = False
        while not done:
            batch = [await queue.get()]
            while not queue.empty():
                batch.append(queue.get_nowait())
            done = batch[-1] is None
            for ev in coalesce([x for x in batch if x is not None]):
                yield ev
        yield await task
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(BaseException):
                await task


def coalesce(events: list[Event]) -> list[Event]:
    """Adjacent :class:`Stream` events as one (fewer messages; the same text)."""
    out: list[Event] = []
    for ev in events:
        last = out[-1] if out else None
        if isinstance(ev, Stream) and isinstance(last, Stream):
            out[-1] = Stream(last.text + ev.text)
        else:
            out.append(ev)
    return out


async def _with_lease(stores: Stores, b: Build) -> Result:
    """Run the build; then delete its lease, if it made one."""
    ns = scope.namespace_required()
    try:
        return await b.run()
    finally:
        scope.set_scope(ns, "")
        if b.lease:
            try:
                await stores.leases.delete(b.lease)
            except errors.SeacanError as e:
                _log.warning("build.lease_delete_failed", lease=b.lease, error=str(e))


async def _together(*aws: Coroutine[Any, Any, Any]) -> list[Any]:
    """Run the coroutines concurrently (children of a TaskGroup); their results in order.
    The first error is raised as itself (not as an ExceptionGroup), the others cancelled."""
    try:
        async with asyncio.TaskGroup() as tg:
            tasks = [tg.create_task(a) for a in aws]
    except BaseExceptionGroup as eg:
        raise eg.exceptions[0] from None
    return [t.result() for t in tasks]
