"""seacan build, commit, history, builder prune.

``build`` makes the context tar here (``.dockerignore`` applied, the
Dockerfile and ``.dockerignore`` always sent), streams it to the Builder
service and prints the progress as Docker's classic builder does::

    Step 1/3 : FROM busybox
     ---> 5f1a2b3c4d5e
    Step 2/3 : RUN echo hi
     ---> Running in 0a1b2c3d4e5f
    hi
     ---> 9f8e7d6c5b4a
    Successfully built 9f8e7d6c5b4a
    Successfully tagged app:1

``--progress plain`` adds each step's duration; ``-q`` prints only the ID.
"""

from __future__ import annotations

import argparse
import os
import stat
import sys
from collections.abc import Iterable, Iterator
from typing import IO, TYPE_CHECKING, Any

from seacan import errors
from seacan.build import BuildOptions, CommitOptions, Event, Output, Result, StepDone, Stream
from seacan.cli.flags import parse_labels

if TYPE_CHECKING:
    from datetime import datetime

    from seacan.client import Client

# Not seacan.cli.commands: its imports (content, snapshots, leases, output) cost a cached
# ``seacan build`` about a tenth of its time. ``build`` runs without asyncio and grpcio
# (over seacan.h2grpc); json, re, datetime, tarfile are imported where used.
Subparsers = Any

CHUNK = 1 << 20
SPOOL = 16 << 20  # a context tar up to this size stays in memory


# --- the context ------------------------------------------------------------------


def _matcher(ctx: str) -> Any:
    try:
        with open(os.path.join(ctx, ".dockerignore"), "rb") as f:
            data = f.read()
    except (FileNotFoundError, IsADirectoryError):
        return None
    from seacan.dockerfile.ignore import IgnoreMatcher

    return IgnoreMatcher.from_file(data)


def write_context(ctx: str, out: IO[bytes], keep: set[str]) -> None:
    """The context directory as a tar (owners 0:0, sorted), without what .dockerignore excludes.

    The entries are what ``TarFile.add`` makes with uid, gid, uname and gname cleared,
    without its two user database look-ups per file."""
    import tarfile

    m = _matcher(ctx)
    types = {
        stat.S_IFREG: tarfile.REGTYPE, stat.S_IFDIR: tarfile.DIRTYPE,
        stat.S_IFIFO: tarfile.FIFOTYPE, stat.S_IFLNK: tarfile.SYMTYPE,
        stat.S_IFCHR: tarfile.CHRTYPE, stat.S_IFBLK: tarfile.BLKTYPE,
    }  # fmt: skip
    inodes: dict[tuple[int, int], str] = {}
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tf:

        def add(path: str, name: str, st: os.stat_result) -> None:
            type_ = types.get(stat.S_IFMT(st.st_mode))
            if type_ is None:  # a socket
                return
            ti = tarfile.TarInfo(name)
            ti.mode, ti.mtime, ti.type = st.st_mode, st.st_mtime, type_
            if type_ == tarfile.REGTYPE:
                inode = (st.st_ino, st.st_dev)
                if st.st_nlink > 1 and inodes.get(inode, name) != name:
                    ti.type, ti.linkname = tarfile.LNKTYPE, inodes[inode]
                else:
                    ti.size = st.st_size
                    inodes[inode] = name
                    with open(path, "rb") as f:
                        tf.addfile(ti, f)
                    return
            elif type_ == tarfile.SYMTYPE:
                ti.linkname = os.readlink(path)
            elif type_ in (tarfile.CHRTYPE, tarfile.BLKTYPE):
                ti.devmajor, ti.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
            tf.addfile(ti)

        def visit(d: str, prefix: str) -> None:
            for entry in sorted(os.scandir(d), key=lambda e: e.name):
                rel = prefix + entry.name
                st = entry.stat(follow_symlinks=False)
                isdir = stat.S_ISDIR(st.st_mode)
                out_ = m is not None and rel not in keep and m.excluded(rel, isdir)
                if not out_:
                    add(entry.path, rel, st)
                if isdir and (not out_ or m.may_contain_included(rel)):
                    visit(entry.path, rel + "/")

        visit(ctx, "")


def context_chunks(ctx: str | None, keep: set[str]) -> Iterator[bytes]:
    """The context tar in pieces of at most CHUNK bytes (none for ``build -``)."""
    if ctx is None:
        return
    import tempfile

    with tempfile.SpooledTemporaryFile(SPOOL) as f:
        write_context(ctx, f, keep)
        f.seek(0)
        while chunk := f.read(CHUNK):
            yield chunk


def write(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def _parse_kv(items: list[str], what: str) -> dict[str, str]:
    out = {}
    for item in items:
        k, eq, v = item.partition("=")
        if not k:
            raise errors.InvalidArgument(f"invalid {what} {item!r}: want KEY=VALUE")
        if not eq:  # docker: --build-arg K takes K from the environment
            if k not in os.environ:
                continue
            v = os.environ[k]
        out[k] = v
    return out


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def build_options(a: argparse.Namespace) -> tuple[BuildOptions, str | None]:
    """The options and the context directory (None: ``build -``, no context)."""
    dockerfile, content_ = "Dockerfile", b""
    ctx: str | None = None
    if a.path == "-":
        content_ = sys.stdin.buffer.read()
    else:
        ctx = os.path.realpath(a.path)
        if not os.path.isdir(ctx):
            raise errors.InvalidArgument(f"unable to prepare context: path {a.path!r} not found")
        if a.file == "-":
            content_ = sys.stdin.buffer.read()
        elif a.file:
            full = os.path.realpath(a.file)
            if full.startswith(ctx.rstrip("/") + "/"):
                dockerfile = os.path.relpath(full, ctx)
            else:
                content_ = _read(full)
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    opts = BuildOptions(
        tags=tuple(a.tag),
        dockerfile=dockerfile,
        dockerfile_content=content_,
        build_args=_parse_kv(a.build_arg, "build arg"),
        target=a.target or "",
        no_cache=a.no_cache,
        pull=a.pull,
        labels=parse_labels(a.label),
        platform=a.platform or "",
        network=a.network,
        source_date_epoch=int(epoch) if epoch else None,
    )
    return opts, ctx


def show(events: Iterable[Event], *, quiet: bool, plain: bool) -> None:
    """Print the progress as Docker's classic builder does (``-q``: the image ID only)."""
    out = sys.stdout.buffer
    for ev in events:
        if isinstance(ev, Stream) and not quiet:
            out.write(ev.text.encode())
        elif isinstance(ev, Output) and not quiet:
            out.write(ev.data)
        elif isinstance(ev, StepDone) and not quiet:
            short = ev.image_id.removeprefix("sha256:")[:12]
            took = f" ({ev.seconds:.2f}s)" if plain else ""
            out.write(f" ---> {short}{took}\n".encode())
        elif isinstance(ev, Result) and quiet:
            out.write(f"{ev.image_id}\n".encode())
        out.flush()


def build(a: argparse.Namespace) -> int:
    """``seacan build``, synchronously over seacan.h2grpc (no asyncio, no grpcio)."""
    from seacan import h2grpc, scope
    from seacan.build import wire

    ns = scope.validate_identifier(a.namespace, "namespace")
    with h2grpc.Channel(a.address, metadata=[(scope.NAMESPACE_HEADER, ns)]) as ch:
        opts, ctx = build_options(a)
        keep = {"Dockerfile", ".dockerignore", opts.dockerfile}
        requests = wire.build_requests(opts, context_chunks(ctx, keep))
        events = map(wire.event_from_bytes, ch.stream(wire.BUILD, requests))
        show(events, quiet=a.quiet, plain=a.progress == "plain")
    return 0


# --- commit, history, builder prune ----------------------------------------------------


async def commit(c: Client, a: argparse.Namespace) -> int:
    image_id, _ = await c.build.commit(
        CommitOptions(
            container_id=a.container,
            reference=a.image or "",
            changes=tuple(a.change),
            message=a.message or "",
            author=a.author or "",
        )
    )
    write(image_id + "\n")
    return 0


def _created(text: str) -> datetime | None:
    import re
    from datetime import datetime

    m = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)", text)
    if m is None:
        return None
    frac = (m.group(2) or "")[:7]
    return datetime.fromisoformat(m.group(1) + frac + m.group(3).replace("Z", "+00:00"))


async def history(c: Client, a: argparse.Namespace) -> int:
    import json

    from seacan import content, oci
    from seacan.cli import output
    from seacan.images import unpack as unpacker
    from seacan.images.archive import normalize_reference

    img = await c.images.get(normalize_reference(a.image))
    parts = await unpacker.read_image(c.content, img.target, oci.host_platform())
    cfg = json.loads(await content.read_blob(c.content, parts.config_desc.digest))
    hist = list(cfg.get("history") or [])
    layers = list(parts.layers)
    sizes: list[int] = []
    li = 0
    for h in hist:
        if h.get("empty_layer"):
            sizes.append(0)
        else:
            sizes.append(layers[li].blob.size if li < len(layers) else 0)
            li += 1
    rows = []
    top = parts.config_desc.digest.removeprefix("sha256:")[:12]
    for i in range(len(hist) - 1, -1, -1):
        h = hist[i]
        by = str(h.get("created_by", ""))
        if not a.no_trunc and len(by) > 45:
            by = by[:44] + "…"
        when = _created(str(h.get("created", "")))
        rows.append((
            top if i == len(hist) - 1 else "<missing>",
            output.age(when) + " ago" if when else "-",
            by,
            output.human_size(sizes[i]),
            str(h.get("comment", "")),
        ))  # fmt: skip
    if a.quiet:
        write(top + "\n")
        return 0
    write(output.table(["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"], rows))
    return 0


async def builder_prune(c: Client, a: argparse.Namespace) -> int:
    n = await c.build.prune(all=a.all)
    write(f"Deleted {n} build cache entries\n")
    return 0


def _cmd(subs: Subparsers, name: str, func: Any, help_: str) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = subs.add_parser(name, help=help_, description=help_)
    p.set_defaults(func=func, noun_parser=p)
    return p


def register(subs: Subparsers) -> None:
    p = _cmd(subs, "build", None, "build an image from a Dockerfile")
    p.set_defaults(fast=build)
    p.add_argument("-t", "--tag", action="append", default=[], metavar="NAME", help="image name")
    p.add_argument("-f", "--file", metavar="PATH", help="the Dockerfile (default PATH/Dockerfile)")
    p.add_argument("--build-arg", action="append", default=[], metavar="K=V", help="build arg")
    p.add_argument("--target", metavar="STAGE", help="build up to this stage")
    p.add_argument("--no-cache", action="store_true", help="do not use the layer cache")
    p.add_argument("--pull", action="store_true", help="pull FROM images even if present")
    p.add_argument("--label", action="append", default=[], metavar="K=V", help="image label")
    p.add_argument("--platform", metavar="OS/ARCH", help="target platform (the host's only)")
    p.add_argument("--progress", choices=("auto", "plain"), default="auto", help="output style")
    p.add_argument("--network", choices=("host", "none"), default="host", help="network for RUN")
    p.add_argument("-q", "--quiet", action="store_true", help="print only the image ID")
    p.add_argument("path", metavar="PATH|-", help="the build context (- : Dockerfile on stdin)")

    p = _cmd(subs, "commit", commit, "create an image from a container's changes")
    p.add_argument("-c", "--change", action="append", default=[], metavar="INSTR",
                   help="a Dockerfile instruction for the config")  # fmt: skip
    p.add_argument("-m", "--message", help="commit message")
    p.add_argument("-a", "--author", help="author")
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("image", nargs="?", metavar="IMAGE")

    p = _cmd(subs, "history", history, "show the history of an image")
    p.add_argument("--no-trunc", action="store_true", help="do not truncate")
    p.add_argument("-q", "--quiet", action="store_true", help="only the image ID")
    p.add_argument("image", metavar="IMAGE")

    help_ = "manage the build cache"
    p = subs.add_parser("builder", help=help_, description=help_)
    p.set_defaults(noun_parser=p, func=None)
    b = p.add_subparsers(dest="verb", metavar="COMMAND")
    help_ = "remove build cache entries"
    p = b.add_parser("prune", help=help_, description=help_)
    p.set_defaults(func=builder_prune)
    p.add_argument("-a", "--all", action="store_true", help="also entries images still use")
    p.add_argument("-f", "--force", action="store_true", help="do not prompt (never prompts)")
